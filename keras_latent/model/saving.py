"""Loading a run's `model.keras` safely: `safe_mode=True`, one-line errors, and old files' classes known.

A model.keras written since issue 21 holds standard Keras layers and built-in losses only:
`keras.saving.load_model(path)` loads it, compiled, without this package (on any backend). Files from before
name the loss `keras_latent>image_mse` (registered by `keras_latent.model.layers`) and the decoder layer
`SubPixelConv2DTranspose`, which `load_model_file` supplies from
`keras_latent.model.legacy` (as `custom_objects`, for that call only).

`open_run` opens a run folder with this model's loaders: a `runs.run.Run` that can hand out its model, layers,
decode paths and data.
"""
from __future__ import annotations

import re
import zipfile

import keras

import keras_latent.model.layers  # noqa: F401 (registers the loss `image_mse` that a compiled model.keras names)
from keras_latent.config import DECODE_PATHS
from keras_latent.errors import UsageError
from keras_latent.model.builders import default_decode_paths, trunk_block_names
from keras_latent.runs import layout
from keras_latent.runs.run import Loaders, Run


def _why_refused(err: Exception) -> str:
    """What a failed `load_model` means, in words: code refused by safe_mode, an unknown class, or a damaged file."""
    message = str(err)
    first_line = (message.splitlines() or [""])[0]
    if "Lambda" in message or "safe_mode" in message:
        return ("holds Python code (a Lambda layer or a pickled function), which is refused: a model file is "
                "data, never code; only the layers keras-latent builds are loaded (safe_mode=True)")
    unknown = re.search(r"Could not locate (?:class|function) '([^']+)'", message)
    if unknown:
        return (f"holds a class keras-latent does not know ({unknown.group(1)}), which is refused; only the layers "
                "keras-latent builds are loaded")
    return f"cannot be loaded ({type(err).__name__}: {first_line})"


def load_model_file(path: str, compile: bool = False, entry: layout.Entry = layout.MODEL) -> keras.Model:
    """A `.keras` file loaded with safe_mode=True (no Lambda code runs); a file that is not a .keras archive, holds
    code or an unknown class, or is damaged is a one-line UsageError naming it and the command that rebuilds it.

    `compile=False` (the readers' default: analysis, report, explorer and export only predict) skips the loss,
    metrics and optimizer state; `compile=True` restores them, for training on from the file."""
    if not zipfile.is_zipfile(path):
        raise UsageError(layout.damaged(entry, path, "is damaged (not a .keras zip archive)"))
    from keras_latent.model.legacy import LEGACY_OBJECTS  # on demand: only old files name these

    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True, custom_objects=LEGACY_OBJECTS)
    except Exception as err:  # zip, h5 and deserialization errors all mean the file is not ours to load
        raise UsageError(layout.damaged(entry, path, _why_refused(err))) from None


def load_run_model(run_dir: str, compile: bool = False) -> keras.Model:
    """A run's model.keras; a missing or corrupt file is a one-line UsageError."""
    return open_run(run_dir, compile=compile).model


def checked_decode_paths(decode_paths, model: keras.Model) -> dict[str, str] | None:
    """`decode_paths` when it is {trunk layer: one of DECODE_PATHS} for exactly this model's layers, else None."""
    names = set(trunk_block_names(model))
    if (isinstance(decode_paths, dict) and set(decode_paths) == names
            and all(p in DECODE_PATHS for p in decode_paths.values())):
        return decode_paths
    return None


def decode_paths_or_defaults(measured: dict | None, model: keras.Model) -> dict[str, str]:
    """Each layer's decode path: `measured` (metrics.json's faithfulness.decode_paths) where it fits the model,
    else `default_decode_paths` (runs from before the measurement)."""
    return checked_decode_paths(measured, model) or default_decode_paths(model)


def _load_splits(config):
    from keras_latent.data import load_splits

    return load_splits(config)


# The tutorial model's loaders: model.keras loaded safely, the data set rebuilt from config.json.
LOADERS = Loaders(model=load_model_file, data=_load_splits,
                  layers=trunk_block_names, decode_paths=decode_paths_or_defaults)


def open_run(run_dir: str, dataset: str | None = None, compile: bool = False) -> Run:
    """The run folder `run_dir`, able to load its model and data (`dataset` replaces the run's data set)."""
    return Run(run_dir, LOADERS, dataset=dataset, compile=compile)

