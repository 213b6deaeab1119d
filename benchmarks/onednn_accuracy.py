"""Benchmark: does turning oneDNN on (keras_latent does so on x86-64, issue 24) change test accuracy?

    python benchmarks/onednn_accuracy.py [--seeds 10] [--epochs 10] [--out /tmp/onednn_accuracy] \\
        [-- STUDY FLAGS, e.g. --dataset sample --batch-size 32]

oneDNN changes only the round-off of each step, but round-off compounds over a training run, so this is
measured, not assumed. It runs `python -m keras_latent.study` twice on the same seeds and data, once with
TensorFlow's oneDNN ops off (`TF_ENABLE_ONEDNN_OPTS=0`, what AVX2 CPUs ran before issue 24) and once on
(the default), into `OUT/onednn-off` and `OUT/onednn-on`; the setting is read when TensorFlow is imported, so
it cannot be a variant inside one study. Both studies train the default model ("two-output") and the
classifier-only baseline per seed. Then, for each variant, it pairs the two studies' runs by seed and prints
each side's mean test accuracy with its 95% interval and the study's conclusion sentence for on against off
(paired difference, its interval, the two-sided paired t-test: `keras_latent.studies.statistics`, as `study`
computes them). Rerunning the same command continues both studies (finished runs are kept).
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys

from keras_latent.cli import run_cli
from keras_latent.errors import UsageError
from keras_latent.machine import describe_cpu
from keras_latent.runs import layout
from keras_latent.studies.statistics import comparison, variant_summary

SETTINGS = {"onednn-off": "0", "onednn-on": "1"}
# TensorFlow's own answer (keras_latent.machine.tensorflow_onednn_on; the flag machine.onednn_rewrites reads is
# only what was asked for); its private name missing reads as unknown
ONEDNN_PROBE = """import tensorflow
from keras_latent.machine import tensorflow_onednn_on
on = tensorflow_onednn_on()
print("unknown" if on is None else "on" if on else "off")
"""


def onednn_in_tensorflow(onednn: str) -> str:
    """Whether TensorFlow's oneDNN rewrites are on in a child process with TF_ENABLE_ONEDNN_OPTS=`onednn`."""
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", ONEDNN_PROBE], capture_output=True, text=True, env=env)
    return (done.stdout.strip().splitlines() or ["unknown"])[-1]


def run_study(out: str, onednn: str, seeds: int, epochs: int, study_flags: list[str]) -> None:
    """One study in a child process, with TF_ENABLE_ONEDNN_OPTS set before TensorFlow is imported."""
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn)
    command = [sys.executable, "-m", "keras_latent.study", "--seeds", str(seeds), "--epochs", str(epochs),
               "--out", out, "-q", *study_flags]
    if subprocess.run(command, env=env).returncode != 0:
        raise UsageError(f"the study in {out} (TF_ENABLE_ONEDNN_OPTS={onednn}) failed; see its output above")


def study_rows(study_dir: str, setting: str) -> list[dict]:
    """A study's study.csv rows as `studies.statistics` takes them, each variant named with the setting:
    "two-output (onednn-on)"."""
    with open(layout.STUDY_CSV.path(study_dir), newline="") as f:
        return [{"variant": f"{row['variant']} ({setting})", "seed": int(row["seed"]),
                 "test_accuracy": float(row["test_accuracy"]), "per_class_accuracy": {}}
                for row in csv.DictReader(f)]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    own, study_flags = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", default="/tmp/onednn_accuracy", help="folder of the two studies")
    args = p.parse_args(own)
    if args.seeds < 2 or args.epochs < 1:
        raise UsageError(f"--seeds must be >= 2 and --epochs >= 1 (got {args.seeds}, {args.epochs})")
    print(f"CPU: {describe_cpu().describe()}")
    states = {onednn: onednn_in_tensorflow(onednn) for onednn in SETTINGS.values()}
    for onednn, state in states.items():  # both checked before anything trains
        if state != ("on" if onednn == "1" else "off"):  # else the two studies would not differ
            raise UsageError(f"with TF_ENABLE_ONEDNN_OPTS={onednn} TensorFlow's oneDNN rewrites are {state}; this "
                             "comparison needs them off at 0 and on at 1 (an x86-64 CPU)")
    rows = []
    for name, onednn in SETTINGS.items():
        state = states[onednn]
        folder = os.path.join(args.out, name)
        print(f"study {name} (TF_ENABLE_ONEDNN_OPTS={onednn}: TensorFlow's oneDNN rewrites {state}) -> {folder}",
              flush=True)
        run_study(folder, onednn, args.seeds, args.epochs, study_flags)
        rows += study_rows(folder, name)
    print(f"\ntest accuracy, {args.seeds} seeds, {args.epochs} epochs; paired by seed: oneDNN on against off")
    for variant in dict.fromkeys(row["variant"].rsplit(" (", 1)[0] for row in rows):
        off, on = f"{variant} (onednn-off)", f"{variant} (onednn-on)"
        for name in (off, on):
            accuracy = variant_summary(rows, name, [])["test_accuracy"]
            if accuracy["n"]:
                print(f"{name}: mean {accuracy['mean']:.4f} (95% CI {accuracy['ci_low']:.4f} to "
                      f"{accuracy['ci_high']:.4f}), {accuracy['n']} seeds")
        print(comparison(rows, on, off, [])["conclusion"])
    print(f"CPU: {describe_cpu().describe()}")


if __name__ == "__main__":
    run_cli(main)
