"""model.py: shapes, names, the mirrored decoder, purity, save/reload."""
import keras
import numpy as np
import pytest

from keras_latent.config import ModelConfig, default_padding
from keras_latent.errors import UsageError
from keras_latent.model.builders import (
    build_decoder,
    build_model,
    build_trunk,
    classifier_logits,
    decoded_layers,
    decoder_tail,
    reconstruction_outputs,
    trunk_block_names,
)


def test_default_model_outputs_and_submodels():
    model = build_model(ModelConfig())
    out = model(np.zeros((2, 32, 32, 3), "float32"))
    assert set(out) == {"classifier", "reconstruction", "reconstruction_conv1"}
    assert tuple(out["classifier"].shape) == (2, 10)
    assert tuple(out["reconstruction"].shape) == tuple(out["reconstruction_conv1"].shape) == (2, 32, 32, 3)
    np.testing.assert_allclose(np.sum(out["classifier"], axis=1), 1.0, rtol=1e-5)
    sub_models = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    assert sub_models == ["trunk", "classifier_head", "decoder"]
    trunk = model.get_layer("trunk")
    assert trunk_block_names(model) == ["conv1", "conv2"]
    assert tuple(trunk.get_layer("conv1").output.shape) == (None, 14, 14, 6)
    assert [tuple(t.shape) for t in trunk.outputs] == [(None, 14, 14, 6), (None, 5, 5, 16)]
    # the tutorial net's parameter counts: trunk 2,872, head 59,134, decoder 4,113 (as in PyTorch); the sub-pixel
    # decoder also holds its bias layers' frozen kernels of ones (6 + 3 values)
    trainable = [sum(int(np.prod(v.shape)) for v in model.get_layer(n).trainable_weights)
                 for n in ("trunk", "classifier_head", "decoder")]
    assert trainable == [2872, 59134, 4113]
    assert model.get_layer("decoder").count_params() == 4113 + 6 + 3
    assert build_model(ModelConfig(sub_pixel_decoder=False)).get_layer("decoder").count_params() == 4113


def test_builder_is_pure():
    model = build_model(ModelConfig())
    assert not model.compiled


@pytest.mark.parametrize("filters,padding,layer_decoders", [
    ((6, 16), "valid", True), ((32, 64, 128), "same", True), ((4, 8, 8), "same", False)])
def test_decoder_mirrors_trunk(filters, padding, layer_decoders):
    config = ModelConfig(filters=filters, padding=padding, layer_decoders=layer_decoders)
    model = build_model(config)
    decoder = model.get_layer("decoder")
    deconvs = [layer.name for layer in decoder.layers if layer.name.startswith("deconv")]
    assert deconvs == [f"deconv{k}" for k in range(len(filters), 0, -1)]
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    trunk = model.get_layer("trunk")
    for k in range(1, len(filters) + 1):
        block_out = keras.Model(trunk.input, trunk.get_layer(f"conv{k}").output)(x)
        assert block_out.shape[-1] == filters[k - 1]
        # deconv{k} takes block k's channels and gives block k's input channels
        deconv = decoder.get_layer(f"deconv{k}")
        assert deconv.compute_output_shape(block_out.shape)[-1] == (filters[k - 2] if k > 1 else 3)
        image = decoder_tail(model, k)(block_out)
        assert tuple(image.shape) == (2, 32, 32, 3)
        if k < len(filters):  # a layer decoder's output is the tail decode of the trunk's own activations
            assert (f"reconstruction_conv{k}" in model.output) == layer_decoders
            if layer_decoders:
                np.testing.assert_allclose(image, model(x)[f"reconstruction_conv{k}"], atol=1e-6)
    # decoding the last block through the tail equals the model's own reconstruction
    latent = trunk(x)[-1] if layer_decoders else trunk(x)
    np.testing.assert_allclose(decoder_tail(model, len(filters))(latent), model(x)["reconstruction"], atol=1e-6)


def test_no_decoder_gives_classifier_only():
    model = build_model(ModelConfig(decoder=False))
    assert list(model.output) == ["classifier"]
    with pytest.raises(ValueError):
        model.get_layer("decoder")


def test_padding_default_and_trunk_that_does_not_fit():
    assert default_padding(32, (6, 16), 5) == "valid"
    assert default_padding(32, (32, 64, 128), 5) == "same"
    with pytest.raises(UsageError, match="padding same"):
        build_trunk(ModelConfig(filters=(32, 64, 128), padding="valid"))
    with pytest.raises(UsageError):
        build_decoder(ModelConfig(filters=(8,) * 6, padding="same"))


def test_saved_and_reloaded_model_gives_same_outputs(tmp_path):
    model = build_model(ModelConfig(image_size=28, filters=(4, 8)))
    x = np.random.default_rng(1).uniform(-1, 1, (3, 28, 28, 3)).astype("float32")
    path = str(tmp_path / "m.keras")
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    for name, value in model(x).items():
        np.testing.assert_allclose(again(x)[name], value, atol=1e-6)
    # the layer decoder shares deconv1 with the main decoder after reloading: one kernel drives both outputs
    deconv1 = again.get_layer("decoder").get_layer("deconv1")
    assert len(again.weights) == len(model.weights)
    kernel, bias = deconv1.get_layer("deconv1_conv").kernel, deconv1.get_layer("deconv1_bias").bias
    kernel.assign(np.zeros(kernel.shape))
    bias.assign(np.zeros(bias.shape))
    out = again(x)
    np.testing.assert_array_equal(out["reconstruction"], 0.0)  # tanh(0)
    np.testing.assert_array_equal(out["reconstruction_conv1"], 0.0)


def test_without_layer_decoders_the_model_is_the_two_output_one():
    model = build_model(ModelConfig(layer_decoders=False))
    assert list(model.output) == ["classifier", "reconstruction"]
    assert tuple(model.get_layer("trunk").output.shape) == (None, 5, 5, 16)
    assert reconstruction_outputs(ModelConfig(layer_decoders=False)) == ["reconstruction"]
    assert reconstruction_outputs(ModelConfig(filters=(4, 8, 8))) == [
        "reconstruction", "reconstruction_conv1", "reconstruction_conv2"]
    assert reconstruction_outputs(ModelConfig(decoder=False)) == []


def test_decoded_layers_are_those_the_decoder_was_trained_on():
    assert decoded_layers(build_model(ModelConfig())) == ["conv1", "conv2"]
    assert decoded_layers(build_model(ModelConfig(layer_decoders=False))) == ["conv2"]
    assert decoded_layers(build_model(ModelConfig(decoder=False))) == []


@pytest.mark.parametrize("head_units", [(120, 84), (7,)])
def test_classifier_logits_are_the_scores_before_the_softmax(head_units):
    model = build_model(ModelConfig(head_units=head_units))
    images = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype("float32")
    logits = np.asarray(classifier_logits(model, model.get_layer("trunk")(images)[-1]))  # the last block's
    probabilities = np.asarray(model(images)["classifier"])
    assert logits.shape == (3, 10)
    np.testing.assert_allclose(np.asarray(keras.ops.softmax(logits)), probabilities, atol=1e-6)
    assert not np.allclose(logits, probabilities)
