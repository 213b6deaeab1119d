"""Where the classifier looks: Grad-CAM at every trunk layer and SmoothGrad saliency.

    grad_cam(model, images, classes)           images (N, S, S, 3), classes (N,) -> {layer: maps (N, h, w)}
    input_gradients(model, images, classes)    -> d score / d image (N, S, S, 3)
    smoothgrad(model, images, classes)         -> saliency (N, S, S)
    upsample(maps, size)                       maps (N, h, w) -> (N, size, size), bilinear

The score of class c is its logit, the classifier head's output before the softmax
(`model.builders.classifier_logits`), as in Selvaraju et al. (2017) and the keras.io Grad-CAM example.

- **Grad-CAM** (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
  Gradient-based Localization", ICCV 2017): with A (N, h, w, C) the activations of trunk block
  `conv{k}`, the weight of channel k is the mean over positions of d score / d A_k, and the map is
  ReLU(sum_k weight_k A_k) at the block's resolution. Every trunk layer comes from one backward
  pass. tf-keras-vis (`Gradcam`), tf-explain and Captum (`LayerGradCam`) compute the same map.
- **SmoothGrad** (Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017): the input
  gradient averaged over `samples` copies of the image with Gaussian noise of standard deviation
  `noise` x the input range (2 for images in [-1, 1]), then the largest absolute value over the
  colour channels, as tf-keras-vis's `Saliency(smooth_samples=..., smooth_noise=...)` does.

Maps are raw (not rescaled to [0, 1]); the figures normalize them per image for display.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_latent.analysis import latent
from keras_latent.errors import UsageError
from keras_latent.model.builders import classifier_logits, trunk_block_names, trunk_blocks

INPUT_RANGE = 2.0  # normalized images span [-1, 1]
BATCH_SIZE = 256  # images per compiled call
SMOOTHGRAD_SAMPLES = 50  # noisy copies per image (the SmoothGrad paper's n = 50)
SMOOTHGRAD_NOISE = 0.15  # noise standard deviation as a fraction of the input range (the paper: 10-20%)


def _checked(model: keras.Model, images, class_indices) -> tuple[np.ndarray, np.ndarray]:
    """images (N, S, S, 3) float32 and classes (N,) int32, each class a valid index."""
    images = np.asarray(images, np.float32)
    classes = np.broadcast_to(np.asarray(class_indices, np.int64), (len(images),)).astype(np.int32)
    expected = tuple(model.inputs[0].shape[1:])
    if images.ndim != 4 or images.shape[1:] != expected or not len(images):
        raise UsageError(f"images must have shape (N, {', '.join(map(str, expected))}) with N >= 1, "
                         f"got {images.shape}")
    n_classes = int(model.output["classifier"].shape[-1])
    bad = sorted({int(c) for c in classes if not 0 <= c < n_classes})
    if bad:
        raise UsageError(f"class indices must be between 0 and {n_classes - 1}, got {bad}")
    return images, classes


def _in_batches(fn, images: np.ndarray, classes: np.ndarray) -> list[np.ndarray]:
    """fn(images, classes) -> list of tensors, run BATCH_SIZE images at a time; results joined along axis 0."""
    parts = [fn(images[i:i + BATCH_SIZE], classes[i:i + BATCH_SIZE]) for i in range(0, len(images), BATCH_SIZE)]
    return [np.concatenate([np.asarray(p[j], np.float32) for p in parts]) for j in range(len(parts[0]))]


def _class_scores(model: keras.Model, blocks: list, images, classes, tape):
    """Every block's activations [(B, h, w, C), ...] and the logit of each image's class (B,), recorded on
    `tape` (activations watched, so their gradients exist even for a model with frozen weights)."""
    import tensorflow as tf

    activations, x = [], images
    for block in blocks:
        x = block(x, training=False)
        tape.watch(x)
        activations.append(x)
    logits = ops.cast(classifier_logits(model, x), "float32")
    return activations, tf.gather(logits, classes, batch_dims=1)


def grad_cam(model: keras.Model, images, class_indices, layers=None) -> dict[str, np.ndarray]:
    """Grad-CAM of class class_indices[i] for image i at each trunk layer: {layer: (N, h, w) float32 >= 0}.

    images: normalized (N, S, S, 3); class_indices: (N,) or one index for all; layers: trunk layer
    names (default: all). One backward pass gives every layer's map.
    """
    import tensorflow as tf

    images, classes = _checked(model, images, class_indices)
    names = list(layers) if layers else trunk_block_names(model)
    depth = max(latent.layer_index(model, name) for name in names)
    blocks = trunk_blocks(model)

    @tf.function(jit_compile=False)
    def maps(batch, batch_classes):
        with tf.GradientTape() as tape:
            activations, scores = _class_scores(model, blocks, batch, batch_classes, tape)
        activations = [ops.cast(a, "float32") for a in activations[:depth]]
        gradients = tape.gradient(scores, activations)  # images are independent: the sum's gradient is per image
        return [ops.relu(ops.sum(a * ops.mean(g, axis=(1, 2), keepdims=True), axis=-1))
                for a, g in zip(activations, gradients)]

    found = _in_batches(maps, images, classes)
    all_names = trunk_block_names(model)
    return {name: found[all_names.index(name)] for name in names}


def input_gradients(model: keras.Model, images, class_indices) -> np.ndarray:
    """d logit[class_indices[i]] / d images[i]: (N, S, S, 3) float32, for normalized images (N, S, S, 3)."""
    import tensorflow as tf

    images, classes = _checked(model, images, class_indices)
    blocks = trunk_blocks(model)

    @tf.function(jit_compile=False)
    def gradient(batch, batch_classes):
        with tf.GradientTape() as tape:
            tape.watch(batch)
            _, scores = _class_scores(model, blocks, batch, batch_classes, tape)
        return [tape.gradient(scores, batch)]

    return _in_batches(gradient, images, classes)[0]


def smoothgrad_noise(shape: tuple[int, ...], samples: int = SMOOTHGRAD_SAMPLES, noise: float = SMOOTHGRAD_NOISE,
                     seed: int = 0) -> np.ndarray:
    """The Gaussian noise SmoothGrad adds: (samples, *shape) float32, standard deviation noise x INPUT_RANGE."""
    return np.random.default_rng(seed).normal(0.0, noise * INPUT_RANGE, (samples, *shape)).astype(np.float32)


def smoothgrad(model: keras.Model, images, class_indices, samples: int = SMOOTHGRAD_SAMPLES,
               noise: float = SMOOTHGRAD_NOISE, seed: int = 0) -> np.ndarray:
    """SmoothGrad saliency of class class_indices[i] for image i: (N, S, S) float32 >= 0.

    The input gradient averaged over `samples` noisy copies (`smoothgrad_noise`; seeded), then the
    largest absolute value over the colour channels. All N x samples gradients in batched calls.
    """
    if samples < 1 or noise < 0:
        raise UsageError(f"SmoothGrad needs samples >= 1 and noise >= 0, got samples {samples}, noise {noise}")
    images, classes = _checked(model, images, class_indices)
    noisy = images[None] + smoothgrad_noise(images.shape, samples, noise, seed)  # (samples, N, S, S, 3)
    gradients = input_gradients(model, noisy.reshape(-1, *images.shape[1:]), np.tile(classes, samples))
    return np.abs(gradients.reshape(noisy.shape).mean(axis=0)).max(axis=-1)


def upsample(maps: np.ndarray, size: int) -> np.ndarray:
    """Maps (N, h, w) resized to (N, size, size) bilinearly (for overlays on the image), float32."""
    maps = np.asarray(maps, np.float32)
    return np.asarray(ops.image.resize(maps[..., None], (size, size), interpolation="bilinear"))[..., 0]


def class_probabilities(model: keras.Model, images) -> np.ndarray:
    """The classifier's probabilities for normalized images (N, S, S, 3): (N, classes) float32."""
    classifier = keras.Model(model.inputs, model.output["classifier"])
    return latent.predict_in_chunks(classifier, [np.asarray(images, np.float32)], BATCH_SIZE)
