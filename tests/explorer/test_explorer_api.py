"""The explorer's JSON API through Flask's test client, on a tiny trained run: masks, layers, images, uploads."""
import base64
import io
import json
import threading

import numpy as np
import pytest
from helpers import image_file_bytes
from PIL import Image

from keras_latent.data.pipeline import denormalize, normalize
from keras_latent.data.sources import outside_image, resize_images
from keras_latent.explorer.app import create_app
from keras_latent.explorer.config import ExploreConfig
from keras_latent.explorer.session import Explorer
from keras_latent.runs import layout

MAX_UPLOAD_MB = 0.2


@pytest.fixture(scope="module")
def explorer(trained_run):
    session = Explorer(trained_run, ExploreConfig(max_upload_mb=MAX_UPLOAD_MB))
    yield session
    session.close()


@pytest.fixture(scope="module")
def client(explorer):
    return create_app(explorer).test_client()


def pixels_of(data_url: str) -> np.ndarray:
    """A `data:image/png;base64,...` answer as uint8 (H, W, 3)."""
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB"))


def post(client, path: str, **body):
    return client.post(path, json=body)


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.get_json()
    return response.get_json()["error"]


def test_model_lists_layers_channels_and_classes(client, sample_splits, trained_run):
    info = client.get("/api/model").get_json()
    assert [(layer["name"], layer["channels"]) for layer in info["layers"]] == [("conv1", 6), ("conv2", 16)]
    with open(layout.METRICS.path(trained_run), encoding="utf-8") as f:  # each layer's faithful path
        assert {layer["name"]: layer["decode_path"] for layer in info["layers"]} == \
            json.load(f)["faithfulness"]["decode_paths"]
    assert info["classes"] == list(sample_splits.class_names) and info["has_decoder"] is True
    assert info["test_images"] == len(sample_splits.x_test) and "/" not in info["run"]


def test_images_are_listed_by_class_and_served_as_the_model_sees_them(client, sample_splits):
    cats = client.get("/api/images?class=cat&limit=5").get_json()
    expected = np.flatnonzero(sample_splits.y_test == sample_splits.class_names.index("cat"))
    assert cats["total"] == len(expected) and [im["index"] for im in cats["images"]] == expected[:5].tolist()
    assert {im["label"] for im in cats["images"]} == {"cat"}
    png = client.get(cats["images"][0]["thumbnail"])
    assert png.status_code == 200 and png.mimetype == "image/png"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png.data))), sample_splits.x_test[expected[0]])
    assert "airplane" in error_of(client.get("/api/images?class=unicorn"), 400)
    assert "limit" in error_of(client.get("/api/images?limit=0"), 400)
    assert "integer" in error_of(client.get("/api/images?offset=x"), 400)


def test_an_all_ones_mask_reproduces_the_full_reconstruction_and_probabilities_exactly(client, explorer,
                                                                                     sample_splits):
    view = client.get("/api/images/test-7").get_json()
    decoded = post(client, "/api/decode", image="test-7", layer="conv2", mask=[1] * 16).get_json()
    assert decoded["reconstruction"] == view["reconstruction"]  # the last block's decoder tail is the whole decoder
    for layer, n in (("conv1", 6), ("conv2", 16)):
        classified = post(client, "/api/classify", image="test-7", layer=layer, mask=[1] * n).get_json()
        assert classified["probabilities"] == view["probabilities"]
    # and the view is the trained model's own answer (eager, normalized outside the graph: float round-off apart)
    reference = explorer.model(np.asarray(normalize(sample_splits.x_test[7:8])), training=False)
    np.testing.assert_allclose(pixels_of(view["reconstruction"]),
                               denormalize(np.asarray(reference["reconstruction"]))[0], atol=1)
    np.testing.assert_allclose(view["probabilities"], np.asarray(reference["classifier"])[0], atol=1e-6)


def test_a_mask_changes_the_reconstruction_as_the_view_tiles_show(client):
    view = client.get("/api/images/test-3").get_json()
    conv2 = view["layers"]["conv2"]
    assert len(conv2["channel_images"]) == len(conv2["strength"]) == len(conv2["importance"]) == 16
    kept = post(client, "/api/decode", image="test-3", layer="conv2", keep=[4]).get_json()
    np.testing.assert_array_equal(pixels_of(kept["reconstruction"]), pixels_of(conv2["channel_images"][4]))
    assert kept["kept"] == 1 and kept["mask"] == [1.0 if c == 4 else 0.0 for c in range(16)]
    dropped = post(client, "/api/decode", image="test-3", layer="conv2", drop=[4]).get_json()
    assert not np.array_equal(pixels_of(dropped["reconstruction"]), pixels_of(view["reconstruction"]))
    by_mask = post(client, "/api/decode", image="test-3", layer="conv2", mask=dropped["mask"]).get_json()
    assert by_mask["reconstruction"] == dropped["reconstruction"]
    probs = post(client, "/api/classify", image="test-3", layer="conv2", drop=[4]).get_json()
    predicted = probs["classes"].index(view["predicted"])  # the tile's Δ is this image's ablation of channel 4:
    assert probs["probabilities"][predicted] == pytest.approx(
        view["probabilities"][predicted] - conv2["importance"][4], abs=1e-5)


@pytest.mark.parametrize("body, words", [
    (dict(mask=[1] * 15), ["16 numbers", "a list of 15"]),
    (dict(mask=[1] * 17), ["16 numbers", "a list of 17"]),
    (dict(mask="all"), ["16 numbers", "a JSON str"]),
    (dict(mask=[1] * 15 + [2]), ["between 0 and 1", "[2]"]),
    (dict(keep=[16]), ["out of range", "16 channels"]),
    (dict(keep=[1], drop=[2]), ["exactly one", "keep, drop"]),
    (dict(), ["exactly one", "none"]),
])
def test_bad_masks_are_one_line_400s(client, body, words):
    for path in ("/api/decode", "/api/classify"):
        message = error_of(post(client, path, image="test-0", layer="conv2", **body), 400)
        assert all(w in message for w in words), message


def test_unknown_layers_images_and_routes_are_named(client):
    message = error_of(post(client, "/api/decode", image="test-0", layer="conv9", mask=[1] * 16), 400)
    assert "'conv9'" in message and "conv1, conv2" in message
    assert "test-0 .. test-1016" in error_of(post(client, "/api/classify", image="test-99999", layer="conv1",
                                                   mask=[1] * 6), 404)
    assert "test-0 .. test-1016" in error_of(client.get("/api/images/model.keras"), 404)  # ids, never files
    assert error_of(client.get("/api/images/..%2F..%2Fetc%2Fpasswd/image.png"), 404)
    assert "application/json" in error_of(client.post("/api/decode", data="image=test-0"), 400)
    assert "404" in error_of(client.get("/api/nothing"), 404)


def test_uploads_are_checked_resized_as_in_training_and_classified(client, explorer):
    picture = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    for data in (image_file_bytes(picture), image_file_bytes(picture, "JPEG")):
        raw = client.post("/api/images", data=data, content_type="application/octet-stream")
        form = client.post("/api/images", data={"image": (io.BytesIO(data), "photo.bin")})
        assert raw.status_code == form.status_code == 201 and raw.get_json() == form.get_json()
        upload_id = raw.get_json()["id"]
        shown = np.asarray(Image.open(io.BytesIO(client.get(f"/api/images/{upload_id}/image.png").data)))
        np.testing.assert_array_equal(shown, outside_image(data, 32, "sample"))  # read as training read the sample
        view = client.get(f"/api/images/{upload_id}").get_json()
        assert view["source"] == "upload" and view["label"] is None
        assert sum(view["probabilities"]) == pytest.approx(1, abs=1e-4)
        if data.startswith(b"\x89PNG"):
            np.testing.assert_array_equal(shown, resize_images(picture[None], 32)[0])  # lossless: the pixels sent


def test_bad_uploads_are_refused_with_a_message_and_the_app_keeps_serving(client):
    png = image_file_bytes(np.zeros((40, 40, 3), np.uint8))
    cases = [
        (b"#!/bin/sh\nrm -rf /\n", 400, "not a PNG or JPEG"),
        (b"", 400, "empty"),
        (png[: len(png) // 2], 400, "damaged"),
        (image_file_bytes(np.zeros((8, 8, 3), np.uint8), "GIF"), 400, "not a PNG or JPEG"),
        (b"\x89PNG" + bytes(int(MAX_UPLOAD_MB * 1e6)), 413, "at most"),
    ]
    for data, status, words in cases:
        assert words in error_of(client.post("/api/images", data=data), status)
    sliver = image_file_bytes(np.zeros((2, 3000, 3), np.uint8))  # any shape within the limits is fine
    assert client.post("/api/images", data=sliver).status_code == 201
    assert client.get("/api/model").status_code == 200


def test_pixel_limit_is_checked_before_decoding(trained_run):
    session = Explorer(trained_run, ExploreConfig(max_upload_pixels=1000))
    try:
        big = image_file_bytes(np.zeros((40, 40, 3), np.uint8))
        message = error_of(create_app(session).test_client().post("/api/images", data=big), 413)
        assert "40x40 = 1,600 pixels" in message and "1,000" in message
    finally:
        session.close()


def test_concurrent_requests_get_their_own_answers(client):
    """Requests from many threads at once (batched together by the model thread) answer as one at a time."""
    jobs = [(f"test-{i}", "conv2", [c % 2 for c in range(16)] if i % 2 else [1] * 16) for i in range(12)]
    alone = [post(client, "/api/classify", image=im, layer=layer, mask=mask).get_json()["probabilities"]
             for im, layer, mask in jobs]
    together = [None] * len(jobs)

    def ask(j):
        im, layer, mask = jobs[j]
        together[j] = post(client, "/api/classify", image=im, layer=layer, mask=mask).get_json()["probabilities"]

    threads = [threading.Thread(target=ask, args=(j,)) for j in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    np.testing.assert_allclose(together, alone, atol=1e-6)
    assert len({tuple(np.round(p, 6)) for p in alone}) == len(jobs)  # every image and mask answered differently


def test_identical_jobs_in_one_batch_are_computed_once(explorer, monkeypatch):
    """A click sends decode and classify with the same image and mask: the model thread runs that row once."""
    sizes, compute = [], explorer._compute
    monkeypatch.setattr(explorer, "_compute", lambda key, items: sizes.append(len(items)) or compute(key, items))
    ones, one_off = np.ones((1, 16), np.float32), np.eye(16, dtype=np.float32)[:1]
    jobs = [(explorer.test_images[0], ones), (explorer.test_images[0], one_off), (explorer.test_images[0], ones)]
    answers = explorer._run_group(("layer", "conv2", 1), jobs)
    assert sizes == [2] and len(answers) == 3
    np.testing.assert_array_equal(answers[0][1], answers[2][1])
    assert not np.array_equal(answers[0][1], answers[1][1])


def test_responses_carry_security_headers_and_refuse_foreign_hosts(client, explorer):
    page = client.get("/")
    assert page.status_code == 200 and b"explorer.js" in page.data
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/static/explorer.js").status_code == 200
    assert "'attacker.example'" in error_of(client.get("/api/model", headers={"Host": "attacker.example"}), 400)
    for name in ("127.0.0.1:8765", "localhost", "[::1]:8765"):
        assert client.get("/api/model", headers={"Host": name}).status_code == 200
    on_the_network = create_app(explorer, host="0.0.0.0").test_client()  # --host 0.0.0.0: reached by other names
    assert on_the_network.get("/api/model", headers={"Host": "192.168.1.5:8765"}).status_code == 200


def test_a_classifier_only_run_classifies_but_does_not_decode(classifier_only_run):
    session = Explorer(classifier_only_run)
    try:
        client = create_app(session).test_client()
        view = client.get("/api/images/test-0").get_json()
        assert view["reconstruction"] is None and view["layers"]["conv2"]["channel_images"] == [None] * 16
        assert "no decoder" in error_of(post(client, "/api/decode", image="test-0", layer="conv2", drop=[1]), 400)
        classified = post(client, "/api/classify", image="test-0", layer="conv2", drop=[1])
        assert classified.status_code == 200 and len(classified.get_json()["probabilities"]) == 10
    finally:
        session.close()
