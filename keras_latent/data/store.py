"""Where a data set's decoded uint8 images live: in memory, or, above a memory budget, in files on disk.

A data set whose decoded images (N x H x W x 3 bytes, train and test together) fit the budget
(DEFAULT_MEMORY_BUDGET_MB, `--data-memory-budget`) is read into numpy arrays, as always. A larger one is
decoded once, file by file through the same checked readers (`data.cifar`, `data.images`: a broken file is
still refused, an unusual one still converted), into `.npy` files of uint8 in a cache folder the run owns
(DATA_CACHE in the run folder; a temporary folder where there is no run), and opened as read-only memory
maps (`np.memmap`, an ndarray): the pipeline (`data.pipeline.make_dataset`) gathers each batch from them by
index, the same indices in the same order as from memory, so the batches, and the results, are the same.
Only the pages in use stay resident, and the kernel may drop them: memory stays bounded whatever the size.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable

import numpy as np

log = logging.getLogger("keras_latent")

DEFAULT_MEMORY_BUDGET_MB = 256.0  # decoded uint8 images (train + test) held in memory; above: streamed from disk
CHUNK_IMAGES = 4096  # images copied at a time between stores (a few MB)


def decoded_mb(images: int, image_size: int) -> float:
    """Megabytes (1e6 bytes) of `images` decoded uint8 images of image_size x image_size x 3."""
    return images * image_size * image_size * 3 / 1e6


class Store:
    """Makes the arrays a data set is decoded into: numpy arrays in memory, or `.npy` memory maps in `folder`.

    `folder` None (streaming): a temporary folder, removed when the process exits.
    """

    def __init__(self, streaming: bool = False, folder: str | None = None):
        self.streaming = streaming
        self._folder = folder
        self._made = None  # the topmost folder this store created (removed by discard)

    @property
    def folder(self) -> str:
        if self._folder is None:
            self._folder = tempfile.mkdtemp(prefix="keras_latent_data_")
            atexit.register(shutil.rmtree, self._folder, True)
        return self._folder

    def empty(self, shape: tuple[int, ...], name: str) -> np.ndarray:
        """A writable uint8 array of `shape`: np.empty, or a new `.npy` memory map named `name`."""
        if not self.streaming:
            return np.empty(shape, np.uint8)
        if self._made is None:
            top = os.path.abspath(self.folder)
            while not os.path.exists(os.path.dirname(top)):
                top = os.path.dirname(top)
            self._made = top if not os.path.exists(top) else self.folder
            os.makedirs(self.folder, exist_ok=True)
        path = os.path.join(self.folder, f"{name}.npy")
        return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)

    def discard(self) -> None:
        """Remove what this store wrote, and any folder it created for it (a refused data set writes nothing:
        no run folder either)."""
        if self._made is not None:
            shutil.rmtree(self._made, ignore_errors=True)
            self._made = None

    def done(self, array: np.ndarray) -> np.ndarray:
        """`array` once written: a memory map is flushed and reopened read-only (nothing can change the data)."""
        if not isinstance(array, np.memmap):
            return array
        array.flush()
        return np.load(array.filename, mmap_mode="r")

    def concatenate(self, parts: Iterable[np.ndarray], total: int, name: str) -> np.ndarray:
        """The images of `parts` ((n_i, H, W, 3) each, `total` in all) one after another."""
        out, at = None, 0
        for part in parts:
            if out is None:
                out = self.empty((total, *part.shape[1:]), name)
            out[at:at + len(part)] = part
            at += len(part)
        return self.done(out)

    def take(self, images: np.ndarray, indices: np.ndarray, name: str) -> np.ndarray:
        """images[indices], copied CHUNK_IMAGES at a time into a new array of this store."""
        return self.map(images, lambda chunk: chunk, name, indices)

    def map(self, images: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], name: str,
            indices: np.ndarray | None = None) -> np.ndarray:
        """fn(images[indices]) computed CHUNK_IMAGES at a time (fn maps (n, H, W, 3) to (n, h, w, 3) uint8)."""
        indices = np.arange(len(images)) if indices is None else np.asarray(indices)
        if not self.streaming and not isinstance(images, np.memmap):
            return fn(images[indices])
        out = None
        for start in range(0, len(indices), CHUNK_IMAGES):
            chunk = fn(np.asarray(images[indices[start:start + CHUNK_IMAGES]]))
            if out is None:
                out = self.empty((len(indices), *chunk.shape[1:]), name)
            out[start:start + len(chunk)] = chunk
        if out is None:
            out = self.empty((0, *images.shape[1:]), name)
        return self.done(out)


def choose_store(total_images: int, image_size: int, budget_mb: float, folder: str | None, what: str) -> Store:
    """A streaming Store (in `folder`) when `total_images` decoded exceed `budget_mb`, else an in-memory one;
    logs the choice when streaming."""
    need = decoded_mb(total_images, image_size)
    if need <= budget_mb:
        return Store()
    store = Store(streaming=True, folder=folder)
    log.info(f"{what}: {total_images:,} images, {need:,.0f} MB decoded, above the memory budget of {budget_mb:,.0f} "
             f"MB (--data-memory-budget): decoding them once into {store.folder} and streaming from there")
    return store
