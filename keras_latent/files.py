"""Atomic file writes: a kill at any moment leaves the old complete file or the new one.

Each writer writes a temporary file in the destination's folder, flushes it to disk, then
renames it over the destination (`os.replace` is atomic on POSIX within one file system).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temp path beside `path`; on success it replaces `path`, on error it is removed."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=f".tmp{suffix}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_bytes(path: str, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_figure(fig, path: str, dpi: int = 100) -> None:
    """Save a matplotlib Figure atomically and close it."""
    import matplotlib.pyplot as plt

    ext = os.path.splitext(path)[1]
    with atomic_path(path, suffix=ext) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=ext.lstrip(".") or "png")
    plt.close(fig)


@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """Yield a temp folder beside `path`; on success it replaces `path` (old copy kept until then)."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    old = f"{path}.old"
    try:
        yield tmp
        if os.path.exists(path):
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
