"""Benchmark: training images/s of `python -m keras_latent.train` against the PyTorch eager reference.

    python benchmarks/train_throughput.py --torch-python /root/torchvenv/bin/python \\
        [--repeats 3] [--epochs 10] [--batch-sizes 128,32] [--emulate avx2] [--out results.json] [--ablations]

Every run is a fresh process. Ours trains exactly as the training CLI does (the CLI's flag parser and
`keras_latent.training.train`: the formulation chosen for this machine, tf.data pipeline, compile,
`fit` with validation and every run callback, then reports, SavedModel and model.keras) on the
bundled sample, with a timer callback added. The reference is `torch_ref.py` (the same model, loss
and SGD in plain PyTorch eager) on the same images, batch size, learning rate and epochs. Like is
compared with like: our default model (which also trains the layer decoder, output
`reconstruction_conv1`) against `torch_ref.py --layer-decoder`, and `--no-layer-decoders` (the
tutorial's model) against plain `torch_ref.py` (`--models` picks). Runs alternate ours / reference
(the order flips every repeat), so both meet the same load.

The first lines name the machine: CPU model, cores, ISA, and the ISA each library really runs (oneDNN's
and MKL's own reports, PyTorch's dispatch level); `--emulate avx2` caps TensorFlow (oneDNN, XLA's code
generator) and PyTorch (ATen, oneDNN, MKL) to AVX2 on a newer CPU, and checks that each cap took effect.

Per run: `images/s` = training images x (epochs - 1) / seconds of the training steps of epochs
2..E (epoch 1, with tracing, is excluded; for ours an epoch's training steps run from its start to
the start of its validation pass, so validation, history/TensorBoard/backup writes and
reconstruction snapshots are not in it); `fit img/s` = whole epochs, with all of that, over epochs 2..E
(the reference's whole epochs: `torch_ref.py --whole-epochs`, which evaluates the test split after every
epoch, as the seed does and as our validation pass does);
`cores` = process CPU seconds / wall seconds over the same steps; `RSS MB` = peak resident memory
of the process; `import` = its resident memory once its framework (TensorFlow and Keras, or PyTorch) is
imported, before anything is built (a floor neither run's code lowers); `test acc` = test-split accuracy
after the last epoch; `others` = the most cores other processes used during a run (0 on a quiet machine).
The table shows min and median over the repeats; the last lines are the ratios of median images/s, ours /
reference, per model and batch size, for training steps and for whole epochs, with the machine named
again; in brackets beside each, the lowest and highest ratio of one repeat's pair of runs (run back to
back), its spread over the repeats; then peak memory ours / reference, with each framework's import and
what each run added after it.

`--variant NAME=FLAGS` adds one of our configurations (training-CLI flags, led by optional
environment variables: `--variant spe1=--steps-per-execution=1`, `--variant
no-onednn=TF_ENABLE_ONEDNN_OPTS=0`), run in the same alternation; `--ablations` adds one variant
per performance choice switched the other way. The ratio lines always use our defaults.
"""
from __future__ import annotations

import argparse
import json
import os
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
from keras_latent.machine import EMULATIONS, OtherLoad, resident_mb, wait_until_quiet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_TORCH_REF = os.path.join(REPO, "benchmarks", "torch_ref.py")  # the project's own PyTorch reference
RESULT_PREFIX = "THROUGHPUT_RESULT "
ABLATIONS = {  # each performance choice of keras_latent.train switched the other way
    "static": "--no-calibrate",  # the static formulation: graph, no batch split, TensorFlow's threads
    "graph": "--no-jit-compile",  # the calibration's choice without XLA
    "xla": "--jit-compile",  # ... with XLA
    "no-split": "--batch-split=1",  # ... without the batch split
    "one-thread": "--intra-op-threads=1 --inter-op-threads=1 --batch-split=1",
    "spe1": "--steps-per-execution=1",
    "bf16": "--mixed-precision",
    "no-onednn": "TF_ENABLE_ONEDNN_OPTS=0",
    "no-sub-pixel": "--no-sub-pixel-decoder",
}
MODELS = {  # our flags and the reference's for each model compared like with like
    "default": ("", ["--layer-decoder"]),  # ours trains reconstruction_conv1 by default
    "plain": ("--no-layer-decoders", []),  # the tutorial's model
}
FIGURES = ("images_per_s", "fit_images_per_s", "cores_busy", "peak_rss_mb", "import_rss_mb", "test_accuracy",
           "other_processes_cores")


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
    from keras_latent.runs.records import load_config
    from keras_latent.train import build_parser
    from keras_latent.training.options import config_from_flags

    with tempfile.TemporaryDirectory(prefix="throughput_") as tmp:
        args = build_parser().parse_args(cli_flags + ["--out", os.path.join(tmp, "run"), "--overwrite"])
        import keras
        import tensorflow as tf

        import_rss_mb = resident_mb()  # the framework loaded, nothing trained yet
        from keras_latent.training import distribute
        from keras_latent.training import fit as training

        timer = make_epoch_timer()
        metrics = training.train(config_from_flags(args), args.out, overwrite=True, verbose=0, callbacks=[timer])
        config = load_config(args.out)  # with the formulation train() chose
    n, timed = metrics["train_images"] * (config.epochs - 1), slice(1, None)
    train_s, epoch_s = sum(timer.train_s[timed]), sum(timer.epoch_s[timed])
    threads = distribute.current_threads()
    return {"framework": "keras", "batch_size": config.batch_size, "epochs": config.epochs,
            "images_per_s": round(n / train_s, 1), "fit_images_per_s": round(n / epoch_s, 1),
            "cores_busy": round(sum(timer.train_cpu_s[timed]) / train_s, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # Linux: KiB
            "import_rss_mb": import_rss_mb and round(import_rss_mb, 1),
            "test_accuracy": round(metrics["test_accuracy"], 4), "train_images": metrics["train_images"],
            "test_reconstruction_mse": round(metrics["test_reconstruction_mse"], 5),
            "first_epoch_s": round(timer.epoch_s[0], 2), "train_s": [round(t, 3) for t in timer.train_s],
            "epoch_s": [round(t, 3) for t in timer.epoch_s], "threads": threads,
            "steps_per_execution": config.steps_per_execution, "jit_compile": config.jit_compile,
            "batch_split": config.batch_split, "formulation_source": config.formulation_source,
            "mixed_precision": config.mixed_precision, "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}


# ---------------------------------------------------------------- launching runs


def launch(command: list[str], timeout_s: float, env: dict) -> tuple[dict, float, float | None]:
    """Run one benchmark process; return its JSON result, wall seconds and the cores other processes used."""
    start, env = time.perf_counter(), {**os.environ, **env}
    try:
        with OtherLoad() as others:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=REPO, env=env)
    except subprocess.TimeoutExpired:
        raise UsageError(f"benchmark run timed out after {timeout_s:.0f} s: {shlex.join(command)}") from None
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX) or line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UsageError(f"benchmark run failed (exit {proc.returncode}): {shlex.join(command)}: {tail[0]}")
    return json.loads(lines[-1].removeprefix(RESULT_PREFIX)), wall, others.cores


def reference_run(args, batch_size: int, data_dir: str, lr: float, flags: list[str],
                  env: dict) -> tuple[dict, float, float | None]:
    command = [args.torch_python, args.torch_ref, "--data", data_dir, "--batch-size", str(batch_size),
               "--epochs", str(args.epochs), "--lr", str(lr), "--seed", "0", "--masked-reps", "10", "--whole-epochs",
               *flags]
    r, wall, others = launch(command, args.timeout, env)
    return ({"framework": "torch", "batch_size": r["batch_size"], "epochs": r["epochs"],
             "images_per_s": r["images_per_s"], "fit_images_per_s": r["whole_epoch_images_per_s"],
             "train_images": r["train_images"], "cores_busy": r["cores_busy"], "peak_rss_mb": r["peak_rss_mb"],
             "import_rss_mb": r.get("import_rss_mb"),
             "test_accuracy": r["test_acc"], "test_reconstruction_mse": r["test_recon_mse"],
             "first_epoch_s": r["first_epoch_s"], "threads": r["threads"], "config": r["config"],
             "versions": {"torch": r["version"]}}, wall, others)


def ours_run(args, batch_size: int, flags: str, env: dict) -> tuple[dict, float, float | None]:
    """One run of ours; leading NAME=VALUE words of `flags` are environment variables."""
    words, env = shlex.split(flags), dict(env)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    cli = ["--dataset", args.dataset, "--batch-size", str(batch_size), "--epochs", str(args.epochs)]
    if args.lr is not None:
        cli += ["--lr", str(args.lr)]
    return launch([sys.executable, os.path.abspath(__file__), "--run-ours", shlex.join(cli + words)],
                  args.timeout, env)


def run_all(args, systems: dict[str, tuple[str, object]], batch_sizes: list[int], data_dir: str, lr: float,
            env: dict) -> list:
    """Every repeat x batch size x system, alternating systems (order reversed every other repeat).

    `systems`: name -> ("ours", training-CLI flags) or ("torch", torch_ref.py flags)."""
    runs, names = [], list(systems)
    for repeat in range(args.repeats):
        for batch_size in batch_sizes:
            for system in names if repeat % 2 == 0 else names[::-1]:
                kind, flags = systems[system]
                for attempt in range(1 + args.retries):
                    wait_until_quiet(args.quiet_wait)
                    if kind == "torch":
                        result, wall, others = reference_run(args, batch_size, data_dir, lr, flags, env)
                    else:
                        result, wall, others = ours_run(args, batch_size, flags, env)
                    if others is None or others <= args.max_others or attempt == args.retries:
                        break
                    print(f"  repeat {repeat + 1}/{args.repeats} batch {batch_size:4d} {system:12s} disturbed "
                          f"(other processes used {others} cores): again", flush=True)
                result.update(system=system, repeat=repeat, wall_s=round(wall, 1), other_processes_cores=others,
                              attempts=attempt + 1)
                runs.append(result)
                print(f"  repeat {repeat + 1}/{args.repeats} batch {batch_size:4d} {system:12s} "
                      f"{result['images_per_s']:8.0f} images/s  cores {result['cores_busy']}  acc "
                      f"{result['test_accuracy']:.4f}  ({wall:.0f} s, others {others} cores)", flush=True)
    return runs


# ---------------------------------------------------------------- the machine

TF_ISA_PROBE = """import tensorflow as tf
x = tf.random.normal([2, 8, 8, 3]); w = tf.random.normal([3, 3, 3, 4])
tf.nn.conv2d(x, w, 1, "SAME")
tf.function(lambda x: tf.nn.relu(x) * 2.0, jit_compile=True)(x)  # XLA accepts XLA_FLAGS (it fails on a bad one)
"""
TORCH_ISA_PROBE = """import torch
torch.nn.functional.conv2d(torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3))
torch.nn.functional.linear(torch.randn(64, 64), torch.randn(64, 64))
print("capability", torch.backends.cpu.get_cpu_capability())
"""


def library_isa(python: str, probe: str, env: dict) -> str:
    """What ISA the libraries of `python` really run (oneDNN's and MKL's own reports, PyTorch's dispatch)."""
    env = {**os.environ, **env, "ONEDNN_VERBOSE": "1", "MKL_VERBOSE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=300, env=env)
    except (OSError, subprocess.SubprocessError) as err:
        return f"unknown ({err})"
    if done.returncode != 0:
        return f"probe failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    text = done.stdout + done.stderr
    found = []
    onednn = re.search(r"onednn_verbose,(?:v1,)?info,cpu,isa:([^,\n]+)", text)
    found.append(f"oneDNN {onednn.group(1).strip() if onednn else 'not used'}")
    mkl = re.search(r"MKL_VERBOSE .*? for Intel\(R\) 64 architecture (.*?), Lnx", text)
    if mkl:  # "... Intel(R) Advanced Vector Extensions 2 (Intel(R) AVX2) enabled processors" -> AVX2
        found.append("MKL " + " ".join(re.findall(r"\(Intel\(R\) ([^)]*)\)", mkl.group(1))))
    capability = re.search(r"^capability (\S+)", text, re.MULTILINE)
    if capability:
        found.append(f"ATen {capability.group(1)}")
    return ", ".join(found)


def describe_machine(args, env: dict) -> list[str]:
    """Lines naming the CPU, whether its ISA is real or emulated, and what each library runs."""
    from keras_latent import machine

    cpu = machine.describe_cpu(environ={**os.environ, **env})
    how = f"emulated {args.emulate.upper()} ({', '.join(f'{k}={v}' for k, v in env.items())})" if args.emulate \
        else "real ISA"
    lines = [f"CPU: {cpu.model}, {cpu.cores} cores, ISA {' '.join(cpu.isa) or 'unknown'}; {how}",
             f"  TensorFlow runs: {library_isa(sys.executable, TF_ISA_PROBE, env)}"
             + (f"; XLA --xla_cpu_max_isa={dict(cpu.isa_caps)['--xla_cpu_max_isa']}"
                if "--xla_cpu_max_isa" in dict(cpu.isa_caps) else "")]
    if args.torch_python:
        lines.append(f"  PyTorch runs: {library_isa(args.torch_python, TORCH_ISA_PROBE, env)}")
    return lines


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
            f"{'cores':>5s} {'RSS MB':>6s} {'import':>6s} {'test acc':>8s} {'others':>6s}")
    print(head + "\n" + "-" * len(head))
    for batch_size in batch_sizes:
        for system, by_batch in summary.items():
            s = by_batch[str(batch_size)]
            fit = s.get("fit_images_per_s", {}).get("median")
            others = s.get("other_processes_cores", {}).get("max")
            imported = s.get("import_rss_mb", {}).get("median")
            print(f"{system:{w}s} {batch_size:5d} {s['images_per_s']['min']:12.0f} {s['images_per_s']['median']:7.0f} "
                  f"{'-' if fit is None else f'{fit:.0f}':>9s} {s['cores_busy']['median']:5.2f} "
                  f"{s['peak_rss_mb']['median']:6.0f} {'-' if imported is None else f'{imported:.0f}':>6s} "
                  f"{s['test_accuracy']['median']:8.4f} "
                  f"{'?' if others is None else f'{others:.1f}':>6s}")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch-python", help="python of a venv with torch (CPU) and numpy; omitted: ours only")
    p.add_argument("--torch-ref", default=DEFAULT_TORCH_REF, help="the PyTorch reference script")
    p.add_argument("--repeats", type=int, default=3, help="runs of each system and batch size (>= 3 for min/median)")
    p.add_argument("--epochs", type=int, default=10, help="epochs per run (the first is excluded from images/s)")
    p.add_argument("--batch-sizes", default="128,32", help="comma-separated batch sizes")
    p.add_argument("--models", default="default,plain",
                   help="comma-separated: default (ours vs torch_ref.py --layer-decoder), plain (ours "
                        "--no-layer-decoders vs torch_ref.py)")
    p.add_argument("--lr", type=float, default=None, help="learning rate of both (default: keras_latent.train's)")
    p.add_argument("--dataset", default="sample", help="sample (bundled) or a cifar-10-batches-py folder")
    p.add_argument("--emulate", choices=sorted(EMULATIONS), default=None,
                   help="cap both systems' libraries to this ISA (a newer CPU emulating an older one)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                   help="also run ours (default model) with these training-CLI flags (repeatable)")
    p.add_argument("--ablations", action="store_true", help="add a variant per performance choice switched")
    p.add_argument("--quiet-wait", type=float, default=0, metavar="SECONDS",
                   help="before each run wait up to this long for other processes to use < 0.3 cores")
    p.add_argument("--max-others", type=float, default=float("inf"), metavar="CORES",
                   help="rerun a run during which other processes used more cores than this (e.g. 0.2)")
    p.add_argument("--retries", type=int, default=5, help="reruns allowed per run with --max-others")
    p.add_argument("--timeout", type=float, default=1200, help="seconds allowed per run")
    p.add_argument("--out", help="write every run and the summary as JSON here")
    p.add_argument("--run-ours", help=argparse.SUPPRESS)  # internal: one run of ours with these CLI flags
    return p.parse_args(argv)


def check_args(args) -> tuple[list[int], dict[str, tuple[str, object]], list[tuple[str, str, int]], str]:
    """(batch sizes, systems, comparisons (ours, reference, model), data folder) from the flags, checked."""
    from keras_latent.data.sources import bundled_sample_dir

    try:
        batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    except ValueError:
        raise UsageError(f"--batch-sizes must be comma-separated integers like 128,32, "
                         f"got {args.batch_sizes!r}") from None
    if not batch_sizes or min(batch_sizes) < 1 or args.repeats < 1 or args.epochs < 2:
        raise UsageError(f"need batch sizes >= 1, --repeats >= 1 and --epochs >= 2, got {args.batch_sizes!r}, "
                         f"{args.repeats} and {args.epochs}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or any(m not in MODELS for m in models):
        raise UsageError(f"--models must be comma-separated names from {', '.join(MODELS)}, got {args.models!r}")
    data_dir = bundled_sample_dir() if args.dataset == "sample" else args.dataset
    if not os.path.isfile(os.path.join(data_dir, "test_batch")):
        raise UsageError(f"--dataset must be sample or a cifar-10-batches-py folder with test_batch, "
                         f"got {args.dataset!r}")
    if args.torch_python and not (os.path.isfile(args.torch_python) and os.access(args.torch_python, os.X_OK)):
        raise UsageError(f"--torch-python {args.torch_python!r} is not an executable python")
    if args.torch_python and not os.path.isfile(args.torch_ref):
        raise UsageError(f"--torch-ref {args.torch_ref!r} does not exist (the PyTorch reference script)")
    systems, comparisons = {}, []
    for model in models:
        ours_flags, torch_flags = MODELS[model]
        ours, reference = ("keras", "torch") if model == "default" else (f"keras-{model}", f"torch-{model}")
        systems[ours] = ("ours", ours_flags)
        if args.torch_python:
            systems[reference] = ("torch", torch_flags)
            comparisons.append((ours, reference, model))
    for text in args.variant + ([f"{k}={v}" for k, v in ABLATIONS.items()] if args.ablations else []):
        name, sep, flags = text.partition("=")
        if not sep or not name or name in systems:
            raise UsageError(f"--variant must be NAME=FLAGS with a new name, got {text!r}")
        systems[name] = ("ours", flags)
    return batch_sizes, systems, comparisons, data_dir


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_ours is not None:
        print(RESULT_PREFIX + json.dumps(run_ours(shlex.split(args.run_ours))))
        return 0
    batch_sizes, systems, comparisons, data_dir = check_args(args)
    from keras_latent.config import TrainConfig
    from keras_latent.files import atomic_write_text
    from keras_latent.machine import emulation_environment

    env = emulation_environment(args.emulate) if args.emulate else {}
    machine_lines = describe_machine(args, env)
    print("\n".join(machine_lines), flush=True)
    lr = args.lr if args.lr is not None else TrainConfig().lr
    runs = run_all(args, systems, batch_sizes, data_dir, lr, env)
    summary = {s: {str(b): summarize([r for r in runs if r["system"] == s and r["batch_size"] == b])
                   for b in batch_sizes} for s in systems}
    ratios = {model: {str(b): round(summary[ours][str(b)]["images_per_s"]["median"]
                                    / summary[reference][str(b)]["images_per_s"]["median"], 3)
                      for b in batch_sizes} for ours, reference, model in comparisons}
    fit_ratios = {model: {str(b): round(summary[ours][str(b)]["fit_images_per_s"]["median"]
                                        / summary[reference][str(b)]["fit_images_per_s"]["median"], 3)
                          for b in batch_sizes} for ours, reference, model in comparisons}
    per_repeat = {model: {key: {str(b): paired_ratios(runs, ours, reference, b, key) for b in batch_sizes}
                          for key in ("images_per_s", "fit_images_per_s")} for ours, reference, model in comparisons}
    if args.out:
        results = {"epochs": args.epochs, "lr": lr, "repeats": args.repeats, "systems": systems,
                   "machine": machine_lines, "emulate": args.emulate, "environment": env, "cpus": os.cpu_count(),
                   "runs": runs, "summary": summary, "ratio_ours_over_reference": ratios,
                   "whole_epoch_ratio_ours_over_reference": fit_ratios, "ratios_per_repeat": per_repeat}
        atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print(f"\n{args.epochs} epochs, lr {lr}, {args.repeats} repeats; figures: see the docstring")
    print_table(summary, batch_sizes)
    print(machine_lines[0])
    if not ratios:
        print("ratio ours/reference (median images/s): no reference run (pass --torch-python)")
    for ours, reference, model in comparisons:
        steps, whole = (", ".join(f"batch {b} {medians[model][str(b)]:.2f}x{spread(per_repeat[model][key][str(b)])}"
                                  for b in batch_sizes)
                        for medians, key in ((ratios, "images_per_s"), (fit_ratios, "fit_images_per_s")))
        print(f"ratio ours/reference (median images/s), {model} model ({ours} / {reference}): training steps "
              f"{steps}; whole epochs (each with its test-split evaluation) {whole}")
    if comparisons and args.repeats > 1:
        print("(in brackets: the lowest and highest ratio of one repeat's two runs, which ran one after the other)")
    for ours, reference, model in comparisons:
        print(memory_line(summary, ours, reference, model, batch_sizes))
    return 0


def memory_line(summary: dict, ours: str, reference: str, model: str, batch_sizes: list[int]) -> str:
    """Peak resident memory ours / the reference's per batch size (medians), and how much of it each framework's
    import is: the import is a floor neither run's own code can lower, so what each run adds after it is shown too."""
    parts = []
    for b in batch_sizes:
        mine, theirs = summary[ours][str(b)], summary[reference][str(b)]
        peak_mine, peak_theirs = mine["peak_rss_mb"]["median"], theirs["peak_rss_mb"]["median"]
        part = f"batch {b} {peak_mine:.0f} / {peak_theirs:.0f} MB ({peak_mine / peak_theirs:.2f}x)"
        if "import_rss_mb" in mine and "import_rss_mb" in theirs:
            import_mine, import_theirs = mine["import_rss_mb"]["median"], theirs["import_rss_mb"]["median"]
            part += (f", of which the framework's import {import_mine:.0f} / {import_theirs:.0f} MB, added after it "
                     f"{peak_mine - import_mine:.0f} / {peak_theirs - import_theirs:.0f} MB")
        parts.append(part)
    return f"peak resident memory ours / reference, {model} model ({ours} / {reference}): {'; '.join(parts)}"


def paired_ratios(runs: list[dict], ours: str, reference: str, batch_size: int, key: str) -> list[float]:
    """Ours / the reference's `key` per repeat: the two runs of one repeat ran back to back, so a slower or
    faster spell of the machine between repeats falls on both; their spread is the ratio's error bar."""
    def by_repeat(system: str) -> dict:
        return {r["repeat"]: r[key] for r in runs
                if r["system"] == system and r["batch_size"] == batch_size and r.get(key)}
    mine, theirs = by_repeat(ours), by_repeat(reference)
    return [round(mine[k] / theirs[k], 3) for k in sorted(mine) if k in theirs]


def spread(values: list[float]) -> str:
    return f" [{min(values):.2f}-{max(values):.2f}]" if len(values) > 1 else ""


if __name__ == "__main__":
    run_cli(main)
