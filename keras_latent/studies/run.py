"""Running a study: every variant trained once per seed into STUDY/runs/<variant>/seed-<n>/ (ordinary run folders,
`keras_latent.training.train`), then study.csv, summary.json, the two figures and report.html.

A run is finished when its model.keras exists. Rerunning the same command keeps the finished runs, resumes an
interrupted one from its last epoch and trains the rest; more seeds or variants add runs. A run folder whose
config.json differs from what the study would train now is refused before anything is trained.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Iterator

from keras_latent.config import HOW_COMPUTED_FIELDS
from keras_latent.errors import UsageError
from keras_latent.files import atomic_write_text, save_figure
from keras_latent.runs import layout
from keras_latent.runs.lifecycle import config_differences
from keras_latent.runs.records import csv_text, read_json, write_json
from keras_latent.runs.run import Run
from keras_latent.studies import plots, statistics
from keras_latent.studies.config import StudyConfig, Variant, run_config, study_spec, validate_study

log = logging.getLogger("keras_latent")

ROW_COLUMNS = ("variant", "seed", "test_accuracy", "test_reconstruction_mse", "seconds", "epochs", "run")
DERIVED_KEYS = ("data.class_names", "model.num_classes")  # filled in from the data set when a run starts
ACCURACY_CURVE = "val_classifier_accuracy"  # history.csv: test accuracy per epoch (train evaluates on the test split)


def _check_folder(study_dir: str) -> None:
    try:
        os.makedirs(study_dir, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--out {study_dir!r} cannot be made: {err.strerror or err}; choose a folder you can "
                         "write to") from None
    if not os.access(study_dir, os.W_OK):
        raise UsageError(f"--out {study_dir!r} is not writable; choose a folder you can write to")


def clear_study(study_dir: str) -> None:
    """Start over: delete what a study wrote (its results first, then its runs)."""
    for entry in layout.STUDY_FILES:
        path = entry.path(study_dir)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)


def resolve_dataset(study: StudyConfig) -> StudyConfig:
    """`--dataset auto` chosen once for the whole study (full CIFAR-10 or the bundled sample), so every run
    trains on the same data."""
    first = study.variants[0].train.data
    if first.dataset != "auto":
        return study
    from keras_latent.data.sources import resolve_auto

    dataset, _ = resolve_auto(first.tfds_data_dir)
    replace = lambda v: dataclasses.replace(v, train=dataclasses.replace(  # noqa: E731
        v.train, data=dataclasses.replace(v.train.data, dataset=dataset)))
    return dataclasses.replace(study, variants=tuple(replace(v) for v in study.variants))


def check_existing_runs(study: StudyConfig, study_dir: str) -> None:
    """Every run folder already there (finished or interrupted) must hold the run this study would train."""
    for variant in study.variants:
        for seed in study.seeds:
            run_dir = layout.study_run_dir(study_dir, variant.name, seed)
            saved = read_json(layout.CONFIG.path(run_dir), layout.CONFIG)
            if saved is None:
                continue
            changed = [d for d in config_differences(saved, run_config(variant, seed))
                       if d.split(":")[0] not in DERIVED_KEYS + HOW_COMPUTED_FIELDS]
            if changed:
                shown = "; ".join(changed[:4]) + ("; ..." if len(changed) > 4 else "")
                raise UsageError(f"{run_dir} was trained with other settings than this study's ({shown}); rerun "
                                 "the command that made the study to continue it, pass --overwrite to start the "
                                 "study over, or choose another --out")


def run_row(study_dir: str, variant: Variant, seed: int) -> dict | None:
    """A finished run's figures (metrics.json and history.csv), or None when the run has not finished."""
    run_dir = layout.study_run_dir(study_dir, variant.name, seed)
    run = Run(run_dir)  # its files only: the study reads figures, never a model
    if not run.finished:
        return None
    metrics = run.metrics
    if metrics is None or "test_accuracy" not in metrics:
        raise UsageError(f"{run_dir} has {layout.MODEL.name} but no usable {layout.METRICS.name}; delete the run "
                         "folder and rerun the study to train it again")
    history = run.history or {}
    curve = history.get(ACCURACY_CURVE) or next(
        (v for k, v in history.items() if k.startswith("val_") and k.endswith("classifier_accuracy")), [])
    return {"variant": variant.name, "seed": seed, "test_accuracy": metrics["test_accuracy"],
            "test_reconstruction_mse": metrics.get("test_reconstruction_mse"), "seconds": metrics.get("seconds"),
            "epochs": metrics.get("epochs"), "run": os.path.relpath(run_dir, study_dir),
            "per_class_accuracy": metrics.get("per_class_accuracy") or {}, "accuracy_by_epoch": curve,
            "dataset": metrics.get("dataset"), "test_images": metrics.get("test_images")}


def _not_retracing(record: logging.LogRecord) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def many_models() -> Iterator[None]:
    """Drop TensorFlow's "N out of the last M calls ... triggered tf.function retracing" warning while a study
    builds one model after another: each run traces its own new functions, which that detector counts as
    retracing of one function (the study's runs, not a bug to fix). Every other warning still shows."""
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.addFilter(_not_retracing)
    try:
        yield
    finally:
        tf_logger.removeFilter(_not_retracing)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _time_left(plan: list, next_index: int, done_now: dict[str, list[float]], finished: set) -> float:
    """Seconds the untrained runs after `next_index` will take: each variant's mean so far (or all runs' mean)."""
    everything = [s for times in done_now.values() for s in times]
    overall = sum(everything) / len(everything)
    return sum(sum(done_now[v.name]) / len(done_now[v.name]) if done_now.get(v.name) else overall
               for v, seed in plan[next_index:] if (v.name, seed) not in finished)


def train_runs(study: StudyConfig, study_dir: str) -> int:
    """Train every run that is not finished, seed by seed (so a killed study has whole pairs); log one line per
    run with the time left. Returns how many runs this call trained."""
    import keras

    from keras_latent.training.fit import train

    plan = [(variant, seed) for seed in study.seeds for variant in study.variants]
    finished = {(v.name, s) for v, s in plan if os.path.isfile(layout.MODEL.path(layout.study_run_dir(
        study_dir, v.name, s)))}
    todo = len(plan) - len(finished)
    log.info(f"study: {len(study.variants)} variants x {len(study.seeds)} seeds = {len(plan)} runs in {study_dir}"
             + (f"; {len(finished)} already finished, {todo} to train" if finished else ""))
    times: dict[str, list[float]] = {}
    for index, (variant, seed) in enumerate(plan):
        if (variant.name, seed) in finished:
            continue
        run_dir = layout.study_run_dir(study_dir, variant.name, seed)
        keras.backend.clear_session()  # a fresh graph per run: no memory or tf.function traces left from the last
        start = time.perf_counter()
        try:
            metrics = train(run_config(variant, seed), run_dir, verbose=0)
        except UsageError as err:  # e.g. a diverged run: the study stops there, its finished runs kept
            raise UsageError(f"{variant.name} seed {seed} ({run_dir}): {err}") from None
        times.setdefault(variant.name, []).append(time.perf_counter() - start)
        finished.add((variant.name, seed))
        trained = sum(len(t) for t in times.values())
        mse = metrics.get("test_reconstruction_mse")
        resumed = f", resumed after epoch {metrics['resumed_from_epoch']}" if metrics.get("resumed_from_epoch") else ""
        left = _time_left(plan, index + 1, times, finished)
        log.info(f"run {trained}/{todo}: {variant.name} seed {seed}: test accuracy {metrics['test_accuracy']:.4f}"
                 + (f", reconstruction MSE {mse:.4f}" if mse is not None else "")
                 + f", {times[variant.name][-1]:.0f} s{resumed}; "
                 + (f"about {_duration(left)} left" if left else "all runs finished"))
        write_table(study, study_dir)
    return sum(len(t) for t in times.values())


def collect_rows(study: StudyConfig, study_dir: str) -> list[dict]:
    """The finished runs' rows, seed by seed."""
    rows = [run_row(study_dir, v, s) for s in study.seeds for v in study.variants]
    return [r for r in rows if r is not None]


def class_names_of(rows: list[dict]) -> list[str]:
    return list(rows[0]["per_class_accuracy"]) if rows else []


def write_table(study: StudyConfig, study_dir: str) -> list[dict]:
    """(Re)write study.csv from the finished runs; return their rows."""
    rows = collect_rows(study, study_dir)
    classes = class_names_of(rows)
    header = list(ROW_COLUMNS) + [f"acc_{c}" for c in classes]
    table = [[r[c] if r[c] is not None else "" for c in ROW_COLUMNS]
             + [r["per_class_accuracy"].get(c, "") if r["per_class_accuracy"].get(c) is not None else ""
                for c in classes] for r in rows]
    atomic_write_text(layout.STUDY_CSV.path(study_dir), csv_text(header, table))
    return rows


def _nan(value) -> float:
    return float("nan") if value is None else value


def write_figures(summary: dict, rows: list[dict], variants: list[str], study_dir: str) -> None:
    """accuracy_by_epoch.png and per_class.png."""
    curves, runs = {}, {}
    for name in variants:
        histories = [r["accuracy_by_epoch"] for r in rows if r["variant"] == name and r["accuracy_by_epoch"]]
        if histories:
            curves[name], runs[name] = statistics.epoch_bands(histories), len(histories)
    if curves:
        save_figure(plots.plot_accuracy_by_epoch(curves, runs), layout.ACCURACY_BY_EPOCH.path(study_dir))
    classes = class_names_of(rows)
    panels = []
    for comp in summary["comparisons"]:
        figures = [comp["per_class_accuracy"][c] for c in classes] + [comp["test_accuracy"]]
        panels.append({"label": f"{comp['variant']} - {comp['baseline']}",
                       "difference": [_nan(f["difference"]) for f in figures],
                       "low": [_nan(f["ci_low"]) for f in figures], "high": [_nan(f["ci_high"]) for f in figures]})
    if panels and classes:
        save_figure(plots.plot_per_class(classes, panels), layout.PER_CLASS.path(study_dir))


def summarize_study(study: StudyConfig, study_dir: str) -> dict:
    """study.csv, summary.json and the figures from the finished runs; returns summary.json's content."""
    rows = write_table(study, study_dir)
    names = [v.name for v in study.variants]
    summary = statistics.summarize(rows, names, class_names_of(rows))
    for variant in study.variants:
        t = variant.train
        summary["variants"][variant.name].update(flags=variant.flags, ce_weight=t.ce_weight,
                                                 recon_weight=t.recon_weight if t.model.decoder else None)
    first = rows[0] if rows else {}
    summary.update(seeds=list(study.seeds), runs=len(rows), planned_runs=len(study.seeds) * len(names),
                   dataset=first.get("dataset"), test_images=first.get("test_images"))
    write_json(layout.STUDY_SUMMARY.path(study_dir), summary)
    write_figures(summary, rows, names, study_dir)
    return summary


def run_study(study: StudyConfig, study_dir: str, overwrite: bool = False, run_reports: bool = True) -> dict:
    """Train (or continue) `study` in `study_dir` and write its results; validates `study` first, as the command
    does, and every run seeds itself (`training.train`).

    Returns summary.json's content plus "study_dir", "report" (the study's report.html) and "trained" (runs
    trained by this call). `run_reports`: also write each run's report.html where it is missing, so that the
    study's report links to them.
    """
    validate_study(study)
    _check_folder(study_dir)
    if overwrite:
        clear_study(study_dir)
    study = resolve_dataset(study)
    check_existing_runs(study, study_dir)
    write_json(layout.STUDY_SETTINGS.path(study_dir), study_spec(study))
    start = time.perf_counter()
    from keras_latent.reporting.study_report import build_study_report

    with many_models():
        trained = train_runs(study, study_dir)
        summary = summarize_study(study, study_dir)
        report = build_study_report(study_dir, run_reports=run_reports)
    log.info(f"study finished in {_duration(time.perf_counter() - start)} ({trained} runs trained now)")
    return {**summary, "study_dir": study_dir, "report": report, "trained": trained}
