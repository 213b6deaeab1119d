"""Training's uses of private Keras and TensorFlow names, guarded.

Training patches or extends Keras internals in three places, each for a reason:

1. Keras `fit` under multi-worker MultiWorkerMirroredStrategy fails on two reductions
   (keras-team/keras#20585): `patch_keras_for_multiworker` replaces two functions of
   `keras.src.backend.tensorflow.trainer`, which Keras looks up at call time.
2. Keras's `BackupAndRestore` writes its weights and epoch count in place, one after the other, so
   a kill can tear them (Keras's own `double_checkpoint` keeps `.bkp` copies, written in place too;
   no upstream issue tracks this): `AtomicBackupSave` overrides its private `_save_model` to swap
   both in at once. Keras 3.15's `saving_lib.get_attr_skipset` caches its result under
   `saving_attr_skipset_{type}` but looks it up under `saving_attr_skiplist_{type}`, so every
   `save_weights` builds throwaway reference layers again: half the CPU time of a backup (97 -> 52 ms a
   save, measured; no upstream issue found, to be filed): `cache_saving_skipsets` stores the same sets
   under the key Keras reads.
3. Keras 3's `SGD.update_step` writes the momentum update as six graph ops per variable (read, two
   multiplies, a subtraction, an assignment, an assign-add), where tf.keras 2 ran one fused kernel,
   `ResourceApplyKerasMomentum`, with the same arithmetic (Keras 3 dropped its raw-op updates:
   keras-team/keras#19992). For the default model's 14 variables that is 84 of the ~1,100 nodes of a
   training step (1,179 -> 1,095), each costing the executor's per-node work: `fuse_sgd_momentum` gives
   training's own optimizer instance (never Keras's class) the fused kernel, with the same results.

At import this module checks that every private name it uses exists in the installed versions and
fails with one line naming the supported versions otherwise, instead of a patch that silently does
nothing. `tests/training/test_training_patches.py` checks that each patch still takes effect. KerasTuner's
patches live with tuning (`keras_latent.tuning.patches`), so that training never imports KerasTuner.
"""
from __future__ import annotations

import importlib
import json

import keras

from keras_latent.errors import UsageError
from keras_latent.files import atomic_directory

SUPPORTED = "tensorflow 2.21 and keras 3.15 (tested: 2.21.0, 3.15.1)"
TRAINER_MODULE = "keras.src.backend.tensorflow.trainer"
SAVING_MODULE = "keras.src.saving.saving_lib"
GLOBAL_STATE_MODULE = "keras.src.backend.common.global_state"
SGD_MODULE = "keras.src.optimizers.sgd"
# The object types whose attribute skip sets a model's save_weights asks for (get_attr_skipset's argument).
SKIPSET_TYPES = ("Operation", "Layer", "Functional", "Sequential", "Metric", "Optimizer", "Loss")

# (module, dotted attribute) pairs this module relies on.
PRIVATE_NAMES = (
    (TRAINER_MODULE, "reduce_per_replica"),
    (TRAINER_MODULE, "concat"),
    (TRAINER_MODULE, "_is_per_replica_instance"),
    (TRAINER_MODULE, "TensorFlowTrainer._maybe_symbolic_build"),
    ("tensorflow.python.distribute.collective_all_reduce_strategy",
     "CollectiveAllReduceExtended._in_multi_worker_mode"),
    ("keras.callbacks", "BackupAndRestore._save_model"),
    (SAVING_MODULE, "get_attr_skipset"),
    (GLOBAL_STATE_MODULE, "get_global_attribute"),
    (GLOBAL_STATE_MODULE, "set_global_attribute"),
    (SGD_MODULE, "SGD.update_step"),
    ("keras.src.optimizers.base_optimizer", "BaseOptimizer._get_variable_index"),
)
# Attributes set in __init__, checked on a fresh instance.
BACKUP_ATTRIBUTES = ("_weights_path", "_training_metadata_path", "_current_epoch", "_last_batch_seen")


def missing_names(pairs) -> list[str]:
    """Of (module, dotted attribute) `pairs`, those the installed libraries lack, as 'module.dotted'."""
    missing = []
    for module_name, dotted in pairs:
        try:
            value = importlib.import_module(module_name)
            for part in dotted.split("."):
                value = getattr(value, part)
        except (ImportError, AttributeError):
            missing.append(f"{module_name}.{dotted}")
    return missing


def missing_private_names() -> list[str]:
    """The private names this module uses that the installed TensorFlow and Keras lack."""
    backup = keras.callbacks.BackupAndRestore("unused")  # sets attributes only; creates nothing
    return (missing_names(PRIVATE_NAMES)
            + [f"keras.callbacks.BackupAndRestore().{a}" for a in BACKUP_ATTRIBUTES if not hasattr(backup, a)])


def check_private_names() -> None:
    """Fail with one line when an installed version lacks a private name used here."""
    missing = missing_private_names()
    if missing:
        import tensorflow as tf

        raise UsageError(f"tensorflow {tf.__version__} / keras {keras.__version__} lack {', '.join(missing)}, "
                         f"which keras_latent's training patches; supported: {SUPPORTED}")


# ---------------------------------------------------------------- 1. Keras fit under MultiWorkerMirroredStrategy


def is_multiworker(strategy) -> bool:
    """True for a MultiWorkerMirroredStrategy that really spans several workers (TensorFlow's private test)."""
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def patch_keras_for_multiworker() -> None:
    """Fix Keras 3 `fit` under multi-worker MultiWorkerMirroredStrategy (keras-team/keras#20585).

    1. Before training, `fit` averages the first batch across workers with `strategy.reduce`,
       which fails on a nested (images, targets) batch; the batch is only used for its shapes,
       so this worker's first replica's batch is used instead.
    2. Per-step metrics are averaged with `strategy.reduce("MEAN", v, axis=0)`, which fails on
       the scalar metrics; `axis=None` averages them across replicas as intended. Predictions
       ("concat") stay on this worker instead of being gathered from all.
    Both patches change nothing outside multi-worker mode (`is_multiworker`). Idempotent.
    """
    import tensorflow as tf

    trainer = importlib.import_module(TRAINER_MODULE)
    if getattr(trainer, "_keras_latent_patched", False):
        return
    reduce_per_replica = trainer.reduce_per_replica
    maybe_symbolic_build = trainer.TensorFlowTrainer._maybe_symbolic_build

    def local_first(values, strategy):
        return tf.nest.map_structure(
            lambda v: strategy.experimental_local_results(v)[0] if trainer._is_per_replica_instance(v) else v, values)

    def patched_reduce(values, strategy, reduction):
        if not is_multiworker(strategy) or reduction not in ("auto", "mean", "concat"):
            return reduce_per_replica(values, strategy, reduction)
        if reduction == "concat":
            return tf.nest.map_structure(
                lambda v: trainer.concat(strategy.experimental_local_results(v))
                if trainer._is_per_replica_instance(v) else v, values)
        return tf.nest.map_structure(
            lambda v: strategy.reduce("MEAN", v, axis=None) if trainer._is_per_replica_instance(v) else v, values)

    def patched_build(self, iterator=None, data_batch=None):
        if iterator is not None and data_batch is None and is_multiworker(self.distribute_strategy):
            for _, _, it in iterator:
                data_batch = local_first(next(it), self.distribute_strategy)
                break
            iterator = None
        return maybe_symbolic_build(self, iterator=iterator, data_batch=data_batch)

    trainer.reduce_per_replica = patched_reduce
    trainer.TensorFlowTrainer._maybe_symbolic_build = patched_build
    trainer._keras_latent_patched = True


# ---------------------------------------------------------------- 2. Keras BackupAndRestore


def cache_saving_skipsets() -> None:
    """Make Keras's `get_attr_skipset` find the sets it computed (Keras 3.15 stores them under another key).

    The sets are Keras's own, computed once per process (and again after `keras.backend.clear_session`,
    which clears them); a Keras that finds them already is left alone. Cheap when already done.
    """
    saving_lib = importlib.import_module(SAVING_MODULE)
    global_state = importlib.import_module(GLOBAL_STATE_MODULE)
    for obj_type in SKIPSET_TYPES:
        key = f"saving_attr_skiplist_{obj_type}"  # the key get_attr_skipset reads
        if global_state.get_global_attribute(key, None) is None:
            global_state.set_global_attribute(key, saving_lib.get_attr_skipset(obj_type))


class AtomicBackupSave:
    """Mixin for `keras.callbacks.BackupAndRestore`: weights and epoch count swapped in as one folder.

    Keras writes `latest.weights.h5` and `training_metadata.json` in place, one after the other, so a
    kill can tear the weights or pair new weights with an old epoch count. Here both are written into
    a temp folder that then replaces the backup folder (`keras_latent.files.atomic_directory`).
    """

    def _save_model(self):
        cache_saving_skipsets()  # half the cost of a save (see the module's docstring, 2.)
        with atomic_directory(self.backup_dir) as tmp:
            self.model.save_weights(f"{tmp}/{self._weights_path.rsplit('/', 1)[-1]}", overwrite=True)
            with open(f"{tmp}/{self._training_metadata_path.rsplit('/', 1)[-1]}", "w") as f:
                json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)


# ---------------------------------------------------------------- 3. Keras SGD's momentum update


def fuse_sgd_momentum(optimizer) -> bool:
    """Give `optimizer` (this instance only) the fused momentum update where it computes the same thing.

    For a Keras `SGD` with momentum and without Nesterov, on the TensorFlow backend: each variable's update,
    `m = m * momentum - gradient * lr; variable += m` (Keras's `SGD.update_step`), becomes one
    `ResourceApplyKerasMomentum` kernel (accum = accum * momentum - lr * grad; var += accum), as tf.keras 2
    applied it. Variables without a resource handle, and updates under a tf.distribute strategy (whose
    mirrored variables Keras updates per device), take Keras's own update. The optimizer's class, config and
    variables are Keras's, so a saved model.keras is unchanged. Returns whether the update was fused.
    """
    import tensorflow as tf

    sgd_module = importlib.import_module(SGD_MODULE)
    if (type(optimizer) is not sgd_module.SGD or keras.backend.backend() != "tensorflow"
            or not optimizer.momentum or optimizer.nesterov):
        return False
    keras_update = sgd_module.SGD.update_step.__get__(optimizer)

    def update_step(gradient, variable, learning_rate):
        if tf.distribute.has_strategy() or not hasattr(variable, "handle"):
            return keras_update(gradient, variable, learning_rate)
        momentum = optimizer.momentums[optimizer._get_variable_index(variable)]
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle, accum=momentum.value.handle, lr=tf.cast(learning_rate, variable.dtype),
            grad=tf.cast(gradient, variable.dtype), momentum=tf.cast(optimizer.momentum, variable.dtype),
            use_locking=False, use_nesterov=False)

    optimizer.update_step = update_step
    return True


check_private_names()
