"""Performance flags, thread settings, strategies; multi-device training on CPU (slow: subprocesses)."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import REPO, free_ports

from keras_latent.config import ModelConfig, TrainConfig
from keras_latent.errors import UsageError
from keras_latent.model.builders import build_model
from keras_latent.runs import layout
from keras_latent.train import build_parser
from keras_latent.training import distribute
from keras_latent.training.fit import compile_model
from keras_latent.training.options import config_from_flags


def _config(*argv):
    return config_from_flags(build_parser().parse_args(list(argv)))


def _run(args, timeout=240, env=None):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, **(env or {})})


def test_performance_defaults_and_flags_reach_the_config():
    default = _config()
    assert (default.steps_per_execution, default.mixed_precision, default.strategy, default.calibrate) == \
        (32, False, "default", True)
    # the formulation is left to the calibration (training.calibration), unless a flag gives it
    assert (default.jit_compile, default.batch_split, default.intra_op_threads, default.inter_op_threads) == \
        (None, None, None, None)
    on = _config("--strategy", "mirrored", "--steps-per-execution", "4", "--jit-compile", "--mixed-precision")
    assert (on.strategy, on.steps_per_execution, on.jit_compile, on.mixed_precision) == ("mirrored", 4, True, True)
    off = _config("--steps-per-execution", "1", "--no-jit-compile", "--no-mixed-precision", "--no-sub-pixel-decoder",
                  "--batch-split", "2", "--intra-op-threads", "1", "--inter-op-threads", "2", "--no-calibrate")
    assert (off.steps_per_execution, off.jit_compile, off.mixed_precision, off.calibrate) == (1, False, False, False)
    assert (off.batch_split, off.intra_op_threads, off.inter_op_threads) == (2, 1, 2)
    assert default.model.sub_pixel_decoder and not off.model.sub_pixel_decoder


@pytest.mark.parametrize("argv, message", [
    (["--strategy", "horovod"], "--strategy must be one of default, mirrored, multiworker, got 'horovod'"),
    (["--steps-per-execution", "0"], "--steps-per-execution must be >= 1, got 0"),
    (["--jit-compile=yes"], "ignored explicit argument"),
    (["--batch-split", "0"], "--batch-split must be between 1 and --batch-size .32., got 0"),
    (["--batch-split", "2", "--strategy", "mirrored"], "--batch-split must be 1 under --strategy mirrored"),
    (["--intra-op-threads", "-1"], "--intra-op-threads must be >= 0, got -1"),
])
def test_bad_performance_flags_are_one_line_errors(argv, message):
    with pytest.raises(UsageError, match=message):
        _config(*argv)


def test_compile_runs_several_steps_per_call_except_under_a_strategy():
    model = compile_model(build_model(ModelConfig()), TrainConfig(steps_per_execution=8))
    assert model.steps_per_execution == 8
    assert distribute.steps_per_execution(8, "mirrored") == distribute.steps_per_execution(8, "multiworker") == 1


def test_threads_cannot_change_once_tensorflow_runs():
    _ = tf.constant(1.0) + 1.0  # the runtime is up
    current = (tf.config.threading.get_intra_op_parallelism_threads(),
               tf.config.threading.get_inter_op_parallelism_threads())
    assert distribute.configure_threads(*current)
    assert not distribute.configure_threads(current[0] + 1, current[1] + 1)
    assert tf.config.threading.get_intra_op_parallelism_threads() == current[0]
    with pytest.raises(UsageError, match="must be >= 0, got -1 and 0"):
        distribute.configure_threads(-1, 0)


@pytest.mark.slow
def test_threads_apply_in_a_fresh_process():
    code = ("from keras_latent.training import distribute; import tensorflow as tf; "
            "ok = distribute.configure_threads(1, 2); _ = tf.constant(1.0) + 1.0; "
            "print(ok, tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())")
    proc = _run([sys.executable, "-c", code], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-3:] == ["True", "1", "2"]


def test_mixed_precision_builds_bfloat16_layers_with_float32_weights_and_outputs():
    with distribute.model_scope(tf.distribute.get_strategy(), mixed_precision=True):
        model = build_model(ModelConfig())
    assert keras.config.dtype_policy().name == "float32"  # restored
    conv = model.get_layer("trunk").get_layer("conv1").layers[0]
    assert conv.dtype_policy.name == "mixed_bfloat16" and conv.kernel.dtype == "float32"
    images = np.zeros((2, 32, 32, 3), np.float32)
    activations = model.get_layer("trunk")(images)  # every block's, with layer decoders
    assert {keras.backend.standardize_dtype(a.dtype) for a in activations} == {"bfloat16"}  # bf16 compute
    outputs = model(images)
    assert {name: keras.backend.standardize_dtype(v.dtype) for name, v in outputs.items()} == \
        {"classifier": "float32", "reconstruction": "float32", "reconstruction_conv1": "float32"}


def test_multiworker_needs_a_valid_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UsageError, match="--strategy multiworker needs the TF_CONFIG environment variable"):
        distribute.make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UsageError, match="TF_CONFIG is not valid"):
        distribute.read_tf_config()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 2}}))
    with pytest.raises(UsageError, match="task worker:2 is not in its cluster"):
        distribute.read_tf_config()


def test_default_strategy_keeps_the_run_folder_and_the_model():
    strategy = distribute.make_strategy("default")
    model = build_model(ModelConfig())
    assert distribute.is_chief(strategy) and distribute.worker_run_dir(strategy, "runs/a") == "runs/a"
    assert distribute.local_model(model, strategy) is model


MIRRORED = r'''
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_latent.cli import configure_logging
from keras_latent.config import DataConfig, TrainConfig
from keras_latent.training.fit import train
configure_logging()  # the library logs its strategy line; show it as the command would
results = {}
for strategy in ("default", "mirrored"):
    keras.utils.set_random_seed(0)
    config = TrainConfig(data=DataConfig(dataset="sample", max_train_samples=512), epochs=3, batch_size=32,
                         snapshot_epochs=(), strategy=strategy)
    results[strategy] = train(config, sys.argv[1] + "/" + strategy, verbose=0)
print("RESULT " + json.dumps(results))
'''


@pytest.mark.slow
def test_mirrored_over_two_cpu_devices_matches_one_device(tmp_path):
    """Same seed, data and global batch: one device vs MirroredStrategy over 2 logical CPUs.

    Tolerance: per-epoch training loss within 0.5% (relative), test accuracy within 3 points,
    test reconstruction MSE within 1%. Only float summation order differs (and the last,
    uneven batch: 512 = 16 x 32, so none here).
    """
    proc = _run([sys.executable, "-c", MIRRORED, str(tmp_path)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MirroredStrategy, 2 replica(s) in sync" in proc.stdout
    results = json.loads(proc.stdout.split("RESULT ")[-1])
    one, two = results["default"], results["mirrored"]
    assert abs(one["test_accuracy"] - two["test_accuracy"]) <= 0.03
    assert two["test_reconstruction_mse"] == pytest.approx(one["test_reconstruction_mse"], rel=0.01)
    from keras_latent.runs.records import read_history_csv

    loss_one, loss_two = (read_history_csv(str(tmp_path / s / "history.csv"))["loss"] for s in ("default", "mirrored"))
    assert len(loss_one) == len(loss_two) == 3 and loss_two[-1] < loss_two[0]  # it trained
    np.testing.assert_allclose(loss_two, loss_one, rtol=0.005)


@pytest.mark.slow
def test_two_workers_on_localhost_train_one_model(tmp_path):
    """Two `--strategy multiworker` processes, started with *different* seeds, end with identical weights:
    variables start from the chief's values and every step applies the all-reduced gradient."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    out = tmp_path / "run"
    procs = []
    for index in (1, 0):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        args = [sys.executable, "-m", "keras_latent.train", "--strategy", "multiworker", "--dataset", "sample",
                "--max-train-samples", "256", "--epochs", "2", "--snapshot-epochs", "2", "--seed", str(index),
                "--out", str(out)]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                                      env={**os.environ, "TF_CONFIG": tf_config}))
    try:
        outputs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            p.kill()
    # on a failure, both workers' ends: the one that failed first is often the other one
    ends = "\n".join(f"--- worker {i} (exit {p.returncode}):\n{err[-2000:]}"
                     for i, p, (_, err) in zip((1, 0), procs, outputs))
    for p, (stdout, _) in zip(procs, outputs):
        assert p.returncode == 0, ends
        assert "MultiWorkerMirroredStrategy, 2 replicas in sync" in stdout
    # each worker's last line names the folder it wrote (worker 1 was started first)
    assert outputs[0][0].strip().splitlines()[-1].endswith(f"run folder: {out / 'worker-1'}")
    assert outputs[1][0].strip().splitlines()[-1].endswith(f"run folder: {out}")
    chief, worker = (keras.saving.load_model(layout.MODEL.path(str(path)), safe_mode=True)
                     for path in (out, out / "worker-1"))
    for a, b in zip(chief.get_weights(), worker.get_weights()):
        np.testing.assert_array_equal(a, b)
    metrics = json.loads((out / layout.METRICS.name).read_text())
    assert metrics["epochs"] == 2 and metrics["test_images"] == 1017  # the chief evaluated the whole test split
    assert (out / "reconstructions_epoch_002.png").is_file() and (out / layout.SAVED_MODEL.name).is_dir()
    assert json.loads((out / layout.CONFIG.name).read_text())["strategy"] == "multiworker"
