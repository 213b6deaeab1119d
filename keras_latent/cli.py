"""What every command shares: argparse with one-line errors, list parsers, -q/-v logging, and `run_cli`.

Commands print their results; library code logs to `logging.getLogger("keras_latent")`, which
`configure_logging` sends to stdout as plain lines (warnings to stderr as `notice: ...`).
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from keras_latent.errors import UsageError

EXIT_USAGE = 2
LOGGER = "keras_latent"


class CliParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one `error:` line and exit 2 (via `run_cli`), like all bad input, and
    whose help shows defaults the same way in every command (`HelpFormatter`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """The help formatter of every command: shows a flag's default, except where there is none to show: None
    (worked out later and said in the help), an on/off flag's False, or a help that already names its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text.lower():
            return text
        return super()._get_help_string(action)


def _parse_list(text: str, kind: type, example: str) -> tuple:
    try:
        return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        noun = "integers" if kind is int else "numbers"
        raise argparse.ArgumentTypeError(f"expected comma-separated {noun} like {example}, got {text!r}") from None


def int_list(text: str) -> tuple[int, ...]:
    """"6,16" -> (6, 16)."""
    return _parse_list(text, int, "6,16")


def float_list(text: str) -> tuple[float, ...]:
    """"0.5,1,2" -> (0.5, 1.0, 2.0)."""
    return _parse_list(text, float, "0.5,1,2")


def name_list(text: str) -> tuple[str, ...]:
    """"conv1, conv2" -> ("conv1", "conv2")."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


# ---------------------------------------------------------------- logging


def add_logging_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="print only the result line, warnings and errors")
    group.add_argument("-v", "--verbose", action="store_true", help="also print debugging detail")


class _StdStreamHandler(logging.StreamHandler):
    """Writes to sys.stdout or sys.stderr as they are at each record (so redirection and capture work)."""

    def __init__(self, stream_name: str):
        super().__init__()
        self.stream_name = stream_name

    def emit(self, record):
        self.stream = getattr(sys, self.stream_name)
        super().emit(record)


def configure_logging(quiet: bool = False, verbose: bool = False) -> int:
    """Route the `keras_latent` logger for a command; returns the level set (INFO; -q WARNING; -v DEBUG)."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    out = _StdStreamHandler("stdout")
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    out.setFormatter(logging.Formatter("%(message)s"))
    err = _StdStreamHandler("stderr")
    err.setLevel(logging.WARNING)
    err.setFormatter(logging.Formatter("notice: %(message)s"))
    logger = logging.getLogger(LOGGER)
    logger.handlers = [out, err]
    logger.setLevel(level)
    logger.propagate = False
    return level


# ---------------------------------------------------------------- running a command


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a command's `main`, turning a UsageError into one stderr line and exit code 2; TensorFlow's start-up
    notices that no log level reaches are kept out of its stderr (`quiet_start`)."""
    from keras_latent.quiet_start import quiet_tensorflow_import

    quiet_tensorflow_import()
    try:
        code = main(argv)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
