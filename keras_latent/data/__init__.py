"""Data: the sources (full CIFAR-10 through tensorflow-datasets, the bundled sample, a
cifar-10-batches-py folder, an image folder) as uint8 arrays (`sources`), and the tf.data input
pipeline that normalizes them in-graph (`pipeline`)."""
from keras_latent._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "Splits": "sources", "load_dataset": "sources", "load_splits": "sources", "make_dataset": "pipeline",
    "normalize": "pipeline", "denormalize": "pipeline"})
