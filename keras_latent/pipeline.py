"""tf.data input pipelines: cache, seeded shuffle, batch, normalize (and augment), prefetch.

Images travel as uint8 and are normalized per batch inside the graph, as in the classic
tutorial: (x / 255 - 0.5) / 0.5, so [-1, 1]. The reconstruction target is the normalized
(augmented) input itself.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def normalize(images):
    """uint8 (B, H, W, 3) -> float32 in [-1, 1]."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def denormalize(images: np.ndarray) -> np.ndarray:
    """float in [-1, 1] (B, H, W, 3) -> uint8 images for display."""
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _augmenter(seed: int):
    import keras

    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomTranslation(0.125, 0.125, fill_mode="reflect", seed=seed + 1),
    ], name="augment")


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, training: bool, seed: int = 0,
                 augment: bool = False, reconstruction: bool = True) -> tf.data.Dataset:
    """Batches of (normalized images, {"classifier": labels, "reconstruction": images}).

    `training` shuffles (seeded, reshuffled each epoch) and, with `augment`, adds random flips
    and shifts; evaluation batches keep the data's order. Without `reconstruction` the targets
    hold the classifier labels only.
    """
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32))).cache()
    if training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    augmenter = _augmenter(seed) if (training and augment) else None

    def to_example(images, labels):
        images = normalize(images)
        if augmenter is not None:
            images = augmenter(images, training=True)
        targets = {"classifier": labels}
        if reconstruction:
            targets["reconstruction"] = images
        return images, targets

    return ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
