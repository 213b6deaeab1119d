"""Command: `python -m keras_latent.export RUN_FOLDER` re-exports a finished run as a TF SavedModel (and TFLite).

Calls `keras_latent.exporting.savedmodel.export_run`; the signatures are described there and in docs/export.md.
"""
from __future__ import annotations

import argparse
import os

from keras_latent.cli import CliParser, add_logging_flags, configure_logging, run_cli
from keras_latent.runs import layout


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog=layout.EXPORT, description="Re-export a finished run folder as a TF SavedModel (and TFLite).")
    p.add_argument("run_dir", metavar="RUN_FOLDER", help=f"a run folder written by {layout.TRAIN}")
    p.add_argument("--tflite", action="store_true", help=f"also write {layout.TFLITE.name} (serving_default)")
    add_logging_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    from keras_latent.exporting.savedmodel import describe_export, export_run

    for path in export_run(args.run_dir, tflite=args.tflite):
        kind = "SavedModel" if os.path.isdir(path) else "TFLite model"
        print(f"wrote {kind} {path} ({describe_export(path)})")
    return 0


def console_main() -> None:  # the console script (pyproject.toml)
    run_cli(main)


if __name__ == "__main__":
    console_main()
