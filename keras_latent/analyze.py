"""CLI: `python -m keras_latent.analyze RUN_FOLDER` decodes every channel of every trunk layer.

For one training and one test image it decodes each layer's activations with one channel kept
(or zeroed), draws the raw feature maps, measures each channel's mean activation per class and
the test accuracy lost when it is zeroed, and writes it all to RUN_FOLDER/analysis/ in one
atomic step. Data, normalization and class names are rebuilt from the run's config.json.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os

from keras_latent.cli import CliParser, int_list
from keras_latent.config import ANALYSIS_DIR
from keras_latent.errors import UsageError, run_cli


def _name_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog="python -m keras_latent.analyze", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", metavar="RUN_FOLDER", help="a run folder written by python -m keras_latent.train")
    p.add_argument("--dataset", default=None, help="override the run's data set: auto | cifar10 | sample | PATH "
                   "(same choices as training; its classes must match the run's; default: the run's own)")
    p.add_argument("--train-index", type=int, default=0, help="training-split image to decode (default: 0)")
    p.add_argument("--test-index", type=int, default=0, help="test-split image to decode (default: 0)")
    p.add_argument("--layers", type=_name_list, default=None, help="trunk layers, e.g. conv1,conv2 (default: all)")
    p.add_argument("--channels", type=int_list, default=None,
                   help="channels to decode and ablate, e.g. 0,3,5 (default: every channel of each layer)")
    p.add_argument("--mode", choices=("keep", "drop"), default="keep",
                   help="keep: decode with only channel k kept; drop: with only channel k zeroed (default: keep)")
    p.add_argument("--top", type=int, default=5,
                   help="channels listed per layer and class in analysis.json (default: 5)")
    return p


def load_run(run_dir: str, dataset: str | None):
    """(config, model, splits, class names) of a run folder; --dataset replaces the run's data set."""
    from keras_latent.config import load_config
    from keras_latent.run_folder import load_run_model
    from keras_latent.training import load_splits

    config = load_config(run_dir)
    model = load_run_model(run_dir)
    if dataset:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, dataset=dataset))
    splits, resolved = load_splits(config)
    class_names = config.data.class_names or splits.class_names
    if tuple(splits.class_names) != tuple(class_names):
        raise UsageError(f"data set {splits.dataset!r} has classes {list(splits.class_names)}, but the run was "
                         f"trained on {list(class_names)}; pass a data set with the run's classes")
    return resolved, model, splits, tuple(class_names)


def check_index(index: int, size: int, flag: str) -> int:
    if not 0 <= index < size:
        raise UsageError(f"{flag} must be between 0 and {size - 1} (the split has {size} images), got {index}")
    return index


def chosen_layers(model, layers) -> list[str]:
    from keras_latent import latent

    names = list(layers) if layers else latent.trunk_block_names(model)
    for name in names:
        latent.layer_index(model, name)  # UsageError listing the valid names
    return list(dict.fromkeys(names))


def _csv_text(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[f"{v:.6g}" if isinstance(v, float) else v for v in row] for row in rows])
    return out.getvalue()


def _save_figure_entry(fig, out: str, name: str, **entry) -> dict:
    """Save `fig` as `name` in folder `out`; returns its `files` entry: `entry`, then its "path"."""
    from keras_latent.files import save_figure

    save_figure(fig, os.path.join(out, name))
    return {**entry, "path": f"{ANALYSIS_DIR}/{name}"}


def image_figures(model, images: list[dict], layer: str, channels, mode: str, out: str) -> list[dict]:
    """Channel grid and activation maps of each image at `layer`; returns the `files` entries."""
    import numpy as np

    from keras_latent import latent, latent_plots
    from keras_latent.model import has_decoder
    from keras_latent.pipeline import denormalize

    x = np.stack([im["normalized"] for im in images])  # (N, S, S, 3)
    acts = latent.layer_activations(model, x, layer)  # (N, h, w, C)
    decoded = None
    if has_decoder(model):
        masks = latent.intact_and_channel_masks(acts.shape[-1], channels, mode)  # all, then each
        decoded = denormalize(latent.predict_masked(latent.masked_decoder(model, layer), acts, masks))  # (N,1+K,S,S,3)
    files = []
    for i, im in enumerate(images):
        stem = f"{im['split']}_{im['index']}_{layer}"
        what = f"{im['split']} image {im['index']} ({im['label']}), {layer} {'x'.join(map(str, acts.shape[1:]))}"
        entry = {"layer": layer, "split": im["split"], "index": im["index"]}
        if decoded is not None:
            files.append(_save_figure_entry(
                latent_plots.plot_channel_grid(im["uint8"], decoded[i, 0], decoded[i, 1:], channels,
                                               f"{what}: decoded per channel", mode),
                out, f"channels_{stem}.png", kind="channels", **entry))
        files.append(_save_figure_entry(
            latent_plots.plot_activation_maps(im["uint8"], acts[i][..., channels], channels, f"{what}: feature maps"),
            out, f"activations_{stem}.png", kind="activations", **entry))
    return files


def layer_measures(model, x_test, y_test, class_names, layer: str, channels, out: str):
    """Channel statistics and ablation of one layer on the test split: (stats rows, ablation, files)."""
    from keras_latent import latent, latent_plots

    stats = latent.channel_statistics(model, x_test, y_test, layer, len(class_names))
    ablation = latent.ablate_channels(model, x_test, y_test, layer, len(class_names), channels)
    stats_rows = [[layer, int(c), float(stats.mean_activation[c]), *map(float, stats.class_mean_activation[c])]
                  for c in channels]
    files = [
        _save_figure_entry(latent_plots.plot_channel_class_heatmap(stats.mean_activation[channels],
                                                                   stats.class_mean_activation[channels], channels,
                                                                   class_names, layer),
                           out, f"channel_class_heatmap_{layer}.png", kind="heatmap", layer=layer),
        _save_figure_entry(latent_plots.plot_ablation(channels, ablation.accuracy_drop, ablation.intact_accuracy,
                                                      ablation.per_class_drop, class_names, layer),
                           out, f"ablation_{layer}.png", kind="ablation", layer=layer),
    ]
    return stats_rows, ablation, files


def write_analysis(model, splits, class_names, layer_channels: dict, images, mode: str, top: int,
                   out: str) -> dict:
    """Every figure, both CSV tables and analysis.json into folder `out`; returns the summary.

    layer_channels: {layer: channel indices (K,)}, the checked choice of each layer, in layer order.
    """
    import numpy as np

    from keras_latent import latent
    from keras_latent.evaluate import per_class_dict
    from keras_latent.files import atomic_write_text
    from keras_latent.pipeline import normalize

    x_test = np.asarray(normalize(splits.x_test))
    summary = {"mode": mode, "layers": list(layer_channels),
               "images": [{k: im[k] for k in ("split", "index", "label", "class_index")} for im in images],
               "dataset": splits.description, "test_images": len(x_test),
               "channels": {layer: channels.tolist() for layer, channels in layer_channels.items()},
               "top_channels": {}, "class_channels": {}, "files": []}
    stats_rows, ablation_rows = [], []
    for layer, channels in layer_channels.items():
        summary["files"] += image_figures(model, images, layer, channels, mode, out)
        rows, ablation, files = layer_measures(model, x_test, splits.y_test, class_names, layer, channels, out)
        stats_rows += rows
        ablation_rows += [[layer, int(c), float(ablation.accuracy[j]), float(ablation.accuracy_drop[j]),
                           *map(float, ablation.per_class[j])] for j, c in enumerate(channels)]
        summary["files"] += files
        summary["top_channels"][layer], summary["class_channels"][layer] = latent.rank_channels(
            ablation, class_names, top)
    # the intact model is the same for every layer: its scores as the last layer's ablation measured them
    summary["intact_accuracy"] = ablation.intact_accuracy
    summary["intact_per_class_accuracy"] = per_class_dict(class_names, ablation.intact_per_class)
    atomic_write_text(os.path.join(out, "channel_stats.csv"),
                      _csv_text(["layer", "channel", "mean_activation", *class_names], stats_rows))
    atomic_write_text(os.path.join(out, "ablation.csv"),
                      _csv_text(["layer", "channel", "accuracy", "accuracy_drop", *[f"acc_{n}" for n in class_names]],
                                ablation_rows))
    atomic_write_text(os.path.join(out, "analysis.json"), json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return summary


def chosen_images(splits, class_names, train_index: int, test_index: int) -> list[dict]:
    """The two images to decode, uint8 and normalized, with their split, index and label."""
    import numpy as np

    from keras_latent.pipeline import normalize

    images = []
    for split, x, y, index in (("train", splits.x_train, splits.y_train, train_index),
                               ("test", splits.x_test, splits.y_test, test_index)):
        check_index(index, len(x), f"--{split}-index")
        images.append({"split": split, "index": index, "label": class_names[int(y[index])],
                       "class_index": int(y[index]), "uint8": x[index],
                       "normalized": np.asarray(normalize(x[index]))})
    return images


def print_summary(summary: dict, run_dir: str) -> None:
    print(f"intact test accuracy {100 * summary['intact_accuracy']:.1f}% on {summary['test_images']} images")
    for layer, ranked in summary["top_channels"].items():
        drops = ", ".join(f"ch {r['channel']} {100 * r['accuracy_drop']:+.1f}" for r in ranked)
        print(f"{layer}: accuracy drop (points) when zeroed, largest first: {drops}")
    print(f"{len(summary['files'])} figures, channel_stats.csv, ablation.csv and analysis.json in "
          f"{os.path.join(run_dir, ANALYSIS_DIR)}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.top < 1:
        raise UsageError(f"--top must be >= 1, got {args.top}")
    import keras
    import tensorflow as tf

    from keras_latent import latent
    from keras_latent.files import atomic_directory
    from keras_latent.model import has_decoder

    config, model, splits, class_names = load_run(args.run_dir, args.dataset)
    keras.utils.set_random_seed(config.seed)
    layer_channels = {layer: latent.check_channels(latent.num_channels(model, layer), args.channels, layer)
                      for layer in chosen_layers(model, args.layers)}
    images = chosen_images(splits, class_names, args.train_index, args.test_index)
    if not has_decoder(model):
        print("this run has no decoder (--no-decoder): channel grids skipped; feature maps, statistics and "
              "ablation written")
    log_level = tf.get_logger().level
    tf.get_logger().setLevel("ERROR")  # each sub-model traces its own predict function: expected, not news
    try:
        with atomic_directory(os.path.join(args.run_dir, ANALYSIS_DIR)) as out:
            summary = write_analysis(model, splits, class_names, layer_channels, images, args.mode, args.top, out)
    except OSError as err:
        raise UsageError(f"cannot write {os.path.join(args.run_dir, ANALYSIS_DIR)}: {err.strerror or err}") from None
    finally:
        tf.get_logger().setLevel(log_level)
    print_summary(summary, args.run_dir)
    return 0


if __name__ == "__main__":
    run_cli(main)
