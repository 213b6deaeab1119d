"""Shared fixtures: a fixed seed and a clean `keras_latent` logger for every test, the bundled sample,
tiny trained runs (with and without decoder) and copies of them to write into. Helper functions are
in helpers.py."""
import logging

import keras
import pytest
from helpers import copy_folder, train_tiny

from keras_latent.config import DataConfig, ModelConfig


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
