"""attach.py: every bad input is one line and exit code 2, nothing is written and the model file is unchanged;
the flags become an AttachConfig; one small run on the sample writes a run folder that `Run` opens."""
import os
import sys

import keras
import numpy as np
import pytest
from attached.attached_models import residual_stem
from helpers import run_main

from keras_latent.attach import main
from keras_latent.attached.reading import file_sha256

CUSTOM_MODULE = '''
import keras

@keras.saving.register_keras_serializable(package="i22_attach_cmd")
class Doubler(keras.layers.Layer):
    def call(self, x):
        return x * 2.0
'''


def _small_net(shape=(16, 16, 3)) -> keras.Model:
    image = keras.Input(shape, name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(image)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(image, keras.layers.Dense(10, name="logits")(x))


def _not_a_model(tmp_path):
    path = tmp_path / "notes.keras"
    path.write_text("not a model")
    return str(path), [], "is not a Keras model file"


def _lambda(tmp_path):
    image = keras.Input((16, 16, 3))
    path = str(tmp_path / "lambda.keras")
    keras.Model(image, keras.layers.Lambda(lambda t: t * 2.0)(image)).save(path)
    return path, [], "Lambda"


def _unknown_class(tmp_path, monkeypatch):
    (tmp_path / "i22_attach_cmd_layers.py").write_text(CUSTOM_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import i22_attach_cmd_layers

    image = keras.Input((16, 16, 3))
    x = i22_attach_cmd_layers.Doubler(name="doubler")(image)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    path = str(tmp_path / "custom.keras")
    keras.Model(image, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))).save(path)
    del keras.saving.get_custom_objects()["i22_attach_cmd>Doubler"]  # as a fresh process that never imported it
    monkeypatch.delitem(sys.modules, "i22_attach_cmd_layers")
    return path, [], "--import MODULE"


def _saved(model, tmp_path, name="user.keras"):
    path = str(tmp_path / name)
    model.save(path)
    return path


def _unknown_layer(tmp_path):
    return _saved(_small_net(), tmp_path), ["--layers", "nope"], "unknown layer 'nope'; the layers that can be decoded"


def _not_4d_layer(tmp_path):
    return _saved(_small_net(), tmp_path), ["--layers", "gap"], "not 4-D"


def _not_images(tmp_path):
    inputs = keras.Input((10,))
    return _saved(keras.Model(inputs, keras.layers.Dense(2)(inputs)), tmp_path), [], "inputs are not images"


def _open_size(tmp_path):
    return _saved(_small_net((None, None, 3)), tmp_path), [], "input size is not fixed"


@pytest.mark.parametrize("make", [_not_a_model, _lambda, _unknown_class, _unknown_layer, _not_4d_layer, _not_images,
                                  _open_size])
def test_bad_inputs_are_one_line_exit_2_nothing_written_model_unchanged(make, tmp_path, monkeypatch, capsys):
    made = make(tmp_path, monkeypatch) if make is _unknown_class else make(tmp_path)
    path, flags, words = made
    before = file_sha256(path)
    out = tmp_path / "run"
    code, _, err = run_main(main, [path, "--out", str(out), "--epochs", "1", *flags], capsys)
    assert code == 2 and words in err, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and not any(n.startswith(".run") for n in os.listdir(tmp_path))
    assert file_sha256(path) == before


@pytest.mark.parametrize("flags, words", [
    (["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
    (["--channel-dropout", "1"], "--channel-dropout must be a probability in [0, 1), got 1.0"),
    (["--input-range", "1,0"], "--input-range must be LO,HI with LO < HI"),
    (["--input-range", "0,1,2"], "--input-range takes two comma-separated values"),
    (["--image-size", "4,4"], "--image-size must be H,W, two integers >= 8"),
    (["--data", "/no/such/folder"], "/no/such/folder"),
])
def test_bad_flags_are_one_line_errors(flags, words, tmp_path, capsys):
    code, _, err = run_main(main, ["m.keras", "--out", str(tmp_path / "run"), *flags], capsys)
    assert code == 2 and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_an_existing_run_folder_is_refused(tmp_path, capsys):
    path = _saved(_small_net(), tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    code, _, err = run_main(main, [path, "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "is not an empty folder" in err and "--overwrite" in err
    code, _, err = run_main(main, [path, "--out", str(tmp_path / "run"), "--overwrite"], capsys)
    assert code == 2 and "is not an attached run folder; --overwrite replaces only those" in err
    assert os.listdir(tmp_path / "run") == ["keep.txt"]


@pytest.mark.slow
def test_a_small_attach_writes_a_run_that_opens_as_attached(tmp_path, capsys):
    from keras_latent.attached.run import open_any_run

    path = _saved(residual_stem(), tmp_path)
    before = file_sha256(path)
    out = str(tmp_path / "run")
    code, printed, _ = run_main(main, [path, "--out", out, "--epochs", "1", "--max-train-samples", "64",
                                       "--layers", "stem/relu1,down", "-q"], capsys)
    assert code == 0 and "layers: stem/relu1, down" in printed
    assert file_sha256(path) == before == file_sha256(os.path.join(out, "source_model.keras"))
    run = open_any_run(out)
    assert run.kind == "attached" and run.layers == ["stem/relu1", "down"]
    assert run.attached["source"]["sha256"] == before and run.attached["image"]["input_range"] == [0.0, 255.0]
    assert run.decode_paths == {"stem/relu1": "tail", "down": "tail"}
    assert set(run.metrics["faithfulness"]["layers"]) == {"stem/relu1", "down"}
    assert run.config.data.dataset == "sample" and run.data.splits.x_test.shape[1:] == (32, 32, 3)
    loaded = keras.saving.load_model(os.path.join(out, "model.keras"))  # plain Keras, no keras_latent import needed
    decoded = loaded.predict_on_batch(np.zeros((1, 32, 32, 3), np.float32))
    assert decoded["down"].shape == (1, 32, 32, 3) and decoded["class_output"].shape == (1, 10)
    # attaching again: refused without --overwrite (the run stays), replaced with it
    again = [path, "--out", out, "--epochs", "1", "--max-train-samples", "64", "--layers", "down", "-q"]
    code, _, err = run_main(main, again, capsys)
    assert code == 2 and "is not an empty folder" in err and open_any_run(out).layers == ["stem/relu1", "down"]
    code, printed, _ = run_main(main, [*again, "--overwrite"], capsys)
    assert code == 0 and open_any_run(out).layers == ["down"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".run")]  # no temporary left beside it
