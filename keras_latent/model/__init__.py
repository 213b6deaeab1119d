"""The model: pure builders from a ModelConfig to Keras models (`builders`), the custom layers and loss
(`layers`), and safe loading of a run's model.keras (`saving`)."""
from keras_latent._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "build_model": "builders", "build_trunk": "builders", "build_decoder": "builders",
    "build_classifier_head": "builders", "decoder_tail": "builders", "trunk_block_names": "builders",
    "trunk_blocks": "builders", "has_decoder": "builders", "load_run_model": "saving", "open_run": "saving"})
