"""model.py: shapes, names, the mirrored decoder, purity, save/reload."""
import keras
import numpy as np
import pytest

from keras_latent.config import ModelConfig, default_padding
from keras_latent.errors import UsageError
from keras_latent.model.builders import build_decoder, build_model, build_trunk, decoder_tail, trunk_block_names


def test_default_model_outputs_and_submodels():
    model = build_model(ModelConfig())
    out = model(np.zeros((2, 32, 32, 3), "float32"))
    assert set(out) == {"classifier", "reconstruction"}
    assert tuple(out["classifier"].shape) == (2, 10)
    assert tuple(out["reconstruction"].shape) == (2, 32, 32, 3)
    np.testing.assert_allclose(np.sum(out["classifier"], axis=1), 1.0, rtol=1e-5)
    sub_models = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    assert sub_models == ["trunk", "classifier_head", "decoder"]
    trunk = model.get_layer("trunk")
    assert trunk_block_names(model) == ["conv1", "conv2"]
    assert tuple(trunk.get_layer("conv1").output.shape) == (None, 14, 14, 6)
    assert tuple(trunk.output.shape) == (None, 5, 5, 16)
    # the tutorial net's parameter counts: trunk 2,872, head 59,134, decoder 4,113 (as in PyTorch)
    assert [model.get_layer(n).count_params() for n in ("trunk", "classifier_head", "decoder")] == [2872, 59134, 4113]


def test_builder_is_pure():
    model = build_model(ModelConfig())
    assert not model.compiled


@pytest.mark.parametrize("filters,padding", [((6, 16), "valid"), ((32, 64, 128), "same"), ((4, 8, 8), "same")])
def test_decoder_mirrors_trunk(filters, padding):
    config = ModelConfig(filters=filters, padding=padding)
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
        assert decoder.get_layer(f"deconv{k}").output.shape[-1] == (filters[k - 2] if k > 1 else 3)
        image = decoder_tail(model, k)(block_out)
        assert tuple(image.shape) == (2, 32, 32, 3)
    # decoding the last block through the tail equals the model's own reconstruction
    np.testing.assert_allclose(decoder_tail(model, len(filters))(trunk(x)), model(x)["reconstruction"], atol=1e-6)


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
