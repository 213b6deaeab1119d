"""Data sources: full CIFAR-10 (tfds), the bundled sample, a cifar-10-batches-py folder, an image folder.

Every source ends as a `Splits` of uint8 arrays `(N, H, W, 3)` and int labels, so the rest of
the project (pipelines, evaluation, analysis) sees one format whatever the images came from.
Folders from users are read by `data.cifar` (pickles, without running code) and `data.images`
(Pillow), which check every file and refuse bad ones with one line (docs/data.md).
"""
from __future__ import annotations

import dataclasses
import glob
import io
import logging
import os
import urllib.request
from pathlib import Path

import numpy as np

from keras_latent.config import TrainConfig
from keras_latent.data.cifar import load_cifar_folder
from keras_latent.data.images import load_image_folder
from keras_latent.data.store import DEFAULT_MEMORY_BUDGET_MB, Store, choose_store
from keras_latent.errors import UsageError

log = logging.getLogger("keras_latent")

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"  # what tfds downloads
DATASET_NAMES = ("auto", "cifar10", "sample")  # the --dataset values that are not paths
DATASET_CHOICES = "auto, cifar10, sample, or a path to a cifar-10-batches-py folder or an image folder"
SAMPLE_DESCRIPTION = "CIFAR-10 sample (bundled, 4,068 images)"  # how load_dataset describes the bundled sample


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


def _read_source(dataset: str, image_size: int, test_fraction: float, seed: int, data_dir: str | None,
                 store_for) -> dict:
    if dataset == "cifar10":
        return load_tfds_cifar10(data_dir)
    if dataset == "sample":
        return load_cifar_folder(bundled_sample_dir(), test_fraction, seed)
    check_dataset_argument(dataset)
    if _is_cifar_folder(dataset):
        # decoded at 32 x 32, then resized: the larger of the two sizes is what the store must hold
        return load_cifar_folder(dataset, test_fraction, seed,
                                 lambda n: store_for(n * max(image_size, 32) ** 2 // image_size ** 2))
    return load_image_folder(dataset, image_size, test_fraction, seed, store_for)


def _is_cifar_folder(folder: str) -> bool:
    return bool(glob.glob(os.path.join(folder, "data_batch_*"))) or os.path.isfile(os.path.join(folder, "test_batch"))


def resize_images(images: np.ndarray, image_size: int, store: Store | None = None, name: str = "resized"
                  ) -> np.ndarray:
    """uint8 (N, H, W, 3) -> uint8 (N, image_size, image_size, 3), antialiased (unchanged when already that size):
    how load_dataset resizes CIFAR-10 for an --image-size other than 32 (a streaming `store`: chunk by chunk)."""
    if images.shape[1:3] == (image_size, image_size):
        return images
    import tensorflow as tf

    def resize(chunk):
        return to_uint8(tf.image.resize(chunk, (image_size, image_size), antialias=True).numpy())

    return (store or Store()).map(images, resize, name)


def outside_image(data: bytes, image_size: int, dataset: str, name: str = "the upload") -> np.ndarray:
    """An image from outside the data set (the bytes of a PNG or JPEG, e.g. an explorer upload) as load_dataset
    reads `dataset`'s (a resolved name or path): uint8 (image_size, image_size, 3). An image folder's files are
    read by `images.decode_image` (converted, resized bilinear with antialiasing), so the image is too; for
    CIFAR-10 it is converted the same way and resized as resize_images resizes CIFAR-10."""
    from keras_latent.data import images

    if dataset not in DATASET_NAMES and os.path.isdir(dataset) and not _is_cifar_folder(dataset):
        return images.decode_image(io.BytesIO(data), image_size, name)
    return resize_images(images.decode_image(io.BytesIO(data), None, name)[None], image_size)[0]


def _subsample(x: np.ndarray, y: np.ndarray, n: int | None, seed: int,
               store: Store) -> tuple[np.ndarray, np.ndarray]:
    if n is None or n >= len(x):
        return x, y
    keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
    return store.take(x, keep, "x_train_subset"), y[keep]


def load_dataset(dataset: str, image_size: int = 32, test_fraction: float = 0.2, seed: int = 0,
                 max_train_samples: int | None = None, data_dir: str | None = None,
                 memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB, cache_dir: str | None = None) -> Splits:
    """Load `dataset` (see DATASET_CHOICES) as uint8 arrays resized to `image_size`.

    A folder whose decoded images exceed `memory_budget_mb` is decoded once into `.npy` files in
    `cache_dir` (None: a temporary folder) and its arrays are read-only memory maps of them (`data.store`).
    """
    how = ""
    if dataset == "auto":
        dataset, how = resolve_auto(data_dir)
    stores = []

    def store_for(images: int) -> Store:
        stores.append(choose_store(images, image_size, memory_budget_mb, cache_dir, dataset))
        return stores[-1]

    try:
        parts = _read_source(dataset, image_size, test_fraction, seed, data_dir, store_for)
        store = stores[-1] if stores else Store()
        x_train, y_train = _subsample(parts["x_train"], parts["y_train"], max_train_samples, seed, store)
        x_train = resize_images(x_train, image_size, store, "x_train_resized")
        x_test = resize_images(parts["x_test"], image_size, store, "x_test_resized")
    except BaseException:  # a refused file: nothing written stays (nor a run folder made for the cache)
        for made in stores:
            made.discard()
        raise
    name = {"cifar10": "CIFAR-10 (tensorflow-datasets)", "sample": SAMPLE_DESCRIPTION}
    description = f"{name.get(dataset, dataset)}: {len(x_train)} train / {len(x_test)} test images"
    return Splits(x_train, y_train, x_test, parts["y_test"], tuple(parts["class_names"]), dataset,
                  description + (f" ({how})" if how else ""))


def load_splits(config: TrainConfig, cache_dir: str | None = None) -> tuple[Splits, TrainConfig]:
    """Load `config`'s data set (held-out split and subset seeded by `data.split_seed`, else `seed`); return it
    and the config with the resolved data set, class names and class count filled in (what config.json saves).

    Above `data.memory_budget_mb` the images are streamed from `.npy` files in `cache_dir` (a run's
    DATA_CACHE; None: a temporary folder), see `data.store`."""
    d = config.data
    split_seed = config.seed if d.split_seed is None else d.split_seed
    splits = load_dataset(d.dataset, config.model.image_size, d.test_fraction, split_seed,
                          d.max_train_samples, d.tfds_data_dir, d.memory_budget_mb, cache_dir)
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(d, dataset=splits.dataset, class_names=splits.class_names),
        model=dataclasses.replace(config.model, num_classes=len(splits.class_names)))
    return splits, config
