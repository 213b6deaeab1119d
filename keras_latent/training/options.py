"""Training flags -> TrainConfig, shared by every command that trains (`train`, and each variant of `study`).

`add_training_flags` adds the data, model, training and performance flags of `python -m keras_latent.train`
to a parser; `config_from_flags` turns the parsed flags into a validated TrainConfig. No TensorFlow import:
commands check their flags before TensorFlow loads.
"""
from __future__ import annotations

import argparse
import logging

from keras_latent import config as cfg
from keras_latent.cli import float_list, int_list
from keras_latent.errors import UsageError
from keras_latent.runs.records import read_best_weights

log = logging.getLogger("keras_latent")


def add_training_flags(p: argparse.ArgumentParser) -> None:
    """The data, model, training and performance flag groups (not --out, --overwrite or -q/-v)."""
    d, m, t = cfg.DataConfig(), cfg.ModelConfig(), cfg.TrainConfig()
    data = p.add_argument_group("data")
    data.add_argument("--dataset", default=d.dataset, help="auto | cifar10 | sample | PATH to a cifar-10-batches-py "
                      "folder or an image folder (train/ and test/ with class subfolders, or class subfolders)")
    data.add_argument("--tfds-data-dir", default=d.tfds_data_dir, help="tensorflow-datasets data dir")
    data.add_argument("--image-size", type=int, default=m.image_size, help="input height and width (resized)")
    data.add_argument("--test-fraction", type=float, default=d.test_fraction,
                      help="held-out share for an image folder without train/ and test/")
    data.add_argument("--max-train-samples", type=int, default=None, help="train on N images only")
    data.add_argument("--split-seed", type=int, default=None,
                      help="seed of the held-out test split and of the --max-train-samples subset (default: --seed)")
    data.add_argument("--augment", action="store_true", help="random flips and shifts of training images")
    data.add_argument("--data-memory-budget", type=float, default=d.memory_budget_mb, metavar="MB",
                      help="decoded images (train + test, uint8) held in memory; a larger folder is decoded once "
                           "into the run folder's data_cache/ and streamed from there (0: always stream)")
    model = p.add_argument_group("model")
    model.add_argument("--filters", type=int_list, default=m.filters, help="channels of each trunk conv block")
    model.add_argument("--kernel-size", type=int, default=m.kernel_size, help="trunk conv kernel size")
    model.add_argument("--padding", default=None, help="valid | same (default: valid when the trunk fits)")
    model.add_argument("--head-units", type=int_list, default=m.head_units, help="classifier head dense widths")
    model.add_argument("--no-decoder", action="store_true", help="classifier only (no reconstruction)")
    model.add_argument("--layer-decoders", action=argparse.BooleanOptionalAction, default=m.layer_decoders,
                       help="also train the decoder on each shallower block's own activations (outputs "
                            "reconstruction_conv{k}), so every layer's channels decode faithfully")
    train = p.add_argument_group("training")
    train.add_argument("--ce-weight", type=float, default=None,
                       help=f"cross-entropy loss weight (default {t.ce_weight})")
    train.add_argument("--recon-weight", type=float, default=None,
                       help=f"reconstruction MSE loss weight (default {t.recon_weight})")
    train.add_argument("--layer-recon-weights", type=float_list, default=None, metavar="W1[,W2...]",
                       help="loss weight of each shallower block's reconstruction, conv1 .. conv{N-1} "
                            f"(default {cfg.DEFAULT_LAYER_RECON_WEIGHT:g} each)")
    train.add_argument("--weights-from", metavar="BEST_JSON", default=None,
                       help="take both loss weights from a search's best.json (or its results folder), written by "
                            "python tuning/search_weights.py; not combinable with --ce-weight/--recon-weight")
    train.add_argument("--optimizer", default=t.optimizer, help="sgd (momentum 0.9) | adam")
    train.add_argument("--lr", type=float, default=t.lr, help="learning rate")
    train.add_argument("--epochs", type=int, default=t.epochs, help="training epochs")
    train.add_argument("--batch-size", type=int, default=t.batch_size, help="images per step")
    train.add_argument("--seed", type=int, default=t.seed, help="random seed")
    train.add_argument("--snapshot-epochs", type=int_list, default=t.snapshot_epochs,
                       help="epochs whose reconstructions are saved (0 = before training)")
    _add_performance_flags(p, t, m)


def _add_performance_flags(p: argparse.ArgumentParser, t: cfg.TrainConfig, m: cfg.ModelConfig) -> None:
    """Speed and devices; every default is measured (docs/performance.md) and can be switched off. The
    formulation flags default to "chosen for this machine" (calibration); giving one fixes it."""
    perf = p.add_argument_group("performance and devices")
    perf.add_argument("--strategy", default=t.strategy, help="default (one device) | mirrored (every local GPU) | "
                      "multiworker (several machines; needs TF_CONFIG)")
    perf.add_argument("--steps-per-execution", type=int, default=t.steps_per_execution,
                      help="train steps per call into the compiled graph (1 = a Python round trip per step; "
                           "always 1 under mirrored/multiworker)")
    perf.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=t.calibrate,
                      help="choose the formulation flags below that are not given by measuring this machine "
                           "(once, cached per CPU and versions); --no-calibrate: their static defaults")
    perf.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=None,
                      help="XLA-compile the train step (default: calibrated; static default off)")
    perf.add_argument("--batch-split", type=int, default=None, metavar="N",
                      help="compute each batch as N equal parts side by side, the same gradient (default: "
                           "calibrated; static default 1)")
    perf.add_argument("--intra-op-threads", type=int, default=None,
                      help="threads one TensorFlow op may use, 0 = one per core (default: calibrated; static "
                           "default 0)")
    perf.add_argument("--inter-op-threads", type=int, default=None,
                      help="TensorFlow ops run at once, 0 = one per core (default: calibrated; static default 0)")
    perf.add_argument("--sub-pixel-decoder", action=argparse.BooleanOptionalAction, default=m.sub_pixel_decoder,
                      help="the decoder's transposed convs as stride-1 conv + depth-to-space (the same function)")
    perf.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=t.mixed_precision,
                      help="mixed_bfloat16: bfloat16 compute, float32 weights and outputs")


def loss_weights_from_flags(args: argparse.Namespace) -> tuple[float, float]:
    """(ce_weight, recon_weight): from --weights-from, else the flags, else the defaults; both sources is an error."""
    t = cfg.TrainConfig()
    if args.weights_from is None:
        return (t.ce_weight if args.ce_weight is None else args.ce_weight,
                t.recon_weight if args.recon_weight is None else args.recon_weight)
    given = [flag for flag, value in (("--ce-weight", args.ce_weight), ("--recon-weight", args.recon_weight))
             if value is not None]
    if given:
        raise UsageError(f"--weights-from sets both loss weights; drop {' and '.join(given)} or --weights-from")
    ce_weight, recon_weight = read_best_weights(args.weights_from)
    log.info(f"loss weights from {args.weights_from}: ce_weight {ce_weight:g}, recon_weight {recon_weight:g}")
    return ce_weight, recon_weight


def config_from_flags(args: argparse.Namespace) -> cfg.TrainConfig:
    """The validated TrainConfig of flags parsed by a parser with `add_training_flags`."""
    ce_weight, recon_weight = loss_weights_from_flags(args)
    padding = args.padding or cfg.default_padding(args.image_size, args.filters, args.kernel_size)
    model = cfg.ModelConfig(image_size=args.image_size, filters=args.filters, kernel_size=args.kernel_size,
                            padding=padding, head_units=args.head_units, decoder=not args.no_decoder,
                            sub_pixel_decoder=args.sub_pixel_decoder, layer_decoders=args.layer_decoders)
    data = cfg.DataConfig(dataset=args.dataset, tfds_data_dir=args.tfds_data_dir, test_fraction=args.test_fraction,
                          max_train_samples=args.max_train_samples, split_seed=args.split_seed, augment=args.augment,
                          memory_budget_mb=args.data_memory_budget)
    return cfg.validate(cfg.resolve_defaults(cfg.TrainConfig(
        data=data, model=model, ce_weight=ce_weight, recon_weight=recon_weight,
        layer_recon_weights=args.layer_recon_weights, optimizer=args.optimizer,
        lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        snapshot_epochs=args.snapshot_epochs, steps_per_execution=args.steps_per_execution,
        mixed_precision=args.mixed_precision, strategy=args.strategy, jit_compile=args.jit_compile,
        batch_split=args.batch_split, intra_op_threads=args.intra_op_threads, inter_op_threads=args.inter_op_threads,
        calibrate=args.calibrate)))
