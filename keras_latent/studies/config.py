"""Settings of a study: the frozen StudyConfig (variants x seeds), its validation, and the variants made from
training flags (`--variant wide="--filters 32,64"`).

Light on purpose (no TensorFlow import): the command checks its flags here before TensorFlow loads.
`keras_latent.studies.run` trains the runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import shlex

from keras_latent import config as cfg
from keras_latent.cli import CliParser
from keras_latent.errors import UsageError
from keras_latent.runs import layout
from keras_latent.training.options import add_training_flags, config_from_flags

BASELINE = "classifier-only"  # the task-1 baseline: --no-decoder
TWO_OUTPUT = "two-output"  # the default model: classifier and reconstruction
DEFAULT_SEEDS = 5
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a folder name: runs/<variant>/
# Settings every variant shares, so that all runs are tested on the same images: (TrainConfig path, its flag).
SHARED_DATA = (("data.dataset", "--dataset"), ("data.tfds_data_dir", "--tfds-data-dir"),
               ("data.test_fraction", "--test-fraction"), ("data.split_seed", "--split-seed"))
# Flags a variant may not set: the study's own (its seeds, its data and split, the process's threads).
STUDY_ONLY_FLAGS = (("seed", "--seed"), ("split_seed", "--split-seed"), ("dataset", "--dataset"),
                    ("tfds_data_dir", "--tfds-data-dir"), ("test_fraction", "--test-fraction"),
                    ("intra_op_threads", "--intra-op-threads"), ("inter_op_threads", "--inter-op-threads"))


@dataclasses.dataclass(frozen=True)
class Variant:
    """One model or training setting of a study, trained once per seed."""

    name: str  # folder name (runs/<name>/) and label in tables and plots
    train: cfg.TrainConfig  # its training config; each run replaces `seed` (and fixes data.split_seed, see run_config)
    flags: str = ""  # the training flags that set it apart (shown in tables; informative only)


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Variants x seeds: every variant is trained once with each seed, on the same data and test split."""

    variants: tuple[Variant, ...] = (
        Variant(BASELINE, cfg.TrainConfig(model=cfg.ModelConfig(decoder=False)), "--no-decoder"),
        Variant(TWO_OUTPUT, cfg.TrainConfig()))
    seeds: tuple[int, ...] = tuple(range(DEFAULT_SEEDS))  # run seeds; runs of one seed are paired across variants


def run_config(variant: Variant, seed: int) -> cfg.TrainConfig:
    """The TrainConfig of `variant`'s run with `seed`: the held-out split and the --max-train-samples subset stay
    those of the variant's own seed (data.split_seed), so every run of the study is tested on the same images.
    Defaults worked out later are made explicit, as the run's config.json records them."""
    train = variant.train
    split_seed = train.seed if train.data.split_seed is None else train.data.split_seed
    return cfg.resolve_defaults(dataclasses.replace(train, seed=seed,
                                                    data=dataclasses.replace(train.data, split_seed=split_seed)))


def _shared_value(train: cfg.TrainConfig, path: str):
    if path == "data.split_seed":
        return train.seed if train.data.split_seed is None else train.data.split_seed
    section, name = path.split(".")
    return getattr(getattr(train, section), name)


def validate_study(study: StudyConfig) -> StudyConfig:
    """Raise UsageError naming what is wrong, what is allowed and what was received."""
    if not study.variants:
        raise UsageError("a study needs at least one variant, got none")
    names = [v.name for v in study.variants]
    for name in names:
        if not VARIANT_NAME.fullmatch(name):
            raise UsageError(f"variant names must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or "
                             f"digit (they name folders), got {name!r}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"variant names must be unique, got {', '.join(twice)} twice")
    if not study.seeds or any(s < 0 for s in study.seeds) or len(set(study.seeds)) != len(study.seeds):
        raise UsageError(f"seeds must be distinct integers >= 0, at least one, got "
                         f"{', '.join(map(str, study.seeds)) or 'none'}")
    first = study.variants[0]
    for variant in study.variants:
        try:
            cfg.validate(variant.train)
        except UsageError as err:
            raise UsageError(f"variant {variant.name}: {err}") from None
        if variant.train.strategy == "multiworker":
            raise UsageError(f"variant {variant.name}: a study trains its runs one after the other in one process; "
                             "--strategy must be default or mirrored, got multiworker")
        for path, flag in SHARED_DATA:
            if _shared_value(variant.train, path) != _shared_value(first.train, path):
                raise UsageError(f"every variant must be tested on the same data and split, but {variant.name} has "
                                 f"{flag} {_shared_value(variant.train, path)!r} and {first.name} "
                                 f"{_shared_value(first.train, path)!r}")
    return study


# ---------------------------------------------------------------- from flags


def variant_parser(base: argparse.Namespace) -> CliParser:
    """A parser of the training flags whose defaults are the study's own flags (`base`)."""
    parser = CliParser(prog=layout.STUDY, add_help=False)
    add_training_flags(parser)
    parser.set_defaults(**vars(base))
    return parser


def parse_variant(spec: str) -> tuple[str, list[str]]:
    """`NAME=FLAGS` (as `--variant wide="--filters 32,64"` reaches the program) -> (name, flag words)."""
    name, sep, flags = spec.partition("=")
    if not sep or not name.strip():
        raise UsageError(f'--variant must be NAME="TRAINING FLAGS", e.g. --variant wide="--filters 32,64", '
                         f"got {spec!r}")
    try:
        return name.strip(), shlex.split(flags)
    except ValueError as err:
        raise UsageError(f"--variant {name.strip()}: cannot split {flags!r} into flags ({err})") from None


def variant_from_flags(name: str, words: list[str], base: argparse.Namespace) -> Variant:
    """The study's training flags (`base`) with `words` on top, as a Variant. --weights-from applies to models
    with a decoder only: the classifier-only runs keep --ce-weight (default 1), the plain task-1 classifier."""
    try:
        args = variant_parser(base).parse_args(words)
        fixed = [flag for dest, flag in STUDY_ONLY_FLAGS if getattr(args, dest) != getattr(base, dest)]
        if fixed:
            raise UsageError(f"may not set {', '.join(fixed)}: the study sets them for every run (its own --seed, "
                             "--seeds and data flags), so that all runs are paired and tested on the same images")
        if args.no_decoder:
            args.weights_from = None
        train = config_from_flags(args)
    except UsageError as err:
        raise UsageError(f"variant {name}: {err}") from None
    return Variant(name, train, shlex.join(words))


def study_config_from_flags(args: argparse.Namespace, variant_specs: list[str]) -> StudyConfig:
    """The two built-in variants (classifier-only, two-output) and one per `--variant NAME=FLAGS`, on the study's
    training flags `args`; seeds --seed .. --seed + --seeds - 1."""
    if args.no_decoder:
        raise UsageError(f"--no-decoder is the {BASELINE} variant's; the study trains it beside the {TWO_OUTPUT} "
                         f"model anyway (a variant of your own takes it: --variant NAME=\"--no-decoder ...\")")
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    builtin = [(BASELINE, ["--no-decoder"]), (TWO_OUTPUT, [])]
    extra = [parse_variant(spec) for spec in variant_specs]
    taken = [name for name, _ in extra if name in (BASELINE, TWO_OUTPUT)]
    if taken:
        raise UsageError(f"--variant {taken[0]}: {BASELINE} and {TWO_OUTPUT} are the study's own variants; "
                         "choose another name")
    variants = tuple(variant_from_flags(name, words, args) for name, words in builtin + extra)
    return validate_study(StudyConfig(variants=variants, seeds=tuple(range(args.seed, args.seed + args.seeds))))


def study_spec(study: StudyConfig) -> dict:
    """study.json's content: the seeds and, per variant, its name, flags and TrainConfig."""
    return {"seeds": list(study.seeds),
            "variants": [{"name": v.name, "flags": v.flags, "train": cfg.to_json_dict(v.train)}
                         for v in study.variants]}
