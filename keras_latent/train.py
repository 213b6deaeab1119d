"""Command: `python -m keras_latent.train` trains the two-output model and writes a run folder.

This module only turns flags into a TrainConfig (`keras_latent.training.options`, the flags every training
command shares); `keras_latent.training.fit.train` does the work.
"""
from __future__ import annotations

import argparse
import datetime
import logging
import os

from keras_latent import config as cfg
from keras_latent.cli import CliParser, add_logging_flags, configure_logging, run_cli
from keras_latent.data.sources import DATASET_NAMES, check_dataset_argument
from keras_latent.runs import layout
from keras_latent.training.options import add_training_flags, config_from_flags

log = logging.getLogger("keras_latent")


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog=layout.TRAIN, description=__doc__.splitlines()[0].split(": ", 1)[1])
    add_training_flags(p)
    out = p.add_argument_group("output")
    out.add_argument("--out", default=None, help="run folder (default: saved_models/<timestamp>); rerunning the same "
                     "command into a folder whose training was killed resumes it from its last finished epoch")
    out.add_argument("--overwrite", action="store_true", help="start over in --out: delete the run files already "
                     "there (a finished or an interrupted run) and train from scratch")
    add_logging_flags(p)
    return p


def default_run_dir(config: cfg.TrainConfig) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = config.data.dataset if config.data.dataset in DATASET_NAMES else "custom"
    return os.path.join("saved_models", f"{stamp}_{name}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    config = config_from_flags(args)
    check_dataset_argument(config.data.dataset)  # before TensorFlow loads: a bad path is one clean line
    from keras_latent.training.fit import train

    run_dir = args.out or default_run_dir(config)
    metrics = train(config, run_dir, overwrite=args.overwrite, verbose=0 if args.quiet else "auto")
    mse = metrics.get("test_reconstruction_mse")
    print(f"test accuracy {metrics['test_accuracy']:.4f}"
          + (f", reconstruction MSE {mse:.4f}" if mse is not None else "")
          + f", {metrics['images_per_s']:.0f} images/s; run folder: {metrics['run_dir']}")
    return 0


def console_main() -> None:  # the console script (pyproject.toml)
    run_cli(main)


if __name__ == "__main__":
    console_main()
