"""The run-folder callbacks: when the backup is written (throttled by a clock, first and last epochs always)."""
import json
import os

import keras
import numpy as np
import pytest
from helpers import spy_backup_saves, tiny_classifier, tiny_config

from keras_latent.runs import layout
from keras_latent.training import callbacks as run_callbacks
from keras_latent.training import fit as training


class FakeClock:
    """A monotonic clock that a callback moves on by `step_s` at every epoch's end."""

    def __init__(self, step_s: float):
        self.now, self.step_s = 0.0, step_s

    def __call__(self) -> float:
        return self.now


class AdvanceClock(keras.callbacks.Callback):
    def __init__(self, clock: FakeClock, stop_after: int | None = None):
        super().__init__()
        self.clock, self.stop_after = clock, stop_after

    def on_epoch_end(self, epoch, logs=None):
        self.clock.now += self.clock.step_s
        if self.stop_after == epoch + 1:
            self.model.stop_training = True


def _backed_up_epochs(tmp_path, monkeypatch, epochs: int, step_s: float, stop_after: int | None = None) -> list:
    saved = spy_backup_saves(monkeypatch)
    clock = FakeClock(step_s)
    backup = str(tmp_path / "backup")
    x, y = np.random.default_rng(0).normal(size=(16, 4)).astype("float32"), np.arange(16) % 2
    tiny_classifier().fit(x, y, epochs=epochs, batch_size=8, verbose=0, callbacks=[
        AdvanceClock(clock, stop_after),
        run_callbacks.AtomicBackupAndRestore(backup, min_interval_s=10.0, clock=clock, delete_checkpoint=False)])
    assert json.load(open(os.path.join(backup, "training_metadata.json")))["epoch"] == saved[-1]
    return saved


def test_backups_come_once_per_interval_plus_the_first_and_the_last_epoch(tmp_path, monkeypatch):
    # epochs end at 4, 8, 12, ... s: backed up after 1 (first), 4 (12 s after it), 7 (last)
    assert _backed_up_epochs(tmp_path, monkeypatch, epochs=7, step_s=4.0) == [1, 4, 7]


def test_epochs_longer_than_the_interval_are_each_backed_up(tmp_path, monkeypatch):
    assert _backed_up_epochs(tmp_path, monkeypatch, epochs=4, step_s=10.0) == [1, 2, 3, 4]


def test_an_epoch_that_stops_training_is_backed_up(tmp_path, monkeypatch):
    assert _backed_up_epochs(tmp_path, monkeypatch, epochs=7, step_s=1.0, stop_after=3) == [1, 3]


class CrashInEpoch(keras.callbacks.Callback):
    """Raise at the start of epoch `epoch` (1-based): a kill after the earlier epochs were recorded."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise RuntimeError("killed")


@pytest.mark.slow
def test_a_kill_between_backups_resumes_from_the_last_backup_and_trains_the_rest_again(tmp_path, monkeypatch):
    """Backups only after epochs 1 and the last (an endless interval); killed in epoch 3: history.csv has two
    rows, the backup one epoch. The rerun keeps epoch 1's row, trains epochs 2-3 again (a new process's shuffle
    order, as after any resume) and ends with one row per epoch."""
    run = str(tmp_path / "run")
    config = tiny_config(epochs=3, snapshot_epochs=(0,))
    monkeypatch.setattr(run_callbacks, "BACKUP_INTERVAL_S", float("inf"))
    with pytest.raises(RuntimeError, match="killed"):
        training.train(config, run, verbose=0, callbacks=[CrashInEpoch(3)])
    rows = list(open(layout.HISTORY.path(run)))[1:]
    with open(layout.BACKUP_METADATA.path(layout.BACKUP.path(run))) as f:
        assert len(rows) == 2 and json.load(f)["epoch"] == 1
    metrics = training.train(config, run, verbose=0)
    assert metrics["resumed_from_epoch"] == 1 and metrics["epochs"] == 3
    rerun_rows = list(open(layout.HISTORY.path(run)))[1:]
    assert [r.split(",")[0] for r in rerun_rows] == ["1", "2", "3"] and rerun_rows[0] == rows[0]
