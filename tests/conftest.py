"""Shared fixtures: a fixed seed and a clean `keras_latent` logger for every test, the bundled sample,
tiny trained runs (with and without decoder), copies of them to write into, and a tiny study. Helper
functions are in helpers.py."""
import logging
import os

import keras_latent  # noqa: F401 (first: its TensorFlow settings, keras_latent/__init__.py, apply before TF loads)

# isort: split
import keras
import pytest
from helpers import copy_folder, tiny_study_config, train_tiny

from keras_latent.config import DataConfig, ModelConfig
from keras_latent.runs import layout
from keras_latent.training.calibration import ENV_SWITCH


@pytest.fixture(scope="session", autouse=True)
def no_calibration(tmp_path_factory):
    """No training in the suite (nor in the commands it starts) measures formulations, and none touches the
    user's cache folder: calibration's own tests switch it on with a cache of their own."""
    saved = {name: os.environ.get(name) for name in (ENV_SWITCH, "XDG_CACHE_HOME")}
    os.environ[ENV_SWITCH], os.environ["XDG_CACHE_HOME"] = "0", str(tmp_path_factory.mktemp("cache"))
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def fixed_seed():
    keras.utils.set_random_seed(0)


@pytest.fixture(autouse=True)
def default_logging():
    """Undo a command's `configure_logging` after each test, so no test sees another's handlers."""
    yield
    logger = logging.getLogger("keras_latent")
    logger.handlers, logger.propagate = [], True
    logger.setLevel(logging.NOTSET)


@pytest.fixture(scope="session")
def sample_splits():
    from keras_latent.data import load_dataset

    return load_dataset("sample")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """Folder of one tiny finished run (read-only for tests: copy it with `copy_run` to change it)."""
    return train_tiny(tmp_path_factory.mktemp("runs"), "tiny")


@pytest.fixture(scope="session")
def classifier_only_run(tmp_path_factory):
    """Folder of one tiny finished run of a model without decoder, asked for snapshots at epochs 0 and 1
    (which it cannot make). Read-only for tests: copy it with `copy_run(classifier_only_run)` to change it."""
    return train_tiny(tmp_path_factory.mktemp("runs"), "classifier_only", model=ModelConfig(decoder=False))


@pytest.fixture(scope="session")
def few_epochs_run(tmp_path_factory):
    """Folder of one run trained a few epochs (3 epochs on 512 sample images, about 15 s on 2 cores), for tests
    that need channels shaped by training (feature visualization). Read-only for tests."""
    return train_tiny(tmp_path_factory.mktemp("runs"), "few_epochs", epochs=3, snapshot_epochs=(),
                      data=DataConfig(dataset="sample", max_train_samples=512))


@pytest.fixture
def copy_run(request, tmp_path):
    """copy_run() -> a writable copy of `trained_run` in tmp_path; copy_run(folder) copies another run."""
    def _copy(source: str | None = None) -> str:
        return copy_folder(source or request.getfixturevalue("trained_run"), tmp_path)
    return _copy


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """A tiny study (2 variants x 2 seeds, tiny_study_config): first run with 1 seed and interrupted (Ctrl-C)
    after its first run, then rerun with 2 seeds. {"folder", "first": {run folder: model.keras mtime} of the
    run finished before the interruption, "summary": what the rerun returned}. Read-only for tests."""
    from keras_latent.studies import run as study_run
    from keras_latent.training import fit

    folder = str(tmp_path_factory.mktemp("studies") / "study")
    calls, train = [], fit.train

    def interrupted(config, run_dir, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(run_dir)
        return train(config, run_dir, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fit, "train", interrupted)
        with pytest.raises(KeyboardInterrupt):
            study_run.run_study(tiny_study_config(seeds=(0,)), folder)
    first = {path: os.path.getmtime(layout.MODEL.path(path)) for path in calls}
    return {"folder": folder, "first": first, "summary": study_run.run_study(tiny_study_config(seeds=(0, 1)), folder)}
