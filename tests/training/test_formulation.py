"""formulation.py: the batch split computes the same losses, metrics and outputs as the whole batch; a run
trained with it saves the plain model and records its formulation; threads TensorFlow already runs with."""
import dataclasses
import json
import logging

import keras
import numpy as np
import pytest
from helpers import tiny_config

from keras_latent.config import DataConfig, TrainConfig
from keras_latent.data import load_splits
from keras_latent.data.pipeline import make_dataset, normalize
from keras_latent.model import build_model
from keras_latent.model.builders import reconstruction_outputs
from keras_latent.runs import layout
from keras_latent.training import distribute, formulation
from keras_latent.training.fit import choose_and_apply_formulation, compile_model, train


def _history(splits, config):
    keras.utils.set_random_seed(0)
    trainer = compile_model(build_model(config.model), config)
    targets = reconstruction_outputs(config.model)
    train_ds = make_dataset(splits.x_train, splits.y_train, 32, training=True, seed=0, reconstruction_outputs=targets)
    test_ds = make_dataset(splits.x_test[:65], splits.y_test[:65], 32, training=False, reconstruction_outputs=targets)
    return trainer, trainer.fit(train_ds, validation_data=test_ds, epochs=2, verbose=0).history


@pytest.mark.slow
def test_the_batch_split_trains_the_same_function():
    """257 training and 65 test images: the last batch of each holds one image, fewer than the parts."""
    splits, base = load_splits(TrainConfig(data=DataConfig(dataset="sample", max_train_samples=257),
                                           steps_per_execution=4))
    plain, whole = _history(splits, dataclasses.replace(base, batch_split=1))
    split, parts = _history(splits, dataclasses.replace(base, batch_split=2))
    assert isinstance(split, formulation.BatchSplitTrainer) and formulation.unwrap(plain) is plain
    assert sorted(parts) == sorted(whole)  # the same history columns
    for name in whole:
        np.testing.assert_allclose(parts[name], whole[name], rtol=2e-5, atol=1e-6, err_msg=name)
    for model in (plain, formulation.unwrap(split)):
        assert type(model) is keras.Model or model.__class__.__name__ == "Functional"


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_the_split_outputs_are_the_models_for_any_batch_size(n, sample_splits):
    model = build_model(TrainConfig().model)
    images = np.asarray(normalize(sample_splits.x_test[:n]))
    expected = model(images)
    split = formulation.BatchSplitTrainer(model, 3)
    for got in (split(images, training=True), split(images)):  # split in training and in inference alike
        assert sorted(got) == sorted(expected)
        for name in expected:
            assert got[name].shape[0] == n
            np.testing.assert_allclose(got[name], expected[name], atol=1e-5)


class RecordsBatchSizes(keras.Model):
    """`inner`'s outputs, noting the batch size of every call."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.sizes = inner, []

    def call(self, images, training=None):
        self.sizes.append(int(images.shape[0]))
        return self.inner(images, training=training)


def test_validation_and_predictions_are_split_like_training(sample_splits):
    """Inference through the trainer splits each batch too (both cores busy during validation)."""
    recording = RecordsBatchSizes(build_model(TrainConfig().model))
    split = formulation.BatchSplitTrainer(recording, 3)
    images = np.asarray(normalize(sample_splits.x_test[:7]))
    split(images)  # builds (Keras traces the first call once more)
    for training in (True, False):
        recording.sizes.clear()
        split(images, training=training)
        assert recording.sizes == [3, 2, 2]


def test_the_image_losses_are_computed_on_flattened_images():
    """Each MeanSquaredError output and its target -> (B, H*W*C); other outputs (another loss, the labels) untouched."""
    losses = {"classifier": keras.losses.SparseCategoricalCrossentropy(),
              "reconstruction": keras.losses.MeanSquaredError(), "edges": keras.losses.MeanAbsoluteError()}
    images = np.zeros((4, 8, 8, 3), "float32")
    y = {"classifier": np.arange(4), "reconstruction": images, "edges": images}
    y_pred = {"classifier": np.zeros((4, 10), "float32"), "reconstruction": images + 1, "edges": images}
    flat_y, flat_pred = formulation.flat_image_losses(losses, y, y_pred)
    assert flat_y["reconstruction"].shape == flat_pred["reconstruction"].shape == (4, 192)
    assert flat_y["classifier"] is y["classifier"] and flat_pred["classifier"] is y_pred["classifier"]
    assert flat_y["edges"] is images and flat_pred["edges"] is images
    np.testing.assert_array_equal(flat_pred["reconstruction"], np.ones((4, 192)))


def test_the_batch_splits_loss_is_the_models(sample_splits):
    """The same loss from the trainer (split, flattened image losses) as from the model, training and not."""
    config = tiny_config(batch_split=2)
    trainer = compile_model(build_model(config.model), config)
    model = formulation.unwrap(trainer)
    images = np.asarray(normalize(sample_splits.x_test[:5]))
    y_pred = model(images)
    y = {name: (sample_splits.y_test[:5] if name == "classifier" else np.flip(images, axis=0)) for name in y_pred}
    for training in (True, False):
        got = trainer.compute_loss(y=y, y_pred=trainer(images, training=training), training=training)
        np.testing.assert_allclose(got, model.compute_loss(y=y, y_pred=y_pred, training=training), rtol=1e-5)
    assert float(model.compute_loss(y=y, y_pred=y_pred)) > 0


@pytest.mark.slow
def test_a_run_with_the_batch_split_saves_the_plain_model_and_its_formulation(tmp_path):
    run_dir = str(tmp_path / "run")
    train(tiny_config(batch_split=2, snapshot_epochs=(1,)), run_dir, verbose=0)
    saved = json.loads(open(layout.CONFIG.path(run_dir)).read())
    assert (saved["batch_split"], saved["formulation_source"], saved["jit_compile"]) == (2, "defaults", False)
    model = keras.saving.load_model(layout.MODEL.path(run_dir))
    assert not isinstance(model, formulation.BatchSplitTrainer) and "reconstruction" in model.output
    assert model.compiled and set(model.get_compile_config()["loss"]) == set(model.output)  # plain Keras: compiled


def test_the_model_inside_the_batch_split_is_compiled_with_the_trainers_optimizer():
    """So the model.keras saved from it carries the compile config (a plain load returns it compiled)."""
    config = tiny_config(batch_split=2)
    trainer = compile_model(build_model(config.model), config)
    model = formulation.unwrap(trainer)
    assert model is not trainer and model.compiled and model.optimizer is trainer.optimizer
    assert model.get_compile_config()["loss_weights"] == trainer.get_compile_config()["loss_weights"]


def test_threads_tensorflow_already_runs_with_are_kept_and_recorded(tmp_path, caplog):
    """In this process TensorFlow already runs (with its own 0/0 threads): flags asking for others get a notice."""
    assert not distribute.threads_settable()
    caplog.set_level(logging.INFO, logger="keras_latent")
    config = choose_and_apply_formulation(tiny_config(intra_op_threads=1, inter_op_threads=2), str(tmp_path), False)
    assert (config.intra_op_threads, config.inter_op_threads) == distribute.current_threads()
    assert "already runs with intra-op/inter-op threads" in caplog.text and "formulation: " in caplog.text


class CrashInEpoch2(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("killed in epoch 2")


@pytest.mark.slow
def test_an_interrupted_run_resumes_with_the_formulation_it_chose(tmp_path, monkeypatch):
    """The rerun leaves the formulation to be chosen, and gets the saved run's: the backup of the split
    trainer loads back into one, and the config matches."""
    from keras_latent.training import fit as training

    run = str(tmp_path / "run")
    real_make_callbacks = training.make_callbacks
    monkeypatch.setattr(training, "make_callbacks", lambda *a: real_make_callbacks(*a) + [CrashInEpoch2()])
    with pytest.raises(RuntimeError, match="killed in epoch 2"):
        train(tiny_config(epochs=2, snapshot_epochs=(0,), batch_split=2), run, verbose=0)
    monkeypatch.undo()
    metrics = train(tiny_config(epochs=2, snapshot_epochs=(0,)), run, verbose=0)
    assert metrics["resumed_from_epoch"] == 1 and metrics["epochs"] == 2
    assert json.loads(open(layout.CONFIG.path(run)).read())["batch_split"] == 2
