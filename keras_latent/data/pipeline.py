"""tf.data input pipelines: shuffled index batches gathered from in-memory arrays (or, for a data set above
the memory budget, from `.npy` memory maps: `data.store`), normalized in-graph.

Images stay uint8 in one in-memory tensor; each step gathers a batch of them by index and
normalizes it in the graph, as in the classic tutorial: (x / 255 - 0.5) / 0.5, so [-1, 1].
Shuffling and batching work on indices, so tf.data runs a handful of ops per *batch*, not
per image, and no Python runs per step. The reconstruction target is the normalized
(augmented) input itself.

tf.data's autotuning is switched off in favour of fixed settings: assembling a batch takes well
under a millisecond, and on a 2-core machine the autotuner's own thread made one training epoch
in three run at half speed (measured; see docs/performance.md, What each default buys).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_latent.data.sources import to_uint8

MAP_PARALLELISM = 2  # batches assembled (gathered, normalized, augmented) at once
PREFETCH_BATCHES = 4  # batches ready ahead of the training step


def normalize(images):
    """uint8 (B, H, W, 3) -> float32 in [-1, 1]."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def denormalize(images: np.ndarray) -> np.ndarray:
    """float in [-1, 1] (B, H, W, 3) -> uint8 images for display."""
    return to_uint8((np.asarray(images, np.float32) + 1.0) * 127.5)


def _augmenter(seed: int):
    import keras

    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomTranslation(0.125, 0.125, fill_mode="reflect", seed=seed + 1),
    ], name="augment")


def _index_batches(n: int, batch_size: int, training: bool, seed: int) -> tf.data.Dataset:
    """Batches of indices 0..n-1: reshuffled every epoch (seeded) when `training`, else in order."""
    indices = tf.data.Dataset.range(n)
    if training:
        indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    return indices.batch(batch_size)


def _gatherer(x: np.ndarray):
    """batch indices (B,) int64 -> the images x[indices], (B, H, W, 3) uint8, in the tf.data graph.

    In memory: tf.gather from one tensor. A memory map (`data.store`: a data set above the memory budget):
    numpy reads the batch's rows from the file (tf.numpy_function), the same rows in the same order."""
    if not isinstance(x, np.memmap):
        images_all = tf.constant(np.asarray(x))  # (N, H, W, 3) uint8
        return lambda indices: tf.gather(images_all, indices)
    shape = (None, *x.shape[1:])

    def read(indices):
        return np.ascontiguousarray(x[indices])

    def gather(indices):
        images = tf.numpy_function(read, [indices], tf.uint8, stateful=False)
        return tf.ensure_shape(images, shape)

    return gather


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, training: bool, seed: int = 0,
                 augment: bool = False, reconstruction_outputs: Sequence[str] = ("reconstruction",)
                 ) -> tf.data.Dataset:
    """Batches of (normalized images, {"classifier": labels, "reconstruction": images, ...}).

    x: (N, H, W, 3) uint8, y: (N,) ints. `training` shuffles (seeded, reshuffled each epoch)
    and, with `augment`, adds random flips and shifts; evaluation batches keep the data's
    order. Each of `reconstruction_outputs` (the model's reconstruction outputs, see
    `model.builders.reconstruction_outputs`; empty: classifier labels only) gets the images as target.
    """
    labels_all = tf.constant(np.asarray(y).astype(np.int32))
    augmenter = _augmenter(seed) if (training and augment) else None
    gather = _gatherer(x)

    def to_example(batch_indices):
        images = normalize(gather(batch_indices))  # (B, H, W, 3) float32
        if augmenter is not None:
            images = augmenter(images, training=True)
        targets = {"classifier": tf.gather(labels_all, batch_indices)}
        targets.update(dict.fromkeys(reconstruction_outputs, images))
        return images, targets

    options = tf.data.Options()
    options.autotune.enabled = False
    ds = _index_batches(len(x), batch_size, training, seed).with_options(options)
    return ds.map(to_example, num_parallel_calls=MAP_PARALLELISM, deterministic=True).prefetch(PREFETCH_BATCHES)
