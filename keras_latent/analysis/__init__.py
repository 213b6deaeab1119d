"""Looking inside a trained model: per-channel decoding, statistics and ablation (`latent`), feature
visualization (`features`), Grad-CAM and SmoothGrad (`attribution`), their figures (`plots`,
`view_plots`), and the whole analysis of a run folder into RUN/analysis/ (`run`, with `views`)."""
from keras_latent._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {"analyze_run": "run", "AnalysisConfig": "config"})
