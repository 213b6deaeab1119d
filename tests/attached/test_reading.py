"""Reading a user's .keras file: refusals in one line, --import, sha256 and the weights digest."""
import os
import sys
import zipfile

import attached_models
import keras
import numpy as np
import pytest

from keras_latent.attached.graph import ModelGraph
from keras_latent.attached.reading import (
    file_sha256,
    image_input_shape,
    load_user_model,
    prepare_images,
    weights_digest,
)
from keras_latent.errors import UsageError


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_loads_a_model_with_its_sha256_and_weights_digest_and_leaves_the_file_alone(tmp_path):
    model = attached_models.residual_stem()
    path = str(tmp_path / "user.keras")
    model.save(path)
    before = file_sha256(path)
    loaded = load_user_model(path)
    assert loaded.sha256 == before == file_sha256(path)
    assert loaded.weights_digest == weights_digest(model)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.model.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)


def test_weights_digest_sees_a_changed_weight_including_batchnorm_statistics():
    model = attached_models.residual_stem()
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    assert weights_digest(clone) == weights_digest(model)
    bn = clone.get_layer("stem").get_layer("bn1")
    bn.moving_mean.assign(bn.moving_mean + 1.0)  # a non-trainable weight: the digest still sees it
    assert weights_digest(clone) != weights_digest(model)


def test_a_file_that_is_not_a_model_is_one_line(tmp_path):
    text = tmp_path / "notes.keras"
    text.write_text("hello")
    assert "not a Keras model file" in one_line(pytest.raises(UsageError, load_user_model, str(text)))
    archive = tmp_path / "other.keras"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "no model here")
    assert "cannot be loaded as a Keras model" in one_line(pytest.raises(UsageError, load_user_model, str(archive)))
    assert "does not exist" in one_line(pytest.raises(UsageError, load_user_model, str(tmp_path / "none.keras")))


def test_a_lambda_layer_is_refused(tmp_path):
    image = keras.Input((8, 8, 3))
    model = keras.Model(image, keras.layers.Lambda(lambda t: t * 2.0)(image))
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    message = one_line(pytest.raises(UsageError, load_user_model, path))
    assert "Lambda" in message and "--import" in message


CUSTOM_MODULE = '''
import keras

@keras.saving.register_keras_serializable(package="i22_user")
class Doubler(keras.layers.Layer):
    def call(self, x):
        return x * 2.0
'''


def test_an_unknown_class_needs_import_which_runs_the_users_module(tmp_path, monkeypatch):
    (tmp_path / "i22_user_layers.py").write_text(CUSTOM_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import i22_user_layers

    image = keras.Input((8, 8, 3))
    path = str(tmp_path / "custom.keras")
    keras.Model(image, i22_user_layers.Doubler(name="doubler")(image)).save(path)
    # forget the class, as a fresh process that never imported the user's module would
    del keras.saving.get_custom_objects()["i22_user>Doubler"]
    monkeypatch.delitem(sys.modules, "i22_user_layers")
    message = one_line(pytest.raises(UsageError, load_user_model, path))
    assert "Doubler" in message and "--import" in message
    loaded = load_user_model(path, imports=("i22_user_layers",))
    assert loaded.imports == ("i22_user_layers",)
    assert float(loaded.model.predict_on_batch(np.ones((1, 8, 8, 3), np.float32)).max()) == 2.0
    assert "cannot be imported" in one_line(pytest.raises(UsageError, load_user_model, path, ("no_such_mod_i22",)))
    assert "module name" in one_line(pytest.raises(UsageError, load_user_model, path, ("bad name",)))


@pytest.mark.parametrize("shape", [(10,), (8, 8, 5), (4, 8, 8, 3)])
def test_inputs_that_are_not_images_are_one_line(shape):
    inputs = keras.Input(shape)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    assert "not images" in one_line(pytest.raises(UsageError, image_input_shape, model))


def test_an_open_input_size_needs_an_image_size():
    image = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(image)
    model = keras.Model(image, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
    assert "not fixed" in one_line(pytest.raises(UsageError, ModelGraph, model))
    graph = ModelGraph(model, image_size=(24, 40))
    assert graph.image_shape == (24, 40, 3) and graph.layers["conv"].shape == (24, 40, 4)
    fixed = attached_models.sequential_softmax()
    assert "does not match" in one_line(pytest.raises(UsageError, image_input_shape, fixed, (24, 40)))


def test_prepare_images_resizes_and_converts_channels():
    rgb = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    spec = ModelGraph(attached_models.two_outputs(), class_output="probs").image_spec((0, 1))
    grey = prepare_images(rgb, spec)
    assert grey.shape == (3, 24, 40, 1) and grey.dtype == np.uint8
    assert "uint8" in one_line(pytest.raises(UsageError, prepare_images, rgb.astype(np.float32), spec))


def test_no_file_is_written_next_to_the_model(tmp_path):
    path = str(tmp_path / "user.keras")
    attached_models.sequential_softmax().save(path)
    load_user_model(path)
    assert os.listdir(tmp_path) == ["user.keras"]
