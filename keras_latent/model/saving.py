"""Loading a run's `model.keras` safely: the custom layers registered, `safe_mode=True`, one-line errors."""
from __future__ import annotations

import os

import keras

import keras_latent.model.layers  # noqa: F401 (registers the custom layer and loss that model.keras names)
from keras_latent.config import DECODE_PATHS
from keras_latent.errors import UsageError
from keras_latent.model.builders import default_decode_paths, trunk_block_names
from keras_latent.runs import layout
from keras_latent.runs.records import read_json


def load_model_file(path: str, compile: bool = True) -> keras.Model:
    """A `.keras` file loaded with safe_mode=True (no Lambda code runs); an unreadable file is a UsageError."""
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as err:  # zip, h5 and deserialization errors all mean an unreadable model
        first_line = (str(err).splitlines() or [""])[0]
        raise UsageError(f"cannot load {path}: {type(err).__name__}: {first_line}") from None


def load_run_model(run_dir: str, compile: bool = True) -> keras.Model:
    """A run's model.keras; a missing or corrupt file is a one-line UsageError."""
    path = layout.MODEL.path(run_dir)
    if not os.path.isfile(path):
        raise UsageError(f"{run_dir!r} has no {layout.MODEL.name}: its training has not finished "
                         f"(rerun the same {layout.TRAIN} command to resume it)")
    return load_model_file(path, compile=compile)


def checked_decode_paths(decode_paths, model: keras.Model) -> dict[str, str] | None:
    """`decode_paths` when it is {trunk layer: one of DECODE_PATHS} for exactly this model's layers, else None."""
    names = set(trunk_block_names(model))
    if (isinstance(decode_paths, dict) and set(decode_paths) == names
            and all(p in DECODE_PATHS for p in decode_paths.values())):
        return decode_paths
    return None


def run_decode_paths(run_dir: str, model: keras.Model) -> dict[str, str]:
    """Each layer's faithful decode path for a run: as measured at training (metrics.json's
    faithfulness.decode_paths), else `default_decode_paths` (runs from before the measurement)."""
    measured = ((read_json(layout.METRICS.path(run_dir)) or {}).get("faithfulness") or {}).get("decode_paths")
    return checked_decode_paths(measured, model) or default_decode_paths(model)
