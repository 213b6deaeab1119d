"""Command: `python -m keras_latent.analyze RUN_FOLDER` decodes, visualizes and ablates every trunk channel.

Turns flags into an AnalysisConfig and calls `keras_latent.analysis.run.analyze_run`, which writes
RUN_FOLDER/analysis/ (figures, channel_stats.csv, ablation.csv, features.csv, analysis.json) in one
atomic step. --methods picks the views: decode (channels alone through the decoder), features
(feature visualization), gradcam (Grad-CAM) and saliency (SmoothGrad); sanity (opt-in, minutes) adds the
controls and sanity checks of every view (sanity.json and its figures).
"""
from __future__ import annotations

import argparse

from keras_latent.analysis.config import (
    DECODE_PATH_CHOICES,
    DEFAULT_METHODS,
    METHODS,
    AnalysisConfig,
    validate_analysis,
)
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
                   help="channels to decode, visualize and ablate, e.g. 0,3,5 (default: every channel of each layer)")
    p.add_argument("--mode", choices=("keep", "drop"), default="keep",
                   help="keep: decode with only channel k kept; drop: with only channel k zeroed (default: keep)")
    p.add_argument("--top", type=int, default=5,
                   help="channels listed per layer and class in analysis.json (default: 5)")
    p.add_argument("--decode-path", choices=DECODE_PATH_CHOICES, default="auto",
                   help="how a layer's channels become images: tail (through deconv{k} .. deconv1), propagate "
                        "(through the rest of the trunk, then the whole decoder), or auto: each layer's path with the "
                        "lower all-channels error on the test split (default: auto)")
    p.add_argument("--methods", type=name_list, default=DEFAULT_METHODS,
                   help=f"views to make, comma-separated: {', '.join(METHODS)} (default: {','.join(DEFAULT_METHODS)}; "
                   "sanity, the controls of every view, is opt-in: minutes; channel statistics and ablation are "
                   "always measured)")
    p.add_argument("--feature-steps", type=int, default=512,
                   help="gradient-ascent steps of the feature visualization (default: 512)")
    p.add_argument("--feature-lr", type=float, default=0.05,
                   help="Adam learning rate of the feature visualization (default: 0.05)")
    p.add_argument("--saliency-samples", type=int, default=50,
                   help="noisy copies per image in SmoothGrad saliency (default: 50)")
    p.add_argument("--sanity-images", type=int, default=32,
                   help="with --methods ...,sanity: test images the sanity checks analyse (default: 32)")
    p.add_argument("--sanity-accuracy-images", type=int, default=512,
                   help="test images of the channel-deletion check, half to rank and half to score (default: 512)")
    p.add_argument("--sanity-decoder-epochs", type=int, default=5,
                   help="epochs of each decoder fitted for the randomized-trunk control (default: 5)")
    p.add_argument("--sanity-decoder-images", type=int, default=1024,
                   help="training images of those decoders (default: 1024)")
    add_logging_flags(p)
    return p


def print_summary(summary: dict, run_dir: str) -> None:
    print(f"intact test accuracy {100 * summary['intact_accuracy']:.1f}% on {summary['test_images']} images")
    faithful = summary["faithfulness"]
    for layer, path in summary["decode_paths"].items():
        figures, baseline = faithful["layers"][layer], faithful["mean_image"]
        figures = figures.get(path, figures)  # a trained run: per decode path; an attached run: its own decoder
        flag = "  NOT FAITHFUL: no better than the mean image" if layer in faithful["no_better_than_mean_image"] else ""
        print(f"{layer}: all channels decoded along the {path} path: MSE {figures['mse']:.4f}, PSNR "
              f"{figures['psnr']:.1f} dB (mean image {baseline['mse']:.4f}, {baseline['psnr']:.1f} dB){flag}")
    for layer, ranked in summary["top_channels"].items():
        drops = ", ".join(f"ch {r['channel']} {100 * r['accuracy_drop']:+.1f}" for r in ranked)
        print(f"{layer}: accuracy drop (points) when zeroed, largest first: {drops}")
    for layer, rows in (summary.get("features") or {}).items():
        ratios = [r["optimized_activation"] / r["best_test_activation"] for r in rows if r["best_test_activation"] > 0]
        if ratios:
            print(f"{layer}: optimized images reach {min(ratios):.1f}x to {max(ratios):.1f}x the highest test-image "
                  "activation of their channel")
    for view in ((summary.get("sanity") or {}).get("verdicts") or {}).values():
        print(f"sanity: {view['line']}")
    times = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in summary.get("seconds", {}).items())
    print(f"wall time: {times}")
    print(f"{len(summary['files'])} figures, {layout.CHANNEL_STATS.name}, {layout.ABLATION.name} and "
          f"{layout.ANALYSIS_SUMMARY.name} in {layout.analysis_dir(run_dir)}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    config = validate_analysis(AnalysisConfig(
        dataset=args.dataset, train_index=args.train_index, test_index=args.test_index, layers=args.layers,
        channels=args.channels, mode=args.mode, top=args.top, decode_path=args.decode_path, methods=args.methods,
        feature_steps=args.feature_steps, feature_lr=args.feature_lr, saliency_samples=args.saliency_samples,
        sanity_images=args.sanity_images, sanity_accuracy_images=args.sanity_accuracy_images,
        sanity_decoder_epochs=args.sanity_decoder_epochs, sanity_decoder_images=args.sanity_decoder_images))
    from keras_latent.analysis.run import analyze_run

    summary = analyze_run(args.run_dir, config)
    print_summary(summary, args.run_dir)
    return 0


def console_main() -> None:  # the console script (pyproject.toml)
    run_cli(main)


if __name__ == "__main__":
    console_main()
