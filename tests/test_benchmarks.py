"""benchmarks/: the throughput script runs end to end and reports every system (no timing asserted)."""
import json
import subprocess
import sys

import pytest
from helpers import REPO


@pytest.mark.slow
def test_train_throughput_runs_ours_and_a_variant(tmp_path):
    out = tmp_path / "throughput.json"
    args = [sys.executable, "benchmarks/train_throughput.py", "--repeats", "1", "--epochs", "2",
            "--batch-sizes", "64", "--variant", "plain=--no-sub-pixel-decoder", "--out", str(out)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "ratio ours/reference (median images/s): no reference run (pass --torch-python)"
    table = [line.split() for line in lines if line.split()[:2] in (["keras", "64"], ["plain", "64"])]
    assert [row[0] for row in table] == ["keras", "plain"]
    result = json.loads(out.read_text())
    assert {r["system"] for r in result["runs"]} == {"keras", "plain"}
    for run in result["runs"]:
        assert run["images_per_s"] > 0 and 0 < run["test_accuracy"] <= 1


def test_train_throughput_rejects_a_bad_torch_python(tmp_path):
    args = [sys.executable, "benchmarks/train_throughput.py", "--torch-python", str(tmp_path / "missing")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--torch-python" in done.stderr, done.stderr
