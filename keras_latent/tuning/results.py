"""Results files of a loss-weight search: `trials.csv`, `pareto.png`, `best.json`, and reading best.json back.

Kept apart from `keras_latent.tuning.tuner` (and free of KerasTuner imports) so that `python -m keras_latent.train
--weights-from best.json` reads the file without loading the tuner. Trials are duck-typed KerasTuner
`Trial`s: `trial_id`, `status`, `hyperparameters.values`, `metrics.exists/get_last_value`.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os

import numpy as np

from keras_latent.config import differences
from keras_latent.errors import UsageError
from keras_latent.files import atomic_write_text, save_figure
from keras_latent.runs import layout

OBJECTIVE = "val_classifier_accuracy"  # what Keras logs for the "classifier" output's accuracy on validation data
MSE_METRIC = "val_reconstruction_loss"  # the "reconstruction" output's (unweighted) MSE on validation data
TRIAL_COLUMNS = ("trial_id", "ce_weight", "recon_weight", "val_accuracy", "val_recon_mse", "epochs", "seconds",
                 "status")
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
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        diffs = differences(saved, settings)  # a file that is not a JSON object fails here (AttributeError)
    except (OSError, ValueError, AttributeError) as err:
        raise UsageError(f"cannot resume: {path} is unreadable ({err}); pass --overwrite to start over") from None
    changed = [f"{key} {old!r} -> {new!r}" for key, old, new in diffs]
    if changed:
        raise UsageError(f"{results_dir} was started with other settings ({'; '.join(changed)}); rerun with the "
                         "same flags to resume, or pass --overwrite, or choose another --project-name")


def write_settings(results_dir: str, settings: dict) -> None:
    atomic_write_text(layout.SEARCH_SETTINGS.path(results_dir), json.dumps(settings, indent=2) + "\n")


def _int_or_none(value) -> int | None:
    return None if value is None else int(value)


def trial_records(trials) -> list[dict]:
    """One dict per trial (TRIAL_COLUMNS + best_epoch), by trial id; metrics None until a trial completes."""
    rows = []
    for trial in sorted(trials, key=lambda t: int(t.trial_id)):
        metrics, values = trial.metrics, trial.hyperparameters.values
        last = {name: metrics.get_last_value(name) if metrics.exists(name) else None
                for name in (OBJECTIVE, MSE_METRIC, "epochs", "seconds", "best_epoch")}
        rows.append({"trial_id": trial.trial_id, "ce_weight": values.get("ce_weight"),
                     "recon_weight": values.get("recon_weight"), "val_accuracy": last[OBJECTIVE],
                     "val_recon_mse": last[MSE_METRIC], "epochs": _int_or_none(last["epochs"]),
                     "seconds": last["seconds"], "status": trial.status,
                     "best_epoch": _int_or_none(last["best_epoch"])})
    return rows


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


def write_results(trials, results_dir: str, about: dict | None = None, title: str = "") -> dict | None:
    """(Re)write trials.csv, and pareto.png and best.json once a trial has completed; return best.json's content.

    The front and the best trial are taken over completed trials with finite metrics.
    about: extra keys for best.json (tuner, dataset, ...). Each file is replaced atomically.
    """
    from keras_latent.tuning.plots import plot_pareto

    rows = trial_records(trials)
    atomic_write_text(layout.TRIALS.path(results_dir), _trials_csv_text(rows))
    done = [r for r in rows if r["status"] == COMPLETED  # a diverged trial (NaN metrics) is listed, not ranked
            and all(r[key] is not None and math.isfinite(r[key]) for key in ("val_accuracy", "val_recon_mse"))]
    if not done:
        return None
    accuracy, mse = np.array([r["val_accuracy"] for r in done]), np.array([r["val_recon_mse"] for r in done])
    front, best = pareto_mask(accuracy, mse), best_index(accuracy, mse)
    labels = [f"ce {r['ce_weight']:.3g}, recon {r['recon_weight']:.3g}" for r in done]
    save_figure(plot_pareto(accuracy, mse, labels, front, best, title=title), layout.PARETO.path(results_dir))
    best_path = layout.BEST.path(results_dir)
    summary = {key: done[best][key] for key in ("ce_weight", "recon_weight", "val_accuracy", "val_recon_mse",
                                                "trial_id", "best_epoch", "epochs", "seconds")}
    summary.update(objective=OBJECTIVE, direction="max", **(about or {}), completed_trials=len(done),
                   trials=len(rows), pareto_trial_ids=[r["trial_id"] for r, on in zip(done, front) if on],
                   train_command=f"{layout.TRAIN} --weights-from {best_path}")
    atomic_write_text(best_path, json.dumps(summary, indent=2) + "\n")
    return summary


def read_best_weights(path: str) -> tuple[float, float]:
    """(ce_weight, recon_weight) from a search's best.json, or from the results folder holding it."""
    if os.path.isdir(path):
        path = layout.BEST.path(path)
    if not os.path.isfile(path):
        raise UsageError(f"--weights-from {path!r}: no such file; expected the {layout.BEST.name} written by "
                         f"{layout.SEARCH} (e.g. tuning/results/loss_weights_grid/best.json)")
    try:
        with open(path, encoding="utf-8") as f:
            best = json.load(f)
        weights = (best["ce_weight"], best["recon_weight"])
    except (OSError, ValueError, KeyError, TypeError) as err:  # JSONDecodeError and UnicodeDecodeError: ValueError
        raise UsageError(f"--weights-from {path!r} is not a valid {layout.BEST.name} ({type(err).__name__}: {err}); "
                         "expected JSON with numeric ce_weight and recon_weight") from None
    if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w >= 0
               for w in weights):
        raise UsageError(f"--weights-from {path!r}: ce_weight and recon_weight must be numbers >= 0, "
                         f"got {weights[0]!r} and {weights[1]!r}")
    return float(weights[0]), float(weights[1])
