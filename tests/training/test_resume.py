"""Crash-safe training: SIGKILL and resume, finished/interrupted/overwrite folders, torn writes,
NaN stop keeping the last good model, unwritable or full --out."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from helpers import REPO, TINY_ARGS, run_main, tiny_config

from keras_latent import files
from keras_latent.data.pipeline import normalize
from keras_latent.errors import UsageError
from keras_latent.runs import layout
from keras_latent.train import main
from keras_latent.training import fit as training


def history_rows(run_dir) -> list[dict]:
    with open(layout.HISTORY.path(run_dir), newline="") as f:
        return list(csv.DictReader(f))


def backup_epoch(run_dir) -> int:
    with open(layout.BACKUP_METADATA.path(layout.BACKUP.path(run_dir))) as f:
        return json.load(f)["epoch"]


def visible_files(run_dir) -> list[str]:
    return sorted(os.listdir(run_dir))


# The train command's own config and library call, with a callback that holds the process inside epoch 2, after
# its steps ran and before the epoch is recorded (history.csv, backup/): the worst moment for a kill. The test
# kills it there, so where the kill lands depends on no clock and no scheduler.
PAUSED_IN_EPOCH_2 = """
import sys, time, keras
from keras_latent import train as command
from keras_latent.training.fit import train
from keras_latent.training.options import config_from_flags

class PauseInEpoch2(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1:
            print("inside epoch 2", flush=True)
            time.sleep(600)

args = command.build_parser().parse_args(sys.argv[1:])
train(config_from_flags(args), args.out, verbose=0, callbacks=[PauseInEpoch2()])
"""


@pytest.mark.slow
def test_sigkill_mid_epoch_then_the_same_command_resumes(tmp_path, sample_splits):
    out = str(tmp_path / "run")
    flags = ["--dataset", "sample", "--max-train-samples", "512", "--epochs", "3", "--snapshot-epochs", "0,1,2,3",
             "--out", out]
    cmd = [sys.executable, "-m", "keras_latent.train", *flags]
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_IN_EPOCH_2, *flags], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert line == "inside epoch 2", proc.stderr.read()[-2000:]
    killed_at = backup_epoch(out)
    assert proc.returncode == -signal.SIGKILL and killed_at == 1
    assert not os.path.exists(layout.MODEL.path(out))
    before = history_rows(out)[:killed_at]

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming the interrupted run in {out} after epoch {killed_at} of 3" in rerun.stdout
    epochs_run = [line.split()[1] for line in rerun.stdout.splitlines() if line.startswith("Epoch ")]
    assert epochs_run == [f"{e}/3" for e in range(killed_at + 1, 4)]
    rows = history_rows(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert rows[:killed_at] == before  # the epochs before the kill are kept, not retrained
    metrics = json.load(open(layout.METRICS.path(out)))
    assert metrics["epochs"] == 3 and metrics["resumed_from_epoch"] == killed_at
    finished = (layout.CLASSIFICATION_REPORT, layout.CONFIG, layout.CONFUSION_MATRIX, layout.CURVES, layout.HISTORY,
                layout.METRICS, layout.MODEL, layout.MODEL_SUMMARY, layout.SAVED_MODEL, layout.TENSORBOARD)
    assert visible_files(out) == sorted([e.name for e in finished]
                                        + [os.path.basename(layout.SNAPSHOT.path(out, epoch=e)) for e in range(4)])
    model = keras.saving.load_model(layout.MODEL.path(out), safe_mode=True)
    probs = model.predict(np.asarray(normalize(sample_splits.x_test)), verbose=0)["classifier"]
    assert np.mean(probs.argmax(1) == sample_splits.y_test) == pytest.approx(metrics["test_accuracy"], abs=1e-9)


def test_a_finished_run_is_not_retrained_without_overwrite(copy_run, capsys):
    trained_run = copy_run()
    before = {name: os.path.getmtime(os.path.join(trained_run, name)) for name in os.listdir(trained_run)}
    code, _, err = run_main(main, TINY_ARGS + ["--out", trained_run], capsys)
    err = err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "already holds a finished run (model.keras)" in err[0]
    assert "pass --overwrite" in err[0]
    assert before == {name: os.path.getmtime(os.path.join(trained_run, name)) for name in os.listdir(trained_run)}


@pytest.mark.slow
def test_overwrite_starts_over_and_clears_the_old_run(copy_run, capsys):
    run = copy_run()
    stale = os.path.join(run, "reconstructions_epoch_020.png")  # from an earlier, longer run
    shutil.copy(os.path.join(run, "reconstructions_epoch_001.png"), stale)
    open(layout.TFLITE.path(run), "wb").close()  # an export of the old model
    os.makedirs(os.path.join(run, "analysis"))  # another tool's output stays
    code, _, _ = run_main(main, TINY_ARGS + ["--out", run, "--overwrite"])
    assert code == 0
    assert not os.path.exists(stale) and not os.path.exists(layout.TFLITE.path(run))
    assert os.path.isdir(os.path.join(run, "analysis"))
    assert [int(r["epoch"]) for r in history_rows(run)] == [1]
    assert json.load(open(layout.METRICS.path(run)))["resumed_from_epoch"] == 0
    assert not os.path.exists(layout.BACKUP.path(run))


def interrupted_copy(copy_run) -> str:
    """A finished run turned into one killed after its last epoch's backup: no model.keras."""
    run = copy_run()
    backup = layout.BACKUP.path(run)
    os.makedirs(backup)
    keras.saving.load_model(layout.MODEL.path(run), safe_mode=True).save_weights(layout.BACKUP_WEIGHTS.path(backup))
    os.remove(layout.MODEL.path(run))
    with open(layout.BACKUP_METADATA.path(backup), "w") as f:
        json.dump({"epoch": 1, "batch": 0}, f)
    return run


def test_an_interrupted_run_with_another_config_gets_one_line(copy_run, capsys):
    run = interrupted_copy(copy_run)
    before = visible_files(run)
    saved_lr = json.load(open(layout.CONFIG.path(run)))["lr"]
    code, _, err = run_main(main, TINY_ARGS + ["--lr", str(saved_lr * 10), "--out", run], capsys)
    err = err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert (f"holds an interrupted run (stopped after epoch 1) with a different config "
            f"(lr: {saved_lr!r} -> {saved_lr * 10!r})") in err[0]
    assert "pass --overwrite to start over" in err[0]
    assert visible_files(run) == before  # nothing deleted


@pytest.mark.slow
def test_a_crash_while_saving_the_final_files_resumes_without_retraining(tmp_path, monkeypatch):
    """Killed (here: an exception) after the last epoch, before model.keras: the rerun trains 0 epochs."""
    run = str(tmp_path / "run")
    config = tiny_config(epochs=2, snapshot_epochs=(0, 2))

    def crash(*args, **kwargs):
        raise RuntimeError("killed while exporting")

    monkeypatch.setattr(training, "export_saved_model", crash)
    with pytest.raises(RuntimeError, match="killed while exporting"):
        training.train(config, run, verbose=0)
    monkeypatch.undo()
    assert backup_epoch(run) == 2 and not os.path.exists(layout.MODEL.path(run))
    rows = history_rows(run)
    metrics = training.train(config, run, verbose=0)
    assert metrics["epochs"] == 2 and metrics["resumed_from_epoch"] == 2
    assert history_rows(run) == rows
    assert os.path.isfile(layout.MODEL.path(run)) and not os.path.exists(layout.BACKUP.path(run))


@pytest.mark.slow
def test_a_full_disk_mid_run_keeps_the_previous_files_and_resumes(tmp_path, monkeypatch):
    """ENOSPC injected into the writer of epoch 2's history.csv: one line, epoch 1's file intact, resumable."""
    run = str(tmp_path / "run")
    config = tiny_config(epochs=2, snapshot_epochs=(0,))
    real_replace, writes = os.replace, []

    def replace(src, dst):
        if dst.endswith("history.csv"):
            writes.append(dst)
            if len(writes) == 2:
                raise OSError(28, "No space left on device", dst)
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(UsageError, match=r"failed: No space left on device \(.*history.csv\); files written before"):
        training.train(config, run, verbose=0)
    monkeypatch.undo()
    assert [int(r["epoch"]) for r in history_rows(run)] == [1] and backup_epoch(run) == 1
    assert not [n for n in os.listdir(run) if n.startswith(".")]  # no torn temp file left behind
    metrics = training.train(config, run, verbose=0)
    assert metrics["resumed_from_epoch"] == 1 and [int(r["epoch"]) for r in history_rows(run)] == [1, 2]


class PoisonDecoder(keras.callbacks.Callback):
    """At the start of epoch 2, put a NaN into the decoder: the reconstruction loss goes NaN first."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            kernel = self.model.get_layer("decoder").get_layer("deconv1").get_layer("deconv1_conv").kernel
            kernel.assign(np.full(kernel.shape, np.nan, np.float32))


@pytest.mark.slow
def test_a_nan_loss_stops_with_one_line_and_keeps_the_last_good_model(tmp_path, monkeypatch):
    run = str(tmp_path / "run")
    config = tiny_config(epochs=3, snapshot_epochs=(0,))
    real_make_callbacks = training.make_callbacks
    monkeypatch.setattr(training, "make_callbacks", lambda *a: real_make_callbacks(*a) + [PoisonDecoder()])
    with pytest.raises(UsageError) as error:
        training.train(config, run, verbose=0)
    message = str(error.value)
    # What holds on every machine: the epoch, and the reconstruction's loss (the poisoned decoder feeds it
    # directly). Whether the classifier's loss is NaN too depends on the CPU kernels: the NaN gradient reaches
    # the trunk, and a fused Conv2D + ReLU (oneDNN, x86) turns NaN into 0 where plain ReLU keeps it (see
    # callbacks.nonfinite_weights). So it is neither required nor ruled out.
    assert message.startswith("training diverged in epoch 2: ") and "\n" not in message, message
    assert "reconstruction_loss is nan" in message.split(";")[0]
    assert f"the model after epoch 1 is kept in {os.path.join(run, 'last_good.keras')}" in message
    assert not os.path.exists(layout.MODEL.path(run)) and backup_epoch(run) == 1
    good = keras.saving.load_model(layout.LAST_GOOD.path(run), safe_mode=True)
    assert all(np.isfinite(w).all() for w in good.get_weights())
    assert history_rows(run)[0]["loss"] != "nan" and history_rows(run)[1]["reconstruction_loss"] == "nan"
    monkeypatch.undo()
    metrics = training.train(config, run, verbose=0)  # the same command again resumes from the good epoch
    assert metrics["resumed_from_epoch"] == 1 and [int(r["epoch"]) for r in history_rows(run)] == [1, 2, 3]
    assert not os.path.exists(layout.LAST_GOOD.path(run))


@pytest.mark.slow
def test_a_diverging_learning_rate_stops_the_cli_with_one_line(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "keras_latent.train", *TINY_ARGS, "--epochs", "2", "--lr", "1e6",
                           "--out", str(out)], env={**os.environ, "PYTHONPATH": REPO}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert errors[0].startswith("error: training diverged in epoch 1: classifier_loss is nan")
    assert "lower --lr (got 1000000.0)" in errors[0]
    assert not (out / layout.MODEL.name).exists()


def test_an_unwritable_out_is_one_line_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = run_main(main, TINY_ARGS + ["--out", str(blocker / "run")], capsys)
    err = err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not writable: Not a directory" in err[0], err


def test_too_little_free_space_is_one_line_before_training(tmp_path, capsys, monkeypatch):
    from keras_latent.runs import lifecycle as run_folder

    monkeypatch.setattr(run_folder.shutil, "disk_usage", lambda path: SimpleNamespace(total=10**9, free=10**6))
    run = tmp_path / "run"
    code, _, err = run_main(main, TINY_ARGS + ["--out", str(run)], capsys)
    err = err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "has 1.0 MB free but this run needs about" in err[0] and "choose another --out" in err[0]
    assert not os.path.exists(run)  # nothing written


def test_nan_stop_names_the_only_output_of_a_classifier_only_model():
    from keras_latent.config import ModelConfig, TrainConfig
    from keras_latent.model.builders import build_model
    from keras_latent.training.callbacks import StopOnNaN

    config = TrainConfig(model=ModelConfig(decoder=False), lr=1e9)
    model = training.compile_model(build_model(config.model), config)
    stopper = StopOnNaN()
    images = np.random.default_rng(0).uniform(0, 200, (64, 32, 32, 3)).astype(np.float32)
    model.fit(images, {"classifier": np.arange(64) % 10}, epochs=3, verbose=0, callbacks=[stopper])
    assert stopper.describe() in ("training diverged in epoch 1: loss of the classifier output is nan",
                                  "training diverged in epoch 1: loss of the classifier output is inf")
    assert stopper.good_epochs == 0  # nothing good to keep


class PoisonTrunk(keras.callbacks.Callback):
    """At the start of epoch 2, put a NaN into conv1: every output is NaN from then on."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            kernel = self.model.get_layer("trunk").get_layer("conv1").get_layer("conv1_conv").kernel
            kernel.assign(np.full(kernel.shape, np.nan, np.float32))


def test_nan_weights_stop_training_even_when_the_losses_hide_them():
    """NaN trunk weights: where the fused Conv2D + ReLU turns NaN into 0 (oneDNN on x86), the classifier sees
    zeros and its loss stays finite (ln 10); elsewhere it is NaN. StopOnNaN stops in epoch 2 either way."""
    from keras_latent.config import ModelConfig, TrainConfig
    from keras_latent.model.builders import build_model
    from keras_latent.training.callbacks import StopOnNaN

    config = TrainConfig(model=ModelConfig(decoder=False))
    model = training.compile_model(build_model(config.model), config)
    stopper = StopOnNaN()
    images = np.random.default_rng(0).uniform(-1, 1, (64, 32, 32, 3)).astype(np.float32)
    history = model.fit(images, {"classifier": np.arange(64) % 10}, epochs=4, verbose=0,
                        callbacks=[stopper, PoisonTrunk()])
    assert stopper.describe().startswith("training diverged in epoch 2: "), stopper.describe()
    assert len(history.history["loss"]) == 2 and stopper.good_epochs == 1
    assert all(np.isfinite(w).all() for w in stopper.good_weights)
