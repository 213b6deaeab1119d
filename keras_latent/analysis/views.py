"""The views `analyze_run` writes beside the decoded channels, chosen by AnalysisConfig.methods:

    features   features_{layer}.png, features.csv    what excites each channel (analysis.features)
    gradcam    gradcam_{split}_{index}.png           where the classifier looks, per trunk layer (analysis.attribution)
    saliency   saliency_{split}_{index}.png          SmoothGrad saliency of the analysed images

and views_{layer}.npz, the per-channel arrays the report's channel cards are cut from (each
channel's decoded tile and activation map for every analysed image, and its optimized image).
`write_views` returns what it adds to analysis.json.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import time

import numpy as np

from keras_latent.analysis import attribution, features, latent, view_plots
from keras_latent.analysis.config import AnalysisConfig
from keras_latent.data.pipeline import denormalize, normalize
from keras_latent.files import atomic_write_text, save_figure
from keras_latent.runs import layout
from keras_latent.runs.records import csv_text, write_arrays

log = logging.getLogger("keras_latent")
FEATURE_COLUMNS = ("layer", "channel", "optimized_activation", "best_test_activation", "best_test_index")


@contextlib.contextmanager
def timed(seconds: dict, key: str):
    """Add the wall time of the `with` block to seconds[key] (analysis.json's `seconds`)."""
    start = time.perf_counter()
    yield
    seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start


def file_fields(fields: dict) -> dict:
    """`fields` as a file name takes them: a nested layer path "stem/conv1" becomes "stem.conv1"."""
    return {k: v.replace("/", ".") if k == "layer" else v for k, v in fields.items()}


def figure_entry(fig, out: str, entry: layout.Entry, kind: str, **fields) -> dict:
    """Save `fig` as `entry` (its `fields` filled) in folder `out`; returns its analysis.json `files` entry."""
    save_figure(fig, entry.path(out, **file_fields(fields)))
    return {"kind": kind, **fields, "path": layout.analysis_relative(entry, **file_fields(fields))}



def activations(probe, images: np.ndarray, layer: str, batch_size: int = 256) -> np.ndarray:
    """Model-input images (N, H, W, C) -> `layer`'s activations (N, h, w, c) float32, through `probe`."""
    return latent.predict_in_chunks(probe.encoder(layer), [np.asarray(images, np.float32)], batch_size)


def write_features(probe, splits, layer_channels: dict, settings: features.FeatureSettings,
                   out: str) -> tuple[list, dict, dict]:
    """Feature visualization of every chosen channel, its grid per layer and features.csv.

    Returns (files entries, analysis.json's `features`, {layer: {"optimized": uint8 (K, S, S, 3),
    "best_test": the test image that excites each channel most, uint8 (K, S, S, 3)}}).
    """
    colour_images, x_test = np.asarray(normalize(splits.x_train)), probe.to_input(splits.x_test)
    files, summary, optimized, rows = [], {}, {}, []
    for layer, channels in layer_channels.items():
        found = probe.visualize(layer, channels, settings, colour_images)
        test_means = activations(probe, x_test, layer).mean(axis=(1, 2))[:, channels]  # (N, K)
        best, best_index = test_means.max(axis=0), test_means.argmax(axis=0)
        optimized[layer] = {"optimized": denormalize(found.images), "best_test": splits.x_test[best_index]}
        summary[layer] = [{"channel": int(c), "optimized_activation": float(found.activation[j]),
                           "best_test_activation": float(best[j]), "best_test_index": int(best_index[j])}
                          for j, c in enumerate(channels)]
        rows += [[layer, *row.values()] for row in summary[layer]]
        files.append(figure_entry(view_plots.plot_feature_grid(optimized[layer]["optimized"], channels,
                                                               found.activation, best, layer),
                                  out, layout.FEATURE_GRID, "features", layer=layer))
        log.info(f"{layer}: feature visualization of {len(channels)} channels, {settings.steps} steps")
    atomic_write_text(layout.FEATURES_TABLE.path(out), csv_text(list(FEATURE_COLUMNS), rows))
    return files, summary, optimized


def upsample(maps: np.ndarray, size) -> np.ndarray:
    """Maps (N, h, w) resized bilinearly to (N, H, W), size (H, W) (or one int for a square), float32."""
    if isinstance(size, int):
        return attribution.upsample(maps, size)
    from keras import ops

    return np.asarray(ops.image.resize(np.asarray(maps, np.float32)[..., None], tuple(size),
                                       interpolation="bilinear"))[..., 0]


def _class_rows(image: dict, probabilities: np.ndarray, class_names) -> tuple[list[int], list[str]]:
    """The classes to explain for one image: predicted, then true when it differs; with their labels."""
    predicted = int(probabilities.argmax())
    classes = [predicted] + ([image["class_index"]] if image["class_index"] != predicted else [])
    labels = [f"{'predicted' if c == predicted else 'true'}: {class_names[c]} ({probabilities[c]:.2f})"
              for c in classes]
    if len(classes) == 1:
        labels[0] = f"predicted = true: {class_names[predicted]} ({probabilities[predicted]:.2f})"
    return classes, labels


def write_attributions(probe, images: list[dict], class_names, layers: list[str], methods, samples: int, seed: int,
                       out: str, seconds: dict) -> tuple[list, list]:
    """Grad-CAM and/or SmoothGrad figures of each analysed image, for its predicted and its true class.

    Returns (files entries, analysis.json's `predictions`); adds each method's time to `seconds`.
    """
    x = np.stack([im["normalized"] for im in images])  # (N, S, S, 3)
    probabilities = probe.class_probabilities(x)  # (N, classes)
    files, predictions = [], []
    for i, image in enumerate(images):
        classes, labels = _class_rows(image, probabilities[i], class_names)
        predictions.append({"split": image["split"], "index": image["index"],
                            "predicted": class_names[classes[0]], "predicted_index": classes[0],
                            "probability": float(probabilities[i, classes[0]]),
                            "true_probability": float(probabilities[i, image["class_index"]])})
        what = f"{image['split']} image {image['index']} ({image['label']})"
        fields = {"split": image["split"], "index": image["index"]}
        repeated = np.repeat(x[i:i + 1], len(classes), axis=0)
        if "gradcam" in methods:
            with timed(seconds, "gradcam"):
                cams = probe.grad_cam(repeated, classes, layers)
                maps = np.stack([upsample(cams[layer], x.shape[1:3]) for layer in layers], axis=1)
                files.append(figure_entry(view_plots.plot_grad_cam(image["uint8"], maps, layers, labels,
                                                                   f"{what}: Grad-CAM"),
                                          out, layout.GRAD_CAM, "gradcam", **fields))
        if "saliency" in methods:
            with timed(seconds, "saliency"):
                saliency = probe.smoothgrad(repeated, classes, samples, seed)
                files.append(figure_entry(view_plots.plot_saliency(image["uint8"], saliency, labels,
                                                                   f"{what}: SmoothGrad saliency, {samples} samples"),
                                          out, layout.SALIENCY, "saliency", **fields))
    return files, predictions


def _rgb(images: np.ndarray) -> np.ndarray:
    """Grey images (..., 1) repeated to RGB (..., 3), as views_{layer}.npz holds them; RGB unchanged."""
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def write_channel_arrays(probe, images: list[dict], layer_channels: dict, mode: str, decode: bool,
                         optimized: dict, decode_paths: dict[str, str], out: str) -> dict[str, str]:
    """views_{layer}.npz (layout.CHANNEL_VIEW_ARRAYS) of every layer with per-channel views, the decoded
    tiles along each layer's decode path (`decode_paths`, as the channel grids); returns {layer: path}."""
    x = np.stack([im["normalized"] for im in images])
    written = {}
    for layer, channels in layer_channels.items():
        arrays = {"channels": np.asarray(channels, np.int64), "originals": np.stack([im["uint8"] for im in images])}
        arrays.update(optimized.get(layer, {}))
        if decode:
            acts = activations(probe, x, layer)
            arrays["activation_maps"] = np.moveaxis(acts[..., channels], -1, 1)
            if layer in decode_paths:  # with a decoder
                masks = latent.channel_masks(acts.shape[-1], channels, mode)
                arrays["decoded"] = probe.to_uint8(latent.predict_masked(
                    probe.masked_decoder(layer, decode_paths[layer]), acts, masks))
        if len(arrays) == 2:
            continue  # no per-channel view
        arrays = {k: _rgb(v) if k in ("originals", "optimized", "best_test", "decoded") else v
                  for k, v in arrays.items()}
        write_arrays(layout.CHANNEL_VIEWS.path(out, **file_fields({"layer": layer})), arrays)
        written[layer] = layout.analysis_relative(layout.CHANNEL_VIEWS, **file_fields({"layer": layer}))
    return written


def write_views(probe, splits, class_names, layer_channels: dict, images: list[dict], config: AnalysisConfig,
                seed: int, out: str, seconds: dict, decode_paths: dict[str, str]) -> dict:
    """Every view of `config.methods` but `decode` (which run.py draws), and the channel arrays (decoded along
    `decode_paths`, {} without a decoder), into `out`.

    Returns the keys it adds to analysis.json: files, features, feature_settings, predictions,
    channel_views; adds each method's wall time to `seconds`.
    """
    methods = config.methods
    added, optimized = {"files": []}, {}
    if "features" in methods:
        settings = features.FeatureSettings(steps=config.feature_steps, learning_rate=config.feature_lr, seed=seed)
        with timed(seconds, "features"):
            files, added["features"], optimized = write_features(probe, splits, layer_channels, settings, out)
        added["files"] += files
        added["feature_settings"] = dataclasses.asdict(settings)
    if "gradcam" in methods or "saliency" in methods:
        files, added["predictions"] = write_attributions(probe, images, class_names, list(layer_channels), methods,
                                                         config.saliency_samples, seed, out, seconds)
        added["files"] += files
    added["channel_views"] = write_channel_arrays(probe, images, layer_channels, config.mode, "decode" in methods,
                                                  optimized, decode_paths, out)
    return added
