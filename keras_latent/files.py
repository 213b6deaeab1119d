"""Atomic file writes: a kill at any moment leaves the old complete file or the new one.

Each writer writes a temporary file in the destination's folder, flushes it to disk, then
renames it over the destination (`os.replace` is atomic on POSIX within one file system) and
flushes the folder, so the rename itself survives a power loss. A kill leaves at most a hidden
temporary (`.NAME.XXXXXXXX.tmp...`), which `remove_stale_temps` clears on the next run.
Folders (`atomic_directory`) are swapped with two renames; a kill between them leaves the old
complete copy as `NAME.old`, which `recover_directory` puts back (`atomic_directory` does so first).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator

# ".model.keras.k2j4_x9a.tmp.keras": a temp made by atomic_path / atomic_directory.
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")
_OLD_SUFFIX = ".old"


def _umask() -> int:
    """The process umask, read without changing it (Linux); 0o022 elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _fsync_dir(folder: str) -> None:
    """Flush a folder's entries (renames) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temp path beside `path`; on success it replaces `path`, on error it is removed.

    The new file gets the usual permissions (0o666 minus the umask), not mkstemp's 0o600.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=f".tmp{suffix}", dir=folder)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(folder)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_bytes(path: str, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_figure(fig, path: str, dpi: int = 100) -> None:
    """Save a matplotlib Figure atomically (figures here are `matplotlib.figure.Figure`s made without
    pyplot, so there is no global figure to close and no backend to choose)."""
    ext = os.path.splitext(path)[1]
    with atomic_path(path, suffix=ext) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=ext.lstrip(".") or "png")


def _fsync_tree(folder: str) -> None:
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(root)


def recover_directory(path: str) -> None:
    """Finish an `atomic_directory` swap that a kill interrupted: put `path.old` back or drop it."""
    old = path + _OLD_SUFFIX
    if not os.path.isdir(old):
        return
    if os.path.exists(path):
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(old, path)


@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """Yield a temp folder beside `path`; on success it replaces `path` (old copy kept until then)."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    recover_directory(path)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    old = path + _OLD_SUFFIX
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        _fsync_tree(tmp)
        if os.path.exists(path):
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(parent)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temps(folder: str) -> list[str]:
    """Delete temporaries that killed writers left in `folder`; returns the names removed.

    Only names made by `atomic_path` / `atomic_directory` are touched (interrupted folder swaps
    are `recover_directory`'s job, for folders the caller knows).
    """
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        if not _TEMP_NAME.match(name):
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)
        removed.append(name)
    return removed
