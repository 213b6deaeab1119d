"""Training: compile the two-output model, fit it, and write the run folder.

`compile_model` is shared with the tuner; `train` is what `python -m keras_latent.train` runs.
"""
from __future__ import annotations

import dataclasses
import gc
import logging
import os
import shutil
import time

import keras
import numpy as np

from keras_latent import machine
from keras_latent.config import TrainConfig, resolve_defaults, validate, with_static_formulation
from keras_latent.data import Splits, load_splits
from keras_latent.data.pipeline import make_dataset, normalize
from keras_latent.errors import UsageError
from keras_latent.exporting.savedmodel import export_saved_model
from keras_latent.files import atomic_path, atomic_write_text, save_figure
from keras_latent.model import build_model, has_decoder
from keras_latent.model.builders import reconstruction_outputs
from keras_latent.runs import layout
from keras_latent.runs.lifecycle import (
    check_free_space,
    check_resume_config,
    clear_run_outputs,
    disk_errors_as_usage,
    estimate_run_bytes,
    finish_run,
    inspect_run_dir,
    interrupted_run_config,
    keep_last_good,
)
from keras_latent.runs.records import read_history_csv, save_config, write_json
from keras_latent.training import calibration, distribute, evaluation, faithfulness, formulation, patches, plots
from keras_latent.training.callbacks import AtomicBackupAndRestore, HistoryCsv, ReconstructionSnapshots, StopOnNaN

log = logging.getLogger("keras_latent")


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    """Keras's SGD (momentum `config.momentum`, its update one fused kernel per variable:
    `patches.fuse_sgd_momentum`) or Adam."""
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=config.lr, momentum=config.momentum)
        patches.fuse_sgd_momentum(optimizer)
        return optimizer
    return keras.optimizers.Adam(learning_rate=config.lr)


def compile_model(model: keras.Model, config: TrainConfig) -> keras.Model:
    """Cross-entropy + MSE, keyed by output name, weighted by `ce_weight` and `recon_weight`; each
    "reconstruction_conv{k}" output (layer decoders) by its `layer_recon_weights` entry.

    Returns the compiled model `fit` trains: `model`, or with `config.batch_split` > 1 a
    `formulation.BatchSplitTrainer` around it (`formulation.unwrap` gives `model` back). Formulation
    fields left None take their static values (`train` chooses them per machine first).
    """
    config = with_static_formulation(config)
    optimizer = make_optimizer(config)
    trainer = formulation.for_training(model, config)
    # With a batch split, the model inside is compiled too (the same optimizer, so the same state): the model.keras
    # saved from it carries the compile config, and a plain `keras.saving.load_model` returns it compiled.
    for compiled in dict.fromkeys([trainer, model]):
        compiled.compile(optimizer=optimizer, **losses_and_metrics(model, config),
                         steps_per_execution=distribute.steps_per_execution(config.steps_per_execution,
                                                                            config.strategy),
                         jit_compile=config.jit_compile)
    return trainer


def losses_and_metrics(model: keras.Model, config: TrainConfig) -> dict:
    """compile's `loss`, `loss_weights` and `metrics` for `model`'s outputs (new loss and metric objects per call)."""
    loss = {"classifier": keras.losses.SparseCategoricalCrossentropy()}
    loss_weights = {"classifier": config.ce_weight}
    two_outputs = has_decoder(model)
    # Keras prefixes metric names with the output name only for several outputs: keep
    # `classifier_accuracy` (and the tuner's objective `val_classifier_accuracy`) either way.
    accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy" if two_outputs else "classifier_accuracy")
    metrics = {"classifier": [accuracy]}
    if two_outputs:
        # A built-in loss, so a compiled model.keras loads in plain Keras (keras_latent.model.layers.image_mse, the
        # same value reduced per image, is kept registered for files from before).
        loss["reconstruction"] = keras.losses.MeanSquaredError()
        loss_weights["reconstruction"] = config.recon_weight
        layer_outputs = [name for name in model.output if name.startswith("reconstruction_")]
        weights = resolve_defaults(config).layer_recon_weights
        if len(weights) != len(layer_outputs):
            raise UsageError(f"the model has {len(layer_outputs)} layer reconstruction output(s) "
                             f"({', '.join(layer_outputs) or 'none'}) but layer_recon_weights has {len(weights)}")
        loss.update({name: keras.losses.MeanSquaredError() for name in layer_outputs})
        loss_weights.update(zip(layer_outputs, weights))
    return dict(loss=loss, loss_weights=loss_weights, metrics=metrics)


def make_callbacks(config: TrainConfig, splits: Splits, run_dir: str) -> list[keras.callbacks.Callback]:
    """NaN stop first, the per-epoch backup last: a kill between them re-runs the epoch, never skips a row."""
    tensorboard_dir = layout.TENSORBOARD.path(run_dir)
    callbacks = [StopOnNaN(),
                 HistoryCsv(layout.HISTORY.path(run_dir)),
                 keras.callbacks.TensorBoard(tensorboard_dir)]
    if config.model.decoder and config.snapshot_epochs:
        images = np.asarray(normalize(splits.x_test[: config.num_snapshot_images]))
        callbacks.append(ReconstructionSnapshots(images, config.snapshot_epochs, run_dir, tensorboard_dir))
    callbacks.append(AtomicBackupAndRestore(layout.BACKUP.path(run_dir), delete_checkpoint=False))
    return callbacks


def write_results(model: keras.Model, splits: Splits, test_ds, run_dir: str, history: dict, seconds: float,
                  epochs_run: int, faithful: dict | None = None) -> dict:
    """Evaluate on the test split (`test_ds`, its batches in order) and write curves, report, confusion
    matrix, model_summary.json and metrics.json (with `faithful`, the decode table of
    `faithfulness.measure_test_faithfulness`): every figure the report shows, so it never predicts again.

    `history` holds every epoch of the run (also those before a resume); `epochs_run` is how many
    of them this process trained in `seconds`.
    """
    outputs = evaluation.predict(model, test_ds)
    reconstruction = outputs.get("reconstruction")  # (N, H, W, 3), None without a decoder
    images = np.asarray(normalize(splits.x_test)) if reconstruction is not None else None
    result = evaluation.evaluate_predictions(outputs["classifier"], splits.y_test, splits.class_names,
                                           reconstruction, images)
    atomic_write_text(layout.CLASSIFICATION_REPORT.path(run_dir), result.pop("report"))
    save_figure(plots.plot_confusion_matrix(np.asarray(result["confusion_matrix"]), splits.class_names),
                layout.CONFUSION_MATRIX.path(run_dir))
    save_figure(plots.plot_curves(history), layout.CURVES.path(run_dir))
    write_json(layout.MODEL_SUMMARY.path(run_dir), evaluation.model_summary(model))
    epochs = len(history["loss"])
    metrics = {**result, "epochs": epochs, "resumed_from_epoch": epochs - epochs_run, "seconds": round(seconds, 2),
               "images_per_s": round(len(splits.x_train) * epochs_run / max(seconds, 1e-9), 1),
               "dataset": splits.description, "train_images": len(splits.x_train), "test_images": len(splits.x_test)}
    if faithful is not None:
        metrics["faithfulness"] = faithful
    write_json(layout.METRICS.path(run_dir), metrics)
    return metrics


def train(config: TrainConfig, run_dir: str, overwrite: bool = False, verbose: int | str = "auto",
          callbacks: list[keras.callbacks.Callback] | None = None) -> dict:
    """Train per `config` into `run_dir` and write every run file; validates `config` and seeds
    (`config.seed`) first, as the command does.

    Returns metrics.json's content plus "run_dir": the folder written (under multiworker, a
    non-chief worker's own `run_dir/worker-<index>`).

    An interrupted run in `run_dir` (a backup, no model.keras) is resumed from its last finished
    epoch; every check that can fail runs before anything in `run_dir` is deleted. `callbacks`
    are added to the run's own (e.g. a benchmark's timer). Under `--strategy multiworker` the
    non-chief workers write `run_dir/worker-<index>` instead.

    Formulation fields left None (`jit_compile`, `batch_split`, the threads) are chosen for this
    machine first (`choose_and_apply_formulation`): config.json records the values the run used.

    The run's lifecycle, in order: settings, new or resume, data, model, the folder made ready,
    fit, evaluate and write the results, export, mark finished (model.keras, written last).
    """
    config = choose_and_apply_formulation(validate(resolve_defaults(config)), run_dir, overwrite)
    keras.utils.set_random_seed(config.seed)
    strategy = distribute.make_strategy(config.strategy)
    run_dir = distribute.worker_run_dir(strategy, run_dir)
    resume_epoch = inspect_run_dir(run_dir, overwrite)  # 0: a new run; else the epochs to resume after
    splits, config = load_data(config, run_dir)
    if config.strategy != "default":
        log.info(f"strategy: {distribute.describe(strategy)}; run folder {run_dir}")
    model = make_model(config, strategy)
    start_or_resume(run_dir, config, model, resume_epoch)
    with disk_errors_as_usage(run_dir):
        fitted = fit(model, config, splits, run_dir, verbose, extra_callbacks=callbacks or [])
        model = formulation.unwrap(model)  # the model itself, not a BatchSplitTrainer around it
        gc.collect()  # frees the trainer around it and its traced step (a cycle) before the results allocate
        predictor = distribute.local_model(model, strategy)  # the model itself, except under multiworker
        faithful = faithfulness.measure_test_faithfulness(predictor, splits)
        metrics = write_results(predictor, splits, fitted.test_ds, run_dir, fitted.history, fitted.seconds,
                                fitted.epochs_run, faithful=faithful)
        export(predictor, config, run_dir, faithful)
        mark_finished(model, run_dir)
    shutil.rmtree(layout.DATA_CACHE.path(run_dir), ignore_errors=True)  # streamed images (data.store), if any
    return {**metrics, "run_dir": run_dir}


def choose_and_apply_formulation(config: TrainConfig, run_dir: str, overwrite: bool) -> TrainConfig:
    """`config` with its formulation chosen (`calibration.choose_formulation`: flags, the interrupted run's,
    the calibration's or the static one) and TensorFlow's threads set to it; logs what was chosen.

    Runs before anything starts TensorFlow's runtime. Where it already runs (an earlier training in this
    process), its threads cannot change: only candidates with those threads compete, and thread flags that
    ask for others get a notice; config.json records the threads the run really had.
    """
    running = None if distribute.threads_settable() else distribute.current_threads()
    saved = interrupted_run_config(run_dir) if not overwrite else None
    config, line = calibration.choose_formulation(config, saved=saved, running_threads=running)
    if not formulation.apply_threads(config):
        actual = distribute.current_threads()
        log.warning(f"TensorFlow already runs with intra-op/inter-op threads {actual[0]}/{actual[1]} in this "
                    f"process; asked for {config.intra_op_threads}/{config.inter_op_threads}, kept those")
        config = dataclasses.replace(config, intra_op_threads=actual[0], inter_op_threads=actual[1])
    log.info(line)
    notice = machine.onednn_import_order_notice()
    if notice:
        log.warning(notice)
    return config


def load_data(config: TrainConfig, run_dir: str) -> tuple[Splits, TrainConfig]:
    """The run's data set, and `config` with it resolved (what config.json records). Above the memory budget the
    images are streamed from RUN/data_cache/ (data.store), removed when the run finishes."""
    splits, config = load_splits(config, cache_dir=layout.DATA_CACHE.path(run_dir))
    log.info(f"data: {splits.description}")
    return splits, config


def make_model(config: TrainConfig, strategy) -> keras.Model:
    """The compiled model (maybe a BatchSplitTrainer around it), built in the strategy's scope."""
    with distribute.model_scope(strategy, config.mixed_precision):
        return compile_model(build_model(config.model), config)


def start_or_resume(run_dir: str, config: TrainConfig, model: keras.Model, resume_epoch: int) -> None:
    """Make `run_dir` ready: the interrupted run's config checked (resume) or the old outputs removed (new),
    after the free space is checked; then config.json."""
    if resume_epoch:
        check_resume_config(run_dir, config, resume_epoch)
    check_free_space(run_dir, estimate_run_bytes(formulation.unwrap(model).count_params(), config))
    if resume_epoch:
        log.info(f"resuming the interrupted run in {run_dir} after epoch {resume_epoch} of {config.epochs}")
    else:
        clear_run_outputs(run_dir)
    save_config(config, run_dir)


@dataclasses.dataclass(frozen=True)
class Fitted:
    """What `fit` leaves for the results: the test pipeline, every epoch's history (also those before a
    resume), the seconds this process trained and its epochs."""

    test_ds: object
    history: dict
    seconds: float
    epochs_run: int


def fit(model: keras.Model, config: TrainConfig, splits: Splits, run_dir: str, verbose: int | str,
        extra_callbacks: list) -> Fitted:
    """Fit `model` (from compile_model: maybe a BatchSplitTrainer), resuming from the backup if any; a divergence
    (NaN loss) keeps the last good model and is a UsageError."""
    targets = reconstruction_outputs(config.model)
    train_ds = make_dataset(splits.x_train, splits.y_train, config.batch_size, training=True, seed=config.seed,
                            augment=config.data.augment, reconstruction_outputs=targets)
    test_ds = make_dataset(splits.x_test, splits.y_test, config.batch_size, training=False,
                           reconstruction_outputs=targets)
    callbacks = extra_callbacks + make_callbacks(config, splits, run_dir)
    start = time.perf_counter()
    fitted = model.fit(train_ds, steps_per_epoch=steps_per_epoch(train_ds, config), validation_data=test_ds,
                       epochs=config.epochs, callbacks=callbacks, shuffle=False, verbose=verbose)
    seconds = time.perf_counter() - start
    stopper = next(c for c in callbacks if isinstance(c, StopOnNaN))
    if stopper.diverged:
        kept = keep_last_good(formulation.unwrap(model), stopper.good_weights, stopper.good_epochs, run_dir)
        raise UsageError(f"{stopper.describe()}; {kept}; lower --lr "
                         f"(got {config.lr}) or the loss weights and rerun with --overwrite")
    history_path = layout.HISTORY.path(run_dir)
    history = read_history_csv(history_path) if os.path.isfile(history_path) else fitted.history
    return Fitted(test_ds, history, seconds, epochs_run=len(fitted.history.get("loss", [])))


def steps_per_epoch(train_ds, config: TrainConfig) -> int | None:
    """The training set's batches per epoch, told to `fit` so that each epoch makes one tf.data iterator.

    Without it, Keras (3.15) makes the next epoch's iterator at the end of each epoch, then discards it and
    makes another at the start of that epoch (tensorflow/tensorflow#67677, sent on to Keras): about 5 ms of
    the step's thread and a pipeline filled for nothing, per epoch. With it, the iterator made at the end
    of an epoch is the next epoch's, so its first batches are ready while the validation runs. The data are
    the same passes (each a fresh, seeded reshuffle of every image). None (Keras's default) where the
    number of batches is unknown, or under `multiworker`, whose workers each see a share of them."""
    batches = int(train_ds.cardinality())
    return batches if batches > 0 and config.strategy != "multiworker" else None


def export(predictor: keras.Model, config: TrainConfig, run_dir: str, faithful: dict | None) -> None:
    """The SavedModel, decoding each layer along the path training measured as faithful."""
    export_saved_model(predictor, config, layout.SAVED_MODEL.path(run_dir),
                       decode_paths=faithful["decode_paths"] if faithful else None)


def mark_finished(model: keras.Model, run_dir: str) -> None:
    """model.keras (of the model itself), written last: its presence marks a finished run; the backup goes."""
    with atomic_path(layout.MODEL.path(run_dir), suffix=".keras") as tmp:
        model.save(tmp)
    finish_run(run_dir)
