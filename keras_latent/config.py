"""Run configuration: frozen dataclasses, validated here (in the library, not only in the CLI).

The training command fills a TrainConfig from flags; every library function takes a config
object. Each run saves its exact config as `config.json` (`keras_latent.runs.records`), and
analysis, export and reports rebuild from that file. No TensorFlow import.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any

from keras_latent.errors import UsageError, check_choice, shown

OPTIMIZERS = ("sgd", "adam")
PADDINGS = ("valid", "same")
STRATEGIES = ("default", "mirrored", "multiworker")
# How a trunk layer's (masked) activations become an image: `tail` decodes them through deconv{k} .. deconv1;
# `propagate` runs them through the rest of the trunk, then the whole decoder (keras_latent.training.faithfulness).
DECODE_PATHS = ("tail", "propagate")
DEFAULT_LAYER_RECON_WEIGHT = 1.0  # measured: see docs/analysis.md, Faithful decoding
# The training formulation: how a step is computed (the same function, to float round-off), not what is trained.
# A field left None is chosen per machine by measuring (keras_latent.training.calibration, cached), or, without
# calibration, takes its STATIC_FORMULATION value; train() records the values it ran with in config.json.
FORMULATION_FIELDS = ("jit_compile", "batch_split", "intra_op_threads", "inter_op_threads")
STATIC_FORMULATION = {"jit_compile": False, "batch_split": 1, "intra_op_threads": 0, "inter_op_threads": 0}
# How a run computed its steps (the formulation and how it was chosen), not what it trained: comparisons of settings
# (a study's existing runs, a search's resume) leave these fields out.
HOW_COMPUTED_FIELDS = (*FORMULATION_FIELDS, "calibrate", "formulation_source", "data.memory_budget_mb")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    dataset: str = "auto"  # auto | cifar10 | sample | path to cifar-10-batches-py or image folder
    tfds_data_dir: str | None = None  # tensorflow-datasets data dir (None: tfds default)
    test_fraction: float = 0.2  # held-out share for an image folder without train/ and test/
    max_train_samples: int | None = None  # train on the first N (shuffled) images only
    split_seed: int | None = None  # seed of the held-out test split and the max_train_samples subset (None: seed)
    augment: bool = False  # random flips and crops on training images
    memory_budget_mb: float = 256.0  # decoded images held in memory (MB); larger: streamed from disk (data.store)
    class_names: tuple[str, ...] = ()  # filled from the data set when the run starts


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    image_size: int = 32  # input height and width; images are resized to it
    num_classes: int = 10  # classifier outputs; set from the data set
    filters: tuple[int, ...] = (6, 16)  # channels of each trunk conv block
    kernel_size: int = 5  # trunk conv kernel size
    padding: str = "valid"  # trunk conv padding: valid (tutorial) or same (deep trunks)
    head_units: tuple[int, ...] = (120, 84)  # hidden dense widths of the classifier head
    decoder: bool = True  # build the reconstruction decoder (False: classifier only)
    sub_pixel_decoder: bool = True  # decoder's Conv2DTranspose as conv + depth-to-space (same function, faster)
    layer_decoders: bool = True  # also decode every shallower block's own activations (outputs reconstruction_conv{k})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = DataConfig()  # where images come from and how they are fed
    model: ModelConfig = ModelConfig()  # architecture
    ce_weight: float = 1.0  # loss weight of the classifier's cross-entropy
    recon_weight: float = 2.0  # loss weight of the reconstruction MSE
    layer_recon_weights: tuple[float, ...] | None = None  # loss weight of each shallower block's reconstruction
    #   (conv1 .. conv{N-1}, with model.layer_decoders); None: DEFAULT_LAYER_RECON_WEIGHT each (resolve_defaults)
    optimizer: str = "sgd"  # sgd (momentum 0.9, as in the tutorial) or adam
    lr: float = 0.005  # learning rate (best of a sweep for batch_size 32, 20 epochs; see docs/performance.md)
    momentum: float = 0.9  # SGD momentum
    epochs: int = 20  # training epochs
    batch_size: int = 32  # images per step
    seed: int = 0  # seed for weights, shuffling, splits and augmentation
    snapshot_epochs: tuple[int, ...] = (0, 10, 20)  # epochs whose reconstructions are saved
    num_snapshot_images: int = 8  # test images shown in each reconstruction snapshot
    steps_per_execution: int = 32  # train steps per call into the compiled graph (1 under mirrored/multiworker)
    mixed_precision: bool = False  # mixed_bfloat16 compute, float32 weights/outputs (off: no clear CPU gain)
    strategy: str = "default"  # default | mirrored | multiworker (tf.distribute, see keras_latent.training.distribute)
    # The formulation (FORMULATION_FIELDS); None: chosen by calibration, see STATIC_FORMULATION.
    jit_compile: bool | None = None  # XLA-compile the train step
    batch_split: int | None = None  # each step runs its batch as this many equal parts side by side (same gradient)
    intra_op_threads: int | None = None  # threads one TensorFlow op may use (0: one per core)
    inter_op_threads: int | None = None  # TensorFlow ops run at once (0: one per core)
    calibrate: bool = True  # choose the None formulation fields by measuring this machine (cached per CPU)
    formulation_source: str = ""  # how train() chose the formulation: calibration, its cache, flags, defaults, ...


def block_sizes(image_size: int, n_blocks: int, kernel_size: int, padding: str) -> list[tuple[int, int]]:
    """(input size, output size) of each trunk block: conv (valid or same) then 2x2 max-pool."""
    sizes, s = [], image_size
    for _ in range(n_blocks):
        conv = s - kernel_size + 1 if padding == "valid" else s
        sizes.append((s, conv // 2))
        s = conv // 2
    return sizes


def default_padding(image_size: int, filters: tuple[int, ...], kernel_size: int) -> str:
    """`valid` (the tutorial net) when the whole trunk fits the image, else `same`."""
    fits = all(out >= 1 for _, out in block_sizes(image_size, len(filters), kernel_size, "valid"))
    return "valid" if fits else "same"


def _validate_positive_ints(name: str, values: tuple[int, ...]) -> None:
    if not values or any(v < 1 for v in values):
        raise UsageError(f"{name} must be positive integers, got {','.join(map(str, values)) or 'nothing'}")


def layer_recon_blocks(model: ModelConfig) -> int:
    """How many shallower trunk blocks (conv1 .. conv{N-1}) have their own reconstruction output."""
    return len(model.filters) - 1 if model.decoder and model.layer_decoders else 0


def resolve_defaults(config: TrainConfig) -> TrainConfig:
    """The config with every "worked out later" default made explicit (what config.json records)."""
    if config.layer_recon_weights is not None:
        return config
    weights = (DEFAULT_LAYER_RECON_WEIGHT,) * layer_recon_blocks(config.model)
    return dataclasses.replace(config, layer_recon_weights=weights)


def unresolved_formulation(config: TrainConfig) -> tuple[str, ...]:
    """The formulation fields left to be chosen (None)."""
    return tuple(name for name in FORMULATION_FIELDS if getattr(config, name) is None)


def with_static_formulation(config: TrainConfig) -> TrainConfig:
    """`config` with every unresolved formulation field at its STATIC_FORMULATION value (no measuring)."""
    return dataclasses.replace(config, **{name: STATIC_FORMULATION[name] for name in unresolved_formulation(config)})


def validate(config: TrainConfig) -> TrainConfig:
    """Raise UsageError naming the bad field, its allowed values and what was received."""
    m, d = config.model, config.data
    _validate_positive_ints("--filters", m.filters)
    _validate_positive_ints("--head-units", m.head_units)
    check_choice("--padding", m.padding, PADDINGS)
    if m.kernel_size < 1 or m.image_size < 8:
        raise UsageError(f"--kernel-size must be >= 1 and --image-size >= 8, got {m.kernel_size} and {m.image_size}")
    check_choice("--optimizer", config.optimizer, OPTIMIZERS)
    check_choice("--strategy", config.strategy, STRATEGIES)
    split, intra, inter = config.batch_split, config.intra_op_threads, config.inter_op_threads
    checks = [
        ("--epochs", config.epochs, config.epochs >= 1, ">= 1"),
        ("--batch-size", config.batch_size, config.batch_size >= 1, ">= 1"),
        ("--lr", config.lr, config.lr > 0, "> 0"),
        ("--ce-weight", config.ce_weight, config.ce_weight >= 0, ">= 0"),
        ("--recon-weight", config.recon_weight, config.recon_weight >= 0, ">= 0"),
        ("--test-fraction", d.test_fraction, 0 < d.test_fraction < 1, "between 0 and 1"),
        ("--steps-per-execution", config.steps_per_execution, config.steps_per_execution >= 1, ">= 1"),
        ("--data-memory-budget", d.memory_budget_mb, d.memory_budget_mb >= 0, ">= 0 (megabytes)"),
        ("--max-train-samples", d.max_train_samples, d.max_train_samples is None or d.max_train_samples >= 1, ">= 1"),
        ("--seed", config.seed, config.seed >= 0, ">= 0"),
        ("--split-seed", d.split_seed, d.split_seed is None or d.split_seed >= 0, ">= 0"),
        ("--batch-split", split, split is None or 1 <= split <= config.batch_size,
         f"between 1 and --batch-size ({config.batch_size})"),
        ("--intra-op-threads", intra, intra is None or intra >= 0, ">= 0"),
        ("--inter-op-threads", inter, inter is None or inter >= 0, ">= 0"),
    ]
    for flag, value, ok, allowed in checks:
        if not ok:
            raise UsageError(f"{flag} must be {allowed}, got {value}")
    if any(e < 0 for e in config.snapshot_epochs):
        raise UsageError(f"--snapshot-epochs must be >= 0, got {config.snapshot_epochs}")
    weights, blocks = config.layer_recon_weights, layer_recon_blocks(m)
    if weights is not None and (len(weights) != blocks or any(not w >= 0 for w in weights)):
        shown = ",".join(f"{w:g}" for w in weights) or "nothing"
        raise UsageError(f"--layer-recon-weights must be {blocks} number(s) >= 0, one per block conv1 .. "
                         f"conv{blocks} (the trunk has {len(m.filters)} blocks; none without the decoder or with "
                         f"--no-layer-decoders), got {shown}")
    if d.class_names and len(d.class_names) != m.num_classes:
        raise UsageError(f"data.class_names names {len(d.class_names)} classes but model.num_classes is "
                         f"{m.num_classes}; they must agree")
    if config.batch_split not in (None, 1) and config.jit_compile:
        raise UsageError(f"--batch-split must be 1 with --jit-compile (XLA compiles the split step into one that is "
                         f"slower than either alone, measured in docs/performance.md), got {config.batch_split}")
    if config.batch_split not in (None, 1) and config.strategy != "default":
        raise UsageError(f"--batch-split must be 1 under --strategy {config.strategy} (the strategy splits each batch "
                         f"across its replicas itself), got {config.batch_split}")
    if config.ce_weight == 0 and (config.recon_weight == 0 or not m.decoder):
        raise UsageError("at least one loss weight must be > 0, got --ce-weight 0 and no reconstruction loss")
    return config


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def to_json_dict(obj: Any) -> dict:
    """A config dataclass as the plain dict its JSON file holds (tuples as lists)."""
    return json.loads(json.dumps(to_dict(obj)))


def flatten(values: dict, prefix: str = "") -> dict:
    """Nested dicts as one level of dotted keys: {"model": {"filters": x}} -> {"model.filters": x}."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def differences(old: dict, new: dict) -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) for every flatten()ed key whose values differ (None: absent), sorted."""
    old, new = flatten(old), flatten(new)
    return [(key, old.get(key), new.get(key)) for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


# Dotted config.json fields newer than some saved runs, with the value a file without one of them means (the one
# that reproduces the runs from before the field). Every other field must be in the file (a missing one is an error
# naming it).
FIELDS_ADDED_LATER: dict[str, Any] = {"model.layer_decoders": False, "layer_recon_weights": (),
                                      "data.split_seed": None, "batch_split": 1, "intra_op_threads": 0,
                                      "inter_op_threads": 0, "calibrate": False, "formulation_source": "",
                                      "data.memory_budget_mb": 256.0}


def _words(hint: Any) -> str:
    """What a field of type `hint` may hold, in words (for errors)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join("null" if a is type(None) else _words(a) for a in args)
    if typing.get_origin(hint) is tuple:
        if Ellipsis not in args:
            return f"a list of {len(args)} numbers"
        return f"a list of {({int: 'integers', float: 'numbers', str: 'strings'}).get(args[0], 'values')}"
    if dataclasses.is_dataclass(hint):
        return f"an object with the fields {', '.join(f.name for f in dataclasses.fields(hint))}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


class _Mismatch(Exception):
    pass


def _convert(hint: Any, value: Any) -> Any:
    """`value` from JSON as a field of type `hint` (lists become tuples); _Mismatch when it is not one."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value)
            except _Mismatch:
                pass
        raise _Mismatch
    if origin is tuple:
        if not isinstance(value, list) or (Ellipsis not in args and len(args) != len(value)):
            raise _Mismatch
        return tuple(_convert(args[0] if Ellipsis in args else t, v) for t, v in zip(args * len(value), value))
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if (hint is bool and isinstance(value, bool) or hint is str and isinstance(value, str)
            or hint is int and number and isinstance(value, int)):
        return value
    if hint is float and number and math.isfinite(value):
        return float(value)
    raise _Mismatch  # also an object where a dataclass is expected: _from_dict reads those


def _from_dict(cls: type, values: dict, prefix: str, optional: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UsageError(f"has the unknown field {prefix + unknown[0]!r}; allowed at that level: {', '.join(fields)}")
    kwargs = {}
    for name in fields:
        where = prefix + name
        if name not in values:
            if where not in optional:
                raise UsageError(f"lacks the field {where!r} ({_words(hints[name])})")
            kwargs[name] = optional[where]
            continue
        try:
            if dataclasses.is_dataclass(hints[name]) and isinstance(values[name], dict):
                kwargs[name] = _from_dict(hints[name], values[name], where + ".", optional)
            else:
                kwargs[name] = _convert(hints[name], values[name])
        except _Mismatch:
            raise UsageError(f"field {where!r} must be {_words(hints[name])}, got {shown(values[name])}") from None
    return cls(**kwargs)


def from_dict(values: dict, cls: type = TrainConfig, optional: dict[str, Any] = FIELDS_ADDED_LATER) -> Any:
    """A config dataclass (TrainConfig by default) from its JSON dict, every field type-checked: UsageError
    naming the first field that is missing (unless `optional` says what its absence means), unknown or of the
    wrong type."""
    if not isinstance(values, dict):
        raise UsageError(f"must hold a JSON object, got {type(values).__name__}")
    return _from_dict(cls, values, "", optional)
