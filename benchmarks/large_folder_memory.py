"""Benchmark: peak resident memory of `python -m keras_latent.train` on a large generated folder.

    python benchmarks/large_folder_memory.py [--folder /tmp/kl_110k] [--train 100000] [--test 10000] \\
        [--layout cifar] [--epochs 1] [--budgets 1024,0] [-- MORE TRAINING FLAGS]

Makes (once, cached in --folder) a folder of --train + --test images recycled from the bundled sample
(`make_folder.py`: flips and shifts; for speed and memory, not accuracy), then trains the default model
on it for --epochs epochs once per --data-memory-budget of --budgets (1024: in memory when the
decoded images fit; 0: always streamed from disk), each in a fresh process. Prints, per run, the peak
resident memory (the kernel's own high-water mark of the child, getrusage RUSAGE_CHILDREN) and where it was
reached: the child's resident memory is sampled every 0.2 s and each of its log lines is printed with the
highest value seen so far, so the phase that grew it can be read off.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's keras_latent
sys.path.insert(0, HERE)
from make_folder import NOTICE, make_folder  # noqa: E402

from keras_latent import machine  # noqa: E402


def train_and_watch(command: list[str], env: dict) -> tuple[int, float, list[str]]:
    """Run `command`; return (exit code, peak RSS MB by the kernel, its log lines each with the peak so far)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    peak = [0.0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            value = machine.resident_mb(proc.pid)
            if value:
                peak[0] = max(peak[0], value)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = [f"[peak so far {peak[0]:6.0f} MB] {line.rstrip()}" for line in proc.stdout]
    code = proc.wait()
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child's: valid when this child is the largest so far
    return code, max(after, before) / 1024 if after > before else peak[0], lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "keras_latent_110k"),
                   help="where the generated folder is made (reused when complete)")
    p.add_argument("--train", type=int, default=100_000)
    p.add_argument("--test", type=int, default=10_000)
    p.add_argument("--layout", choices=("cifar", "images"), default="cifar")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--budgets", default="1024,0", help="comma-separated --data-memory-budget values (MB)")
    p.add_argument("flags", nargs="*", help="more training flags (after --)")
    a = p.parse_args(argv)
    cpu = machine.describe_cpu()
    print(f"CPU: {cpu.describe()}")
    start = time.perf_counter()
    make_folder(a.folder, a.train, a.test, a.layout)
    print(f"data: {a.folder}: {a.train:,} train + {a.test:,} test images ({a.layout} layout, "
          f"{(a.train + a.test) * 3072 / 1e6:,.0f} MB decoded; made or found in {time.perf_counter() - start:.0f} s); "
          f"{NOTICE}", flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.path.dirname(HERE),
                                                                      os.environ.get("PYTHONPATH")]))}
    rows = []
    for budget in [float(b) for b in a.budgets.split(",")]:
        with tempfile.TemporaryDirectory(prefix="kl_memory_") as tmp:
            command = [sys.executable, "-m", "keras_latent.train", "--dataset", a.folder, "--epochs",
                       str(a.epochs), "--data-memory-budget", f"{budget:g}", "--out", os.path.join(tmp, "run"),
                       "--snapshot-epochs", "0", *a.flags]
            start = time.perf_counter()
            code, peak, lines = train_and_watch(command, env)
            wall = time.perf_counter() - start
        print(f"\n--data-memory-budget {budget:g}: exit {code}, {wall:.0f} s, peak RSS {peak:,.0f} MB")
        print("\n".join(line for line in lines if "WARNING" not in line or "keras_latent" in line))
        rows.append((budget, code, wall, peak))
    print(f"\n{'budget MB':>9s} {'exit':>4s} {'wall s':>7s} {'peak RSS MB':>11s}")
    for budget, code, wall, peak in rows:
        print(f"{budget:9g} {code:4d} {wall:7.0f} {peak:11,.0f}")
    print(f"CPU: {cpu.describe()}; {a.train + a.test:,} images, {a.epochs} epoch(s); {NOTICE}")
    return 0 if all(r[1] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
