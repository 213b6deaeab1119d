"""Repeated trials (--executions-per-trial): each execution seeded apart and paired across trials, each one's
figures kept, mean/sd/se in trials.csv, the pairs within noise of the best in best.json, error bars."""
import csv
import json

import keras_tuner
import numpy as np
import pytest
from helpers import repeated_trial, run_main

from keras_latent.runs import layout
from keras_latent.tuning.config import SearchConfig
from keras_latent.tuning.results import MSE_METRIC, OBJECTIVE, TRIAL_COLUMNS, execution_metric, write_results


def read_rows(folder) -> list[dict]:
    with open(layout.TRIALS.path(str(folder)), encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_each_execution_gets_its_own_seed_and_the_same_one_in_every_trial(tmp_path):
    """KerasTuner's executions_per_trial through patches.SeededExecutions: execution k of every trial is seeded
    with seed + k (same initial weights in every trial, other weights than execution k - 1) and says so to fit."""
    from keras_latent.tuning.tuner import GridOracle, LossWeightHyperModel, WeightTuner

    calls = []

    class Recording(LossWeightHyperModel):
        def fit(self, hp, model, *args, seed=None, execution=0, **kwargs):
            first_kernel = model.get_layer("trunk").get_layer("conv1").get_weights()[0]
            calls.append((hp.values["ce_weight"], execution, seed, float(np.sum(first_kernel))))
            return {OBJECTIVE: 0.4 + 0.01 * execution, MSE_METRIC: 0.1, "seconds": 1.0, "epochs": 1, "best_epoch": 1,
                    execution_metric(execution, OBJECTIVE): 0.4 + 0.01 * execution}

    search = SearchConfig(ce_weights=(1.0, 2.0), recon_weights=(2.0,), executions_per_trial=3)
    oracle = GridOracle(objective=keras_tuner.Objective(OBJECTIVE, direction="max"), max_trials=2, seed=8)
    tuner = WeightTuner(oracle, Recording(search), trial_seed=7, directory=str(tmp_path), project_name="p",
                        executions_per_trial=3)
    tuner.search(np.zeros((4, 32, 32, 3), "uint8"), np.zeros(4, "int64"), validation_data=None)
    assert [(ce, k, seed) for ce, k, seed, _ in calls] == [(ce, k, 7 + k) for ce in (1.0, 2.0) for k in range(3)]
    starts = {(ce, k): digest for ce, k, _, digest in calls}
    assert [starts[1.0, k] for k in range(3)] == [starts[2.0, k] for k in range(3)]  # paired across trials
    assert len({starts[1.0, k] for k in range(3)}) == 3  # the repeats differ
    trial = next(iter(tuner.oracle.trials.values()))
    assert trial.metrics.get_last_value(OBJECTIVE) == pytest.approx(0.41)  # KerasTuner's mean of the executions
    assert [trial.metrics.get_last_value(execution_metric(k, OBJECTIVE)) for k in range(3)] == pytest.approx(
        [0.40, 0.41, 0.42])


def test_results_give_each_pair_its_spread_and_list_the_pairs_within_noise_of_the_best(tmp_path):
    trials = [repeated_trial("0", 1, 2, [0.50, 0.53, 0.51], [0.10, 0.11, 0.10]),  # the best
              repeated_trial("1", 1, 0, [0.49, 0.53, 0.50], [0.30, 0.31, 0.29]),  # follows the best seed by seed: close
              repeated_trial("2", 2, 2, [0.40, 0.42, 0.41], [0.12, 0.12, 0.13])]  # 10 points below on every seed
    best = write_results(trials, str(tmp_path))
    rows = {r["trial_id"]: r for r in read_rows(tmp_path)}
    assert list(rows["0"]) == list(TRIAL_COLUMNS)
    sd = np.std([0.50, 0.53, 0.51], ddof=1)
    assert float(rows["0"]["val_accuracy_sd"]) == pytest.approx(sd)
    assert float(rows["0"]["val_accuracy_se"]) == pytest.approx(sd / np.sqrt(3))
    assert rows["0"]["executions"] == "3" and float(rows["0"]["seconds"]) == pytest.approx(6.0)  # 3 x 2 s
    assert [rows[i]["within_noise"] for i in "012"] == ["best", "yes", "no"]
    assert float(rows["2"]["p_vs_best"]) < 0.05 <= float(rows["1"]["p_vs_best"])
    assert (best["trial_id"], best["executions"]) == ("0", 3)
    close = best["within_noise_of_best"]
    assert [c["trial_id"] for c in close] == ["1"]
    assert close[0]["difference"] == pytest.approx(-0.0067, abs=1e-4) and close[0]["ci_low"] < 0 < close[0]["ci_high"]
    assert "paired t-test" in best["within_noise_rule"]
    with open(tmp_path / layout.PARETO.name, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_one_execution_per_trial_cannot_say_what_is_within_noise(tmp_path):
    trials = [repeated_trial("0", 1, 2, [0.5], [0.1]), repeated_trial("1", 1, 0, [0.4], [0.3])]
    best = write_results(trials, str(tmp_path))
    assert best["within_noise_of_best"] is None and best["val_accuracy_sd"] is None
    assert [r["within_noise"] for r in read_rows(tmp_path)] == ["best", ""]


def test_the_pareto_plot_draws_error_bars_only_for_repeated_trials():
    from keras_latent.tuning.plots import plot_pareto

    args = (np.array([0.4, 0.5]), np.array([0.2, 0.1]), ["a", "b"], np.array([False, True]), 1)
    with_bars = plot_pareto(*args, accuracy_se=np.array([0.01, 0.02]), mse_se=np.array([0.001, 0.002]),
                            within_noise=[True, False], executions=3)
    without = plot_pareto(*args)
    bar_sets = lambda fig: [c for c in fig.axes[0].containers if type(c).__name__ == "ErrorbarContainer"]  # noqa: E731
    assert len(bar_sets(with_bars)) == 1 and bar_sets(without) == []
    assert "3 executions" in " ".join(t.get_text() for t in with_bars.axes[0].get_legend().get_texts())


@pytest.mark.slow
def test_a_real_search_with_repeats_records_each_execution(tmp_path, capsys):
    from keras_latent.search_weights import main

    argv = ["--dataset", "sample", "--max-train-samples", "200", "--epochs", "1", "--ce-weights", "1",
            "--recon-weights", "2", "--executions-per-trial", "2", "--directory", str(tmp_path)]
    code, out, _ = run_main(main, argv, capsys)
    folder = tmp_path / "loss_weights_grid"
    (row,) = read_rows(folder)
    assert code == 0 and row["executions"] == "2" and row["within_noise"] == "best"
    assert float(row["val_recon_mse_sd"]) > 0  # the two executions trained differently
    best = json.loads((folder / layout.BEST.name).read_text())
    assert best["executions_per_trial"] == 2 and isinstance(best["within_noise_of_best"], list)
    assert "within noise of the best" in out
    # a rerun with another number of executions would mix trials scored differently: refused
    code, _, err = run_main(main, argv[:-3] + ["3", "--directory", str(tmp_path)], capsys)
    assert code == 2 and "executions_per_trial 2 -> 3" in err
