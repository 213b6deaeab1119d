"""Report sections 1, 2 and 4 from a run folder's files: setup (data, configuration, model summary), training,
reconstructions.

Each section function returns a plain dict for `templates/report.html.j2`; missing files become
`notes` (one line each, with the command that makes them) instead of errors.
"""
from __future__ import annotations

import os

from keras_latent.config import TrainConfig, to_dict
from keras_latent.data.sources import SAMPLE_DESCRIPTION
from keras_latent.reporting.assets import command, figure, fmt, note
from keras_latent.runs import layout
from keras_latent.runs.run import Run

TRAIN_COMMAND = layout.TRAIN


def is_sample_run(config: TrainConfig, metrics: dict | None) -> bool:
    """True when the run trained on the bundled 4,068-image sample rather than the full CIFAR-10."""
    description = str((metrics or {}).get("dataset", ""))
    return config.data.dataset == "sample" or description.startswith(SAMPLE_DESCRIPTION)


def dataset_info(config: TrainConfig, metrics: dict | None) -> dict:
    """Data set name, description, image counts and whether it is the bundled sample."""
    metrics = metrics or {}
    names = {"sample": "CIFAR-10 sample bundled with keras_latent", "cifar10": "CIFAR-10 (tensorflow-datasets)"}
    return {"name": names.get(config.data.dataset, config.data.dataset),
            "description": metrics.get("dataset"),
            "train_images": metrics.get("train_images"), "test_images": metrics.get("test_images"),
            "classes": len(config.data.class_names),
            "is_sample": is_sample_run(config, metrics),
            "full_command": command(*TRAIN_COMMAND.split(), "--dataset", "cifar10")}


def _show(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def config_groups(config: TrainConfig) -> list[dict]:
    """config.json as three key/value tables: data, model, training."""
    values = to_dict(config)
    data, model = values.pop("data"), values.pop("model")
    return [{"title": title, "rows": [{"key": k, "value": _show(v)} for k, v in group.items()]}
            for title, group in (("Data (data.*)", data), ("Model (model.*)", model), ("Training", values))]


def model_section(run: Run) -> tuple[dict | None, str]:
    """The model summary as training wrote it (model_summary.json), parameter counts formatted; else None and
    the line the report shows instead."""
    summary = run.model_summary
    if summary is None:
        if not run.finished:
            return None, f"No {layout.MODEL.name}: training into this folder has not finished, so there is no model " \
                         "summary."
        retrain = layout.rebuild_command(layout.MODEL_SUMMARY, run.path(layout.MODEL_SUMMARY))
        return None, (f"No {layout.MODEL_SUMMARY.name}: this run was trained before training wrote its model summary; "
                      f"retrain it to add one: {retrain}")
    trainable, frozen = summary["trainable_params"], summary["non_trainable_params"]
    rows = [{**row, "params": f"{row['params']:,}"} for row in summary["layers"]]
    return {"name": summary["name"], "rows": rows, "total": f"{trainable + frozen:,}", "trainable": f"{trainable:,}",
            "non_trainable": f"{frozen:,}"}, ""


def final_figures(history: dict | None, metrics: dict | None) -> list[dict]:
    """Train and test columns of the last epoch; test accuracy and MSE come from metrics.json."""
    history, metrics = history or {}, metrics or {}
    last = lambda key: history[key][-1] if history.get(key) else None  # noqa: E731
    rows = [("Classifier accuracy", last("classifier_accuracy"), metrics.get("test_accuracy"), "test_accuracy"),
            ("Loss (weighted sum)", last("loss"), last("val_loss"), "val_loss"),
            ("Classifier cross-entropy", last("classifier_loss"), last("val_classifier_loss"), "val_classifier_loss"),
            ("Reconstruction MSE", last("reconstruction_loss"), metrics.get("test_reconstruction_mse"),
             "test_reconstruction_mse")]
    return [{"label": label, "train": fmt(train), "test": fmt(test), "key": key}
            for label, train, test, key in rows if train is not None or test is not None]


def run_figures(metrics: dict | None, history: dict | None) -> list[dict]:
    """Epochs, wall time and throughput as key/value rows."""
    metrics = metrics or {}
    epochs = metrics.get("epochs", len(next(iter(history.values()))) if history else None)
    rows = [("Epochs trained", epochs, "epochs"), ("Training time (s)", metrics.get("seconds"), "seconds"),
            ("Training images per second", metrics.get("images_per_s"), "images_per_s")]
    return [{"label": label, "value": str(value), "key": key} for label, value, key in rows if value is not None]


def training_section(run: Run) -> dict:
    history, metrics = run.history, run.metrics
    curves = run.path(layout.CURVES)
    notes = []
    if metrics is None:
        notes.append(note("No metrics.json: training into this folder has not finished; rerun the "
                          f"{TRAIN_COMMAND} command that made it (same --out) to finish it"))
    if not os.path.isfile(curves):
        notes.append(note("No curves.png yet: it is written when training ends"))
    return {"curves": figure(curves, "Loss and classifier accuracy per epoch, train and test", layout.CURVES)
            if os.path.isfile(curves) else None,
            "final": final_figures(history, metrics), "run": run_figures(metrics, history), "notes": notes}


def reconstruction_section(run_dir: str, config: TrainConfig, metrics: dict | None) -> dict:
    """Originals over reconstructions at each snapshot epoch found, in epoch order."""
    found = {}
    for path in layout.SNAPSHOT.glob(run_dir):
        epoch = layout.SNAPSHOT.match(os.path.basename(path))["epoch"]
        if epoch.isdigit():
            found[int(epoch)] = path
    figures = [figure(path, "Epoch 0: the untrained model" if epoch == 0 else f"After epoch {epoch}", layout.SNAPSHOT)
               | {"epoch": epoch} for epoch, path in sorted(found.items())]
    notes = []
    if not config.model.decoder:
        notes.append(note("This run has no decoder (trained with --no-decoder), so it has no reconstructions"))
    elif not figures:
        notes.append(note("No reconstruction snapshots: train with snapshot epochs, e.g.",
                          command(*TRAIN_COMMAND.split(), "--snapshot-epochs", "0,10,20")))
    epochs_run = (metrics or {}).get("epochs")
    unreached = [e for e in config.snapshot_epochs if epochs_run is not None and e > epochs_run]
    if unreached and config.model.decoder:
        notes.append(note(f"Snapshot epochs {', '.join(map(str, unreached))} were not reached: "
                          f"the run trained {epochs_run} epochs"))
    return {"figures": figures, "notes": notes}
