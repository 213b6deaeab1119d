"""Report sections 5 and 6: the latent analysis (RUN/analysis/) and a loss-weight search (--tuning DIR).

Both read the files those tools write (see the contracts in keras_latent.analyze and
tuning/search_weights.py): analysis.json's `files` list names every figure, ablation.csv and
channel_stats.csv give the numbers; trials.csv, best.json and pareto.png are the search's results.
"""
from __future__ import annotations

import os

from keras_latent.config import TrainConfig
from keras_latent.errors import UsageError
from keras_latent.report_assets import command, figure, fmt, fmt_general, note, read_csv, read_json, to_float

ANALYZE_COMMAND = ("python", "-m", "keras_latent.analyze")
TUNING_COMMAND = ("python", "tuning/search_weights.py")
TOP_CHANNELS_LISTED = 3  # channels named in the "matter most" sentence of each layer
CLASS_CHANNELS_LISTED = 3  # channels listed per class
MAX_CHANNEL_ROWS = 16  # rows of each layer's ablation table (all rows are in ablation.csv)
ABLATION_COLUMNS = ("layer", "channel", "accuracy", "accuracy_drop")
STATS_COLUMNS = ("layer", "channel", "mean_activation")
TRIAL_COLUMNS = ("trial_id", "ce_weight", "recon_weight", "val_accuracy", "val_recon_mse", "epochs", "seconds", "status")


def analysis_path(run_dir: str) -> str:
    return os.path.join(run_dir, "analysis", "analysis.json")


def analysis_is_stale(run_dir: str) -> bool:
    """True when model.keras is newer than the analysis (the run was retrained since)."""
    model = os.path.join(run_dir, "model.keras")
    return os.path.isfile(model) and os.path.getmtime(model) > os.path.getmtime(analysis_path(run_dir))


def _find_figure(run_dir, files, kind, layer, caption, notes, image=None) -> dict | None:
    """The figure analysis.json lists for (kind, layer[, image]); a note when it is listed but missing."""
    for entry in files:
        if entry.get("kind") != kind or entry.get("layer") != layer:
            continue
        if image is not None and (entry.get("split"), entry.get("index")) != (image["split"], image["index"]):
            continue
        path = os.path.join(run_dir, entry["path"])
        if os.path.isfile(path):
            return figure(path, caption)
        notes.append(note(f"analysis.json lists {entry['path']} but the file is missing; rerun:",
                          command(*ANALYZE_COMMAND, run_dir)))
    return None


def _best_class(values: dict[str, float]) -> str:
    return max(values, key=values.get) if values else ""


def channel_rows(layer: str, ablation: list[dict], stats: list[dict], intact: dict, path: str) -> list[dict]:
    """One row per channel of `layer`, largest accuracy drop first, with the class each channel
    is most active on (channel_stats.csv) and the class that loses most without it (ablation.csv)."""
    stats_by_channel = {int(r["channel"]): r for r in stats if r["layer"] == layer}
    rows = []
    for r in (r for r in ablation if r["layer"] == layer):
        channel = int(to_float(r["channel"], path, "channel"))
        per_class = {c[4:]: to_float(v, path, c) for c, v in r.items() if c.startswith("acc_")}
        class_drop = {c: intact.get(c, 0.0) - acc for c, acc in per_class.items()}
        stat = stats_by_channel.get(channel, {})
        class_means = {c: float(v) for c, v in stat.items() if c not in STATS_COLUMNS}
        rows.append({"channel": channel, "accuracy": fmt(r["accuracy"]), "drop_value": to_float(r["accuracy_drop"], path, "accuracy_drop"),
                     "accuracy_drop": fmt(r["accuracy_drop"]), "hurt_most": _best_class(class_drop),
                     "hurt_most_drop": fmt(class_drop.get(_best_class(class_drop))) if class_drop else "",
                     "most_active": _best_class(class_means), "mean_activation": fmt(stat.get("mean_activation"))})
    return sorted(rows, key=lambda row: -row["drop_value"])


def top_channels_sentence(layer: str, top: list[dict]) -> str:
    listed = [t for t in top[:TOP_CHANNELS_LISTED] if float(t["accuracy_drop"]) > 0]
    if not listed:
        return f"No single channel of {layer} matters on its own: zeroing any one of them costs no test accuracy."
    parts = [f"channel {t['channel']} (accuracy drop {fmt(t['accuracy_drop'])})" for t in listed]
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"The channels of {layer} that matter most for test accuracy: {joined}."


def layer_block(run_dir: str, layer: str, summary: dict, ablation: list, stats: list, notes: list) -> dict:
    """Everything the report shows for one trunk layer."""
    files, mode = summary.get("files", []), summary.get("mode", "keep")
    how = "alone (every other channel zeroed)" if mode == "keep" else "zeroed (every other channel kept)"
    images = []
    for image in summary.get("images", []):
        name = f"{image['split']} image {image['index']} ({image.get('label', '?')})"
        images.append({"title": name, "channels": _find_figure(
            run_dir, files, "channels", layer, f"{layer}, {name}: original, full reconstruction, then the "
            f"reconstruction with each channel {how}", notes, image), "activations": _find_figure(
            run_dir, files, "activations", layer, f"{layer}, {name}: raw activation map of each channel", notes, image)})
    intact = summary.get("intact_per_class_accuracy") or {}
    rows = channel_rows(layer, ablation, stats, intact, os.path.join(run_dir, "analysis", "ablation.csv"))
    return {"name": layer, "images": images,
            "heatmap": _find_figure(run_dir, files, "heatmap", layer, f"{layer}: mean activation of each channel "
                                    "(rows) on the test images of each class (columns)", notes),
            "ablation": _find_figure(run_dir, files, "ablation", layer, f"{layer}: test accuracy lost when each "
                                     f"channel is zeroed (intact accuracy {fmt(summary.get('intact_accuracy'))})", notes),
            "top_sentence": top_channels_sentence(layer, (summary.get("top_channels") or {}).get(layer, [])),
            "channels": rows[:MAX_CHANNEL_ROWS], "channels_total": len(rows),
            "class_channels": [{"name": c, "channels": ", ".join(map(str, ch[:CLASS_CHANNELS_LISTED]))}
                               for c, ch in ((summary.get("class_channels") or {}).get(layer) or {}).items()]}


def analysis_section(run_dir: str) -> dict:
    """Section 5, or one note with the command that makes the analysis."""
    summary = read_json(analysis_path(run_dir))
    if summary is None:
        return {"present": False, "notes": [note("No latent analysis yet (add --analyze to this command to run it "
                                                 "first), or make it with:", command(*ANALYZE_COMMAND, run_dir))]}
    folder = os.path.join(run_dir, "analysis")
    ablation = read_csv(os.path.join(folder, "ablation.csv"), ABLATION_COLUMNS) or []
    stats = read_csv(os.path.join(folder, "channel_stats.csv"), STATS_COLUMNS) or []
    notes = []
    if analysis_is_stale(run_dir):
        notes.append(note("This analysis is older than model.keras (the run was retrained since); rerun it:",
                          command(*ANALYZE_COMMAND, run_dir)))
    if not ablation:
        notes.append(note("No analysis/ablation.csv: the channels' effect on accuracy is not shown; rerun:",
                          command(*ANALYZE_COMMAND, run_dir)))
    layers = [layer_block(run_dir, layer, summary, ablation, stats, notes) for layer in summary.get("layers", [])]
    return {"present": True, "mode": summary.get("mode", "keep"), "intact_accuracy": fmt(summary.get("intact_accuracy")),
            "images": summary.get("images", []), "layers": layers, "notes": notes}


def check_tuning_dir(tuning_dir: str) -> None:
    if not os.path.isdir(tuning_dir):
        raise UsageError(f"--tuning {tuning_dir!r} is not a folder; pass the results folder of "
                         f"{' '.join(TUNING_COMMAND)} (the one holding trials.csv)")
    if not os.path.isfile(os.path.join(tuning_dir, "trials.csv")):
        raise UsageError(f"--tuning {tuning_dir!r} has no trials.csv; pass the results folder of "
                         f"{' '.join(TUNING_COMMAND)} (default tuning/results/<project>)")


def _trial_cell(column: str, value) -> str:
    if value in (None, ""):
        return ""
    if column in ("val_accuracy", "val_recon_mse"):
        return fmt(value)
    if column == "seconds":
        return fmt(value, 1)
    return fmt_general(value) if column in ("ce_weight", "recon_weight") else str(value)


def tuning_section(tuning_dir: str | None, config: TrainConfig) -> dict:
    """Section 6: trials table (best first), accuracy-vs-MSE plot and the best weights, or a note."""
    if tuning_dir is None:
        return {"present": False, "notes": [note(
            "No loss-weight search included (pass --tuning DIR to add one); make one with:",
            command(*TUNING_COMMAND, "--dataset", config.data.dataset))]}
    check_tuning_dir(tuning_dir)
    path = os.path.join(tuning_dir, "trials.csv")
    trials = read_csv(path, ("trial_id", "ce_weight", "recon_weight", "val_accuracy"))
    header = list(trials[0]) if trials else list(TRIAL_COLUMNS)
    columns = [c for c in TRIAL_COLUMNS if c in header] + [c for c in header if c not in TRIAL_COLUMNS]
    best = read_json(os.path.join(tuning_dir, "best.json"))
    best_id = str(best.get("trial_id")) if best else None
    key = lambda row: -to_float(row["val_accuracy"], path, "val_accuracy") if row["val_accuracy"] else 1.0  # noqa: E731
    rows = [{"best": str(row["trial_id"]) == best_id, "trial_id": row["trial_id"],
             "cells": [{"column": c, "text": _trial_cell(c, row.get(c))} for c in columns]} for row in sorted(trials, key=key)]
    pareto = os.path.join(tuning_dir, "pareto.png")
    notes = [] if best else [note("No best.json yet: the search has not finished a trial; rerun:",
                                  command(*TUNING_COMMAND, "--dataset", config.data.dataset))]
    return {"present": True, "directory": tuning_dir, "columns": columns, "rows": rows, "notes": notes,
            "pareto": figure(pareto, "Validation accuracy against reconstruction MSE for every trial; "
                             "the Pareto front is marked and the best trial labelled") if os.path.isfile(pareto) else None,
            "best": best_summary(best, tuning_dir, config) if best else None}


def best_summary(best: dict, tuning_dir: str, config: TrainConfig) -> dict:
    return {"ce_weight": fmt_general(best.get("ce_weight")), "recon_weight": fmt_general(best.get("recon_weight")),
            "val_accuracy": fmt(best.get("val_accuracy")), "val_recon_mse": fmt(best.get("val_recon_mse")),
            "trial_id": best.get("trial_id"), "run_ce_weight": fmt_general(config.ce_weight),
            "run_recon_weight": fmt_general(config.recon_weight),
            "train_command": command("python", "-m", "keras_latent.train", "--weights-from",
                                     os.path.join(tuning_dir, "best.json"))}
