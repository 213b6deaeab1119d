"""TF SavedModel export of an attached run (decoders attached to a user's own model), usable without this
package. Every signature takes uint8 images `images` (N, H, W, C) at the model's input size and converts them
to its input range inside (lo + (hi - lo) x / 255), as the run did:

  serving_default(images) -> probabilities float32 (N, classes) (softmax of logits where the model outputs
                             logits), class_index int64 (N,), class_name string (N,)
  encode(images)          -> one float32 output per chosen layer (N, h, w, c), named by the layer path with
                             every character that is not a letter, digit or _ replaced by _ ("stem/relu1" ->
                             "stem_relu1")
  decode_masked(images, layer int32 (), channel_mask float32 (M, c_layer))
                          -> reconstruction uint8 (N, H, W, C), reconstruction_input float32 in the input range:
                             the layer's activations (layer 1-based, in the run's layer order) times channel_mask
                             (M = 1: one mask for all images; M = N: one per image) through its decoder
  gradcam(images, layer int32 (), class_index int32 (N,))
                          -> heatmap float32 (N, H, W) >= 0, class_index int64 (N,), probabilities (N, classes):
                             Grad-CAM at that layer on the class score (pre-softmax where there is one), resized
                             bilinearly to the image; a negative class index: the predicted class
"""
from __future__ import annotations

import re

import keras
import tensorflow as tf

from keras_latent.attached.graph import CLASS_OUTPUT, SCORES

SIGNATURES = ("serving_default", "encode", "decode_masked", "gradcam")


def output_name(layer: str) -> str:
    """A layer path as a signature output name: "stem/relu1" -> "stem_relu1"."""
    return re.sub(r"\W", "_", layer)


def build_attached_archive(graph, decoders: dict, spec, class_names) -> keras.export.ExportArchive:
    """An ExportArchive with the signatures of the module doc, for the user's graph and the run's decoders."""
    layers = list(decoders)
    lo, hi = spec.input_range
    scores = graph.score_model(layers)
    logits = graph.output_kind == "logits"
    n_classes = graph.num_classes
    class_names = tuple(class_names) if len(class_names) == n_classes else tuple(str(i) for i in range(n_classes))
    image_spec = tf.TensorSpec((None, *spec.shape), tf.uint8, name="images")
    layer_spec = tf.TensorSpec((), tf.int32, name="layer")

    def to_input(images):
        return lo + (hi - lo) * tf.cast(images, tf.float32) / 255.0

    def probabilities_of(out):
        p = tf.cast(out[CLASS_OUTPUT], tf.float32)
        return tf.nn.softmax(p, axis=-1) if logits else p

    def checked_index(layer):
        ok = tf.logical_and(layer >= 1, layer <= len(layers))
        with tf.control_dependencies([tf.debugging.Assert(ok, [f"layer must be 1..{len(layers)} "
                                                                f"({', '.join(layers)}), got", layer])]):
            return tf.identity(layer - 1)

    def serving_default(images):
        probabilities = probabilities_of(scores(to_input(images)))
        class_index = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {"probabilities": probabilities, "class_index": class_index,
                "class_name": tf.gather(tf.constant(list(class_names)), class_index)}

    def encode(images):
        out = scores(to_input(images))
        return {output_name(layer): tf.cast(out[layer], tf.float32) for layer in layers}

    def masked_branch(k, out, images, channel_mask):
        layer = layers[k]
        channels = int(graph.layers[layer].shape[-1])
        rows, batch = tf.shape(channel_mask)[0], tf.shape(images)[0]
        checks = [tf.debugging.assert_equal(tf.shape(channel_mask)[1], channels, message=(
                      f"channel_mask for layer {k + 1} ({layer}) must have {channels} columns, one per channel")),
                  tf.debugging.Assert(tf.logical_or(tf.equal(rows, 1), tf.equal(rows, batch)), [
                      "channel_mask must have 1 row (one mask for all images) or one row per image; rows, images:",
                      rows, batch])]
        with tf.control_dependencies(checks):
            acts = tf.cast(out[layer], tf.float32)
        masked = acts * tf.cast(channel_mask, tf.float32)[:, tf.newaxis, tf.newaxis, :]
        return tf.cast(decoders[layer](masked), tf.float32)

    def decode_masked(images, layer, channel_mask):
        index = checked_index(layer)
        out = scores(to_input(images))
        decoded = tf.switch_case(index, [lambda k=k: masked_branch(k, out, images, channel_mask)
                                         for k in range(len(layers))])
        unit = tf.clip_by_value((decoded - lo) / (hi - lo), 0.0, 1.0)
        return {"reconstruction": tf.cast(tf.round(unit * 255.0), tf.uint8), "reconstruction_input": decoded}

    def gradcam(images, layer, class_index):
        x = to_input(images)
        index = checked_index(layer)
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = scores(x)
            probabilities = probabilities_of(out)
            predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            checks = [tf.debugging.assert_equal(tf.shape(class_index)[0], tf.shape(images)[0], message=(
                          "class_index must have one entry per image (negative: the predicted class)")),
                      tf.debugging.Assert(tf.reduce_all(class_index < n_classes), [
                          f"class_index must be below {n_classes} (the number of classes), got", class_index])]
            with tf.control_dependencies(checks):
                classes = tf.where(class_index < 0, predicted, class_index)
            score = tf.gather(tf.cast(out[SCORES], tf.float32), classes, batch_dims=1)
            acts = [tf.cast(out[name], tf.float32) for name in layers]
        grads = tape.gradient(score, acts)

        def branch(k):
            weights = tf.reduce_mean(grads[k], axis=(1, 2), keepdims=True)
            heat = tf.nn.relu(tf.reduce_sum(acts[k] * weights, axis=-1))
            return tf.image.resize(heat[..., tf.newaxis], spec.shape[:2], method="bilinear")[..., 0]

        heatmap = tf.switch_case(index, [lambda k=k: branch(k) for k in range(len(layers))])
        return {"heatmap": heatmap, "class_index": tf.cast(classes, tf.int64), "probabilities": probabilities}

    archive = keras.export.ExportArchive()
    archive.track(scores)
    for decoder in decoders.values():
        archive.track(decoder)
    archive.add_endpoint("serving_default", serving_default, input_signature=[image_spec])
    archive.add_endpoint("encode", encode, input_signature=[image_spec])
    archive.add_endpoint("decode_masked", decode_masked, input_signature=[
        image_spec, layer_spec, tf.TensorSpec((None, None), tf.float32, name="channel_mask")])
    archive.add_endpoint("gradcam", gradcam, input_signature=[
        image_spec, layer_spec, tf.TensorSpec((None,), tf.int32, name="class_index")])
    return archive
