"""Training callbacks that write into the run folder (atomically)."""
from __future__ import annotations

import csv
import io
import os

import keras
import numpy as np

from keras_latent.files import atomic_write_text, save_figure
from keras_latent.pipeline import denormalize
from keras_latent.visualize import plot_reconstructions


def snapshot_path(run_dir: str, epoch: int) -> str:
    return os.path.join(run_dir, f"reconstructions_epoch_{epoch:03d}.png")


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
        save_figure(fig, snapshot_path(self.run_dir, epoch))
        if self.tensorboard_dir:
            import tensorflow as tf

            with tf.summary.create_file_writer(os.path.join(self.tensorboard_dir, "reconstructions")).as_default():
                tf.summary.image("reconstruction", recon, step=epoch, max_outputs=len(recon))

    def on_train_begin(self, logs=None):
        if 0 in self.epochs and not os.path.exists(snapshot_path(self.run_dir, 0)):
            self._snapshot(0)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.epochs:
            self._snapshot(epoch + 1)


def read_history_csv(path: str) -> dict[str, list[float]]:
    """history.csv -> {column: values}, without the epoch column."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in (rows[0].keys() if rows else []) if k != "epoch"]
    return {k: [float(r[k]) for r in rows] for k in keys}


class HistoryCsv(keras.callbacks.Callback):
    """Rewrite `history.csv` atomically after every epoch (one row per epoch, train and test columns).

    Rows already in the file (from an interrupted run being resumed) are kept and continued.
    """

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.rows: list[dict] = []

    def on_train_begin(self, logs=None):
        if os.path.isfile(self.path):
            with open(self.path, newline="", encoding="utf-8") as f:
                self.rows = list(csv.DictReader(f))

    def on_epoch_end(self, epoch, logs=None):
        self.rows = [r for r in self.rows if int(r["epoch"]) < epoch + 1]
        self.rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        keys = ["epoch"] + sorted({k for r in self.rows for k in r} - {"epoch"})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buffer.getvalue())
