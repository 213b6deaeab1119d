"""Training: compile the two-output model, fit it, and write the run folder.

`compile_model` is shared with the tuner; `train` is what `python -m keras_latent.train` runs.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

import keras
import numpy as np

from keras_latent import evaluate, visualize
from keras_latent.callbacks import HistoryCsv, ReconstructionSnapshots
from keras_latent.config import TrainConfig, save_config
from keras_latent.data import Splits, load_dataset
from keras_latent.errors import UsageError
from keras_latent.export import export_saved_model
from keras_latent.files import atomic_path, atomic_write_text, save_figure
from keras_latent.model import build_model
from keras_latent.pipeline import make_dataset, normalize

MODEL_FILE = "model.keras"


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=config.lr, momentum=config.momentum)
    return keras.optimizers.Adam(learning_rate=config.lr)


def compile_model(model: keras.Model, config: TrainConfig) -> keras.Model:
    """Cross-entropy + MSE, keyed by output name, weighted by `ce_weight` and `recon_weight`."""
    loss = {"classifier": keras.losses.SparseCategoricalCrossentropy()}
    loss_weights = {"classifier": config.ce_weight}
    metrics = {"classifier": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}
    if "reconstruction" in model.output:
        loss["reconstruction"] = keras.losses.MeanSquaredError()
        loss_weights["reconstruction"] = config.recon_weight
    model.compile(optimizer=make_optimizer(config), loss=loss, loss_weights=loss_weights, metrics=metrics,
                  steps_per_execution=config.steps_per_execution, jit_compile=config.jit_compile)
    return model


def load_splits(config: TrainConfig) -> tuple[Splits, TrainConfig]:
    """Load the data set and return the config with the resolved data set and class names filled in."""
    d = config.data
    splits = load_dataset(d.dataset, config.model.image_size, d.test_fraction, config.seed,
                          d.max_train_samples, d.tfds_data_dir)
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(d, dataset=splits.dataset, class_names=splits.class_names),
        model=dataclasses.replace(config.model, num_classes=len(splits.class_names)))
    return splits, config


def make_callbacks(config: TrainConfig, splits: Splits, run_dir: str) -> list[keras.callbacks.Callback]:
    tensorboard_dir = os.path.join(run_dir, "tensorboard")
    callbacks = [HistoryCsv(os.path.join(run_dir, "history.csv")),
                 keras.callbacks.TensorBoard(tensorboard_dir),
                 keras.callbacks.TerminateOnNaN()]
    if config.model.decoder and config.snapshot_epochs:
        images = np.asarray(normalize(splits.x_test[: config.num_snapshot_images]))
        callbacks.append(ReconstructionSnapshots(images, config.snapshot_epochs, run_dir, tensorboard_dir))
    return callbacks


def check_run_dir(run_dir: str, overwrite: bool) -> None:
    """Refuse to train into a finished run folder unless `overwrite`; check the folder is writable."""
    if os.path.exists(os.path.join(run_dir, MODEL_FILE)) and not overwrite:
        raise UsageError(f"{run_dir!r} already holds a finished run ({MODEL_FILE}); "
                         "pass --overwrite to retrain into it or choose another --out")
    try:
        os.makedirs(run_dir, exist_ok=True)
        with atomic_path(os.path.join(run_dir, ".write_test")):
            pass
        os.remove(os.path.join(run_dir, ".write_test"))
    except OSError as err:
        raise UsageError(f"--out {run_dir!r} is not writable: {err.strerror or err}") from None


def write_reports(model: keras.Model, config: TrainConfig, splits: Splits, run_dir: str, history: dict,
                  seconds: float) -> dict:
    """Evaluate on the test split and write curves, report, confusion matrix and metrics.json."""
    test_ds = make_dataset(splits.x_test, splits.y_test, config.batch_size, training=False,
                           reconstruction=config.model.decoder)
    outputs = evaluate.predict(model, test_ds)
    images = np.asarray(normalize(splits.x_test)) if config.model.decoder else None
    result = evaluate.evaluate_predictions(outputs["classifier"], splits.y_test, splits.class_names,
                                           outputs.get("reconstruction"), images)
    atomic_write_text(os.path.join(run_dir, "classification_report.txt"), result.pop("report"))
    save_figure(visualize.plot_confusion_matrix(result.pop("confusion_matrix"), splits.class_names),
                os.path.join(run_dir, "confusion_matrix.png"))
    save_figure(visualize.plot_curves(history), os.path.join(run_dir, "curves.png"))
    epochs_run = len(history["loss"])
    metrics = {**result, "epochs": epochs_run, "seconds": round(seconds, 2),
               "images_per_s": round(len(splits.x_train) * epochs_run / max(seconds, 1e-9), 1),
               "dataset": splits.description, "train_images": len(splits.x_train), "test_images": len(splits.x_test)}
    atomic_write_text(os.path.join(run_dir, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    return metrics


def train(config: TrainConfig, run_dir: str, overwrite: bool = False, verbose: int | str = "auto") -> dict:
    """Train per `config` into `run_dir` and write every run file; returns metrics.json's content."""
    check_run_dir(run_dir, overwrite)
    splits, config = load_splits(config)
    print(f"data: {splits.description}")
    save_config(config, run_dir)
    model = compile_model(build_model(config.model), config)
    train_ds = make_dataset(splits.x_train, splits.y_train, config.batch_size, training=True, seed=config.seed,
                            augment=config.data.augment, reconstruction=config.model.decoder)
    test_ds = make_dataset(splits.x_test, splits.y_test, config.batch_size, training=False,
                           reconstruction=config.model.decoder)
    start = time.perf_counter()
    fit = model.fit(train_ds, validation_data=test_ds, epochs=config.epochs,
                    callbacks=make_callbacks(config, splits, run_dir), shuffle=False, verbose=verbose)
    seconds = time.perf_counter() - start
    with atomic_path(os.path.join(run_dir, MODEL_FILE), suffix=".keras") as tmp:
        model.save(tmp)
    export_saved_model(model, config, os.path.join(run_dir, "saved_model"))
    return write_reports(model, config, splits, run_dir, fit.history, seconds)
