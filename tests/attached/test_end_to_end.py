"""The issue's bar, end to end on the bundled sample: a convnet no one on the project wrote (raw 0-255 inputs via
Rescaling, a nested Sequential stem, a residual Add block, BatchNorm, Dropout, logits), trained a few steps and
saved, then attach, analyze, report, export and explore. Its file's sha256 and its predictions are unchanged;
every chosen layer's all-channels decode beats the mean image; the ablation table equals graph surgery written
by hand; Grad-CAM equals a hand-written GradientTape computation (and the exported gradcam signature)."""
import os
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from attached.attached_models import residual_stem
from helpers import run_main

from keras_latent.attached.reading import file_sha256

pytestmark = pytest.mark.slow


def _forward(model, x, layer: str, mask=None):
    """The residual_stem model by hand (its own layer objects, inference mode): (logits, the activations at
    `layer` after multiplying them by `mask` (c,) when given). Independent of keras_latent's graph re-run."""
    get = model.get_layer
    h = get("stem")(x, training=False)
    if layer == "stem/relu1" and mask is not None:
        h = h * mask
    acts = h if layer == "stem/relu1" else None
    y = get("res_bn")(get("res_conv")(h), training=False)
    h = get("res_relu")(get("res_add")([h, y]))
    if layer == "res_relu":
        h = h * mask if mask is not None else h
        acts = h
    h = get("down")(h)
    if layer == "down":
        h = h * mask if mask is not None else h
        acts = h
    logits = get("logits")(get("drop")(get("gap")(h), training=False))
    return logits, acts


def _trained_user_model(path: str, splits) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = residual_stem()
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(splits.x_train[:1024].astype(np.float32), splits.y_train[:1024], epochs=1, batch_size=64, verbose=0)
    model.save(path)
    return model


def test_a_users_convnet_goes_end_to_end(tmp_path, sample_splits, capsys):
    from keras_latent.analysis import AnalysisConfig, analyze_run
    from keras_latent.analysis.probe import attached_probe
    from keras_latent.attach import main as attach_main
    from keras_latent.attached.run import open_any_run
    from keras_latent.explorer.app import create_app
    from keras_latent.explorer.session import Explorer
    from keras_latent.exporting.savedmodel import export_run
    from keras_latent.reporting import build_report
    from keras_latent.runs import layout
    from keras_latent.runs.records import read_csv

    path, out = str(tmp_path / "user_net.keras"), str(tmp_path / "run")
    _trained_user_model(path, sample_splits)
    sha = file_sha256(path)
    probe_images = sample_splits.x_test[:16].astype(np.float32)  # raw 0-255 pixels, as the model takes them
    before = keras.saving.load_model(path).predict_on_batch(probe_images)
    seconds = {}

    start = time.perf_counter()
    code, printed, _ = run_main(attach_main, [path, "--data", "sample", "--out", out, "--epochs", "2",
                                              "--max-train-samples", "800", "--batch-size", "32", "-q"], capsys)
    seconds["attach"] = time.perf_counter() - start
    assert code == 0 and "layers: res_relu, down" in printed, printed
    run = open_any_run(out)
    faithful = run.metrics["faithfulness"]
    for layer, figures in faithful["layers"].items():  # every chosen layer beats the mean image on the test split
        assert figures["mse"] < faithful["mean_image"]["mse"], (layer, figures, faithful["mean_image"])
    assert 60 < faithful["mean_image"]["normalized_error_pct"] < 80  # about 71% on natural images

    start = time.perf_counter()
    summary = analyze_run(out, AnalysisConfig(feature_steps=16, saliency_samples=4))
    seconds["analyze"] = time.perf_counter() - start
    assert summary["kind"] == "attached" and summary["layers"] == ["res_relu", "down"]

    # the ablation table against graph surgery by hand: the channel zeroed where the layer's output is used
    user = keras.saving.load_model(path)
    x_test = run.data.splits.x_test.astype(np.float32)
    y_test = np.asarray(run.data.splits.y_test)
    rows = read_csv(layout.analysis_file(out, layout.ABLATION), layout.ABLATION)
    for layer, n in (("res_relu", 8), ("down", 16)):
        for channel in range(n):
            mask = np.ones(n, np.float32)
            mask[channel] = 0.0
            logits = np.concatenate([np.asarray(_forward(user, x_test[s:s + 256], layer, mask)[0])
                                     for s in range(0, len(x_test), 256)])
            expected = float(np.mean(logits.argmax(-1) == y_test))
            row = next(r for r in rows if r["layer"] == layer and int(r["channel"]) == channel)
            assert abs(float(row["accuracy"]) - expected) < 1e-6, (layer, channel, row["accuracy"], expected)

    # Grad-CAM against a hand-written GradientTape computation on the logit
    probe = attached_probe(run)
    images = x_test[:4]
    classes = np.asarray(_forward(user, images, "down")[0]).argmax(-1)
    found = probe.grad_cam(images, classes, ["res_relu", "down"])
    for layer in ("res_relu", "down"):
        x = tf.constant(images)
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits, acts = _forward(user, x, layer)
            score = tf.gather(logits, classes, batch_dims=1)
        grads = tape.gradient(score, acts)
        cam = tf.nn.relu(tf.reduce_sum(acts * tf.reduce_mean(grads, axis=(1, 2), keepdims=True), axis=-1))
        np.testing.assert_allclose(found[layer], cam.numpy(), rtol=1e-4, atol=1e-5 * float(np.max(cam)) + 1e-7)

    start = time.perf_counter()
    report = build_report(out)
    seconds["report"] = time.perf_counter() - start
    html = open(report, encoding="utf-8").read()
    assert sha in html and "Normalized error" in html and 'id="attached-faithfulness"' in html

    start = time.perf_counter()
    written = export_run(out, tflite=True)
    seconds["export"] = time.perf_counter() - start
    loaded = tf.saved_model.load(written[0]).signatures
    pixels = run.data.splits.x_test[:4]
    served = loaded["serving_default"](images=tf.constant(pixels))
    np.testing.assert_allclose(served["probabilities"].numpy(),
                               tf.nn.softmax(user.predict_on_batch(pixels.astype(np.float32))).numpy(), atol=1e-5)
    assert loaded["encode"](images=tf.constant(pixels))["down"].shape == (4, 16, 16, 16)
    decoded = loaded["decode_masked"](images=tf.constant(pixels), layer=tf.constant(1),
                                      channel_mask=tf.ones((1, 8)))["reconstruction"]
    assert decoded.shape == (4, 32, 32, 3) and decoded.dtype == tf.uint8
    heat = loaded["gradcam"](images=tf.constant(pixels), layer=tf.constant(2),
                             class_index=tf.constant(classes.astype(np.int32)))["heatmap"].numpy()
    expected = tf.image.resize(probe.grad_cam(images, classes, ["down"])["down"][..., None], (32, 32))[..., 0]
    np.testing.assert_allclose(heat, expected.numpy(), rtol=1e-4, atol=1e-5 * float(np.max(expected)) + 1e-7)

    start = time.perf_counter()
    explorer = Explorer(out)
    seconds["explore start"] = time.perf_counter() - start
    try:
        client = create_app(explorer).test_client()
        assert [layer["name"] for layer in client.get("/api/model").get_json()["layers"]] == ["res_relu", "down"]
        view = client.get("/api/images/test-0").get_json()
        assert len(view["layers"]["down"]["channel_images"]) == 16 and view["layers"]["down"]["decoded_all"]
        answer = client.post("/api/classify", json={"image": "test-0", "layer": "down", "drop": [0, 1]}).get_json()
        mask = np.ones(16, np.float32)
        mask[[0, 1]] = 0.0
        by_hand = tf.nn.softmax(_forward(user, x_test[:1], "down", mask)[0])[0].numpy()
        np.testing.assert_allclose(answer["probabilities"], by_hand, atol=1e-5)
    finally:
        explorer.close()

    assert file_sha256(path) == sha  # the user's file and predictions are unchanged
    np.testing.assert_array_equal(keras.saving.load_model(path).predict_on_batch(probe_images), before)
    assert file_sha256(os.path.join(out, layout.SOURCE_MODEL.name)) == sha
    print("seconds:", {k: round(v, 1) for k, v in seconds.items()})


def test_a_grey_model_with_two_outputs_and_h_not_w_goes_through_every_command(tmp_path, capsys):
    """Grey 24 x 40 images, two outputs (--class-output), a shared layer, inputs in [0, 1] (--input-range): attach,
    analyze, report, export and the explorer all run, and the sanity checks get a probe that works."""
    from attached.attached_models import two_outputs

    from keras_latent.analysis import AnalysisConfig, analyze_run
    from keras_latent.analysis.probe import attached_probe, attached_sanity_probe
    from keras_latent.attach import main as attach_main
    from keras_latent.attached.run import open_any_run
    from keras_latent.explorer.session import Explorer
    from keras_latent.exporting.savedmodel import export_run
    from keras_latent.reporting import build_report

    path, out = str(tmp_path / "grey.keras"), str(tmp_path / "run")
    two_outputs(classes=10).save(path)
    code, printed, err = run_main(attach_main, [path, "--out", out, "--epochs", "1", "--max-train-samples", "64",
                                                "--class-output", "probs", "--input-range", "0,1", "-q"], capsys)
    assert code == 0, err
    run = open_any_run(out)
    assert run.data.splits.x_test.shape[1:] == (24, 40, 1)
    summary = analyze_run(out, AnalysisConfig(feature_steps=4, saliency_samples=2, channels=(0, 1)))
    assert summary["layers"] == run.layers
    assert os.path.isfile(build_report(out))
    signatures = tf.saved_model.load(export_run(out)[0]).signatures
    pixels = tf.constant(run.data.splits.x_test[:2])
    assert signatures["serving_default"](images=pixels)["probabilities"].shape == (2, 10)
    explorer = Explorer(out)
    try:
        assert set(explorer.view("test-1")["layers"]) == set(run.layers)
    finally:
        explorer.close()
    probe = attached_sanity_probe(attached_probe(run))
    x = attached_probe(run).to_input(run.data.splits.x_test[:3])
    layer = run.layers[-1]
    assert probe.encoder(probe.model, layer)(x).shape[0] == 3
    assert probe.class_probabilities(probe.model, x).shape == (3, 10)
    assert probe.grad_cam(probe.model, x, np.zeros(3, np.int32), layer).shape[0] == 3
    assert probe.ablation_model(probe.model, layer).predict_on_batch(
        [x, np.ones((3, 1, probe.encoder(probe.model, layer).output.shape[-1]), np.float32)]).shape == (3, 1, 10)
