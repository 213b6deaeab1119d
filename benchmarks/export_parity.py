"""Benchmark: how closely the exported SavedModel signatures and model.tflite match the Keras model.

    python -m benchmarks.export_parity RUN_FOLDER [--images 256]

Runs RUN/model.keras (Keras, float32) and, in a separate process that can import only tensorflow
and numpy, RUN/saved_model and RUN/model.tflite (exported first with `python -m keras_latent.export
RUN --tflite` when model.tflite is missing) on the run's first test images. decode_masked gets a
random 0/1 mask per image for every trunk block. Prints the max abs difference of every output
(uint8 outputs in levels of 255, class indices as mismatch counts), then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from keras_latent.cli import run_cli

ISOLATED = r'''
import sys
sys.modules["keras"] = sys.modules["keras_latent"] = None
import numpy as np, tensorflow as tf
saved_model, tflite, folder = sys.argv[1:]
x = tf.constant(np.load(folder + "/images.npy"))
masks = np.load(folder + "/masks.npz")
signatures = tf.saved_model.load(saved_model).signatures
serving = signatures["serving_default"](images=x)
out = {f"serving_default/{k}": v.numpy() for k, v in serving.items() if k != "class_name"}
out.update({f"encode/{k}": v.numpy() for k, v in signatures["encode"](images=x).items()})
for layer in masks.files:
    result = signatures["decode_masked"](images=x, layer=tf.constant(int(layer)),
                                         channel_mask=tf.constant(masks[layer]))
    out.update({f"decode_masked/{layer}/{k}": v.numpy() for k, v in result.items()})
result = tf.lite.Interpreter(model_path=tflite).get_signature_runner("serving_default")(images=x.numpy())
out.update({f"tflite/{k}": v for k, v in result.items() if k != "class_name"})
np.savez(folder + "/out.npz", **{k.replace("/", "__"): v for k, v in out.items()})
'''


def keras_reference(run_dir: str, images, masks: dict) -> dict:
    """The same outputs computed by the Keras model (and its decoder tails)."""
    import keras
    import numpy as np

    from keras_latent.data.pipeline import denormalize, normalize
    from keras_latent.model.builders import decoder_tail, trunk_block_names
    from keras_latent.model.saving import load_run_model

    model = load_run_model(run_dir)
    x = np.asarray(normalize(images))
    outputs = model.predict(x, verbose=0)
    probs = outputs["classifier"]
    ref = {"serving_default/probabilities": probs, "serving_default/class_index": probs.argmax(1)}
    trunk = model.get_layer("trunk")
    names = trunk_block_names(model)
    activations = keras.Model(trunk.input, [trunk.get_layer(n).output for n in names]).predict(x, verbose=0)
    ref.update({f"encode/{n}": a for n, a in zip(names, activations)})
    if "reconstruction" in outputs:
        ref["serving_default/reconstruction"] = denormalize(outputs["reconstruction"])
        for layer, mask in masks.items():
            decoded = decoder_tail(model, int(layer)).predict(activations[int(layer) - 1] * mask[:, None, None, :],
                                                              verbose=0)
            ref[f"decode_masked/{layer}/reconstruction_normalized"] = decoded
            ref[f"decode_masked/{layer}/reconstruction"] = denormalize(decoded)
    for name in ("probabilities", "class_index", "reconstruction"):
        if f"serving_default/{name}" in ref:
            ref[f"tflite/{name}"] = ref[f"serving_default/{name}"]
    return ref


def differences(ref: dict, got: dict) -> dict:
    import numpy as np

    result = {}
    for key, expected in ref.items():
        actual = got[key.replace("/", "__")]
        if key.endswith("class_index"):
            result[key + " (mismatches)"] = int(np.sum(actual != expected))
            continue
        result[key] = float(np.abs(actual.astype(np.float64) - expected.astype(np.float64)).max())
        if expected.dtype == np.uint8:  # rounding ties flip by one level; count how many values do
            result[key + " (values differing)"] = f"{int(np.sum(actual != expected))} of {expected.size}"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.export_parity", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="RUN_FOLDER")
    parser.add_argument("--images", type=int, default=256, help="test images compared")
    args = parser.parse_args(argv)
    import numpy as np

    from keras_latent.data import load_splits
    from keras_latent.exporting.savedmodel import export_run
    from keras_latent.runs.records import load_config

    config = load_config(args.run_dir)
    if not os.path.isfile(os.path.join(args.run_dir, "model.tflite")):
        export_run(args.run_dir, tflite=True)
    images = load_splits(config)[0].x_test[: args.images]
    rng = np.random.default_rng(0)
    masks = {str(k): (rng.random((len(images), c)) < 0.5).astype(np.float32)
             for k, c in enumerate(config.model.filters, start=1)} if config.model.decoder else {}
    with tempfile.TemporaryDirectory() as folder:
        np.save(os.path.join(folder, "images.npy"), images)
        np.savez(os.path.join(folder, "masks.npz"), **masks)
        subprocess.run([sys.executable, "-I", "-c", ISOLATED, os.path.join(args.run_dir, "saved_model"),
                        os.path.join(args.run_dir, "model.tflite"), folder], check=True, capture_output=True)
        got = dict(np.load(os.path.join(folder, "out.npz")))
    result = differences(keras_reference(args.run_dir, images, masks), got)
    print(f"{len(images)} test images of {args.run_dir}: max abs difference to the Keras model")
    for key, value in result.items():
        print(f"  {key:<56} {value if isinstance(value, str) else format(value, '.3g')}")
    print(json.dumps({"images": len(images), **result}))
    return 0


if __name__ == "__main__":
    run_cli(main)
