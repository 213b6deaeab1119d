"""layers.py: the sub-pixel transposed conv (standard layers) and the per-image MSE are the functions they replace."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_latent.config import ModelConfig
from keras_latent.model.builders import build_model
from keras_latent.model.layers import image_mse, phase_bias, phase_kernel, sub_pixel_conv_transpose


def _pair(filters, kernel_size, strides, in_shape, activation=None, tied_bias=True):
    """A Conv2DTranspose and its sub-pixel form (a Sequential of standard layers) with the same random weights;
    and the sub-pixel form's trainable (kernel, bias)."""
    plain = keras.layers.Conv2DTranspose(filters, kernel_size, strides=strides, activation=activation)
    plain.build(in_shape)
    fast = keras.Sequential(sub_pixel_conv_transpose(filters, kernel_size, strides, in_shape[1:], activation,
                                                     name="t_conv", tied_bias=tied_bias))
    rng = np.random.default_rng(1)
    kernel, bias = [rng.normal(size=w.shape).astype("float32") for w in plain.get_weights()]
    plain.set_weights([kernel, bias])
    conv = fast.get_layer("t_conv")
    conv.kernel.assign(phase_kernel(kernel, strides))
    bias_holder = fast.get_layer("t_bias") if tied_bias else conv
    bias_holder.bias.assign(bias if tied_bias else phase_bias(bias, strides))
    return plain, fast, [conv.kernel, bias_holder.bias]


def _outputs_and_grads(layer, weights, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.sin(y))  # a non-trivial upstream gradient
    return [y] + tape.gradient(loss, [x] + weights)


@pytest.mark.parametrize("tied_bias", [True, False])
@pytest.mark.parametrize("filters,kernel_size,strides,in_hw,activation", [
    (6, 6, 2, (5, 5), "relu"),     # the default decoder's deconv2: 5x5x16 -> 14x14x6
    (3, 6, 2, (14, 14), "tanh"),   # and its deconv1: 14x14x6 -> 32x32x3
    (4, 4, 2, (7, 9), None),       # non-square input
    (5, (4, 6), 2, (5, 5), "relu"),  # rectangular kernel
    (2, 6, 3, (4, 4), None),       # stride 3
])
def test_sub_pixel_equals_conv2d_transpose(filters, kernel_size, strides, in_hw, activation, tied_bias):
    x = np.random.default_rng(0).normal(size=(3, *in_hw, 5)).astype("float32")
    plain, fast, trained = _pair(filters, kernel_size, strides, x.shape, activation=activation, tied_bias=tied_bias)
    assert all(type(layer).__module__.startswith("keras.") for layer in fast.layers)  # standard layers only
    assert [v.path for v in fast.trainable_weights] == [v.path for v in trained]  # the ones kernel is frozen
    expected = _outputs_and_grads(plain, [plain.kernel, plain.bias], x)
    got = _outputs_and_grads(fast, trained, x)
    assert got[0].shape == expected[0].shape
    s = strides
    # The phase kernel's gradient is the permuted transposed-conv gradient; an untied bias: each phase its share.
    expected[2] = phase_kernel(np.asarray(expected[2]), s)
    if not tied_bias:
        got[3] = np.asarray(got[3]).reshape(s * s, filters).sum(axis=0)
    for name, e, g in zip(["output", "input grad", "kernel grad", "bias grad"], expected, got):
        scale = float(np.max(np.abs(e))) + 1e-6
        np.testing.assert_allclose(np.asarray(g) / scale, np.asarray(e) / scale, atol=1e-5, err_msg=name)


def test_a_kernel_without_an_exact_sub_pixel_form_is_refused():
    with pytest.raises(ValueError, match="no exact sub-pixel form"):
        sub_pixel_conv_transpose(4, 5, 2, (6, 6, 3), None, name="t_conv")


def _decoder_layer_types(model):
    blocks = [b for b in model.get_layer("decoder").layers if isinstance(b, keras.Sequential)]
    return {b.name: [type(layer).__name__ for layer in b.layers] for b in blocks}


def _sub_pixel_path(path: str) -> str:
    """Where a plain decoder's weight lives in the sub-pixel decoder: the kernel in the Conv2D, the bias after it."""
    return path.replace("_conv/bias", "_bias/bias") if path.startswith("deconv") else path


SUB_PIXEL_BLOCK = ["ZeroPadding2D", "Conv2D", "Reshape", "Permute", "Reshape", "DepthwiseConv2D"]


def test_a_seeded_sub_pixel_model_draws_as_the_plain_model_does():
    """Same seed: every weight but the decoder kernels equal (one seed taken where Conv2DTranspose took one), the
    phase kernels drawn from Conv2DTranspose's glorot-uniform range; the trainable weights are the plain model's
    (the kernels keep their paths), plus the bias layers' frozen kernels of ones."""
    keras.utils.set_random_seed(0)
    fast_model = build_model(ModelConfig())
    keras.utils.set_random_seed(0)
    plain_model = build_model(ModelConfig(sub_pixel_decoder=False))
    assert _decoder_layer_types(fast_model) == {f"deconv{k}": SUB_PIXEL_BLOCK for k in (1, 2)}
    assert _decoder_layer_types(plain_model) == {f"deconv{k}": ["Conv2DTranspose"] for k in (1, 2)}
    fast = {v.path: np.asarray(v) for v in fast_model.trainable_weights}
    assert sorted(fast) == sorted(_sub_pixel_path(v.path) for v in plain_model.trainable_weights)
    for v in plain_model.weights:
        plain, mine = np.asarray(v), fast[_sub_pixel_path(v.path)]
        if v.path.startswith("deconv") and v.path.endswith("_conv/kernel"):
            kh, kw, filters, cin = plain.shape
            limit = np.sqrt(6 / (kh * kw * (filters + cin)))  # glorot uniform of the transposed kernel
            assert mine.shape == phase_kernel(plain, 2).shape
            assert np.abs(mine).max() <= limit and np.abs(mine).max() > 0.9 * limit, v.path
            assert not np.array_equal(mine, np.zeros_like(mine))
        else:
            np.testing.assert_array_equal(mine, plain, err_msg=v.path)
    for v in fast_model.non_trainable_weights:
        assert v.path.endswith("_bias/kernel") and np.all(np.asarray(v) == 1.0), v.path


def test_with_and_without_sub_pixel_decoder_the_model_is_the_same_function():
    fast_model = build_model(ModelConfig())
    plain_model = build_model(ModelConfig(sub_pixel_decoder=False))
    rng = np.random.default_rng(2)
    fast = {v.path: v for v in fast_model.weights}
    for v in plain_model.weights:
        value = rng.normal(scale=0.2, size=v.shape).astype("float32")
        v.assign(value)
        fast[_sub_pixel_path(v.path)].assign(phase_kernel(value, 2) if v.path.endswith("_conv/kernel")
                                             and v.path.startswith("deconv") else value)
    x = rng.uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    fast, plain = fast_model(x), plain_model(x)
    for name in ("reconstruction", "reconstruction_conv1"):
        np.testing.assert_allclose(fast[name], plain[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_an_odd_decoder_kernel_falls_back_to_conv2d_transpose():
    """A 33px image: deconv1 needs a 7x7 kernel (no stride-2 sub-pixel form), deconv2 a 6x6 one."""
    types = _decoder_layer_types(build_model(ModelConfig(image_size=33)))
    assert types["deconv1"] == ["Conv2DTranspose"]
    assert types["deconv2"] == SUB_PIXEL_BLOCK


def test_sub_pixel_runs_in_bfloat16():
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 16)).astype("float32")
    plain, fast32, _ = _pair(6, 6, 2, x.shape)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        fast = keras.Sequential(sub_pixel_conv_transpose(6, 6, 2, (5, 5, 16), None, name="t_conv"))
    finally:
        keras.config.set_dtype_policy(previous)
    fast.set_weights(fast32.get_weights())
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
