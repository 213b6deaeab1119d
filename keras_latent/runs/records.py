"""Reading and writing a run's records: config.json, history.csv, a search's best.json (for --weights-from),
and JSON/CSV/.npz files in general.

Every reader returns None for a file that is not there (callers decide whether that is fine) and
raises UsageError for a file that is there but unreadable: one line naming the file. Writers are
atomic (`keras_latent.files`). No TensorFlow import.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import zipfile

from keras_latent.config import TrainConfig, from_dict, to_dict
from keras_latent.errors import UsageError
from keras_latent.files import atomic_write_bytes, atomic_write_text, recover_directory
from keras_latent.runs import layout


def read_json(path: str) -> dict | None:
    """A JSON object from `path`; None when the file does not exist."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{path} must hold a JSON object, got {type(value).__name__}")
    return value


def read_csv(path: str, required: tuple[str, ...] = ()) -> list[dict] | None:
    """Rows of a CSV file as dicts; `required` columns must be in its header. None when absent."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UsageError(f"{path} is not a readable CSV file: {err}") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise UsageError(f"{path} lacks the columns {', '.join(missing)}; expected at least {', '.join(required)}, "
                         f"got {', '.join(header) or 'no header'}")
    return rows


def read_arrays(path: str, allowed: tuple[str, ...]) -> dict | None:
    """The numeric arrays of an .npz file ({name: numpy array}), loaded without pickle (a file is data, never
    code); names outside `allowed` or object arrays are a UsageError. None when the file does not exist."""
    import numpy as np

    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UsageError(f"{path} is not a readable .npz file of numeric arrays: {err}") from None
    unknown = sorted(set(arrays) - set(allowed))
    if unknown or any(a.dtype.kind not in "biuf" for a in arrays.values()):
        raise UsageError(f"{path} may hold only the numeric arrays {', '.join(allowed)}, got "
                         f"{', '.join(f'{n} ({a.dtype})' for n, a in arrays.items())}")
    return arrays


def write_arrays(path: str, arrays: dict) -> None:
    """Numeric arrays as one compressed .npz file, written atomically."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def csv_text(header: list[str], rows: list[list]) -> str:
    """A CSV document: the header, then the rows; floats with 6 significant digits."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[f"{v:.6g}" if isinstance(v, float) else v for v in row] for row in rows])
    return out.getvalue()


def write_json(path: str, value: dict) -> None:
    """`value` as indented JSON, atomically; NaN and infinity are refused (they are not JSON)."""
    atomic_write_text(path, json.dumps(value, indent=2, allow_nan=False) + "\n")


# ---------------------------------------------------------------- config.json


def save_config(config: TrainConfig, run_dir: str) -> str:
    path = layout.CONFIG.path(run_dir)
    atomic_write_text(path, json.dumps(to_dict(config), indent=2) + "\n")
    return path


def load_config(run_dir: str) -> TrainConfig:
    """Read a run folder's config.json; a folder that is not a run is a UsageError."""
    path = layout.CONFIG.path(run_dir)
    if not os.path.isfile(path):
        raise UsageError(f"{run_dir!r} is not a run folder: it has no {layout.CONFIG.name} "
                         f"(made by {layout.TRAIN})")
    try:
        with open(path, encoding="utf-8") as f:
            return from_dict(json.load(f))
    except (json.JSONDecodeError, TypeError, AttributeError) as err:
        raise UsageError(f"{path} is not a valid run config: {err}") from None


# ---------------------------------------------------------------- history.csv


def read_history_csv(path: str) -> dict[str, list[float]]:
    """history.csv -> {column: values}, without the epoch column."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in (rows[0].keys() if rows else []) if k != "epoch"]
    return {k: [float(r[k]) for r in rows] for k in keys}


def read_history(run_dir: str) -> dict[str, list[float]] | None:
    """A run's history.csv as {column: values}; None when it has no rows yet."""
    path = layout.HISTORY.path(run_dir)
    rows = read_csv(path, required=("epoch",))
    if not rows:
        return None
    try:
        return read_history_csv(path)
    except ValueError as err:
        raise UsageError(f"{path} holds a non-number: {err}") from None


def history_csv_text(rows: list[dict]) -> str:
    """history.csv from rows of {"epoch": e, column: value}: epoch first, then the columns sorted."""
    keys = ["epoch"] + sorted({k for r in rows for k in r} - {"epoch"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


# ---------------------------------------------------------------- backup/


def read_backup_epoch(backup_dir: str) -> int | None:
    """Finished epochs recorded in a BackupAndRestore folder, or None when there is no usable backup."""
    recover_directory(backup_dir)
    try:
        with open(layout.BACKUP_METADATA.path(backup_dir), encoding="utf-8") as f:
            return int(json.load(f)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---------------------------------------------------------------- best.json of a loss-weight search


def read_best_weights(path: str) -> tuple[float, float]:
    """(ce_weight, recon_weight) from a search's best.json, or from the results folder holding it."""
    if os.path.isdir(path):
        path = layout.BEST.path(path)
    if not os.path.isfile(path):
        raise UsageError(f"--weights-from {path!r}: no such file; expected the {layout.BEST.name} written by "
                         f"{layout.SEARCH} (e.g. tuning/results/loss_weights_grid/best.json)")
    try:
        with open(path, encoding="utf-8") as f:
            best = json.load(f)
        weights = (best["ce_weight"], best["recon_weight"])
    except (OSError, ValueError, KeyError, TypeError) as err:  # JSONDecodeError and UnicodeDecodeError: ValueError
        raise UsageError(f"--weights-from {path!r} is not a valid {layout.BEST.name} ({type(err).__name__}: {err}); "
                         "expected JSON with numeric ce_weight and recon_weight") from None
    if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w >= 0
               for w in weights):
        raise UsageError(f"--weights-from {path!r}: ce_weight and recon_weight must be numbers >= 0, "
                         f"got {weights[0]!r} and {weights[1]!r}")
    return float(weights[0]), float(weights[1])
