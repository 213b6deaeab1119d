"""layers.py: the sub-pixel transposed conv and the per-image MSE are the functions they replace."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_latent.config import ModelConfig
from keras_latent.model.builders import build_model
from keras_latent.model.layers import SubPixelConv2DTranspose, image_mse


def _pair(filters, kernel_size, strides, in_shape, **kwargs):
    """A Conv2DTranspose and a SubPixelConv2DTranspose with the same random weights (bias too)."""
    plain = keras.layers.Conv2DTranspose(filters, kernel_size, strides=strides, **kwargs)
    fast = SubPixelConv2DTranspose(filters, kernel_size, strides=strides, **kwargs)
    plain.build(in_shape)
    fast.build(in_shape)
    rng = np.random.default_rng(1)
    weights = [rng.normal(size=w.shape).astype("float32") for w in plain.get_weights()]
    plain.set_weights(weights)
    fast.set_weights(weights)
    return plain, fast


def _outputs_and_grads(layer, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.sin(y))  # a non-trivial upstream gradient
    return [y] + tape.gradient(loss, [x] + layer.trainable_weights)


@pytest.mark.parametrize("filters,kernel_size,strides,in_hw,activation", [
    (6, 6, 2, (5, 5), "relu"),     # the default decoder's deconv2: 5x5x16 -> 14x14x6
    (3, 6, 2, (14, 14), "tanh"),   # and its deconv1: 14x14x6 -> 32x32x3
    (4, 4, 2, (7, 9), None),       # non-square input
    (5, (4, 6), 2, (5, 5), "relu"),  # rectangular kernel
    (2, 6, 3, (4, 4), None),       # stride 3
])
def test_sub_pixel_equals_conv2d_transpose(filters, kernel_size, strides, in_hw, activation):
    x = np.random.default_rng(0).normal(size=(3, *in_hw, 5)).astype("float32")
    plain, fast = _pair(filters, kernel_size, strides, x.shape, activation=activation)
    assert fast.sub_pixel
    expected, got = _outputs_and_grads(plain, x), _outputs_and_grads(fast, x)
    assert got[0].shape == expected[0].shape
    for name, e, g in zip(["output", "input grad", "kernel grad", "bias grad"], expected, got):
        scale = float(np.max(np.abs(e))) + 1e-6
        np.testing.assert_allclose(np.asarray(g) / scale, np.asarray(e) / scale, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=5, strides=2), dict(kernel_size=6, strides=2, padding="same"),
                                    dict(kernel_size=6, strides=(2, 1))])
def test_cases_without_an_exact_sub_pixel_form_fall_back(kwargs):
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
    plain, fast = _pair(4, in_shape=x.shape, **kwargs)
    assert not fast.sub_pixel
    np.testing.assert_array_equal(fast(x), plain(x))


def test_model_with_and_without_sub_pixel_decoder_is_the_same_function():
    fast_model = build_model(ModelConfig())
    plain_model = build_model(ModelConfig(sub_pixel_decoder=False))

    def transposed_convs(model):
        blocks = [b for b in model.get_layer("decoder").layers if isinstance(b, keras.Sequential)]
        return [type(layer) for b in blocks for layer in b.layers]

    assert transposed_convs(fast_model) == [SubPixelConv2DTranspose] * 2
    assert transposed_convs(plain_model) == [keras.layers.Conv2DTranspose] * 2
    plain_model.set_weights(fast_model.get_weights())  # the same weights fit both
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(fast_model(x)["reconstruction"], plain_model(x)["reconstruction"], atol=2e-6)


def test_sub_pixel_layer_survives_model_keras(tmp_path):
    model = build_model(ModelConfig())
    path = str(tmp_path / "m.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    layer = reloaded.get_layer("decoder").get_layer("deconv1").get_layer("deconv1_conv")
    assert isinstance(layer, SubPixelConv2DTranspose) and layer.sub_pixel
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(reloaded(x)["reconstruction"], model(x)["reconstruction"])


def test_sub_pixel_runs_in_bfloat16():
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 16)).astype("float32")
    plain, _ = _pair(6, 6, 2, x.shape)
    fast = SubPixelConv2DTranspose(6, 6, strides=2, dtype="mixed_bfloat16")
    fast.build(x.shape)
    fast.set_weights(plain.get_weights())
    y = fast(x)
    assert y.dtype == tf.bfloat16
    np.testing.assert_allclose(np.asarray(tf.cast(y, tf.float32)), plain(x), rtol=0.05, atol=0.1)


def test_image_mse_is_keras_mean_squared_error():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.normal(size=(5, 8, 6, 3)), rng.normal(size=(5, 8, 6, 3))
    per_image = np.asarray(image_mse(y_true.astype("float32"), y_pred.astype("float32")))
    np.testing.assert_allclose(per_image, np.mean((y_true - y_pred) ** 2, axis=(1, 2, 3)), rtol=1e-5)
    keras_mse = float(keras.losses.MeanSquaredError()(y_true.astype("float32"), y_pred.astype("float32")))
    np.testing.assert_allclose(per_image.mean(), keras_mse, rtol=1e-5)
