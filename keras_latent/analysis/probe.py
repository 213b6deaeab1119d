"""What the analysis needs from a run's model, as one small interface with two implementations, so that
`analyze` runs the same views on a model `train` made and on a user's model with attached decoders:

    layers                                  the layers analysed by default, in order
    image_shape                             (H, W, C) of the model's input images
    to_input(uint8 (N, H, W, C))            -> float32 model input (tutorial: [-1, 1]; attached: the user's range)
    to_uint8(input-space images)            -> uint8, the inverse
    from_unit(images in [-1, 1])            -> input-space images (feature visualization optimizes in [-1, 1])
    num_channels(layer), check_layer(layer)
    encoder(layer)                          image -> activations (B, h, w, c)
    masked_decoder(layer)                   [activations, masks (B, K, c)] -> images (B, K, H, W, C) in input space
                                            (None without a decoder)
    ablation_model(layer)                   [image, masks (B, K, c)] -> class scores (B, K, classes): the channel
                                            zeroed everywhere the layer's output is used, then the model's own head
    class_probabilities(images)             -> (N, classes)
    grad_cam(images, classes, layers)       -> {layer: (N, h, w)} on the class score (pre-softmax where there is one)
    smoothgrad(images, classes, samples, seed)  -> (N, H, W)
    visualize(layer, channels, settings, color_images)  -> features.FeatureVisualization (images in [-1, 1])

`TrainedProbe` wraps `latent`, `attribution` and `features` (their behaviour unchanged); `AttachedProbe`
builds everything from the user's graph (`attached.graph.ModelGraph`) and the run's decoders.
`probe_for(run)` picks by `Run.kind`.
"""
from __future__ import annotations

import functools

import keras
import numpy as np
from keras import ops

from keras_latent.analysis import attribution, features, latent
from keras_latent.data.pipeline import denormalize, normalize
from keras_latent.errors import UsageError

SMOOTHGRAD_NOISE = attribution.SMOOTHGRAD_NOISE


class TrainedProbe:
    """A model `train` made (trunk blocks conv1.., classifier head, mirrored decoder), images in [-1, 1]."""

    kind = "trained"

    def __init__(self, model: keras.Model, layers, decode_paths: dict[str, str] | None = None):
        """decode_paths: each layer's default path for `masked_decoder` (analyze passes the path it chose)."""
        self.model, self.layers, self.decode_paths = model, list(layers), dict(decode_paths or {})
        self.image_shape = tuple(int(d) for d in model.inputs[0].shape[1:])

    def to_input(self, images_uint8):
        return np.asarray(normalize(images_uint8))

    def to_uint8(self, images):
        return denormalize(images)

    def from_unit(self, images):
        return np.asarray(images, np.float32)

    def check_layer(self, layer: str) -> str:
        latent.layer_index(self.model, layer)
        return layer

    def num_channels(self, layer: str) -> int:
        return latent.num_channels(self.model, layer)

    def encoder(self, layer: str) -> keras.Model:
        return latent.encoder(self.model, layer)

    def masked_decoder(self, layer: str, path: str | None = None):
        path = path or self.decode_paths.get(layer)
        return None if path is None else latent.masked_decoder(self.model, layer, path)

    def ablation_model(self, layer: str) -> keras.Model:
        return latent.ablation_model(self.model, layer)

    def class_probabilities(self, images) -> np.ndarray:
        return attribution.class_probabilities(self.model, images)

    def grad_cam(self, images, classes, layers) -> dict[str, np.ndarray]:
        return attribution.grad_cam(self.model, images, classes, layers)

    def smoothgrad(self, images, classes, samples: int, seed: int) -> np.ndarray:
        return attribution.smoothgrad(self.model, images, classes, samples=samples, seed=seed)

    def visualize(self, layer, channels, settings, color_images):
        return features.visualize_channels(self.model, layer, channels, settings, color_images=color_images)


class AttachedProbe:
    """A user's model with decoders attached (an attached run): the user's own graph, rebuilt from the run's
    source_model.keras by `ModelGraph`, and the run's decoders (from its model.keras); images in the model's
    input range."""

    kind = "attached"

    def __init__(self, graph, decoders: dict[str, keras.Model], spec):
        self.graph, self.decoders, self.spec = graph, dict(decoders), spec
        self.layers = list(decoders)
        self.image_shape = spec.shape
        self.decode_paths = dict.fromkeys(self.layers, "tail")

    def to_input(self, images_uint8):
        from keras_latent.attached.reading import to_model_input

        return to_model_input(images_uint8, self.spec)

    def to_uint8(self, images):
        lo, hi = self.spec.input_range
        unit = (np.asarray(images, np.float32) - lo) / (hi - lo)
        return np.clip(np.round(unit * 255.0), 0, 255).astype(np.uint8)

    def from_unit(self, images):
        lo, hi = self.spec.input_range
        return (lo + (hi - lo) * (np.asarray(images, np.float32) + 1.0) / 2.0).astype(np.float32)

    def check_layer(self, layer: str) -> str:
        path = self.graph.resolve([layer])[0]
        if path not in self.decoders:
            raise UsageError(f"layer {layer!r} has no attached decoder in this run; its layers are "
                             f"{', '.join(self.layers)}")
        return path

    def num_channels(self, layer: str) -> int:
        return int(self.graph.layers[layer].shape[-1])

    @functools.cache  # noqa: B019 (one probe per analysis; models are reused)
    def encoder(self, layer: str) -> keras.Model:
        features_ = self.graph.feature_model([layer])
        return keras.Model(features_.input, features_.output[layer], name=f"encoder_{layer.replace('/', '_')}")

    def masked_decoder(self, layer: str, path: str | None = None):
        from keras_latent.model.masking import masked_decoder

        return masked_decoder(self.decoders[layer], name=f"masked_decoder_{layer.replace('/', '_')}")

    def ablation_model(self, layer: str) -> keras.Model:
        return self.graph.masked_model(layer)

    def class_probabilities(self, images) -> np.ndarray:
        from keras_latent.attached.graph import CLASS_OUTPUT

        model = self.graph.score_model()
        out = keras.Model(model.input, model.output[CLASS_OUTPUT])
        scores = latent.predict_in_chunks(out, [np.asarray(images, np.float32)], attribution.BATCH_SIZE)
        if self.graph.output_kind == "logits":
            scores = np.asarray(ops.softmax(scores, axis=-1))
        return scores

    @functools.cached_property
    def _score_model(self):
        return self.graph.score_model(self.layers)

    def grad_cam(self, images, classes, layers) -> dict[str, np.ndarray]:
        """Grad-CAM (Selvaraju et al. 2017) of class classes[i] at each layer, on the pre-softmax score where
        there is one (`ModelGraph.score_source`): ReLU(sum_k mean_pos(d score / d A_k) A_k), (N, h, w)."""
        import tensorflow as tf

        from keras_latent.attached.graph import SCORES

        model, layers = self._score_model, list(layers)
        images = np.asarray(images, np.float32)
        classes = np.broadcast_to(np.asarray(classes, np.int64), (len(images),)).astype(np.int32)

        @tf.function(jit_compile=False)
        def maps(batch, batch_classes):
            with tf.GradientTape() as tape:
                tape.watch(batch)
                out = model(batch)
                scores = tf.gather(ops.cast(out[SCORES], "float32"), batch_classes, batch_dims=1)
                acts = [ops.cast(out[layer], "float32") for layer in layers]
            grads = tape.gradient(scores, acts)
            return [ops.relu(ops.sum(a * ops.mean(g, axis=(1, 2), keepdims=True), axis=-1))
                    for a, g in zip(acts, grads)]

        found = attribution._in_batches(maps, images, classes)
        return dict(zip(layers, found))

    def smoothgrad(self, images, classes, samples: int, seed: int) -> np.ndarray:
        """SmoothGrad (Smilkov et al. 2017) of the class score: noise sd 0.15 x the input range, `samples`
        copies, max |mean gradient| over colour channels: (N, H, W)."""
        import tensorflow as tf

        from keras_latent.attached.graph import SCORES

        model = self._score_model
        images = np.asarray(images, np.float32)
        classes = np.broadcast_to(np.asarray(classes, np.int64), (len(images),)).astype(np.int32)
        lo, hi = self.spec.input_range
        noise = np.random.default_rng(seed).normal(0.0, SMOOTHGRAD_NOISE * (hi - lo),
                                                   (samples, *images.shape)).astype(np.float32)
        noisy = (images[None] + noise).reshape(-1, *images.shape[1:])

        @tf.function(jit_compile=False)
        def gradient(batch, batch_classes):
            with tf.GradientTape() as tape:
                tape.watch(batch)
                scores = tf.gather(ops.cast(model(batch)[SCORES], "float32"), batch_classes, batch_dims=1)
            return [tape.gradient(scores, batch)]

        grads = attribution._in_batches(gradient, noisy, np.tile(classes, samples))[0]
        return np.abs(grads.reshape(samples, *images.shape).mean(axis=0)).max(axis=-1)

    def visualize(self, layer, channels, settings, color_images):
        """Feature visualization of each chosen channel: images optimized in [-1, 1] (mapped to the input range
        before the model) to maximize the channel's mean activation at `layer` (its output as the model has it)."""
        n = self.num_channels(layer)
        chosen = latent.check_channels(n, channels, layer)
        enc = self.encoder(layer)
        lo, hi = self.spec.input_range

        def score(images):
            return ops.mean(ops.cast(enc(lo + (hi - lo) * (images + 1.0) / 2.0), "float32"), axis=(1, 2))

        colors = None if color_images is None or self.spec.channels != 3 else color_images
        images = features.optimize_channel_images(score, self.spec.shape, chosen, n, settings, colors)
        means = latent.predict_in_chunks(enc, [self.from_unit(images)], 256).mean(axis=(1, 2))
        return features.FeatureVisualization(layer, chosen, images, means[np.arange(len(chosen)), chosen]
                                             .astype(np.float32))


def attached_probe(run) -> AttachedProbe:
    """The probe of an attached run (`attached.run.open_any_run`): its source model's graph, its decoders."""
    from keras_latent.attached.run import attached_parts

    return AttachedProbe(*attached_parts(run))


def probe_for(run):
    """The analysis probe of an opened run: `AttachedProbe` for an attached run, else `TrainedProbe`."""
    if run.kind == "attached":
        return attached_probe(run)
    return TrainedProbe(run.model, run.layers)  # analyze measures the decode paths itself (not metrics.json)


def attached_sanity_probe(probe: AttachedProbe):
    """The `analysis.sanity.run.SanityProbe` of an attached run, so the sanity checks run on it too: every
    function takes the user's model (or a randomized copy of it) first and rebuilds its graph with the run's
    image size, class output and output kind; the decoded view is each layer's attached decoder, and the
    randomized-trunk control trains a fresh decoder of the same architecture (`attached.decoders.build_decoder`).
    Images are in the model's input range (`probe.to_input`)."""
    from keras_latent.analysis.sanity import checks
    from keras_latent.analysis.sanity.run import SanityProbe
    from keras_latent.attached.decoders import build_decoder, decoder_name, unit_decoder
    from keras_latent.attached.graph import CLASS_OUTPUT, ModelGraph

    base, spec = probe.graph, probe.spec
    probes = {id(base.model): probe}

    def of(model) -> AttachedProbe:
        if id(model) not in probes:
            graph = ModelGraph(model, image_size=spec.shape[:2], class_output=base.class_output,
                               output_kind=base.output_kind)
            probes[id(model)] = AttachedProbe(graph, probe.decoders, spec)
        return probes[id(model)]

    def fit_decoder(model, layer, epochs):
        def fit(encoder, images, seed):
            keras.utils.set_random_seed(seed)
            acts = checks.call(encoder, images)
            fresh = build_decoder(acts.shape[1:], spec, decoder_name(layer) + "_fresh",
                                  np.sqrt(np.mean(np.square(acts), axis=(0, 1, 2))))
            unit = unit_decoder(fresh)
            unit.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
            lo, hi = spec.input_range
            unit.fit(acts, (np.asarray(images, np.float32) - lo) / (hi - lo), epochs=epochs, batch_size=64, verbose=0)
            return fresh
        return fit

    return SanityProbe(
        model=base.model, layers=tuple(probe.layers), encoder=lambda m, layer: of(m).encoder(layer),
        class_probabilities=lambda m, x: of(m).class_probabilities(x),
        classifier_output=lambda m, x: of(m).graph.feature_model(probe.layers[:1])(x)[CLASS_OUTPUT],
        grad_cam=lambda m, x, c, layer: of(m).grad_cam(x, c, [layer])[layer],
        smoothgrad=lambda m, x, c, samples, seed: of(m).smoothgrad(x, c, samples, seed),
        ablation_model=lambda m, layer: of(m).ablation_model(layer),
        decoder=lambda m, layer: probe.decoders[layer], fit_decoder=fit_decoder)
