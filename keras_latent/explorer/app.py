"""The explorer's web app (Flask): one static page and the JSON API it uses (docs/explore.md).

    GET  /                               the page (static/index.html, explorer.js, explorer.css)
    GET  /api/model                      classes, layers and their channel counts, limits
    GET  /api/images?class=&offset=&limit=   test images (ids, labels, thumbnail URLs)
    POST /api/images                     upload a PNG or JPEG (raw body or multipart field "image") -> its id
    GET  /api/images/<id>                the image's view: original, reconstruction, probabilities, channels
    GET  /api/images/<id>/image.png      the image as the model sees it
    POST /api/decode    {"image", "layer", "mask" | "keep" | "drop"}   the reconstruction with that mask
    POST /api/classify  {"image", "layer", "mask" | "keep" | "drop"}   the class probabilities with that mask

Errors are JSON `{"error": one line}`: 400 bad input, 404 unknown image or route, 413 upload too large.
Requests name images by id; no request names a file.
"""
from __future__ import annotations

import logging
import os
from urllib.parse import urlsplit

from flask import Flask, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from keras_latent.errors import UsageError
from keras_latent.explorer.config import LOCAL_HOSTS, is_local_host
from keras_latent.explorer.session import Explorer, UnknownImage
from keras_latent.explorer.uploads import UploadTooLarge, png_data_url
from keras_latent.explorer.worker import WorkerStopped

log = logging.getLogger("keras_latent")

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
MULTIPART_SLACK = 64 * 1024  # a multipart body's boundaries and headers, on top of the file itself
SECURITY_HEADERS = {
    # the page runs only its own script and style, talks only to this server, and cannot be framed
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise UsageError('expected a JSON object body such as {"image": "test-0", "layer": "conv2", "drop": [3]} '
                         f"with Content-Type: application/json, got {request.content_type or 'no content type'}")
    return body


def _int_arg(name: str, default: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{name} must be an integer, got {text[:40]!r}") from None


def _masked_request(explorer: Explorer):
    """(image id, layer, mask (C,)) of a decode or classify request."""
    body = _json_body()
    layer = body.get("layer")
    mask = explorer.check_mask(layer, body.get("mask"), body.get("keep"), body.get("drop"))
    return body.get("image"), layer, mask


def create_app(explorer: Explorer, host: str = "127.0.0.1") -> Flask:
    """The Flask app serving `explorer` on `host`. Bound to a loopback address, it answers only requests addressed
    to a loopback name (Host header), so a web page elsewhere cannot reach it by DNS rebinding."""
    app = Flask("keras_latent.explorer", static_folder=STATIC_DIR, static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = explorer.config.max_upload_bytes + MULTIPART_SLACK
    app.json.sort_keys = False

    @app.before_request
    def loopback_names_only():
        """Bound to loopback, answer only requests addressed to a loopback name (the Host header)."""
        addressed = urlsplit("//" + request.host).hostname or ""
        if is_local_host(host) and not is_local_host(addressed):
            raise UsageError(f"this explorer only answers requests addressed to {', '.join(LOCAL_HOSTS)} "
                             f"(it listens on {host}), got Host {request.host[:80]!r}")

    @app.get("/")
    def index():
        return send_from_directory(STATIC_DIR, "index.html")

    @app.get("/api/model")
    def model_info():
        return jsonify(explorer.model_info())

    @app.get("/api/images")
    def list_images():
        return jsonify(explorer.list_images(request.args.get("class") or None, _int_arg("offset", 0),
                                            _int_arg("limit", 200)))

    @app.post("/api/images")
    def upload():
        if request.files:
            file = request.files.get("image") or next(iter(request.files.values()))
            data = file.read()
        else:
            data = request.get_data()
        return jsonify(explorer.add_upload(data)), 201

    @app.get("/api/images/<image_id>")
    def view(image_id: str):
        return jsonify(explorer.view(image_id))

    @app.get("/api/images/<image_id>/image.png")
    def image_png(image_id: str):
        response = app.response_class(explorer.image_png(image_id), mimetype="image/png")
        response.headers["Cache-Control"] = "private, max-age=3600"
        return response

    @app.post("/api/decode")
    def decode():
        image_id, layer, mask = _masked_request(explorer)
        if not explorer.has_decoder:
            raise UsageError("this run has no decoder (trained with --no-decoder): nothing to decode; "
                             "POST /api/classify still works")
        reconstruction, _ = explorer.masked(image_id, layer, mask)
        return jsonify({"image": image_id, "layer": layer, "kept": int((mask > 0).sum()), "mask": mask.tolist(),
                        "reconstruction": png_data_url(reconstruction)})

    @app.post("/api/classify")
    def classify():
        image_id, layer, mask = _masked_request(explorer)
        _, probabilities = explorer.masked(image_id, layer, mask)
        predicted = int(probabilities.argmax())
        return jsonify({"image": image_id, "layer": layer, "kept": int((mask > 0).sum()), "mask": mask.tolist(),
                        "classes": list(explorer.class_names), "probabilities": probabilities.tolist(),
                        "predicted": explorer.class_names[predicted]})

    @app.after_request
    def security_headers(response):
        response.headers.update(SECURITY_HEADERS)
        return response

    def error(message: str, status: int):
        return jsonify({"error": message}), status

    @app.errorhandler(UsageError)
    def usage_error(err: UsageError):
        status = 404 if isinstance(err, UnknownImage) else 413 if isinstance(err, UploadTooLarge) else 400
        return error(str(err), status)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(err):
        return error(f"the request body is over {app.config['MAX_CONTENT_LENGTH']:,} bytes; uploads may have at most "
                     f"{explorer.config.max_upload_bytes:,} (--max-upload-mb)", 413)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        return error(f"{err.code} {err.name}: {request.method} {request.path[:200]}"
                     + (f" ({err.description})" if err.code == 400 else ""), err.code)

    @app.errorhandler(WorkerStopped)
    def stopped(err):
        return error("the explorer is shutting down", 503)

    @app.errorhandler(Exception)
    def internal(err: Exception):
        log.error(f"explorer: {request.method} {request.path[:200]} failed", exc_info=err)
        return error(f"internal error ({type(err).__name__}); the explorer keeps running", 500)

    return app
