"""The model: pure builders from a ModelConfig to Keras models (`builders`), the sub-pixel transposed conv in
standard layers and the per-image loss (`layers`), safe loading of a run's model.keras (`saving`), and the
pre-issue-21 decoder layer old files name (`legacy`)."""
from keras_latent._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "build_model": "builders", "build_trunk": "builders", "build_decoder": "builders",
    "build_classifier_head": "builders", "decoder_tail": "builders", "trunk_block_names": "builders",
    "trunk_blocks": "builders", "has_decoder": "builders", "load_run_model": "saving", "open_run": "saving"})
