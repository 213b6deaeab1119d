"""Benchmark: does turning oneDNN on (keras_latent does so on x86-64, issue 24) change test accuracy?

    python benchmarks/onednn_accuracy.py [--seeds 10] [--epochs 10] [--out /tmp/onednn_accuracy] \\
        [-- STUDY FLAGS, e.g. --dataset sample --batch-size 32]

oneDNN changes only the round-off of each step, but round-off compounds over a training run, so this is
measured, not assumed. It runs `python -m keras_latent.study` twice on the same seeds and data, once with
TensorFlow's oneDNN ops off (`TF_ENABLE_ONEDNN_OPTS=0`, what AVX2 CPUs ran before issue 24) and once on
(the default), into `OUT/onednn-off` and `OUT/onednn-on`; the setting is read when TensorFlow is imported, so
it cannot be a variant inside one study. Both studies train the default model ("two-output") and the
classifier-only baseline per seed. Then, for each variant, it pairs the two studies' runs by seed and prints
each side's mean test accuracy with its 95% interval and the paired difference (on - off) with its interval
and the two-sided paired t-test's p-value (`keras_latent.stats`, as `study` computes them). Rerunning the same
command continues both studies (finished runs are kept).
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
from keras_latent.stats import mean_interval, paired_difference, significant

SETTINGS = {"onednn-off": "0", "onednn-on": "1"}
# TensorFlow's own answer (the flag keras_latent.machine.onednn_rewrites reads is only what was asked for);
# private, so a missing name is reported as unknown
ONEDNN_PROBE = """try:
    from tensorflow.python.util._pywrap_util_port import IsMklEnabled
    print("on" if IsMklEnabled() else "off")
except ImportError:
    print("unknown")
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


def accuracies(study_dir: str) -> dict[str, dict[int, float]]:
    """{variant: {seed: test accuracy}} from a study's study.csv."""
    with open(layout.STUDY_CSV.path(study_dir), newline="") as f:
        rows = list(csv.DictReader(f))
    result: dict[str, dict[int, float]] = {}
    for row in rows:
        result.setdefault(row["variant"], {})[int(row["seed"])] = float(row["test_accuracy"])
    return result


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    study_flags = argv[argv.index("--") + 1:] if "--" in argv else []
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", default="/tmp/onednn_accuracy", help="folder of the two studies")
    args = p.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.seeds < 2 or args.epochs < 1:
        raise UsageError(f"--seeds must be >= 2 and --epochs >= 1 (got {args.seeds}, {args.epochs})")
    print(f"CPU: {describe_cpu().describe()}")
    results = {}
    for name, onednn in SETTINGS.items():
        state = onednn_in_tensorflow(onednn)
        if state != {"0": "off", "1": "on"}[onednn]:  # else the two studies would not differ
            raise UsageError(f"with TF_ENABLE_ONEDNN_OPTS={onednn} TensorFlow's oneDNN rewrites are {state}; this "
                             "comparison needs them off at 0 and on at 1 (an x86-64 CPU)")
        folder = os.path.join(args.out, name)
        print(f"study {name} (TF_ENABLE_ONEDNN_OPTS={onednn}: TensorFlow's oneDNN rewrites {state}) -> {folder}",
              flush=True)
        run_study(folder, onednn, args.seeds, args.epochs, study_flags)
        results[name] = accuracies(folder)
    off, on = results["onednn-off"], results["onednn-on"]
    print(f"\ntest accuracy, {args.seeds} seeds, {args.epochs} epochs; paired by seed: oneDNN on - off")
    for variant in sorted(set(off) & set(on)):
        seeds = sorted(set(off[variant]) & set(on[variant]))
        a, b = [on[variant][s] for s in seeds], [off[variant][s] for s in seeds]
        off_ci, on_ci, diff = mean_interval(b), mean_interval(a), paired_difference(a, b)
        verdict = "significant" if significant(diff["p_value"]) else "not significant"
        print(f"{variant}: off {off_ci['mean']:.4f} (95% CI {off_ci['ci_low']:.4f} to {off_ci['ci_high']:.4f}), "
              f"on {on_ci['mean']:.4f} (95% CI {on_ci['ci_low']:.4f} to {on_ci['ci_high']:.4f}); "
              f"on - off {100 * diff['difference']:+.2f} points (95% CI {100 * diff['ci_low']:+.2f} to "
              f"{100 * diff['ci_high']:+.2f}; paired t-test p = {diff['p_value']:.3g}; {len(seeds)} seeds): "
              f"{verdict} at the 0.05 level")
    print(f"CPU: {describe_cpu().describe()}")


if __name__ == "__main__":
    run_cli(main)
