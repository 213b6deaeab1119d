"""TF SavedModel export, loadable by `tf.saved_model.load` without this package."""
from __future__ import annotations

import keras

from keras_latent.config import TrainConfig
from keras_latent.files import atomic_directory


def export_saved_model(model: keras.Model, config: TrainConfig, path: str) -> str:
    """Export `model` as a TF SavedModel at `path` (written to a temp folder, then renamed)."""
    with atomic_directory(path) as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
    return path
