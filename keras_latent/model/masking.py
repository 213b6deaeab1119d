"""Folding channel-mask rows into the batch: the layers that run a model's suffix once per (image, mask row).

An image's activations (B, h, w, C) times its K mask rows (B, K, C) (1 keeps a channel, 0 zeroes it)
become B*K image-major rows; any other tensor the suffix needs (a skip connection from before the
masked layer) is repeated K times in the same order; the suffix's outputs are unfolded to (B, K, ...).
Every mask row of every image then runs in one compiled call, never in a Python loop over channels.
Used by the trained model's sub-models (`analysis.latent`) and by attached decoders (`attached`).
The layers are registered with Keras, so models holding them save and load in safe mode.
"""
from __future__ import annotations

import keras
from keras import ops


def mask_channels(activations, masks):
    """Each image's activations once per mask row: (B, h, w, C) x (B, K, C) -> (B, K, h, w, C)."""
    masks = ops.cast(masks, activations.dtype)
    return activations[:, None] * masks[:, :, None, None, :]


@keras.saving.register_keras_serializable(package="keras_latent")
class ChannelMasking(keras.layers.Layer):
    """(activations (B, h, w, C), masks (B, K, C)) -> masked copies (B*K, h, w, C), image-major."""

    def call(self, activations, masks):
        return ops.reshape(mask_channels(activations, masks), (-1, *activations.shape[1:]))

    def compute_output_shape(self, activations_shape, masks_shape):
        return (None, *activations_shape[1:])


@keras.saving.register_keras_serializable(package="keras_latent")
class RepeatPerMask(keras.layers.Layer):
    """(x (B, ...), masks (B, K, C)) -> x (B*K, ...): each image's row repeated K times, image-major."""

    def call(self, x, masks):
        return ops.repeat(x, ops.shape(masks)[1], axis=0)

    def compute_output_shape(self, x_shape, masks_shape):
        return (None, *x_shape[1:])


@keras.saving.register_keras_serializable(package="keras_latent")
class UnfoldMasks(keras.layers.Layer):
    """(outputs (B*K, ...), masks (B, K, C)) -> outputs (B, K, ...): undoes ChannelMasking's fold."""

    def call(self, outputs, masks):
        return ops.reshape(outputs, (-1, ops.shape(masks)[1], *outputs.shape[1:]))

    def compute_output_shape(self, outputs_shape, masks_shape):
        return (None, masks_shape[1], *outputs_shape[1:])


def masked_decoder(decoder: keras.Model, name: str | None = None) -> keras.Model:
    """[activations (B, h, w, C), masks (B, K, C)] -> images (B, K, H, W, C_img): `decoder` on every mask row."""
    activations = keras.Input(tuple(decoder.inputs[0].shape[1:]), name="activations")
    masks = keras.Input((None, activations.shape[-1]), name="channel_masks")
    images = decoder(ChannelMasking(name="channel_masking")(activations, masks))
    return keras.Model([activations, masks], UnfoldMasks(name="unfold")(images, masks),
                       name=name or f"masked_{decoder.name}")
