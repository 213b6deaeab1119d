"""Data sources: full CIFAR-10 (tfds), the bundled sample, a cifar-10-batches-py folder, an image folder.

Every source ends as a `Splits` of uint8 arrays `(N, H, W, 3)` and int labels, so the rest of
the project (pipelines, evaluation, analysis) sees one format whatever the images came from.
"""
from __future__ import annotations

import dataclasses
import glob
import logging
import os
import pickle
import urllib.request
from pathlib import Path

import numpy as np

from keras_latent.config import TrainConfig
from keras_latent.errors import UsageError

log = logging.getLogger("keras_latent")

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"  # what tfds downloads
DATASET_NAMES = ("auto", "cifar10", "sample")  # the --dataset values that are not paths
DATASET_CHOICES = "auto, cifar10, sample, or a path to a cifar-10-batches-py folder or an image folder"
SAMPLE_DESCRIPTION = "CIFAR-10 sample (bundled, 4,068 images)"  # how load_dataset describes the bundled sample
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
FOLDER_INTERPOLATION = "bilinear"  # how an image folder's images are resized as they are read (Keras's default)


@dataclasses.dataclass(frozen=True)
class Splits:
    """Train and test images as arrays, with the names of their classes."""

    x_train: np.ndarray  # (N, H, W, 3) uint8
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray  # (M, H, W, 3) uint8
    y_test: np.ndarray  # (M,) int64
    class_names: tuple[str, ...]
    dataset: str  # the resolved --dataset value: cifar10, sample or a path
    description: str  # one line for logs and reports


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float pixel values in [0, 255] (any shape) -> uint8, rounded to nearest and clipped."""
    return np.clip(np.round(images), 0, 255).astype(np.uint8)


def bundled_sample_dir() -> str:
    """The real 4,068-image CIFAR-10 sample shipped inside the package."""
    return str(Path(__file__).parent / "sample_data" / "cifar-10-batches-py")


# ---------------------------------------------------------------- cifar-10-batches-py


def _read_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR batch -> images (N, 32, 32, 3) uint8 and labels (N,)."""
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except Exception as err:  # pickle, key, shape and type errors all mean the same to a user
        raise UsageError(f"cannot read CIFAR batch file {path}: {type(err).__name__}: {err} "
                         "(expected a pickled dict with b'data' (N, 3072) uint8 and b'labels')") from None
    if len(images) != len(labels):
        raise UsageError(f"CIFAR batch file {path} has {len(images)} images but {len(labels)} labels")
    return images, labels


def _read_label_names(folder: str) -> tuple[str, ...]:
    meta = os.path.join(folder, "batches.meta")
    if not os.path.isfile(meta):
        return tuple(f"class_{i}" for i in range(10))
    try:
        with open(meta, "rb") as f:
            names = pickle.load(f, encoding="bytes")[b"label_names"]
        return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    except Exception as err:
        raise UsageError(f"cannot read {meta}: {type(err).__name__}: {err}") from None


def _concat(batches: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def load_cifar_folder(folder: str, test_fraction: float, seed: int) -> dict:
    """Read a CIFAR-10 python-version folder (data_batch_*, test_batch, batches.meta).

    A partial folder without test_batch holds out `test_fraction` of the training images.
    """
    train_files = sorted(glob.glob(os.path.join(folder, "data_batch_*")))
    if not train_files:
        raise UsageError(f"{folder!r} has no data_batch_* files (a cifar-10-batches-py folder needs at least one)")
    x_train, y_train = _concat([_read_batch(p) for p in train_files])
    test_file = os.path.join(folder, "test_batch")
    if os.path.isfile(test_file):
        x_test, y_test = _read_batch(test_file)
    else:
        log.warning(f"{folder} has no test_batch; holding out {test_fraction:.0%} of its training images")
        x_train, y_train, x_test, y_test = _holdout(x_train, y_train, test_fraction, seed)
    names = _read_label_names(folder)
    if max(y_train.max(), y_test.max()) >= len(names):
        raise UsageError(f"labels in {folder} go up to {max(y_train.max(), y_test.max())} but batches.meta names "
                         f"{len(names)} classes")
    return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, class_names=names)


def _holdout(x, y, fraction, seed):
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(len(x) * fraction)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


# ---------------------------------------------------------------- image folders


def _has_images(folder: str) -> bool:
    return any(f.lower().endswith(IMAGE_EXTENSIONS) for _, _, files in os.walk(folder) for f in files)


def _folder_to_arrays(dataset) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for x, y in dataset.as_numpy_iterator():
        xs.append(to_uint8(x))
        ys.append(y.astype(np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def load_image_folder(folder: str, image_size: int, test_fraction: float, seed: int) -> dict:
    """Read `folder/train/<class>/*` and `folder/test/<class>/*`, or `folder/<class>/*` plus a split.

    Any size and colour mode: images are converted to RGB and resized to `image_size`.
    """
    import keras

    if not _has_images(folder):
        raise UsageError(f"image folder {folder!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                         "expected train/ and test/ with one subfolder per class, or one subfolder per class")
    common = dict(labels="inferred", label_mode="int", color_mode="rgb", image_size=(image_size, image_size),
                  interpolation=FOLDER_INTERPOLATION, batch_size=256, verbose=False)
    train_dir, test_dir = os.path.join(folder, "train"), os.path.join(folder, "test")
    try:
        if os.path.isdir(train_dir) and os.path.isdir(test_dir):
            train = keras.utils.image_dataset_from_directory(train_dir, shuffle=False, **common)
            test = keras.utils.image_dataset_from_directory(test_dir, shuffle=False, class_names=train.class_names,
                                                            **common)
        else:
            train, test = keras.utils.image_dataset_from_directory(
                folder, shuffle=True, seed=seed, validation_split=test_fraction, subset="both", **common)
    except ValueError as err:
        raise UsageError(f"cannot read image folder {folder!r}: {err}") from None
    x_train, y_train = _folder_to_arrays(train)
    x_test, y_test = _folder_to_arrays(test)
    return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, class_names=tuple(train.class_names))


# ---------------------------------------------------------------- tensorflow-datasets


def tfds_cifar10_prepared(data_dir: str | None) -> bool:
    """Is cifar10 already prepared in the tfds data dir? (Quiet: absl warns about empty folders.)"""
    import tensorflow_datasets as tfds
    from absl import logging as absl_logging

    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        return tfds.builder("cifar10", data_dir=data_dir).is_prepared()
    except Exception:
        return False
    finally:
        absl_logging.set_verbosity(verbosity)


def download_reachable(url: str = CIFAR10_URL, timeout_s: float = 3.0) -> tuple[bool, str]:
    """Can the CIFAR-10 download start? Answers within `timeout_s` (tfds itself retries for minutes)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s):
            return True, "reachable"
    except Exception as err:
        return False, f"{type(err).__name__}: {getattr(err, 'reason', err)}"


def load_tfds_cifar10(data_dir: str | None) -> dict:
    import tensorflow_datasets as tfds

    try:
        datasets, info = tfds.load("cifar10", split=["train", "test"], as_supervised=True, batch_size=-1,
                                   data_dir=data_dir, with_info=True)
        (x_train, y_train), (x_test, y_test) = tfds.as_numpy(datasets)
        names = info.features["label"].names
    except Exception as err:
        raise UsageError(f"tensorflow-datasets could not load cifar10 ({type(err).__name__}: {err}); "
                         "use --dataset sample (bundled) or a path to a cifar-10-batches-py folder") from None
    return dict(x_train=x_train, y_train=y_train.astype(np.int64), x_test=x_test,
                y_test=y_test.astype(np.int64), class_names=tuple(names))


# ---------------------------------------------------------------- one entry point


def resolve_auto(data_dir: str | None) -> tuple[str, str]:
    """Pick tfds cifar10 when prepared or downloadable, else the bundled sample (with a notice)."""
    if tfds_cifar10_prepared(data_dir):
        return "cifar10", "prepared in the tensorflow-datasets data dir"
    ok, why = download_reachable()
    if ok:
        return "cifar10", "downloading through tensorflow-datasets"
    log.warning(f"full CIFAR-10 is not prepared and cannot be downloaded ({why}); training on the bundled "
                "4,068-image CIFAR-10 sample. For the full 60,000 images, run once with a network: "
                "python -m keras_latent.train --dataset cifar10")
    return "sample", ""


def check_dataset_argument(dataset: str) -> None:
    """A --dataset value is a known name or an existing folder (cheap: no data is read)."""
    if dataset in DATASET_NAMES:
        return
    if not os.path.exists(dataset):
        raise UsageError(f"--dataset {dataset!r} is neither a known name nor an existing path; "
                         f"allowed: {DATASET_CHOICES}")
    if not os.path.isdir(dataset):
        raise UsageError(f"--dataset {dataset!r} is a file; expected a folder ({DATASET_CHOICES})")


def _read_source(dataset: str, image_size: int, test_fraction: float, seed: int, data_dir: str | None) -> dict:
    if dataset == "cifar10":
        return load_tfds_cifar10(data_dir)
    if dataset == "sample":
        return load_cifar_folder(bundled_sample_dir(), test_fraction, seed)
    check_dataset_argument(dataset)
    if _is_cifar_folder(dataset):
        return load_cifar_folder(dataset, test_fraction, seed)
    return load_image_folder(dataset, image_size, test_fraction, seed)


def _is_cifar_folder(folder: str) -> bool:
    return bool(glob.glob(os.path.join(folder, "data_batch_*"))) or os.path.isfile(os.path.join(folder, "test_batch"))


def resize_images(images: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 (N, H, W, 3) -> uint8 (N, image_size, image_size, 3), antialiased (unchanged when already that size):
    how load_dataset resizes CIFAR-10 for an --image-size other than 32."""
    if images.shape[1:3] == (image_size, image_size):
        return images
    import tensorflow as tf

    resized = tf.image.resize(images, (image_size, image_size), antialias=True).numpy()
    return to_uint8(resized)


def resize_like_dataset(images: np.ndarray, image_size: int, dataset: str) -> np.ndarray:
    """uint8 images (N, H, W, 3) of any size resized exactly as load_dataset resized `dataset`'s (a resolved name
    or path): an image folder's as Keras reads them (FOLDER_INTERPOLATION, no antialiasing), others with
    resize_images. For images from outside the data set, such as an upload to the explorer."""
    if dataset in DATASET_NAMES or not os.path.isdir(dataset) or _is_cifar_folder(dataset):
        return resize_images(images, image_size)
    import tensorflow as tf

    resized = tf.image.resize(images, (image_size, image_size), method=FOLDER_INTERPOLATION).numpy()
    return to_uint8(resized)


def _subsample(x: np.ndarray, y: np.ndarray, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if n is None or n >= len(x):
        return x, y
    keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
    return x[keep], y[keep]


def load_dataset(dataset: str, image_size: int = 32, test_fraction: float = 0.2, seed: int = 0,
                 max_train_samples: int | None = None, data_dir: str | None = None) -> Splits:
    """Load `dataset` (see DATASET_CHOICES) as uint8 arrays resized to `image_size`."""
    how = ""
    if dataset == "auto":
        dataset, how = resolve_auto(data_dir)
    parts = _read_source(dataset, image_size, test_fraction, seed, data_dir)
    x_train, y_train = _subsample(parts["x_train"], parts["y_train"], max_train_samples, seed)
    x_train, x_test = resize_images(x_train, image_size), resize_images(parts["x_test"], image_size)
    name = {"cifar10": "CIFAR-10 (tensorflow-datasets)", "sample": SAMPLE_DESCRIPTION}
    description = f"{name.get(dataset, dataset)}: {len(x_train)} train / {len(x_test)} test images"
    return Splits(x_train, y_train, x_test, parts["y_test"], tuple(parts["class_names"]), dataset,
                  description + (f" ({how})" if how else ""))


def load_splits(config: TrainConfig) -> tuple[Splits, TrainConfig]:
    """Load `config`'s data set (held-out split and subset seeded by `data.split_seed`, else `seed`); return it
    and the config with the resolved data set, class names and class count filled in (what config.json saves)."""
    d = config.data
    split_seed = config.seed if d.split_seed is None else d.split_seed
    splits = load_dataset(d.dataset, config.model.image_size, d.test_fraction, split_seed,
                          d.max_train_samples, d.tfds_data_dir)
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(d, dataset=splits.dataset, class_names=splits.class_names),
        model=dataclasses.replace(config.model, num_classes=len(splits.class_names)))
    return splits, config
