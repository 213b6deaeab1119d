"""Command: `python -m keras_latent.report RUN_FOLDER` writes the study as one self-contained HTML file.

Calls `keras_latent.reporting.build.build_report` (for a study folder, `reporting.study_report.build_study_report`);
what the page holds is described there and in docs/report.md.
"""
from __future__ import annotations

import argparse
import os

from keras_latent.cli import CliParser, add_logging_flags, configure_logging, run_cli
from keras_latent.errors import UsageError
from keras_latent.runs import layout


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog=layout.REPORT, description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("run_folder", help=f"run folder written by {layout.TRAIN}, or a study folder written by "
                   f"{layout.STUDY} (then the study's report)")
    p.add_argument("--tuning", default=None, metavar="DIR",
                   help=f"results folder of {layout.SEARCH} ({layout.TRIALS.name}, {layout.BEST.name}, "
                        f"{layout.PARETO.name})")
    p.add_argument("--analyze", action="store_true",
                   help=f"run {layout.ANALYZE} first when the analysis is missing or older than the model")
    p.add_argument("--out", default=None, help=f"report file (default: RUN_FOLDER/{layout.REPORT_FILE.name})")
    add_logging_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    from keras_latent.reporting.study_report import build_study_report, is_study_dir

    if is_study_dir(args.run_folder):
        if args.tuning or args.analyze:
            raise UsageError(f"{args.run_folder!r} is a study folder: --tuning and --analyze are for a run folder's "
                             "report (give one of its runs/<variant>/seed-<n> folders)")
        path = build_study_report(args.run_folder, run_reports=True, out=args.out)
    else:
        from keras_latent.reporting.build import build_report

        path = build_report(args.run_folder, tuning_dir=args.tuning, analyze=args.analyze, out=args.out)
    print(f"report: {path} ({os.path.getsize(path) / 1e6:.1f} MB, self-contained; open it in a browser)")
    return 0


def console_main() -> None:  # the console script (pyproject.toml)
    run_cli(main)


if __name__ == "__main__":
    console_main()
