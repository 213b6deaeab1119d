"""The latent analysis of a run folder, written to RUN/analysis/ in one atomic step.

For one training and one test image it decodes each layer's activations with one channel kept
(or zeroed), draws the raw feature maps, measures each channel's mean activation per class and
the test accuracy lost when it is zeroed; `views` adds the feature visualization, Grad-CAM and
saliency (AnalysisConfig.methods picks the views). Data, normalization and class names are rebuilt
from the run's config.json. `analyze_run` is what `python -m keras_latent.analyze` runs.
"""
from __future__ import annotations

import logging

import keras
import numpy as np

from keras_latent.analysis import latent, plots, views
from keras_latent.analysis.config import AnalysisConfig, validate_analysis
from keras_latent.analysis.probe import probe_for
from keras_latent.attached.run import open_any_run
from keras_latent.data.pipeline import normalize
from keras_latent.errors import UsageError
from keras_latent.files import atomic_directory, atomic_write_text
from keras_latent.runs import layout
from keras_latent.runs.records import csv_text, write_json
from keras_latent.training.evaluation import per_class_dict
from keras_latent.training.faithfulness import measure_test_faithfulness

log = logging.getLogger("keras_latent")


def check_index(index: int, size: int, flag: str) -> int:
    if not 0 <= index < size:
        raise UsageError(f"{flag} must be between 0 and {size - 1} (the split has {size} images), got {index}")
    return index


def chosen_layers(probe, layers) -> list[str]:
    """The layers asked for (checked against the model's: one UsageError line listing the valid names), or every
    layer a decoder reads."""
    names = [probe.check_layer(name) for name in layers] if layers else probe.layers
    return list(dict.fromkeys(names))


_save_figure_entry = views.figure_entry


def write_image_figures(probe, images: list[dict], layer: str, channels, mode: str, path: str | None,
                        out: str) -> list[dict]:
    """Channel grid (decoded along `path`; None: no decoder) and activation maps of each image at `layer`;
    returns the `files` entries."""
    x = np.stack([im["normalized"] for im in images])  # (N, S, S, 3)
    acts = views.activations(probe, x, layer)  # (N, h, w, C)
    decoded = None
    if path is not None:
        masks = latent.intact_and_channel_masks(acts.shape[-1], channels, mode)  # all, then each
        decoder = probe.masked_decoder(layer, path)
        decoded = probe.to_uint8(latent.predict_masked(decoder, acts, masks))  # (N, 1 + K, S, S, 3)
    files = []
    for i, im in enumerate(images):
        what = f"{im['split']} image {im['index']} ({im['label']}), {layer} {'x'.join(map(str, acts.shape[1:]))}"
        fields = {"layer": layer, "split": im["split"], "index": im["index"]}
        if decoded is not None:
            files.append({**_save_figure_entry(
                plots.plot_channel_grid(im["uint8"], decoded[i, 0], decoded[i, 1:], channels,
                                        f"{what}: decoded per channel along the {path} path", mode),
                out, layout.CHANNEL_GRID, "channels", **fields), "decode_path": path})
        files.append(_save_figure_entry(
            plots.plot_activation_maps(im["uint8"], acts[i][..., channels], channels, f"{what}: feature maps"),
            out, layout.ACTIVATION_MAPS, "activations", **fields))
    return files


def layer_measures(probe, x_test, y_test, class_names, layer: str, channels, out: str):
    """Channel statistics and ablation of one layer on the test split: (stats rows, ablation, files)."""
    stats = latent.encoder_statistics(probe.encoder(layer), x_test, y_test, layer, len(class_names))
    ablation = latent.ablate_with(probe.ablation_model(layer), probe.num_channels(layer), x_test, y_test, layer,
                                  len(class_names), channels)
    stats_rows = [[layer, int(c), float(stats.mean_activation[c]), *map(float, stats.class_mean_activation[c])]
                  for c in channels]
    files = [
        _save_figure_entry(plots.plot_channel_class_heatmap(stats.mean_activation[channels],
                                                            stats.class_mean_activation[channels], channels,
                                                            class_names, layer),
                           out, layout.CLASS_HEATMAP, "heatmap", layer=layer),
        _save_figure_entry(plots.plot_ablation(channels, ablation.accuracy_drop, ablation.intact_accuracy,
                                               ablation.per_class_drop, class_names, layer),
                           out, layout.ABLATION_PLOT, "ablation", layer=layer),
    ]
    return stats_rows, ablation, files


def layer_decode_paths(faithful: dict | None, setting: str, layers) -> dict[str, str]:
    """The decode path of each analysed layer: the measured faithful one (`auto`), or the one asked for;
    {} without a decoder (`faithful` None); "tail" (its own decoder) for an attached run's layers."""
    if faithful is None:
        return {}
    if "decode_paths" not in faithful:  # an attached run: each layer has its own decoder
        return dict.fromkeys(layers, "tail")
    return {layer: faithful["decode_paths"][layer] if setting == "auto" else setting for layer in layers}


def write_analysis(probe, splits, class_names, layer_channels: dict, images, config: AnalysisConfig,
                   faithful: dict | None, out: str, seconds: dict | None = None) -> dict:
    """The decoded channels (with `decode` in `config.methods`), statistics and ablation (always) and both
    CSV tables into folder `out`; returns analysis.json's summary so far. Adds wall times to `seconds`.

    layer_channels: {layer: channel indices (K,)}, the checked choice of each layer, in layer order;
    faithful: the test split's faithfulness table (`training.faithfulness`), None without a decoder.
    """
    mode, top = config.mode, config.top
    paths = layer_decode_paths(faithful, config.decode_path, layer_channels)
    seconds = {} if seconds is None else seconds
    x_test = probe.to_input(splits.x_test)
    summary = {"mode": mode, "layers": list(layer_channels), "decode_path_setting": config.decode_path,
               "decode_paths": paths, "faithfulness": faithful,
               "images": [{k: im[k] for k in ("split", "index", "label", "class_index")} for im in images],
               "dataset": splits.description, "test_images": len(x_test),
               "channels": {layer: channels.tolist() for layer, channels in layer_channels.items()},
               "top_channels": {}, "class_channels": {}, "files": []}
    stats_rows, ablation_rows = [], []
    for layer, channels in layer_channels.items():
        if "decode" in config.methods:
            with views.timed(seconds, "decode"):
                summary["files"] += write_image_figures(probe, images, layer, channels, mode, paths.get(layer), out)
        with views.timed(seconds, "measures"):
            rows, ablation, files = layer_measures(probe, x_test, splits.y_test, class_names, layer, channels, out)
        stats_rows += rows
        ablation_rows += [[layer, int(c), float(ablation.accuracy[j]), float(ablation.accuracy_drop[j]),
                           *map(float, ablation.per_class[j])] for j, c in enumerate(channels)]
        summary["files"] += files
        summary["top_channels"][layer], summary["class_channels"][layer] = latent.rank_channels(
            ablation, class_names, top)
    # the intact model is the same for every layer: its scores as the last layer's ablation measured them
    summary["intact_accuracy"] = ablation.intact_accuracy
    summary["intact_per_class_accuracy"] = per_class_dict(class_names, ablation.intact_per_class)
    atomic_write_text(layout.CHANNEL_STATS.path(out),
                      csv_text(["layer", "channel", "mean_activation", *class_names], stats_rows))
    atomic_write_text(layout.ABLATION.path(out),
                      csv_text(["layer", "channel", "accuracy", "accuracy_drop", *[f"acc_{n}" for n in class_names]],
                               ablation_rows))
    return summary


def chosen_images(splits, class_names, train_index: int, test_index: int, probe=None) -> list[dict]:
    """The two images to decode, uint8 and as the model takes them ("normalized": [-1, 1], or the attached
    model's input range with `probe`), with their split, index and label."""
    images = []
    for split, x, y, index in (("train", splits.x_train, splits.y_train, train_index),
                               ("test", splits.x_test, splits.y_test, test_index)):
        check_index(index, len(x), f"--{split}-index")
        images.append({"split": split, "index": index, "label": class_names[int(y[index])],
                       "class_index": int(y[index]), "uint8": x[index],
                       "normalized": probe.to_input(x[index:index + 1])[0] if probe is not None
                       else np.asarray(normalize(x[index]))})
    return images


def analyze_run(run_dir: str, config: AnalysisConfig = AnalysisConfig()) -> dict:
    """Analyse the run in `run_dir` into RUN/analysis/ (replaced atomically); returns analysis.json's content.

    Validates `config` and seeds with the run's seed, as the command does.
    """
    import tensorflow as tf

    validate_analysis(config)
    run = open_any_run(run_dir, config.dataset)
    run.config  # noqa: B018 (not a run folder, or a damaged config.json: one line before the model loads)
    probe = probe_for(run)
    splits, class_names, seed = run.data.splits, run.data.class_names, run.data.config.seed
    keras.utils.set_random_seed(seed)
    layer_channels = {layer: latent.check_channels(probe.num_channels(layer), config.channels, layer)
                      for layer in chosen_layers(probe, config.layers)}
    images = chosen_images(splits, class_names, config.train_index, config.test_index, probe)
    if probe.kind == "attached":  # measured on the test split when the decoders were attached
        faithful = run.metrics["faithfulness"]
    else:
        faithful = measure_test_faithfulness(probe.model, splits)
    if faithful is None:
        log.info("this run has no decoder (--no-decoder): channel grids skipped; feature maps, statistics and "
                 "ablation written")
    else:
        for layer, path in layer_decode_paths(faithful, config.decode_path, layer_channels).items():
            figures = faithful["layers"][layer] if probe.kind == "attached" else faithful["layers"][layer][path]
            log.info(f"{layer}: decoded along the {path} path (all channels: MSE {figures['mse']:.4f}, "
                     f"PSNR {figures['psnr']:.1f} dB; mean image {faithful['mean_image']['mse']:.4f})")
    folder = layout.analysis_dir(run_dir)
    log_level = tf.get_logger().level
    tf.get_logger().setLevel("ERROR")  # each sub-model traces its own predict function: expected, not news
    try:
        with atomic_directory(folder) as out:
            seconds = {}
            summary = write_analysis(probe, splits, class_names, layer_channels, images, config, faithful, out, seconds)
            added = views.write_views(probe, splits, class_names, layer_channels, images, config, seed,
                                      out, seconds, summary["decode_paths"])
            summary["files"] += added.pop("files")
            if "sanity" in config.methods:  # the controls of every view (issue 23): sanity.json and its figures
                from keras_latent.analysis.sanity_method import write_sanity

                with views.timed(seconds, "sanity"):
                    sanity = write_sanity(run, probe, list(layer_channels), summary["decode_paths"], config, seed, out)
                summary["sanity"] = {"path": layout.analysis_relative(layout.SANITY_SUMMARY),
                                     "verdicts": sanity["verdicts"]}
            summary.update(added, methods=list(config.methods), seconds=seconds)
            if probe.kind == "attached":
                summary["kind"] = probe.kind
            write_json(layout.ANALYSIS_SUMMARY.path(out), summary)
            return summary
    except OSError as err:
        raise UsageError(f"cannot write {folder}: {err.strerror or err}") from None
    finally:
        tf.get_logger().setLevel(log_level)
