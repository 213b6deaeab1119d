"""Where training runs: CPU thread settings and a tf.distribute strategy from the config's name.

    default      one device: the CPU, or the GPU TensorFlow picks
    mirrored     tf.distribute.MirroredStrategy: a replica on every local GPU (or the CPU), one process
    multiworker  tf.distribute.MultiWorkerMirroredStrategy: one process per machine (or per GPU), the
                 cluster and this process's place in it read from the TF_CONFIG environment variable

Under a strategy the global batch (`batch_size`) is split across replicas and gradients are
all-reduced, so the model learns as on one device with the same batch. Two Keras 3 limits
shape the code below: `steps_per_execution > 1` fails under tf.distribute strategies
(keras-team/keras#19246), so distributed runs use 1; and `fit` under MultiWorkerMirroredStrategy
fails on two reductions (keras-team/keras#20585), which `keras_latent.training.patches` fixes.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator

import keras
import tensorflow as tf

from keras_latent.config import STRATEGIES
from keras_latent.errors import UsageError, check_choice
from keras_latent.training import patches

TF_CONFIG_HELP = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                  '"task": {"type": "worker", "index": 0}}\'')


def current_threads() -> tuple[int, int]:
    """TensorFlow's (intra-op, inter-op) thread settings in this process (0: one per core)."""
    return (tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads())


def threads_settable() -> bool:
    """Whether TensorFlow's thread pools can still be set: its runtime has not started in this process."""
    intra, inter = current_threads()
    try:
        tf.config.threading.set_inter_op_parallelism_threads(inter + 1)  # refused once the runtime runs
    except RuntimeError:
        return False
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    return True


def configure_threads(intra_op: int, inter_op: int) -> bool:
    """Set TensorFlow's thread pools (0 = TensorFlow's own choice, one thread per core).

    Must run before TensorFlow executes its first op; returns False (and changes nothing) when
    the runtime is already up with other values, as in a process that trained before.
    """
    if intra_op < 0 or inter_op < 0:
        raise UsageError(f"--intra-op-threads and --inter-op-threads must be >= 0, got {intra_op} and {inter_op}")
    if current_threads() == (intra_op, inter_op):
        return True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:  # "cannot be modified after initialization"
        return False
    return True


def read_tf_config() -> dict:
    """TF_CONFIG as a dict, checked: a cluster with workers and this process's task in it."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise UsageError(f"--strategy multiworker needs the TF_CONFIG environment variable, e.g. {TF_CONFIG_HELP}")
    try:
        tf_config = json.loads(text)
        cluster, task = tf_config["cluster"], tf_config["task"]
        jobs = {name: list(addresses) for name, addresses in cluster.items()}
        task_type, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise UsageError(f"TF_CONFIG is not valid ({type(err).__name__}: {err}); expected {TF_CONFIG_HELP}") from None
    if task_type not in jobs or not 0 <= index < len(jobs[task_type]):
        raise UsageError(f"TF_CONFIG task {task_type}:{index} is not in its cluster {jobs}")
    return tf_config


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy named by `TrainConfig.strategy`; create it before any model."""
    check_choice("--strategy", name, STRATEGIES)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    read_tf_config()  # multiworker, the last of STRATEGIES
    patches.patch_keras_for_multiworker()
    return tf.distribute.MultiWorkerMirroredStrategy()


def describe(strategy: tf.distribute.Strategy) -> str:
    """One line for the log: strategy, replicas and, for multiworker, this worker's place."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        resolver = strategy.cluster_resolver
        where = f" (this is {resolver.task_type} {resolver.task_id}{', the chief' if is_chief(strategy) else ''})"
        return f"MultiWorkerMirroredStrategy, {strategy.num_replicas_in_sync} replicas in sync{where}"
    return f"{type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s) in sync"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True except on the non-chief workers of a multi-worker cluster (worker 0 is chief if no chief job)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return True
    has_chief_job = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief_job


def worker_run_dir(strategy: tf.distribute.Strategy, run_dir: str) -> str:
    """The chief writes `run_dir`; every other worker its own `run_dir/worker-<index>` (same files).

    All workers run the same steps (saving can involve collective ops), and a worker's own
    folder keeps its backup, so rerunning the same commands resumes every worker together.
    """
    if is_chief(strategy):
        return run_dir
    return os.path.join(run_dir, f"worker-{strategy.cluster_resolver.task_id}")


def steps_per_execution(requested: int, strategy_name: str) -> int:
    """`requested` under the default strategy; 1 under mirrored and multiworker (keras-team/keras#19246)."""
    return requested if strategy_name == "default" else 1


@contextlib.contextmanager
def model_scope(strategy: tf.distribute.Strategy, mixed_precision: bool) -> Iterator[None]:
    """Build and compile a model inside this: the strategy's scope and the dtype policy.

    `mixed_precision` builds layers with the mixed_bfloat16 policy (bfloat16 compute, float32
    weights; the model's output layers stay float32); the previous global policy is restored.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if mixed_precision else "float32")
    try:
        with strategy.scope():
            yield
    finally:
        keras.config.set_dtype_policy(previous)


def local_model(model: keras.Model, strategy: tf.distribute.Strategy) -> keras.Model:
    """A model for predictions after training: `model` itself, or a plain copy under multiworker.

    Keras 3 `predict` under MultiWorkerMirroredStrategy gathers or drops other workers' rows, so
    each worker predicts with an undistributed copy holding the same weights.
    """
    if not patches.is_multiworker(strategy):
        return model
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy
