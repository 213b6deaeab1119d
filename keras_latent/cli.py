"""Shared argparse pieces for the CLIs: one-line errors, list parsers, a help formatter."""
from __future__ import annotations

import argparse

from keras_latent.errors import UsageError


class CliParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one `error:` line and exit 2 (via `run_cli`), like all bad input."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except "(default: None)": such defaults are worked out later and said in the help."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


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
