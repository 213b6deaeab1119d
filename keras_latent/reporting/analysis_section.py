"""Report section 5: the latent analysis, read from RUN/analysis/ as `python -m keras_latent.analyze` writes it.

analysis.json's `files` list names every figure (kind, layer, split, index, path); ablation.csv
and channel_stats.csv give the numbers of each channel; analysis.json ranks the channels.
"""
from __future__ import annotations

import os

from keras_latent.reporting import channel_views
from keras_latent.reporting.assets import command, figure, fmt, join_names, note, to_float
from keras_latent.runs import layout
from keras_latent.runs.records import read_csv
from keras_latent.runs.run import Run

ANALYZE_COMMAND = tuple(layout.ANALYZE.split())
TOP_CHANNELS_LISTED = 3  # channels named in the "matter most" sentence of each layer
CLASS_CHANNELS_LISTED = 3  # a channel is "needed by" a class when it is among that class's first 3
MAX_CHANNEL_ROWS = 16  # rows of each layer's ablation table (all rows are in ablation.csv)
STATS_COLUMNS = ("layer", "channel", "mean_activation")


def analysis_path(run_dir: str) -> str:
    return layout.analysis_file(run_dir, layout.ANALYSIS_SUMMARY)


def analysis_entry(relative: str) -> layout.Entry:
    """The layout entry of a figure analysis.json lists (`analysis/NAME`)."""
    name = relative.rsplit("/", 1)[-1]
    return next(e for e in layout.ANALYSIS_FILES if e.match(name) is not None)


def analysis_is_stale(run_dir: str) -> bool:
    """True when model.keras is newer than the analysis (the run was retrained since)."""
    model = layout.MODEL.path(run_dir)
    return os.path.isfile(model) and os.path.getmtime(model) > os.path.getmtime(analysis_path(run_dir))


def find_figure(run_dir: str, files: list[dict], wanted: dict, caption: str, notes: list) -> dict | None:
    """The figure analysis.json lists with the `wanted` keys (kind, layer, split, index); a note when
    it is listed but its file is gone."""
    for entry in files:
        if any(entry.get(k) != v for k, v in wanted.items()):
            continue
        path = os.path.join(run_dir, entry["path"])  # analysis/NAME: the schema allows nothing else
        if os.path.isfile(path):
            return figure(path, caption, analysis_entry(entry["path"]))
        notes.append(note(f"analysis.json lists {entry['path']} but the file is missing; rerun:",
                          command(*ANALYZE_COMMAND, run_dir)))
    return None


def _largest(values: dict[str, float]) -> str:
    return max(values, key=values.get) if values else ""


def classes_needing(summary: dict, layer: str) -> dict[int, list[str]]:
    """Channel -> classes that have it among their CLASS_CHANNELS_LISTED most needed channels."""
    needed: dict[int, list[str]] = {}
    for name, ranked in ((summary.get("class_channels") or {}).get(layer) or {}).items():
        for channel in ranked[:CLASS_CHANNELS_LISTED]:
            needed.setdefault(int(channel), []).append(name)
    return needed


def _numbers(row: dict, columns, path: str) -> dict[str, float]:
    return {c: to_float(row[c], path, c) for c in columns if row.get(c) not in ("", None)}


def channel_rows(layer: str, ablation: list[dict], stats: list[dict], summary: dict, folder: str) -> list[dict]:
    """One row per channel of `layer`, largest accuracy drop first, with a reading of the channel:
    the class that loses most without it (ablation.csv), the classes that need it most
    (analysis.json) and the class it is most active on (channel_stats.csv)."""
    ablation_csv, stats_csv = layout.ABLATION.path(folder), layout.CHANNEL_STATS.path(folder)
    stats_by_channel = {int(to_float(r["channel"], stats_csv, "channel")): r for r in stats if r["layer"] == layer}
    intact, needed = summary.get("intact_per_class_accuracy") or {}, classes_needing(summary, layer)
    rows = []
    for r in (r for r in ablation if r["layer"] == layer):
        channel = int(to_float(r["channel"], ablation_csv, "channel"))
        class_acc = _numbers(r, [c for c in r if c.startswith("acc_")], ablation_csv)
        class_drop = {c[4:]: (intact.get(c[4:]) or 0.0) - acc for c, acc in class_acc.items()}
        stat = stats_by_channel.get(channel, {})
        class_means = _numbers(stat, [c for c in stat if c not in STATS_COLUMNS], stats_csv)
        hurt = _largest(class_drop)
        rows.append({"channel": channel, "accuracy": fmt(r["accuracy"]), "accuracy_drop": fmt(r["accuracy_drop"]),
                     "drop_value": to_float(r["accuracy_drop"], ablation_csv, "accuracy_drop"),
                     "hurt_most": hurt, "hurt_most_drop": fmt(class_drop[hurt]) if hurt else "",
                     "class_drops": class_drop,
                     "needed_by": ", ".join(needed.get(channel, [])), "most_active": _largest(class_means),
                     "mean_activation": fmt(stat.get("mean_activation"))})
    return sorted(rows, key=lambda row: (-row["drop_value"], row["channel"]))


def top_channels_sentence(layer: str, top: list[dict]) -> str:
    """The channels whose zeroing costs most accuracy (analysis.json's ranking), in words."""
    listed = [t for t in top[:TOP_CHANNELS_LISTED] if float(t["accuracy_drop"]) > 0]
    if not listed:
        return f"No single channel of {layer} matters on its own: zeroing any one of them costs no test accuracy."
    parts = [f"channel {t['channel']} (accuracy drop {fmt(t['accuracy_drop'])})" for t in listed]
    return f"The channels of {layer} that matter most for test accuracy: {join_names(parts)}."


def image_entries(run_dir: str, layer: str, summary: dict, notes: list) -> list[dict]:
    """Per analysed image: its per-channel decoded grid and its raw activation maps at `layer`."""
    files = summary.get("files", [])
    how = "alone (every other channel zeroed)" if summary.get("mode", "keep") == "keep" \
        else "zeroed (every other channel kept)"
    images = []
    for image in summary.get("images", []):
        name = f"{image['split']} image {image['index']} ({image.get('label', '?')})"
        wanted = {"layer": layer, "split": image["split"], "index": image["index"]}
        path = (summary.get("decode_paths") or {}).get(layer)
        along = f", decoded along the {path} path" if path else ""
        images.append({"title": name, "channels": find_figure(
            run_dir, files, {"kind": "channels", **wanted},
            f"{layer}, {name}: original, full reconstruction, then the reconstruction with each channel {how}{along}",
            notes),
            "activations": find_figure(run_dir, files, {"kind": "activations", **wanted},
                                       f"{layer}, {name}: raw activation map of each channel", notes)})
    return images


def layer_block(run_dir: str, layer: str, summary: dict, ablation: list, stats: list, notes: list) -> dict:
    """Everything the report shows for one trunk layer."""
    files = summary.get("files", [])
    rows = channel_rows(layer, ablation, stats, summary, layout.analysis_dir(run_dir))
    intact = fmt(summary.get("intact_accuracy"))
    return {"name": layer, "images": image_entries(run_dir, layer, summary, notes),
            "heatmap": find_figure(run_dir, files, {"kind": "heatmap", "layer": layer},
                                   f"{layer}: mean activation of each channel on the test images of each class", notes),
            "ablation": find_figure(run_dir, files, {"kind": "ablation", "layer": layer},
                                    f"{layer}: test accuracy lost when each channel is zeroed "
                                    f"(intact accuracy {intact})", notes),
            "top_sentence": top_channels_sentence(layer, (summary.get("top_channels") or {}).get(layer, [])),
            "features": channel_views.feature_figure(run_dir, layer, summary, find_figure, notes),
            "views": channel_views.channel_cards(run_dir, layer, summary, rows, notes),
            "channels": rows[:MAX_CHANNEL_ROWS], "channels_total": len(rows), "class_top": CLASS_CHANNELS_LISTED}


PATH_WORDS = {"tail": "through the decoder's last blocks (deconv{k} .. deconv1)",
              "propagate": "through the rest of the trunk, then the whole decoder"}


def _reason(layer: str, path: str, row: dict, deepest: str, setting: str, layer_decoders: bool) -> str:
    """Why `layer` was decoded along `path`, in words."""
    if setting != "auto":
        return f"asked for (--decode-path {setting})"
    if layer == deepest:
        return "both paths are the same for the last block"
    tail, propagate = row["tail"]["mse"], row["propagate"]["mse"]
    if path == "tail":
        return f"its tail decode (MSE {fmt(tail)}) is at least as good as propagating (MSE {fmt(propagate)})"
    why = ("this run was trained without layer decoders (before they existed, or with --no-layer-decoders), so "
           f"the decoder never saw {layer}'s own activations; " if not layer_decoders else "")
    return f"{why}its tail decode (MSE {fmt(tail)}) is worse than propagating (MSE {fmt(propagate)})"


def faithfulness_rows(summary: dict, layer_decoders: bool) -> list[dict]:
    """One row per analysed layer: the path its grids use, why, and the all-channels errors of both paths."""
    faithful = summary.get("faithfulness") or {}
    paths, flagged = summary.get("decode_paths") or {}, set(faithful.get("no_better_than_mean_image", []))
    rows = []
    for layer, path in paths.items():
        row = faithful["layers"][layer]
        rows.append({"layer": layer, "path": path, "mse": fmt(row[path]["mse"]), "psnr": fmt(row[path]["psnr"], 1),
                     "tail_mse": fmt(row["tail"]["mse"]), "propagate_mse": fmt(row["propagate"]["mse"]),
                     "flagged": layer in flagged and path == faithful["decode_paths"][layer],
                     "reason": _reason(layer, path, row, faithful["deepest_layer"],
                                       summary.get("decode_path_setting", "auto"), layer_decoders)})
    return rows


def faithfulness_block(summary: dict, layer_decoders: bool) -> dict | None:
    """The faithfulness table of the report (None for an analysis without a decoder or from before it)."""
    faithful = summary.get("faithfulness")
    if not faithful or "deepest_layer" not in faithful:  # none, or an attached run's (its own section shows it)
        return None
    deepest = faithful["deepest_layer"]
    return {"rows": faithfulness_rows(summary, layer_decoders), "mean_mse": fmt(faithful["mean_image"]["mse"]),
            "mean_psnr": fmt(faithful["mean_image"]["psnr"], 1), "deepest": deepest,
            "deepest_mse": fmt(faithful["layers"][deepest]["tail"]["mse"]), "path_words": PATH_WORDS}


def analysis_section(run: Run, layer_decoders: bool = True) -> dict:
    """Section 5, or one note with the command that makes the analysis; `layer_decoders`: whether the run's
    model was trained with them (config.json), which explains its decode paths."""
    run_dir, summary = run.folder, run.analysis
    make = command(*ANALYZE_COMMAND, run_dir)
    if summary is None:
        return {"present": False, "notes": [note(
            "No latent analysis yet (add --analyze to this command to run it first), or make it with:", make)]}
    folder = layout.analysis_dir(run_dir)
    ablation = read_csv(layout.ABLATION.path(folder), layout.ABLATION) or []
    stats = read_csv(layout.CHANNEL_STATS.path(folder), layout.CHANNEL_STATS) or []
    notes = []
    if analysis_is_stale(run_dir):
        notes.append(note("This analysis is older than model.keras (the run was retrained since); rerun it:", make))
    if not ablation:
        notes.append(note("No analysis/ablation.csv: the channels' effect on accuracy is not shown; rerun:", make))
    if summary.get("files") and "faithfulness" not in summary:
        notes.append(note("This analysis is from before faithfulness was measured: its grids may show the "
                          "decoder's blind spot rather than the channels; rerun:", make))
    layers = [layer_block(run_dir, layer, summary, ablation, stats, notes) for layer in summary.get("layers", [])]
    attributions = channel_views.attribution_blocks(run_dir, summary, find_figure, notes)
    return {"present": True, "mode": summary.get("mode", "keep"), "layers": layers, "notes": notes,
            "attributions": attributions, "intact_accuracy": fmt(summary.get("intact_accuracy")),
            "faithfulness": faithfulness_block(summary, layer_decoders)}
