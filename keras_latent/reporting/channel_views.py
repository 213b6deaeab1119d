"""Report section 5's three views of each channel: one card per channel, Grad-CAM and saliency beside the images.

A card shows, side by side, the channel's optimized image (what excites it), its decoded tile and
activation map for each analysed image (what it carries), and the classes that lose most test
accuracy without it. The tiles are cut from RUN/analysis/views_{layer}.npz and embedded as small
PNG data URIs (drawn pixelated by the page); the numbers come from analysis.json (`features`) and
the ablation rows of `analysis_section.channel_rows`.
"""
from __future__ import annotations

import base64
import io
import os

import numpy as np

from keras_latent.reporting.assets import command, fmt, note
from keras_latent.runs import layout
from keras_latent.runs.records import read_arrays

CLASSES_LISTED = 3  # classes named on a card: those that lose most accuracy without the channel
MODE_WORDS = {"keep": "alone", "drop": "zeroed"}
MINUS = "\u2212"  # the typographic minus sign


def png_uri(array: np.ndarray, **imsave) -> str:
    """An image array (h, w, 3) uint8 or (h, w) with a colour map, as a PNG data URI (no pyplot)."""
    from matplotlib.image import imsave as save_png

    buffer = io.BytesIO()
    save_png(buffer, array, format="png", **imsave)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _tile(array: np.ndarray, caption: str, alt: str, **imsave) -> dict:
    return {"src": png_uri(array, **imsave), "caption": caption, "alt": alt}


def load_views(run_dir: str, summary: dict, layer: str, notes: list) -> dict | None:
    """views_{layer}.npz checked against its contract (shapes agree with each other and with analysis.json);
    None when analysis.json lists none, with a note when it lists one that is gone."""
    relative = (summary.get("channel_views") or {}).get(layer)
    if relative is None:
        return None
    arrays = read_arrays(os.path.join(run_dir, relative), layout.CHANNEL_VIEW_ARRAYS)
    if arrays is None:
        notes.append(note(f"analysis.json lists {relative} but the file is missing, so {layer}'s channel cards are "
                          "left out; rerun:", command(*layout.ANALYZE.split(), run_dir)))
        return None
    channels, originals = arrays["channels"], arrays["originals"]
    k, n = len(channels), len(summary.get("images", []))
    expected = {"originals": (n,), "optimized": (k,), "best_test": (k,), "decoded": (n, k), "activation_maps": (n, k)}
    for name, lead in expected.items():
        if name in arrays and arrays[name].shape[:len(lead)] != lead:
            raise ValueError(f"{relative}: {name} has shape {arrays[name].shape}, expected {lead} first "
                             f"({k} channels, {n} analysed images)")
    if originals.ndim != 4 or channels.ndim != 1:
        raise ValueError(f"{relative}: channels must be (K,) and originals (N, S, S, 3), got {channels.shape} "
                         f"and {originals.shape}")
    return arrays


def _hurt_classes(row: dict) -> list[dict]:
    """The classes that lose most accuracy without the channel (largest drop first, drops > 0 only)."""
    drops = sorted(row["class_drops"].items(), key=lambda item: -item[1])
    return [{"name": name, "drop": f"{MINUS}{100 * drop:.1f}"} for name, drop in drops[:CLASSES_LISTED] if drop > 0]


def channel_cards(run_dir: str, layer: str, summary: dict, rows: list[dict], notes: list) -> dict | None:
    """Every channel of `layer` as a card (channel order), with the analysed images they refer to; None
    without views_{layer}.npz."""
    views = load_views(run_dir, summary, layer, notes)
    if views is None:
        return None
    images = summary.get("images", [])
    names = [f"{im['split']} {im['index']}" for im in images]
    how = MODE_WORDS.get(summary.get("mode", "keep"), "alone")
    by_channel = {row["channel"]: row for row in rows}
    features = {int(f["channel"]): f for f in (summary.get("features") or {}).get(layer, [])}
    maps = views.get("activation_maps")
    tops = [max(float(maps[i].max()), 1e-12) for i in range(len(images))] if maps is not None else []
    cards = []
    for j, channel in enumerate(int(c) for c in views["channels"]):
        what = f"{layer} channel {channel}"
        tiles = []
        if "optimized" in views:
            tiles.append(_tile(views["optimized"][j], "optimized", f"{what}: its optimized image"))
        if "best_test" in views:
            tiles.append(_tile(views["best_test"][j], "top test image",
                               f"{what}: the test image that excites it most"))
        for i, name in enumerate(names):
            if "decoded" in views:
                tiles.append(_tile(views["decoded"][i, j], f"decoded, {name}",
                                   f"{what}: {name} decoded with the channel {how}"))
            if maps is not None:
                tiles.append(_tile(maps[i, j], f"activation, {name}", f"{what}: activation map of {name}",
                                   cmap="viridis", vmin=0.0, vmax=tops[i]))
        row, feature = by_channel.get(channel), features.get(channel)
        cards.append({"channel": channel, "tiles": tiles,
                      "accuracy_change": f"{-100 * row['drop_value']:+.1f}".replace("-", MINUS) if row else None,
                      "hurt": _hurt_classes(row) if row else [],
                      "optimized": fmt(feature["optimized_activation"], 2) if feature else None,
                      "best_test": fmt(feature["best_test_activation"], 2) if feature else None,
                      "mean_activation": row["mean_activation"] if row else None})
    originals = [_tile(views["originals"][i], name, f"analysed image {name} ({images[i].get('label', '?')})")
                 for i, name in enumerate(names)]
    return {"cards": cards, "originals": originals, "mode_word": how}


def attribution_blocks(run_dir: str, summary: dict, find_figure, notes: list) -> list[dict]:
    """Per analysed image: its Grad-CAM and saliency figures (either may be missing) and its prediction."""
    predictions = {(p["split"], p["index"]): p for p in summary.get("predictions") or []}
    files, blocks = summary.get("files", []), []
    for image in summary.get("images", []):
        name = f"{image['split']} image {image['index']} ({image.get('label', '?')})"
        wanted = {"split": image["split"], "index": image["index"]}
        gradcam = find_figure(run_dir, files, {"kind": "gradcam", **wanted},
                              f"{name}: Grad-CAM at each trunk layer for the predicted and the true class", notes)
        saliency = find_figure(run_dir, files, {"kind": "saliency", **wanted},
                               f"{name}: SmoothGrad saliency for the predicted and the true class", notes)
        if gradcam or saliency:
            prediction = predictions.get((image["split"], image["index"]))
            said = _prediction_words(prediction, image.get("label", "?"))
            blocks.append({"title": name, "prediction": said, "gradcam": gradcam, "saliency": saliency})
    return blocks


def _prediction_words(prediction: dict | None, label: str) -> str:
    if prediction is None:
        return ""
    said = f"predicted {prediction['predicted']} ({fmt(prediction['probability'], 2)})"
    if prediction["predicted"] == label:
        return f"{said}, the true class"
    return f"{said}; true class {label} ({fmt(prediction['true_probability'], 2)})"


def feature_figure(run_dir: str, layer: str, summary: dict, find_figure, notes: list) -> dict | None:
    return find_figure(run_dir, summary.get("files", []), {"kind": "features", "layer": layer},
                       f"{layer}: the image optimized to excite each channel; under each, the channel's mean "
                       "activation on it and the highest over the test images", notes)
