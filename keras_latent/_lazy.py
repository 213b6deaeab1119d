"""Lazy re-exports for the subpackages (PEP 562), so that `from keras_latent.tuning import run_search`
works while importing a light module of the same package (`keras_latent.tuning.config`, which the
commands use to check flags before TensorFlow loads) imports nothing heavy."""
from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """`__getattr__` and `__dir__` for `package` that import `exports[name]` (a submodule) on first use."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
