"""training/patches.py: every private Keras/TensorFlow name checked at import, and each patch still taking effect."""
import importlib
import json
import os

import keras
import numpy as np
import pytest
from helpers import spy_backup_saves, tiny_classifier

from keras_latent.errors import UsageError
from keras_latent.training import patches


def test_every_private_name_exists_in_the_installed_versions():
    assert patches.missing_private_names() == []


def test_a_missing_private_name_is_one_line_naming_the_supported_versions(monkeypatch):
    monkeypatch.setattr(patches, "PRIVATE_NAMES", patches.PRIVATE_NAMES + (("keras.callbacks", "Nope._gone"),))
    with pytest.raises(UsageError) as err:
        patches.check_private_names()
    message = str(err.value)
    assert "\n" not in message and "keras.callbacks.Nope._gone" in message and patches.SUPPORTED in message


def test_multiworker_patch_replaces_what_keras_calls_during_fit(monkeypatch):
    """Keras must look the patched functions up at call time; if it stopped, the patch would do nothing."""
    trainer = importlib.import_module(patches.TRAINER_MODULE)
    monkeypatch.setattr(trainer, "reduce_per_replica", trainer.reduce_per_replica)  # restored after the test
    monkeypatch.setattr(trainer.TensorFlowTrainer, "_maybe_symbolic_build",
                        trainer.TensorFlowTrainer._maybe_symbolic_build)
    monkeypatch.delattr(trainer, "_keras_latent_patched", raising=False)
    patches.patch_keras_for_multiworker()
    calls = {"reduce": 0, "build": 0}
    patched_reduce, patched_build = trainer.reduce_per_replica, trainer.TensorFlowTrainer._maybe_symbolic_build

    def count_reduce(*args, **kwargs):
        calls["reduce"] += 1
        return patched_reduce(*args, **kwargs)

    def count_build(self, *args, **kwargs):
        calls["build"] += 1
        return patched_build(self, *args, **kwargs)

    monkeypatch.setattr(trainer, "reduce_per_replica", count_reduce)
    monkeypatch.setattr(trainer.TensorFlowTrainer, "_maybe_symbolic_build", count_build)
    x, y = np.random.default_rng(0).normal(size=(16, 4)).astype("float32"), np.arange(16) % 2
    tiny_classifier().fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert calls["reduce"] > 0 and calls["build"] > 0


def test_backup_save_is_ours_when_keras_saves_a_backup(tmp_path, monkeypatch):
    from keras_latent.training.callbacks import AtomicBackupAndRestore

    saved = spy_backup_saves(monkeypatch)
    x, y = np.random.default_rng(0).normal(size=(16, 4)).astype("float32"), np.arange(16) % 2
    backup = str(tmp_path / "backup")
    tiny_classifier().fit(x, y, epochs=2, batch_size=8, verbose=0,
                      callbacks=[AtomicBackupAndRestore(backup, delete_checkpoint=False)])
    assert saved == [1, 2]
    assert sorted(os.listdir(backup)) == ["latest.weights.h5", "training_metadata.json"]
    assert json.load(open(os.path.join(backup, "training_metadata.json"))) == {"epoch": 2, "batch": 0}


def _save_builds_reference_layers(model, path, monkeypatch) -> bool:
    """Whether `model.save_weights` constructs a throwaway keras Layer (Keras 3.15's uncached skip sets)."""
    from keras.src.layers.layer import Layer

    built = []
    original = Layer.__init__

    def spy(self, *args, **kwargs):
        if type(self) is Layer:  # get_attr_skipset's reference object; the model's own layers are subclasses
            built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Layer, "__init__", spy)
    model.save_weights(path)
    monkeypatch.setattr(Layer, "__init__", original)
    return bool(built)


def test_cached_skipsets_stop_save_weights_rebuilding_reference_layers_and_save_the_same_file(tmp_path,
                                                                                               monkeypatch):
    keras.backend.clear_session()  # the cache starts empty, as in a fresh process
    model = tiny_classifier()
    x, y = np.random.default_rng(0).normal(size=(16, 4)).astype("float32"), np.arange(16) % 2
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert _save_builds_reference_layers(model, str(tmp_path / "a.weights.h5"), monkeypatch)  # Keras alone
    patches.cache_saving_skipsets()
    assert not _save_builds_reference_layers(model, str(tmp_path / "b.weights.h5"), monkeypatch)
    clone = tiny_classifier()
    clone.fit(x, y, epochs=1, batch_size=8, verbose=0)
    clone.load_weights(str(tmp_path / "b.weights.h5"))
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), clone.get_weights()))
    assert [v.name for v in model.optimizer.variables] == [v.name for v in clone.optimizer.variables]
    assert all(np.array_equal(a, b) for a, b in zip(model.optimizer.variables, clone.optimizer.variables))

