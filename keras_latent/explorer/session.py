"""The model side of the explorer: a run's model, its test images and uploads, and the masked model calls.

For each trunk layer one Keras model, built from `keras_latent.analysis.latent`'s pieces and traced once:

    layer_view_model(model, "conv2", decode_path)
        [images (B, S, S, 3), masks (B, K, C)]
          -> reconstructions (B, K, S, S, 3)   the layer's activations decoded with each mask row
             probabilities   (B, K, classes)   the classifier with the layer's channels multiplied by each row
             strength        (B, C)            each channel's mean activation over positions

A click in the page is one image with one mask row (K = 1); choosing an image is one call per layer with
K = 1 + 2C rows (all channels, each channel alone, each channel zeroed). Every call goes through one
BatchingWorker thread, which also batches the calls of concurrent requests.

Images are named by id, never by path: `test-<index>` for the run's test split, `upload-<hash>` for an upload.
"""
from __future__ import annotations

import collections
import hashlib
import logging
import os
import re
import threading

import keras
import numpy as np
import tensorflow as tf

from keras_latent.analysis import latent
from keras_latent.attached.run import open_any_run
from keras_latent.data.pipeline import denormalize, normalize
from keras_latent.errors import UsageError
from keras_latent.explorer.config import ExploreConfig
from keras_latent.explorer.uploads import png_bytes, png_data_url, read_upload
from keras_latent.explorer.worker import BatchingWorker
from keras_latent.model.builders import has_decoder
from keras_latent.runs import layout
from keras_latent.runs.run import Run

log = logging.getLogger("keras_latent")

MAX_UPLOADS = 256  # uploads kept (least recently used dropped first)
MAX_CACHED_VIEWS = 64  # image views kept (least recently used dropped first)
MAX_LIST = 1000  # images per page of GET /api/images
_IMAGE_ID = re.compile(r"(test)-(\d{1,9})|(upload)-([0-9a-f]{16})")


class UnknownImage(UsageError):
    """An image id that names no test image and no kept upload (HTTP 404)."""


def layer_view_model(model: keras.Model, layer: str, decode_path: str = "tail") -> keras.Model:
    """[images (B, S, S, 3), masks (B, K, C)] -> [reconstructions (B, K, S, S, 3) decoded along `decode_path`
    (only with a decoder), probabilities (B, K, classes), strength (B, C)], all sharing the trained weights."""
    images = keras.Input(tuple(model.inputs[0].shape[1:]), name="image")
    masks = keras.Input((None, latent.num_channels(model, layer)), name="channel_masks")
    activations = latent.encoder(model, layer)(images)
    outputs = [latent.ablation_model(model, layer)([images, masks]),
               keras.layers.GlobalAveragePooling2D(name="strength")(activations)]
    if has_decoder(model):
        outputs.insert(0, latent.masked_decoder(model, layer, decode_path)([activations, masks]))
    return keras.Model([images, masks], outputs, name=f"view_{layer}")


def attached_view_model(probe, layer: str) -> keras.Model:
    """`layer_view_model` of an attached run (analysis.probe.AttachedProbe): [images (B, H, W, C) in the model's
    input range, masks (B, K, c)] -> [reconstructions (B, K, H, W, C) in the input range, through the layer's own
    decoder; probabilities (B, K, classes): the channels x each mask row wherever the user's graph uses the layer,
    then its own head (softmax of logits where it outputs logits); strength (B, c)]."""
    images = keras.Input(probe.image_shape, name="image")
    masks = keras.Input((None, probe.num_channels(layer)), name="channel_masks")
    activations = probe.encoder(layer)(images)
    scores = probe.ablation_model(layer)([images, masks])
    if probe.graph.output_kind == "logits":
        scores = keras.layers.Softmax(name="probabilities")(scores)
    return keras.Model([images, masks], [probe.masked_decoder(layer)([activations, masks]), scores,
                                         keras.layers.GlobalAveragePooling2D(name="strength")(activations)],
                       name=f"view_{layer.replace('/', '_')}")


def _traced(model: keras.Model, specs: list[tf.TensorSpec], to_input=normalize):
    """`model` on uint8 images (converted in the graph by `to_input`: normalized, as in training, or an attached
    model's input range) and any further inputs, as a tf.function traced once for `specs` (any batch size and mask
    count), in inference mode."""

    def call(pixels, *rest):
        return model([to_input(pixels), *rest] if rest else to_input(pixels), training=False)

    return tf.function(call, input_signature=specs)


class _LRU:
    """A small thread-safe dict that forgets its least recently used entries beyond `size`."""

    def __init__(self, size: int):
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._size, self._lock = size, threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
            return self._items.get(key)

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class Explorer:
    """A run's model and images behind the explorer's JSON API; safe to call from many threads."""

    def __init__(self, run_dir: str, config: ExploreConfig = ExploreConfig(), max_batch: int = 64):
        run = open_any_run(run_dir, config.dataset)
        self.dataset = run.config.data.dataset  # what training resized (not a --dataset override)
        self._to_uint8, self.kind = denormalize, run.kind
        if run.kind == "attached":
            self._open_attached(run, config, max_batch)
            return
        model, splits = run.model, run.data.splits
        self.run_name = os.path.basename(os.path.normpath(run_dir))
        self.config, self.model, self.class_names = config, model, run.data.class_names
        self.description = splits.description
        self.image_size = run.data.config.model.image_size
        self.test_images, self.test_labels = splits.x_test, np.asarray(splits.y_test)  # (N, S, S, 3) uint8, (N,)
        self.has_decoder = has_decoder(model)
        self.full_reconstruction = self.has_decoder
        self.image_shape = (self.image_size, self.image_size, 3)
        self.layers = run.layers
        self.channels = {layer: latent.num_channels(model, layer) for layer in self.layers}
        self.decode_paths = run.decode_paths  # each layer's faithful path, as measured at training
        self.ranking = self._analysis_ranking(run)
        self._uploads, self._views = _LRU(MAX_UPLOADS), _LRU(MAX_CACHED_VIEWS)
        image_spec = tf.TensorSpec((None, self.image_size, self.image_size, 3), tf.uint8)
        self._full = _traced(model, [image_spec])
        self._views_by_layer = {
            layer: _traced(layer_view_model(model, layer, self.decode_paths[layer]),
                           [image_spec, tf.TensorSpec((None, None, self.channels[layer]), tf.float32)])
            for layer in self.layers}
        self._worker = BatchingWorker(self._run_group, max_batch=max_batch)
        self._warm_up()

    def _open_attached(self, run: Run, config: ExploreConfig, max_batch: int) -> None:
        """The same explorer on an attached run: per chosen layer, its own decoder and the user's own head
        (`attached_view_model`); no whole-image reconstruction (the page shows each layer's)."""
        from keras_latent.analysis.probe import attached_probe
        from keras_latent.attached.graph import CLASS_OUTPUT

        probe = attached_probe(run)
        splits = run.data.splits
        self.run_name = os.path.basename(os.path.normpath(run.folder))
        self.config, self.model, self.class_names = config, None, run.data.class_names
        self.description = splits.description
        self.image_shape = probe.image_shape
        self.image_size = probe.image_shape[0]
        self.test_images, self.test_labels = splits.x_test, np.asarray(splits.y_test)
        self.has_decoder, self.full_reconstruction = True, False
        self.layers = list(probe.layers)
        self.channels = {layer: probe.num_channels(layer) for layer in self.layers}
        self.decode_paths = dict.fromkeys(self.layers, "tail")
        self.ranking = self._analysis_ranking(run)
        self._uploads, self._views = _LRU(MAX_UPLOADS), _LRU(MAX_CACHED_VIEWS)
        self._to_uint8, self._probe = probe.to_uint8, probe
        lo, hi = probe.spec.input_range

        def to_input(pixels):
            return lo + (hi - lo) * tf.cast(pixels, tf.float32) / 255.0

        image_spec = tf.TensorSpec((None, *self.image_shape), tf.uint8)
        classify, logits = probe.graph.score_model(), probe.graph.output_kind == "logits"

        def full(pixels):
            p = tf.cast(classify(to_input(pixels), training=False)[CLASS_OUTPUT], tf.float32)
            return {"classifier": tf.nn.softmax(p, axis=-1) if logits else p}

        self._full = tf.function(full, input_signature=[image_spec])
        self._views_by_layer = {
            layer: _traced(attached_view_model(probe, layer),
                           [image_spec, tf.TensorSpec((None, None, self.channels[layer]), tf.float32)], to_input)
            for layer in self.layers}
        self._worker = BatchingWorker(self._run_group, max_batch=max_batch)
        self._warm_up()

    def close(self) -> None:
        self._worker.close()

    # ------------------------------------------------------------ model calls (on the worker thread)

    def _run_group(self, key: tuple, items: list) -> list:
        """One compiled call for every queued job of the same kind, ("full",) or ("layer", name, K); identical
        jobs (a click's decode and classify ask the same) are computed once."""
        contents = [b"".join(part.tobytes() for part in item) for item in items]
        first = {content: i for i, content in reversed(list(enumerate(contents)))}  # content -> its first job
        distinct = sorted(set(first.values()))
        results = dict(zip(distinct, self._compute(key, [items[i] for i in distinct])))
        return [results[first[content]] for content in contents]

    def _compute(self, key: tuple, items: list) -> list:
        if key[0] == "full":
            out = self._full(np.stack([image for image, in items]))
            recon = (np.asarray(out["reconstruction"]) if self.has_decoder and self.full_reconstruction
                     else [None] * len(items))
            return list(zip(recon, np.asarray(out["classifier"])))
        images, masks = (np.stack(parts) for parts in zip(*items))
        out = [np.asarray(x) for x in self._views_by_layer[key[1]](images, masks)]
        if not self.has_decoder:
            out.insert(0, [None] * len(items))
        return list(zip(*out))

    def _warm_up(self) -> None:
        """Trace every compiled function now, so the first click is as fast as the rest."""
        image = np.zeros(self.image_shape, np.uint8)
        self._worker.submit(("full",), (image,))
        for layer, n in self.channels.items():
            self._worker.submit(("layer", layer, 1), (image, np.ones((1, n), np.float32)))

    def _full_view(self, image: np.ndarray):
        """uint8 image (S, S, 3) -> (reconstruction (S, S, 3) in [-1, 1] or None, probabilities (classes,)) of the
        intact model."""
        return self._worker.submit(("full",), (image,))

    def _masked(self, image: np.ndarray, layer: str, masks: np.ndarray):
        """uint8 image (S, S, 3), masks (K, C) -> (reconstructions (K, S, S, 3) in [-1, 1] or None,
        probabilities (K, classes), strength (C,))."""
        return self._worker.submit(("layer", layer, len(masks)), (image, masks))

    # ------------------------------------------------------------ images

    def _analysis_ranking(self, run: Run) -> dict:
        """{layer: channels by test accuracy lost when zeroed} from analysis.json, when the run was analysed."""
        try:
            summary = run.analysis or {}
            return {layer: [int(r["channel"]) for r in ranked]
                    for layer, ranked in summary.get("top_channels", {}).items() if layer in self.channels}
        except (UsageError, TypeError, KeyError, ValueError, AttributeError):
            log.warning(f"{layout.ANALYSIS_SUMMARY.name} of {self.run_name} is unreadable; no test-set ranking shown")
            return {}

    def _image(self, image_id: str) -> dict:
        """{"id", "source", "index", "label", "pixels" (S, S, 3) uint8} of an image id."""
        found = _IMAGE_ID.fullmatch(str(image_id))
        if found and found.group(1):
            index = int(found.group(2))
            if index < len(self.test_images):
                label = int(self.test_labels[index])
                return {"id": image_id, "source": "test", "index": index, "label": self.class_names[label],
                        "pixels": self.test_images[index]}
        elif found:
            upload = self._uploads.get(image_id)
            if upload is not None:
                return upload
        raise UnknownImage(f"unknown image {str(image_id)[:80]!r}: test images are test-0 .. "
                           f"test-{len(self.test_images) - 1}; uploads are named by POST /api/images "
                           f"(the last {MAX_UPLOADS} are kept)")

    def list_images(self, class_name: str | None = None, offset: int = 0, limit: int = 200) -> dict:
        """Test images (ids, labels), optionally of one class, `limit` from `offset` on."""
        if not 1 <= limit <= MAX_LIST or offset < 0:
            raise UsageError(f"limit must be between 1 and {MAX_LIST} and offset >= 0, got limit {limit} and "
                             f"offset {offset}")
        if class_name:
            if class_name not in self.class_names:
                raise UsageError(f"unknown class {class_name[:80]!r}; classes: {', '.join(self.class_names)}")
            indices = np.flatnonzero(self.test_labels == self.class_names.index(class_name))
        else:
            indices = np.arange(len(self.test_labels))
        return {"total": len(indices), "offset": offset, "class": class_name or None,
                "images": [{"id": f"test-{i}", "index": int(i), "label": self.class_names[int(self.test_labels[i])],
                            "thumbnail": f"/api/images/test-{i}/image.png"} for i in indices[offset:offset + limit]]}

    def image_png(self, image_id: str) -> bytes:
        """The image as the model sees it (S x S), as a PNG file."""
        return png_bytes(self._image(image_id)["pixels"])

    def add_upload(self, data: bytes) -> dict:
        """Check, decode and resize an uploaded PNG or JPEG; keep it; returns its id and what was read."""
        pixels = read_upload(data, self.image_size, self.dataset, self.config.max_upload_bytes,
                             self.config.max_upload_pixels)
        if self.kind == "attached":  # the attached model's size (H x W) and channels
            from keras_latent.attached.reading import prepare_images

            pixels = prepare_images(pixels[None], self._probe.spec)[0]
        image_id = "upload-" + hashlib.sha256(pixels.tobytes()).hexdigest()[:16]  # same picture, same id
        self._uploads.put(image_id, {"id": image_id, "source": "upload", "index": None, "label": None,
                                     "pixels": pixels})
        return {"id": image_id, "thumbnail": f"/api/images/{image_id}/image.png"}

    # ------------------------------------------------------------ what the page shows

    def model_info(self) -> dict:
        return {"run": self.run_name, "dataset": self.description, "classes": list(self.class_names),
                "image_size": self.image_size, "has_decoder": self.has_decoder,
                "test_images": len(self.test_images), "max_upload_bytes": self.config.max_upload_bytes,
                "layers": [{"name": layer, "channels": self.channels[layer], "decode_path": self.decode_paths[layer],
                            "test_ranking": self.ranking.get(layer)} for layer in self.layers]}

    def view(self, image_id: str) -> dict:
        """Everything the page shows for one image: the original, the full reconstruction, the class
        probabilities, and for each layer its channels decoded alone, their strength, and the drop in the
        predicted class's probability when each is zeroed (this image's ablation)."""
        cached = self._views.get(image_id)
        if cached is not None:
            return cached
        record = self._image(image_id)
        x = record["pixels"]  # (S, S, 3) uint8
        recon, probs = self._full_view(x)
        predicted = int(np.argmax(probs))
        view = {"id": image_id, "source": record["source"], "index": record["index"], "label": record["label"],
                "original": png_data_url(record["pixels"]), "predicted": self.class_names[predicted],
                "reconstruction": self._data_url(recon), "probabilities": probs.tolist(), "layers": {}}
        for layer, n in self.channels.items():
            rows = [latent.intact_and_channel_masks(n, mode="keep"), latent.channel_masks(n, mode="drop")]
            layer_recon, layer_probs, strength = self._masked(x, layer, np.concatenate(rows))  # all, alone, zeroed
            dropped = layer_probs[1 + n:]  # (C, classes)
            alone = [None] * n if layer_recon is None else layer_recon[1:1 + n]
            view["layers"][layer] = {
                "channels": n, "strength": strength.tolist(),
                "decoded_all": None if layer_recon is None else self._data_url(layer_recon[0]),
                "channel_images": [self._data_url(r) for r in alone],
                "importance": (probs[predicted] - dropped[:, predicted]).tolist(),
                "flips_to": [None if np.argmax(p) == predicted else self.class_names[int(np.argmax(p))]
                             for p in dropped]}
        self._views.put(image_id, view)
        return view

    def check_mask(self, layer: str, mask=None, keep=None, drop=None) -> np.ndarray:
        """The mask (C,) float32 of exactly one of: `mask` (C numbers in [0, 1]), `keep` or `drop` (channel lists)."""
        if not isinstance(layer, str) or layer not in self.channels:
            if self.model is None:
                raise UsageError(f"unknown layer {str(layer)[:80]!r}; the layers are {', '.join(self.layers)}")
            latent.layer_index(self.model, str(layer)[:80])  # UsageError naming the trunk layers
        n = self.channels[layer]
        given = [name for name, value in (("mask", mask), ("keep", keep), ("drop", drop)) if value is not None]
        if len(given) != 1:
            raise UsageError(f"give exactly one of mask (a list of {n} numbers), keep or drop (lists of channels), "
                             f"got {', '.join(given) or 'none'}")
        if mask is not None:
            if not isinstance(mask, list) or len(mask) != n:
                got = f"a list of {len(mask)}" if isinstance(mask, list) else f"a JSON {type(mask).__name__}"
                raise UsageError(f"mask for {layer} must be a list of {n} numbers, one per channel (1 keeps, "
                                 f"0 zeroes), got {got}")
            bad = [v for v in mask if not (isinstance(v, int | float) and 0 <= v <= 1)]
            if bad:
                raise UsageError(f"mask values must be numbers between 0 and 1, got {str(bad[:3])[:80]}")
            return np.asarray(mask, np.float32)
        channels = keep if keep is not None else drop
        if not isinstance(channels, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in channels):
            raise UsageError(f"keep and drop must be lists of channel numbers (0..{n - 1}), got {str(channels)[:80]}")
        chosen = np.zeros(n, np.float32)
        if channels:
            chosen[latent.check_channels(n, channels, layer)] = 1.0
        return chosen if keep is not None else 1.0 - chosen

    def masked(self, image_id: str, layer: str, mask: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """(reconstruction uint8 (S, S, 3) or None, probabilities (classes,)) with `layer`'s channels x mask (C,)."""
        x = self._image(image_id)["pixels"]
        recon, probs, _ = self._masked(x, layer, np.asarray(mask, np.float32)[None])
        return (None if recon is None else self._to_uint8(recon[0])), probs[0]

    def _data_url(self, decoded: np.ndarray | None) -> str | None:
        return None if decoded is None else png_data_url(self._to_uint8(decoded))
