"""training/faithfulness.py: the all-channels decode error of every layer, by path, and the default path."""
import math

import numpy as np
import pytest

from keras_latent.analysis import latent
from keras_latent.config import ModelConfig
from keras_latent.model.builders import build_model
from keras_latent.training import faithfulness


def _images(n=6, size=32):
    return np.random.default_rng(0).uniform(-1, 1, (n, size, size, 3)).astype("float32")


def test_psnr_of_mse_in_minus_one_to_one_units():
    assert faithfulness.psnr(0.25) == pytest.approx(12.0412, abs=1e-4)  # the mean-image figure
    assert faithfulness.psnr(0.089) == pytest.approx(16.5266, abs=1e-4)
    assert faithfulness.psnr(0.0) == math.inf


@pytest.mark.parametrize("layer_decoders", [True, False])
def test_each_layer_error_is_its_tail_decode_and_propagate_is_the_full_reconstruction(layer_decoders):
    model = build_model(ModelConfig(layer_decoders=layer_decoders))
    x = _images()
    table = faithfulness.measure_faithfulness(model, x, faithfulness.mean_image(x))
    recon = np.asarray(model(x)["reconstruction"])
    full = float(np.mean((recon - x) ** 2))
    conv1 = np.asarray(latent.decoder_from(model, "conv1", "tail")(latent.encoder(model, "conv1")(x)))
    assert table["layers"]["conv1"]["tail"]["mse"] == pytest.approx(float(np.mean((conv1 - x) ** 2)), rel=1e-5)
    for layer in ("conv1", "conv2"):
        assert table["layers"][layer]["propagate"]["mse"] == pytest.approx(full, rel=1e-5)
    assert table["layers"]["conv2"]["tail"]["mse"] == pytest.approx(full, rel=1e-5)
    assert table["deepest_layer"] == "conv2"
    assert table["mean_image"]["mse"] == pytest.approx(float(np.mean((x - x.mean(axis=0)) ** 2)), rel=1e-5)


def test_default_path_is_the_lower_error_and_a_layer_no_better_than_the_mean_image_is_flagged(monkeypatch):
    model = build_model(ModelConfig())
    x = _images()
    errors = {"conv1": 0.30, "conv2": 0.09}
    monkeypatch.setattr(faithfulness, "layer_decode_errors", lambda *args, **kwargs: dict(errors))
    baseline = x.mean(axis=0)
    table = faithfulness.measure_faithfulness(model, x, baseline)
    assert table["decode_paths"] == {"conv1": "propagate", "conv2": "tail"}
    errors["conv1"] = 0.05
    assert faithfulness.measure_faithfulness(model, x, baseline)["decode_paths"]["conv1"] == "tail"
    errors.update(conv1=0.9, conv2=0.9)  # worse than any constant image
    assert faithfulness.measure_faithfulness(model, x, baseline)["no_better_than_mean_image"] == ["conv1", "conv2"]


def test_mean_image_and_its_error_summed_in_chunks_are_those_of_the_whole_set(monkeypatch):
    """The faithfulness converts CHUNK images at a time to float (to bound memory): any chunk size gives the
    figures of the whole set at once."""
    images = np.random.default_rng(1).integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    as_float = images.astype(np.float64) / 127.5 - 1.0
    for chunk in (7, 50, 4096):
        monkeypatch.setattr(faithfulness, "CHUNK", chunk)
        mean = faithfulness.mean_image(images, lambda c: np.asarray(c, np.float64) / 127.5 - 1.0)
        np.testing.assert_allclose(mean, as_float.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(faithfulness._mse_to(as_float, mean), np.mean((as_float - mean) ** 2), rtol=1e-9)
