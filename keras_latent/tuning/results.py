"""Results files of a loss-weight search: `trials.csv`, `pareto.png`, `best.json`.

Kept apart from `keras_latent.tuning.tuner` (and free of KerasTuner imports). Reading best.json back for
`--weights-from` is `keras_latent.runs.records.read_best_weights`, the format's owner below training. Trials
are duck-typed KerasTuner `Trial`s: `trial_id`, `status`, `hyperparameters.values`, `metrics.exists/get_last_value`.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os

import numpy as np

from keras_latent.config import FIELDS_ADDED_LATER, HOW_COMPUTED_FIELDS, differences, from_dict
from keras_latent.errors import UsageError
from keras_latent.files import atomic_write_text, save_figure
from keras_latent.runs import layout
from keras_latent.runs.records import read_best_weights, read_json  # noqa: F401 (also tuning.read_best_weights)
from keras_latent.runs.schemas import TRIAL_COLUMNS
from keras_latent.stats import mean_interval, paired_difference, significant
from keras_latent.tuning.config import SearchConfig

OBJECTIVE = "val_classifier_accuracy"  # what Keras logs for the "classifier" output's accuracy on validation data
MSE_METRIC = "val_reconstruction_loss"  # the "reconstruction" output's (unweighted) MSE on validation data
NOISE_RULE = ("within noise of the best: a two-sided paired t-test (scipy.stats.ttest_rel) of the pair's validation "
              "accuracy against the best's over the executions of each trial (execution k of every pair trains from "
              "seed + k) gives p >= 0.05, i.e. the 95% interval of the difference includes 0")
COMPLETED = "COMPLETED"  # keras_tuner TrialStatus.COMPLETED


def check_settings(results_dir: str, settings: dict) -> None:
    """Refuse to resume a results folder made by another kind of search or with other settings."""
    path = layout.SEARCH_SETTINGS.path(results_dir)
    if not os.path.exists(path):
        if os.path.exists(layout.ORACLE_STATE.path(results_dir)):
            raise UsageError(f"{results_dir} holds a KerasTuner project without {layout.SEARCH_SETTINGS.name} (not "
                             f"made by {layout.SEARCH}); pass --overwrite to replace it or choose another "
                             "--project-name")
        return
    saved = read_json(path, layout.SEARCH_SETTINGS)
    try:
        # search_spec leaves out max_trials and a single execution; the trials' TrainConfig as config.json's
        from_dict(saved, SearchConfig, optional={"max_trials": None, "executions_per_trial": 1,
                                                 **{f"train.{k}": v for k, v in FIELDS_ADDED_LATER.items()}})
    except UsageError as err:
        raise UsageError(layout.damaged(layout.SEARCH_SETTINGS, path, f"is not a valid search settings file: {err}")
                         ) from None
    diffs = [d for d in differences(saved, settings) if d[0].removeprefix("train.") not in HOW_COMPUTED_FIELDS]
    changed = [f"{key} {old!r} -> {new!r}" for key, old, new in diffs]
    if changed:
        raise UsageError(f"{results_dir} was started with other settings ({'; '.join(changed)}); rerun with the "
                         "same flags to resume, or pass --overwrite, or choose another --project-name")


def check_tuner_state(results_dir: str) -> None:
    """Check KerasTuner's state files in `results_dir` (oracle.json, each tuner's and each trial's file) against
    their schemas before KerasTuner reloads them: a damaged one is one line naming it."""
    read_json(layout.ORACLE_STATE.path(results_dir), layout.ORACLE_STATE)
    ours = {e.name for e in (layout.TRIALS, layout.BEST, layout.SEARCH_SETTINGS, layout.ORACLE_STATE)}
    for path in layout.TUNER_STATE.glob(results_dir):
        if os.path.basename(path) not in ours:
            read_json(path, layout.TUNER_STATE)
    for trial_dir in layout.TRIAL_DIR.glob(results_dir):
        read_json(layout.TRIAL_STATE.path(trial_dir), layout.TRIAL_STATE)


def write_settings(results_dir: str, settings: dict) -> None:
    atomic_write_text(layout.SEARCH_SETTINGS.path(results_dir), json.dumps(settings, indent=2) + "\n")


def _int_or_none(value) -> int | None:
    return None if value is None else int(round(value))


def execution_metric(execution: int, name: str) -> str:
    """The name under which execution `execution` (0-based) of a trial reports metric `name`."""
    return f"execution_{execution}/{name}"


def execution_values(metrics, name: str) -> list[float]:
    """Metric `name` of each execution of a trial, in execution order (execution k used seed + k); a trial
    recorded before executions had names of their own gives its one value."""
    values = []
    while metrics.exists(execution_metric(len(values), name)):
        values.append(float(metrics.get_last_value(execution_metric(len(values), name))))
    if not values and metrics.exists(name):
        values = [float(metrics.get_last_value(name))]
    return values


def _spread(values: list[float]) -> dict:
    """mean_interval of a trial's execution values; no spread when one of them is NaN (a diverged execution)."""
    return mean_interval(values) if all(math.isfinite(v) for v in values) else {}


def trial_records(trials) -> list[dict]:
    """One dict per trial (TRIAL_COLUMNS but the comparison to the best, + best_epoch and each execution's
    `accuracy_values` and `mse_values`), by trial id; metrics None until a trial completes.

    val_accuracy and val_recon_mse are KerasTuner's mean over the executions (what the oracle ranks), their
    _sd and _se the sample standard deviation and standard error over the executions, `seconds` the trial's
    training time in all.
    """
    rows = []
    for trial in sorted(trials, key=lambda t: int(t.trial_id)):
        metrics, values = trial.metrics, trial.hyperparameters.values
        last = {name: metrics.get_last_value(name) if metrics.exists(name) else None
                for name in (OBJECTIVE, MSE_METRIC, "epochs", "seconds", "best_epoch")}
        accuracy, mse = execution_values(metrics, OBJECTIVE), execution_values(metrics, MSE_METRIC)
        accuracy_spread, mse_spread = _spread(accuracy), _spread(mse)
        executions = len(accuracy) or None
        rows.append({"trial_id": trial.trial_id, "ce_weight": values.get("ce_weight"),
                     "recon_weight": values.get("recon_weight"), "executions": executions,
                     "val_accuracy": last[OBJECTIVE], "val_accuracy_sd": accuracy_spread.get("sd"),
                     "val_accuracy_se": accuracy_spread.get("se"), "val_recon_mse": last[MSE_METRIC],
                     "val_recon_mse_sd": mse_spread.get("sd"), "val_recon_mse_se": mse_spread.get("se"),
                     "epochs": _int_or_none(last["epochs"]),
                     "seconds": None if last["seconds"] is None else last["seconds"] * (executions or 1),
                     "status": trial.status, "best_epoch": _int_or_none(last["best_epoch"]),
                     "accuracy_values": accuracy, "mse_values": mse})
    return rows


def compare_to_best(rows: list[dict], best: dict) -> None:
    """Add `p_vs_best`, `within_noise` ("best", "yes", "no"; None with fewer than two executions) and the
    paired difference `vs_best` to each ranked row.

    Within noise: the paired t-test of the row's validation accuracy against the best's, over the executions
    (execution k of every trial trained from seed + k: the same initial weights and batch order), gives
    p >= 0.05, i.e. the 95% interval of the difference includes 0. Needs two or more executions per trial.
    """
    for row in rows:
        if row is best:
            row.update(within_noise="best", p_vs_best=None, vs_best=None)
            continue
        difference = paired_difference(row["accuracy_values"], best["accuracy_values"])
        p_value = difference["p_value"]
        row.update(vs_best=difference, p_vs_best=p_value,
                   within_noise=None if p_value is None else "no" if significant(p_value) else "yes")


def pareto_mask(accuracy: np.ndarray, mse: np.ndarray) -> np.ndarray:
    """(N,) bool: trials no other trial matches or beats on both accuracy (max) and MSE (min) while better on one."""
    accuracy, mse = np.asarray(accuracy, float), np.asarray(mse, float)
    return np.array([not np.any((accuracy >= a) & (mse <= m) & ((accuracy > a) | (mse < m)))
                     for a, m in zip(accuracy, mse)], dtype=bool)


def best_index(accuracy: np.ndarray, mse: np.ndarray) -> int:
    """Highest accuracy; a tie goes to the lower MSE, then to the earlier trial (so the best is on the front)."""
    return int(np.lexsort((np.arange(len(accuracy)), np.asarray(mse, float), -np.asarray(accuracy, float)))[0])


def _trials_csv_text(rows: list[dict]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, TRIAL_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _noise_entry(row: dict) -> dict:
    """A pair within noise of the best as best.json lists it."""
    difference = row["vs_best"]
    return {"trial_id": row["trial_id"], "ce_weight": row["ce_weight"], "recon_weight": row["recon_weight"],
            "val_accuracy": row["val_accuracy"], "difference": difference["difference"],
            "ci_low": difference["ci_low"], "ci_high": difference["ci_high"], "p_value": difference["p_value"]}


def write_results(trials, results_dir: str, about: dict | None = None, title: str = "") -> dict | None:
    """(Re)write trials.csv, and pareto.png and best.json once a trial has completed; return best.json's content.

    The front, the best trial and the pairs within noise of it are taken over completed trials with finite
    metrics. about: extra keys for best.json (tuner, dataset, ...). Each file is replaced atomically.
    """
    from keras_latent.tuning.plots import plot_pareto

    rows = trial_records(trials)
    done = [r for r in rows if r["status"] == COMPLETED  # a diverged trial (NaN metrics) is listed, not ranked
            and all(r[key] is not None and math.isfinite(r[key]) for key in ("val_accuracy", "val_recon_mse"))]
    if done:
        accuracy, mse = np.array([r["val_accuracy"] for r in done]), np.array([r["val_recon_mse"] for r in done])
        front, best = pareto_mask(accuracy, mse), best_index(accuracy, mse)
        compare_to_best(done, done[best])
    atomic_write_text(layout.TRIALS.path(results_dir), _trials_csv_text(rows))
    if not done:
        return None
    labels = [f"ce {r['ce_weight']:.3g}, recon {r['recon_weight']:.3g}" for r in done]
    executions = min(r["executions"] or 1 for r in done)
    errors = {key: np.array([r[key] or 0.0 for r in done]) for key in ("val_accuracy_se", "val_recon_mse_se")}
    save_figure(plot_pareto(accuracy, mse, labels, front, best, title=title, accuracy_se=errors["val_accuracy_se"],
                            mse_se=errors["val_recon_mse_se"], within_noise=[r["within_noise"] == "yes" for r in done],
                            executions=executions), layout.PARETO.path(results_dir))
    best_path = layout.BEST.path(results_dir)
    top = done[best]
    summary = {key: top[key] for key in ("ce_weight", "recon_weight", "val_accuracy", "val_accuracy_sd",
                                         "val_accuracy_se", "val_recon_mse", "executions", "trial_id", "best_epoch",
                                         "epochs", "seconds")}
    ranked = sorted((r for r in done if r["within_noise"] == "yes"), key=lambda r: -r["val_accuracy"])
    summary.update(objective=OBJECTIVE, direction="max", **(about or {}), completed_trials=len(done),
                   trials=len(rows), pareto_trial_ids=[r["trial_id"] for r, on in zip(done, front) if on],
                   within_noise_of_best=[_noise_entry(r) for r in ranked] if executions >= 2 else None,
                   within_noise_rule=NOISE_RULE, train_command=f"{layout.TRAIN} --weights-from {best_path}")
    atomic_write_text(best_path, json.dumps(summary, indent=2) + "\n")
    return summary
