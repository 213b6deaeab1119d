"""saving.py: a model.keras is data, never code: a Lambda layer or an unknown class is refused with one line."""
import os
import zipfile

import keras
import pytest
from helpers import run_main

from keras_latent import analyze
from keras_latent.errors import UsageError
from keras_latent.model.saving import load_model_file
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
