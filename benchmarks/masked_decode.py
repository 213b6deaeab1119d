"""Benchmark: decode every channel of a trunk layer for a batch of images, batched vs a channel loop.

    python -m benchmarks.masked_decode [--run RUN_FOLDER] [--layer conv2] [--images 100] [--repeats 7]

- `batched`: what keras_latent.analysis.latent.masked_reconstructions runs: one compiled call decodes
  images x channels at once (activations broadcast against a (K, C) mask inside the graph).
- `loop`: the tightest loop: the decoder tail's compiled predict_on_batch once per channel, on
  activations masked in NumPy.
- `loop_predict`: the loop most code writes: `model.predict` once per channel.
- `api`: one masked_reconstructions call from images, building its sub-models and tracing included.

The first three reuse prebuilt, warmed-up models, so only decoding is timed. Prints min and
median seconds over the repeats, then one JSON line. Without --run an untrained default model is
timed (the cost of decoding does not depend on the weights).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

from keras_latent.cli import run_cli
from keras_latent.errors import UsageError


def timed(fn, repeats: int) -> tuple[list[float], object]:
    """Seconds of each of `repeats` calls of `fn` after one warm-up call, and the last result."""
    result = fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return seconds, result


def load_model_and_images(run_dir: str | None, n_images: int):
    """The run's model and first test images (normalized), or an untrained default model on the sample."""
    import numpy as np

    from keras_latent.config import ModelConfig
    from keras_latent.data import load_dataset
    from keras_latent.data.pipeline import normalize
    from keras_latent.model.builders import build_model
    from keras_latent.model.saving import load_run_model
    from keras_latent.runs.records import load_config

    if run_dir:
        config = load_config(run_dir)
        model = load_run_model(run_dir)
        size, dataset = config.model.image_size, config.data.dataset
    else:
        model, size, dataset = build_model(ModelConfig()), 32, "sample"
    x_test = load_dataset(dataset, size).x_test
    if n_images > len(x_test):
        raise UsageError(f"--images must be at most {len(x_test)} (the test split's size), got {n_images}")
    return model, np.asarray(normalize(x_test[:n_images]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=None, help="run folder (default: untrained default model)")
    p.add_argument("--layer", default="conv2", help="trunk layer whose channels are decoded")
    p.add_argument("--images", type=int, default=100, help="test images decoded")
    p.add_argument("--repeats", type=int, default=7, help="timed repeats after one warm-up")
    args = p.parse_args(argv)
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_latent.analysis import latent

    tf.get_logger().setLevel("ERROR")
    keras.utils.set_random_seed(0)
    model, images = load_model_and_images(args.run, args.images)
    activations = latent.layer_activations(model, images, args.layer)  # (N, h, w, C)
    n_channels = activations.shape[-1]
    masks = latent.channel_masks(n_channels)  # (C, C) keep-one
    decoder, tail = latent.masked_decoder(model, args.layer), latent.decoder_from(model, args.layer)

    def batched():
        return latent.predict_masked(decoder, activations, masks)

    def loop():  # the fastest loop: one compiled call per channel
        return np.stack([np.asarray(tail.predict_on_batch(activations * masks[k])) for k in range(n_channels)], axis=1)

    def loop_predict():  # the loop most code writes: model.predict per channel (builds an input pipeline each call)
        return np.stack([np.asarray(tail.predict(activations * masks[k], batch_size=len(activations), verbose=0))
                         for k in range(n_channels)], axis=1)

    def api():
        return latent.masked_reconstructions(model, images, args.layer)

    variants = (("batched", batched), ("loop", loop), ("loop_predict", loop_predict), ("api", api))
    results = {name: timed(fn, args.repeats) for name, fn in variants}
    diff = float(np.max(np.abs(results["batched"][1] - results["loop"][1])))
    summary = {"benchmark": "masked_decode", "layer": args.layer, "images": args.images, "channels": n_channels,
               "repeats": args.repeats, "max_abs_diff": diff, "cpus": os.cpu_count(), "tensorflow": tf.__version__,
               "gpus": len(tf.config.list_physical_devices("GPU")), "machine": platform.machine()}
    print(f"decode {args.images} images x {n_channels} {args.layer} channels "
          f"({args.images * n_channels} images out), {args.repeats} repeats:")
    for name, (seconds, _) in results.items():
        summary[f"{name}_s"] = {"min": round(min(seconds), 5), "median": round(statistics.median(seconds), 5)}
        print(f"  {name:12s} min {min(seconds) * 1e3:8.1f} ms   median {statistics.median(seconds) * 1e3:8.1f} ms")
    for loop_name in ("loop", "loop_predict"):
        ratio = summary[f"{loop_name}_s"]["median"] / summary["batched_s"]["median"]
        summary[f"speedup_vs_{loop_name}"] = round(ratio, 2)
        print(f"  batched vs {loop_name}: {summary[f'speedup_vs_{loop_name}']}x (median ratio)")
    print(f"  max |batched - loop| {diff:.2e}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    run_cli(main)
