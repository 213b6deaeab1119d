"""cli.py: every command's parser uses the one help formatter, and its help shows no empty default."""
import importlib

import pytest

from keras_latent.cli import HelpFormatter

COMMANDS = ["train", "analyze", "report", "export", "search_weights", "study", "explore"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_uses_the_one_help_formatter(command):
    parser = importlib.import_module(f"keras_latent.{command}").build_parser()
    assert parser.formatter_class is HelpFormatter
    text = parser.format_help()
    assert "(default: None)" not in text and "(default: False)" not in text


def test_the_formatter_still_shows_a_real_default():
    parser = importlib.import_module("keras_latent.train").build_parser()
    assert "(default: " in parser.format_help()
