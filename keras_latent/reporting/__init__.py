"""The report: one self-contained HTML page of a run, collected from its files (`build`, one module per
section) and rendered through `templates/report.html.j2`."""
from keras_latent._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {"build_report": "build"})
