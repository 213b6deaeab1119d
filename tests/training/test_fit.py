"""training.fit: each epoch of a run reads the training set through one tf.data iterator, all of it once."""
import math

import numpy as np
import tensorflow as tf
from helpers import tiny_config, train_tiny
from keras.src.backend.tensorflow.trainer import TFEpochIterator

from keras_latent.data.pipeline import make_dataset
from keras_latent.training import fit as training


def _training_iterators_made(monkeypatch) -> list:
    """A list that gets one entry per tf.data iterator Keras makes over the run's training set."""
    made, training_sets = [], []
    real_make_dataset, real_get_iterator = training.make_dataset, TFEpochIterator._get_iterator

    def make_dataset_spy(*args, training, **kwargs):
        ds = real_make_dataset(*args, training=training, **kwargs)
        if training:
            training_sets.append(ds)
        return ds

    def get_iterator_spy(self):
        if any(self.data_adapter.get_tf_dataset() is ds for ds in training_sets):
            made.append(1)
        return real_get_iterator(self)

    monkeypatch.setattr(training, "make_dataset", make_dataset_spy)
    monkeypatch.setattr(TFEpochIterator, "_get_iterator", get_iterator_spy)
    return made


def test_each_epoch_reads_the_training_set_through_one_iterator(tmp_path, monkeypatch):
    """Keras alone makes two per epoch (tensorflow/tensorflow#67677): the one it makes at an epoch's end is
    thrown away at the next epoch's start. Told the epoch's batches, it keeps it: one per epoch, plus the
    one made after the last epoch."""
    made = _training_iterators_made(monkeypatch)
    train_tiny(tmp_path, "run", epochs=3)
    assert 3 <= len(made) <= 3 + 1


def _hundred_images_in_batches_of_32():
    return make_dataset(np.zeros((100, 8, 8, 3), np.uint8), np.arange(100) % 10, 32, training=True, seed=0)


def test_steps_per_epoch_is_every_batch_of_the_training_set():
    ds = _hundred_images_in_batches_of_32()
    assert training.steps_per_epoch(ds, tiny_config()) == math.ceil(100 / 32) == sum(1 for _ in ds)


def test_steps_per_epoch_is_left_to_keras_where_the_batches_are_unknown_or_shared_among_workers():
    ds = _hundred_images_in_batches_of_32()
    assert training.steps_per_epoch(ds.filter(lambda images, targets: tf.constant(True)), tiny_config()) is None
    assert training.steps_per_epoch(ds, tiny_config(strategy="multiworker")) is None
