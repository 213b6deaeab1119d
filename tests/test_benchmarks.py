"""benchmarks/: the throughput and explorer-latency scripts run end to end and report every figure (no timing
asserted)."""
import json
import os
import subprocess
import sys

import numpy as np
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
        assert 100 < run["import_rss_mb"] < run["peak_rss_mb"]  # TensorFlow's import, then training added some


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


@pytest.mark.slow
def test_onednn_accuracy_runs_both_studies_and_pairs_them_by_seed(tmp_path):
    """Two studies, oneDNN off then on (TensorFlow's own answer checked first), paired per variant and seed."""
    args = [sys.executable, "benchmarks/onednn_accuracy.py", "--seeds", "2", "--epochs", "1", "--out",
            str(tmp_path), "--", "--dataset", "sample", "--max-train-samples", "128", "--no-calibrate"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("CPU: ") and lines[-1] == lines[0]
    assert any(line.startswith("study onednn-off (TF_ENABLE_ONEDNN_OPTS=0: TensorFlow's oneDNN rewrites off)")
               for line in lines)
    assert any(line.startswith("study onednn-on (TF_ENABLE_ONEDNN_OPTS=1: TensorFlow's oneDNN rewrites on)")
               for line in lines)
    for name in ("onednn-off", "onednn-on"):
        rows = (tmp_path / name / "study.csv").read_text().strip().splitlines()[1:]
        assert sorted(row.split(",")[:2] for row in rows) == [["classifier-only", "0"], ["classifier-only", "1"],
                                                              ["two-output", "0"], ["two-output", "1"]]
    for variant in ("classifier-only", "two-output"):
        for setting in ("onednn-off", "onednn-on"):
            assert any(line.startswith(f"{variant} ({setting}): mean ") and line.endswith(", 2 seeds")
                       for line in lines), variant
        line = next(line for line in lines if line.startswith(f"{variant} (onednn-on) vs {variant} (onednn-off): "))
        assert "paired t-test p" in line and "2 seeds" in line, line


def test_onednn_accuracy_refuses_a_single_seed(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/onednn_accuracy.py", "--seeds", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--seeds must be >= 2" in done.stderr, done.stderr
    assert not any(tmp_path.iterdir())


def test_onednn_accuracy_refuses_when_the_setting_does_not_take(tmp_path, monkeypatch):
    """Planted: TensorFlow reports its oneDNN rewrites off at TF_ENABLE_ONEDNN_OPTS=1 (a CPU without them): one
    line, and no study trained, since both would run the same kernels; where the setting takes, the studies run."""
    from keras_latent.errors import UsageError

    script = _benchmark("onednn_accuracy")
    trained = []
    monkeypatch.setattr(script, "run_study", lambda out, *args: trained.append(out))
    monkeypatch.setattr(script, "study_rows", lambda folder, setting: [])
    monkeypatch.setattr(script, "onednn_in_tensorflow", lambda onednn: "off")
    with pytest.raises(UsageError, match="TF_ENABLE_ONEDNN_OPTS=1 TensorFlow's oneDNN rewrites are off"):
        script.main(["--seeds", "2", "--out", str(tmp_path)])
    assert trained == []  # both settings are checked before either study trains
    monkeypatch.setattr(script, "onednn_in_tensorflow", lambda onednn: "on" if onednn == "1" else "off")
    script.main(["--seeds", "2", "--out", str(tmp_path)])
    assert trained == [str(tmp_path / "onednn-off"), str(tmp_path / "onednn-on")]


@pytest.mark.slow
def test_attach_study_prints_every_table_row(tmp_path):
    """The channel-dropout and joint-vs-post-hoc study at tiny sizes (1 seed, 1 epoch, few images): every
    (model, layer, P) row of table A, each P > 0 paired against P = 0, and per tutorial layer the joint and
    post-hoc rows of table B and the view-similarity rows, with figures in range, and the JSON written."""
    args = [sys.executable, "benchmarks/attach_study.py", "--seeds", "1", "--epochs", "1", "--decoder-epochs", "1",
            "--max-train-samples", "120", "--eval-images", "6", "--dropouts", "0,0.5", "--residual-layers", "conv2",
            "--out", str(tmp_path)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("CPU: ") and " ISA " in lines[0] and lines[-1] == lines[0]
    final = lines[next(i for i, line in enumerate(lines) if line.startswith("======== final tables: 1 seed")):]
    rows = [line.split() for line in final if line.strip()]
    table_a = [r[:3] for r in rows if len(r) == 10 and r[0] in ("tutorial", "residual")]
    assert table_a == [["tutorial", "trunk/conv1", "0"], ["tutorial", "trunk/conv1", "0.5"],
                       ["tutorial", "trunk/conv2", "0"], ["tutorial", "trunk/conv2", "0.5"],
                       ["residual", "conv2", "0"], ["residual", "conv2", "0.5"]]
    for r in rows:
        if len(r) == 10 and r[0] in ("tutorial", "residual"):
            mse, ne, _, hit, rank = (float(v) for v in r[3:8])
            assert 0 < mse < 1 and 0 < ne < 200 and 0 <= hit <= 1 and rank >= 1
    paired = [r[:3] for r in rows if r[0] in ("tutorial", "residual") and "mse" in r]
    assert paired == [["tutorial", "trunk/conv1", "0.5"], ["tutorial", "trunk/conv2", "0.5"],
                      ["residual", "conv2", "0.5"]]
    table_b = [r for r in rows if r[:1] in (["conv1"], ["conv2"]) and len(r) in (9, 11)]
    assert [" ".join(r[:2] if r[1] == "joint" else r[:4]) for r in table_b] == [
        "conv1 joint", "conv1 post hoc P=0", "conv1 post hoc P=0.5",
        "conv2 joint", "conv2 post hoc P=0", "conv2 post hoc P=0.5"]
    for r in table_b:
        mse, psnr, ne, _, hit = (float(v) for v in r[-7:-2])
        assert 0 < mse < 1 and psnr > 0 and 0 < ne < 200 and 0 <= hit <= 1
    views = [r for r in rows if r[:1] in (["conv1"], ["conv2"]) and len(r) == 6]
    assert [r[:2] for r in views] == [["conv1", "P=0"], ["conv1", "P=0.5"], ["conv2", "P=0"], ["conv2", "P=0.5"]]
    assert all(-1 <= float(v) <= 1 for r in views for v in r[2:])
    result = json.loads((tmp_path / "attach_study.json").read_text())
    assert [s["seed"] for s in result["seeds"]] == [0]
    assert set(result["paired_against_no_dropout"]) == {"tutorial trunk/conv1 P=0.5", "tutorial trunk/conv2 P=0.5",
                                                        "residual conv2 P=0.5"}


def test_attach_study_refuses_bad_dropouts():
    done = subprocess.run([sys.executable, "benchmarks/attach_study.py", "--dropouts", "0.5,0"], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--dropouts must start with 0" in done.stderr, done.stderr


def _benchmark(name: str):
    """benchmarks/<name>.py as a module (the folder is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reencoding_check_scores_faithful_single_channel_decodes_and_catches_blind_ones():
    """A decoder whose single-channel decodes re-encode to exactly that channel scores hit rate 1, rank 1 and no
    error; a planted blind one (every channel's decode the same image) scores chance, and a dead channel or a
    channel silent on an image is left out."""
    study = _benchmark("attach_study")
    rng = np.random.default_rng(0)
    c = 5
    activations = np.maximum(rng.normal(size=(12, 4, 4, c)), 0).astype(np.float32)  # (N, h, w, C)
    activations[:, :, :, 3] = 0.0  # a dead channel
    activations[0, :, :, 1] = 0.0  # a channel silent on one image
    eye = np.eye(c, dtype=np.float32)
    faithful = activations[:, None] * eye[None, :, None, None, :]  # (N, K, h, w, C): "images" that re-encode as is

    def identity(x):
        return np.asarray(x, np.float32)

    good = study.reencoding_check(identity, activations, faithful)
    assert good["hit_rate"] == 1.0 and good["mean_rank"] == 1.0 and good["k_rel_error"] < 1e-6
    assert good["alive_channels"] == 4 and good["chance_hit_rate"] == 0.25 and good["chance_mean_rank"] == 2.5
    assert good["pairs"] == 12 * 4 - 1
    blind = np.broadcast_to(activations[:, None], faithful.shape)  # every channel's decode: the whole activations
    bad = study.reencoding_check(identity, activations, blind)
    assert bad["hit_rate"] < 0.5 and bad["mean_rank"] > 1.5
    assert study.relative_feature_error(identity, activations, activations) == 0.0


def test_throughput_ratios_pair_the_runs_of_each_repeat():
    """Each repeat's ratio is its own two runs' (ours / the reference's), never another repeat's; a repeat missing
    one side (a failed run) gives no ratio; the spread shows the lowest and highest."""
    throughput = _benchmark("train_throughput")
    runs = [{"system": "keras", "batch_size": 128, "repeat": 0, "images_per_s": 9000.0},
            {"system": "torch", "batch_size": 128, "repeat": 0, "images_per_s": 6000.0},
            {"system": "keras", "batch_size": 128, "repeat": 1, "images_per_s": 7000.0},
            {"system": "torch", "batch_size": 128, "repeat": 1, "images_per_s": 5000.0},
            {"system": "torch", "batch_size": 32, "repeat": 1, "images_per_s": 1.0},  # another batch size
            {"system": "keras", "batch_size": 128, "repeat": 2, "images_per_s": 8000.0}]  # its pair failed
    ratios = throughput.paired_ratios(runs, "keras", "torch", 128, "images_per_s")
    assert ratios == [1.5, 1.4]
    assert throughput.spread(ratios) == " [1.40-1.50]" and throughput.spread([1.5]) == ""


def test_the_memory_line_shows_each_frameworks_import_and_what_each_run_added():
    throughput = _benchmark("train_throughput")
    summary = {"keras": {"128": {"peak_rss_mb": {"median": 780.0}, "import_rss_mb": {"median": 530.0}}},
               "torch": {"128": {"peak_rss_mb": {"median": 480.0}, "import_rss_mb": {"median": 230.0}}}}
    assert throughput.memory_line(summary, "keras", "torch", "default", [128]) == (
        "peak resident memory ours / reference, default model (keras / torch): batch 128 780 / 480 MB (1.62x), "
        "of which the framework's import 530 / 230 MB, added after it 250 / 250 MB")
    del summary["torch"]["128"]["import_rss_mb"]  # a reference that does not report it: the peaks only
    line = throughput.memory_line(summary, "keras", "torch", "default", [128])
    assert line.endswith("batch 128 780 / 480 MB (1.62x)")
