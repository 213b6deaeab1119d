"""Report helpers: embed PNGs as data URIs, notes with the command that makes a missing part, numbers.

Reading the run's files is `keras_latent.runs.records`' job: its readers return None for a file
that is not there (the report leaves that part out with a note) and raise UsageError for one that
is there but unreadable. Figures are checked here the same way: a PNG that does not decode is one
line naming it and the command that rebuilds it.
"""
from __future__ import annotations

import base64
import math
import os
import shlex

from keras_latent.errors import UsageError
from keras_latent.runs import layout
from keras_latent.runs.records import read_png


def data_uri(path: str, entry: layout.Entry) -> str:
    """The PNG file `path` (a file of `entry`) as a `data:image/png;base64,...` URI, so the report needs no
    other file; a file that is not a whole PNG is one line naming it and the command that rebuilds it."""
    return "data:image/png;base64," + base64.b64encode(read_png(path, entry)).decode("ascii")


def figure(path: str, caption: str, entry: layout.Entry) -> dict:
    """One embedded figure for the template: src (data URI), caption, alt text and source file name."""
    return {"src": data_uri(path, entry), "caption": caption, "alt": caption, "file": os.path.basename(path)}


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
