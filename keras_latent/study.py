"""Command: `python -m keras_latent.study` trains each variant over several seeds and compares them with error bars.

The classifier-only baseline (--no-decoder), the two-output model (default weights, or --weights-from) and any
--variant NAME="TRAINING FLAGS" are each trained once per seed, on the same data and test split, into ordinary
run folders inside the study folder; then study.csv, summary.json (means, 95% intervals, paired t-tests), the two
figures and report.html. Rerunning the same command continues a killed study from its finished runs. This module
only turns flags into a StudyConfig (`keras_latent.studies.config`); `keras_latent.studies.run.run_study` does
the work.
"""
from __future__ import annotations

import argparse
import os

from keras_latent.cli import CliParser, add_logging_flags, configure_logging, run_cli
from keras_latent.data.sources import DATASET_NAMES, check_dataset_argument
from keras_latent.runs import layout
from keras_latent.studies.config import BASELINE, DEFAULT_SEEDS, TWO_OUTPUT, study_config_from_flags
from keras_latent.training.options import add_training_flags


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog=layout.STUDY, description=__doc__.splitlines()[0].split(": ", 1)[1])
    add_training_flags(p)
    study = p.add_argument_group("study (the training flags above apply to every variant)")
    study.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, metavar="N",
                       help="runs per variant, seeded --seed .. --seed + N - 1; runs of one seed are paired across "
                            "variants, and every run is tested on the split of --seed")
    study.add_argument("--variant", action="append", default=[], metavar='NAME="FLAGS"',
                       help=f"an extra variant: the study's training flags plus FLAGS, e.g. "
                            f'--variant wide="--filters 32,64" (repeatable; besides {BASELINE} and {TWO_OUTPUT})')
    out = p.add_argument_group("output")
    out.add_argument("--out", default=None, help="study folder (default: studies/<dataset>); rerunning the same "
                     "command continues the study in it")
    out.add_argument("--overwrite", action="store_true", help="delete the study already in --out (its runs "
                     "included) and start over")
    add_logging_flags(p)
    return p


def default_study_dir(dataset: str) -> str:
    return os.path.join("studies", dataset if dataset in DATASET_NAMES else "custom")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    study = study_config_from_flags(args, args.variant)
    check_dataset_argument(args.dataset)  # before TensorFlow loads: a bad path is one clean line
    from keras_latent.studies.run import run_study

    summary = run_study(study, args.out or default_study_dir(args.dataset), overwrite=args.overwrite)
    for name, figures in summary["variants"].items():
        accuracy = figures["test_accuracy"]
        spread = (f" ± {accuracy['sd']:.4f} sd (95% CI {accuracy['ci_low']:.4f} to {accuracy['ci_high']:.4f})"
                  if accuracy["sd"] is not None else "")
        print(f"{name}: test accuracy {accuracy['mean']:.4f}{spread}, {accuracy['n']} "
              f"seed{'s' if accuracy['n'] != 1 else ''}")
    for sentence in summary["conclusions"]:
        print(sentence)
    print(f"study folder: {summary['study_dir']} ({layout.STUDY_CSV.name}, {layout.STUDY_SUMMARY.name}); "
          f"report: {summary['report']}")
    return 0


def console_main() -> None:  # the console script (pyproject.toml)
    run_cli(main)


if __name__ == "__main__":
    console_main()
