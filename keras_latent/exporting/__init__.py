"""Interop: a run's model as a TF SavedModel with serving, encode and masked-decode signatures, and
as TFLite (`savedmodel`), readable by tools that do not import this package."""
from keras_latent._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {"export_run": "savedmodel", "export_saved_model": "savedmodel"})
