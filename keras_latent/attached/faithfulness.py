"""How faithful is each layer's decode? MSE, PSNR, the mean-image baseline and Dosovitskiy & Brox's
normalized error, all on images in [0, 1] (uint8 / 255).

The normalized error of Dosovitskiy & Brox (CVPR 2016, "Inverting Visual Representations with
Convolutional Networks") is the mean Euclidean reconstruction error ||x_i - x_hat_i|| over the test
images, divided by the mean Euclidean distance ||x_i - x_j|| between pairs of distinct test images, in
%. Predicting the mean image scores about 71% on natural images (for many roughly independent pixels,
E||x - mean|| is about E||x_i - x_j|| / sqrt(2)), so the figures compare with the paper's.
(`keras_latent.training.faithfulness` measures the jointly trained decoder in [-1, 1] units and sits in a
later layer of the package; PSNR here is 10 log10(1 / MSE) on [0, 1] images, the same dB.)
"""
from __future__ import annotations

import math

import numpy as np

from keras_latent.attached.decoders import decode
from keras_latent.attached.reading import prepare_images
from keras_latent.errors import UsageError

MAX_PAIR_IMAGES = 2000  # all pairs of up to this many images; a seeded subset beyond


def psnr(mse: float) -> float:
    """PSNR in dB of an MSE on [0, 1] images (inf for a perfect match)."""
    return math.inf if mse <= 0 else 10.0 * math.log10(1.0 / mse)


def _flat(images: np.ndarray) -> np.ndarray:
    return np.asarray(images, np.float64).reshape(len(images), -1)


def mean_pairwise_distance(images: np.ndarray, max_images: int = MAX_PAIR_IMAGES, seed: int = 0) -> float:
    """Mean ||x_i - x_j|| over pairs i < j of images (N, ...) in [0, 1] (a seeded subset of `max_images`)."""
    x = _flat(images)
    if len(x) < 2:
        raise UsageError(f"the normalized error needs at least 2 test images, got {len(x)}")
    if len(x) > max_images:
        x = x[np.random.default_rng(seed).choice(len(x), max_images, replace=False)]
    squared = np.sum(x ** 2, axis=1)
    gram = squared[:, None] + squared[None, :] - 2.0 * (x @ x.T)
    upper = np.triu_indices(len(x), k=1)
    return float(np.mean(np.sqrt(np.maximum(gram[upper], 0.0))))


def normalized_error(images: np.ndarray, decoded: np.ndarray, pair_distance: float) -> float:
    """Dosovitskiy & Brox's error in %: mean ||x_i - x_hat_i|| / `pair_distance` * 100 (images in [0, 1])."""
    return float(100.0 * np.mean(np.linalg.norm(_flat(images) - _flat(decoded), axis=1)) / pair_distance)


def figures(images: np.ndarray, decoded: np.ndarray, pair_distance: float) -> dict:
    """{"mse", "psnr", "normalized_error_pct"} of decodes (N, H, W, C) against images, both in [0, 1]."""
    decoded = np.broadcast_to(np.asarray(decoded, np.float64), np.shape(images))
    mse = float(np.mean((np.asarray(images, np.float64) - decoded) ** 2))
    return {"mse": round(mse, 6), "psnr": round(psnr(max(mse, 1e-12)), 3),  # finite: JSON has no inf
            "normalized_error_pct": round(normalized_error(images, decoded, pair_distance), 3)}


def faithfulness_table(images: np.ndarray, decoded: dict[str, np.ndarray], mean_image: np.ndarray,
                       seed: int = 0) -> dict:
    """The faithfulness of each layer's all-channels decode on test images, against the mean image.

    images: test images in [0, 1] (N, H, W, C); decoded: {layer: decodes in [0, 1] (N, H, W, C)};
    mean_image: (H, W, C) the training split's mean in [0, 1]. Returns {"layers": {layer: {mse, psnr,
    normalized_error_pct}}, "mean_image": {...}, "pair_distance": mean ||x_i - x_j||,
    "no_better_than_mean_image": [layers whose MSE is not below the mean image's]}.
    """
    distance = mean_pairwise_distance(images, seed=seed)
    baseline = figures(images, mean_image[None], distance)
    layers = {layer: figures(images, d, distance) for layer, d in decoded.items()}
    return {"layers": layers, "mean_image": baseline, "pair_distance": round(distance, 6),
            "no_better_than_mean_image": [k for k, v in layers.items() if v["mse"] >= baseline["mse"]]}


def measure_faithfulness(graph, decoders: dict, images_uint8_train: np.ndarray, images_uint8_test: np.ndarray,
                         input_range=None, seed: int = 0) -> dict:
    """`faithfulness_table` of each decoder's all-channels decode of the test images (uint8, converted to the
    model's input as training converts them) against the training split's mean image."""
    spec = graph.image_spec(input_range)
    train = prepare_images(images_uint8_train, spec).astype(np.float64) / 255.0
    test = prepare_images(images_uint8_test, spec).astype(np.float32) / 255.0
    return faithfulness_table(test, decode(graph, decoders, images_uint8_test, input_range), train.mean(axis=0),
                              seed=seed)
