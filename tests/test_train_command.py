"""train.py / training.py: a real CLI run writes every file; loss weights reach compile; bad input."""
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import TINY_ARGS, run_main

from keras_latent.config import DEFAULT_LAYER_RECON_WEIGHT, ModelConfig, TrainConfig
from keras_latent.model.builders import build_model
from keras_latent.runs import layout
from keras_latent.train import main
from keras_latent.training.fit import compile_model

# Loads RUN/saved_model and runs serving_default in a process where keras and keras_latent cannot be imported:
# if loading needed either, the import would raise and the process fail.
ISOLATED_SCRIPT = r'''
import sys
sys.modules["keras"] = sys.modules["keras_latent"] = None
import numpy as np, tensorflow as tf
saved_model, images, out = sys.argv[1:]
serve = tf.saved_model.load(saved_model).signatures["serving_default"]
np.save(out, serve(images=tf.constant(np.load(images)))["probabilities"].numpy())
'''
RUN_FILES = [e.name for e in (layout.CONFIG, layout.MODEL, layout.HISTORY, layout.CURVES, layout.CLASSIFICATION_REPORT,
                               layout.CONFUSION_MATRIX, layout.METRICS, layout.MODEL_SUMMARY, layout.TENSORBOARD,
                               layout.SAVED_MODEL)]
RUN_FILES += [layout.SNAPSHOT.name.format(epoch=e) for e in (0, 1)]


def test_loss_weights_reach_compile_and_the_loss(sample_splits):
    from keras_latent.data.pipeline import make_dataset
    from keras_latent.model.builders import reconstruction_outputs

    config = TrainConfig(ce_weight=0.5, recon_weight=3.0, layer_recon_weights=(0.25,))
    model = compile_model(build_model(config.model), config)
    assert model.get_compile_config()["loss_weights"] == {"classifier": 0.5, "reconstruction": 3.0,
                                                          "reconstruction_conv1": 0.25}
    ds = make_dataset(sample_splits.x_test[:64], sample_splits.y_test[:64], 64, training=False,
                      reconstruction_outputs=reconstruction_outputs(config.model))
    result = model.evaluate(ds, return_dict=True, verbose=0)
    expected = (0.5 * result["classifier_loss"] + 3.0 * result["reconstruction_loss"]
                + 0.25 * result["reconstruction_conv1_loss"])
    assert result["loss"] == pytest.approx(expected, rel=1e-4)
    default = compile_model(build_model(ModelConfig()), TrainConfig())  # None: the default weight per layer
    assert default.get_compile_config()["loss_weights"]["reconstruction_conv1"] == DEFAULT_LAYER_RECON_WEIGHT


@pytest.mark.slow
def test_cli_run_writes_every_file(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "keras_latent.train", "--dataset", "sample", "--max-train-samples",
                           "300", "--epochs", "1", "--snapshot-epochs", "0,1", "--out", str(out),
                           "--batch-split", "2", "--intra-op-threads", "1", "--inter-op-threads", "2",
                           "--no-jit-compile"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(RUN_FILES) == sorted(f for f in os.listdir(out) if not f.startswith("."))
    assert "test accuracy" in proc.stdout and str(out) in proc.stdout
    # explicit formulation flags: printed in one line, applied to this fresh process, recorded
    assert "formulation: graph (oneDNN), batch split 2, threads 1/2 (from flags)" in proc.stdout.splitlines()
    metrics = json.loads((out / layout.METRICS.name).read_text())
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["train_images"] == 300 and metrics["epochs"] == 1
    assert set(metrics["per_class_accuracy"]) >= {"airplane", "truck"}
    history = (out / layout.HISTORY.name).read_text().splitlines()
    assert len(history) == 2 and "val_classifier_accuracy" in history[0] and "reconstruction_loss" in history[0]
    report = (out / layout.CLASSIFICATION_REPORT.name).read_text()
    assert "precision" in report and "per-class accuracy" in report
    config = json.loads((out / layout.CONFIG.name).read_text())
    assert config["data"]["dataset"] == "sample" and len(config["data"]["class_names"]) == 10
    assert (config["batch_split"], config["intra_op_threads"], config["inter_op_threads"], config["jit_compile"],
            config["formulation_source"]) == (2, 1, 2, False, "flags")


# Runs `python -m keras_latent.train ARGS` (runpy, as -m does) and says at exit whether KerasTuner, scikit-learn
# and SciPy were imported.
WRAPPED_TRAIN = r'''
import atexit, runpy, sys
atexit.register(lambda: [print(f"{name} imported:", name in sys.modules)
                          for name in ("keras_tuner", "sklearn", "scipy")])
sys.argv = ["keras_latent.train", *sys.argv[1:]]
runpy.run_module("keras_latent.train", run_name="__main__", alter_sys=True)
'''
TF_LOG_LINE = re.compile(r"^[IWE]\d{4} |^WARNING: All log messages before absl")  # TensorFlow's C++ (absl) lines


def _newcomer_env() -> dict:
    """This environment without the TensorFlow log level the suite's own import of keras_latent set."""
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


@pytest.mark.slow
def test_train_prints_no_tensorflow_start_up_line_and_does_not_import_keras_tuner_or_sklearn(tmp_path):
    """What a newcomer sees: no CUDA or cuInit line (tensorflow-cpu, requirements.txt), no TensorFlow C++ start-up
    line; and plain training never loads KerasTuner (its patches live with tuning), nor scikit-learn and SciPy
    (70 MB of the run's peak memory: the evaluation's figures are computed without them)."""
    proc = subprocess.run([sys.executable, "-c", WRAPPED_TRAIN, *TINY_ARGS, "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=600, env=_newcomer_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert [line for line in lines if re.search("cuda|cuinit", line, re.IGNORECASE)] == []
    assert [line for line in lines if TF_LOG_LINE.search(line)] == []
    assert {"keras_tuner imported: False", "sklearn imported: False", "scipy imported: False"} <= set(
        proc.stdout.splitlines()), proc.stdout


def test_a_real_error_still_reaches_stderr(tmp_path):
    """The quiet start-up hides no error: a bad flag is still its one `error:` line on stderr, exit 2."""
    proc = subprocess.run([sys.executable, "-m", "keras_latent.train", "--no-such-flag", "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=120, env=_newcomer_env())
    assert proc.returncode == 2
    assert [line for line in proc.stderr.splitlines() if line.startswith("error: ")] == [
        "error: unrecognized arguments: --no-such-flag (see python -m keras_latent.train --help)"]


def test_model_keras_is_the_trained_model(trained_run, sample_splits):
    """model.keras reloads (safe mode) and reproduces the run's own test accuracy."""
    from keras_latent.data.pipeline import normalize

    model = keras.saving.load_model(layout.MODEL.path(trained_run), safe_mode=True)
    probs = model.predict(np.asarray(normalize(sample_splits.x_test)), verbose=0)["classifier"]
    metrics = json.loads(open(layout.METRICS.path(trained_run)).read())
    assert np.mean(probs.argmax(1) == sample_splits.y_test) == pytest.approx(metrics["test_accuracy"], abs=1e-9)


@pytest.mark.slow
def test_saved_model_loads_without_the_package(trained_run, sample_splits, tmp_path):
    """A process that cannot import keras or keras_latent loads saved_model/ and matches model.keras."""
    from keras_latent.data.pipeline import normalize

    np.save(tmp_path / "x.npy", sample_splits.x_test[:8])
    expected = keras.saving.load_model(layout.MODEL.path(trained_run), safe_mode=True)(
        np.asarray(normalize(sample_splits.x_test[:8])))["classifier"]
    args = [layout.SAVED_MODEL.path(trained_run), str(tmp_path / "x.npy"), str(tmp_path / "probs.npy")]
    proc = subprocess.run([sys.executable, "-I", "-c", ISOLATED_SCRIPT, *args], capture_output=True, text=True,
                          timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    probs = np.load(tmp_path / "probs.npy")
    assert probs.dtype == np.float32 and probs.shape == tuple(expected.shape) == (8, 10)
    np.testing.assert_allclose(probs, expected, atol=1e-5)


@pytest.mark.parametrize("argv,message", [
    (["--dataset", "/no/such/folder"], "neither a known name nor an existing path"),
    (["--dataset", "imagenet"], "allowed: auto, cifar10, sample"),
    (["--epochs", "-1"], "--epochs must be >= 1, got -1"),
    (["--filters", "0"], "--filters must be positive integers, got 0"),
    (["--filters", "a,b"], "expected comma-separated integers"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_bad_input_gets_one_line_and_exit_2(argv, message, tmp_path, capsys):
    code, _, err = run_main(main, argv + ["--out", str(tmp_path / "run")], capsys)
    assert code == 2
    err = err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not os.path.exists(layout.MODEL.path(str(tmp_path / "run")))


@pytest.mark.slow
def test_same_seed_same_numbers(tmp_path):
    from helpers import tiny_config

    from keras_latent.training.fit import train

    runs = []
    for name in ("a", "b"):
        keras.utils.set_random_seed(7)
        train(tiny_config(seed=7, snapshot_epochs=()), str(tmp_path / name), verbose=0)
        runs.append(open(layout.HISTORY.path(str(tmp_path / name))).read())
    assert runs[0] == runs[1]


def test_classifier_only_baseline(classifier_only_run):
    """Without decoder: no reconstruction metric, loss or snapshots (the run asked for snapshots at epochs 0, 1)."""
    with open(layout.CONFIG.path(classifier_only_run)) as f:
        assert json.load(f)["snapshot_epochs"] == [0, 1]
    with open(layout.METRICS.path(classifier_only_run)) as f:
        metrics = json.load(f)
    assert "test_reconstruction_mse" not in metrics and metrics["test_accuracy"] > 0
    files = set(os.listdir(classifier_only_run))
    assert {e.name for e in (layout.MODEL, layout.METRICS, layout.CURVES, layout.SAVED_MODEL)} <= files
    assert layout.SNAPSHOT.glob(classifier_only_run) == []
    with open(layout.HISTORY.path(classifier_only_run)) as f:
        assert "reconstruction_loss" not in f.read()


def test_finished_run_is_not_retrained_by_accident(trained_run, capsys):
    code, _, err = run_main(main, ["--dataset", "sample", "--out", trained_run], capsys)
    err = err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--overwrite" in err[0]


@pytest.mark.parametrize("argv", [["--epochs", "-1"], ["--dataset", "/no/such/folder"], ["--padding", "full"]])
def test_bad_flag_in_a_real_process_prints_exactly_one_line(argv):
    """Flags and paths are checked before TensorFlow loads, so its start-up log cannot crowd the error."""
    proc = subprocess.run([sys.executable, "-m", "keras_latent.train", *argv], capture_output=True, text=True,
                          timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
