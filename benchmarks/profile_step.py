"""Profile: where a training step's time goes, and how often its threads hand work to each other.

    python benchmarks/profile_step.py [--batch-size 128] [--epochs 2] [--emulate avx2] [--top 15] \\
        [-- TRAINING FLAGS, e.g. --batch-split 1 --intra-op-threads 0 --inter-op-threads 0]

Trains the default model (or the one the training flags describe, with the formulation chosen as
`python -m keras_latent.train` would) on the bundled sample: one epoch to warm up, then `--epochs`
epochs under TensorFlow's profiler. Prints the machine, images/s, user and system CPU (cores busy),
the voluntary context switches per step (each is a thread going to sleep on a futex: the hand-overs
between thread-pool threads inside multi-threaded ops), the busy time of each thread pool, and the
TensorFlow ops with the most self time. `--emulate avx2` re-runs it with oneDNN and XLA capped to AVX2.
"""
from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
import time

from keras_latent.cli import run_cli
from keras_latent.errors import UsageError
from keras_latent.machine import EMULATIONS, describe_cpu, emulation_environment


def context_switches() -> int:
    """Voluntary context switches of every thread of this process so far (Linux; 0 elsewhere)."""
    total = 0
    for path in glob.glob("/proc/self/task/*/status"):
        try:
            with open(path) as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches"))
        except OSError:
            pass
    return total


def layer_of(op_name: str) -> str:
    """The model part an op belongs to, from its name: `decoder/deconv1/deconv1_bias (backward)`, `loss`, ...

    Keras's instance suffixes (`_1`) and the wrappers (the model, a batch split's trainer) are dropped;
    `gradient_tape/` ops are the backward pass. Ops outside the model: `optimizer`, `metrics`, `loss`, `other`.
    """
    parts = [re.sub(r"_\d+$", "", part) for part in op_name.split("/")]
    backward = "gradient_tape" in parts
    for kind in ("sgd", "compile_loss", "compile_metrics"):
        if kind in parts:
            return {"sgd": "optimizer", "compile_loss": "loss", "compile_metrics": "metrics"}[kind] + (
                " (backward)" if backward else "")
    parts = parts[parts.index("keras_latent") + 1:] if "keras_latent" in parts else []
    parts = [p for p in parts if p != "batch_split_trainer"]
    if parts and parts[0] in ("trunk", "decoder", "classifier_head"):
        depth = 3 if parts[0] == "decoder" else 2
        part = "/".join(parts[:depth])
    elif parts and (parts[0] == "classifier" or parts[0].startswith("reconstruction")):
        part = parts[0] + " (output)"
    else:
        part = "other"
    return part + (" (backward)" if backward else "")


def _is_op(event_name: str) -> bool:
    """Whether a trace event is a TensorFlow op ("name:Type"), not the executor's own bookkeeping."""
    return ":" in event_name and "::" not in event_name and not event_name.startswith("Executor")


def op_table(logdir: str, by_layer: bool = False) -> tuple[list[tuple[str, float, int]], dict[str, float]]:
    """(op type, self ms, count) sorted by self time, and busy ms per thread pool, from the profiler's trace;
    with `by_layer`, rows are model parts (`layer_of`) instead of op types. Work an op runs nested in its
    own trace events (the shards of its ParallelFor on the same thread) counts as the op's."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # the trace format (a protobuf), read only

    paths = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))
    if not paths:
        raise UsageError(f"the profiler wrote no trace under {logdir}")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    plane = next(p for p in space.planes if p.name == "/host:CPU")
    names = plane.event_metadata
    ops, pools = collections.defaultdict(lambda: [0.0, 0]), collections.Counter()
    for line in plane.lines:
        pool = re.sub(r"/-?\d+$", "", line.name)
        events = sorted(line.events, key=lambda e: e.offset_ps)
        stack, own, owner = [], {}, {}
        for i, event in enumerate(events):  # self time: an event's duration less its nested events'
            while stack and events[stack[-1]].offset_ps + events[stack[-1]].duration_ps <= event.offset_ps:
                stack.pop()
            # by layer, work nested in an op (its ParallelFor shards) counts as the op's
            parent = owner[stack[-1]] if stack else i
            owner[i] = parent if _is_op(names[events[parent].metadata_id].name) else i
            if stack:
                own[stack[-1]] = own.get(stack[-1], events[stack[-1]].duration_ps) - event.duration_ps
            else:
                pools[pool] += event.duration_ps / 1e9
            stack.append(i)
        if pool != "tf_Compute":  # TensorFlow's executor threads run the ops
            continue
        for i, event in enumerate(events):
            owned = names[events[owner[i]].metadata_id].name  # the op whose work this is
            op = layer_of(owned.rsplit(":", 1)[0]) if by_layer else owned.rsplit(":", 1)[-1]
            ops[op][0] += own.get(i, event.duration_ps) / 1e9
            ops[op][1] += owner[i] == i  # ops (and the executor's events), not their shards
    table = sorted(((op, ms, n) for op, (ms, n) in ops.items()), key=lambda row: -row[1])
    return table, dict(pools)


def profile(argv: list[str], epochs: int, top: int) -> None:
    import keras
    import tensorflow as tf

    from keras_latent.data import load_splits
    from keras_latent.data.pipeline import make_dataset
    from keras_latent.model import build_model
    from keras_latent.model.builders import reconstruction_outputs
    from keras_latent.train import build_parser
    from keras_latent.training.calibration import describe
    from keras_latent.training.fit import choose_and_apply_formulation, compile_model
    from keras_latent.training.options import config_from_flags

    with tempfile.TemporaryDirectory(prefix="profile_") as tmp:
        config = config_from_flags(build_parser().parse_args(["--dataset", "sample", *argv]))
        config = choose_and_apply_formulation(config, os.path.join(tmp, "run"), overwrite=True)
        keras.utils.set_random_seed(config.seed)
        splits, config = load_splits(config)
        trainer = compile_model(build_model(config.model), config)
        data = make_dataset(splits.x_train, splits.y_train, config.batch_size, training=True, seed=config.seed,
                            reconstruction_outputs=reconstruction_outputs(config.model))
        trainer.fit(data, epochs=1, verbose=0)  # tracing and warm-up
        steps = epochs * -(-len(splits.x_train) // config.batch_size)
        tf.profiler.experimental.start(tmp)
        start, cpu, switches = time.perf_counter(), os.times(), context_switches()
        trainer.fit(data, epochs=epochs, verbose=0)
        wall, cpu1, switched = time.perf_counter() - start, os.times(), context_switches() - switches
        tf.profiler.experimental.stop()
        table, pools = op_table(tmp)
        layers, _ = op_table(tmp, by_layer=True)
    print(f"CPU: {describe_cpu().describe()}")
    print(f"model {'with' if config.model.layer_decoders else 'without'} layer decoders, batch {config.batch_size}; "
          f"formulation: {describe(config)}")
    print(f"{epochs * len(splits.x_train) / wall:,.0f} images/s (profiler on), {wall / steps * 1e3:.2f} ms/step; "
          f"cores busy: user {(cpu1.user - cpu.user) / wall:.2f}, system {(cpu1.system - cpu.system) / wall:.2f}; "
          f"{switched / steps:.0f} voluntary context switches per step")
    print("busy ms per step by thread pool: " + ", ".join(
        f"{pool} {ms / steps:.2f}" for pool, ms in sorted(pools.items(), key=lambda kv: -kv[1]) if ms / steps >= 0.01))
    total = sum(ms for _, ms, _ in table) or 1.0
    print(f"{'op':36s} {'ms/step':>8s} {'share':>6s} {'per step':>8s}")
    for op, ms, n in table[:top]:
        print(f"{op:36s} {ms / steps:8.3f} {100 * ms / total:5.1f}% {n / steps:8.1f}")
    print(f"{'model part (ops by name)':52s} {'ms/step':>8s} {'share':>6s} {'ops/step':>8s}")
    for part, ms, n in layers[:top]:
        print(f"{part:52s} {ms / steps:8.3f} {100 * ms / total:5.1f}% {n / steps:8.1f}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, training = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2, help="epochs profiled, after one of warm-up")
    p.add_argument("--emulate", choices=sorted(EMULATIONS), default=None, help="cap oneDNN and XLA to this ISA")
    p.add_argument("--top", type=int, default=15, help="ops listed")
    args = p.parse_args(own)
    if args.emulate and not os.environ.get("KERAS_LATENT_EMULATING"):  # the caps must be set before TensorFlow loads
        env = {**os.environ, **emulation_environment(args.emulate), "KERAS_LATENT_EMULATING": "1"}
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *argv], env)
    profile(["--batch-size", str(args.batch_size), *training], args.epochs, args.top)
    return 0


if __name__ == "__main__":
    run_cli(main)
