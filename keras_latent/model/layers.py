"""Custom layers and losses: exact, faster forms of standard Keras pieces (TensorFlow backend).

`SubPixelConv2DTranspose` is a `keras.layers.Conv2DTranspose` (same weights, same config, same
outputs up to float round-off) that runs a stride-s transposed convolution as one stride-1
convolution producing s*s "phases" of the output, then `depth_to_space` (the sub-pixel identity
of Shi et al., 2016). On CPUs, oneDNN's transposed convolutions on the decoder's few channels were
the slowest ops of a training step; this form trains the whole model about 20% faster at batch
128 (README, Performance). `image_mse` is Keras's mean squared error averaged per image, with the
same value.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_latent")
class SubPixelConv2DTranspose(keras.layers.Conv2DTranspose):
    """Conv2DTranspose computed as conv2d + depth_to_space when that is exact.

    Exact when the strides are equal (s), padding is "valid", each kernel side is a multiple of s,
    dilation is 1, there is no output_padding and data is channels_last; otherwise it runs the
    ordinary Conv2DTranspose. Output for input (B, n, n, C_in): (B, s*(n-1) + k, ..., filters).
    """

    @property
    def sub_pixel(self) -> bool:
        """Whether this layer runs as conv2d + depth_to_space (else as a plain Conv2DTranspose)."""
        s, k = self.strides, self.kernel_size
        return (s[0] == s[1] and self.padding == "valid" and k[0] % s[0] == 0 and k[1] % s[0] == 0
                and self.dilation_rate == (1, 1) and self.output_padding is None
                and self.data_format == "channels_last")

    def _phase_kernel(self, kernel):
        """(k_h, k_w, out, in) transposed-conv kernel -> (k_h/s, k_w/s, in, s*s*out) conv kernel.

        Output row s*j + p sums x[j - m] * w[p + s*m] over m; as a convolution over the input padded
        by k/s - 1 that is w[p + s*(k/s - 1 - t)] at tap t, so the taps are reversed; channels are
        ordered (p, q, out), as depth_to_space expects. Every weight appears once, so this is a
        permutation: a gather, with the inverse gather as its gradient (cheaper than a 6-D transpose).
        """
        s = self.strides[0]
        (kh, kw), out, cin = self.kernel_size, self.filters, kernel.shape[-1]
        order = np.arange(kh * kw * out * cin).reshape(kh // s, s, kw // s, s, out, cin)  # (m, p, n, q, out, in)
        order = order[::-1, :, ::-1].transpose(0, 2, 5, 1, 3, 4).reshape(-1)  # (t, u, in, p, q, out)
        inverse = np.argsort(order)

        @tf.custom_gradient
        def permute(flat):
            return tf.gather(flat, order), lambda grad: tf.gather(grad, inverse)

        return tf.reshape(permute(tf.reshape(kernel, [-1])), (kh // s, kw // s, cin, s * s * out))

    def call(self, inputs):
        if not self.sub_pixel:
            return super().call(inputs)
        s = self.strides[0]
        ph, pw = self.kernel_size[0] // s - 1, self.kernel_size[1] // s - 1
        kernel = tf.cast(self._phase_kernel(self.kernel), inputs.dtype)
        padded = tf.pad(inputs, [[0, 0], [ph, ph], [pw, pw], [0, 0]])  # conv2d's explicit padding is slower here
        phases = tf.nn.conv2d(padded, kernel, 1, "VALID")  # (B, h, w, s*s*out)
        if self.use_bias:
            phases = tf.nn.bias_add(phases, tf.tile(tf.cast(self.bias, inputs.dtype), [s * s]))
        if self.activation is not None:
            phases = self.activation(phases)  # elementwise, so before the shuffle (lets TF fuse it)
        return tf.nn.depth_to_space(phases, s)  # (B, s*h, s*w, out)


@keras.saving.register_keras_serializable(package="keras_latent")
def image_mse(y_true, y_pred):
    """Mean squared error per image (B,), over (H, W, C).

    Its batch mean is exactly `keras.losses.MeanSquaredError`'s value (every image has the same
    number of pixels); reducing whole images instead of 3-channel pixels makes the step faster.
    """
    y_pred = keras.ops.convert_to_tensor(y_pred)
    y_true = keras.ops.cast(y_true, y_pred.dtype)
    return keras.ops.mean(keras.ops.square(y_pred - y_true), axis=tuple(range(1, len(y_pred.shape))))
