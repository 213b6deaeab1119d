"""Can these views be trusted? Controls and sanity checks for every view (issue 23), model-agnostic:
similarity measures (`similarity`), randomized model copies (`randomize`), the checks (`checks`), their
figures (`plots`) and everything in one call (`run`: `run_sanity_checks`, `SanitySettings`, `SanityProbe`)."""
from keras_latent._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "run_sanity_checks": "run", "SanitySettings": "run", "SanityProbe": "run", "own_model_probe": "run",
    "validate_sanity_settings": "run"})
