"""benchmarks/: the throughput and explorer-latency scripts run end to end and report every figure (no timing
asserted)."""
import json
import subprocess
import sys

import pytest
from helpers import REPO


@pytest.mark.slow
def test_train_throughput_runs_ours_and_a_variant(tmp_path):
    out = tmp_path / "throughput.json"
    args = [sys.executable, "benchmarks/train_throughput.py", "--repeats", "1", "--epochs", "2", "--models", "default",
            "--batch-sizes", "64", "--variant", "plain=--no-sub-pixel-decoder", "--emulate", "avx2", "--out", str(out)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "ratio ours/reference (median images/s): no reference run (pass --torch-python)"
    # the machine, named first and again next to the ratio, with the ISA emulated and what TensorFlow really runs
    assert lines[0].startswith("CPU: ") and "emulated AVX2 (ONEDNN_MAX_CPU_ISA=AVX2" in lines[0]
    assert lines[-2] == lines[0]
    assert lines[1].startswith("  TensorFlow runs: oneDNN") and "XLA --xla_cpu_max_isa=AVX2" in lines[1]
    table = [line.split() for line in lines if line.split()[:2] in (["keras", "64"], ["plain", "64"])]
    assert [row[0] for row in table] == ["keras", "plain"]
    result = json.loads(out.read_text())
    assert {r["system"] for r in result["runs"]} == {"keras", "plain"}
    assert result["environment"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    for run in result["runs"]:
        assert run["images_per_s"] > 0 and 0 < run["test_accuracy"] <= 1 and run["formulation_source"] == "defaults"


def test_train_throughput_rejects_a_bad_torch_python(tmp_path):
    args = [sys.executable, "benchmarks/train_throughput.py", "--torch-python", str(tmp_path / "missing")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--torch-python" in done.stderr, done.stderr


@pytest.mark.slow
def test_explore_latency_reports_each_client_count(trained_run):
    args = [sys.executable, "benchmarks/explore_latency.py", trained_run, "--clients", "1,3", "--interactions", "6",
            "--picks", "2"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("explorer click-to-image latency (conv2 toggle") and "cores, ISA" in lines[0]
    result = json.loads(lines[-1])
    assert set(result["toggle"]) == {"1", "3"} and result["toggle"]["3"]["n"] == 6
    for figures in [*result["toggle"].values(), result["pick_1_client"]]:
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]


@pytest.mark.slow
def test_full_size_benchmark_prints_both_figures_and_says_it_is_for_speed(tmp_path):
    """The headline benchmark at tiny sizes: it makes its folder, runs ours (and the reference where torch is
    installed) and prints one table row per system with every figure, the ratios and the CPU."""
    args = [sys.executable, "benchmarks/full_size.py", "--folder", str(tmp_path / "data"), "--train", "300",
            "--test", "100", "--epochs", "2", "--batch-size", "64"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.count("for speed, not accuracy") >= 2  # where the folder is made, and above the table
    assert (tmp_path / "data" / "test_batch").is_file() and (tmp_path / "data" / "data_batch_5").is_file()
    lines = out.strip().splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["system", "wall"])
    assert all(h in lines[head] for h in ("whole epochs img/s", "training steps img/s", "peak RSS MB"))
    rows = [line.split() for line in lines[head + 1:] if line.split()[0] in ("keras", "torch")]
    assert rows and rows[0][0] == "keras"
    for row in rows:
        assert len(row) == 6 and all(float(v) > 0 for v in row[1:5]) and 0 <= float(row[5]) <= 1
    with_torch = any(row[0] == "torch" for row in rows)
    assert ("ratio ours/reference: wall time" in out) == with_torch
    assert lines[-1].startswith("CPU: ") and " ISA " in lines[-1]
