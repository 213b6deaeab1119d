"""One run folder, opened once: `Run` reads its config, metrics, history, model summary and analysis, and hands
out its model, decode paths, layers and data, each read once, lazily, with the checked readers of
`runs/records.py` (a damaged file is one line naming it and the command that rebuilds it).

Every command and subpackage opens a run folder through `Run`: analysis, report, export, the explorer and
studies. `runs` is below `data` and `model` in the layers (docs/architecture.md), so it imports neither, not
even inside a function: what needs them (loading model.keras, the data set, a model's trunk layers and its
decode paths) comes in as `Loaders`, a few functions the caller passes. `keras_latent.model.saving.open_run`
opens a run with the tutorial model's loaders; a run opened without loaders (the report's) reads files only,
and asking it for its model or data is a one-line error, so the report provably never loads either.

A later kind of run (a user's own model with decoders attached) opens here too, with its own `Loaders`: the
interface is about a run folder (config, metrics, model, decode paths, layers, data), not about the trunk.
No TensorFlow import.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from typing import Any

from keras_latent.config import TrainConfig
from keras_latent.errors import UsageError
from keras_latent.runs import layout, records


@dataclasses.dataclass(frozen=True)
class Loaders:
    """What opening a run's model and data takes, from the layers above `runs` (model/, data/).

    model(path, compile) -> the model in the .keras file `path` (one-line UsageError when damaged);
    data(config) -> (splits, config with the data set resolved), `data.load_splits`' contract;
    layers(model) -> the names of the model's layers a decoder reads (the trunk's blocks), in order;
    decode_paths(measured, model) -> {layer: decode path} of every such layer: `measured` (metrics.json's
    faithfulness.decode_paths, or None) where it fits the model, else the model's defaults.
    """

    model: Callable[[str, bool], Any]
    data: Callable[[TrainConfig], tuple[Any, TrainConfig]]
    layers: Callable[[Any], list[str]]
    decode_paths: Callable[[dict | None, Any], dict[str, str]]


@dataclasses.dataclass(frozen=True)
class RunData:
    """A run's data set as rebuilt from its config: splits (`data.Splits`: uint8 images (N, S, S, 3), labels
    (N,)), the config with the data set resolved, and the class names the run was trained on."""

    splits: Any
    config: TrainConfig
    class_names: tuple[str, ...]


class Run:
    """The run folder `folder`. Each property reads its file once, on first use; None where the file is absent
    (a run still training has no metrics.json), a one-line UsageError where it is damaged.

    `loaders` gives the model and the data (`model.saving.open_run` passes them); `dataset` replaces the run's
    data set (analyze/explore --dataset); `compile`: whether `model` is compiled (its loss, metrics and optimizer
    state; readers, which only predict, leave it off).
    """

    def __init__(self, folder: str, loaders: Loaders | None = None, dataset: str | None = None,
                 compile: bool = False):
        self.folder, self.loaders, self.dataset, self.compile = folder, loaders, dataset, compile

    def __repr__(self) -> str:
        return f"Run({self.folder!r})"

    # ------------------------------------------------------------ paths (names from layout.py)

    @property
    def name(self) -> str:
        return os.path.basename(os.path.normpath(os.path.abspath(self.folder)))

    def path(self, entry: layout.Entry, **fields) -> str:
        """A file of the run folder (RUN_FILES)."""
        return entry.path(self.folder, **fields)

    def analysis_path(self, entry: layout.Entry, **fields) -> str:
        """A file of RUN/analysis/ (ANALYSIS_FILES)."""
        return layout.analysis_file(self.folder, entry, **fields)

    def has(self, entry: layout.Entry) -> bool:
        """Whether the run folder holds `entry` (a file or folder of RUN_FILES)."""
        return os.path.exists(self.path(entry))

    @property
    def finished(self) -> bool:
        """model.keras is written last: its presence marks a finished run."""
        return os.path.isfile(self.path(layout.MODEL))

    # ------------------------------------------------------------ records (files only)

    @functools.cached_property
    def _config_json(self) -> dict | None:
        return records.read_config_json(self.folder)  # read once; config, kind and attached derive from it

    @functools.cached_property
    def config(self) -> TrainConfig:
        """config.json, every field checked (as trained: `dataset` does not change it); a folder that is not a
        run is a UsageError. An attached run's: its data recipe and seed (config.json's "train")."""
        return records.load_config(self.folder, self._config_json)

    @functools.cached_property
    def kind(self) -> str:
        """"trained" (a run `train` made; config.json without "kind", so older runs too) or "attached" (decoders
        attached to a user's own model, `python -m keras_latent.attach`)."""
        return records.run_kind(self.folder, self._config_json or {})

    @functools.cached_property
    def attached(self) -> dict | None:
        """An attached run's config.json record (source model, layers, image spec, decoder settings); None for a
        trained run."""
        return records.read_attached(self.folder, self._config_json or {})

    @functools.cached_property
    def metrics(self) -> dict | None:
        """metrics.json (None until training has finished)."""
        return records.read_json(self.path(layout.METRICS), layout.METRICS)

    @functools.cached_property
    def history(self) -> dict[str, list[float]] | None:
        """history.csv as {column: values per epoch} (None when absent or empty)."""
        return records.read_history(self.folder)

    @functools.cached_property
    def model_summary(self) -> dict | None:
        """model_summary.json: the model's layers and parameter counts (None for runs from before it)."""
        return records.read_json(self.path(layout.MODEL_SUMMARY), layout.MODEL_SUMMARY)

    @functools.cached_property
    def analysis(self) -> dict | None:
        """analysis/analysis.json (None when the run was not analysed)."""
        return records.read_json(self.analysis_path(layout.ANALYSIS_SUMMARY), layout.ANALYSIS_SUMMARY)

    def forget(self, *names: str) -> None:
        """Read these properties again on next use (after a command rewrote their files, e.g. `analysis`)."""
        for name in names:
            self.__dict__.pop(name, None)

    # ------------------------------------------------------------ model and data (through the loaders)

    def _loaders(self, what: str) -> Loaders:
        if self.loaders is None:
            raise UsageError(f"{self!r} was opened to read its files only, not its {what} "
                             "(open it with keras_latent.model.saving.open_run)")
        return self.loaders

    @functools.cached_property
    def model(self):
        """model.keras, loaded safely; a missing model is one line (an unfinished run: how to resume it)."""
        loaders, path = self._loaders("model"), self.path(layout.MODEL)
        if not os.path.isfile(path):
            if os.path.isdir(self.path(layout.BACKUP)):
                raise UsageError(f"{self.folder!r} has no {layout.MODEL.name}: its training has not finished "
                                 f"(rerun the same {layout.TRAIN} command to resume it)")
            raise UsageError(layout.damaged(layout.MODEL, path, "is missing"))
        return loaders.model(path, self.compile)

    @functools.cached_property
    def layers(self) -> list[str]:
        """The model's layers a decoder reads (analysis, explorer and export work on these), in order."""
        return list(self._loaders("layers").layers(self.model))

    @functools.cached_property
    def decode_paths(self) -> dict[str, str]:
        """Each layer's faithful decode path: as measured at training (metrics.json's faithfulness.decode_paths),
        else the model's defaults (runs from before the measurement)."""
        measured = ((self.metrics or {}).get("faithfulness") or {}).get("decode_paths")
        return self._loaders("decode paths").decode_paths(measured, self.model)

    @functools.cached_property
    def data(self) -> RunData:
        """The run's data set rebuilt from config.json (or `dataset`); its classes must be the run's."""
        loaders, config = self._loaders("data set"), self.config
        if self.dataset:
            config = dataclasses.replace(config, data=dataclasses.replace(config.data, dataset=self.dataset))
        splits, resolved = loaders.data(config)
        class_names = tuple(config.data.class_names or splits.class_names)
        if tuple(splits.class_names) != class_names:
            raise UsageError(f"data set {splits.dataset!r} has classes {list(splits.class_names)}, but the run was "
                             f"trained on {list(class_names)}; pass a data set with the run's classes")
        return RunData(splits, resolved, class_names)
