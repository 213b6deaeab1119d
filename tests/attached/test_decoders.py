"""Post-hoc decoders: built from standard layers for any shape, trained on frozen features (the user's model
unchanged), beating the mean image on the sample, and saved with the model as one .keras file plain Keras loads."""
import os
import subprocess
import sys
import textwrap

import attached_models
import keras
import numpy as np
import pytest

from keras_latent.attached.decoders import (
    attached_model,
    build_decoder,
    keep_one_channel,
    train_decoders,
    unit_decoder,
)
from keras_latent.attached.faithfulness import measure_faithfulness
from keras_latent.attached.graph import CLASS_OUTPUT, ModelGraph
from keras_latent.attached.reading import ImageSpec, weights_digest
from keras_latent.errors import UsageError


@pytest.mark.parametrize("feature_shape, spec", [
    ((4, 8, 16), ImageSpec(24, 40, 1, (-1.0, 1.0))),  # H != W, grey, powers of two overshoot (resized)
    ((8, 8, 12), ImageSpec(32, 32, 3, (0.0, 255.0))),
    ((1, 1, 64), ImageSpec(32, 32, 3, (0.0, 1.0))),
    ((32, 32, 8), ImageSpec(32, 32, 3, (0.0, 1.0))),  # full resolution: no upsampling
])
def test_a_decoder_maps_any_layer_shape_to_the_image_in_the_input_range(feature_shape, spec):
    decoder = build_decoder(feature_shape, spec, channel_rms=np.full(feature_shape[-1], 3.0))
    x = np.random.default_rng(0).normal(0, 5, (2, *feature_shape)).astype(np.float32)
    images = decoder.predict_on_batch(x)
    assert images.shape == (2, *spec.shape)
    lo, hi = spec.input_range
    assert images.min() >= lo and images.max() <= hi
    np.testing.assert_allclose(unit_decoder(decoder).predict_on_batch(x) * (hi - lo) + lo, images, rtol=1e-5,
                               atol=1e-4 * (hi - lo))
    assert all(type(layer).__module__.startswith("keras.") for layer in decoder.layers)  # standard layers only


def test_keep_one_channel_keeps_exactly_one_channel_in_the_chosen_rows():
    features = np.ones((2000, 2, 2, 5), np.float32)
    out = keep_one_channel(features, np.random.default_rng(0), 0.3)
    kept = (out[:, 0, 0] != 0).sum(axis=1)
    assert set(np.unique(kept)) == {1, 5}
    assert 0.25 < np.mean(kept == 1) < 0.35
    assert np.array_equal(keep_one_channel(features, np.random.default_rng(0), 0.0), features)


def test_bad_training_arguments_are_one_line(sample_splits):
    model = attached_models.sequential_softmax()
    x = sample_splits.x_train[:8]
    for kwargs, words in [({"epochs": 0}, "epochs"), ({"channel_dropout": 1.5}, "channel dropout"),
                          ({"batch_size": 2.5}, "batch size")]:
        with pytest.raises(UsageError, match=words):
            train_decoders(model, ["conv1"], x, x, **kwargs)
    with pytest.raises(UsageError, match="uint8"):
        train_decoders(model, ["conv1"], x.astype(np.float32), x)
    with pytest.raises(UsageError, match="not 4-D"):
        train_decoders(model, ["gap"], x, x)


def test_training_is_seeded_and_leaves_the_users_model_unchanged(sample_splits):
    model = attached_models.residual_stem()
    digest, x = weights_digest(model), sample_splits.x_test[:64]
    before = model.predict_on_batch(x.astype(np.float32))
    runs = [train_decoders(model, ["stem/relu1"], sample_splits.x_train[:96], x, epochs=1, batch_size=32, seed=3,
                           channel_dropout=0.2)[1] for _ in range(2)]
    assert runs[0]["loss/stem/relu1"] == runs[1]["loss/stem/relu1"]
    assert runs[0]["epoch"] == [1] and len(runs[0]["val_loss/stem/relu1"]) == 1
    assert weights_digest(model) == digest
    np.testing.assert_array_equal(model.predict_on_batch(x.astype(np.float32)), before)


@pytest.mark.slow
def test_decoders_beat_the_mean_image_at_every_layer_on_the_sample(sample_splits):
    model = attached_models.residual_stem()
    graph = ModelGraph(model)
    decoders, history = train_decoders(model, None, sample_splits.x_train[:1024], sample_splits.x_test[:256],
                                       epochs=3, batch_size=64, seed=0, graph=graph)
    assert list(decoders) == ["res_relu", "down"]
    table = measure_faithfulness(graph, decoders, sample_splits.x_train, sample_splits.x_test[:400])
    assert table["no_better_than_mean_image"] == []
    for layer, figures in table["layers"].items():
        assert figures["mse"] < 0.5 * table["mean_image"]["mse"], (layer, figures)
        assert figures["normalized_error_pct"] < table["mean_image"]["normalized_error_pct"]
    assert history["val_loss/down"][-1] < history["val_loss/down"][0]


LOAD_PLAINLY = textwrap.dedent("""
    import sys
    import keras
    import numpy as np
    model = keras.saving.load_model(sys.argv[1])  # safe_mode: only standard layers
    assert not any(name.startswith("keras_latent") for name in sys.modules)
    out = model.predict_on_batch(np.load(sys.argv[2]))
    np.savez(sys.argv[3], **{key.replace("/", "|"): value for key, value in out.items()})
""")


@pytest.mark.slow
@pytest.mark.parametrize("build", [attached_models.residual_stem, attached_models.applications_backbone])
def test_the_model_and_its_decoders_save_as_one_keras_file_plain_keras_loads(build, tmp_path):
    model = build()
    graph = ModelGraph(model)
    spec = graph.image_spec((0, 255))
    layers = graph.default_layers()[:2]
    decoders = {layer: build_decoder(graph.layers[layer].shape, spec, f"decoder_{i}")
                for i, layer in enumerate(layers)}
    bundle = attached_model(graph, decoders)
    x = np.random.default_rng(0).uniform(0, 255, (3, *graph.image_shape)).astype(np.float32)
    expected = bundle.predict_on_batch(x)
    np.testing.assert_allclose(expected[CLASS_OUTPUT], model.predict_on_batch(x), rtol=1e-5, atol=1e-6)
    path, inputs, result = tmp_path / "attached.keras", tmp_path / "x.npy", tmp_path / "out.npz"
    bundle.save(path)
    np.save(inputs, x)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", LOAD_PLAINLY, str(path), str(inputs), str(result)], check=True,
                   cwd=tmp_path, env=env, timeout=300)
    loaded = np.load(result)
    assert sorted(loaded.files) == sorted(key.replace("/", "|") for key in expected)
    for key, value in expected.items():
        np.testing.assert_allclose(loaded[key.replace("/", "|")], value, rtol=1e-5, atol=1e-5)
    assert keras.saving.load_model(path).count_params() == bundle.count_params()
