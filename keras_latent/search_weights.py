"""Command: `python tuning/search_weights.py` searches the loss weights (cross-entropy, reconstruction) with KerasTuner.

Every trial trains the package's two-output model with one (ce_weight, recon_weight) pair and is scored by
its validation classifier accuracy; the results folder gets trials.csv, pareto.png and best.json. Rerunning
the same command resumes the search; KERASTUNER_* variables make this process a chief or a worker.
It is also `python -m keras_latent.search_weights` and `keras-latent-search-weights`. This module only
turns flags into a SearchConfig; `keras_latent.tuning.tuner.run_search` does the work.
"""
from __future__ import annotations

import argparse
import os

from keras_latent import config as cfg
from keras_latent.cli import CliParser, add_logging_flags, configure_logging, float_list, run_cli
from keras_latent.errors import UsageError
from keras_latent.runs import layout
from keras_latent.runs.records import read_csv
from keras_latent.tuning.config import TUNERS, SearchConfig, distributed_role, validate_search

PROG = layout.SEARCH


def build_parser() -> argparse.ArgumentParser:
    t = cfg.TrainConfig()
    p = CliParser(prog=PROG, description=__doc__.splitlines()[0])
    space = p.add_argument_group("search space")
    space.add_argument("--tuner", choices=TUNERS, default="grid",
                       help="KerasTuner oracle: grid (every pair), bayesian (Gaussian process) or random")
    space.add_argument("--ce-weights", type=float_list, default=None,
                       help="grid: cross-entropy weights, > 0 (default 0.5,1,2)")
    space.add_argument("--recon-weights", type=float_list, default=None,
                       help="grid: reconstruction weights, >= 0 (default 0,0.5,1,2,4)")
    space.add_argument("--ce-range", type=float_list, default=None, metavar="LO,HI",
                       help="bayesian/random: cross-entropy weight range, log-scaled, 0 < LO < HI (default 0.25,4)")
    space.add_argument("--recon-range", type=float_list, default=None, metavar="LO,HI",
                       help="bayesian/random: reconstruction weight range, log-scaled, 0 < LO < HI; 0 itself is "
                            "searched by the grid only (default 0.1,8)")
    space.add_argument("--max-trials", type=int, default=None,
                       help="trials in all (default: the whole grid; 15 for bayesian/random); may grow on resume")
    data = p.add_argument_group("data (as in python -m keras_latent.train)")
    data.add_argument("--dataset", default="auto", help="auto | cifar10 | sample | PATH (see keras_latent.train)")
    data.add_argument("--tfds-data-dir", default=None, help="tensorflow-datasets data dir (default: theirs)")
    data.add_argument("--max-train-samples", type=int, default=None,
                      help="use a seeded random subset of N training images, as training does (default: all)")
    data.add_argument("--val-fraction", type=float, default=0.2,
                      help="share of the training images held out to score trials (the test split is not used)")
    train = p.add_argument_group("each trial")
    train.add_argument("--epochs", type=int, default=10, help="epochs per trial")
    train.add_argument("--batch-size", type=int, default=t.batch_size, help="images per step")
    train.add_argument("--seed", type=int, default=t.seed, help="seed of the data split, initial weights and oracle")
    train.add_argument("--executions-per-trial", type=int, default=1, metavar="N",
                       help="train each pair N times, execution k from seed + k (KerasTuner's executions_per_trial); "
                            "trials.csv then gives each pair's mean, sd and standard error, and best.json the pairs "
                            "within noise of the best")
    out = p.add_argument_group("output")
    out.add_argument("--directory", default=os.path.join("tuning", "results"), help="folder of search projects")
    out.add_argument("--project-name", default=None, help="results folder name (default loss_weights_<tuner>)")
    out.add_argument("--overwrite", action="store_true", help="delete the project's finished trials and start over")
    add_logging_flags(p)
    return p


def search_config_from_args(args: argparse.Namespace) -> SearchConfig:
    grid_only, ranged_only = ("--ce-weights", "--recon-weights"), ("--ce-range", "--recon-range")
    right = grid_only if args.tuner == "grid" else ranged_only
    flags = {flag[2:].replace("-", "_"): flag for flag in grid_only + ranged_only}  # SearchConfig field: its flag
    given = {field: getattr(args, field) for field in flags if getattr(args, field) is not None}  # others: defaults
    wrong = [flags[field] for field in given if flags[field] not in right]
    if wrong:
        raise UsageError(f"--tuner {args.tuner} takes {'/'.join(right)}, not {' or '.join(wrong)}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    data = cfg.DataConfig(dataset=args.dataset, tfds_data_dir=args.tfds_data_dir,
                          max_train_samples=args.max_train_samples)
    train = cfg.TrainConfig(data=data, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                            snapshot_epochs=())
    return validate_search(SearchConfig(train=train, tuner=args.tuner, max_trials=args.max_trials,
                                        val_fraction=args.val_fraction,
                                        executions_per_trial=args.executions_per_trial, **given))


def _number(text: str) -> float:
    return float(text) if text else float("nan")


def print_results(results_dir: str, best: dict) -> None:
    rows = read_csv(layout.TRIALS.path(results_dir), layout.TRIALS) or []
    repeated = any(r.get("val_accuracy_sd") for r in rows)
    print(f"\n{'trial':>5} {'ce':>6} {'recon':>6} {'val acc':>8}{' ± sd':>8} {'val MSE':>8} {'epochs':>6} {'s':>6}  "
          f"{'noise':>5}  status" if repeated else
          f"\n{'trial':>5} {'ce':>6} {'recon':>6} {'val acc':>8} {'val MSE':>8} {'epochs':>6} {'s':>6}  status")
    for r in rows:
        num = {k: _number(r.get(k, "")) for k in ("val_accuracy", "val_accuracy_sd", "val_recon_mse", "seconds")}
        spread = f"{num['val_accuracy_sd']:>8.4f} " if repeated else " "
        noise = f"{r.get('within_noise') or '':>5}  " if repeated else ""
        print(f"{r['trial_id']:>5} {float(r['ce_weight']):>6g} {float(r['recon_weight']):>6g} "
              f"{num['val_accuracy']:>8.4f}{spread}{num['val_recon_mse']:>8.4f} {r['epochs']:>6} "
              f"{num['seconds']:>6.1f}  {noise}{r['status']}")
    spread = f" ± {best['val_accuracy_sd']:.4f} sd over {best['executions']} executions" \
        if best.get("val_accuracy_sd") is not None else ""
    print(f"\nbest: ce_weight {best['ce_weight']:g}, recon_weight {best['recon_weight']:g} (trial {best['trial_id']}: "
          f"val accuracy {best['val_accuracy']:.4f}{spread}, val reconstruction MSE {best['val_recon_mse']:.4f})")
    close = best.get("within_noise_of_best")
    if close is None:
        print("within noise of the best: unknown with one execution per trial (use --executions-per-trial 3)")
    else:
        pairs = ", ".join(f"({p['ce_weight']:g}, {p['recon_weight']:g}) {p['difference']:+.4f} p={p['p_value']:.2f}"
                          for p in close) or "none"
        print(f"within noise of the best (paired t-test p >= 0.05): {pairs}")
    print(f"results: {results_dir} ({layout.TRIALS.name}, {layout.PARETO.name}, {layout.BEST.name})\n"
          f"train with them: {best['train_command']}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    search = search_config_from_args(args)
    role = distributed_role(args.overwrite)  # bad flags and KERASTUNER_* variables fail before TensorFlow loads
    from keras_latent.tuning.tuner import run_search

    project_name = args.project_name or f"loss_weights_{args.tuner}"
    best = run_search(search, args.directory, project_name, overwrite=args.overwrite)
    results_dir = os.path.join(args.directory, project_name)
    if role == "worker":
        print(f"worker {os.environ['KERASTUNER_TUNER_ID']} done: no trials left; the chief writes the results")
    elif best is None:
        print(f"no trial completed; see {layout.TRIALS.path(results_dir)} for their status")
        return 1
    else:
        print_results(results_dir, best)
    return 0


def console_main() -> None:  # the console script (pyproject.toml)
    run_cli(main)


if __name__ == "__main__":
    console_main()
