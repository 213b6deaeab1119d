"""Command: `python -m keras_latent.attach MODEL.keras --out RUN` attaches decoders to your own trained Keras convnet.

Turns flags into an AttachConfig and calls `keras_latent.attached.run.attach_decoders`, which reads the model
with safe_mode (`--import MODULE` RUNS that module's code, to register custom layers), trains one decoder per
chosen layer on its frozen features and writes a run folder that analyze, report, explore and export read.
The model file is only read (its sha256 is checked before and after). See docs/own-model.md.
"""
from __future__ import annotations

import argparse

from keras_latent.attached.config import OUTPUT_KIND_CHOICES, AttachConfig, validate_attach
from keras_latent.cli import CliParser, add_logging_flags, configure_logging, float_list, int_list, name_list, run_cli
from keras_latent.config import DataConfig
from keras_latent.errors import UsageError
from keras_latent.runs import layout


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog=layout.ATTACH, description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("model_path", metavar="MODEL", help="your trained Keras 3 model file, MODEL.keras (only read)")
    p.add_argument("--data", default="sample", help="images to train the decoders on: sample | cifar10 | auto | "
                   "PATH (an image folder or cifar-10-batches-py); resized and converted to the model's input "
                   "(default: sample)")
    p.add_argument("--out", required=True, help="the run folder to write (new, or an empty folder)")
    p.add_argument("--overwrite", action="store_true", help="replace --out when it is an attached run folder "
                   "(the old one is kept until the new one is complete)")
    p.add_argument("--layers", type=name_list, default=None, help="layers to decode, names or nested paths "
                   "(stem/conv1), comma-separated (default: the last layer before each spatial downsampling)")
    p.add_argument("--epochs", type=int, default=10, help="decoder training epochs (default: 10)")
    p.add_argument("--batch-size", type=int, default=64, help="images per decoder training step (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the decoders' weights, order and data split "
                   "(default: 0)")
    p.add_argument("--input-range", type=float_list, default=None, help="LO,HI: the pixel range the model takes, "
                   "e.g. 0,1 or -1,1 (default: 0,255 when the model starts with a Rescaling layer, else required)")
    p.add_argument("--image-size", type=int_list, default=None, help="H,W: the input size, for a model whose "
                   "input size is open (default: the model's)")
    p.add_argument("--class-output", default=None, help="the class output of a model with several outputs")
    p.add_argument("--output-kind", choices=OUTPUT_KIND_CHOICES, default="auto", help="what the class output "
                   "holds: probabilities, logits, or auto: probabilities when the last layer ends in a softmax or "
                   "sigmoid (default: auto)")
    p.add_argument("--channel-dropout", type=float, default=0.0, help="probability that a training image is "
                   "decoded from one random channel only (default: 0.0)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="a module to import before loading (repeatable): it registers your custom layers, and "
                   "RUNS that module's code")
    p.add_argument("--max-train-samples", type=int, default=None, help="train on the first N (shuffled) images "
                   "only (default: all)")
    add_logging_flags(p)
    return p


def _pair(values, flag: str, kind: type):
    if values is None:
        return None
    if len(values) != 2:
        raise UsageError(f"{flag} takes two comma-separated values, got {','.join(map(str, values))}")
    return tuple(kind(v) for v in values)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    config = validate_attach(AttachConfig(
        model_path=args.model_path, data=DataConfig(dataset=args.data, max_train_samples=args.max_train_samples),
        layers=args.layers, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        input_range=_pair(args.input_range, "--input-range", float),
        image_size=_pair(args.image_size, "--image-size", int), class_output=args.class_output,
        output_kind=args.output_kind, channel_dropout=args.channel_dropout, imports=tuple(args.imports)))
    from keras_latent.data.sources import check_dataset_argument

    check_dataset_argument(config.data.dataset)
    from keras_latent.attached.run import attach_decoders

    metrics = attach_decoders(config, args.out, overwrite=args.overwrite)
    faithful = metrics["faithfulness"]
    print(f"layers: {', '.join(metrics['layers'])}")
    base = faithful["mean_image"]
    for layer, figures in faithful["layers"].items():
        flag = "  NOT FAITHFUL: no better than the mean image" if layer in faithful["no_better_than_mean_image"] else ""
        print(f"{layer}: MSE {figures['mse']:.4f}, PSNR {figures['psnr']:.1f} dB, normalized error "
              f"{figures['normalized_error_pct']:.1f}%{flag}")
    print(f"mean image: MSE {base['mse']:.4f}, PSNR {base['psnr']:.1f} dB, normalized error "
          f"{base['normalized_error_pct']:.1f}%")
    if metrics["test_accuracy"] is not None:
        print(f"your model's test accuracy {100 * metrics['test_accuracy']:.1f}% on {metrics['test_images']} images")
    print(f"run folder: {metrics['run_dir']} ({metrics['seconds']:.1f} s)")
    return 0


def console_main() -> None:  # the console script (pyproject.toml)
    run_cli(main)


if __name__ == "__main__":
    console_main()
