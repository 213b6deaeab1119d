"""export.py: the SavedModel's three signatures and model.tflite, checked from a process that cannot
import this package (nor Keras), against the Keras model on real sample images; the export CLI."""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import copy_folder, run_main

from keras_latent.analysis import latent
from keras_latent.config import DataConfig, ModelConfig, TrainConfig
from keras_latent.data.pipeline import denormalize, normalize
from keras_latent.export import main
from keras_latent.exporting.savedmodel import export_saved_model
from keras_latent.model.builders import build_model, trunk_block_names
from keras_latent.runs import layout

N_IMAGES = 32
SIGNATURE_ATOL = 1e-5  # SavedModel vs Keras: same graph ops, float32
TFLITE_PROB_ATOL = 1e-4  # TFLite (XNNPACK kernels) vs Keras probabilities
TFLITE_UINT8_LEVELS = 1  # TFLite vs Keras uint8 reconstruction: at most one level of 255 apart

# Runs with keras and keras_latent blocked: only tensorflow and numpy are importable.
ISOLATED_SCRIPT = r'''
import sys
sys.modules["keras"] = sys.modules["keras_latent"] = None
import json, numpy as np, tensorflow as tf
saved_model, tflite, images, masks, out_npz, out_json = sys.argv[1:]
x = tf.constant(np.load(images))
masks = np.load(masks)
signatures = tf.saved_model.load(saved_model).signatures
out, info = {}, {"signatures": {}, "errors": {}}
for name, fn in signatures.items():
    info["signatures"][name] = {
        "inputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in fn.structured_input_signature[1].items()},
        "outputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in fn.structured_outputs.items()}}
for k, v in signatures["serving_default"](images=x).items():
    out["serving_default__" + k] = v.numpy().astype(str) if v.dtype == tf.string else v.numpy()
for k, v in signatures["encode"](images=x).items():
    out["encode__" + k] = v.numpy()
for key in masks.files:  # "<layer>__<mask kind>"
    layer = tf.constant(int(key.split("__")[0]), tf.int32)
    for k, v in signatures["decode_masked"](images=x, layer=layer, channel_mask=tf.constant(masks[key])).items():
        out[f"decode_masked__{key}__{k}"] = v.numpy()
    for path in ("tail", "propagate"):
        result = signatures["decode_masked_path"](images=x, layer=layer, channel_mask=tf.constant(masks[key]),
                                                  decode_path=tf.constant(path))
        for k, v in result.items():
            out[f"decode_masked_path__{path}__{key}__{k}"] = v.numpy()
for case, (layer, mask) in {"layer 0": (0, np.ones((1, 6))), "layer 9": (9, np.ones((1, 6))),
                            "width": (1, np.ones((1, 5))), "rows": (1, np.ones((3, 6)))}.items():
    try:
        signatures["decode_masked"](images=x, layer=tf.constant(layer), channel_mask=tf.constant(mask, tf.float32))
        info["errors"][case] = None
    except tf.errors.InvalidArgumentError as err:
        info["errors"][case] = err.message
try:
    signatures["decode_masked_path"](images=x, layer=tf.constant(1), decode_path=tf.constant("sideways"),
                                     channel_mask=tf.constant(np.ones((1, 6)), tf.float32))
    info["errors"]["path"] = None
except tf.errors.InvalidArgumentError as err:
    info["errors"]["path"] = err.message
runner = tf.lite.Interpreter(model_path=tflite).get_signature_runner("serving_default")
for k, v in runner(images=x.numpy()).items():
    out["tflite__" + k] = v.astype(str) if v.dtype == object else v
np.savez(out_npz, **out)
info["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "keras_latent") and sys.modules[m])
json.dump(info, open(out_json, "w"))
'''


@pytest.fixture(scope="module")
def exported(trained_run, sample_splits, tmp_path_factory):
    """A copy of the tiny run re-exported by the CLI (with --tflite), and the isolated process's outputs."""
    root = tmp_path_factory.mktemp("export")
    run = copy_folder(trained_run, root)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main([run, "--tflite"]) == 0
    model = keras.saving.load_model(layout.MODEL.path(run), safe_mode=True)
    images = sample_splits.x_test[:N_IMAGES]
    masks = masks_for(model)
    np.save(root / "images.npy", images)
    np.savez(root / "masks.npz", **masks)
    args = [layout.SAVED_MODEL.path(run), layout.TFLITE.path(run), root / "images.npy",
            root / "masks.npz", root / "out.npz", root / "info.json"]
    proc = subprocess.run([sys.executable, "-I", "-c", ISOLATED_SCRIPT, *map(str, args)], cwd=str(root),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"run": run, "stdout": stdout.getvalue(), "model": model, "images": images, "masks": masks,
            "out": dict(np.load(root / "out.npz")), "info": json.loads((root / "info.json").read_text())}


def masks_for(model) -> dict[str, np.ndarray]:
    """Per layer: a random 0/1 mask per image, and one mask (keep channel 0 only) for all images."""
    rng = np.random.default_rng(0)
    masks = {}
    for k, name in enumerate(trunk_block_names(model), start=1):
        channels = model.get_layer("trunk").get_layer(name).output.shape[-1]
        masks[f"{k}__per_image"] = (rng.random((N_IMAGES, channels)) < 0.5).astype(np.float32)
        masks[f"{k}__one_channel"] = np.eye(1, channels, dtype=np.float32)
    return masks


def keras_activations(model, images) -> dict[str, np.ndarray]:
    trunk = model.get_layer("trunk")
    names = trunk_block_names(model)
    encoder = keras.Model(trunk.input, [trunk.get_layer(n).output for n in names])
    return dict(zip(names, (np.asarray(a) for a in encoder(np.asarray(normalize(images))))))


@pytest.mark.slow
def test_signatures_have_named_inputs_outputs_and_fixed_dtypes(exported):
    signatures = exported["info"]["signatures"]
    assert set(signatures) == {"serving_default", "encode", "decode_masked", "decode_masked_path", "gradcam"}
    image = ["uint8", [None, 32, 32, 3]]
    assert signatures["serving_default"] == {"inputs": {"images": image}, "outputs": {
        "probabilities": ["float32", [None, 10]], "class_index": ["int64", [None]], "class_name": ["string", [None]],
        "reconstruction": image}}
    assert signatures["encode"] == {"inputs": {"images": image}, "outputs": {
        "conv1": ["float32", [None, 14, 14, 6]], "conv2": ["float32", [None, 5, 5, 16]]}}
    masked_inputs = {"images": image, "layer": ["int32", []], "channel_mask": ["float32", [None, None]]}
    masked_outputs = {"reconstruction": image, "reconstruction_normalized": ["float32", [None, 32, 32, 3]],
                      "decode_path": ["string", []]}
    assert signatures["decode_masked"] == {"inputs": masked_inputs, "outputs": masked_outputs}
    assert signatures["decode_masked_path"] == {
        "inputs": {**masked_inputs, "decode_path": ["string", []]}, "outputs": masked_outputs}
    assert exported["info"]["modules"] == []  # neither keras nor keras_latent was imported


@pytest.mark.slow
def test_saved_model_cli_shows_the_signatures(exported):
    proc = subprocess.run(["saved_model_cli", "show", "--all", "--dir", layout.SAVED_MODEL.path(exported["run"])],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    for name in ("serving_default", "encode", "decode_masked"):
        assert f"signature_def['{name}']" in text
    for line in ("inputs['images'] tensor_info:\n        dtype: DT_UINT8",
                 "inputs['layer'] tensor_info:\n        dtype: DT_INT32",
                 "outputs['class_name'] tensor_info:\n        dtype: DT_STRING",
                 "outputs['class_index'] tensor_info:\n        dtype: DT_INT64"):
        assert line in text, line


def test_serving_default_matches_keras(exported):
    model, images, out = exported["model"], exported["images"], exported["out"]
    expected = model(np.asarray(normalize(images)))
    probs = np.asarray(expected["classifier"])
    np.testing.assert_allclose(out["serving_default__probabilities"], probs, atol=SIGNATURE_ATOL, rtol=0)
    np.testing.assert_array_equal(out["serving_default__class_index"], probs.argmax(1))
    class_names = np.array(json.load(open(layout.CONFIG.path(exported["run"])))["data"]["class_names"])
    np.testing.assert_array_equal(out["serving_default__class_name"], class_names[probs.argmax(1)])
    recon = out["serving_default__reconstruction"]
    assert recon.dtype == np.uint8 and recon.shape == images.shape
    assert_uint8_matches(recon, np.asarray(expected["reconstruction"]))


def assert_uint8_matches(got: np.ndarray, expected_normalized: np.ndarray) -> None:
    """uint8 images equal Keras's rounded output, except values within 1e-5 of a rounding tie (one level off)."""
    scaled = (expected_normalized.astype(np.float64) + 1.0) * 127.5
    tie = np.abs(scaled - np.floor(scaled) - 0.5) < SIGNATURE_ATOL * 127.5
    diff = np.abs(got.astype(int) - denormalize(expected_normalized).astype(int))
    assert diff.max() <= 1 and not diff[~tie].any()


def test_encode_matches_the_keras_trunk_blocks(exported):
    expected = keras_activations(exported["model"], exported["images"])
    assert sorted(k.split("__")[1] for k in exported["out"] if k.startswith("encode__")) == sorted(expected)
    for name, value in expected.items():
        assert value.max() > 0  # real (ReLU) activations, not an all-zero output
        np.testing.assert_allclose(exported["out"][f"encode__{name}"], value, atol=SIGNATURE_ATOL, rtol=0)


def test_masked_decoding_matches_keras_along_each_path(exported):
    """decode_masked takes each layer's path recorded in metrics.json; decode_masked_path the one asked for."""
    model, out = exported["model"], exported["out"]
    recorded = json.load(open(layout.METRICS.path(exported["run"])))["faithfulness"]["decode_paths"]
    activations = keras_activations(model, exported["images"])
    for key, mask in exported["masks"].items():
        layer = f"conv{key.split('__')[0]}"
        masked = activations[layer] * mask[:, None, None, :]
        for path in ("tail", "propagate"):
            expected = np.asarray(latent.decoder_from(model, layer, path)(masked))
            got = out[f"decode_masked_path__{path}__{key}__reconstruction_normalized"]
            np.testing.assert_allclose(got, expected, atol=SIGNATURE_ATOL, rtol=0, err_msg=f"{key} {path}")
            assert out[f"decode_masked_path__{path}__{key}__decode_path"] == path.encode()
        got = out[f"decode_masked__{key}__reconstruction_normalized"]
        assert out[f"decode_masked__{key}__decode_path"] == recorded[layer].encode()
        chosen = out[f"decode_masked_path__{recorded[layer]}__{key}__reconstruction_normalized"]
        np.testing.assert_array_equal(got, chosen)
        np.testing.assert_array_equal(out[f"decode_masked__{key}__reconstruction"], denormalize(got))
    full = out["decode_masked__2__per_image__reconstruction_normalized"]
    single = out["decode_masked__2__one_channel__reconstruction_normalized"]
    assert np.abs(full - single).max() > 1e-3  # the mask really changes what is decoded


def test_decode_masked_rejects_a_bad_layer_or_mask(exported):
    errors = exported["info"]["errors"]
    assert "layer must be 1..2 (conv1..conv2), got] [0]" in errors["layer 0"]
    assert "got] [9]" in errors["layer 9"]
    assert "channel_mask for layer 1 (conv1) must have 6 columns" in errors["width"]
    assert "1 row (one mask for all images) or one row per image" in errors["rows"]
    assert "decode_path must be one of tail, propagate, got] [sideways]" in errors["path"]


def test_tflite_matches_keras_within_tolerance(exported):
    model, images, out = exported["model"], exported["images"], exported["out"]
    expected = model(np.asarray(normalize(images)))
    probs = np.asarray(expected["classifier"])
    np.testing.assert_allclose(out["tflite__probabilities"], probs, atol=TFLITE_PROB_ATOL, rtol=0)
    np.testing.assert_array_equal(out["tflite__class_index"], out["serving_default__class_index"])
    np.testing.assert_array_equal(out["tflite__class_name"], out["serving_default__class_name"])
    recon = out["tflite__reconstruction"].astype(int)
    assert np.abs(recon - denormalize(np.asarray(expected["reconstruction"])).astype(int)).max() <= TFLITE_UINT8_LEVELS


def test_export_cli_reports_and_leaves_no_temp_files(exported):
    lines = exported["stdout"].strip().splitlines()
    assert lines[0].startswith("wrote SavedModel ") and "encode, decode_masked, decode_masked_path, gradcam" in lines[0]
    assert lines[1].startswith("wrote TFLite model ") and lines[1].endswith("MB)")
    assert not [n for n in os.listdir(exported["run"]) if n.startswith(".") or n.endswith(".old")]
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in exported["model"]._flatten_layers())


def test_model_without_decoder_exports_classifier_and_encode(tmp_path, sample_splits):
    names = ("a", "b", "c")
    config = TrainConfig(data=DataConfig(class_names=names), model=ModelConfig(num_classes=3, decoder=False))
    model = build_model(config.model)
    path = export_saved_model(model, config, layout.SAVED_MODEL.path(str(tmp_path)))
    signatures = tf.saved_model.load(path).signatures
    assert set(signatures) == {"serving_default", "encode", "gradcam"}
    out = signatures["serving_default"](images=tf.constant(sample_splits.x_test[:8]))
    assert set(out) == {"probabilities", "class_index", "class_name"}
    probs = np.asarray(model(np.asarray(normalize(sample_splits.x_test[:8])))["classifier"])
    np.testing.assert_allclose(out["probabilities"].numpy(), probs, atol=SIGNATURE_ATOL, rtol=0)
    assert [n.decode() for n in out["class_name"].numpy()] == [names[i] for i in probs.argmax(1)]


@pytest.mark.parametrize("setup,message", [
    ("empty", "is not a run folder: it has no config.json"),
    ("no_model", "model.keras is missing; rebuild it with: python -m keras_latent.train --out"),
    ("corrupt_model", "model.keras is damaged (not a .keras zip archive); rebuild it with"),
    ("bad_flag", "unrecognized arguments: --onnx"),
])
def test_export_cli_bad_input_gets_one_line(setup, message, trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    if setup != "empty":
        shutil.copy(layout.CONFIG.path(trained_run), run)
    if setup == "corrupt_model":
        (run / layout.MODEL.name).write_bytes(b"PK\x03\x04 not a zip")
    code, _, err = run_main(main, [str(run)] + (["--onnx"] if setup == "bad_flag" else []), capsys)
    err = err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (run / layout.SAVED_MODEL.name).exists()


def test_without_a_recorded_choice_layers_the_decoder_never_saw_are_propagated():
    from keras_latent.model.builders import default_decode_paths
    from keras_latent.model.saving import checked_decode_paths

    old = build_model(ModelConfig(layer_decoders=False))  # as trained before layer decoders
    assert default_decode_paths(old) == {"conv1": "propagate", "conv2": "tail"}
    assert default_decode_paths(build_model(ModelConfig())) == {"conv1": "tail", "conv2": "tail"}
    recorded = {"conv1": "propagate", "conv2": "tail"}
    assert checked_decode_paths(recorded, old) == recorded
    for bad in (None, [], {"conv1": "tail"}, {"conv1": "sideways", "conv2": "tail"}):
        assert checked_decode_paths(bad, old) is None
