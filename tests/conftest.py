"""Shared fixtures: a fixed seed for every test, the bundled sample, and one tiny trained run."""
import os
import shutil

import keras
import pytest

from keras_latent.config import DataConfig, ModelConfig, TrainConfig


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


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """Folder of one tiny finished run (read-only for tests: copy it with `copy_run` to change it)."""
    from keras_latent.training import train

    keras.utils.set_random_seed(0)
    run_dir = str(tmp_path_factory.mktemp("runs") / "tiny")
    train(tiny_config(), run_dir, verbose=0)
    return run_dir


@pytest.fixture
def copy_run(trained_run, tmp_path):
    def _copy():
        target = os.path.join(tmp_path, "run")
        shutil.copytree(trained_run, target)
        return target
    return _copy
