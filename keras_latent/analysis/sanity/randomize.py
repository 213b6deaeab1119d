"""Copies of a model with re-initialized weights, for model-randomization controls (Adebayo et al. 2018).

    weighted_layers(model, output_fn, probe)    leaf layers with weights, in topological order, as paths
                                                ("trunk/conv1/conv1_conv"); optionally only those that
                                                the output of `output_fn` depends on
    randomized_copy(model, layers, seed)        a copy with those layers' weights drawn afresh
    cascade(model, layers, seed)                yields (path, copy) after re-initializing one more layer,
                                                from the top (output) layer down

Model-agnostic: any Keras 3 model whose layers can be cloned (`keras.models.clone_model`, nested models
included). The original's weights are never touched: every function works on a clone that first gets
the trained weights. A weight is re-initialized with its layer's own initializer (`kernel_initializer`,
`bias_initializer`, `gamma_initializer`, ... from the layer's config, seeded: seed + position of the
weight, so the same seed gives the same random model); a weight whose layer names no initializer for it
is shuffled instead (a seeded permutation of its trained values: same distribution, no learned structure).
For the own model, with output_fn the classifier, the cascade runs probabilities, fc2, fc1, conv2, conv1.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import keras
import numpy as np

from keras_latent.errors import UsageError

log = logging.getLogger("keras_latent")
SEP = "/"


def _leaves(layer, prefix: str = "") -> Iterator[tuple[str, keras.layers.Layer]]:
    path = f"{prefix}{layer.name}"
    if isinstance(layer, keras.Model):
        for inner in layer.layers:
            yield from _leaves(inner, path + SEP)
    elif layer.weights:
        yield path, layer


def get_layer_path(model: keras.Model, path: str) -> keras.layers.Layer:
    """The layer at `path` ("trunk/conv1/conv1_conv", names below the model) of a model or a copy of it."""
    layer = model
    for name in path.split(SEP):
        try:
            layer = layer.get_layer(name)
        except (ValueError, AttributeError):
            raise UsageError(f"no layer {path!r} in model {model.name!r}; layers with weights: "
                             f"{', '.join(weighted_layers(model))}") from None
    return layer


def weighted_layers(model: keras.Model, output_fn: Callable | None = None, probe: np.ndarray | None = None
                    ) -> list[str]:
    """Paths of the leaf layers with weights, in topological order (input side first).

    With `output_fn(model, images) -> tensor` and `probe` images (B, ...), only the layers that output
    depends on: one backward pass; a layer none of whose weights gets a gradient is left out (for the own
    model and the classifier output: the decoder's layers).
    """
    paths = [path.split(SEP, 1)[1] for path, _ in _leaves(model) if SEP in path]  # below the model's own name
    if output_fn is None:
        return paths
    import tensorflow as tf

    layers = [get_layer_path(model, p) for p in paths]
    variables = [[w.value for w in layer.weights] for layer in layers]
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        for vs in variables:
            for v in vs:
                tape.watch(v)
        out = tf.reduce_sum(tf.cast(output_fn(model, tf.constant(np.asarray(probe, np.float32))), tf.float32))
    grads = tape.gradient(out, variables)
    return [p for p, g in zip(paths, grads) if any(x is not None for x in g)]


def clone_with_weights(model: keras.Model) -> keras.Model:
    """A structural copy of `model` (same layer names) holding a copy of its weights."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def reinitialize(layer: keras.layers.Layer, seed: int) -> None:
    """Draw `layer`'s weights afresh in place from its own initializers (see the module doc), seeded."""
    rng = np.random.default_rng(seed)
    for i, weight in enumerate(layer.weights):
        name = weight.name.split("/")[-1].split(":")[0]
        init = getattr(layer, f"{name}_initializer", None)
        if init is not None:
            config = init.get_config()
            if "seed" in config:
                config["seed"] = int(seed) * 1000 + i
            value = type(init).from_config(config)(tuple(weight.shape), dtype=weight.dtype)
        else:  # no initializer for this weight: a seeded shuffle of its values
            value = rng.permutation(np.asarray(weight).ravel()).reshape(weight.shape)
        weight.assign(value)


def randomized_copy(model: keras.Model, layers: list[str] | None = None, seed: int = 0) -> keras.Model:
    """A copy of `model` whose layers at `layers` (paths; None: every layer with weights) are re-initialized,
    the others keeping the trained weights. The original is not touched."""
    copy = clone_with_weights(model)
    for j, path in enumerate(weighted_layers(copy) if layers is None else layers):
        reinitialize(get_layer_path(copy, path), seed * 100_003 + j)
    return copy


def cascade(model: keras.Model, layers: list[str], seed: int = 0) -> Iterator[tuple[str, keras.Model]]:
    """Cascading randomization: `layers` (paths, topological order) re-initialized from the LAST (top) one
    down, one more at each step; yields (path just re-initialized, copy). One copy is modified step by step,
    so each yielded model is only valid until the next step. Seeds as `randomized_copy`."""
    if not layers:
        raise UsageError("cascading randomization needs at least one layer with weights")
    copy = clone_with_weights(model)
    for j, path in enumerate(reversed(layers)):
        reinitialize(get_layer_path(copy, path), seed * 100_003 + j)
        yield path, copy
