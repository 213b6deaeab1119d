"""Training: compile and fit into a run folder (`fit`), its callbacks, test-set evaluation, plots of
curves and confusion, where training runs (`distribute`: threads, tf.distribute strategies), how a step
is computed (`formulation`: XLA, the batch split, threads) and which way is fastest on this machine
(`calibration`: measured once, cached)."""
from keras_latent._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {"train": "fit", "compile_model": "fit"})
