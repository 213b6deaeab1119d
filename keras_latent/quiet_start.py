"""A command's start: TensorFlow's start-up notices (no log level reaches them) kept off stderr, a lighter load.

While `import tensorflow` loads its two C++ libraries, each logs, before absl's logging is initialised,

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796575866.123247    3263 port.cc:153] oneDNN custom operations are on. You may see ...

(on every CPU where oneDNN's rewrites are on: TensorFlow's default on AVX-512 VNNI, BF16 and AMX CPUs, and
keras_latent's on the others). `TF_CPP_MIN_LOG_LEVEL` does not reach lines written before that
initialisation (tensorflow/tensorflow#100442). `quiet_tensorflow_import` makes the first `import tensorflow`
of a command run with file descriptor 2 pointed at a temporary file, then writes back every line of it except
these exact notices: an error or a warning of any other kind, a traceback included, still reaches stderr.

The same first import loads TensorFlow and Keras with a few optional packages hidden (SKIPPED_EXTRAS): each is
imported by TensorFlow 2.21 or Keras 3.15 while they load, inside `try: ... except ImportError`, only for a
feature no command uses (scikit-learn wrappers, a notebook check, an image gallery, a converter from JAX).
Where all of them are installed, `import keras` took 9.4 s and 723 MB resident, and takes 5.5 s and 510 MB
with them hidden (AMD EPYC, 2 cores): every command and every calibration child starts that much sooner and
lighter. Once TensorFlow and Keras are loaded, the packages import as usual again (keras_latent imports
scikit-learn and matplotlib where it uses them); only the features above stay off in that process. Guarded by
the versions checked (CHECKED_VERSIONS; else nothing is hidden). Import time upstream: tensorflow/tensorflow#37729.

Only commands install it (`cli.run_cli`); importing keras_latent as a library changes no import.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.metadata
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


# {package: what imports it while TensorFlow and Keras load}; hidden during that import in a command's process.
SKIPPED_EXTRAS = {
    "jax": "TFLite's converter from JAX (tensorflow/lite/python/util.py)",
    "IPython": "Keras's notebook check (keras/src/saving/file_editor.py)",
    "sklearn": "Keras's scikit-learn wrappers (keras/src/wrappers/)",
    "matplotlib.pyplot": "Keras's image gallery (keras/src/visualization/plot_image_gallery.py)",
    "scipy": "tf.compat.v1 Keras's sparse-input check (tensorflow/python/keras/engine/training_arrays_v1.py)",
}
# The versions whose imports of SKIPPED_EXTRAS were read to be optional: {distribution: version prefix}.
CHECKED_VERSIONS = {"tensorflow": "2.21.", "keras": "3.15."}
TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos")
LOADED_FIRST = ("tensorflow", "keras")  # whichever of them a command imports first loads the other


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


def installed_version(distribution: str) -> str | None:
    """The installed version of `distribution` ("tensorflow": of whichever TensorFlow wheel is installed)."""
    for name in TENSORFLOW_DISTRIBUTIONS if distribution == "tensorflow" else (distribution,):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(name)
    return None


def extras_can_be_skipped() -> bool:
    """Whether the installed TensorFlow and Keras are versions whose imports of SKIPPED_EXTRAS are optional."""
    return all((installed_version(name) or "").startswith(prefix) for name, prefix in CHECKED_VERSIONS.items())


@contextlib.contextmanager
def extras_hidden(names=tuple(SKIPPED_EXTRAS)) -> Iterator[list[str]]:
    """Run the body with each of `names` not yet imported unimportable (None in sys.modules: `import` raises
    ImportError); yields the names hidden. Afterwards they import as usual."""
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None
    try:
        yield hidden
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


class _QuietLoader(importlib.abc.Loader):
    """The real loader of `tensorflow` (or `keras`), its module executed under `stderr_without_notices` and, for
    checked versions, `extras_hidden`; anything else it has (resource readers, get_data, ...) is the real
    loader's."""

    def __init__(self, real):
        self._real = real

    def create_module(self, spec):
        return self._real.create_module(spec)

    def exec_module(self, module):
        hidden = extras_hidden() if extras_can_be_skipped() else contextlib.nullcontext()
        with stderr_without_notices(), hidden:
            self._real.exec_module(module)

    def __getattr__(self, name):
        return getattr(self._real, name)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds the first of LOADED_FIRST imported, as the other finders do, and wraps its loader; then leaves
    sys.meta_path (the other is imported while the first loads)."""

    def find_spec(self, name, path=None, target=None):
        if name not in LOADED_FIRST:
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_import() -> None:
    """Filter TensorFlow's start-up notices from this process's first `import tensorflow` or `import keras`, and
    load both without SKIPPED_EXTRAS (a no-op once either is loaded)."""
    if any(name in sys.modules for name in LOADED_FIRST) or any(
            isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
