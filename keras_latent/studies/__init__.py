"""Studies: variants x seeds of ordinary training runs, compared with error bars. The settings (`config`, no
TensorFlow import), training and results (`run`), the statistics (`statistics`, scipy.stats) and figures (`plots`)."""
from keras_latent._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {"StudyConfig": "config", "Variant": "config", "run_study": "run"})
