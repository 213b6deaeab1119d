"""The study: variants from training flags, its statistics and figures, and a tiny real study that is interrupted,
continued and extended (python -m keras_latent.study / keras_latent.studies)."""
import csv
import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, run_main, tiny_config, tiny_study_config
from scipy import stats as scipy_stats

from keras_latent.config import DataConfig
from keras_latent.errors import UsageError
from keras_latent.runs import layout
from keras_latent.studies import statistics
from keras_latent.studies.config import (
    BASELINE,
    TWO_OUTPUT,
    StudyConfig,
    Variant,
    run_config,
    study_config_from_flags,
    validate_study,
)
from keras_latent.study import build_parser, main

CLASSES = ["cat", "dog"]


def config_of(*argv):
    args = build_parser().parse_args(list(argv))
    return study_config_from_flags(args, args.variant)


# ---------------------------------------------------------------- variants from flags


def test_the_study_trains_the_baseline_the_two_output_model_and_each_variant_on_its_own_flags():
    study = config_of("--dataset", "sample", "--epochs", "3", "--seed", "10", "--seeds", "3",
                      "--variant", "wide=--filters 8,16 --lr 0.01")
    assert [v.name for v in study.variants] == [BASELINE, TWO_OUTPUT, "wide"] and study.seeds == (10, 11, 12)
    baseline, two, wide = (v.train for v in study.variants)
    assert not baseline.model.decoder and two.model.decoder and wide.model.filters == (8, 16) and wide.lr == 0.01
    assert {t.epochs for t in (baseline, two, wide)} == {3} and two.lr == baseline.lr == 0.005
    assert study.variants[2].flags == "--filters 8,16 --lr 0.01"
    # each run keeps the study's split: the held-out split and subset are those of --seed, the weights the run's own
    run = run_config(study.variants[1], 12)
    assert (run.seed, run.data.split_seed) == (12, 10)


def test_weights_from_sets_the_models_with_a_decoder_and_leaves_the_baseline_plain(tmp_path):
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"ce_weight": 2.0, "recon_weight": 4.0, "val_accuracy": 0.4, "val_recon_mse": 0.09,
                                "trial_id": "3"}))  # what a search's best.json holds (checked when read)
    study = config_of("--weights-from", str(best), "--variant", "big=--head-units 64")
    weights = {v.name: (v.train.ce_weight, v.train.recon_weight) for v in study.variants}
    assert weights[TWO_OUTPUT] == weights["big"] == (2.0, 4.0) and weights[BASELINE][0] == 1.0


@pytest.mark.parametrize("argv, message", [
    (["--variant", "wide"], 'must be NAME="TRAINING FLAGS"'),
    (["--variant", "w=--seed 3"], "variant w: may not set --seed"),
    (["--variant", "w=--dataset sample"], "variant w: may not set --dataset"),
    (["--variant", "two-output=--lr 0.1"], "are the study's own variants"),
    (["--variant", "a/b=--lr 0.1"], "variant names must be"),
    (["--variant", "w=--lr 0.1", "--variant", "w=--lr 0.2"], "must be unique, got w twice"),
    (["--variant", "w=--filters x"], "variant w: argument --filters: expected comma-separated integers"),
    (["--variant", "w=--lr \"0.1"], "--variant w: cannot split"),
    (["--variant", "w=--out elsewhere"], "variant w: unrecognized arguments: --out elsewhere"),
    (["--variant", "w=--strategy multiworker"], "--strategy must be default or mirrored"),
    (["--seeds", "0"], "--seeds must be >= 1, got 0"),
    (["--no-decoder"], "--no-decoder is the classifier-only variant's"),
    (["--epochs", "0"], "variant classifier-only: --epochs must be >= 1, got 0"),
    (["--dataset", "/no/such/folder"], "neither a known name nor an existing path"),
])
def test_bad_flags_get_one_line_and_exit_2(argv, message, capsys, tmp_path):
    code, _, err = run_main(main, argv + ["--out", str(tmp_path / "study")], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not os.path.exists(tmp_path / "study")


def test_bad_flag_from_a_shell_is_one_line_before_tensorflow_loads(tmp_path):
    code = ("import runpy, sys; sys.argv = ['study', '--variant', 'wide']\n"
            "try:\n    runpy.run_module('keras_latent.study', run_name='__main__')\n"
            "finally:\n    print('tensorflow' in sys.modules, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path),
                            env={**os.environ, "PYTHONPATH": REPO}, timeout=120)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ['error: --variant must be NAME="TRAINING FLAGS", e.g. --variant '
                                          'wide="--filters 32,64", got \'wide\'', "False"]


def test_validate_study_keeps_every_variant_on_the_same_test_split():
    two = Variant(TWO_OUTPUT, tiny_config())
    other = Variant("other", tiny_config(data=DataConfig(dataset="sample", test_fraction=0.5)))
    with pytest.raises(UsageError, match="same data and split, but other has --test-fraction 0.5"):
        validate_study(StudyConfig(variants=(two, other)))
    with pytest.raises(UsageError, match="seeds must be distinct integers >= 0"):
        validate_study(StudyConfig(variants=(two,), seeds=(1, 1)))


# ---------------------------------------------------------------- statistics and figures


def rows_of(accuracies: dict[str, list[float]]) -> list[dict]:
    """study.csv-like rows: per variant, one run per seed 0, 1, ...; class accuracies around the overall."""
    return [{"variant": name, "seed": seed, "test_accuracy": acc, "test_reconstruction_mse": None, "seconds": 10.0,
             "per_class_accuracy": {"cat": acc - 0.05, "dog": acc + 0.05}}
            for name, values in accuracies.items() for seed, acc in enumerate(values)]


def test_summary_pairs_the_seeds_and_tests_the_difference_with_scipy():
    base, two = [0.40, 0.42, 0.41, 0.43, 0.39], [0.41, 0.44, 0.41, 0.45, 0.40]
    summary = statistics.summarize(rows_of({BASELINE: base, TWO_OUTPUT: two}), [BASELINE, TWO_OUTPUT], CLASSES)
    variant = summary["variants"][TWO_OUTPUT]["test_accuracy"]
    low, high = scipy_stats.t.interval(0.95, 4, loc=np.mean(two), scale=scipy_stats.sem(two))
    assert (variant["mean"], variant["ci_low"], variant["ci_high"]) == pytest.approx((np.mean(two), low, high))
    (comparison,) = summary["comparisons"]
    test = scipy_stats.ttest_rel(two, base)
    assert (comparison["variant"], comparison["baseline"], comparison["seeds"]) == (TWO_OUTPUT, BASELINE,
                                                                                    [0, 1, 2, 3, 4])
    assert comparison["test_accuracy"]["difference"] == pytest.approx(0.012)
    assert comparison["test_accuracy"]["p_value"] == pytest.approx(test.pvalue)
    assert (comparison["test_accuracy"]["ci_low"], comparison["test_accuracy"]["ci_high"]) == pytest.approx(
        tuple(test.confidence_interval(0.95)))
    cat = comparison["per_class_accuracy"]["cat"]
    assert cat["difference"] == pytest.approx(0.012) and cat["p_value_bh"] >= cat["p_value"]
    sentence = summary["conclusions"][0]
    assert re.fullmatch(r"two-output vs classifier-only: \+1\.2 points \(95% CI \+0\.\d to \+\d\.\d; paired t-test "
                        r"p = 0\.\d+; 5 seeds\): (not )?significant at the 0\.05 level.*\.", sentence), sentence
    assert ("not significant" in sentence) == (test.pvalue >= 0.05)


def test_conclusions_name_the_better_variant_and_say_when_one_seed_cannot_tell():
    clear = statistics.summarize(rows_of({"a": [0.40, 0.41, 0.42], "b": [0.30, 0.32, 0.31]}), ["a", "b"], CLASSES)
    assert clear["conclusions"][0].startswith("b vs a: -10.0 points")
    assert clear["conclusions"][0].endswith("significant at the 0.05 level (a is better).")
    one = statistics.summarize(rows_of({"a": [0.40], "b": [0.45]}), ["a", "b"], CLASSES)
    assert one["conclusions"] == ["b vs a: +5.0 points (1 seed: no interval or test; run 2 or more seeds)."]
    assert one["variants"]["a"]["test_accuracy"]["ci_low"] is None
    # only seeds that both variants finished are paired
    partial = statistics.summarize(rows_of({"a": [0.40, 0.41, 0.42], "b": [0.43, 0.44]}), ["a", "b"], CLASSES)
    assert partial["comparisons"][0]["seeds"] == [0, 1]


def test_epoch_bands_and_figures():
    from keras_latent.studies.plots import plot_accuracy_by_epoch, plot_per_class

    bands = statistics.epoch_bands([[0.1, 0.2, 0.3], [0.2, 0.3, 0.5, 0.6]])  # cut to the shortest
    assert bands["epochs"].tolist() == [1, 2, 3] and bands["mean"] == pytest.approx([0.15, 0.25, 0.4])
    assert np.all(bands["low"] < bands["mean"]) and np.all(bands["high"] > bands["mean"])
    fig = plot_accuracy_by_epoch({"a": bands, "b": bands}, {"a": 2, "b": 2})
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[0].collections) == 2  # a line and a band each
    panels = [{"label": "b - a", "difference": [0.01, -0.02, 0.0], "low": [0.0, -0.03, np.nan],
               "high": [0.02, -0.01, np.nan]}] * 2
    fig = plot_per_class(CLASSES, panels)
    assert len(fig.axes) == 2 and [t.get_text() for t in fig.axes[0].get_yticklabels()] == CLASSES + ["all classes"]


# ---------------------------------------------------------------- a tiny real study (conftest's tiny_study)


@pytest.mark.slow
def test_an_interrupted_study_keeps_its_finished_runs_and_more_seeds_add_runs(tiny_study):
    assert len(tiny_study["first"]) == 1 and tiny_study["summary"]["trained"] == 3  # 1 left of seed 0, 2 of seed 1
    assert tiny_study["summary"]["runs"] == 4
    for path, mtime in tiny_study["first"].items():  # not retrained
        assert os.path.getmtime(layout.MODEL.path(path)) == mtime


@pytest.mark.slow
def test_study_folder_holds_what_layout_names_with_one_row_per_run(tiny_study):
    folder = tiny_study["folder"]
    assert sorted(os.listdir(folder)) == sorted(e.name for e in layout.STUDY_FILES)
    with open(layout.STUDY_CSV.path(folder), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], r["seed"]) for r in rows] == [(v, str(s)) for s in (0, 1) for v in (BASELINE, TWO_OUTPUT)]
    for row in rows:
        run_dir = layout.study_run_dir(folder, row["variant"], int(row["seed"]))
        assert all(any(e.match(name) is not None for e in layout.RUN_FILES) for name in os.listdir(run_dir))
        metrics = json.load(open(layout.METRICS.path(run_dir)))
        assert float(row["test_accuracy"]) == pytest.approx(metrics["test_accuracy"], rel=1e-5)  # 6 digits
        assert (row["test_reconstruction_mse"] == "") == (row["variant"] == BASELINE)
        assert float(row["acc_cat"]) == pytest.approx(metrics["per_class_accuracy"]["cat"], rel=1e-5, abs=1e-9)
        config = json.load(open(layout.CONFIG.path(run_dir)))
        assert (config["seed"], config["data"]["split_seed"]) == (int(row["seed"]), 0)
    summary = json.load(open(layout.STUDY_SUMMARY.path(folder)))
    assert summary["runs"] == summary["planned_runs"] == 4 and summary["seeds"] == [0, 1]
    assert summary["variants"][BASELINE]["test_accuracy"]["n"] == 2
    assert summary["conclusions"][0].startswith(f"{TWO_OUTPUT} vs {BASELINE}: ")
    for entry in (layout.ACCURACY_BY_EPOCH, layout.PER_CLASS):
        with open(entry.path(folder), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_rerun_with_other_settings_is_refused_before_training(tiny_study):
    from keras_latent.studies.run import run_study

    study = tiny_study_config(seeds=(0, 1))
    longer = [dataclasses.replace(v, train=dataclasses.replace(v.train, epochs=2)) for v in study.variants]
    other = dataclasses.replace(study, variants=tuple(longer))
    with pytest.raises(UsageError, match=r"seed-0 was trained with other settings than this study's \(epochs: 1 -> 2"):
        run_study(other, tiny_study["folder"])
