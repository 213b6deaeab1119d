"""Post-hoc decoders on a user's frozen model: one small decoder per chosen layer, back to the image.

Dosovitskiy & Brox (CVPR 2016, "Inverting Visual Representations with Convolutional Networks") train an
up-convolutional network on a fixed network's features to reconstruct the input; this does that for any
layer of any Keras convnet. A decoder is built from standard Keras layers only, so the user's model and
its decoders save as ONE `.keras` file that plain Keras loads (`attached_model`):

    activations (h, w, c) -> Normalization (per-channel scale, no shift: a zeroed channel stays 0)
      -> 2 x Conv2D 3x3 -> [UpSampling2D (2 per axis still short of the image) + Conv2D 3x3]*
      -> Resizing to (H, W) where powers of two overshoot -> Conv2D to C channels, sigmoid ("unit_image",
      [0, 1]) -> Rescaling to the model's input range [lo, hi] ("image")

Training sees only features: the user's model runs in inference mode inside `ModelGraph.feature_model`
and is never part of a trained graph, so no gradient, optimizer or BatchNorm update can reach it. The loss
is pixel MSE in [0, 1] units (the decoders' "unit_image" output against uint8 / 255).

Channel dropout (`channel_dropout=P`): with probability P a training example is decoded from ONE random
channel, the others zeroed and nothing rescaled, exactly the 0/1 mask rows the per-channel views feed
the decoder; otherwise from all channels. A decoder trained only on whole layers sees a single channel
out of distribution; this puts single-channel inputs in its training distribution while (for small P)
keeping the all-channels decode faithful. Off (0.0) by default until measured on the sample.
"""
from __future__ import annotations

import logging
import math
import re
import time

import keras
import numpy as np

from keras_latent.attached.graph import CLASS_OUTPUT, ModelGraph
from keras_latent.attached.reading import ImageSpec, prepare_images, to_model_input
from keras_latent.errors import UsageError, shown

log = logging.getLogger("keras_latent")

UNIT_IMAGE = "unit_image"  # the decoder's layer whose output is the image in [0, 1]
CACHE_BYTES = 512 * 2 ** 20  # features of a split are kept in memory up to this size, else recomputed per epoch
MAX_WIDTH, MIN_WIDTH = 128, 16
SCALE_IMAGES = 1024  # images whose activations set the decoders' per-channel input scale


def decoder_name(layer: str) -> str:
    """A decoder's model name for a layer path: "stem/conv1" -> "decoder_stem_conv1"."""
    return "decoder_" + re.sub(r"\W", "_", layer)


def build_decoder(feature_shape, spec: ImageSpec, name: str = "decoder", channel_rms=None) -> keras.Model:
    """A decoder from activations (h, w, c) to images (H, W, C) in `spec.input_range` (see the module doc).

    channel_rms: (c,) per-channel scale the activations are divided by (default 1).
    """
    h, w, c = (int(d) for d in feature_shape)
    rms = np.ones(c, np.float32) if channel_rms is None else np.maximum(np.asarray(channel_rms, np.float32), 1e-6)
    width = int(min(max(c, 32), MAX_WIDTH))
    activations = keras.Input((h, w, c), name="activations")
    x = keras.layers.Normalization(mean=np.zeros(c, np.float32), variance=rms ** 2, name="scale")(activations)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name="conv_in")(x)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name="conv_in2")(x)
    size, stage = (h, w), 0
    while size[0] < spec.height or size[1] < spec.width:
        factor = (2 if size[0] < spec.height else 1, 2 if size[1] < spec.width else 1)
        stage, width = stage + 1, max(MIN_WIDTH, width // 2)
        x = keras.layers.UpSampling2D(factor, interpolation="bilinear", name=f"up{stage}")(x)
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"conv{stage}")(x)
        size = (size[0] * factor[0], size[1] * factor[1])
    if size != (spec.height, spec.width):
        x = keras.layers.Resizing(spec.height, spec.width, interpolation="bilinear", name="resize")(x)
    x = keras.layers.Conv2D(spec.channels, 3, padding="same", activation="sigmoid", name=UNIT_IMAGE)(x)
    lo, hi = spec.input_range
    return keras.Model(activations, keras.layers.Rescaling(hi - lo, offset=lo, name="image")(x), name=name)


def unit_decoder(decoder: keras.Model) -> keras.Model:
    """The same decoder (shared weights) ending at its [0, 1] image (B, H, W, C): what is trained and measured."""
    return keras.Model(decoder.inputs, decoder.get_layer(UNIT_IMAGE).output, name=f"{decoder.name}_unit")


def attached_model(graph: ModelGraph, decoders: dict[str, keras.Model]) -> keras.Model:
    """image (B, H, W, C) -> {"class_output": the user's class output, layer: decoded image in the input range}:
    the user's layers and the decoders in one plain functional model, savable as one `.keras` file."""
    features = graph.feature_model(list(decoders))
    outputs = {CLASS_OUTPUT: features.output[CLASS_OUTPUT]}
    outputs.update({layer: decoder(features.output[layer]) for layer, decoder in decoders.items()})
    return keras.Model(features.input, outputs, name="attached")


def keep_one_channel(features: np.ndarray, rng: np.random.Generator, probability: float) -> np.ndarray:
    """Channel dropout: each row (B, h, w, c), with `probability`, keeps one random channel (others zeroed)."""
    if probability <= 0:
        return features
    rows = rng.random(len(features)) < probability
    masks = np.ones((len(features), features.shape[-1]), features.dtype)
    masks[rows] = np.eye(features.shape[-1], dtype=features.dtype)[rng.integers(features.shape[-1], size=rows.sum())]
    return features * masks[:, None, None, :]


def _extract(extract: keras.Model, images: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    parts = [extract.predict_on_batch(images[s:s + batch_size]) for s in range(0, len(images), batch_size)]
    return {k: np.concatenate([np.asarray(p[k], np.float32) for p in parts]) for k in parts[0]}


class _Features:
    """A split's activations per batch: computed once and kept when they fit in `cache_bytes`, else per batch."""

    def __init__(self, extract, images, shapes, batch_size, cache_bytes):
        self.extract, self.images = extract, images
        size = len(images) * sum(int(np.prod(s)) for s in shapes.values()) * 4
        self.cached = _extract(extract, images, batch_size) if size <= cache_bytes else None

    def batch(self, index: np.ndarray) -> dict[str, np.ndarray]:
        if self.cached is not None:
            return {k: v[index] for k, v in self.cached.items()}
        return {k: np.asarray(v, np.float32) for k, v in self.extract.predict_on_batch(self.images[index]).items()}


def _check_training(images_train, images_val, epochs, batch_size, channel_dropout, learning_rate) -> None:
    for name, value in (("epochs", epochs), ("batch size", batch_size)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise UsageError(f"{name} must be an integer >= 1, got {shown(value)}")
    if not isinstance(channel_dropout, int | float) or not 0 <= channel_dropout < 1:
        raise UsageError(f"channel dropout must be a probability in [0, 1), got {shown(channel_dropout)}")
    if not isinstance(learning_rate, int | float) or not 0 < learning_rate < 1:
        raise UsageError(f"learning rate must be in (0, 1), got {shown(learning_rate)}")
    for name, images in (("training", images_train), ("validation", images_val)):
        if np.asarray(images).dtype != np.uint8:
            raise UsageError(f"{name} images must be uint8 (N, height, width, 1 or 3), got {np.asarray(images).dtype}")


def train_decoders(user_model: keras.Model, layers, images_uint8_train: np.ndarray, images_uint8_val: np.ndarray,
                   epochs: int = 10, batch_size: int = 64, seed: int = 0, channel_dropout: float = 0.0,
                   input_range=None, image_size=None, class_output: str | None = None,
                   learning_rate: float = 1e-3, cache_bytes: int = CACHE_BYTES,
                   graph: ModelGraph | None = None) -> tuple[dict[str, keras.Model], dict[str, list]]:
    """Train one decoder per layer of `user_model` on its frozen activations; the model is only read.

    layers: names or paths (`ModelGraph.resolve`; None: `default_layers`); images: uint8 (N, h, w, 1 or 3),
    resized and converted to the model's input (`prepare_images`); input_range, image_size, class_output:
    as `ModelGraph`/`image_spec` take them (or pass `graph`). Seeded by `seed` (weights, order, dropout).
    Returns ({layer path: decoder, activations -> image in the input range}, history) where history is
    {"epoch": [1..E], "loss/<layer>": train MSE per epoch, "val_loss/<layer>": validation MSE, "seconds": [...]},
    MSE in [0, 1] pixel units (validation without channel dropout).
    """
    _check_training(images_uint8_train, images_uint8_val, epochs, batch_size, channel_dropout, learning_rate)
    graph = graph or ModelGraph(user_model, image_size=image_size, class_output=class_output)
    spec = graph.image_spec(input_range)
    paths = graph.resolve(layers) if layers else graph.default_layers()
    if not paths:
        raise UsageError(f"the model has no layer to decode; the layers that can be decoded are "
                         f"{', '.join(graph.eligible_layers()) or 'none'}")
    keras.utils.set_random_seed(int(seed))
    rng = np.random.default_rng(int(seed))
    train_u8, val_u8 = prepare_images(images_uint8_train, spec), prepare_images(images_uint8_val, spec)
    features = graph.feature_model(paths)
    extract = keras.Model(features.input, {p: features.output[p] for p in paths}, name="extract")
    shapes = {p: graph.layers[p].shape for p in paths}
    train = _Features(extract, to_model_input(train_u8, spec), shapes, batch_size, cache_bytes)
    val = _Features(extract, to_model_input(val_u8, spec), shapes, batch_size, cache_bytes)
    first = train.batch(np.arange(min(len(train_u8), SCALE_IMAGES)))
    decoders, units = {}, {}
    for p in paths:
        rms = np.sqrt(np.mean(np.square(first[p].astype(np.float64)), axis=(0, 1, 2)))
        decoders[p] = build_decoder(shapes[p], spec, decoder_name(p), rms)
        units[p] = unit_decoder(decoders[p])
        units[p].compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    log.info("training decoders for %s on %d images (%d validation), %d epochs, channel dropout %.2f%s",
             ", ".join(paths), len(train_u8), len(val_u8), epochs, channel_dropout,
             "" if train.cached is not None else " (features recomputed each epoch)")
    target_train, target_val = train_u8.astype(np.float32) / 255.0, val_u8.astype(np.float32) / 255.0
    history = {"epoch": [], "seconds": [], **{f"loss/{p}": [] for p in paths}, **{f"val_loss/{p}": [] for p in paths}}
    for epoch in range(1, epochs + 1):
        start, totals = time.perf_counter(), dict.fromkeys(paths, 0.0)
        order = rng.permutation(len(train_u8))
        for s in range(0, len(order), batch_size):
            index = order[s:s + batch_size]
            batch = train.batch(index)
            for p in paths:
                logs = units[p].train_on_batch(keep_one_channel(batch[p], rng, channel_dropout), target_train[index],
                                               return_dict=True)
                totals[p] += float(logs["loss"]) * len(index)
        val_loss = _val_errors(units, val, target_val, batch_size)
        history["epoch"].append(epoch)
        history["seconds"].append(round(time.perf_counter() - start, 3))
        for p in paths:
            history[f"loss/{p}"].append(totals[p] / len(order))
            history[f"val_loss/{p}"].append(val_loss[p])
            if not math.isfinite(totals[p]):
                raise UsageError(f"decoder training for {p!r} diverged (loss {totals[p]}) at epoch {epoch}: "
                                 "try a lower learning rate")
        log.info("epoch %d/%d: %s (%.1f s)", epoch, epochs,
                 ", ".join(f"{p} {history[f'loss/{p}'][-1]:.4f}/{val_loss[p]:.4f}" for p in paths),
                 history["seconds"][-1])
    return decoders, history


def _val_errors(units, features: _Features, targets: np.ndarray, batch_size: int) -> dict[str, float]:
    totals = dict.fromkeys(units, 0.0)
    for s in range(0, len(targets), batch_size):
        index = np.arange(s, min(s + batch_size, len(targets)))
        batch = features.batch(index)
        for p, unit in units.items():
            decoded = np.asarray(unit.predict_on_batch(batch[p]), np.float64)
            totals[p] += float(np.sum((decoded - targets[index]) ** 2))
    return {p: total / targets.size for p, total in totals.items()}


def decode(graph: ModelGraph, decoders: dict[str, keras.Model], images_uint8: np.ndarray, input_range=None,
           batch_size: int = 128) -> dict[str, np.ndarray]:
    """{layer: all-channels decodes in [0, 1] (N, H, W, C) float32} of uint8 images, for faithfulness."""
    spec = graph.image_spec(input_range)
    features = graph.feature_model(list(decoders))
    model = keras.Model(features.input, {p: unit_decoder(d)(features.output[p]) for p, d in decoders.items()})
    return _extract(model, to_model_input(prepare_images(images_uint8, spec), spec), batch_size)
