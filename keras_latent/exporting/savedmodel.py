"""TF SavedModel (and TFLite) export that other TensorFlow tools can use without this package.

`export_run` (what `python -m keras_latent.export RUN_FOLDER [--tflite]` runs) re-exports a finished
run; training exports at its end with `export_saved_model`. The SavedModel, written with
`keras.export.ExportArchive`, has five signatures; every one takes uint8 images `images`
(N, S, S, 3) and normalizes them inside, exactly as training did:

  serving_default(images) -> probabilities float32 (N, C), class_index int64 (N,),
                             class_name string (N,), reconstruction uint8 (N, S, S, 3)
  encode(images)          -> conv1 float32 (N, h1, w1, c1), ..., convK (one output per trunk block)
  decode_masked(images, layer int32 (), channel_mask float32 (M, c_layer))
                          -> reconstruction uint8 (N, S, S, 3),
                             reconstruction_normalized float32 (N, S, S, 3) in [-1, 1],
                             decode_path string (): the path that drew it
  decode_masked_path(images, layer, channel_mask, decode_path string ())  -> the same, along decode_path
  gradcam(images, layer int32 (), class_index int32 (N,))
                          -> heatmap float32 (N, S, S) >= 0, class_index int64 (N,), probabilities (N, C)

The masked signatures run the trunk up to block `layer` (1-based: conv{layer}), multiply its
activations by `channel_mask` (M = 1: one mask for every image; M = N: one mask per image; 0 drops
a channel, 1 keeps it) and decode them along a path (keras_latent.training.faithfulness): `tail`
through deconv{layer} .. deconv1, or `propagate` through the rest of the trunk and the whole
decoder. decode_masked takes each layer's faithful default, measured on the test split when the
run was trained (metrics.json's faithfulness.decode_paths); decode_masked_path takes the caller's.
All blocks live in one signature (a `tf.switch_case`); a bad layer, path or mask width fails with
a message naming the allowed values. gradcam is Grad-CAM (Selvaraju et al., 2017) at block `layer`
for class class_index[i] of image i (a negative index: the predicted class): ReLU of the block's
channels weighted by the mean gradient of the class's logit, resized bilinearly to the image, as
`keras_latent.analysis.attribution.grad_cam` + `upsample` compute it. A model without a decoder
exports serving_default (no reconstruction), encode and gradcam. `model.tflite` holds
serving_default, converted by TensorFlow.
"""
from __future__ import annotations

import logging
import os

import keras
import tensorflow as tf

from keras_latent.attached.run import open_any_run
from keras_latent.config import DECODE_PATHS, TrainConfig
from keras_latent.data.pipeline import normalize
from keras_latent.files import atomic_directory, atomic_write_bytes
from keras_latent.model.builders import (
    classifier_logits,
    decoder_tail,
    default_decode_paths,
    has_decoder,
    trunk_block_names,
    trunk_blocks,
)
from keras_latent.runs import layout

SIGNATURES = ("serving_default", "encode", "decode_masked", "decode_masked_path", "gradcam")


def _to_uint8(images):
    """float in [-1, 1] -> uint8, rounding half to even exactly as `pipeline.denormalize`."""
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def _image_spec(model: keras.Model) -> tf.TensorSpec:
    return tf.TensorSpec((None, *model.input_shape[1:]), tf.uint8, name="images")


def _run_trunk(blocks: list, images, depth: int):
    """uint8 images -> activations of trunk block `depth` (1-based), (N, h, w, c) in compute dtype."""
    x = normalize(images)
    for block in blocks[:depth]:
        x = block(x, training=False)
    return x


def _serving_fn(model: keras.Model, class_names: tuple[str, ...]):
    with_reconstruction = has_decoder(model)
    served = ["classifier"] + (["reconstruction"] if with_reconstruction else [])
    model = keras.Model(model.inputs, {name: model.output[name] for name in served})  # no layer decodes

    def serving_default(images):
        outputs = model(normalize(images), training=False)
        probabilities = tf.cast(outputs["classifier"], tf.float32)  # (N, C)
        class_index = tf.argmax(probabilities, axis=-1, output_type=tf.int64)  # (N,)
        result = {"probabilities": probabilities, "class_index": class_index,
                  "class_name": tf.gather(tf.constant(list(class_names)), class_index)}
        if with_reconstruction:
            result["reconstruction"] = _to_uint8(tf.cast(outputs["reconstruction"], tf.float32))
        return result

    return serving_default


def _encode_fn(blocks: list, names: list[str]):
    def encode(images):
        x, result = normalize(images), {}
        for name, block in zip(names, blocks):
            x = block(x, training=False)
            result[name] = tf.cast(x, tf.float32)
        return result

    return encode


def _masked_branch(blocks: list, decode, depth: int, images, channel_mask):
    """One switch_case branch: trunk to block `depth`, mask its channels, `decode` them. (N, S, S, 3) float32."""
    channels = int(blocks[depth - 1].output.shape[-1])
    rows, batch = tf.shape(channel_mask)[0], tf.shape(images)[0]
    checks = [
        tf.debugging.assert_equal(tf.shape(channel_mask)[1], channels, message=(
            f"channel_mask for layer {depth} (conv{depth}) must have {channels} columns, one per channel")),
        tf.debugging.Assert(tf.logical_or(tf.equal(rows, 1), tf.equal(rows, batch)), [
            "channel_mask must have 1 row (one mask for all images) or one row per image; rows, images:",
            rows, batch]),
    ]
    with tf.control_dependencies(checks):
        activations = _run_trunk(blocks, images, depth)
    mask = tf.cast(channel_mask, activations.dtype)[:, tf.newaxis, tf.newaxis, :]  # (M, 1, 1, c)
    return tf.cast(decode(activations * mask), tf.float32)


def _path_decoders(model: keras.Model, blocks: list) -> dict[tuple[int, str], object]:
    """{(depth, path): masked conv{depth} activations -> image} for every block and DECODE_PATHS."""
    tails = [decoder_tail(model, k) for k in range(1, len(blocks) + 1)]

    def tail(depth):
        return lambda x: tails[depth - 1](x, training=False)

    def propagate(depth):
        def decode(x):
            for block in blocks[depth:]:
                x = block(x, training=False)
            return tails[-1](x, training=False)
        return decode

    return {(k, path): (tail if path == "tail" else propagate)(k)
            for k in range(1, len(blocks) + 1) for path in DECODE_PATHS}


def _checked_layer_index(layer, n_blocks: int):
    """layer - 1, after asserting 1 <= layer <= n_blocks (the error names the allowed values)."""
    allowed = f"1..{n_blocks} (conv1..conv{n_blocks})"
    in_range = tf.logical_and(layer >= 1, layer <= n_blocks)
    with tf.control_dependencies([tf.debugging.Assert(in_range, [f"layer must be {allowed}, got", layer])]):
        return tf.identity(layer - 1)


def _decoded(reconstruction, path) -> dict:
    return {"reconstruction": _to_uint8(reconstruction), "reconstruction_normalized": reconstruction,
            "decode_path": path}


def _decode_masked_fn(model: keras.Model, blocks: list, decode_paths: dict[str, str]):
    """decode_masked: every layer along its default path (`decode_paths`, measured at training)."""
    decoders = _path_decoders(model, blocks)
    chosen = [decode_paths[f"conv{k}"] for k in range(1, len(blocks) + 1)]

    def decode_masked(images, layer, channel_mask):
        index = _checked_layer_index(layer, len(blocks))
        branches = [lambda k=k: _masked_branch(blocks, decoders[k, chosen[k - 1]], k, images, channel_mask)
                    for k in range(1, len(blocks) + 1)]
        return _decoded(tf.switch_case(index, branches), tf.gather(tf.constant(chosen), index))

    return decode_masked


def _decode_masked_path_fn(model: keras.Model, blocks: list):
    """decode_masked_path: like decode_masked, along the path named by `decode_path` (tail | propagate)."""
    decoders = _path_decoders(model, blocks)
    n_paths = len(DECODE_PATHS)

    def decode_masked_path(images, layer, channel_mask, decode_path):
        index = _checked_layer_index(layer, len(blocks))
        matches = tf.equal(tf.constant(DECODE_PATHS), decode_path)
        known = tf.debugging.Assert(tf.reduce_any(matches), [
            f"decode_path must be one of {', '.join(DECODE_PATHS)}, got", decode_path])
        with tf.control_dependencies([known]):
            path_index = tf.cast(tf.argmax(tf.cast(matches, tf.int32)), tf.int32)
        branches = [lambda k=k, p=p: _masked_branch(blocks, decoders[k, p], k, images, channel_mask)
                    for k in range(1, len(blocks) + 1) for p in DECODE_PATHS]
        return _decoded(tf.switch_case(index * n_paths + path_index, branches), decode_path)

    return decode_masked_path


def _gradcam_branch(model: keras.Model, blocks: list, depth: int, x, classes):
    """One switch_case branch: Grad-CAM at block `depth` for `classes` (N,), resized to the image: (N, S, S)."""
    with tf.GradientTape() as tape:
        h = x
        for k, block in enumerate(blocks, start=1):
            h = block(h, training=False)
            if k == depth:
                tape.watch(h)
                activations = h
        scores = tf.gather(tf.cast(classifier_logits(model, h), tf.float32), classes, batch_dims=1)
    weights = tf.reduce_mean(tf.cast(tape.gradient(scores, activations), tf.float32), axis=(1, 2), keepdims=True)
    heatmap = tf.nn.relu(tf.reduce_sum(tf.cast(activations, tf.float32) * weights, axis=-1))  # (N, h, w)
    return tf.image.resize(heatmap[..., tf.newaxis], tf.shape(x)[1:3], method="bilinear")[..., 0]


def _gradcam_fn(model: keras.Model, blocks: list):
    allowed = f"1..{len(blocks)} (conv1..conv{len(blocks)})"
    n_classes = int(model.output["classifier"].shape[-1])

    def gradcam(images, layer, class_index):
        x = normalize(images)
        probabilities = tf.cast(model(x, training=False)["classifier"], tf.float32)
        checks = [
            tf.debugging.Assert(tf.logical_and(layer >= 1, layer <= len(blocks)), [f"layer must be {allowed}, got",
                                                                                    layer]),
            tf.debugging.assert_equal(tf.shape(class_index)[0], tf.shape(images)[0], message=(
                "class_index must have one entry per image (negative: the predicted class)")),
            tf.debugging.Assert(tf.reduce_all(class_index < n_classes), [
                f"class_index must be below {n_classes} (the number of classes), got", class_index]),
        ]
        with tf.control_dependencies(checks):
            predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            classes = tf.where(class_index < 0, predicted, class_index)
            index = tf.identity(layer - 1)
        branches = [lambda k=k: _gradcam_branch(model, blocks, k, x, classes) for k in range(1, len(blocks) + 1)]
        return {"heatmap": tf.switch_case(index, branches), "class_index": tf.cast(classes, tf.int64),
                "probabilities": probabilities}

    return gradcam


def build_export_archive(model: keras.Model, class_names: tuple[str, ...],
                         decode_paths: dict[str, str] | None = None) -> keras.export.ExportArchive:
    """An ExportArchive holding serving_default, encode, gradcam and (with a decoder) decode_masked and
    decode_masked_path; `decode_paths` ({layer: path}) is decode_masked's choice per layer
    (None: `default_decode_paths`)."""
    names = trunk_block_names(model)
    blocks = trunk_blocks(model)
    class_names = tuple(class_names) or tuple(str(i) for i in range(model.output["classifier"].shape[-1]))
    images = _image_spec(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", _serving_fn(model, class_names), input_signature=[images])
    archive.add_endpoint("encode", _encode_fn(blocks, names), input_signature=[images])
    if has_decoder(model):
        masked = [images, tf.TensorSpec((), tf.int32, name="layer"),
                  tf.TensorSpec((None, None), tf.float32, name="channel_mask")]
        paths = {**default_decode_paths(model), **(decode_paths or {})}
        archive.add_endpoint("decode_masked", _decode_masked_fn(model, blocks, paths), input_signature=masked)
        archive.add_endpoint("decode_masked_path", _decode_masked_path_fn(model, blocks),
                             input_signature=masked + [tf.TensorSpec((), tf.string, name="decode_path")])
    archive.add_endpoint("gradcam", _gradcam_fn(model, blocks), input_signature=[
        images, tf.TensorSpec((), tf.int32, name="layer"), tf.TensorSpec((None,), tf.int32, name="class_index")])
    return archive


def export_saved_model(model: keras.Model, config: TrainConfig, path: str,
                       decode_paths: dict[str, str] | None = None) -> str:
    """Export `model` as a SavedModel at `path` (written to a temp folder, then renamed into place);
    `decode_paths` as in `build_export_archive`."""
    archive = build_export_archive(model, config.data.class_names, decode_paths)
    with atomic_directory(path) as tmp:
        archive.write_out(tmp, verbose=False)
    return path


def convert_tflite(saved_model_dir: str) -> bytes:
    """serving_default of a SavedModel -> TFLite flatbuffer (TensorFlow's converter, float32 ops)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=["serving_default"])
    return converter.convert()


def export_run(run_dir: str, tflite: bool = False) -> list[str]:
    """Re-export a finished run folder (a trained or an attached run); returns the paths written. An attached
    run's model that TFLite cannot convert gets a warning and no model.tflite."""
    run = open_any_run(run_dir)
    config = run.config
    if run.kind == "attached":
        from keras_latent.attached.run import attached_parts
        from keras_latent.exporting.attached import build_attached_archive

        graph, decoders, spec = attached_parts(run)
        archive = build_attached_archive(graph, decoders, spec, config.data.class_names)
        with atomic_directory(run.path(layout.SAVED_MODEL)) as tmp:
            archive.write_out(tmp, verbose=False)
        written = [run.path(layout.SAVED_MODEL)]
        if tflite:
            try:
                flatbuffer = convert_tflite(written[0])
            except Exception as err:  # the converter's many error types: the user's ops, not ours
                logging.getLogger("keras_latent").warning(
                    f"notice: TFLite cannot convert this model ({type(err).__name__}: "
                    f"{(str(err).splitlines() or [''])[0][:200]}); no {layout.TFLITE.name} written")
                return written
            atomic_write_bytes(run.path(layout.TFLITE), flatbuffer)
            written.append(run.path(layout.TFLITE))
        return written
    written = [export_saved_model(run.model, config, run.path(layout.SAVED_MODEL), run.decode_paths)]
    if tflite:
        path = run.path(layout.TFLITE)
        atomic_write_bytes(path, convert_tflite(written[0]))
        written.append(path)
    return written


def describe_export(path: str) -> str:
    """One line about an exported file: a SavedModel's signatures (reloading it proves it loads), or a size."""
    if not os.path.isdir(path):
        return f"{os.path.getsize(path) / 1e6:.2f} MB"
    signatures = tf.saved_model.load(path).signatures
    return "signatures: " + ", ".join(n for n in dict.fromkeys(SIGNATURES + ("gradcam",)) if n in signatures)
