"""Helpers shared by the tests (fixtures live in conftest.py): tiny configs and runs, in-process command
calls, folder copies and free ports. Imported as `helpers` (pyproject.toml puts tests/ on the path)."""
import io
import os
import pickle
import random
import shutil
import socket

import keras
import pytest

from keras_latent.config import DataConfig, ModelConfig, TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository root


# The CLI spelling of tiny_config(): `python -m keras_latent.train` with these flags makes the same run.
TINY_ARGS = ["--dataset", "sample", "--max-train-samples", "256", "--epochs", "1", "--snapshot-epochs", "0,1"]


def tiny_config(**overrides) -> TrainConfig:
    """A 1-epoch run on 256 sample images: seconds on 2 cores."""
    values = dict(data=DataConfig(dataset="sample", max_train_samples=256), model=ModelConfig(),
                  epochs=1, batch_size=32, snapshot_epochs=(0, 1))
    values.update(overrides)
    return TrainConfig(**values)


def tiny_study_config(seeds=(0, 1)):
    """The study's two variants (classifier-only, two-output) as 1-epoch runs on 128 sample images."""
    from keras_latent.studies.config import BASELINE, TWO_OUTPUT, StudyConfig, Variant

    plain = dict(data=DataConfig(dataset="sample", max_train_samples=128), snapshot_epochs=())
    return StudyConfig(variants=(Variant(BASELINE, tiny_config(model=ModelConfig(decoder=False), **plain),
                                         "--no-decoder"),
                                 Variant(TWO_OUTPUT, tiny_config(**plain))), seeds=seeds)


def repeated_trial(trial_id: str, ce: float, recon: float, accuracy: list[float], mse: list[float] | None = None):
    """A completed KerasTuner trial of `len(accuracy)` executions that scored `accuracy` and `mse` (default 0.1
    each), recorded as the tuner records them: each execution's own figures and their means."""
    import keras_tuner
    import numpy as np

    from keras_latent.tuning.results import MSE_METRIC, OBJECTIVE, execution_metric

    mse = mse or [0.1] * len(accuracy)
    hp = keras_tuner.HyperParameters()
    hp.values.update(ce_weight=ce, recon_weight=recon)
    trial = keras_tuner.engine.trial.Trial(hp, trial_id=trial_id, status="COMPLETED")
    for k, (a, m) in enumerate(zip(accuracy, mse)):
        trial.metrics.update(execution_metric(k, OBJECTIVE), a)
        trial.metrics.update(execution_metric(k, MSE_METRIC), m)
    for name, value in [(OBJECTIVE, np.mean(accuracy)), (MSE_METRIC, np.mean(mse)), ("seconds", 2.0), ("epochs", 3),
                        ("best_epoch", 3)]:
        trial.metrics.update(name, value)
    return trial


def train_tiny(parent, name: str, **overrides) -> str:
    """Train a tiny run (tiny_config with `overrides`, seed 0) into parent/name; returns the folder."""
    from keras_latent.training.fit import train

    keras.utils.set_random_seed(0)
    run_dir = os.path.join(str(parent), name)
    train(tiny_config(**overrides), run_dir, verbose=0)
    return run_dir


def copy_folder(source: str, parent, name: str = "run") -> str:
    """Copy the folder `source` to parent/name; returns the copy's path."""
    target = os.path.join(str(parent), name)
    shutil.copytree(source, target)
    return target


def run_main(main, argv: list[str], capsys=None) -> tuple[int, str | None, str | None]:
    """Run a command's `main` in-process as `python -m ...` would (keras_latent.cli.run_cli, which always
    exits): (exit code, stdout, stderr). Without capsys the output is left to pytest: (code, None, None)."""
    from keras_latent.cli import run_cli

    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    if capsys is None:
        return exit_info.value.code, None, None
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def free_ports(n: int = 1) -> list[int]:
    """`n` distinct TCP ports on 127.0.0.1, free a moment ago, from below the kernel's ephemeral range.

    A port from the ephemeral range (`bind(0)`) can be taken, before the server binds it, as the source port of
    a client's outgoing connection: with two gRPC workers, the first one started retries connecting to the
    second's port, and on Linux such a connect can even pick that very port and connect to itself. The server
    then cannot bind and the other worker sees "Socket closed" (the same flake in TensorFlow's own multi-worker
    tests: tensorflow/tensorflow#61105). Ports below the range are never handed out for outgoing connections.
    """
    low, _ = _ephemeral_range()
    candidates = random.Random().sample(range(10000, low), k=min(200, low - 10000)) if low > 10000 + n else []
    ports: list[int] = []
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise RuntimeError(f"found {len(ports)} of {n} free TCP ports below the ephemeral range (from {low})")


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' source ports (Linux; the IANA range elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(v) for v in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 49152, 65535


def chromium_binary() -> str | None:
    """The system Chromium (the browser tests drive it; they skip where there is none)."""
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def image_file_bytes(pixels, image_format: str = "PNG") -> bytes:
    """uint8 (H, W, 3) pixels as the content of a PNG (or JPEG, GIF, ...) file."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format=image_format)
    return out.getvalue()


def write_cifar_folder(folder, sample_splits, n=40, with_test=True):
    """A tiny cifar-10-batches-py folder made of real sample images, in the original layout."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = sample_splits.x_train[: 2 * n].transpose(0, 3, 1, 2).reshape(2 * n, 3072)
    for i in range(2):
        batch = {b"data": rows[i * n:(i + 1) * n], b"labels": sample_splits.y_train[i * n:(i + 1) * n].tolist(),
                 b"batch_label": b"x", b"filenames": [b"f"] * n}
        (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch))
    if with_test:
        test = {b"data": sample_splits.x_test[:n].transpose(0, 3, 1, 2).reshape(n, 3072),
                b"labels": sample_splits.y_test[:n].tolist()}
        (folder / "test_batch").write_bytes(pickle.dumps(test))
    meta = {b"label_names": [c.encode() for c in sample_splits.class_names]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return folder


def refused_by_train(dataset, out, capsys) -> str:
    """Run `python -m keras_latent.train --dataset DATASET --out OUT` in-process on data that must be refused:
    asserts exit 2, exactly one `error:` line and that OUT was not created; returns that line."""
    from keras_latent.train import main

    code, stdout, err = run_main(main, ["--dataset", str(dataset), "--out", str(out), "-q"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    assert "Traceback" not in err and not os.path.exists(str(out)), "a refused input must write nothing"
    return lines[0]


def fake_tensorflow(root, init_code: str = "", modules: dict[str, str] | None = None) -> str:
    """A stand-in package named tensorflow under `root` (a pathlib.Path), for tests in fresh processes that must
    not load the real one: `init_code` is its __init__.py, `modules` {dotted name below tensorflow: code}
    (parent packages made empty). Returns the folder to put first on sys.path."""
    package = root / "tensorflow"
    package.mkdir(parents=True)
    package.joinpath("__init__.py").write_text(init_code)
    for name, code in (modules or {}).items():
        *parents, leaf = name.split(".")
        folder = package
        for part in parents:
            folder = folder / part
            folder.mkdir(exist_ok=True)
            if not (folder / "__init__.py").exists():
                (folder / "__init__.py").write_text("")
        (folder / f"{leaf}.py").write_text(code)
    return str(root)


def tiny_classifier() -> keras.Model:
    """A compiled 4 -> 2 softmax classifier: for callbacks and patches that need any fitted Keras model."""
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def spy_backup_saves(monkeypatch) -> list[int]:
    """The epoch count of every backup the run's BackupAndRestore writes (appended as each is saved)."""
    from keras_latent.training import patches

    saved = []
    original = patches.AtomicBackupSave._save_model

    def spy(self):
        saved.append(self._current_epoch)
        original(self)

    monkeypatch.setattr(patches.AtomicBackupSave, "_save_model", spy)
    return saved
