"""Is a layer's decode faithful? The all-channels reconstruction error of every trunk layer, by decode path.

A view of what a channel carries is only worth trusting if the same view of the whole layer
resembles the image. For each trunk layer conv{k} this measures, on a set of images (the test split),
the error of decoding the layer with every channel kept along each path:

    tail        conv{k} activations -> deconv{k} .. deconv1                 (`model.builders.tail_decodes`)
    propagate   conv{k} activations -> conv{k+1} .. convN -> whole decoder   (with every channel kept this is
                                                                              the model's own reconstruction)

next to two references: the deepest layer's value (the model's reconstruction) and the mean image
(predicting the training set's mean image for every input). Errors are MSE in [-1, 1] units and
PSNR = 10 log10(2^2 / MSE) dB. A layer's default path is the one with the lower error (tail on a tie):
tail where the decoder learned that layer's space (models trained with layer decoders), propagate
where it did not (models from before them: their tail decode of conv1 is worse than a constant image).
"""
from __future__ import annotations

import math

import numpy as np

from keras_latent.data.pipeline import normalize
from keras_latent.model.builders import has_decoder, tail_decodes, trunk_block_names

PEAK_TO_PEAK = 2.0  # images in [-1, 1]


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of an MSE on [-1, 1] images (inf for a perfect match)."""
    return math.inf if mse <= 0 else 10.0 * math.log10(PEAK_TO_PEAK ** 2 / mse)


def _figures(mse: float) -> dict:
    return {"mse": round(float(mse), 6), "psnr": round(psnr(max(float(mse), 1e-12)), 3)}  # finite: JSON has no inf


CHUNK = 512  # images converted to float at a time (12 MB as float64): memory stays bounded on large data
#              sets, and each chunk's buffers are small enough to be reused (4096: a training run's peak
#              resident memory 927 MB against 847 MB, on the sample; docs/performance.md)


def mean_image(images: np.ndarray, transform=None) -> np.ndarray:
    """The mean of images (N, S, S, 3) -> (S, S, 3), of `transform(chunk)` if given (e.g. `normalize` on uint8
    images): the constant baseline prediction. Summed in float64 CHUNK images at a time."""
    total = np.zeros(np.shape(images)[1:], np.float64)
    for start in range(0, len(images), CHUNK):
        chunk = images[start:start + CHUNK]
        total += np.asarray(transform(chunk) if transform else chunk, np.float64).sum(axis=0)
    return (total / max(len(images), 1)).astype(np.float32)


def _mse_to(images: np.ndarray, image: np.ndarray) -> float:
    """Mean squared error of every image of (N, S, S, 3) against one (S, S, 3), CHUNK images at a time."""
    total = sum(float(np.sum((np.asarray(images[s:s + CHUNK], np.float64) - image) ** 2))
                for s in range(0, len(images), CHUNK))
    return total / max(np.prod(np.shape(images)), 1)


def layer_decode_errors(model, images: np.ndarray, batch_size: int = 256) -> dict[str, float]:
    """{layer: MSE of its all-channels tail decode} over normalized images (N, S, S, 3), in trunk order."""
    decoder = tail_decodes(model)
    totals = dict.fromkeys(trunk_block_names(model), 0.0)
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size], np.float32)
        for layer, decoded in decoder.predict_on_batch(batch).items():
            totals[layer] += float(np.sum((np.asarray(decoded, np.float64) - batch) ** 2))
    size = np.prod(np.shape(images))
    return {layer: total / size for layer, total in totals.items()}


def measure_faithfulness(model, images: np.ndarray, baseline_image: np.ndarray, batch_size: int = 256) -> dict:
    """The faithfulness table of a model with a decoder, as metrics.json and analysis.json hold it.

    images: normalized (N, S, S, 3), the test split; baseline_image: (S, S, 3), the training mean.
    Returns {"layers": {layer: {"tail": {mse, psnr}, "propagate": {mse, psnr}}}, "deepest_layer",
    "mean_image": {mse, psnr}, "decode_paths": {layer: default path}, "no_better_than_mean_image": [layer]}.
    """
    tail = layer_decode_errors(model, images, batch_size)
    deepest = list(tail)[-1]
    baseline = _mse_to(images, baseline_image)
    layers = {layer: {"tail": _figures(mse), "propagate": _figures(tail[deepest])} for layer, mse in tail.items()}
    paths = {layer: "tail" if tail[layer] <= tail[deepest] else "propagate" for layer in tail}
    chosen = {layer: min(tail[layer], tail[deepest]) for layer in tail}  # the default path's error
    return {"layers": layers, "deepest_layer": deepest, "mean_image": _figures(baseline), "decode_paths": paths,
            "no_better_than_mean_image": [layer for layer, mse in chosen.items() if mse >= baseline]}


def measure_test_faithfulness(model, splits) -> dict | None:
    """`measure_faithfulness` on a data set's test split against its training mean image (None without a
    decoder): what training records in metrics.json and the analysis in analysis.json."""
    if not has_decoder(model):
        return None
    baseline = mean_image(splits.x_train, lambda chunk: np.asarray(normalize(chunk)))  # never all of it as float
    return measure_faithfulness(model, np.asarray(normalize(splits.x_test)), baseline)
