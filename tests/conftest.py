"""Shared fixtures and helpers: a fixed seed for every test, the bundled sample, tiny trained runs
(with and without decoder), copies of them to write into, and in-process CLI calls."""
import os
import shutil
import socket

import keras
import pytest

from keras_latent.config import DataConfig, ModelConfig, TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository root


@pytest.fixture(autouse=True)
def fixed_seed():
    keras.utils.set_random_seed(0)


@pytest.fixture(scope="session")
def sample_splits():
    from keras_latent.data import load_dataset

    return load_dataset("sample")


def tiny_config(**overrides) -> TrainConfig:
    """A 1-epoch run on 256 sample images: seconds on 2 cores."""
    values = dict(data=DataConfig(dataset="sample", max_train_samples=256), model=ModelConfig(),
                  epochs=1, batch_size=32, snapshot_epochs=(0, 1))
    values.update(overrides)
    return TrainConfig(**values)


def _train_tiny(tmp_path_factory, name: str, **overrides) -> str:
    from keras_latent.training import train

    keras.utils.set_random_seed(0)
    run_dir = str(tmp_path_factory.mktemp("runs") / name)
    train(tiny_config(**overrides), run_dir, verbose=0)
    return run_dir


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """Folder of one tiny finished run (read-only for tests: copy it with `copy_run` to change it)."""
    return _train_tiny(tmp_path_factory, "tiny")


@pytest.fixture(scope="session")
def classifier_only_run(tmp_path_factory):
    """Folder of one tiny finished run of a model without decoder, asked for snapshots at epochs 0 and 1
    (which it cannot make). Read-only for tests: copy it with `copy_run(classifier_only_run)` to change it."""
    return _train_tiny(tmp_path_factory, "classifier_only", model=ModelConfig(decoder=False))


def copy_folder(source: str, parent, name: str = "run") -> str:
    """Copy the folder `source` to parent/name; returns the copy's path."""
    target = os.path.join(str(parent), name)
    shutil.copytree(source, target)
    return target


@pytest.fixture
def copy_run(request, tmp_path):
    """copy_run() -> a writable copy of `trained_run` in tmp_path; copy_run(folder) copies another run."""
    def _copy(source: str | None = None) -> str:
        return copy_folder(source or request.getfixturevalue("trained_run"), tmp_path)
    return _copy


def run_main(main, argv: list[str], capsys=None) -> tuple[int, str | None, str | None]:
    """Run a CLI `main` in-process as `python -m ...` would (keras_latent.errors.run_cli, which always
    exits): (exit code, stdout, stderr). Without capsys the output is left to pytest: (code, None, None)."""
    from keras_latent.errors import run_cli

    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    if capsys is None:
        return exit_info.value.code, None, None
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def free_ports(n: int = 1) -> list[int]:
    """`n` distinct TCP ports on 127.0.0.1 that were free a moment ago (all bound at once, then released)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
