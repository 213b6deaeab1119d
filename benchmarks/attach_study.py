"""Study (issue 22, parts 4 and 5): channel dropout for post-hoc decoders, and joint against post-hoc decoders.

    python benchmarks/attach_study.py [--epochs 5] [--decoder-epochs 4] [--seeds 2] [--dropouts 0,0.5]
        [--max-train-samples 1000] [--eval-images 50] [--models tutorial,residual] [--residual-layers res_out,conv2]
        [--out FOLDER]

The defaults are quick (a few minutes on 2 cores); docs/own-model.md gives the flags of the measured run.

Per seed s (0 .. --seeds - 1) it trains two convnets on the bundled sample (`--dataset sample`):
- "tutorial": the default two-output model, trained by `keras_latent.training.train` (its jointly trained layer
  decoders included) for --epochs epochs with seed s; the whole saved `model.keras` is the "user's model"
  (class output "classifier"), read back with `load_user_model`, layers `trunk/conv1` and `trunk/conv2`;
- "residual": a small convnet no one on the project wrote, built here: raw 0-255 inputs (Rescaling), a nested
  stem, a residual block with BatchNorm, Dropout and logits, trained by plain `fit` for --epochs epochs; layers
  --residual-layers (`res_out`, the residual block's output at 32 x 32 x 16, and `conv2`, 16 x 16 x 32).

A. Channel dropout (part 4). At each layer, post-hoc decoders (`train_decoders`, --decoder-epochs, seed s) with
   each --dropouts value P. Measured on the test split: the all-channels decode's faithfulness (MSE, PSNR, and
   Dosovitskiy & Brox's normalized error, the mean image about 71%), its relative feature error
   ||f(decode(a)) - a|| / ||a|| (f: the model up to that layer), and the RE-ENCODING CHECK of single-channel
   decodes: each test image's activations a with only channel k kept are decoded, the decode is re-encoded by
   the model, and each channel c's response (its spatial mean, over that channel's mean response on the real
   test images) is ranked; "hit" is the rate at which channel k is the top one (chance 1 / C), "rank" the mean
   rank of k (1 best, chance (C + 1) / 2), "k err" the relative error of channel k's map,
   ||f_k(decode(a e_k)) - a_k|| / ||a_k||. Pairs (image, k) where channel k is all zero on that image
   (nothing to decode) and dead channels (zero on every test image) are left out.
   Printed: mean +- sd over seeds, and each P > 0 against P = 0 paired by seed (keras_latent.stats).
B. Joint against post hoc (part 5). On the tutorial model, per layer: the joint decoder (the run's own tail decode,
   `keras_latent.analysis.latent.decoder_from(model, layer, "tail")`, [-1, 1] outputs mapped to [0, 1]) and the
   post-hoc one (P = 0, and P = the largest --dropouts value): faithfulness, the re-encoding check, and per channel
   the similarity of the two decoders' single-channel decodes of the same test images (pixel Spearman rank
   correlation and SSIM on [0, 1] images, keras_latent.analysis.sanity.similarity), averaged over channels and
   images; "other channels" is the same for mismatched channels (joint k against post hoc j != k), the level
   that says whether channel k's two views agree more than any two views do.

Prints the CPU, each table, the time of each step, and writes `attach_study.json` in --out. A study, not a
timed test: speed figures are wall time on a possibly shared machine.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script from anywhere

from keras_latent.errors import UsageError  # noqa: E402

TUTORIAL_LAYERS = ("trunk/conv1", "trunk/conv2")
JOINT_NAME = {"trunk/conv1": "conv1", "trunk/conv2": "conv2"}
MODEL_KINDS = ("tutorial", "residual")


# ---------------------------------------------------------------- models


def train_tutorial(run_dir: str, epochs: int, seed: int, max_train: int | None):
    """The default model trained by `train` on the sample into `run_dir`; returns the path of its model.keras."""
    import keras_latent.model.layers  # noqa: F401  (registers the model's own layers for loading it back)
    from keras_latent.config import DataConfig, TrainConfig
    from keras_latent.runs import layout
    from keras_latent.training import train

    config = TrainConfig(data=DataConfig(dataset="sample", max_train_samples=max_train, split_seed=0), epochs=epochs,
                         seed=seed, snapshot_epochs=(), calibrate=False)
    train(config, run_dir, overwrite=True, verbose=0)
    return layout.MODEL.path(run_dir)


def build_residual(image_shape, num_classes: int):
    """A small convnet with raw 0-255 inputs, a nested stem, a residual block with BatchNorm, Dropout, logits."""
    import keras

    image = keras.Input(image_shape, name="pixels")
    x = keras.layers.Rescaling(1 / 255.0, name="rescale")(image)
    stem = keras.Sequential([
        keras.Input(image_shape),
        keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem_conv"),
        keras.layers.BatchNormalization(name="stem_bn"),
        keras.layers.ReLU(name="stem_relu"),
    ], name="stem")
    x = stem(x)
    y = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="res_conv1")(x)
    y = keras.layers.Conv2D(16, 3, padding="same", name="res_conv2")(y)
    y = keras.layers.BatchNormalization(name="res_bn")(y)
    x = keras.layers.ReLU(name="res_out")(keras.layers.Add(name="res_add")([x, y]))
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Conv2D(48, 3, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.3, name="dropout")(x)
    return keras.Model(image, keras.layers.Dense(num_classes, name="logits")(x), name="residual_net")


def train_residual(splits, epochs: int, seed: int, path: str) -> str:
    """`build_residual` fitted on the training split (raw pixels), saved to `path`; returns `path`."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_residual(splits.x_train.shape[1:], len(splits.class_names))
    model.compile(keras.optimizers.Adam(2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(splits.x_train.astype("float32"), splits.y_train, batch_size=64, epochs=epochs, verbose=0)
    model.save(path)
    return path


def test_accuracy(graph, spec, images_uint8, labels) -> float:
    import numpy as np

    from keras_latent.attached.graph import CLASS_OUTPUT
    from keras_latent.attached.reading import prepare_images, to_model_input

    model = graph.feature_model([graph.eligible_layers()[0]])
    out = model.predict(to_model_input(prepare_images(images_uint8, spec), spec), batch_size=256, verbose=0)
    return float(np.mean(np.argmax(out[CLASS_OUTPUT], axis=1) == labels))


# ---------------------------------------------------------------- measurements


def predict(model, x, batch_size: int = 256):
    import numpy as np

    parts = [model.predict_on_batch(x[s:s + batch_size]) for s in range(0, len(x), batch_size)]
    if isinstance(parts[0], dict):
        return {k: np.concatenate([np.asarray(p[k], np.float32) for p in parts]) for k in parts[0]}
    return np.concatenate([np.asarray(p, np.float32) for p in parts])


class Encoder:
    """The user's model up to `layer`: images in [0, 1] (N, H, W, C) -> activations (N, h, w, c)."""

    def __init__(self, graph, layer: str, spec):
        import keras

        features = graph.feature_model([layer])
        self.model = keras.Model(features.input, features.output[layer])
        self.lo, self.hi = spec.input_range

    def __call__(self, unit_images):
        return predict(self.model, (self.lo + (self.hi - self.lo) * unit_images).astype("float32"))


def single_channel_decodes(unit_decode, activations, batch_images: int = 16):
    """Every image's activations (N, h, w, C) with one channel kept, decoded: (N, C, H, W, C_img) in [0, 1].
    unit_decode: activations (M, h, w, C) -> images in [0, 1]."""
    import numpy as np

    n, c = len(activations), activations.shape[-1]
    eye = np.eye(c, dtype=np.float32)
    out = []
    for s in range(0, n, batch_images):
        a = activations[s:s + batch_images]
        masked = (a[:, None] * eye[None, :, None, None, :]).reshape(-1, *a.shape[1:])
        out.append(unit_decode(masked).reshape(len(a), c, *unit_decode(masked[:1]).shape[1:]))
    return np.concatenate(out)


def reencoding_check(encode, activations, decodes) -> dict:
    """The re-encoding check of single-channel decodes (see the module doc).

    activations: real (N, h, w, C); decodes: (N, C, H, W, C_img) in [0, 1], [i, k] decoded from channel k alone.
    """
    import numpy as np

    n, c = len(activations), activations.shape[-1]
    typical = activations.mean(axis=(0, 1, 2))  # (C,) each channel's mean response on real images
    alive = typical > 0
    re = encode(decodes.reshape(-1, *decodes.shape[2:])).reshape(n, c, *activations.shape[1:])  # (N, K, h, w, C)
    response = re.mean(axis=(2, 3)) / np.where(alive, typical, 1.0)  # (N, K, C)
    response[:, :, ~alive] = -np.inf
    own = response[:, np.arange(c), np.arange(c)]  # (N, K) channel k's response to its own decode
    ranks = 1 + np.sum(response > own[:, :, None], axis=2)  # (N, K)
    hits = np.argmax(response, axis=2) == np.arange(c)[None]
    valid = (activations.max(axis=(1, 2)) > 0) & alive[None]  # (N, K): channel k fires on image i
    k_maps = re[:, np.arange(c), :, :, np.arange(c)].transpose(1, 0, 2, 3)  # (N, K, h, w): f_k(decode(a e_k))
    real = activations.transpose(0, 3, 1, 2)  # (N, K, h, w)
    k_err = np.linalg.norm((k_maps - real).reshape(n, c, -1), axis=2) / np.maximum(
        np.linalg.norm(real.reshape(n, c, -1), axis=2), 1e-12)
    alive_n = int(alive.sum())
    return {"hit_rate": float(hits[valid].mean()), "mean_rank": float(ranks[valid].mean()),
            "k_rel_error": float(k_err[valid].mean()), "pairs": int(valid.sum()), "channels": c,
            "alive_channels": alive_n, "chance_hit_rate": 1.0 / max(alive_n, 1),
            "chance_mean_rank": (alive_n + 1) / 2.0}


def relative_feature_error(encode, activations, unit_decodes) -> float:
    """Mean over images of ||f(decode(a)) - a|| / ||a||: how well the all-channels decode re-encodes."""
    import numpy as np

    again = encode(unit_decodes)
    n = len(activations)
    err = np.linalg.norm((again - activations).reshape(n, -1), axis=1)
    return float(np.mean(err / np.maximum(np.linalg.norm(activations.reshape(n, -1), axis=1), 1e-12)))


def view_similarity(joint, post) -> dict:
    """Per channel, the similarity of two decoders' single-channel decodes of the same images (N, K, H, W, 3)
    in [0, 1]: pixel Spearman and SSIM, matched (channel k with k) and mismatched (k with the next channel)."""
    import numpy as np

    from keras_latent.analysis.sanity.similarity import spearman, ssim

    n, c = joint.shape[:2]
    matched_rho = np.stack([spearman(joint[:, k], post[:, k], absolute=False) for k in range(c)], 1)  # (N, K)
    matched_ssim = np.stack([ssim(joint[:, k], post[:, k], data_range=1.0) for k in range(c)], 1)
    other = [(k + 1) % c for k in range(c)]
    other_rho = np.stack([spearman(joint[:, k], post[:, j], absolute=False) for k, j in enumerate(other)], 1)
    other_ssim = np.stack([ssim(joint[:, k], post[:, j], data_range=1.0) for k, j in enumerate(other)], 1)
    return {"spearman": float(matched_rho.mean()), "ssim": float(matched_ssim.mean()),
            "spearman_per_channel": matched_rho.mean(axis=0).round(4).tolist(),
            "ssim_per_channel": matched_ssim.mean(axis=0).round(4).tolist(),
            "spearman_other_channels": float(other_rho.mean()), "ssim_other_channels": float(other_ssim.mean())}


# ---------------------------------------------------------------- the study


def measure_decoders(graph, spec, decoders: dict, splits, pair_distance, eval_images: int) -> tuple[dict, dict]:
    """({layer: faithfulness + relative feature error + re-encoding check}, {layer: single-channel decodes
    (N, C, H, W, C_img) in [0, 1]}) of post-hoc decoders."""
    from keras_latent.attached.decoders import decode, unit_decoder
    from keras_latent.attached.faithfulness import figures
    from keras_latent.attached.reading import prepare_images

    test = prepare_images(splits.x_test, spec).astype("float32") / 255.0
    decoded = decode(graph, decoders, splits.x_test, spec.input_range)
    out, singles = {}, {}
    for layer, decoder in decoders.items():
        encode = Encoder(graph, layer, spec)
        activations = encode(test)
        unit = unit_decoder(decoder)
        singles[layer] = single_channel_decodes(lambda a, u=unit: predict(u, a), activations[:eval_images])
        out[layer] = {**figures(test, decoded[layer], pair_distance),
                      "feature_rel_error": relative_feature_error(encode, activations, decoded[layer]),
                      **reencoding_check(encode, activations[:eval_images], singles[layer])}
    return out, singles


def joint_measures(run_model, graph, spec, splits, pair_distance, eval_images: int) -> tuple[dict, dict]:
    """The same figures for the tutorial model's own jointly trained tail decoders."""
    from keras_latent.analysis.latent import decoder_from
    from keras_latent.attached.faithfulness import figures
    from keras_latent.attached.reading import prepare_images

    test = prepare_images(splits.x_test, spec).astype("float32") / 255.0
    out, singles = {}, {}
    for layer, name in JOINT_NAME.items():
        encode = Encoder(graph, layer, spec)
        activations = encode(test)
        tail = decoder_from(run_model, name, "tail")  # activations -> [-1, 1]

        def unit(a, tail=tail):
            return (predict(tail, a) + 1.0) / 2.0

        decoded = unit(activations)
        singles[layer] = single_channel_decodes(unit, activations[:eval_images])
        out[layer] = {**figures(test, decoded, pair_distance),
                      "feature_rel_error": relative_feature_error(encode, activations, decoded),
                      **reencoding_check(encode, activations[:eval_images], singles[layer])}
    return out, singles


def run_seed(seed: int, args, splits, work: str, timings: dict) -> dict:
    import keras
    import numpy as np

    from keras_latent.attached import ModelGraph, load_user_model, train_decoders
    from keras_latent.attached.faithfulness import figures, mean_pairwise_distance
    from keras_latent.attached.reading import prepare_images

    n_val = max(2, len(splits.x_train) // 10)
    x_fit, x_val = splits.x_train[:-n_val], splits.x_train[-n_val:]
    result = {"seed": seed, "models": {}}
    for kind in args.models:
        start = time.perf_counter()
        if kind == "tutorial":
            path = train_tutorial(os.path.join(work, f"tutorial_seed{seed}"), args.epochs, seed,
                                  args.max_train_samples)
        else:
            path = train_residual(splits, args.epochs, seed, os.path.join(work, f"residual_seed{seed}.keras"))
        timings.setdefault(f"train {kind} model", []).append(time.perf_counter() - start)
        user = load_user_model(path)
        if kind == "tutorial":
            graph = ModelGraph(user.model, class_output="classifier")
            spec, layers = graph.image_spec((-1.0, 1.0)), list(TUTORIAL_LAYERS)
        else:
            graph = ModelGraph(user.model)
            spec, layers = graph.image_spec(), graph.resolve(args.residual_layers)
        test = prepare_images(splits.x_test, spec).astype(np.float64) / 255.0
        pair_distance = mean_pairwise_distance(test, seed=0)
        mean_image = prepare_images(splits.x_train, spec).astype(np.float64).mean(axis=0) / 255.0
        entry = {"layers": layers, "test_accuracy": test_accuracy(graph, spec, splits.x_test, splits.y_test),
                 "mean_image": figures(test, mean_image[None], pair_distance), "dropout": {}}
        singles_by_p = {}
        for p in args.dropouts:
            start = time.perf_counter()
            decoders, history = train_decoders(user.model, layers, x_fit, x_val, epochs=args.decoder_epochs,
                                               seed=seed, channel_dropout=p, graph=graph,
                                               input_range=spec.input_range)
            timings.setdefault(f"train post-hoc decoders ({kind}, {len(layers)} layers)", []).append(
                time.perf_counter() - start)
            start = time.perf_counter()
            entry["dropout"][str(p)], singles_by_p[p] = measure_decoders(graph, spec, decoders, splits, pair_distance,
                                                                        args.eval_images)
            timings.setdefault(f"measure ({kind})", []).append(time.perf_counter() - start)
        if kind == "tutorial":
            start = time.perf_counter()
            run_model = keras.saving.load_model(path, compile=False)
            entry["joint"], joint_singles = joint_measures(run_model, graph, spec, splits, pair_distance,
                                                           args.eval_images)
            entry["similarity"] = {str(p): {layer: view_similarity(joint_singles[layer], singles_by_p[p][layer])
                                            for layer in layers} for p in (args.dropouts[0], args.dropouts[-1])}
            timings.setdefault("joint measures and view similarity (tutorial)", []).append(
                time.perf_counter() - start)
        result["models"][kind] = entry
        keras.backend.clear_session()
    return result


# ---------------------------------------------------------------- printing


def spread(values) -> str:
    """'mean +- sd' of seeds' values (just the value for one seed)."""
    from keras_latent.stats import mean_interval

    m = mean_interval(values)
    if m["mean"] is None:
        return "n/a"
    digits = 4 if abs(m["mean"]) < 0.1 else 3 if abs(m["mean"]) < 10 else 2
    return f"{m['mean']:.{digits}f}" + (f" +- {m['sd']:.{digits}f}" if m["sd"] is not None else "")


def column(seeds, kind, path) -> list[float]:
    out = []
    for s in seeds:
        value = s["models"][kind]
        for key in path:
            value = value[key]
        out.append(value)
    return out


DROPOUT_COLUMNS = (("mse", "mse"), ("NE %", "normalized_error_pct"), ("feat err", "feature_rel_error"),
                   ("hit", "hit_rate"), ("rank", "mean_rank"), ("k err", "k_rel_error"))


def print_dropout_table(seeds, args) -> None:
    """Table A and the paired comparisons against P = 0."""
    from keras_latent.stats import paired_difference

    print("\nA. channel dropout: post-hoc decoders, test split (mean +- sd over "
          f"{len(seeds)} seed{'s' * (len(seeds) != 1)})")
    print(f"{'model':9} {'layer':20} {'P':>5} " + " ".join(f"{name:>17}" for name, _ in DROPOUT_COLUMNS)
          + f" {'chance hit/rank':>16}")
    for kind in args.models:
        layers = seeds[0]["models"][kind]["layers"]
        base = seeds[0]["models"][kind]["mean_image"]
        print(f"{kind:9} {'(mean image)':20} {'':>5} {base['mse']:>17.4f} {base['normalized_error_pct']:>17.2f}")
        for layer in layers:
            for p in args.dropouts:
                cells = [spread(column(seeds, kind, ("dropout", str(p), layer, key))) for _, key in DROPOUT_COLUMNS]
                first = seeds[0]["models"][kind]["dropout"][str(p)][layer]
                chance = f"{first['chance_hit_rate']:.3f}/{first['chance_mean_rank']:.1f}"
                print(f"{kind:9} {layer:20} {p:>5g} " + " ".join(f"{c:>17}" for c in cells) + f" {chance:>16}")
    print(f"\nA'. each P against P = 0, paired by seed: difference (95% interval) p-value (n = {len(seeds)})")
    for kind in args.models:
        for layer in seeds[0]["models"][kind]["layers"]:
            for p in args.dropouts[1:]:
                row = {}
                for name, key in DROPOUT_COLUMNS:
                    row[name] = paired_difference(column(seeds, kind, ("dropout", str(p), layer, key)),
                                                  column(seeds, kind, ("dropout", str(args.dropouts[0]), layer, key)))
                text = "  ".join(f"{name} {_paired(d)}" for name, d in row.items())
                print(f"{kind:9} {layer:20} {p:>5g}  {text}")


def _paired(d: dict) -> str:
    if d["difference"] is None:
        return "n/a"
    digits = 4 if abs(d["difference"]) < 0.1 else 3
    interval = (f" ({d['ci_low']:+.{digits}f}..{d['ci_high']:+.{digits}f}) p={d['p_value']:.3f}"
                if d["ci_low"] is not None and d["p_value"] is not None else "")
    return f"{d['difference']:+.{digits}f}{interval}"


JOINT_COLUMNS = (("mse", "mse"), ("PSNR", "psnr"), ("NE %", "normalized_error_pct"),
                 ("feat err", "feature_rel_error"), ("hit", "hit_rate"), ("rank", "mean_rank"),
                 ("k err", "k_rel_error"))


def print_joint_table(seeds, args) -> None:
    if "tutorial" not in args.models:
        return
    print(f"\nB. joint against post hoc: tutorial model, test split (mean +- sd over {len(seeds)} "
          f"seed{'s' * (len(seeds) != 1)}; accuracy {spread(column(seeds, 'tutorial', ('test_accuracy',)))})")
    print(f"{'layer':12} {'decoder':14} " + " ".join(f"{name:>17}" for name, _ in JOINT_COLUMNS))
    for layer in TUTORIAL_LAYERS:
        rows = [("joint", ("joint", layer))] + [(f"post hoc P={p:g}", ("dropout", str(p), layer))
                                                for p in (args.dropouts[0], args.dropouts[-1])]
        for name, path in rows[:2 if len(args.dropouts) == 1 else 3]:
            cells = [spread(column(seeds, "tutorial", (*path, key))) for _, key in JOINT_COLUMNS]
            print(f"{JOINT_NAME[layer]:12} {name:14} " + " ".join(f"{c:>17}" for c in cells))
    print("\nB'. same channel, joint view against post-hoc view: mean over channels and test images "
          "(other channels: joint k against post hoc k+1)")
    print(f"{'layer':12} {'post hoc':14} {'spearman':>17} {'(other channels)':>17} {'SSIM':>17} "
          f"{'(other channels)':>17}")
    for layer in TUTORIAL_LAYERS:
        for p in sorted({args.dropouts[0], args.dropouts[-1]}):
            cells = [spread(column(seeds, "tutorial", ("similarity", str(p), layer, key)))
                     for key in ("spearman", "spearman_other_channels", "ssim", "ssim_other_channels")]
            print(f"{JOINT_NAME[layer]:12} {'P=' + format(p, 'g'):14} " + " ".join(f"{c:>17}" for c in cells))


def print_tables(seeds, args, timings, start_all) -> None:
    print_dropout_table(seeds, args)
    print_joint_table(seeds, args)
    print("\ntimings (s, mean over seeds; machine shared):")
    for name, values in timings.items():
        print(f"  {name:55} {sum(values) / len(values):8.1f}")
    print(f"  {'total so far':55} {time.perf_counter() - start_all:8.1f}", flush=True)


def write_result(work, cpu, args, splits, seeds, timings, start_all) -> str:
    """attach_study.json: every seed's figures, the paired comparisons, timings (rewritten after each seed)."""
    from keras_latent.files import atomic_write_text
    from keras_latent.stats import paired_difference

    comparisons = {}
    for kind in args.models:
        for layer in seeds[0]["models"][kind]["layers"]:
            for p in args.dropouts[1:]:
                comparisons[f"{kind} {layer} P={p:g}"] = {
                    key: paired_difference(column(seeds, kind, ("dropout", str(p), layer, key)),
                                           column(seeds, kind, ("dropout", str(args.dropouts[0]), layer, key)))
                    for _, key in DROPOUT_COLUMNS}
    result = {"cpu": cpu, "args": vars(args), "data": splits.description, "seeds": seeds,
              "paired_against_no_dropout": comparisons,
              "timings_s": {k: [round(v, 2) for v in vs] for k, vs in timings.items()},
              "total_s": round(time.perf_counter() - start_all, 1)}
    path = os.path.join(work, "attach_study.json")
    atomic_write_text(path, json.dumps(result, indent=1))
    return path


# ---------------------------------------------------------------- command


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5, help="epochs of each convnet's own training")
    p.add_argument("--decoder-epochs", type=int, default=4, help="epochs of each post-hoc decoder's training")
    p.add_argument("--seeds", type=int, default=2, help="seeds 0 .. N-1 (model, decoders, dropout)")
    p.add_argument("--dropouts", default="0,0.5", help="channel dropout values, the first one 0 (baseline)")
    p.add_argument("--max-train-samples", type=int, default=1000, help="training images (of the sample's)")
    p.add_argument("--eval-images", type=int, default=50, help="test images whose channels are decoded one by one")
    p.add_argument("--models", default="tutorial,residual", help=f"convnets studied, of {', '.join(MODEL_KINDS)}")
    p.add_argument("--residual-layers", default="res_out,conv2",
                   help="layers of the residual convnet (its default layers are res_out, conv2, conv3)")
    p.add_argument("--out", default=None, help="folder for attach_study.json and the trained models (default: a "
                                               "temporary folder, removed)")
    args = p.parse_args(argv)
    try:
        args.dropouts = [float(v) for v in args.dropouts.split(",")]
    except ValueError:
        raise UsageError(f"--dropouts takes numbers such as 0,0.25,0.5, got {args.dropouts!r}") from None
    if args.dropouts[0] != 0 or not all(0 <= v < 1 for v in args.dropouts):
        raise UsageError(f"--dropouts must start with 0 and lie in [0, 1), got {args.dropouts}")
    args.models = args.models.split(",")
    args.residual_layers = args.residual_layers.split(",")
    if not args.models or any(m not in MODEL_KINDS for m in args.models):
        raise UsageError(f"--models takes {', '.join(MODEL_KINDS)}, got {','.join(args.models)}")
    for name in ("epochs", "decoder_epochs", "seeds", "max_train_samples", "eval_images"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from keras_latent.data import load_dataset
    from keras_latent.machine import describe_cpu

    tf.get_logger().setLevel("ERROR")
    logging.getLogger("keras_latent").setLevel(logging.WARNING)
    cpu = describe_cpu().describe()
    print(f"CPU: {cpu}")
    print("  (wall times on a machine shared with other work; TensorFlow "
          f"{tf.__version__}, keras {__import__('keras').__version__})")
    start_all = time.perf_counter()
    splits = load_dataset("sample", max_train_samples=args.max_train_samples, seed=0)
    print(f"data: {splits.description}; decoders fit on {len(splits.x_train) - max(2, len(splits.x_train) // 10)}, "
          f"validate on {max(2, len(splits.x_train) // 10)}; channels decoded one by one on "
          f"{min(args.eval_images, len(splits.x_test))} test images")
    keep = args.out is not None
    work = args.out if keep else tempfile.mkdtemp(prefix="attach_study_")
    os.makedirs(work, exist_ok=True)
    timings: dict[str, list[float]] = {}
    seeds = []
    try:
        for seed in range(args.seeds):
            start = time.perf_counter()
            seeds.append(run_seed(seed, args, splits, work, timings))
            print(f"seed {seed} done in {time.perf_counter() - start:.0f} s", flush=True)
            if seed < args.seeds - 1:  # the tables so far, in case the study is stopped before the last seed
                print_tables(seeds, args, timings, start_all)
                write_result(work, cpu, args, splits, seeds, timings, start_all)
        print(f"\n======== final tables: {len(seeds)} seed{'s' * (len(seeds) != 1)} ========")
        print_tables(seeds, args, timings, start_all)
        path = write_result(work, cpu, args, splits, seeds, timings, start_all)
        if keep:
            print(f"wrote {path}")
    finally:
        if not keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    print(f"CPU: {cpu}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
