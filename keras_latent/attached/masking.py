"""Folding mask rows into the batch: the layers that let a model's suffix run once per (image, mask row).

The same idea as `keras_latent.analysis.latent`'s ChannelMasking/UnfoldMasks (which sit in a later
layer of the package): an image's activations (B, h, w, C) times its K mask rows (B, K, C) become
B*K image-major rows; any other tensor the suffix needs (a skip connection from before the masked
layer) is repeated K times in the same order, and the suffix's outputs are unfolded to (B, K, ...).
"""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_latent.attached")
class FoldMasks(keras.layers.Layer):
    """(activations (B, h, w, C), masks (B, K, C)) -> masked activations (B*K, h, w, C), image-major."""

    def call(self, activations, masks):
        masks = ops.cast(masks, activations.dtype)
        x = activations[:, None] * masks[:, :, None, None, :]
        return ops.reshape(x, (-1, *activations.shape[1:]))

    def compute_output_shape(self, activations_shape, masks_shape):
        return (None, *activations_shape[1:])


@keras.saving.register_keras_serializable(package="keras_latent.attached")
class RepeatPerMask(keras.layers.Layer):
    """(x (B, ...), masks (B, K, C)) -> x (B*K, ...): each image's row repeated K times, image-major."""

    def call(self, x, masks):
        return ops.repeat(x, ops.shape(masks)[1], axis=0)

    def compute_output_shape(self, x_shape, masks_shape):
        return (None, *x_shape[1:])


@keras.saving.register_keras_serializable(package="keras_latent.attached")
class UnfoldMasks(keras.layers.Layer):
    """(outputs (B*K, ...), masks (B, K, C)) -> outputs (B, K, ...): undoes the fold."""

    def call(self, outputs, masks):
        return ops.reshape(outputs, (-1, ops.shape(masks)[1], *outputs.shape[1:]))

    def compute_output_shape(self, outputs_shape, masks_shape):
        return (None, masks_shape[1], *outputs_shape[1:])


def masked_decoder(decoder: keras.Model) -> keras.Model:
    """[activations (B, h, w, C), masks (B, K, C)] -> images (B, K, H, W, C_img): `decoder` on every mask row."""
    activations = keras.Input(tuple(decoder.inputs[0].shape[1:]), name="activations")
    masks = keras.Input((None, activations.shape[-1]), name="channel_masks")
    images = decoder(FoldMasks(name="fold_masks")(activations, masks))
    return keras.Model([activations, masks], UnfoldMasks(name="unfold_masks")(images, masks),
                       name=f"masked_{decoder.name}")
