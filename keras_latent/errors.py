"""User-facing errors: one clear line, a non-zero exit, no traceback."""
from __future__ import annotations

import sys
from typing import Callable, Sequence


class UsageError(Exception):
    """Bad input from the user (path, flag, file). The message names what is allowed."""


EXIT_USAGE = 2


def check_choice(flag: str, value: object, allowed: Sequence[str]) -> None:
    """Raise UsageError unless `value` is one of `allowed`, naming the flag, the choices and what was received."""
    if value not in allowed:
        raise UsageError(f"{flag} must be one of {', '.join(allowed)}, got {value!r}")


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a CLI `main`, turning a UsageError into one stderr line and exit code 2."""
    try:
        code = main(argv)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
