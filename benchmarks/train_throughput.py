"""Benchmark: training images/s of `python -m keras_latent.train` against the PyTorch eager reference.

    python benchmarks/train_throughput.py --torch-python /root/torchvenv/bin/python \\
        [--repeats 3] [--epochs 10] [--batch-sizes 128,32] [--out results.json] [--ablations]

Every run is a fresh process. Ours trains the default model exactly as the training CLI does (the
CLI's flag parser, thread settings and `keras_latent.training.train`: same tf.data pipeline,
compile, `fit` with validation and every run callback, then reports, SavedModel and model.keras)
on the bundled sample, with a timer callback added. The reference is `torch_ref.py` (same model,
loss and SGD in plain PyTorch eager) on the same images, batch size, learning rate and epochs.
Runs alternate ours / reference (the order flips every repeat), so both meet the same load.

Per run: `images/s` = training images x (epochs - 1) / seconds of the training steps of epochs
2..E (epoch 1, with tracing, is excluded; for ours an epoch's training steps run from its start to
the start of its validation pass, so validation, history/TensorBoard/backup writes and
reconstruction snapshots are not in it; `fit img/s` is whole epochs, with all of that);
`cores` = process CPU seconds / wall seconds over the same steps; `RSS MB` = peak resident memory
of the process; `test acc` = test-split accuracy after the last epoch; `others` = the most cores
other processes used during a run (0 on a quiet machine). The table shows min and median over the
repeats; the last line is the ratio of median images/s, ours / reference, per batch size.

`--variant NAME=FLAGS` adds one of our configurations (training-CLI flags, led by optional
environment variables: `--variant spe1=--steps-per-execution=1`, `--variant
no-onednn=TF_ENABLE_ONEDNN_OPTS=0`), run in the same alternation; `--ablations` adds one variant
per performance choice switched the other way. The ratio line always uses our defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from keras_latent.cli import run_cli
from keras_latent.errors import UsageError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_TORCH_REF = os.path.join(REPO, "benchmarks", "torch_ref.py")  # the project's own PyTorch reference
RESULT_PREFIX = "THROUGHPUT_RESULT "
ABLATIONS = {  # each performance choice of keras_latent.train switched the other way
    "spe1": "--steps-per-execution=1",
    "xla": "--jit-compile",
    "bf16": "--mixed-precision",
    "no-onednn": "TF_ENABLE_ONEDNN_OPTS=0",
    "no-sub-pixel": "--no-sub-pixel-decoder",
}
FIGURES = ("images_per_s", "fit_images_per_s", "cores_busy", "peak_rss_mb", "test_accuracy", "other_processes_cores")


# ---------------------------------------------------------------- one run of ours (in its own process)


def make_epoch_timer():
    """A Keras callback timing each epoch: its training steps (wall and CPU) and the whole epoch."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.train_s, self.train_cpu_s, self.epoch_s = [], [], []  # one value per epoch
            self._start = None

        def on_epoch_begin(self, epoch, logs=None):  # first of the run's callbacks: others' epoch-end work is over
            now = time.perf_counter()
            if self._start is not None:
                self.epoch_s.append(now - self._start)
            self._start, self._cpu, self._training = now, time.process_time(), True

        def _training_done(self):
            if self._training:
                self.train_s.append(time.perf_counter() - self._start)
                self.train_cpu_s.append(time.process_time() - self._cpu)
                self._training = False

        def on_test_begin(self, logs=None):  # the epoch's validation pass starts
            self._training_done()

        def on_epoch_end(self, epoch, logs=None):  # without validation data
            self._training_done()

        def on_train_end(self, logs=None):
            self.epoch_s.append(time.perf_counter() - self._start)

    return EpochTimer()


def run_ours(cli_flags: list[str]) -> dict:
    """Train as `python -m keras_latent.train` does (see its main), with a timer; return the figures."""
    from keras_latent.train import build_parser
    from keras_latent.training import distribute
    from keras_latent.training.options import config_from_flags

    with tempfile.TemporaryDirectory(prefix="throughput_") as tmp:
        args = build_parser().parse_args(cli_flags + ["--out", os.path.join(tmp, "run"), "--overwrite"])
        config = config_from_flags(args)
        distribute.configure_threads(args.intra_op_threads, args.inter_op_threads)
        import keras
        import tensorflow as tf

        from keras_latent.training import fit as training

        keras.utils.set_random_seed(config.seed)
        timer = make_epoch_timer()
        metrics = training.train(config, args.out, overwrite=True, verbose=0, callbacks=[timer])
    n, timed = metrics["train_images"] * (config.epochs - 1), slice(1, None)
    train_s, epoch_s = sum(timer.train_s[timed]), sum(timer.epoch_s[timed])
    threads = (tf.config.threading.get_intra_op_parallelism_threads(),
               tf.config.threading.get_inter_op_parallelism_threads())
    return {"framework": "keras", "batch_size": config.batch_size, "epochs": config.epochs,
            "images_per_s": round(n / train_s, 1), "fit_images_per_s": round(n / epoch_s, 1),
            "cores_busy": round(sum(timer.train_cpu_s[timed]) / train_s, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # Linux: KiB
            "test_accuracy": round(metrics["test_accuracy"], 4),
            "test_reconstruction_mse": round(metrics["test_reconstruction_mse"], 5),
            "first_epoch_s": round(timer.epoch_s[0], 2), "train_s": [round(t, 3) for t in timer.train_s],
            "epoch_s": [round(t, 3) for t in timer.epoch_s], "threads": threads,
            "steps_per_execution": config.steps_per_execution, "jit_compile": config.jit_compile,
            "mixed_precision": config.mixed_precision, "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}


# ---------------------------------------------------------------- launching runs


def cpu_stat() -> tuple[int, int] | None:
    """(idle, total) CPU ticks of the whole machine from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return values[3] + values[4], sum(values)


def wait_until_quiet(max_wait_s: float, busy_below: float = 0.3) -> None:
    """Wait (at most `max_wait_s`) until other processes use under `busy_below` cores for a second."""
    deadline = time.monotonic() + max_wait_s
    while time.monotonic() < deadline:
        stat0 = cpu_stat()
        time.sleep(1.0)
        stat1 = cpu_stat()
        if not stat0 or not stat1:
            return
        busy = (1 - (stat1[0] - stat0[0]) / max(stat1[1] - stat0[1], 1)) * (os.cpu_count() or 1)
        if busy < busy_below:
            return


def launch(command: list[str], timeout_s: float, env: dict) -> tuple[dict, float, float | None]:
    """Run one benchmark process; return its JSON result, wall seconds and the cores other processes used."""
    start, stat0, child0 = time.perf_counter(), cpu_stat(), resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, **env}
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=REPO, env=env)
    except subprocess.TimeoutExpired:
        raise UsageError(f"benchmark run timed out after {timeout_s:.0f} s: {shlex.join(command)}") from None
    wall, stat1, child1 = time.perf_counter() - start, cpu_stat(), resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX) or line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UsageError(f"benchmark run failed (exit {proc.returncode}): {shlex.join(command)}: {tail[0]}")
    others = None
    if stat0 and stat1:
        own_s = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
        busy_s = ((stat1[1] - stat1[0]) - (stat0[1] - stat0[0])) / os.sysconf("SC_CLK_TCK")
        others = round(max(0.0, (busy_s - own_s) / wall), 2)
    return json.loads(lines[-1].removeprefix(RESULT_PREFIX)), wall, others


def reference_run(args, batch_size: int, data_dir: str, lr: float) -> tuple[dict, float, float | None]:
    command = [args.torch_python, args.torch_ref, "--data", data_dir, "--batch-size", str(batch_size),
               "--epochs", str(args.epochs), "--lr", str(lr), "--seed", "0", "--masked-reps", "10"]
    r, wall, others = launch(command, args.timeout, {})
    return ({"framework": "torch", "batch_size": r["batch_size"], "epochs": r["epochs"],
             "images_per_s": r["images_per_s"], "cores_busy": r["cores_busy"], "peak_rss_mb": r["peak_rss_mb"],
             "test_accuracy": r["test_acc"], "test_reconstruction_mse": r["test_recon_mse"],
             "first_epoch_s": r["first_epoch_s"], "threads": r["threads"], "versions": {"torch": r["version"]}},
            wall, others)


def ours_run(args, batch_size: int, flags: str) -> tuple[dict, float, float | None]:
    """One run of ours; leading NAME=VALUE words of `flags` are environment variables."""
    words, env = shlex.split(flags), {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    cli = ["--dataset", args.dataset, "--batch-size", str(batch_size), "--epochs", str(args.epochs)]
    if args.lr is not None:
        cli += ["--lr", str(args.lr)]
    return launch([sys.executable, os.path.abspath(__file__), "--run-ours", shlex.join(cli + words)],
                  args.timeout, env)


def run_all(args, systems: list[str], variants: dict, batch_sizes: list[int], data_dir: str, lr: float) -> list:
    """Every repeat x batch size x system, alternating systems (order reversed every other repeat)."""
    runs = []
    for repeat in range(args.repeats):
        for batch_size in batch_sizes:
            for system in systems if repeat % 2 == 0 else systems[::-1]:
                wait_until_quiet(args.quiet_wait)
                if system == "torch":
                    result, wall, others = reference_run(args, batch_size, data_dir, lr)
                else:
                    result, wall, others = ours_run(args, batch_size, variants[system])
                result.update(system=system, repeat=repeat, wall_s=round(wall, 1), other_processes_cores=others)
                runs.append(result)
                print(f"  repeat {repeat + 1}/{args.repeats} batch {batch_size:4d} {system:12s} "
                      f"{result['images_per_s']:8.0f} images/s  cores {result['cores_busy']}  acc "
                      f"{result['test_accuracy']:.4f}  ({wall:.0f} s, others {others} cores)", flush=True)
    return runs


# ---------------------------------------------------------------- results


def summarize(runs: list[dict]) -> dict:
    """min/median/max of each figure over the repeats of one (system, batch size)."""
    out = {}
    for key in FIGURES:
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = {"min": min(values), "median": round(statistics.median(values), 4), "max": max(values)}
    return out


def print_table(summary: dict, batch_sizes: list[int]) -> None:
    w = max([10] + [len(system) for system in summary])
    head = (f"{'system':{w}s} {'batch':>5s} {'images/s min':>12s} {'median':>7s} {'fit img/s':>9s} "
            f"{'cores':>5s} {'RSS MB':>6s} {'test acc':>8s} {'others':>6s}")
    print(head + "\n" + "-" * len(head))
    for batch_size in batch_sizes:
        for system, by_batch in summary.items():
            s = by_batch[str(batch_size)]
            fit = s.get("fit_images_per_s", {}).get("median")
            others = s.get("other_processes_cores", {}).get("max")
            print(f"{system:{w}s} {batch_size:5d} {s['images_per_s']['min']:12.0f} {s['images_per_s']['median']:7.0f} "
                  f"{'-' if fit is None else f'{fit:.0f}':>9s} {s['cores_busy']['median']:5.2f} "
                  f"{s['peak_rss_mb']['median']:6.0f} {s['test_accuracy']['median']:8.4f} "
                  f"{'?' if others is None else f'{others:.1f}':>6s}")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch-python", help="python of a venv with torch (CPU) and numpy; omitted: ours only")
    p.add_argument("--torch-ref", default=DEFAULT_TORCH_REF, help="the PyTorch reference script")
    p.add_argument("--repeats", type=int, default=3, help="runs of each system and batch size (>= 3 for min/median)")
    p.add_argument("--epochs", type=int, default=10, help="epochs per run (the first is excluded from images/s)")
    p.add_argument("--batch-sizes", default="128,32", help="comma-separated batch sizes")
    p.add_argument("--lr", type=float, default=None, help="learning rate of both (default: keras_latent.train's)")
    p.add_argument("--dataset", default="sample", help="sample (bundled) or a cifar-10-batches-py folder")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                   help="also run ours with these training-CLI flags (repeatable)")
    p.add_argument("--ablations", action="store_true", help="add a variant per performance choice switched")
    p.add_argument("--quiet-wait", type=float, default=0, metavar="SECONDS",
                   help="before each run wait up to this long for other processes to use < 0.3 cores")
    p.add_argument("--timeout", type=float, default=1200, help="seconds allowed per run")
    p.add_argument("--out", help="write every run and the summary as JSON here")
    p.add_argument("--run-ours", help=argparse.SUPPRESS)  # internal: one run of ours with these CLI flags
    return p.parse_args(argv)


def check_args(args) -> tuple[list[int], dict[str, str], str]:
    from keras_latent.data.sources import bundled_sample_dir

    try:
        batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    except ValueError:
        raise UsageError(f"--batch-sizes must be comma-separated integers like 128,32, "
                         f"got {args.batch_sizes!r}") from None
    if not batch_sizes or min(batch_sizes) < 1 or args.repeats < 1 or args.epochs < 2:
        raise UsageError(f"need batch sizes >= 1, --repeats >= 1 and --epochs >= 2, got {args.batch_sizes!r}, "
                         f"{args.repeats} and {args.epochs}")
    data_dir = bundled_sample_dir() if args.dataset == "sample" else args.dataset
    if not os.path.isfile(os.path.join(data_dir, "test_batch")):
        raise UsageError(f"--dataset must be sample or a cifar-10-batches-py folder with test_batch, "
                         f"got {args.dataset!r}")
    if args.torch_python and not (os.path.isfile(args.torch_python) and os.access(args.torch_python, os.X_OK)):
        raise UsageError(f"--torch-python {args.torch_python!r} is not an executable python")
    if args.torch_python and not os.path.isfile(args.torch_ref):
        raise UsageError(f"--torch-ref {args.torch_ref!r} does not exist (the PyTorch reference script)")
    variants = {"keras": ""}
    for text in args.variant + ([f"{k}={v}" for k, v in ABLATIONS.items()] if args.ablations else []):
        name, sep, flags = text.partition("=")
        if not sep or not name or name in variants or name == "torch":
            raise UsageError(f"--variant must be NAME=FLAGS with a new name, got {text!r}")
        variants[name] = flags
    return batch_sizes, variants, data_dir


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_ours is not None:
        print(RESULT_PREFIX + json.dumps(run_ours(shlex.split(args.run_ours))))
        return 0
    batch_sizes, variants, data_dir = check_args(args)
    from keras_latent.config import TrainConfig
    from keras_latent.files import atomic_write_text

    lr = args.lr if args.lr is not None else TrainConfig().lr
    systems = list(variants) + (["torch"] if args.torch_python else [])
    runs = run_all(args, systems, variants, batch_sizes, data_dir, lr)
    summary = {s: {str(b): summarize([r for r in runs if r["system"] == s and r["batch_size"] == b])
                   for b in batch_sizes} for s in systems}
    ratios = {str(b): round(summary["keras"][str(b)]["images_per_s"]["median"]
                            / summary["torch"][str(b)]["images_per_s"]["median"], 3)
              for b in batch_sizes} if args.torch_python else {}
    if args.out:
        results = {"epochs": args.epochs, "lr": lr, "repeats": args.repeats, "variants": variants,
                   "cpus": os.cpu_count(), "runs": runs, "summary": summary, "ratio_ours_over_reference": ratios}
        atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print(f"\n{args.epochs} epochs, lr {lr}, {args.repeats} repeats, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}); figures: see the docstring")
    print_table(summary, batch_sizes)
    print("ratio ours/reference (median images/s): "
          + (", ".join(f"batch {b} {ratios[str(b)]:.2f}x" for b in batch_sizes) if ratios else "no reference run "
             "(pass --torch-python)"))
    return 0


if __name__ == "__main__":
    run_cli(main)
