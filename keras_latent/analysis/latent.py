"""Looking inside a trained model: per-channel decoding, channel statistics and channel ablation.

Everything here builds small Keras models that reuse the trained model's own layers (no weight
copies), so what is decoded or classified is exactly what the trained network computes:

    encoder(model, "conv2")        image (B, S, S, 3)          -> conv2 activations (B, h, w, C)
    decoder_from(model, "conv1", path)   activations (B, h, w, C)    -> image (B, S, S, 3)
    masked_decoder(model, "conv1", path) activations, masks (B, K, C) -> images (B, K, S, S, 3)
    ablation_model(model, "conv2") image, masks (B, K, C)       -> class probs (B, K, classes)

A decode `path` is `tail` (deconv{k} .. deconv1) or `propagate` (the rest of the trunk, then the
whole decoder); keras_latent.training.faithfulness measures which is faithful for a model.
A mask row multiplies a layer's channels (1 keeps, 0 zeroes). Every image is decoded or
classified once per mask row inside one compiled call, never in a Python loop over channels.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
from sklearn.metrics import confusion_matrix

from keras_latent.analysis.config import MODES
from keras_latent.config import DECODE_PATHS
from keras_latent.errors import UsageError, check_choice
from keras_latent.model import masking
from keras_latent.model.builders import decoder_tail, has_decoder, trunk_block_names, trunk_blocks
from keras_latent.training.evaluation import per_class_accuracy

MAX_ROWS_PER_CALL = 4096  # images x masks decoded per compiled call (bounds memory)


# ---------------------------------------------------------------- names and checks


def layer_index(model: keras.Model, layer: str) -> int:
    """1-based position of trunk block `layer` (`conv1` -> 1); an unknown name lists the valid ones."""
    names = trunk_block_names(model)
    if layer not in names:
        raise UsageError(f"unknown trunk layer {layer!r}; this model's trunk layers are {', '.join(names)}")
    return names.index(layer) + 1


def num_channels(model: keras.Model, layer: str) -> int:
    layer_index(model, layer)
    return int(model.get_layer("trunk").get_layer(layer).output.shape[-1])


def require_decoder(model: keras.Model) -> None:
    """Reconstructions need the decoder; a classifier-only model (--no-decoder) has none."""
    if not has_decoder(model):
        raise UsageError("this model has no decoder (trained with --no-decoder); reconstructions need one "
                         "(channel statistics and ablation still work)")


def check_channels(n_channels: int, channels, layer: str = "the layer") -> np.ndarray:
    """Channel indices as an int array (all when None); out-of-range or empty is a UsageError."""
    if channels is None:
        return np.arange(n_channels)
    chosen = list(dict.fromkeys(int(c) for c in channels))  # unique, in the given order
    bad = [c for c in chosen if not 0 <= c < n_channels]
    if not chosen or bad:
        raise UsageError(f"channels {bad or 'none'} out of range for {layer}: it has {n_channels} channels "
                         f"(0..{n_channels - 1})")
    return np.asarray(chosen)


def channel_masks(n_channels: int, channels=None, mode: str = "keep") -> np.ndarray:
    """Mask rows (K, C) float32: `keep` keeps only channel k, `drop` zeroes only channel k."""
    check_choice("mode", mode, MODES)
    chosen = check_channels(n_channels, channels)
    one_hot = np.eye(n_channels, dtype=np.float32)[chosen]
    return one_hot if mode == "keep" else 1.0 - one_hot


def intact_and_channel_masks(n_channels: int, channels=None, mode: str = "keep") -> np.ndarray:
    """Mask rows (1 + K, C) float32: row 0 keeps every channel (the intact layer), then `channel_masks`."""
    return np.concatenate([np.ones((1, n_channels), np.float32), channel_masks(n_channels, channels, mode)])


# ---------------------------------------------------------------- sub-models


def encoder(model: keras.Model, layer: str) -> keras.Model:
    """Image (B, S, S, 3) -> activations of trunk block `layer` (B, h, w, C), sharing the trained weights."""
    k = layer_index(model, layer)
    image = keras.Input(tuple(model.inputs[0].shape[1:]), name="image")
    x = image
    for block in trunk_blocks(model)[:k]:
        x = block(x)
    return keras.Model(image, x, name=f"encoder_{layer}")


def decoder_from(model: keras.Model, layer: str, path: str = "tail") -> keras.Model:
    """Activations of `layer` (B, h, w, C) -> image (B, S, S, 3) along a decode path (config.DECODE_PATHS):
    `tail` through the mirrored decoder's last blocks, `propagate` through the rest of the trunk and
    the whole decoder (keras_latent.training.faithfulness says which is faithful for a model)."""
    check_choice("decode path", path, DECODE_PATHS)
    k = layer_index(model, layer)
    require_decoder(model)
    if path == "tail":
        return decoder_tail(model, k)
    blocks = trunk_blocks(model)
    activations = keras.Input(tuple(blocks[k - 1].output.shape[1:]), name=f"{layer}_activations")
    x = activations
    for block in blocks[k:]:
        x = block(x)
    return keras.Model(activations, decoder_tail(model, len(blocks))(x), name=f"propagate_from_{layer}")


def masked_decoder(model: keras.Model, layer: str, path: str = "tail") -> keras.Model:
    """[activations (B, h, w, C), masks (B, K, C)] -> images (B, K, S, S, 3): every mask row of every image,
    decoded along `path` (see `decoder_from`)."""
    return masking.masked_decoder(decoder_from(model, layer, path), name=f"masked_decoder_{layer}_{path}")


def ablation_model(model: keras.Model, layer: str) -> keras.Model:
    """[image (B, S, S, 3), masks (B, K, C)] -> class probabilities (B, K, classes).

    The trained graph with `layer`'s activations multiplied by each mask row before the rest of
    the trunk and the classifier head: the prefix runs once per image, the suffix once per row.
    """
    k = layer_index(model, layer)
    prefix = encoder(model, layer)  # its graph (same image input, same block calls) is this model's prefix
    activations = prefix.outputs[0]
    masks = keras.Input((None, activations.shape[-1]), name="channel_masks")
    x = masking.ChannelMasking(name="channel_masking")(activations, masks)
    for block in trunk_blocks(model)[k:]:
        x = block(x)
    probs = model.get_layer("classifier_head")(x)
    unfolded = masking.UnfoldMasks(name="unfold")(probs, masks)
    return keras.Model([prefix.inputs[0], masks], unfolded, name=f"ablation_{layer}")


def predict_in_chunks(model: keras.Model, inputs: list[np.ndarray], batch_size: int) -> np.ndarray:
    """`model` on `batch_size` rows of `inputs` at a time, one compiled call each; float32 results joined.

    `predict_on_batch` reuses the model's traced predict function; `predict` would also build an
    input pipeline per call, which costs more than decoding a whole batch here.
    """
    def rows(start: int):
        chunk = [x[start:start + batch_size] for x in inputs]
        return chunk if len(chunk) > 1 else chunk[0]

    if not len(inputs[0]):
        raise UsageError("no images given: expected an array of shape (N, height, width, 3) with N >= 1")
    return np.concatenate([np.asarray(model.predict_on_batch(rows(start)), np.float32)
                           for start in range(0, len(inputs[0]), batch_size)])


def predict_masked(masked_model: keras.Model, inputs: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Run a masked model on every image x mask row: inputs (N, ...), masks (K, C) -> (N, K, ...) float32.

    Each compiled call takes up to MAX_ROWS_PER_CALL image-mask pairs (all K rows of its images).
    """
    masks = np.asarray(masks, np.float32)
    per_image = np.broadcast_to(masks, (len(inputs), *masks.shape))
    return predict_in_chunks(masked_model, [np.asarray(inputs, np.float32), per_image],
                             max(1, MAX_ROWS_PER_CALL // len(masks)))


# ---------------------------------------------------------------- analyses


def layer_activations(model: keras.Model, images: np.ndarray, layer: str, batch_size: int = 256) -> np.ndarray:
    """Normalized images (N, S, S, 3) -> activations of `layer` (N, h, w, C) float32."""
    return predict_in_chunks(encoder(model, layer), [np.asarray(images, np.float32)], batch_size)


def masked_reconstructions(model: keras.Model, images: np.ndarray, layer: str, channels=None,
                           mode: str = "keep", path: str = "tail") -> np.ndarray:
    """Decoded images with one channel kept (`keep`) or zeroed (`drop`), for each image and channel,
    along decode `path` (see `decoder_from`).

    images: normalized (N, S, S, 3) in [-1, 1]; channels: indices (default: all of `layer`).
    Returns (N, K, S, S, 3) float32 in [-1, 1]: [i, j] is image i decoded from `layer` with mask
    row j (channel channels[j]); all K channels of a batch of images decode in one compiled call.
    """
    decoder = masked_decoder(model, layer, path)
    n = num_channels(model, layer)
    masks = channel_masks(n, check_channels(n, channels, layer), mode)
    return predict_masked(decoder, layer_activations(model, images, layer), masks)


@dataclasses.dataclass(frozen=True)
class ChannelStats:
    """Mean activation of each channel of one layer over a split, overall and per class."""

    layer: str
    mean_activation: np.ndarray  # (C,) over images and positions
    class_mean_activation: np.ndarray  # (C, classes); NaN for a class with no image


def channel_statistics(model: keras.Model, images: np.ndarray, labels: np.ndarray, layer: str,
                       num_classes: int, batch_size: int = 256) -> ChannelStats:
    """Spatial mean of each channel per image (in the graph), then averaged overall and per class."""
    return encoder_statistics(encoder(model, layer), images, labels, layer, num_classes, batch_size)


def encoder_statistics(enc: keras.Model, images: np.ndarray, labels: np.ndarray, layer: str, num_classes: int,
                       batch_size: int = 256) -> ChannelStats:
    """`channel_statistics` with the encoder given (image (B, ...) -> activations (B, h, w, C)): any model's."""
    pooled = keras.Model(enc.inputs, keras.layers.GlobalAveragePooling2D()(enc.outputs[0]))
    per_image = predict_in_chunks(pooled, [np.asarray(images, np.float32)], batch_size).astype(np.float64)  # (N, C)
    by_class = np.full((per_image.shape[1], num_classes), np.nan)
    for c in range(num_classes):
        if np.any(labels == c):
            by_class[:, c] = per_image[labels == c].mean(axis=0)
    return ChannelStats(layer, per_image.mean(axis=0), by_class)


@dataclasses.dataclass(frozen=True)
class Ablation:
    """Test accuracy of the trained model with one channel of `layer` zeroed, against the intact model."""

    layer: str
    channels: np.ndarray  # (K,) ablated channel indices
    intact_accuracy: float
    intact_per_class: np.ndarray  # (classes,) NaN for a class with no image
    accuracy: np.ndarray  # (K,) accuracy with channels[j] zeroed
    per_class: np.ndarray  # (K, classes)

    @property
    def accuracy_drop(self) -> np.ndarray:  # (K,) intact minus ablated; > 0: the channel helps
        return self.intact_accuracy - self.accuracy

    @property
    def per_class_drop(self) -> np.ndarray:  # (K, classes)
        return self.intact_per_class[None, :] - self.per_class


def ablate_channels(model: keras.Model, images: np.ndarray, labels: np.ndarray, layer: str, num_classes: int,
                    channels=None) -> Ablation:
    """Zero each chosen channel of `layer` in turn inside the trained graph and score the classifier.

    images: normalized (N, S, S, 3); labels: (N,). The intact model is mask row 0 (all ones) of the
    same call, so intact and ablated scores come from the same graph.
    """
    return ablate_with(ablation_model(model, layer), num_channels(model, layer), images, labels, layer, num_classes,
                       channels)


def ablate_with(masked: keras.Model, n: int, images: np.ndarray, labels: np.ndarray, layer: str, num_classes: int,
                channels=None) -> Ablation:
    """`ablate_channels` with the ablation model given: [image, masks (B, K, n)] -> class scores (B, K, classes)
    (probabilities or logits: only the argmax counts), for any model (an attached run's `masked_model`)."""
    chosen = check_channels(n, channels, layer)
    masks = intact_and_channel_masks(n, chosen, "drop")
    predicted = predict_masked(masked, images, masks).argmax(axis=-1)  # (N, 1 + K)
    accuracy = (predicted == np.asarray(labels)[:, None]).mean(axis=0)
    per_class = np.stack([per_class_accuracy(confusion_matrix(labels, predicted[:, j], labels=range(num_classes)))
                          for j in range(predicted.shape[1])])
    return Ablation(layer, chosen, float(accuracy[0]), per_class[0], accuracy[1:], per_class[1:])


def rank_channels(ablation: Ablation, class_names: tuple[str, ...], top: int | None = None) -> tuple[list, dict]:
    """Channels by accuracy drop, descending (ties: lower index first): overall and per class.

    Returns ([{"channel", "accuracy_drop"}, ...], {class name: [channel, ...]}), each cut to `top`.
    """
    def order(drops: np.ndarray) -> np.ndarray:
        return np.lexsort((ablation.channels, -np.nan_to_num(drops, nan=-np.inf)))[:top]

    overall = [{"channel": int(ablation.channels[j]), "accuracy_drop": float(ablation.accuracy_drop[j])}
               for j in order(ablation.accuracy_drop)]
    per_class = {name: [int(ablation.channels[j]) for j in order(ablation.per_class_drop[:, c])]
                 for c, name in enumerate(class_names)}
    return overall, per_class
