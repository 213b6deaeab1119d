"""training/patches.py: every private Keras/TensorFlow name checked at import, and each patch still taking effect."""
import collections
import contextlib
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



def _momentum_run(fuse: bool, momentum: float = 0.9, nesterov: bool = False, strategy=None):
    """Three SGD steps on a 4 -> 3 -> 2 model under tf.function: (weights, momentums, the step's op type counts,
    fused)."""
    import tensorflow as tf

    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)])
        optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=momentum, nesterov=nesterov)
        fused = patches.fuse_sgd_momentum(optimizer) if fuse else False
        optimizer.build(model.trainable_variables)
    x = tf.constant(np.random.default_rng(0).normal(size=(8, 4)), tf.float32)

    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x)))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    traced = tf.function(step if strategy is None else lambda: strategy.run(step))
    op_types = collections.Counter(op.type for op in traced.get_concrete_function().graph.get_operations())
    for _ in range(3):
        traced()
    return ([v.numpy() for v in model.trainable_variables], [m.numpy() for m in optimizer.momentums], op_types,
            fused)


def test_fused_sgd_momentum_is_one_kernel_per_variable_with_kerass_results_exactly():
    keras_weights, keras_momentums, keras_ops, _ = _momentum_run(fuse=False)
    weights, momentums, ops, fused = _momentum_run(fuse=True)
    assert fused and ops["ResourceApplyKerasMomentum"] == len(weights) == 4
    assert "ResourceApplyKerasMomentum" not in keras_ops and sum(ops.values()) < sum(keras_ops.values())
    for ours, theirs in zip(weights + momentums, keras_weights + keras_momentums):
        np.testing.assert_array_equal(ours, theirs)
    assert any(np.abs(m).max() > 0 for m in momentums)  # the momentums did move


def test_sgd_without_momentum_with_nesterov_or_adam_keeps_kerass_update():
    for optimizer in (keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                      keras.optimizers.Adam()):
        assert not patches.fuse_sgd_momentum(optimizer) and "update_step" not in vars(optimizer)
    _, _, ops, fused = _momentum_run(fuse=True, nesterov=True)
    assert not fused and "ResourceApplyKerasMomentum" not in ops


def test_fused_sgd_under_a_strategy_takes_kerass_update_with_the_same_results():
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    keras_weights, _, _, _ = _momentum_run(fuse=False)
    weights, _, ops, fused = _momentum_run(fuse=True, strategy=strategy)
    assert fused and "ResourceApplyKerasMomentum" not in ops
    for ours, theirs in zip(weights, keras_weights):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_a_fused_sgd_serializes_as_kerass_sgd(tmp_path):
    from keras_latent.config import TrainConfig
    from keras_latent.training.fit import make_optimizer

    optimizer = make_optimizer(TrainConfig())
    assert "update_step" in vars(optimizer)  # fused
    config = keras.saving.serialize_keras_object(optimizer)
    assert config["class_name"] == "SGD" and config["module"] == "keras.optimizers"
    assert keras.saving.deserialize_keras_object(config).get_config() == optimizer.get_config()
    model = tiny_classifier()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(np.zeros((8, 4), "float32"), np.zeros(8, "int32"), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is keras.optimizers.SGD and "update_step" not in vars(loaded.optimizer)
    assert int(loaded.optimizer.iterations.numpy()) == 1
