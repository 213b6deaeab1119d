"""The commands' stderr without TensorFlow's start-up notices, which no log level reaches.

While `import tensorflow` loads its two C++ libraries, each logs, before absl's logging is initialised,

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796575866.123247    3263 port.cc:153] oneDNN custom operations are on. You may see ...

(on every CPU where oneDNN's rewrites are on: TensorFlow's default on AVX-512 VNNI, BF16 and AMX CPUs, and
keras_latent's on the others). `TF_CPP_MIN_LOG_LEVEL` does not reach lines written before that
initialisation (tensorflow/tensorflow#100442). `quiet_tensorflow_import` makes the first `import tensorflow`
of a command run with file descriptor 2 pointed at a temporary file, then writes back every line of it except
these exact notices: an error or a warning of any other kind, a traceback included, still reaches stderr.
Only commands install it (`cli.run_cli`); importing keras_latent as a library changes no import.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# Exactly the start-up notices, nothing else TensorFlow writes (their text as of TensorFlow 2.21).
NOTICES = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
    re.compile(r"^I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\. "),
)


def is_notice(line: str) -> bool:
    return any(pattern.search(line) for pattern in NOTICES)


@contextlib.contextmanager
def stderr_without_notices() -> Iterator[None]:
    """Run the body with file descriptor 2 (C++ and Python writes alike) captured, then write it back less NOTICES.

    Where descriptor 2 cannot be redirected (no such descriptor, as under some embedders), runs the body as is."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = "".join(line for line in text.splitlines(keepends=True) if not is_notice(line.rstrip("\n")))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """The real loader of `tensorflow`, its module executed under `stderr_without_notices`; anything else it has
    (resource readers, get_data, ...) is the real loader's."""

    def __init__(self, real):
        self._real = real

    def create_module(self, spec):
        return self._real.create_module(spec)

    def exec_module(self, module):
        with stderr_without_notices():
            self._real.exec_module(module)

    def __getattr__(self, name):
        return getattr(self._real, name)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, as the other finders do, and wraps its loader; then leaves sys.meta_path."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_import() -> None:
    """Filter TensorFlow's start-up notices from this process's first `import tensorflow` (a no-op once loaded)."""
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
