"""CLI: `python -m keras_latent.report RUN_FOLDER` writes the study as one self-contained HTML file.

RUN_FOLDER/report.html holds, in order: configuration, data set and model summary; curves and
final figures; the classification report with the confusion matrix; the reconstructions at each
snapshot epoch; the latent analysis (RUN_FOLDER/analysis/); and, with --tuning DIR, a loss-weight
search. Figures are the PNGs those steps already rendered, embedded as data URIs, so the file
needs no network and no other file. Missing parts are left out with the command that makes them.
"""
from __future__ import annotations

import argparse
import datetime
import os

from keras_latent.cli import CliParser
from keras_latent.config import TrainConfig, load_config
from keras_latent.errors import UsageError, run_cli

REPORT_FILE = "report.html"
TEMPLATE = "report.html.j2"
SECTIONS = (("setup", "Configuration, data and model"), ("training", "Training curves and final figures"),
            ("classification", "Classification report"), ("reconstructions", "Reconstructions"),
            ("analysis", "Latent analysis: what each channel carries"), ("tuning", "Loss-weight search"))


def run_analysis(run_dir: str) -> None:
    """Run `python -m keras_latent.analyze RUN_FOLDER` (default settings) in this process."""
    from keras_latent import analyze

    print(f"analysing {run_dir} (python -m keras_latent.analyze {run_dir}) ...")
    code = analyze.main([run_dir])
    if code:
        raise UsageError(f"the latent analysis of {run_dir!r} failed (exit {code})")


def ensure_analysis(run_dir: str, analyze: bool) -> None:
    """With `analyze`, run the analysis when it is missing or older than the model."""
    from keras_latent.report_analysis import analysis_is_stale, analysis_path

    if analyze and (not os.path.isfile(analysis_path(run_dir)) or analysis_is_stale(run_dir)):
        run_analysis(run_dir)


def render(context: dict) -> str:
    """Fill templates/report.html.j2 (autoescaped: file names and labels cannot inject markup)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template(TEMPLATE).render(**context)


def following_contract(section, args: tuple, path: str, layout: str, remedy: str) -> dict:
    """Build a section from files another tool wrote; a file that breaks its contract is one clear line."""
    try:
        return section(*args)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise UsageError(f"{path} (or a file beside it) does not follow {layout} ({type(err).__name__}: {err}); "
                         f"{remedy}") from None


def collect(run_dir: str, tuning_dir: str | None, config: TrainConfig) -> dict:
    """Read the run (and tuning) folders into the template's context, one dict per section;
    `config` is the run's config.json."""
    from keras_latent import __version__
    from keras_latent.report_analysis import analysis_path, analysis_section
    from keras_latent.report_assets import read_json
    from keras_latent.report_classes import classification_section
    from keras_latent.report_run import (config_groups, dataset_info, load_model, model_summary,
                                         reconstruction_section, training_section)
    from keras_latent.report_tuning import tuning_section
    from keras_latent.tuning_results import BEST_FILE

    metrics = read_json(os.path.join(run_dir, "metrics.json"))
    model = load_model(run_dir)
    analysis = following_contract(analysis_section, (run_dir,), analysis_path(run_dir),
                                  "the analysis layout", f"rerun python -m keras_latent.analyze {run_dir}")
    tuning = following_contract(tuning_section, (tuning_dir, config), os.path.join(tuning_dir or "", BEST_FILE),
                                "the tuning results layout", "rerun python tuning/search_weights.py")
    name = os.path.basename(os.path.normpath(os.path.abspath(run_dir)))
    return {"title": f"keras-latent report: {name}", "run_dir": run_dir, "version": __version__,
            "generated": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "toc": [{"id": i, "title": t} for i, t in SECTIONS], "sections": dict(SECTIONS),
            "dataset": dataset_info(config, metrics), "config_groups": config_groups(config),
            "model": model_summary(model) if model is not None else None,
            "training": training_section(run_dir, metrics),
            "classification": classification_section(run_dir, model, config, metrics),
            "reconstructions": reconstruction_section(run_dir, config, metrics),
            "analysis": analysis, "tuning": tuning}


def build_report(run_dir: str, tuning_dir: str | None = None, analyze: bool = False, out: str | None = None) -> str:
    """Write the report of `run_dir` (atomically) and return its path (default RUN/report.html)."""
    from keras_latent.files import atomic_write_text
    from keras_latent.report_tuning import check_tuning_dir

    config = load_config(run_dir)  # not a run folder: one clear line before any slow work
    if tuning_dir is not None:
        check_tuning_dir(tuning_dir)
    ensure_analysis(run_dir, analyze)
    path = out or os.path.join(run_dir, REPORT_FILE)
    html = render(collect(run_dir, tuning_dir, config))
    try:
        atomic_write_text(path, html)
    except OSError as err:
        raise UsageError(f"cannot write the report to {path!r}: {err.strerror or err}") from None
    return path


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog="python -m keras_latent.report", description=__doc__.splitlines()[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_folder", help="run folder written by python -m keras_latent.train")
    p.add_argument("--tuning", default=None, metavar="DIR",
                   help="results folder of python tuning/search_weights.py (trials.csv, best.json, pareto.png)")
    p.add_argument("--analyze", action="store_true",
                   help="run python -m keras_latent.analyze first when the analysis is missing or older than the model")
    p.add_argument("--out", default=None, help="report file (default: RUN_FOLDER/report.html)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = build_report(args.run_folder, tuning_dir=args.tuning, analyze=args.analyze, out=args.out)
    print(f"report: {path} ({os.path.getsize(path) / 1e6:.1f} MB, self-contained; open it in a browser)")
    return 0


if __name__ == "__main__":
    run_cli(main)
