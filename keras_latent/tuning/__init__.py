"""The loss-weight search with KerasTuner: its settings (`config`, no TensorFlow import), the
hypermodel, oracles and tuner (`tuner`), trials.csv and best.json (`results`) and the Pareto plot."""
from keras_latent._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {"SearchConfig": "config", "run_search": "tuner",
                                               "read_best_weights": "results"})
