"""saving.py: a model.keras is data, never code: a Lambda layer or an unknown class is refused with one line;
a new run's model.keras loads in plain Keras (TensorFlow and JAX backends); old files still load here."""
import importlib.util
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from helpers import run_main

from keras_latent import analyze
from keras_latent.config import ModelConfig
from keras_latent.errors import UsageError
from keras_latent.model.builders import build_model
from keras_latent.model.layers import image_mse
from keras_latent.model.legacy import SubPixelConv2DTranspose
from keras_latent.model.saving import load_model_file, load_run_model
from keras_latent.runs import layout


def _marker_layer_model(marker: str) -> keras.Model:
    """A model whose Lambda layer, if it ever ran, would create the folder `marker`."""
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Lambda(lambda x: (os.makedirs(marker, exist_ok=True), x)[1])(inputs)
    return keras.Model(inputs, {"classifier": outputs})


@keras.saving.register_keras_serializable("not_keras_latent")
class Unknown(keras.layers.Layer):
    def call(self, x):
        return x


def test_a_lambda_layer_is_refused_with_one_line_and_runs_nothing(copy_run, tmp_path, capsys):
    marker = str(tmp_path / "ran")
    run_dir = copy_run()
    model = _marker_layer_model(marker)
    if os.path.isdir(marker):  # building the model traced the lambda once
        os.rmdir(marker)
    model.save(layout.MODEL.path(run_dir))
    code, _, err = run_main(analyze.main, [run_dir], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {layout.MODEL.path(run_dir)} holds Python code (a Lambda layer or a pickled "
                          "function), which is refused: a model file is data, never code"), err
    assert not os.path.exists(marker)


def test_an_unknown_class_and_a_foreign_archive_are_refused(tmp_path):
    inputs = keras.Input((4,))
    path = str(tmp_path / "unknown.keras")
    keras.Model(inputs, Unknown()(inputs)).save(path)
    name = keras.saving.get_registered_name(Unknown)
    del keras.saving.get_custom_objects()[name]  # a class this process does not know, as in a stranger's file
    with pytest.raises(UsageError, match=r"unknown\.keras holds a class keras-latent does not know \(.*Unknown\), "
                                         r"which is refused"):
        load_model_file(path)
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(UsageError, match=r"other\.keras cannot be loaded \("):
        load_model_file(str(tmp_path / "other.keras"))


# Run by `python -I -c` (no PYTHONPATH, no user site, no script folder on sys.path): load a .keras file with plain
# Keras, predict on saved inputs, save the outputs. Any import of keras_latent fails loudly.
PLAIN_KERAS_PREDICT = """
import importlib.abc, os, sys
class RefuseKerasLatent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "keras_latent":
            raise ImportError("keras_latent imported while loading a plain-Keras file")
sys.meta_path.insert(0, RefuseKerasLatent())
sys.path = [p for p in sys.path if p and not os.path.isdir(os.path.join(p, "keras_latent"))]
import keras, numpy as np
model_path, inputs_path, outputs_path = sys.argv[1:]
model = keras.saving.load_model(model_path)  # compile=True: the compile config too
assert model.compiled, "the loss and metrics were not restored"
outputs = model.predict(np.load(inputs_path), batch_size=8, verbose=0)
assert "keras_latent" not in sys.modules
np.savez(outputs_path, backend=keras.backend.backend(), **{k: np.asarray(v) for k, v in outputs.items()})
"""


def _plain_keras_outputs(model_path: str, x: np.ndarray, tmp_path, backend: str) -> dict:
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-I", "-c", PLAIN_KERAS_PREDICT, model_path, str(tmp_path / "x.npy"),
                           str(tmp_path / "out.npz")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(tmp_path / "out.npz") as saved:
        outputs = {k: saved[k] for k in saved.files}
    assert str(outputs.pop("backend")) == backend
    return outputs


@pytest.mark.parametrize("backend", [
    "tensorflow",
    pytest.param("jax", marks=pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                                 reason="jax is not installed (pip install jax)")),
])
@pytest.mark.slow
def test_a_run_model_keras_loads_in_plain_keras_without_the_package(trained_run, tmp_path, backend):
    """Only standard Keras layers: no custom object, on TensorFlow and on JAX, the same predictions as our loader."""
    model = load_run_model(trained_run, compile=False)
    x = np.random.default_rng(0).uniform(-1, 1, (8, *model.inputs[0].shape[1:])).astype("float32")
    expected = {k: np.asarray(v) for k, v in model.predict(x, batch_size=8, verbose=0).items()}
    got = _plain_keras_outputs(layout.MODEL.path(trained_run), x, tmp_path, backend)
    assert set(got) == set(expected) and "reconstruction" in got
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-5, err_msg=name)


def _legacy_model() -> keras.Model:
    """The default model as it was built before issue 21: its decoder's Conv2DTransposes SubPixelConv2DTranspose."""
    plain = build_model(ModelConfig(sub_pixel_decoder=False))

    def old_layer(layer):
        if isinstance(layer, keras.layers.Conv2DTranspose):
            return SubPixelConv2DTranspose.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    old = keras.models.clone_model(plain, clone_function=old_layer, recursive=True)
    old.set_weights(plain.get_weights())
    return old


def test_a_model_keras_from_before_issue_21_still_loads(tmp_path):
    old = _legacy_model()
    assert type(old.get_layer("decoder").get_layer("deconv1").get_layer("deconv1_conv")) is SubPixelConv2DTranspose
    old.compile(optimizer="sgd", loss={"classifier": "sparse_categorical_crossentropy", "reconstruction": image_mse,
                                       "reconstruction_conv1": image_mse})
    name = "keras_latent>SubPixelConv2DTranspose"
    path = str(tmp_path / "old.keras")
    keras.saving.register_keras_serializable(package="keras_latent")(SubPixelConv2DTranspose)  # as it was then
    try:
        old.save(path)
    finally:
        del keras.saving.get_custom_objects()[name]
    with pytest.raises(TypeError, match="Could not locate class 'SubPixelConv2DTranspose'"):
        keras.saving.load_model(path)  # the class is not registered globally: the loader supplies it
    loaded = load_model_file(path, compile=True)
    layer = loaded.get_layer("decoder").get_layer("deconv1").get_layer("deconv1_conv")
    assert type(layer) is SubPixelConv2DTranspose and layer.sub_pixel and loaded.compiled
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    for name, value in old(x).items():
        np.testing.assert_array_equal(loaded(x)[name], value, err_msg=name)
