"""Command: `python -m keras_latent.explore RUN_FOLDER` serves a web page to switch a run's channels on and off.

Turns flags into an ExploreConfig and calls `keras_latent.explorer.server.serve`, which loads the run's
model.keras and serves the page and its JSON API (docs/explore.md) until Ctrl+C.
"""
from __future__ import annotations

import argparse

from keras_latent.cli import CliParser, add_logging_flags, configure_logging, run_cli
from keras_latent.explorer.config import DEFAULT_HOST, DEFAULT_PORT, ExploreConfig, validate_explore
from keras_latent.runs import layout

PROG = "python -m keras_latent.explore"


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog=PROG, description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("run_dir", metavar="RUN_FOLDER", help=f"a finished run folder written by {layout.TRAIN}")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default: {DEFAULT_HOST}, this machine only; any other prints a "
                        "warning: the page has no login)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"TCP port; 0 picks a free one (default: {DEFAULT_PORT})")
    p.add_argument("--dataset", default=None, help="override the run's data set for the test images: auto | cifar10 | "
                   "sample | PATH (its classes must match the run's; default: the run's own)")
    p.add_argument("--max-upload-mb", type=float, default=ExploreConfig.max_upload_mb,
                   help=f"largest image upload accepted, in MB (default: {ExploreConfig.max_upload_mb:g})")
    add_logging_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    config = validate_explore(ExploreConfig(host=args.host, port=args.port, dataset=args.dataset,
                                            max_upload_mb=args.max_upload_mb))
    from keras_latent.explorer.server import serve

    serve(args.run_dir, config, on_ready=lambda url: print(f"explorer of {args.run_dir}: {url} (Ctrl+C stops it)",
                                                          flush=True))
    return 0


def console_main() -> None:  # the console script (pyproject.toml)
    run_cli(main)


if __name__ == "__main__":
    console_main()
