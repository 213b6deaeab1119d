"""Report helpers: embed PNGs as data URIs, notes with the command that makes a missing part, numbers.

Reading the run's files is `keras_latent.runs.records`' job: its readers return None for a file
that is not there (the report leaves that part out with a note) and raise UsageError for one that
is there but unreadable.
"""
from __future__ import annotations

import base64
import math
import os
import shlex

from keras_latent.errors import UsageError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def data_uri(path: str) -> str:
    """A PNG file as a `data:image/png;base64,...` URI, so the report needs no other file."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(PNG_SIGNATURE):
        raise UsageError(f"{path} is not a PNG image (expected a figure written by keras_latent); "
                         "delete it and rerun the command that makes it")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure(path: str, caption: str) -> dict:
    """One embedded figure for the template: src (data URI), caption, alt text and source file name."""
    return {"src": data_uri(path), "caption": caption, "alt": caption, "file": os.path.basename(path)}


def note(text: str, command: str | None = None) -> dict:
    """One line in the report saying what is missing and, when there is one, the command that makes it."""
    return {"text": text, "command": command}


def command(*words: str) -> str:
    """A copy-paste shell command; paths with spaces are quoted."""
    return shlex.join(words)


def to_float(value, path: str = "", column: str = "") -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{path}: column {column!r} must hold numbers, got {value!r}") from None


def fmt(value, digits: int = 4) -> str:
    """A number with fixed decimals, as every table in the report shows it; n/a for missing or NaN."""
    if value is None or value == "":
        return "n/a"
    value = float(value)
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def fmt_general(value) -> str:
    """A setting such as a loss weight: shortest form (2, 0.5, 1e-05)."""
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


def join_names(names: list[str]) -> str:
    """Words as a sentence lists them: "a", "a and b", "a, b and c"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"
