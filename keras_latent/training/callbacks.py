"""Training callbacks that write into the run folder (atomically); names from `keras_latent.runs.layout`."""
from __future__ import annotations

import math
import os
import time

import keras
import numpy as np

from keras_latent.data.pipeline import denormalize
from keras_latent.errors import UsageError
from keras_latent.files import atomic_write_text, recover_directory, save_figure
from keras_latent.runs import layout
from keras_latent.runs.records import history_csv_text, read_csv
from keras_latent.training import patches
from keras_latent.training.plots import plot_reconstructions


class ReconstructionSnapshots(keras.callbacks.Callback):
    """Save originals over reconstructions of fixed test images at chosen epochs.

    Epoch 0 is the untrained model (written when training starts); epoch e is after e epochs.
    Each snapshot is a PNG in the run folder and an image in TensorBoard.
    """

    def __init__(self, images: np.ndarray, epochs: tuple[int, ...], run_dir: str, tensorboard_dir: str | None):
        super().__init__()
        self.images = images  # (N, H, W, 3) normalized to [-1, 1]
        self.epochs = set(epochs)
        self.run_dir = run_dir
        self.tensorboard_dir = tensorboard_dir

    def _snapshot(self, epoch: int) -> None:
        recon = np.asarray(self.model.predict_on_batch(self.images)["reconstruction"])
        originals, recon = denormalize(self.images), denormalize(recon)
        fig = plot_reconstructions(originals, recon, title=f"epoch {epoch}")
        save_figure(fig, layout.SNAPSHOT.path(self.run_dir, epoch=epoch))
        if self.tensorboard_dir:
            import tensorflow as tf

            with tf.summary.create_file_writer(os.path.join(self.tensorboard_dir, "reconstructions")).as_default():
                tf.summary.image("reconstruction", recon, step=epoch, max_outputs=len(recon))

    def on_train_begin(self, logs=None):
        if 0 in self.epochs and not os.path.exists(layout.SNAPSHOT.path(self.run_dir, epoch=0)):
            self._snapshot(0)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.epochs and not nonfinite_losses(logs) and not nonfinite_weights(self.model):
            self._snapshot(epoch + 1)


class HistoryCsv(keras.callbacks.Callback):
    """Rewrite `history.csv` atomically after every epoch (one row per epoch, train and test columns).

    Rows already in the file (from an interrupted run being resumed) are kept and continued.
    """

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.rows: list[dict] = []

    def on_train_begin(self, logs=None):
        self.rows = read_csv(self.path, layout.HISTORY) or []  # checked: a resumed run's earlier epochs

    def on_epoch_end(self, epoch, logs=None):
        self.rows = [r for r in self.rows if int(r["epoch"]) < epoch + 1]
        self.rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        atomic_write_text(self.path, history_csv_text(self.rows))


def nonfinite_losses(logs: dict | None) -> list[str]:
    """Names of the loss entries in Keras `logs` that are NaN or infinite, e.g. ["reconstruction_loss"]."""
    return [k for k, v in (logs or {}).items() if k.endswith("loss") and not math.isfinite(float(v))]


def nonfinite_weights(model: keras.Model) -> list[str]:
    """Paths of the model's variables that hold a NaN or infinity, e.g. ["trunk/conv1/kernel"].

    Losses alone can miss a divergence: whether a NaN weight reaches a loss depends on the CPU kernels.
    TensorFlow's graph fuses Conv2D + ReLU, and the fused oneDNN kernel (x86) turns a NaN into 0, so a
    trunk full of NaNs can still give a finite cross-entropy (ln 10), where unfused ReLU keeps the NaN.
    """
    return [v.path for v in model.weights if not np.isfinite(np.asarray(v)).all()]


class StopOnNaN(keras.callbacks.Callback):
    """Stop training at the first NaN or infinite loss (or, at an epoch's end, weight) and remember the last
    good weights.

    Unlike `keras.callbacks.TerminateOnNaN` it records which epoch (1-based) and which output's
    loss went bad (`diverged`), and keeps the weights from the start of that epoch
    (`good_weights`, after `good_epochs` finished epochs) so the caller can save them. Which losses are
    already NaN when it looks varies with the machine (see `nonfinite_weights`); the epoch does not.
    """

    def __init__(self):
        super().__init__()
        self.diverged: tuple[int, dict[str, float]] | None = None  # (epoch, {bad loss name: value})
        self.good_weights: list[np.ndarray] | None = None
        self.good_epochs = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.good_weights, self.good_epochs = self.model.get_weights(), epoch

    def _check(self, logs) -> None:
        bad = nonfinite_losses(logs)
        if bad and self.diverged is None:
            outputs = [k for k in bad if k not in ("loss", "val_loss")]
            single = list(self.model.output) if isinstance(self.model.output, dict) else []
            label = f" of the {single[0]} output" if len(single) == 1 and not outputs else ""
            self.diverged = (self.good_epochs + 1, {k + label: float(logs[k]) for k in outputs or bad})
        if bad:
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs)
        if self.diverged is None:
            weights = nonfinite_weights(self.model)
            if weights:
                shown = ", ".join(weights[:3]) + (", ..." if len(weights) > 3 else "")
                self.diverged = (self.good_epochs + 1, {f"the weights {shown}": "not finite (NaN or inf)"})
                self.model.stop_training = True

    def describe(self) -> str:
        """One line: the epoch and which output's loss (or which weights) went NaN or infinite."""
        epoch, losses = self.diverged
        return f"training diverged in epoch {epoch}: " + ", ".join(f"{k} is {v}" for k, v in losses.items())


BACKUP_INTERVAL_S = 10.0  # at most this much finished training is lost to a kill (plus the epoch in flight)


class AtomicBackupAndRestore(patches.AtomicBackupSave, keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose backup survives a kill at any moment, written when it is worth it.

    `patches.AtomicBackupSave` swaps the weights and the epoch count in as one folder. An epoch whose
    losses are NaN or infinite is not backed up, so the backup stays the last good one. The backup
    is left in place when training ends (pass delete_checkpoint=False); the caller removes it once
    the finished model is safely written.

    A backup costs ~50-80 ms (Keras's `save_weights`), 8% of an epoch of the bundled sample. So it is
    written after the first epoch, after the last one (or one that stops training), and otherwise only
    once `min_interval_s` have passed since the last backup, the way PyTorch Lightning's
    `ModelCheckpoint(train_time_interval=...)` does: epochs longer than that (full CIFAR-10) are each
    backed up; a kill loses at most `min_interval_s` of finished epochs, which the rerun trains again.
    """

    def __init__(self, backup_dir: str, min_interval_s: float | None = None, clock=time.monotonic, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.min_interval_s = BACKUP_INTERVAL_S if min_interval_s is None else min_interval_s
        self.clock = clock  # seconds, monotonic; a test passes a fake one
        self._last_backup_at = None  # clock() at the last backup this process wrote

    def on_train_begin(self, logs=None):
        recover_directory(self.backup_dir)
        self._last_backup_at = None
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, KeyError, TypeError) as err:  # h5py and Keras' weight-loading errors
            path = layout.BACKUP_WEIGHTS.path(self.backup_dir)
            raise UsageError(layout.damaged(layout.BACKUP_WEIGHTS, path, f"cannot be restored ({type(err).__name__}: "
                                            f"{(str(err).splitlines() or [''])[0]})")) from None

    def due(self, epoch: int) -> bool:
        """Whether the end of `epoch` (0-based) is backed up: the first and last epochs of this process, an
        epoch that stops training, and any epoch `min_interval_s` or more after the last backup."""
        last = epoch + 1 >= self.params.get("epochs", epoch + 1) or self.model.stop_training
        return (self._last_backup_at is None or last
                or self.clock() - self._last_backup_at >= self.min_interval_s)

    def on_epoch_end(self, epoch, logs=None):
        if not self.due(epoch) or nonfinite_losses(logs) or nonfinite_weights(self.model):
            return
        super().on_epoch_end(epoch, logs)
        self._last_backup_at = self.clock()
