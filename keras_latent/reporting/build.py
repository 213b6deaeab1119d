"""The report of a run: one self-contained HTML file (`build_report`, what `python -m keras_latent.report` runs).

RUN_FOLDER/report.html holds, in order: configuration, data set and model summary; curves and
final figures; the classification report with the confusion matrix; the reconstructions at each
snapshot epoch; the latent analysis (RUN_FOLDER/analysis/); the sanity checks of its views
(analysis/sanity.json, with `analyze --methods ...,sanity`); and, with --tuning DIR, a loss-weight
search. Figures are the PNGs those steps already rendered, embedded as data URIs, so the file
needs no network and no other file. Missing parts are left out with the command that makes them.

The report only reads: it opens the run as a `runs.run.Run` without loaders, so it never loads the
model or the data set (every number is in the files training and `analyze` wrote), and it reads each
file once, checked as it is read; a damaged file is one line and nothing is written.
"""
from __future__ import annotations

import datetime
import logging
import os

from keras_latent.errors import UsageError
from keras_latent.runs import layout
from keras_latent.runs.lifecycle import finished_run_files
from keras_latent.runs.run import Run

log = logging.getLogger("keras_latent")
TEMPLATE = "report.html.j2"
SECTIONS = (("setup", "Configuration, data and model"), ("training", "Training curves and final figures"),
            ("classification", "Classification report"), ("reconstructions", "Reconstructions"),
            ("analysis", "Latent analysis: what each channel carries"),
            ("sanity", "Sanity checks: can these views be trusted?"), ("tuning", "Loss-weight search"))


def _analysis_needed(run: Run) -> bool:
    """True when the analysis is missing, older than the model, or damaged (a notice says which file)."""
    from keras_latent.reporting.analysis_section import analysis_is_stale

    try:
        return run.analysis is None or analysis_is_stale(run.folder)
    except UsageError as err:
        log.warning(f"{err}: running it now (--analyze)")
        return True


def ensure_analysis(run: Run, analyze: bool) -> None:
    """With `analyze`, run the analysis (default settings) when it is missing, older than the model or damaged."""
    if analyze and _analysis_needed(run):
        from keras_latent.analysis.run import analyze_run

        log.info(f"analysing {run.folder} ({layout.ANALYZE} {run.folder}) ...")
        analyze_run(run.folder)
        run.forget("analysis")


REPORTED = (layout.HISTORY, layout.METRICS, layout.CONFUSION_MATRIX, layout.CURVES, layout.SNAPSHOT)
# the run files a finished run holds that the report shows (config.json aside)


def warn_missing(run: Run) -> None:
    """One notice per file of a finished run that the report shows but cannot find (that part is left out).
    A run still training is not finished: it has none of the files written at its end, and gets no notice."""
    expected = [(e, p) for e, p in finished_run_files(run.folder, run.config) if e in REPORTED]
    ended = any(run.has(e) for e in (layout.MODEL, layout.SAVED_MODEL, layout.METRICS, layout.CURVES,
                                     layout.CONFUSION_MATRIX))
    for entry, path in expected:
        if ended and not os.path.exists(path):
            log.warning(layout.damaged(entry, path, "is missing: its part of the report is left out"))


def render(context: dict, template: str = TEMPLATE) -> str:
    """Fill a template of templates/ (autoescaped: file names and labels cannot inject markup)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template(template).render(**context)


def study_link(run_dir: str, report_path: str) -> dict | None:
    """Where the report of the study this run belongs to is, relative to the run's report (None: no study)."""
    study_dir = layout.study_of_run(run_dir)
    if study_dir is None:
        return None
    seed_dir = os.path.abspath(run_dir)
    target = os.path.relpath(layout.STUDY_REPORT.path(study_dir), os.path.dirname(os.path.abspath(report_path)))
    return {"href": target.replace(os.sep, "/"), "name": os.path.basename(study_dir),
            "variant": os.path.basename(os.path.dirname(seed_dir)),
            "seed": layout.STUDY_RUN.match(os.path.basename(seed_dir))["seed"]}


def following_contract(section, args: tuple, path: str, layout: str, remedy: str) -> dict:
    """Build a section from files another tool wrote; a file that breaks its contract is one clear line."""
    try:
        return section(*args)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise UsageError(f"{path} (or a file beside it) does not follow {layout} ({type(err).__name__}: {err}); "
                         f"{remedy}") from None


def collect(run: Run, tuning_dir: str | None, report_path: str | None = None) -> dict:
    """Read the run (and tuning) folders into the template's context, one dict per section, each file once;
    `report_path` is where the report goes (for its link to a study)."""
    from keras_latent import __version__
    from keras_latent.reporting.analysis_section import analysis_section
    from keras_latent.reporting.classification import classification_section
    from keras_latent.reporting.run_sections import (
        config_groups,
        dataset_info,
        model_section,
        reconstruction_section,
        training_section,
    )
    from keras_latent.reporting.sanity_section import sanity_section
    from keras_latent.reporting.tuning_section import tuning_section

    run_dir, config, metrics = run.folder, run.config, run.metrics
    sanity = following_contract(sanity_section, (run,), run.analysis_path(layout.SANITY_SUMMARY),
                                "the sanity checks layout", f"rerun {layout.ANALYZE} {run_dir} --methods "
                                f"{layout.SANITY_METHODS}")
    if run.kind == "attached":  # a user's model with decoders: no training curves, classification or snapshots
        from keras_latent.reporting.attached_section import attached_section

        attached = following_contract(attached_section, (run,), run.path(layout.METRICS), "the attached run layout",
                                      f"rerun {layout.ATTACH}")
        analysis = following_contract(analysis_section, (run, True), run.analysis_path(layout.ANALYSIS_SUMMARY),
                                      "the analysis layout", f"rerun {layout.ANALYZE} {run_dir}")
        sections = (SECTIONS[0], ("attached", "Attached decoders: source model and faithfulness"),
                    *[s for s in SECTIONS if s[0] in ("analysis", "sanity")])
        return {"title": f"keras-latent report: {run.name} (your model)", "run_dir": run_dir, "version": __version__,
                "generated": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                "toc": [{"id": i, "title": t} for i, t in sections], "sections": {**dict(SECTIONS), **dict(sections)},
                "dataset": dataset_info(config, metrics), "config_groups": config_groups(config)[:1],
                "model": None,
                "model_missing": "Your own model: its source file, input and layers are in the next section.",
                "attached": attached, "analysis": analysis, "sanity": sanity,
                "tuning": {"present": False, "notes": []}, "study": None,
                **dict.fromkeys(("training", "classification", "reconstructions"))}
    analysis = following_contract(analysis_section, (run, config.model.layer_decoders),
                                  run.analysis_path(layout.ANALYSIS_SUMMARY),
                                  "the analysis layout", f"rerun {layout.ANALYZE} {run_dir}")
    tuning = following_contract(tuning_section, (tuning_dir, config), layout.BEST.path(tuning_dir or ""),
                                "the tuning results layout", f"rerun {layout.SEARCH}")
    model, model_missing = following_contract(model_section, (run,), run.path(layout.MODEL_SUMMARY),
                                              "the model summary layout", f"rerun {layout.TRAIN}")
    classification = following_contract(classification_section, (run,), run.path(layout.METRICS),
                                        "the metrics layout", f"rerun {layout.TRAIN}")
    study = study_link(run_dir, report_path or run.path(layout.REPORT_FILE))
    name = f"{study['variant']} seed {study['seed']}" if study else run.name
    return {"title": f"keras-latent report: {name}", "run_dir": run_dir, "version": __version__,
            "generated": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "toc": [{"id": i, "title": t} for i, t in SECTIONS], "sections": dict(SECTIONS),
            "dataset": dataset_info(config, metrics), "config_groups": config_groups(config),
            "model": model, "model_missing": model_missing,
            "training": training_section(run),
            "classification": classification,
            "reconstructions": reconstruction_section(run_dir, config, metrics),
            "analysis": analysis, "sanity": sanity, "tuning": tuning, "study": study,
            "attached": None}


def build_report(run_dir: str, tuning_dir: str | None = None, analyze: bool = False, out: str | None = None) -> str:
    """Write the report of `run_dir` (atomically) and return its path (default RUN/report.html)."""
    from keras_latent.files import atomic_write_text
    from keras_latent.reporting.tuning_section import check_tuning_dir

    run = Run(run_dir)  # files only: no model, no data set
    run.config  # noqa: B018 (not a run folder: one clear line before anything else)
    if tuning_dir is not None:
        check_tuning_dir(tuning_dir)
    ensure_analysis(run, analyze)
    if run.kind != "attached":
        warn_missing(run)
    path = out or run.path(layout.REPORT_FILE)
    html = render(collect(run, tuning_dir, path))
    try:
        atomic_write_text(path, html)
    except OSError as err:
        raise UsageError(f"cannot write the report to {path!r}: {err.strerror or err}") from None
    return path
