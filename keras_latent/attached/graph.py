"""A user's model rebuilt around chosen layers: features, channel-masked predictions and class scores.

`ModelGraph(model)` re-runs the model's own graph (Sequential or functional, nested models at any
depth, residual branches, shared layers, several outputs) by calling the SAME layer objects (shared
weights, nothing copied or changed) on a new image input, with hooks at chosen layer outputs. The
models it builds are plain functional Keras models, so no "Graph disconnected" however deep the layer
(see `_keras_graph` for why a re-run is needed). Every layer call is recorded with training=False, and
the built models run in inference mode (BatchNorm uses its moving statistics, Dropout passes through)
when called as `predict`, `predict_on_batch` and `model(x)` call them. Keras lets an explicit outer
`training=True` override the recorded flag, so nothing in keras_latent calls them so, nor trains a graph
that contains the user's layers (decoders train on extracted features).

Layer names: a layer inside nested models is named by its path of model names, "stem/conv1" (the
outer model's own name left out); a name that is unique at any depth may be given alone ("conv1").
Only layers called once whose output is 4-D (B, h, w, c) can be chosen.

    feature_model(layers)   image (B, H, W, C)                  -> {layer: (B, h, w, c), "class_output": (B, classes)}
    masked_model(layer)     image, masks (B, K, c)              -> class output (B, K, classes): `layer`'s output
                                                                   times each mask row wherever it is used
    score_model(layers)     image (B, H, W, C)                  -> {layer: ..., "scores": (B, classes), "class_output"}
"""
from __future__ import annotations

import dataclasses

import keras
from keras import ops

from keras_latent.attached._keras_graph import graph_nodes, is_functional
from keras_latent.attached.reading import ImageSpec, check_input_range, image_input_shape
from keras_latent.errors import UsageError, check_choice, shown
from keras_latent.model.masking import ChannelMasking, RepeatPerMask, UnfoldMasks

SEP = "/"  # between nested model names in a layer path
CLASS_OUTPUT = "class_output"  # key of the model's class output in the built models' dict outputs
SCORES = "scores"
OUTPUT_KINDS = ("probabilities", "logits")
_SQUASHING = ("softmax", "sigmoid")
RAW_PIXEL_RANGE = (0.0, 255.0)  # the input range a model with a Rescaling layer at its start takes


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """One layer (or nested model) of the user's graph as the re-run met it."""

    path: str  # "stem/conv1"
    class_name: str  # "Conv2D"
    shape: tuple  # its (first) output's shape without the batch axis, e.g. (16, 16, 32)
    calls: int  # how often the graph calls it (> 1: a shared layer, no single output)
    order: int  # position of its first call in execution order
    nested: bool  # a nested model (its layers have their own paths)

    @property
    def eligible(self) -> bool:
        """Decodable: called once, and a 4-D output (B, h, w, c) of known size."""
        return self.calls == 1 and len(self.shape) == 3 and all(isinstance(d, int) for d in self.shape)


@keras.saving.register_keras_serializable(package="keras_latent.attached")
class PreActivation(keras.layers.Layer):
    """What a Dense layer computes before its activation (the class score under a softmax), with that
    layer's own kernel and bias: x (B, ..., d) -> (B, ..., units). The Dense layer is only read."""

    def __init__(self, dense, **kwargs):
        super().__init__(**kwargs)
        self.dense = dense

    def call(self, x):
        y = ops.matmul(x, ops.cast(self.dense.kernel, x.dtype))
        return y + ops.cast(self.dense.bias, x.dtype) if self.dense.use_bias else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.dense.units)


def _ancestors(path: str) -> set[str]:
    """The nested models a layer path lies in: "a/b/c" -> {"a", "a/b"}."""
    parts = path.split(SEP)
    return {SEP.join(parts[:i]) for i in range(1, len(parts))}


def _squashing(op) -> str | None:
    """"softmax"/"sigmoid" when `op` ends in one (a Dense/Activation layer's activation, a Softmax layer)."""
    if isinstance(op, keras.layers.Softmax):
        return "softmax"
    name = getattr(getattr(op, "activation", None), "__name__", None)
    return name if name in _SQUASHING else None


class _Run:
    """One re-run of a model's graph on new symbolic inputs.

    hooks: {path: fn(tensor, run) -> tensor} replaces a layer's output for every later use;
    descend: nested model paths to re-run layer by layer (None: all; others are called whole);
    masks: the (B, K, C) mask input of a masked run: a tensor derived from a folded one has B*K rows, and
    any other tensor meeting it is repeated K times first (skip connections from before the hook).
    """

    def __init__(self, hooks=None, descend=None, masks=None):
        self.hooks, self.descend, self.masks = hooks or {}, descend, masks
        self.seen: dict[str, LayerInfo] = {}
        self.producer: dict[int, tuple[str, object, tuple]] = {}  # id(tensor) -> (path, op, args)
        self.folded: set[int] = set()
        self._repeated: dict[int, object] = {}

    def model(self, model: keras.Model, inputs: list, prefix: str = "") -> list:
        """Flat outputs of `model` on `inputs` (flat), each layer called as the model's graph calls it."""
        if isinstance(model, keras.Sequential):
            x = inputs[0]
            for layer in model.layers:
                x = self.call(layer, (x,), {}, prefix + layer.name)[0]
            return [x]
        values = {id(t): v for t, v in zip(model.inputs, inputs)}
        for node in graph_nodes(model):
            if any(id(t) not in values for t in node.input_tensors):
                continue  # not computable from the inputs (Keras skips these too)
            args, kwargs = node.arguments(values)
            outputs = self.call(node.operation, args, kwargs, prefix + node.operation.name)
            values.update((id(t), v) for t, v in zip(node.outputs, outputs))
        return [values[id(t)] for t in model.outputs]

    def fold(self, tensor):
        """`tensor` (B, h, w, c) times each mask row -> (B*K, h, w, c)."""
        folded = ChannelMasking()(tensor, self.masks)
        self.folded.add(id(folded))
        return folded

    def _align(self, args, kwargs):
        """Repeat unfolded tensors K times where they meet a folded one; whether the call is folded."""
        tensors = [t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)]
        if self.masks is None or not any(id(t) in self.folded for t in tensors):
            return args, kwargs, False

        def repeat(t):
            if not isinstance(t, keras.KerasTensor) or id(t) in self.folded:
                return t
            if id(t) not in self._repeated:
                self._repeated[id(t)] = RepeatPerMask()(t, self.masks)
                self.folded.add(id(self._repeated[id(t)]))
            return self._repeated[id(t)]

        args, kwargs = keras.tree.map_structure(repeat, (args, kwargs))
        return args, kwargs, True

    def call(self, op, args, kwargs, path: str) -> list:
        args, kwargs, folded = self._align(args, kwargs)
        nested = isinstance(op, keras.Model) and (isinstance(op, keras.Sequential) or is_functional(op))
        inputs = [t for t in keras.tree.flatten(args) if isinstance(t, keras.KerasTensor)]
        if nested and (self.descend is None or path in self.descend) and len(inputs) == len(op.inputs):
            outputs = self.model(op, inputs, path + SEP)
        else:
            if isinstance(op, keras.layers.Layer):
                kwargs = {**kwargs, "training": False}
            outputs = keras.tree.flatten(op(*args, **kwargs))
        known = self.seen.get(path)
        self.seen[path] = LayerInfo(path, type(op).__name__, tuple(outputs[0].shape[1:]),
                                    known.calls + 1 if known else 1, known.order if known else len(self.seen),
                                    nested)
        for t in outputs:
            self.producer[id(t)] = (path, op, args)
        if folded:
            self.folded.update(id(t) for t in outputs)
        if path in self.hooks:
            outputs = [self.hooks[path](outputs[0], self), *outputs[1:]]
        return outputs


class ModelGraph:
    """The user's model, its layers by path, and models built around chosen layers (see the module doc).

    image_size: (H, W) where the model's input size is open; class_output: the name of the class output
    of a model with several outputs (one of `output_names`); output_kind: what the class output is,
    "probabilities" or "logits" (default: detected, "probabilities" when the last layer ends in a softmax
    or sigmoid). The model is only read.
    """

    def __init__(self, model: keras.Model, image_size=None, class_output: str | None = None,
                 output_kind: str | None = None):
        self.model = model
        self.image_shape = image_input_shape(model, image_size)  # (H, W, C)
        image = keras.Input(self.image_shape)
        run = _Run()
        outputs = run.model(model, [image])
        self.layers: dict[str, LayerInfo] = dict(sorted(run.seen.items(), key=lambda item: item[1].order))
        names = {p.rsplit(SEP, 1)[-1] for p in self.layers}
        self._input_name = next(n for n in ("image", "attached_image", "attached_image_0") if n not in names)
        self.output_names = list(model.output_names) if is_functional(model) else [model.layers[-1].name]
        if len(self.output_names) != len(outputs):
            self.output_names = [f"output_{i}" for i in range(len(outputs))]
        if class_output is None:
            if len(outputs) > 1:
                raise UsageError(f"the model has {len(outputs)} outputs: name the class output "
                                 f"(--class-output), one of {', '.join(self.output_names)}")
            class_output = self.output_names[0]
        check_choice("class output", class_output, self.output_names)
        self.class_output = class_output
        self._class_index = self.output_names.index(class_output)
        self.class_shape = tuple(outputs[self._class_index].shape[1:])
        if len(self.class_shape) != 1:
            raise UsageError(f"class output {class_output!r} has shape {self.class_shape} per image: expected "
                             "(classes,); name another output (--class-output)")
        self._class_path, producer, _ = run.producer[id(outputs[self._class_index])]
        detected = "probabilities" if _squashing(producer) else "logits"
        if output_kind is not None:
            check_choice("output kind", output_kind, OUTPUT_KINDS)
        self.output_kind = output_kind or detected
        pre = isinstance(producer, keras.layers.Dense | keras.layers.Activation | keras.layers.Softmax)
        # what `scores` are: the class output itself (logits), the score before its last squashing, or
        # the probabilities themselves where that score cannot be reached
        self.score_source = ("output" if self.output_kind == "logits"
                             else "pre-activation" if pre and _squashing(producer) else "probabilities")

    # ------------------------------------------------------------ layers

    @property
    def num_classes(self) -> int:
        return int(self.class_shape[0])

    def eligible_layers(self) -> list[str]:
        """Paths of the layers that can be chosen (4-D output, called once), in execution order."""
        return [p for p, info in self.layers.items() if info.eligible]

    def _names_line(self) -> str:
        return ", ".join(self.eligible_layers()) or "none"

    def resolve(self, names) -> list[str]:
        """Layer names (paths or unique inner names) -> paths, in the given order without repeats; an unknown,
        ambiguous, shared or non-4-D layer is one UsageError line naming the layers that can be chosen."""
        if isinstance(names, str) or not names:
            raise UsageError(f"layers must be a non-empty list of layer names, got {shown(names)}")
        chosen = []
        for name in names:
            if name in self.layers:
                path = name
            else:
                matches = [p for p in self.layers if p.rsplit(SEP, 1)[-1] == name]
                if len(matches) > 1:
                    raise UsageError(f"layer name {name!r} is ambiguous: it names {', '.join(matches)}; "
                                     "give the path")
                if not matches:
                    raise UsageError(f"unknown layer {name!r}; the layers that can be decoded are "
                                     f"{self._names_line()}")
                path = matches[0]
            info = self.layers[path]
            if info.calls > 1:
                raise UsageError(f"layer {path!r} is called {info.calls} times in the model (shared), so it has "
                                 f"no single output; the layers that can be decoded are {self._names_line()}")
            if not info.eligible:
                raise UsageError(f"layer {path!r} has output shape {info.shape}, not 4-D (batch, height, width, "
                                 f"channels); the layers that can be decoded are {self._names_line()}")
            if path not in chosen:
                chosen.append(path)
        return chosen

    def default_layers(self) -> list[str]:
        """The last layer before each spatial downsampling, in execution order (nested models' own entries and
        outputs shaped like the input image, e.g. a Rescaling's, left out): execution is split into stages
        where the spatial area first drops below every area before it, and each stage's last layer at that
        stage's area is chosen (so a padding layer just before a strided step is skipped)."""
        stages, smallest = [], None
        for path in self.eligible_layers():
            info = self.layers[path]
            if info.nested or info.shape == self.image_shape:
                continue
            area = info.shape[0] * info.shape[1]
            if smallest is None or area < smallest:
                smallest = area
                stages.append(path)
            elif area == smallest:
                stages[-1] = path
        return stages

    def num_channels(self, layer: str) -> int:
        return int(self.layers[self.resolve([layer])[0]].shape[-1])

    def detected_input_range(self) -> tuple[float, float] | None:
        """(0, 255) when the model's first layer is a Rescaling (it takes raw pixels), else None."""
        first = next((info for info in self.layers.values() if not info.nested), None)
        return RAW_PIXEL_RANGE if first is not None and first.class_name == "Rescaling" else None

    def image_spec(self, input_range=None) -> ImageSpec:
        """The images the model takes; `input_range=(lo, hi)` or detected (`detected_input_range`), else one
        UsageError line asking for it."""
        if input_range is None:
            input_range = self.detected_input_range()
            if input_range is None:
                raise UsageError("the model's input range cannot be detected (its first layer is not a Rescaling "
                                 "layer): give it (--input-range LO,HI, input_range=(lo, hi)), e.g. 0,1 or -1,1 "
                                 "or 0,255")
        return ImageSpec(*self.image_shape, check_input_range(input_range))

    # ------------------------------------------------------------ models

    def _rerun(self, layers, hooks, masks=None, scores: bool = False):
        descend = set().union(*(_ancestors(p) for p in layers))
        if scores:
            descend |= _ancestors(self._class_path)
        image = keras.Input(self.image_shape, name=self._input_name)
        run = _Run(hooks, descend, masks)
        outputs = run.model(self.model, [image])
        return image, outputs, run

    def _built(self, inputs, outputs, name: str) -> keras.Model:
        """keras.Model(inputs, outputs); layer names that clash once nested models are opened: one line."""
        try:
            return keras.Model(inputs, outputs, name=name)
        except ValueError as err:
            if "is used" not in str(err):
                raise
            raise UsageError(f"opening the model's nested models around the chosen layers puts two layers with "
                             f"one name side by side ({str(err).splitlines()[0]}); choose layers in another "
                             "nested model, or rename the layer in your model") from None

    def feature_model(self, layers) -> keras.Model:
        """image (B, H, W, C) -> {layer: activations (B, h, w, c) for each chosen layer, "class_output"}."""
        paths = self.resolve(layers)
        found = {}
        hooks = {p: (lambda t, run, p=p: found.setdefault(p, t)) for p in paths}
        image, outputs, _ = self._rerun(paths, hooks)
        return self._built(image, {**{p: found[p] for p in paths}, CLASS_OUTPUT: outputs[self._class_index]},
                           "features")

    def masked_model(self, layer: str) -> keras.Model:
        """[image (B, H, W, C), masks (B, K, c)] -> class output (B, K, classes) (what the model outputs:
        probabilities or logits): `layer`'s output multiplied by each mask row wherever the graph uses it
        (skip connections included), then the rest of the user's own graph. The layers before `layer` run
        once per image, the rest once per mask row."""
        path = self.resolve([layer])[0]
        masks = keras.Input((None, self.layers[path].shape[-1]), name="channel_masks")
        image, outputs, run = self._rerun([path], {path: lambda t, r: r.fold(t)}, masks)
        out = outputs[self._class_index]
        if id(out) not in run.folded:  # the layer does not reach the class output
            out = RepeatPerMask()(out, masks)
        return self._built([image, masks], UnfoldMasks(name="unfold_masks")(out, masks),
                           f"masked_{path.replace(SEP, '_')}")

    def score_model(self, layers=()) -> keras.Model:
        """image (B, H, W, C) -> {layer: activations, "scores": (B, classes), "class_output"}: the class scores
        Grad-CAM and saliency differentiate, per `score_source` (the pre-softmax score where there is one)."""
        paths = self.resolve(layers) if layers else []
        found = {}
        hooks = {p: (lambda t, run, p=p: found.setdefault(p, t)) for p in paths}
        image, outputs, run = self._rerun(paths, hooks, scores=self.score_source == "pre-activation")
        out = outputs[self._class_index]
        scores = out
        if self.score_source == "pre-activation":
            _, op, args = run.producer[id(out)]
            x = keras.tree.flatten(args)[0]
            scores = PreActivation(op, name="pre_activation")(x) if isinstance(op, keras.layers.Dense) else x
        return self._built(image, {**{p: found[p] for p in paths}, SCORES: scores, CLASS_OUTPUT: out}, "scores")
