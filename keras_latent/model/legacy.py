"""Classes that only old files name: kept to load runs saved before issue 21, never used to build a model.

Before issue 21 the decoder's transposed convolutions were `SubPixelConv2DTranspose`, a
`keras.layers.Conv2DTranspose` subclass that ran as `tf.nn.conv2d` + `tf.nn.depth_to_space`; a
`model.keras` naming it loads only where this class is known (TensorFlow backend). New models build
the same computation from standard Keras layers (`keras_latent.model.layers`), so their files load
in plain Keras. `keras_latent.model.saving` passes `LEGACY_OBJECTS` to `load_model`: nothing here is
registered globally, so no new file can name it by accident.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

LEGACY_PACKAGE = "keras_latent"


class SubPixelConv2DTranspose(keras.layers.Conv2DTranspose):
    """Conv2DTranspose computed as conv2d + depth_to_space when that is exact (the pre-issue-21 layer).

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
        """(k_h, k_w, out, in) transposed-conv kernel -> (k_h/s, k_w/s, in, s*s*out) conv kernel (a permutation)."""
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
        padded = tf.pad(inputs, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
        phases = tf.nn.conv2d(padded, kernel, 1, "VALID")  # (B, h, w, s*s*out)
        if self.use_bias:
            phases = tf.nn.bias_add(phases, tf.tile(tf.cast(self.bias, inputs.dtype), [s * s]))
        if self.activation is not None:
            phases = self.activation(phases)
        return tf.nn.depth_to_space(phases, s)  # (B, s*h, s*w, out)


# The registered names old model.keras files use, for `keras.saving.load_model(custom_objects=...)`.
LEGACY_OBJECTS = {f"{LEGACY_PACKAGE}>SubPixelConv2DTranspose": SubPixelConv2DTranspose}
