"""User-facing errors: one clear line naming what was wrong and what is allowed (see `cli.run_cli`)."""
from __future__ import annotations

from collections.abc import Sequence


class UsageError(Exception):
    """Bad input from the user (path, flag, file). The message names what is allowed and what was received."""


def check_choice(flag: str, value: object, allowed: Sequence[str]) -> None:
    """Raise UsageError unless `value` is one of `allowed`, naming the flag, the choices and what was received."""
    if value not in allowed:
        raise UsageError(f"{flag} must be one of {', '.join(allowed)}, got {value!r}")


def shown(value: object, limit: int = 60) -> str:
    """A value as an error message echoes it: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
