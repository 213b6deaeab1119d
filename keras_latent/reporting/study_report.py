"""The report of a study folder: one self-contained STUDY/report.html (what `python -m keras_latent.study` writes
at its end, and `python -m keras_latent.report STUDY` rebuilds).

It holds the conclusions, the comparison table (paired differences with 95% intervals and p-values), each
variant's mean and interval, both figures, the per-class differences, the settings and a link to each run's own
report. It reads the files the study wrote (study.json, summary.json, study.csv, the PNGs; names from
`keras_latent.runs.layout`) and renders templates/study.html.j2 with the run report's stylesheet.
"""
from __future__ import annotations

import datetime
import logging
import os

from keras_latent.errors import UsageError
from keras_latent.reporting.assets import command, figure, fmt, fmt_general, note
from keras_latent.runs import layout
from keras_latent.runs.records import read_csv, read_json

log = logging.getLogger("keras_latent")
TEMPLATE = "study.html.j2"
STUDY_COMMAND = tuple(layout.STUDY.split())


def is_study_dir(folder: str) -> bool:
    return os.path.isfile(layout.STUDY_SETTINGS.path(folder))


def _points(value) -> str:
    return "n/a" if value is None else f"{100 * float(value):+.1f}"


def _p(value) -> str:
    if value is None:
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.2g}" if value < 0.1 else f"{value:.2f}"


def _interval(figures: dict, scale: float = 1.0, digits: int = 4) -> str:
    if figures.get("ci_low") is None:
        return "n/a (one seed)"
    return f"{scale * figures['ci_low']:.{digits}f} to {scale * figures['ci_high']:.{digits}f}"


def run_dir_of(study_dir: str, variant: str, seed: str) -> str:
    """The run folder of a study.csv row, built from its variant and seed (never from a path in the file)."""
    if os.path.basename(variant) != variant or variant in ("", ".", ".."):
        raise UsageError(f"{layout.STUDY_CSV.path(study_dir)}: variant {variant!r} is not a folder name")
    try:
        return layout.study_run_dir(study_dir, variant, int(seed))
    except ValueError:
        raise UsageError(f"{layout.STUDY_CSV.path(study_dir)}: seed must be an integer, got {seed!r}") from None


def ensure_run_reports(study_dir: str, rows: list[dict]) -> None:
    """Write the report.html of each finished run that has none (not rebuilt when present)."""
    from keras_latent.reporting.build import build_report

    for row in rows:
        run_dir = run_dir_of(study_dir, row["variant"], row["seed"])
        if os.path.isfile(layout.MODEL.path(run_dir)) and not os.path.isfile(layout.REPORT_FILE.path(run_dir)):
            log.info(f"report of {run_dir} ...")
            build_report(run_dir)


def variant_rows(summary: dict) -> list[dict]:
    rows = []
    for name, v in summary.get("variants", {}).items():
        accuracy, mse = v["test_accuracy"], v.get("test_reconstruction_mse")
        weights = f"{fmt_general(v.get('ce_weight'))}, " + (fmt_general(v["recon_weight"])
                                                          if v.get("recon_weight") is not None else "none")
        rows.append({"name": name, "flags": v.get("flags") or "(the study's flags)", "n": accuracy["n"],
                     "weights": weights,
                     "mean": fmt(accuracy["mean"]), "sd": fmt(accuracy["sd"]), "ci": _interval(accuracy),
                     "mse": fmt(mse["mean"]) if mse else "n/a",
                     "seconds": fmt((v.get("seconds") or {}).get("mean"), 1)})
    return rows


def comparison_rows(summary: dict) -> list[dict]:
    rows = []
    for comp in summary.get("comparisons", []):
        accuracy, mse = comp["test_accuracy"], comp.get("test_reconstruction_mse")
        rows.append({"label": f"{comp['variant']} vs {comp['baseline']}", "difference": _points(accuracy["difference"]),
                     "ci": _interval(accuracy, 100, 1), "p": _p(accuracy["p_value"]), "n": accuracy["n"],
                     "significant": comp.get("significant"),
                     "mse": f"{mse['difference']:+.4f}" if mse and mse.get("difference") is not None else "n/a"})
    return rows


def per_class_table(summary: dict) -> dict:
    """Classes x comparisons: paired difference in points, 95% interval, p (and Benjamini-Hochberg p)."""
    comparisons = summary.get("comparisons", [])
    classes = list(comparisons[0]["per_class_accuracy"]) if comparisons else []
    rows = []
    for name in classes:
        cells = []
        for comp in comparisons:
            f = comp["per_class_accuracy"][name]
            cells.append({"difference": _points(f["difference"]), "ci": _interval(f, 100, 1), "p": _p(f["p_value"]),
                          "p_bh": _p(f.get("p_value_bh")), "significant": f.get("p_value_bh") is not None
                          and f["p_value_bh"] < 1 - summary.get("confidence", 0.95)})
        rows.append({"name": name, "cells": cells})
    return {"columns": [f"{c['variant']} vs {c['baseline']}" for c in comparisons], "rows": rows}


def run_links(study_dir: str, rows: list[dict], report_dir: str) -> list[dict]:
    links = []
    for row in rows:
        run_dir = run_dir_of(study_dir, row["variant"], row["seed"])
        report = layout.REPORT_FILE.path(run_dir)
        links.append({"variant": row["variant"], "seed": row["seed"], "accuracy": fmt(row["test_accuracy"]),
                      "mse": fmt(row.get("test_reconstruction_mse")), "seconds": fmt(row.get("seconds"), 1),
                      "folder": os.path.relpath(run_dir, study_dir),
                      "href": os.path.relpath(report, report_dir).replace(os.sep, "/")
                      if os.path.isfile(report) else None,
                      "make": command(*layout.REPORT.split(), run_dir)})
    return links


def collect_study(study_dir: str, report_path: str) -> dict:
    """The template's context from the study folder's files."""
    from keras_latent import __version__

    settings = read_json(layout.STUDY_SETTINGS.path(study_dir), layout.STUDY_SETTINGS) or {}
    summary = read_json(layout.STUDY_SUMMARY.path(study_dir), layout.STUDY_SUMMARY)
    rows = read_csv(layout.STUDY_CSV.path(study_dir), layout.STUDY_CSV) or []
    notes = []
    if summary is None:
        notes.append(note(f"No {layout.STUDY_SUMMARY.name} yet: the study has not finished; continue it by rerunning "
                          f"the {layout.STUDY} command that started it (same --out)"))
        summary = {}
    elif summary.get("runs", 0) < summary.get("planned_runs", 0):
        notes.append(note(f"Only {summary['runs']} of {summary['planned_runs']} runs have finished; rerun the "
                          "study's command to train the rest"))
    figures = [figure(entry.path(study_dir), caption, entry) for entry, caption in (
        (layout.ACCURACY_BY_EPOCH, "Test accuracy per epoch: mean over seeds with its 95% band"),
        (layout.PER_CLASS, "Per-class difference in test accuracy, paired over seeds, with 95% intervals"))
        if os.path.isfile(entry.path(study_dir))]
    name = os.path.basename(os.path.normpath(os.path.abspath(study_dir)))
    return {"title": f"keras-latent study: {name}", "study_dir": study_dir, "version": __version__,
            "generated": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "conclusions": summary.get("conclusions", []), "comparisons": comparison_rows(summary),
            "variants": variant_rows(summary), "per_class": per_class_table(summary), "figures": figures,
            "runs": run_links(study_dir, rows, os.path.dirname(os.path.abspath(report_path))), "notes": notes,
            "seeds": ", ".join(map(str, settings.get("seeds", []))), "dataset": summary.get("dataset"),
            "test_images": summary.get("test_images"), "interval": summary.get("interval", ""),
            "test": summary.get("test", ""),
            "flags": [{"name": v.get("name"), "flags": v.get("flags") or "(the study's flags)",
                       "epochs": fmt_general((v.get("train") or {}).get("epochs"))}
                      for v in settings.get("variants", [])]}


def build_study_report(study_dir: str, run_reports: bool = False, out: str | None = None) -> str:
    """Write the study's report (atomically) and return its path (default STUDY/report.html). `run_reports`:
    first write the report of each finished run that has none, so the links have a target."""
    from keras_latent.files import atomic_write_text
    from keras_latent.reporting.build import following_contract, render

    if not is_study_dir(study_dir):
        raise UsageError(f"{study_dir!r} is not a study folder: it has no {layout.STUDY_SETTINGS.name} "
                         f"(made by {layout.STUDY})")
    path = out or layout.STUDY_REPORT.path(study_dir)
    if run_reports:
        ensure_run_reports(study_dir, read_csv(layout.STUDY_CSV.path(study_dir), layout.STUDY_CSV) or [])
    context = following_contract(collect_study, (study_dir, path), layout.STUDY_SUMMARY.path(study_dir),
                                 "the study layout", f"rerun {layout.STUDY} with the same flags")
    html = render(context, TEMPLATE)
    try:
        atomic_write_text(path, html)
    except OSError as err:
        raise UsageError(f"cannot write the report to {path!r}: {err.strerror or err}") from None
    return path
