"""Command: `python -m keras_latent.analyze RUN_FOLDER` decodes every channel of every trunk layer.

Turns flags into an AnalysisConfig and calls `keras_latent.analysis.run.analyze_run`, which writes
RUN_FOLDER/analysis/ (figures, channel_stats.csv, ablation.csv, analysis.json) in one atomic step.
"""
from __future__ import annotations

import argparse

from keras_latent.analysis.config import DECODE_PATH_CHOICES, AnalysisConfig, validate_analysis
from keras_latent.cli import CliParser, add_logging_flags, configure_logging, int_list, name_list, run_cli
from keras_latent.runs import layout


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog=layout.ANALYZE, description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("run_dir", metavar="RUN_FOLDER", help=f"a run folder written by {layout.TRAIN}")
    p.add_argument("--dataset", default=None, help="override the run's data set: auto | cifar10 | sample | PATH "
                   "(same choices as training; its classes must match the run's; default: the run's own)")
    p.add_argument("--train-index", type=int, default=0, help="training-split image to decode (default: 0)")
    p.add_argument("--test-index", type=int, default=0, help="test-split image to decode (default: 0)")
    p.add_argument("--layers", type=name_list, default=None, help="trunk layers, e.g. conv1,conv2 (default: all)")
    p.add_argument("--channels", type=int_list, default=None,
                   help="channels to decode and ablate, e.g. 0,3,5 (default: every channel of each layer)")
    p.add_argument("--mode", choices=("keep", "drop"), default="keep",
                   help="keep: decode with only channel k kept; drop: with only channel k zeroed (default: keep)")
    p.add_argument("--top", type=int, default=5,
                   help="channels listed per layer and class in analysis.json (default: 5)")
    p.add_argument("--decode-path", choices=DECODE_PATH_CHOICES, default="auto",
                   help="how a layer's channels become images: tail (through deconv{k} .. deconv1), propagate "
                        "(through the rest of the trunk, then the whole decoder), or auto: each layer's path with the "
                        "lower all-channels error on the test split (default: auto)")
    add_logging_flags(p)
    return p


def print_summary(summary: dict, run_dir: str) -> None:
    print(f"intact test accuracy {100 * summary['intact_accuracy']:.1f}% on {summary['test_images']} images")
    faithful = summary["faithfulness"]
    for layer, path in summary["decode_paths"].items():
        figures, baseline = faithful["layers"][layer][path], faithful["mean_image"]
        flag = "  NOT FAITHFUL: no better than the mean image" if layer in faithful["no_better_than_mean_image"] else ""
        print(f"{layer}: all channels decoded along the {path} path: MSE {figures['mse']:.4f}, PSNR "
              f"{figures['psnr']:.1f} dB (mean image {baseline['mse']:.4f}, {baseline['psnr']:.1f} dB){flag}")
    for layer, ranked in summary["top_channels"].items():
        drops = ", ".join(f"ch {r['channel']} {100 * r['accuracy_drop']:+.1f}" for r in ranked)
        print(f"{layer}: accuracy drop (points) when zeroed, largest first: {drops}")
    print(f"{len(summary['files'])} figures, {layout.CHANNEL_STATS.name}, {layout.ABLATION.name} and "
          f"{layout.ANALYSIS_SUMMARY.name} in {layout.analysis_dir(run_dir)}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    config = validate_analysis(AnalysisConfig(
        dataset=args.dataset, train_index=args.train_index, test_index=args.test_index, layers=args.layers,
        channels=args.channels, mode=args.mode, top=args.top, decode_path=args.decode_path))
    from keras_latent.analysis.run import analyze_run

    summary = analyze_run(args.run_dir, config)
    print_summary(summary, args.run_dir)
    return 0


def console_main() -> None:  # the console script (pyproject.toml)
    run_cli(main)


if __name__ == "__main__":
    console_main()
