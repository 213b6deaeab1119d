"""Benchmark: the seed's workload, end to end: the default model, 20 epochs, on a full-size CIFAR-10 folder.

    python benchmarks/full_size.py [--folder /tmp/keras_latent_full_size] [--train 50000] [--test 10000] \\
        [--epochs 20] [--batch-size 128] [--torch-python PYTHON] [--layout cifar|images] [--emulate avx2]

Full CIFAR-10 cannot be downloaded here, so the folder (made once, cached in --folder) recycles the bundled
sample's 4,068 images into 50,000 + 10,000, flipped and shifted (`make_folder.py`): it is for speed, not
accuracy, and the output says so. Then, each in a fresh process (`train_throughput.py`'s runs): ours, the
default model trained as `python -m keras_latent.train --dataset FOLDER --epochs N --batch-size B` trains
it (the training CLI's parser and `training.train`, with a timer callback), and the PyTorch reference
(`torch_ref.py --layer-decoder --whole-epochs --data FOLDER`: the same model, loss, SGD and images, the
test split evaluated after every epoch as the seed does). Prints, for each: wall time of the whole run,
images/s of whole epochs (training plus the per-epoch test evaluation, and for ours everything else an
epoch does: history, TensorBoard, backup), images/s of the training steps alone, peak resident memory
(each process's own high-water mark, getrusage), test accuracy; the ratios ours / reference; and the
CPU model and ISA. `--torch-python` defaults to this python when it can import torch.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's keras_latent
sys.path.insert(0, HERE)
import train_throughput  # noqa: E402
from make_folder import NOTICE, make_folder  # noqa: E402

from keras_latent.cli import run_cli  # noqa: E402
from keras_latent.machine import EMULATIONS, emulation_environment  # noqa: E402

HEADER = ("system", "wall s", "whole epochs img/s", "training steps img/s", "peak RSS MB", "test acc")


def default_torch_python() -> str | None:
    done = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    return sys.executable if done.returncode == 0 else None


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "keras_latent_full_size"),
                   help="where the generated folder is made, and found again by later runs")
    p.add_argument("--train", type=int, default=50_000, help="training images")
    p.add_argument("--test", type=int, default=10_000, help="test images")
    p.add_argument("--layout", choices=("cifar", "images"), default="cifar")
    p.add_argument("--epochs", type=int, default=20, help="epochs of each run (>= 2; the first is not timed)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--torch-python", default="auto", help="python with torch for the reference (auto: this one if "
                                                          "it has torch; none: ours only)")
    p.add_argument("--emulate", choices=sorted(EMULATIONS), default=None, help="cap both systems' ISA")
    p.add_argument("--timeout", type=float, default=7200, help="seconds allowed per run")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    torch_python = default_torch_python() if a.torch_python == "auto" else (
        None if a.torch_python == "none" else a.torch_python)
    start = time.perf_counter()
    make_folder(a.folder, a.train, a.test, a.layout)
    print(f"data: {a.folder}: {a.train:,} train + {a.test:,} test images, {a.layout} layout (made or found in "
          f"{time.perf_counter() - start:.0f} s); {NOTICE}", flush=True)
    args = train_throughput.parse_args(
        ["--dataset", a.folder, "--epochs", str(a.epochs), "--batch-sizes", str(a.batch_size), "--repeats", "1",
         "--models", "default", "--timeout", str(a.timeout)]
        + (["--torch-python", torch_python] if torch_python else []) + (["--emulate", a.emulate] if a.emulate else []))
    batch_sizes, systems, comparisons, data_dir = train_throughput.check_args(args)
    env = emulation_environment(a.emulate) if a.emulate else {}
    machine_lines = train_throughput.describe_machine(args, env)
    print("\n".join(machine_lines), flush=True)
    from keras_latent.config import TrainConfig

    runs = train_throughput.run_all(args, systems, batch_sizes, data_dir, TrainConfig().lr, env)
    print(f"\nthe default model, {a.epochs} epochs, batch {a.batch_size}, on {a.train:,} + {a.test:,} images "
          f"generated from the bundled sample: for speed, not accuracy")
    widths = [max(len(h), 8) for h in HEADER]
    print("  ".join(f"{h:>{w}s}" for h, w in zip(HEADER, widths)))
    for r in runs:
        cells = (r["system"], f"{r['wall_s']:.0f}", f"{r['fit_images_per_s']:.0f}", f"{r['images_per_s']:.0f}",
                 f"{r['peak_rss_mb']:.0f}", f"{r['test_accuracy']:.4f}")
        print("  ".join(f"{c:>{w}s}" for c, w in zip(cells, widths)))
    by_system = {r["system"]: r for r in runs}
    for ours, reference, _ in comparisons:
        o, t = by_system[ours], by_system[reference]
        print(f"ratio ours/reference: wall time {o['wall_s'] / t['wall_s']:.2f}x, whole epochs "
              f"{o['fit_images_per_s'] / t['fit_images_per_s']:.2f}x, training steps "
              f"{o['images_per_s'] / t['images_per_s']:.2f}x, peak RSS {o['peak_rss_mb'] / t['peak_rss_mb']:.2f}x")
    if not comparisons:
        print("ratio ours/reference: no reference run (torch not found; pass --torch-python)")
    print(machine_lines[0])
    return 0


if __name__ == "__main__":
    run_cli(main)
