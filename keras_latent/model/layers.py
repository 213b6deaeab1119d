"""The decoder's sub-pixel transposed convolution, built from standard Keras layers, and the per-image MSE.

A stride-s "valid" transposed convolution with a k x k kernel (k a multiple of s) is, exactly, one
stride-1 convolution producing s*s output "phases" followed by depth-to-space (the sub-pixel identity
of Shi et al., 2016). On CPUs, oneDNN's transposed convolutions on the decoder's few channels were the
slowest ops of a training step; the stride-1 form trains the whole model about 20% faster at batch 128
(docs/performance.md). `sub_pixel_conv_transpose` spells it with standard layers only,

    (B, h, w, C_in) -> ZeroPadding2D(k/s - 1) -> Conv2D(s*s*filters, k/s, no bias)   # (B, h', w', s*s*F)
      -> Reshape (h', w', s, s*F) -> Permute (h', s, w', s*F) -> Reshape (s*h', s*w', F)  # depth-to-space
      -> DepthwiseConv2D(1, kernel of ones, frozen) + bias, activation                   # the tied bias

with h' = h + k/s - 1, so the output is (B, s*(h-1) + k, s*(w-1) + k, F) like Conv2DTranspose's, and a
model built with it saves a `.keras` file that plain Keras loads on any backend (no custom class).
The kernel is Conv2DTranspose's with its entries permuted (`phase_kernel`), and it starts from the
same random values a Conv2DTranspose would draw. No standard layer adds a bias tied over the phases,
so the bias (F values, as Conv2DTranspose's) and the activation follow the shuffle in a 1x1
DepthwiseConv2D whose kernel of ones is frozen (x * 1 + b, exact). With oneDNN on (keras_latent turns it on
for x86-64), oneDNN runs it as one fused depthwise convolution with the bias, and it trains the default
model faster than a Dense(F) with a frozen identity kernel (a MatMul then a separate BiasAdd), which issue 24
used while oneDNN was off on AVX2 CPUs (docs/performance.md); with `tied_bias=False` the Conv2D holds a
bias per phase channel instead (`phase_bias` maps a Conv2DTranspose bias to it).

`image_mse` is Keras's mean squared error averaged per image, with the same value, and faster.
"""
from __future__ import annotations

import keras
import numpy as np


def has_sub_pixel_form(kernel_size: tuple[int, int], strides: int) -> bool:
    """Whether a "valid" stride-`strides` transposed conv with this kernel is exactly conv + depth-to-space."""
    return strides > 1 and all(k % strides == 0 for k in kernel_size)


def phase_kernel(kernel: np.ndarray, strides: int) -> np.ndarray:
    """(k_h, k_w, F, C_in) Conv2DTranspose kernel -> (k_h/s, k_w/s, C_in, s*s*F) phase Conv2D kernel.

    Output row s*j + p sums x[j - m] * w[p + s*m] over m; as a convolution over the input padded by
    k/s - 1 that is w[p + s*(k/s - 1 - t)] at tap t, so the taps are reversed; channels are ordered
    (p, q, F), as the depth-to-space reshape expects. Every weight appears once: a permutation.
    """
    s = strides
    kh, kw, filters, cin = kernel.shape
    w = np.asarray(kernel).reshape(kh // s, s, kw // s, s, filters, cin)  # (m, p, n, q, F, in)
    w = w[::-1, :, ::-1].transpose(0, 2, 5, 1, 3, 4)  # (t, u, in, p, q, F)
    return np.ascontiguousarray(w).reshape(kh // s, kw // s, cin, s * s * filters)


def phase_bias(bias: np.ndarray, strides: int) -> np.ndarray:
    """(F,) Conv2DTranspose bias -> (s*s*F,) phase bias, the same for every phase."""
    return np.tile(np.asarray(bias), strides * strides)


def sub_pixel_conv_transpose(filters: int, kernel_size: int | tuple[int, int], strides: int,
                             in_shape: tuple[int, int, int], activation: str | None, name: str,
                             tied_bias: bool = True) -> list[keras.layers.Layer]:
    """Standard Keras layers computing Conv2DTranspose(filters, kernel_size, strides, "valid", activation).

    `in_shape` (h, w, C_in) is the input's; the reshapes need its size. The Conv2D, named `name`, is
    built here and holds the kernel (B, h', w', s*s*F) phases come from: its initial kernel is drawn from
    Conv2DTranspose's glorot-uniform distribution (the same limit; the same one Python-random seed is taken, so
    later layers draw what they drew before). An earlier version assigned Conv2DTranspose's own draw, permuted,
    after creation: under MultiWorkerMirroredStrategy that local assign left the workers' kernels apart.
    Layers `{block}_pad`, `{block}_split`, `{block}_interleave`, `{block}_merge` surround it, `block` being
    `name` less "_conv".

    `tied_bias` (default): the bias is Conv2DTranspose's, F values shared by the phases, added after the
    shuffle by `{block}_bias`, a 1x1 DepthwiseConv2D whose kernel of ones is frozen (`kernel.trainable`
    False; a `.keras` file does not keep that flag, so it trains again only if a loaded model is
    fine-tuned) and which applies the activation. (Files from part of issue 24 hold a Dense(F) with an
    identity kernel there: the same function, and they load as they are.) Else the Conv2D has a bias per
    phase channel (s*s*F, zero at the start) and the activation: one op fewer, but SGD moves the shared
    offset at 1/(s*s) the rate (docs/performance.md).
    """
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    s = strides
    if not has_sub_pixel_form((kh, kw), s):
        raise ValueError(f"a {kh}x{kw} kernel at stride {s} has no exact sub-pixel form (each side a multiple of s)")
    h, w, cin = in_shape
    block = name.removesuffix("_conv")
    ph, pw = kh // s - 1, kw // s - 1
    hp, wp = h + ph, w + pw  # rows and columns of phases: (h + 2*ph) - (kh/s) + 1
    # Conv2DTranspose's glorot-uniform limit sqrt(6 / (k*k*(F + C_in))) on the phase kernel, whose fans differ
    # (fan_in C_in*k*k/(s*s), fan_out F*k*k): the same distribution, drawn when the variable is created (so a
    # distribution strategy broadcasts it like any initial value). Takes one seed, as Conv2DTranspose's does.
    init = keras.initializers.VarianceScaling(scale=(cin / (s * s) + filters) / (filters + cin), mode="fan_avg",
                                              distribution="uniform")
    conv = keras.layers.Conv2D(s * s * filters, (kh // s, kw // s), padding="valid", use_bias=not tied_bias,
                               activation=None if tied_bias else activation, kernel_initializer=init, name=name)
    layers = [
        keras.layers.ZeroPadding2D((ph, pw), name=f"{block}_pad"),
        conv,  # (B, hp, wp, s*s*F), channels (p, q, F)
        keras.layers.Reshape((hp, wp, s, s * filters), name=f"{block}_split"),  # (.., p, (q, F))
        keras.layers.Permute((1, 3, 2, 4), name=f"{block}_interleave"),  # (B, hp, p, wp, (q, F))
        keras.layers.Reshape((hp * s, wp * s, filters), name=f"{block}_merge"),  # row hp*s+p, col wp*s+q
    ]
    with keras.name_scope(block):  # variable paths as if built inside the block: deconv{k}/deconv{k}_conv/kernel
        conv.build((None, h + 2 * ph, w + 2 * pw, cin))
        if tied_bias:
            # x * 1 + b per channel: exact, and no random draw (the seeded layers after it draw as before)
            bias = keras.layers.DepthwiseConv2D(1, depthwise_initializer="ones", activation=activation,
                                                name=f"{block}_bias")
            bias.build((None, hp * s, wp * s, filters))
            bias.kernel.trainable = False  # x * 1 + b: only the bias trains
            layers.append(bias)
    return layers


@keras.saving.register_keras_serializable(package="keras_latent")
def image_mse(y_true, y_pred):
    """Mean squared error per image (B,), over (H, W, C).

    Its batch mean is exactly `keras.losses.MeanSquaredError`'s value (every image has the same
    number of pixels); reducing whole images instead of 3-channel pixels makes the step faster.
    """
    y_pred = keras.ops.convert_to_tensor(y_pred)
    y_true = keras.ops.cast(y_true, y_pred.dtype)
    return keras.ops.mean(keras.ops.square(y_pred - y_true), axis=tuple(range(1, len(y_pred.shape))))
