"""What each JSON and CSV file the project reads back may hold: one small declarative schema per file.

A file on disk is data that a crash, an editor or another program may have changed. The readers
(`keras_latent.runs.records.read_json` and `read_csv`) check every file against its schema here
before anything uses it, so a missing or edited field is one line naming the file, the field, what
is allowed and what was found, and the command that rebuilds the file (`layout.damaged`), instead
of a KeyError deep inside the report. `config.json` and `search.json` are checked against their
dataclasses instead (`keras_latent.config.from_dict`), so a new config field needs no schema line.

Adding a field to a file is one line in its schema. JSON keys a schema does not name are allowed
(a newer writer may add keys; readers ignore what they do not know); CSV columns a schema does not
name must hold what its `others` says. No TensorFlow import.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable
from typing import Any

from keras_latent.config import DECODE_PATHS
from keras_latent.errors import UsageError, shown
from keras_latent.runs import layout

TRIAL_STATUSES = ("RUNNING", "IDLE", "INVALID", "STOPPED", "COMPLETED", "FAILED")  # keras_tuner TrialStatus
TRIAL_COLUMNS = ("trial_id", "ce_weight", "recon_weight", "executions", "val_accuracy", "val_accuracy_sd",
                 "val_accuracy_se", "val_recon_mse", "val_recon_mse_sd", "val_recon_mse_se", "p_vs_best",
                 "within_noise", "epochs", "seconds", "status")  # trials.csv, in this order
WITHIN_NOISE = ("best", "yes", "no")  # trials.csv's within_noise


@dataclasses.dataclass(frozen=True)
class Field:
    """What one JSON field, or the cells of one CSV column, may hold."""

    allowed: str  # in words, for the error message: "a number from 0 to 1"
    test: Callable[[Any], bool]  # True when a value is allowed
    required: bool = True
    items: Field | None = None  # a list: what each item may hold
    values: Field | None = None  # an object of any keys: what each value may hold
    record: dict[str, Field] | None = None  # an object with named fields


@dataclasses.dataclass(frozen=True)
class CsvSchema:
    columns: dict[str, Field]  # named columns (required ones must be in the header)
    others: Field | None = None  # what every other column's cells may hold (None: anything)
    rows: Callable[[list[dict]], str | None] | None = None  # a check across rows: a problem, or None


def optional(field: Field) -> Field:
    return dataclasses.replace(field, required=False)


# ---------------------------------------------------------------- JSON values


def _is_number(value, finite: bool = True) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and (math.isfinite(value) or not finite))


def _bounds(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    return f" >= {lo}" if lo is not None else ""


def _in_bounds(value, lo, hi) -> bool:
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _or_null(field: Field, null: bool) -> Field:
    if not null:
        return field
    return dataclasses.replace(field, allowed=field.allowed + " or null",
                               test=lambda v, test=field.test: v is None or test(v))


def number(lo=None, hi=None, null: bool = False, finite: bool = True) -> Field:
    words = "a number" + _bounds(lo, hi) + ("" if finite else " (NaN allowed)")
    return _or_null(Field(words, lambda v: _is_number(v, finite) and (not math.isfinite(v) or _in_bounds(v, lo, hi))),
                    null)


def integer(lo=None, null: bool = False) -> Field:
    return _or_null(Field("an integer" + _bounds(lo, None),
                          lambda v: isinstance(v, int) and not isinstance(v, bool) and _in_bounds(v, lo, None)), null)


def text(choices: tuple[str, ...] | None = None, null: bool = False) -> Field:
    words = f"one of {', '.join(choices)}" if choices else "a string"
    return _or_null(Field(words, lambda v: isinstance(v, str) and (not choices or v in choices)), null)


def anything() -> Field:
    return Field("any JSON value", lambda v: True)


def list_of(item: Field, words: str) -> Field:
    return Field(f"a list of {words}", lambda v: isinstance(v, list), items=item)


def mapping(value: Field, words: str) -> Field:
    return Field(f"an object of {words}", lambda v: isinstance(v, dict), values=value)


def record(fields: dict[str, Field], words: str) -> Field:
    return Field(f"an object with {words}", lambda v: isinstance(v, dict), record=fields)


# ---------------------------------------------------------------- CSV cells (strings)


def _float_or_none(cell: str) -> float | None:
    try:
        return float(cell)
    except (TypeError, ValueError):
        return None


def number_cell(lo=None, hi=None, empty: bool = False, finite: bool = True) -> Field:
    def test(cell) -> bool:
        if cell == "":
            return empty
        value = _float_or_none(cell)
        return value is not None and (not finite or math.isfinite(value)) and (
            not math.isfinite(value) or _in_bounds(value, lo, hi))

    words = "a number" + _bounds(lo, hi) + ("" if finite else " (nan and inf allowed)") + (" or empty" if empty else "")
    return Field(words, test)


def integer_cell(lo=None, empty: bool = False) -> Field:
    def test(cell) -> bool:
        if cell == "":
            return empty
        return isinstance(cell, str) and re.fullmatch(r"\s*-?[0-9]+\s*", cell) is not None and _in_bounds(
            int(cell), lo, None)

    return Field("an integer" + _bounds(lo, None) + (" or empty" if empty else ""), test)


def text_cell(choices: tuple[str, ...] | None = None, empty: bool = False) -> Field:
    words = f"one of {', '.join(choices)}" if choices else "a non-empty string"
    return Field(words + (" or empty" if empty and choices else ""),
                 lambda v: isinstance(v, str) and ((v == "" and empty) or (v != "" and (not choices or v in choices))))


# ---------------------------------------------------------------- checking


class _Invalid(Exception):
    def __init__(self, where: str, field: Field, value: Any = None, missing: bool = False):
        super().__init__(where)
        self.where, self.field, self.value, self.missing = where, field, value, missing

    def problem(self) -> str:
        if self.missing:
            return f"lacks the field {self.where!r} ({self.field.allowed})"
        return f"field {self.where!r} must be {self.field.allowed}, got {shown(self.value)}"


def _check(field: Field, value: Any, where: str) -> None:
    if not field.test(value):
        raise _Invalid(where, field, value)
    if value is None:  # null, where the field allows it: nothing inside to check
        return
    if field.items is not None:
        for i, item in enumerate(value):
            _check(field.items, item, f"{where}[{i}]")
    if field.values is not None:
        for key, item in value.items():
            _check(field.values, item, f"{where}.{key}")
    if field.record is not None:
        _check_record(field.record, value, f"{where}.")


def _check_record(fields: dict[str, Field], value: dict, prefix: str = "") -> None:
    for name, field in fields.items():
        if name not in value:
            if field.required:
                raise _Invalid(prefix + name, field, missing=True)
            continue
        _check(field, value[name], prefix + name)


def check_json(path: str, value: Any, entry: layout.Entry) -> None:
    """Raise a one-line UsageError unless `value` (read from `path`) is an object that follows `entry`'s schema."""
    if not isinstance(value, dict):
        raise UsageError(layout.damaged(entry, path, f"must hold a JSON object, got {type(value).__name__}"))
    schemas = ATTACHED_JSON_SCHEMAS if value.get("kind") == "attached" else JSON_SCHEMAS
    try:
        _check_record(schemas.get(entry.name, {}), value)
    except _Invalid as bad:
        raise UsageError(layout.damaged(entry, path, bad.problem())) from None


def check_csv(path: str, header: list[str], rows: list[dict], entry: layout.Entry) -> None:
    """Raise a one-line UsageError unless the CSV `header` and `rows` (read from `path`) follow `entry`'s schema."""
    schema = CSV_SCHEMAS[entry.name]
    required = [name for name, field in schema.columns.items() if field.required]
    missing = [name for name in required if name not in header]
    if missing:
        raise UsageError(layout.damaged(entry, path, f"lacks the columns {', '.join(missing)}; expected at least "
                                        f"{', '.join(required)}, got {', '.join(header) or 'no header'}"))
    for number_, row in enumerate(rows, start=2):  # line 1 is the header
        if None in row or None in row.values():  # csv.DictReader's marks of extra and of missing cells
            cells = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None) or [])
            raise UsageError(layout.damaged(entry, path, f"line {number_} has {cells} cells but the header names "
                                            f"{len(header)} columns"))
        for column, cell in row.items():
            field = schema.columns.get(column, schema.others)
            if field is not None and not field.test(cell):
                raise UsageError(layout.damaged(entry, path, f"line {number_}, column {column!r} must be "
                                                f"{field.allowed}, got {shown(cell)}"))
    problem = schema.rows(rows) if schema.rows else None
    if problem:
        raise UsageError(layout.damaged(entry, path, problem))


# ---------------------------------------------------------------- the files


def _is_analysis_path(value) -> bool:
    """analysis/NAME where NAME is a file named in layout.ANALYSIS_FILES: never a path out of the run folder."""
    if not isinstance(value, str):
        return False
    folder, _, name = value.partition("/")
    return (folder == layout.ANALYSIS_DIR.name and name == os.path.basename(name) and "\\" not in name
            and name not in ("", ".", "..") and any(e.match(name) is not None for e in layout.ANALYSIS_FILES))


def _epochs_count_up(rows: list[dict]) -> str | None:
    epochs = [int(r["epoch"]) for r in rows]
    if epochs != list(range(1, len(epochs) + 1)):
        return f"column 'epoch' must count 1, 2, 3, ... one row per finished epoch, got {shown(epochs)}"
    return None


FRACTION = number(0, 1)
PER_CLASS_FRACTION = mapping(number(0, 1, null=True), "class name: a number from 0 to 1 or null")
DECODE_PATH_BY_LAYER = mapping(text(DECODE_PATHS), "layer: decode path")
CLASS_FIGURES = record({"precision": FRACTION, "recall": FRACTION, "f1": FRACTION, "support": integer(0)},
                       "precision, recall, f1 and support")
_ERROR = record({"mse": number(0), "psnr": number()}, "mse and psnr")
FAITHFULNESS = record({  # keras_latent.training.faithfulness.measure_faithfulness
    "layers": mapping(record(dict.fromkeys(DECODE_PATHS, _ERROR), "the error of each decode path"),
                      "layer: its all-channels decode errors"),
    "deepest_layer": text(), "mean_image": _ERROR, "decode_paths": DECODE_PATH_BY_LAYER,
    "no_better_than_mean_image": list_of(text(), "layer names")}, "each layer's decode errors and default path")
KERAS_TUNER_SPACE = record({"space": list_of(record({"class_name": text(), "config": record(
    {"name": text()}, "name")}, "class_name and config"), "hyperparameters"),
                            "values": mapping(anything(), "name: value")}, "space and values")

VERDICT = text(("pass", "weak", "fail"))
SPREAD = record({**dict.fromkeys(("mean", "sd", "ci_low", "ci_high", "p2_5", "p97_5"), number(null=True)),
                 "n": integer(0)}, "n, mean, sd, ci_low, ci_high, p2_5 and p97_5")  # similarity.summarize
P_VALUE = number(0, 1, null=True)
_DEPENDENCE = {"verdict": VERDICT, "p_value": P_VALUE, "tested_similarity": SPREAD, "threshold": number(0, 1),
               "rule": text()}  # checks.dependence_verdict
_CURVES = mapping(record({"per_step": list_of(SPREAD, "spreads"), "auc": SPREAD}, "per_step and auc"),
                  "ranking: its curve")
_MAP_CHECKS = {  # Grad-CAM of one layer, SmoothGrad: checks.cascading_randomization, random_class_test, deletion
    "cascading": optional(record({**_DEPENDENCE, "steps": list_of(text(), "layer paths"),
                                  "similarity": mapping(list_of(SPREAD, "spreads"), "measure: spread per step")},
                                 "verdict, p_value, steps and similarity")),
    "random_class": optional(record({**_DEPENDENCE, "similarity": mapping(SPREAD, "measure: spread")},
                                    "verdict, p_value and similarity")),
    "deletion_insertion": optional(record({
        "verdict": VERDICT, "fill": text(), "fractions": list_of(FRACTION, "fractions"),
        "deletion": _CURVES, "insertion": _CURVES,
        "tests": mapping(record({"better_by": SPREAD, "p_value": P_VALUE}, "better_by and p_value"),
                         "test: result"), "beats_centre_prior": mapping(Field("true or false", lambda v: isinstance(
                             v, bool)), "curve: true or false")}, "verdict, fill, curves and tests"))}
CHANNEL_DELETION = record({"verdict": VERDICT, "p_value": FRACTION, "fractions": list_of(FRACTION, "fractions"),
                           "ranking": list_of(integer(0), "channels"),
                           "ranked": record({"accuracy": list_of(number(0, 1, null=True), "accuracies"),
                                             "auc": number(0, 1)}, "accuracy and auc"),
                           "random": record({"auc": SPREAD}, "auc")}, "verdict, p_value, ranked and random")
TRUNK_CONTROL = record({  # checks.randomized_trunk_control
    "channels": list_of(record({"channel": integer(0), "rank_correlation": SPREAD, "ssim": SPREAD,
                                "verdict": text(("shows the decoder", "shows the channel", "unclear")),
                                "matched_rank_correlation": _or_null(SPREAD, True)},
                               "channel, rank_correlation, ssim and verdict"), "channels"),
    "flagged": list_of(integer(0), "channels"), "threshold": number(0, 1), "verdict": text(),
    "mse": record({"trained": SPREAD, "random": SPREAD, "model_decoder": _or_null(SPREAD, True)},
                  "trained, random and model_decoder")}, "channels, flagged and mse")
REENCODING = record({  # checks.reencoding
    "verdict": VERDICT,
    "feature_error": record({"decode": SPREAD, "mean_image": SPREAD, "p_value": P_VALUE},
                            "decode, mean_image and p_value"),
    "same_class": record({"rate": FRACTION, "n": integer(0), "chance": FRACTION, "p_value": P_VALUE},
                         "rate, n, chance and p_value"),
    "channel_lights_up": _or_null(record({"rate": FRACTION, "chance": FRACTION, "p_value": P_VALUE,
                                          "mean_rank": SPREAD, "chance_mean_rank": number(0),
                                          "per_channel": mapping(FRACTION, "channel: rate")},
                                         "rate, chance, p_value and per_channel"), True)},
    "verdict, feature_error, same_class and channel_lights_up")
SANITY = {  # analysis/sanity.json: keras_latent.analysis.sanity.run_sanity_checks + analysis.sanity_method
    "settings": record({"images": integer(2), "seed": integer(0), "threshold": number(0, 1)},
                       "images, seed and threshold"),
    "image_indices": list_of(integer(0), "test image indices"),
    "cascade_layers": list_of(text(), "layer paths"),
    "gradcam": mapping(record(_MAP_CHECKS, "its checks"), "layer: its checks"),
    "smoothgrad": record(_MAP_CHECKS, "its checks"),
    "ablation": mapping(record({"cascading": _MAP_CHECKS["cascading"],
                                "channel_deletion": optional(CHANNEL_DELETION)}, "its checks"), "layer: its checks"),
    "decode": mapping(record({"randomized_trunk": optional(TRUNK_CONTROL), "reencoding": optional(REENCODING),
                              "channel_deletion": optional(CHANNEL_DELETION)}, "its checks"), "layer: its checks"),
    "verdicts": mapping(record({"verdict": VERDICT, "checks": mapping(VERDICT, "check: verdict"), "line": text()},
                               "verdict, checks and line"), "view: its verdict"),
    "timings_s": mapping(number(0), "part: seconds"),
    "figures": mapping(Field("analysis/NAME, NAME a figure named in keras_latent.runs.layout", _is_analysis_path),
                       "figure name: path"),
    "seconds": number(0),
    "layers": optional(list_of(text(), "layer names")),
    "decode_paths": optional(DECODE_PATH_BY_LAYER),
    "dataset": optional(text()),
}

JSON_SCHEMAS: dict[str, dict[str, Field]] = {
    layout.METRICS.name: {
        "test_accuracy": FRACTION,
        "per_class_accuracy": PER_CLASS_FRACTION,
        "test_reconstruction_mse": optional(number(0)),
        "epochs": integer(1),
        "resumed_from_epoch": integer(0),
        "seconds": number(0),
        "images_per_s": number(0),
        "dataset": text(),
        "train_images": integer(0),
        "test_images": integer(0),
        "faithfulness": optional(FAITHFULNESS),
        # from issue 21 on (older runs lack them: the report names the command that adds them)
        "per_class": optional(mapping(CLASS_FIGURES, "class name: precision, recall, f1 and support")),
        "averages": optional(record({"macro": CLASS_FIGURES, "weighted": CLASS_FIGURES}, "macro and weighted")),
        "confusion_matrix": optional(list_of(list_of(integer(0), "counts"), "rows of counts (true class)")),
    },
    layout.MODEL_SUMMARY.name: {
        "name": text(),
        "layers": list_of(record({"name": text(), "type": text(), "shape": text(), "params": integer(0),
                                  "depth": integer(0)}, "name, type, shape, params and depth"), "layers"),
        "trainable_params": integer(0),
        "non_trainable_params": integer(0),
    },
    layout.ANALYSIS_SUMMARY.name: {
        "mode": text(("keep", "drop")),
        "layers": list_of(text(), "layer names"),
        "images": list_of(record({"split": text(("train", "test")), "index": integer(0), "label": optional(text()),
                                  "class_index": optional(integer(0))}, "split, index and label"), "images"),
        "files": list_of(record({"kind": text(), "path": Field(
            "analysis/NAME, NAME a figure named in keras_latent.runs.layout", _is_analysis_path),
            "layer": optional(text()), "split": optional(text(("train", "test"))), "index": optional(integer(0))},
            "kind and path"), "figures"),
        "intact_accuracy": FRACTION,
        "intact_per_class_accuracy": optional(PER_CLASS_FRACTION),
        "top_channels": mapping(list_of(record({"channel": integer(0), "accuracy_drop": number(-1, 1)},
                                               "channel and accuracy_drop"), "channels"), "layer: ranked channels"),
        "class_channels": mapping(mapping(list_of(integer(0), "channels"), "class: channels"),
                                  "layer: channels ranked per class"),
        "dataset": optional(text()),
        "test_images": optional(integer(0)),
        "channels": optional(mapping(list_of(integer(0), "channels"), "layer: channels")),
        "faithfulness": optional(_or_null(FAITHFULNESS, True)),  # null without a decoder
        "decode_paths": optional(DECODE_PATH_BY_LAYER),
        "decode_path_setting": optional(text(("auto", *DECODE_PATHS))),
    },
    layout.BEST.name: {
        "ce_weight": number(0),
        "recon_weight": number(0),
        "val_accuracy": FRACTION,
        "val_recon_mse": number(0),
        "trial_id": text(),
        "best_epoch": optional(integer(1, null=True)),
        "epochs": optional(integer(0, null=True)),
        "seconds": optional(number(0, null=True)),
        "objective": optional(text()),
        "direction": optional(text(("max", "min"))),
        "tuner": optional(text()),
        "dataset": optional(text()),
        "max_train_samples": optional(integer(1, null=True)),
        "val_fraction": optional(FRACTION),
        "epochs_per_trial": optional(integer(1)),
        "seed": optional(integer(0)),
        "completed_trials": optional(integer(0)),
        "trials": optional(integer(0)),
        "pareto_trial_ids": optional(list_of(text(), "trial ids")),
        "train_command": optional(text()),
    },
    layout.BACKUP_METADATA.name: {"epoch": integer(0), "batch": optional(integer())},
    layout.ORACLE_STATE.name: {
        "ongoing_trials": mapping(text(), "tuner id: trial id"),
        "hyperparameters": KERAS_TUNER_SPACE,
        "start_order": list_of(text(), "trial ids"),
        "end_order": list_of(text(), "trial ids"),
        "run_times": mapping(integer(0), "trial id: count"),
        "retry_queue": list_of(text(), "trial ids"),
        "seed": integer(),
        "seed_state": integer(),
        "tried_so_far": list_of(text(), "hashes"),
        "id_to_hash": mapping(text(), "trial id: hash"),
    },
    layout.TRIAL_STATE.name: {
        "trial_id": text(),
        "hyperparameters": KERAS_TUNER_SPACE,
        "metrics": record({"metrics": mapping(record({"direction": text(("min", "max")), "observations": list_of(
            record({"value": list_of(number(finite=False), "numbers"), "step": integer(0)}, "value and step"),
            "observations")}, "direction and observations"), "metric name: history")}, "metrics"),
        "score": number(null=True, finite=False),
        "best_step": integer(null=True),
        "status": text(TRIAL_STATUSES),
        "message": optional(text(null=True)),
    },
    layout.SANITY_SUMMARY.name: SANITY,
    # config.json and search.json: their dataclasses (config.from_dict); {tuner_id}.json: any object
}

# Files of an attached run (python -m keras_latent.attach) whose content says "kind": "attached".
ATTACHED_FAITHFULNESS = record({  # keras_latent.attached.faithfulness.faithfulness_table
    "layers": mapping(record({"mse": number(0), "psnr": number(), "normalized_error_pct": number(0)},
                             "mse, psnr and normalized_error_pct"), "layer: its all-channels decode figures"),
    "mean_image": record({"mse": number(0), "psnr": number(), "normalized_error_pct": number(0)},
                         "mse, psnr and normalized_error_pct"),
    "pair_distance": number(0), "no_better_than_mean_image": list_of(text(), "layer names")},
    "each layer's decode figures and the mean image's")
ATTACHED_JSON_SCHEMAS: dict[str, dict[str, Field]] = {
    layout.CONFIG.name: {
        "kind": text(("attached",)), "attach": record({"model_path": text()}, "model_path"),
        "source": record({"path": text(), "sha256": text(), "weights_digest": text(),
                          "imports": list_of(text(), "module names")}, "path, sha256, weights_digest, imports"),
        "layers": list_of(text(), "layer paths"),
        "layer_shapes": mapping(list_of(integer(1), "sizes"), "layer: (h, w, c)"),
        "image": record({"height": integer(1), "width": integer(1), "channels": integer(1),
                         "input_range": list_of(number(), "lo, hi")}, "height, width, channels, input_range"),
        "class_output": text(), "output_kind": text(("probabilities", "logits")), "score_source": text(),
        "num_classes": integer(1), "decoder": record({"epochs": integer(1), "channel_dropout": number(0, 1)},
                                                     "epochs and channel_dropout"),
        "train": record({"data": record({"dataset": text()}, "dataset"), "seed": integer(0)}, "data and seed"),
    },
    layout.METRICS.name: {
        "kind": text(("attached",)), "faithfulness": ATTACHED_FAITHFULNESS,
        "test_accuracy": number(0, 1, null=True),
        "classes_match": Field("true or false", lambda v: isinstance(v, bool)),
        "dataset": text(), "train_images": integer(0), "test_images": integer(0), "epochs": integer(1),
        "seconds": number(0), "layers": list_of(text(), "layer paths"),
    },
    layout.ANALYSIS_SUMMARY.name: {
        **{k: v for k, v in JSON_SCHEMAS[layout.ANALYSIS_SUMMARY.name].items() if k != "faithfulness"},
        "kind": text(("attached",)), "faithfulness": ATTACHED_FAITHFULNESS,
    },
}

CSV_SCHEMAS: dict[str, CsvSchema] = {
    layout.HISTORY.name: CsvSchema({"epoch": integer_cell(1), "loss": number_cell(finite=False)},
                                   others=number_cell(finite=False, empty=True), rows=_epochs_count_up),
    layout.ABLATION.name: CsvSchema({"layer": text_cell(), "channel": integer_cell(0), "accuracy": number_cell(0, 1),
                                     "accuracy_drop": number_cell(-1, 1)}, others=number_cell(0, 1, finite=False)),
    layout.CHANNEL_STATS.name: CsvSchema({"layer": text_cell(), "channel": integer_cell(0),
                                          "mean_activation": number_cell()}, others=number_cell(finite=False)),
    layout.TRIALS.name: CsvSchema({
        "trial_id": text_cell(), "ce_weight": number_cell(0), "recon_weight": number_cell(0),
        "val_accuracy": number_cell(0, 1, empty=True, finite=False),
        "val_recon_mse": optional(number_cell(0, empty=True, finite=False)),
        "epochs": optional(integer_cell(0, empty=True)), "seconds": optional(number_cell(0, empty=True)),
        "status": optional(text_cell(TRIAL_STATUSES)), "executions": optional(integer_cell(1, empty=True)),
        **{f"{name}_{spread}": optional(number_cell(0, empty=True, finite=False))
           for name in ("val_accuracy", "val_recon_mse") for spread in ("sd", "se")},
        "p_vs_best": optional(number_cell(0, 1, empty=True)),
        "within_noise": optional(text_cell(WITHIN_NOISE, empty=True))}),
    layout.FEATURES_TABLE.name: CsvSchema({
        "layer": text_cell(), "channel": integer_cell(0), "optimized_activation": number_cell(),
        "best_test_activation": number_cell(), "best_test_index": integer_cell(0)}),
    layout.STUDY_CSV.name: CsvSchema({
        "variant": text_cell(), "seed": integer_cell(0), "test_accuracy": number_cell(0, 1),
        "test_reconstruction_mse": optional(number_cell(0, empty=True)),
        "seconds": optional(number_cell(0, empty=True)),
        "epochs": optional(integer_cell(0, empty=True)), "run": optional(text_cell())},
        others=number_cell(0, 1, empty=True)),  # acc_<class>: empty for a class with no test image
}
