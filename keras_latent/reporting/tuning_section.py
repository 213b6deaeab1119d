"""Report section 6: a loss-weight search, read from the results folder of `python tuning/search_weights.py`.

That folder holds trials.csv (one row per trial), best.json (the best trial's weights and
figures) and pareto.png (validation accuracy against reconstruction MSE).
"""
from __future__ import annotations

import os

from keras_latent.config import TrainConfig
from keras_latent.errors import UsageError
from keras_latent.reporting.assets import command, figure, fmt, fmt_general, join_names, note, to_float
from keras_latent.runs import layout
from keras_latent.runs.records import read_csv, read_json
from keras_latent.tuning.results import TRIAL_COLUMNS

TUNING_COMMAND = tuple(layout.SEARCH.split())
SEARCH_KEYS = ("tuner", "objective", "direction", "dataset", "max_train_samples", "val_fraction", "epochs_per_trial",
               "executions_per_trial", "completed_trials", "trials", "seed")  # best.json keys shown as settings


def check_tuning_dir(tuning_dir: str) -> None:
    """--tuning must be a search's results folder (checked before any slow work)."""
    where = f"pass the results folder of {' '.join(TUNING_COMMAND)} (default tuning/results/<project>)"
    if not os.path.isdir(tuning_dir):
        raise UsageError(f"--tuning {tuning_dir!r} is not a folder; {where}")
    if not os.path.isfile(layout.TRIALS.path(tuning_dir)):
        raise UsageError(f"--tuning {tuning_dir!r} has no {layout.TRIALS.name}; {where}")


def _trial_cell(column: str, value) -> str:
    if value in (None, ""):
        return ""
    if column.startswith(("val_accuracy", "val_recon_mse")):
        return fmt(value)
    if column == "p_vs_best":
        return fmt(value, 3)
    if column == "seconds":
        return fmt(value, 1)
    return fmt_general(value) if column in ("ce_weight", "recon_weight") else str(value)


def trial_table_rows(trials: list[dict], columns: list[str], best: dict | None, front: set[str] | None,
               path: str) -> list[dict]:
    """Trials by validation accuracy, best first; unfinished trials (no accuracy) last; the Pareto
    front (trial ids, None when best.json lists none) is marked."""
    best_id = str(best.get("trial_id")) if best else None

    def order(row: dict) -> tuple:
        value = row.get("val_accuracy")
        return (1, 0.0) if value in (None, "") else (0, -to_float(value, path, "val_accuracy"))

    return [{"best": str(row["trial_id"]) == best_id, "trial_id": row["trial_id"],
             "cells": [{"column": c, "text": _trial_cell(c, row.get(c))} for c in columns]
             + ([{"column": "pareto", "text": "yes" if str(row["trial_id"]) in front else ""}]
                if front is not None else [])}
            for row in sorted(trials, key=order)]


def noise_summary(best: dict) -> dict:
    """The pairs best.json lists as within noise of the best, as a sentence, and the rule; for a search without
    repeats, a sentence saying how to get them."""
    close = best.get("within_noise_of_best")
    if close is None:
        return {"rule": "",
                "sentence": "Each pair was trained once, so the search cannot say which pairs are within noise of "
                            "the best; rerun it with --executions-per-trial 3."}
    pairs = [f"({fmt_general(p['ce_weight'])}, {fmt_general(p['recon_weight'])}): {100 * p['difference']:+.1f} "
             f"points (95% CI {100 * p['ci_low']:+.1f} to {100 * p['ci_high']:+.1f}, p = {p['p_value']:.2f})"
             for p in close]
    executions = best.get("executions")
    if not pairs:
        sentence = f"No other pair is within noise of the best over {executions} executions."
    else:
        sentence = (f"Within noise of the best over {executions} executions (they cannot be told apart from it): "
                    f"{join_names(pairs)}.")
    return {"sentence": sentence, "rule": best.get("within_noise_rule", "")}


def best_summary(best: dict, tuning_dir: str, config: TrainConfig) -> dict:
    """best.json's weights and figures, this run's weights to compare, and the command to train with them."""
    sd = best.get("val_accuracy_sd")
    return {"ce_weight": fmt_general(best.get("ce_weight")), "recon_weight": fmt_general(best.get("recon_weight")),
            "val_accuracy": fmt(best.get("val_accuracy")) + (f" ± {fmt(sd)} sd" if sd is not None else ""),
            "val_recon_mse": fmt(best.get("val_recon_mse")), "noise": noise_summary(best),
            "trial_id": best.get("trial_id"), "run_ce_weight": fmt_general(config.ce_weight),
            "run_recon_weight": fmt_general(config.recon_weight),
            "search": [{"key": k, "value": str(best[k])} for k in SEARCH_KEYS if best.get(k) is not None],
            "train_command": command("python", "-m", "keras_latent.train", "--weights-from",
                                     layout.BEST.path(tuning_dir))}


def tuning_section(tuning_dir: str | None, config: TrainConfig) -> dict:
    """Section 6: trials table, accuracy-vs-MSE plot and the best weights; without --tuning, one note."""
    search = command(*TUNING_COMMAND, "--dataset", config.data.dataset)
    if tuning_dir is None:
        return {"present": False, "notes": [note(
            "No loss-weight search included (pass --tuning DIR to add one); make one with:", search)]}
    path = layout.TRIALS.path(tuning_dir)  # build_report has run check_tuning_dir
    trials = read_csv(path, layout.TRIALS)
    header = list(trials[0]) if trials else list(TRIAL_COLUMNS)
    columns = [c for c in TRIAL_COLUMNS if c in header] + [c for c in header if c not in TRIAL_COLUMNS]
    best = read_json(layout.BEST.path(tuning_dir), layout.BEST)
    pareto = layout.PARETO.path(tuning_dir)
    notes = [] if best else [note(f"No {layout.BEST.name} yet: no trial of this search has finished; continue it with:",
                                  search)]
    front = {str(t) for t in best["pareto_trial_ids"]} if best and "pareto_trial_ids" in best else None
    return {"present": True, "directory": tuning_dir, "columns": columns + (["pareto"] if front is not None else []),
            "notes": notes, "rows": trial_table_rows(trials, columns, best, front, path),
            "pareto": figure(pareto, "Validation accuracy against reconstruction MSE for every trial; the Pareto "
                             "front is marked and the best trial labelled; with repeated trials, error bars of one "
                             "standard error and the pairs within noise of the best ringed", layout.PARETO)
            if os.path.isfile(pareto) else None,
            "best": best_summary(best, tuning_dir, config) if best else None}
