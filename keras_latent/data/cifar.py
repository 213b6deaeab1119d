"""The CIFAR-10 "python version" files (data_batch_*, test_batch, batches.meta), read without running code.

These files are pickles, and a pickle can name any Python callable to run while it loads (a crafted
`__reduce__`): people download "CIFAR-10" folders from many places, so a plain `pickle.load` would
run whatever such a file holds. `RestrictedUnpickler` (after Keras's own CIFAR loader,
`keras.src.datasets.cifar` / `npz_utils`) allows only the builtin containers, numbers, strings and
bytes these files hold, plus the three numpy names that rebuild their uint8 `data` array; anything
else is one line naming the file and what is allowed. Every value is then checked (shapes, dtypes,
label range) before it is used. Only numpy and the standard library: the PyTorch benchmark reads
the same files through here.
"""
from __future__ import annotations

import glob
import logging
import os
import pickle
from collections.abc import Callable

import numpy as np

from keras_latent.data.store import Store
from keras_latent.errors import UsageError, shown

log = logging.getLogger("keras_latent")

ROW_VALUES = 32 * 32 * 3  # one CIFAR image: 1024 red, 1024 green, 1024 blue values
META = "batches.meta"
# The globals a CIFAR batch needs: numpy's array (and scalar) reconstruction under every pickle protocol
# (numpy < 2 spells the module numpy.core, numpy >= 2 numpy._core; protocol 5 uses _frombuffer), and
# _codecs.encode, which Python 3 uses for bytes under protocol 2. Each only builds a value from the file's
# bytes: none runs code of the file's choosing.
ALLOWED_GLOBALS = frozenset({("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")} | {
    (f"numpy.{core}.{module}", name) for core in ("core", "_core")
    for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))})
ALLOWED = "dicts, lists, tuples, numbers, strings, bytes and numpy arrays"


class RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only builtin values and numpy arrays: any other global is refused."""

    def find_class(self, module, name):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise RefusedGlobal(module, name)

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed")


def load_pickle(path: str, what: str):
    """The value pickled in `path` (bytes keys and strings stay bytes, as the CIFAR files need), loaded with
    `RestrictedUnpickler`; an empty, truncated, hostile or unreadable file is one line naming it."""
    if os.path.getsize(path) == 0:
        raise UsageError(f"{path} is empty (0 bytes); expected {what}")
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, encoding="bytes").load()
    except RefusedGlobal as err:
        raise UsageError(f"{path} refers to {err.module}.{err.name}, which a CIFAR file never holds; refused "
                         f"without running it (a data file may hold only {ALLOWED})") from None
    except MemoryError:
        raise UsageError(f"{path} asks for more memory than this machine has; expected {what}") from None
    except Exception as err:  # EOFError, UnpicklingError, ValueError, ...: truncated or not a pickle
        raise UsageError(f"{path} is truncated or not a pickle ({type(err).__name__}: {err}); "
                         f"expected {what}") from None


def _keyed(value, path: str, what: str) -> dict[str, object]:
    """A loaded dict with its keys as str (Python 2 files have bytes keys, files made by Python 3 may not)."""
    if not isinstance(value, dict):
        raise UsageError(f"{path} holds a {type(value).__name__}; expected {what}")
    return {k.decode("latin-1") if isinstance(k, bytes) else str(k): v for k, v in value.items()}


def _required(values: dict, key: str, path: str, what: str):
    if key not in values:
        raise UsageError(f"{path} has no {key!r} entry (it has {', '.join(map(repr, values)) or 'none'}); "
                         f"expected {what}")
    return values[key]


def read_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR batch file -> images (N, 32, 32, 3) uint8 and labels (N,) int64 (range checked by the caller)."""
    what = f"a pickled dict with 'data' (N, {ROW_VALUES}) uint8 and 'labels' (N integers)"
    batch = _keyed(load_pickle(path, what), path, what)
    data, labels = _required(batch, "data", path, what), _required(batch, "labels", path, what)
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.dtype.kind not in "ui":
        got = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise UsageError(f"{path}: 'data' must be a 2-D uint8 array (N, {ROW_VALUES}), got a {got}")
    if data.shape[1] != ROW_VALUES:
        raise UsageError(f"{path}: each row of 'data' must hold {ROW_VALUES} values (32 x 32 pixels x 3 colours), "
                         f"got rows of {data.shape[1]}")
    if data.size and (data.min() < 0 or data.max() > 255):
        raise UsageError(f"{path}: 'data' must hold pixel values 0..255, got {data.min()}..{data.max()}")
    labels = np.asarray(labels) if isinstance(labels, (list, tuple, np.ndarray)) else None
    if labels is None or labels.ndim != 1 or (labels.size and labels.dtype.kind not in "ui"):
        raise UsageError(f"{path}: 'labels' must be a list of integers, got {shown(batch['labels'])}")
    if len(labels) != len(data):
        raise UsageError(f"{path} has {len(data)} images but {len(labels)} labels; each image needs one label")
    if not len(data):
        raise UsageError(f"{path} holds no images; expected {what}")
    images = data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, 32, 32, 3)
    return images, labels.astype(np.int64)


def read_label_names(folder: str) -> tuple[str, ...]:
    """The class names in `folder`/batches.meta ('label_names': strings or UTF-8 bytes, no duplicates)."""
    path = os.path.join(folder, META)
    if not os.path.isfile(path):
        raise UsageError(f"{folder!r} has data_batch_* files but no {META} (the class names); a "
                         f"cifar-10-batches-py folder has it beside them: copy it from the same download")
    what = "a pickled dict with 'label_names' (a list of class names)"
    names = _required(_keyed(load_pickle(path, what), path, what), "label_names", path, what)
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, (bytes, str)) for n in names):
        raise UsageError(f"{path}: 'label_names' must be a non-empty list of strings, got {shown(names)}")
    try:
        decoded = tuple(n.decode("utf-8") if isinstance(n, bytes) else n for n in names)
    except UnicodeDecodeError:
        raise UsageError(f"{path}: 'label_names' must be UTF-8 text, got {shown(names)}") from None
    if len(set(decoded)) != len(decoded) or not all(n.strip() for n in decoded):
        raise UsageError(f"{path}: 'label_names' must be distinct, non-empty names, got {shown(list(decoded))}")
    return decoded


def _check_labels(labels: np.ndarray, names: tuple[str, ...], path: str, folder: str) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= len(names)))
    if len(bad):
        i = int(bad[0])
        raise UsageError(f"{path}: label {int(labels[i])} (image {i}) is out of range: {os.path.join(folder, META)} "
                         f"names {len(names)} classes, so labels must be 0..{len(names) - 1}")


def holdout(x: np.ndarray, y: np.ndarray, fraction: float, seed: int, store: Store | None = None):
    """Split off a seeded `fraction` of (x, y) as a test split: (x_train, y_train, x_test, y_test)."""
    store = store or Store()
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(len(x) * fraction)))
    test, train = order[:n_test], order[n_test:]
    return store.take(x, train, "x_train"), y[train], store.take(x, test, "x_test"), y[test]


def estimated_images(folder: str) -> int:
    """At least the number of images in a CIFAR folder's batch files, from their size (each image is 3,072
    bytes of a pickle), for choosing the Store before reading them."""
    files = glob.glob(os.path.join(glob.escape(folder), "data_batch_*")) + [os.path.join(folder, "test_batch")]
    return sum(os.path.getsize(p) for p in files if os.path.isfile(p)) // ROW_VALUES


def load_cifar_folder(folder: str, test_fraction: float, seed: int,
                      store_for: Callable[[int], Store] | None = None) -> dict:
    """Read a CIFAR-10 python-version folder (data_batch_*, test_batch, batches.meta), every file checked.

    A partial folder without test_batch holds out `test_fraction` of the training images. `store_for`
    (images -> `store.Store`, from `estimated_images`) says where the images go: in memory (the default), or,
    streaming, into `.npy` files, one batch file in memory at a time (a first pass checks every file, a
    second copies).
    """
    train_files = sorted(p for p in glob.glob(os.path.join(glob.escape(folder), "data_batch_*")) if os.path.isfile(p))
    if not train_files:
        raise UsageError(f"{folder!r} has no data_batch_* files (a cifar-10-batches-py folder needs at least one)")
    names = read_label_names(folder)
    test_file = os.path.join(folder, "test_batch")
    files = train_files + ([test_file] if os.path.isfile(test_file) else [])
    store = store_for(estimated_images(folder)) if store_for else Store()
    if store.streaming:  # first pass: check every file, keep only labels and counts
        labels = {}
        for path in files:
            labels[path] = read_batch(path)[1]
        batches = {path: (None, labels[path]) for path in files}
    else:
        batches = {path: read_batch(path) for path in files}
    for path, (_, labels) in batches.items():
        _check_labels(labels, names, path, folder)

    def images_of(paths):  # each batch's images, dropped once copied: never all of them twice in memory
        for p in paths:
            images, labels = batches[p]
            batches[p] = (None, labels)
            yield images if images is not None else read_batch(p)[0]
            del images

    y_train = np.concatenate([batches[p][1] for p in train_files])
    unused = [name for k, name in enumerate(names) if not np.any(y_train == k)]
    if unused:
        raise UsageError(f"{os.path.join(folder, META)} names {len(names)} classes but the training batches have no "
                         f"image of {len(unused)} of them ({', '.join(unused[:5])}{', ...' if len(unused) > 5 else ''})"
                         "; the class names must be those of the images")
    x_train = store.concatenate(images_of(train_files), len(y_train), "x_train_all" if test_file not in batches
                                else "x_train")
    if test_file in batches:
        y_test = batches[test_file][1]
        x_test = store.concatenate(images_of([test_file]), len(y_test), "x_test")
    else:
        log.warning(f"{folder} has no test_batch; holding out {test_fraction:.0%} of its training images")
        x_train, y_train, x_test, y_test = holdout(x_train, y_train, test_fraction, seed, store)
    return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, class_names=names)
