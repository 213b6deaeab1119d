"""Reading and writing a run's records: config.json, history.csv, a search's best.json (for --weights-from),
and JSON/CSV/.npz files in general.

Every reader returns None for a file that is not there (callers decide whether that is fine) and
raises UsageError for a file that is there but unreadable or does not follow its schema
(`keras_latent.runs.schemas`): one line naming the file, the field, what is allowed and what was
found, and the command that rebuilds it. Writers are atomic (`keras_latent.files`). No TensorFlow import.
"""
from __future__ import annotations

import csv
import io
import json
import os
import zipfile

from keras_latent.config import TrainConfig, from_dict, to_dict, validate
from keras_latent.errors import UsageError
from keras_latent.files import atomic_write_bytes, atomic_write_text, recover_directory
from keras_latent.runs import layout, schemas

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _load_json(path: str, entry: layout.Entry):
    try:
        if os.path.getsize(path) == 0:
            raise UsageError(layout.damaged(entry, path, "is empty (0 bytes)"))
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UsageError(layout.damaged(entry, path, f"is not valid JSON ({type(err).__name__}: {err})")) from None


def read_json(path: str, entry: layout.Entry) -> dict | None:
    """The JSON object in `path`, a file of `entry`, checked against its schema; None when it does not exist."""
    if not os.path.isfile(path):
        return None
    value = _load_json(path, entry)
    schemas.check_json(path, value, entry)
    return value


def read_csv(path: str, entry: layout.Entry) -> list[dict] | None:
    """Rows of the CSV file `path`, a file of `entry`, as dicts of strings, checked against its schema;
    None when it does not exist."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UsageError(layout.damaged(entry, path, f"is not a readable CSV file ({type(err).__name__}: {err})")
                         ) from None
    schemas.check_csv(path, list(header), rows, entry)
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


def read_text(path: str, entry: layout.Entry) -> str | None:
    """The UTF-8 text file `path` (a file of `entry`); None when it does not exist."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(layout.damaged(entry, path, f"is not UTF-8 text ({type(err).__name__}: {err})")) from None


def read_png(path: str, entry: layout.Entry) -> bytes | None:
    """The bytes of the PNG figure `path` (a file of `entry`), checked to decode; None when it does not exist."""
    from PIL import Image

    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(PNG_SIGNATURE):
        raise UsageError(layout.damaged(entry, path, "is not a PNG image"))
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()  # every chunk's checksum, up to IEND: a truncated or edited file fails
    except Exception as err:  # Pillow raises SyntaxError, OSError, ValueError, struct.error, ...
        raise UsageError(layout.damaged(entry, path, f"is a damaged PNG image ({type(err).__name__}: {err})")) from None
    return data


def check_file(entry: layout.Entry, path: str) -> None:
    """Check the existing file (or folder) `path` of `entry` by its kind: JSON and CSV against their schemas,
    PNG and .keras files by their content, text as UTF-8; one line naming it when it is damaged."""
    name = entry.name
    if entry.folder:
        if not os.path.isdir(path):
            raise UsageError(layout.damaged(entry, path, "is not a folder"))
    elif name.endswith(".json"):
        read_json(path, entry)
    elif name.endswith(".csv"):
        read_csv(path, entry)
    elif name.endswith(".png"):
        read_png(path, entry)
    elif name.endswith(".txt"):
        read_text(path, entry)
    elif name.endswith(".keras") and not zipfile.is_zipfile(path):
        raise UsageError(layout.damaged(entry, path, "is damaged (not a .keras zip archive)"))


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

ATTACHED_KIND = "attached"  # config.json's "kind" of a run with decoders attached to a user's model (issue 22)


def read_config_json(run_dir: str) -> dict | None:
    """config.json's content, checked against its schema (None when absent)."""
    return read_json(layout.CONFIG.path(run_dir), layout.CONFIG)


def run_kind(run_dir: str, values: dict | None = None) -> str:
    """config.json's "kind": "attached" for decoders attached to a user's model, "trained" for a run `train` made
    (whose config.json has no "kind": runs from before issue 22 read the same). `values`: the file's content."""
    raw = read_config_json(run_dir) if values is None else values
    return ATTACHED_KIND if raw is not None and raw.get("kind") == ATTACHED_KIND else "trained"


def read_attached(run_dir: str, values: dict | None = None) -> dict | None:
    """An attached run's config.json (checked against its schema); None for any other folder."""
    raw = read_config_json(run_dir) if values is None else values
    return raw if raw is not None and raw.get("kind") == ATTACHED_KIND else None


def save_config(config: TrainConfig, run_dir: str) -> str:
    path = layout.CONFIG.path(run_dir)
    atomic_write_text(path, json.dumps(to_dict(config), indent=2) + "\n")
    return path


def load_config(run_dir: str, values: dict | None = None) -> TrainConfig:
    """Read a run folder's config.json, every field checked; a folder that is not a run is a UsageError.
    `values`: config.json's content already read (`read_config_json`), so the file is read once."""
    path = layout.CONFIG.path(run_dir)
    if not os.path.isfile(path):
        if any(os.path.exists(e.path(run_dir)) for e in (layout.MODEL, layout.HISTORY, layout.METRICS, layout.BACKUP)):
            raise UsageError(layout.damaged(layout.CONFIG, path, "is missing (the other files of a run are there)"))
        raise UsageError(f"{run_dir!r} is not a run folder: it has no {layout.CONFIG.name} "
                         f"(made by {layout.TRAIN})")
    values = read_json(path, layout.CONFIG) if values is None else values
    if values.get("kind") == ATTACHED_KIND:  # an attached run: its data recipe and seed, as a TrainConfig
        values = values["train"]
    try:
        return validate(from_dict(values))
    except UsageError as err:
        raise UsageError(layout.damaged(layout.CONFIG, path, f"is not a valid run config: {err}")) from None


# ---------------------------------------------------------------- history.csv


def _number(cell: str) -> float:
    return float(cell) if cell != "" else float("nan")


def read_history_csv(path: str) -> dict[str, list[float]]:
    """history.csv -> {column: values}, without the epoch column (checked; empty cells are NaN)."""
    rows = read_csv(path, layout.HISTORY) or []
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    return {k: [_number(r[k]) for r in rows] for k in keys}


def read_history(run_dir: str) -> dict[str, list[float]] | None:
    """A run's history.csv as {column: values}; None when it is absent or has no rows yet."""
    path = layout.HISTORY.path(run_dir)
    if not os.path.isfile(path):
        return None
    return read_history_csv(path) or None


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
    """Finished epochs recorded in a BackupAndRestore folder; None when there is no backup. A backup that is
    there but damaged (epoch count or weights missing or unreadable) is a one-line UsageError."""
    recover_directory(backup_dir)
    if not os.path.isdir(backup_dir):
        return None
    metadata, weights = layout.BACKUP_METADATA.path(backup_dir), layout.BACKUP_WEIGHTS.path(backup_dir)
    for entry, path in ((layout.BACKUP_METADATA, metadata), (layout.BACKUP_WEIGHTS, weights)):
        if not os.path.isfile(path):
            raise UsageError(layout.damaged(entry, path, f"is missing from the resume point {backup_dir}"))
    epoch = read_json(metadata, layout.BACKUP_METADATA)["epoch"]
    with open(weights, "rb") as f:
        if f.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
            raise UsageError(layout.damaged(layout.BACKUP_WEIGHTS, weights, "is not an HDF5 weights file"))
    return epoch


# ---------------------------------------------------------------- best.json of a loss-weight search


def read_best_weights(path: str) -> tuple[float, float]:
    """(ce_weight, recon_weight) from a search's best.json, or from the results folder holding it."""
    if os.path.isdir(path):
        path = layout.BEST.path(path)
    if not os.path.isfile(path):
        raise UsageError(f"--weights-from {path!r}: no such file; expected the {layout.BEST.name} written by "
                         f"{layout.SEARCH} (e.g. tuning/results/loss_weights_grid/best.json)")
    best = read_json(path, layout.BEST)  # checked: ce_weight and recon_weight are numbers >= 0
    return float(best["ce_weight"]), float(best["recon_weight"])
