"""Make a large CIFAR-layout or image folder from the bundled sample's images, for speed, not accuracy.

    python benchmarks/make_folder.py FOLDER [--train 50000] [--test 10000] [--layout cifar|images] [--seed 0]

Full CIFAR-10 cannot be downloaded here, so the benchmarks recycle the 4,068 images of the bundled sample:
each generated image is one of them, flipped left-right at random and shifted by up to 4 pixels each way
(edges reflected), with its label. The images repeat, so test accuracy on such a folder means nothing; the
folder is for timing and memory only. `cifar` writes data_batch_1..5 + test_batch + batches.meta as the
CIFAR-10 python version does (pickles of numpy arrays, read back by the checked reader); `images` writes
FOLDER/train/<class>/N.png and FOLDER/test/<class>/N.png. A folder already holding a complete copy (its
`.made` stamp names the same sizes, layout and seed) is reused.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's keras_latent
from keras_latent.data.cifar import load_cifar_folder, read_label_names  # noqa: E402 (numpy only)
from keras_latent.data.sources import bundled_sample_dir  # noqa: E402

NOTICE = ("generated from the bundled 4,068-image sample (flips and shifts): for speed, not accuracy "
          "(its test accuracy means nothing)")
STAMP = ".made"
SHIFT = 4  # pixels, each way
BATCHES = 5  # data_batch_1..5, as CIFAR-10


def recycled(images: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator,
             chunk: int = 10_000):
    """Yield (images (k, 32, 32, 3) uint8, labels (k,)) chunks, n images in all: random sample images,
    flipped at random and shifted by up to SHIFT pixels (reflected edges)."""
    padded = np.pad(images, ((0, 0), (SHIFT, SHIFT), (SHIFT, SHIFT), (0, 0)), mode="reflect")
    size = images.shape[1]
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        pick = rng.integers(0, len(images), k)
        flip = rng.random(k) < 0.5
        dy, dx = rng.integers(0, 2 * SHIFT + 1, (2, k))
        out = np.empty((k, size, size, 3), np.uint8)
        for i in range(k):
            image = padded[pick[i], dy[i]:dy[i] + size, dx[i]:dx[i] + size]
            out[i] = image[:, ::-1] if flip[i] else image
        yield out, labels[pick]


def _write_cifar_batch(path: str, images: np.ndarray, labels: np.ndarray, name: str) -> None:
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # (N, 3072): red, green, blue planes
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": name.encode(), b"labels": [int(v) for v in labels], b"data": data}, f,
                    protocol=4)  # numpy's bytes as they are (protocol 2 spells them as text: 1.45x the size)


def make_folder(folder: str, n_train: int, n_test: int, layout: str = "cifar", seed: int = 0) -> str:
    """Write the folder (see the module docstring) unless an identical one is there; return `folder`."""
    stamp = {"train": n_train, "test": n_test, "layout": layout, "seed": seed, "source": "bundled sample", "pickle": 4}
    stamp_path = os.path.join(folder, STAMP)
    if os.path.isfile(stamp_path):
        with open(stamp_path) as f:
            if json.load(f) == stamp:
                return folder
    os.makedirs(folder, exist_ok=True)
    sample = load_cifar_folder(bundled_sample_dir(), 0.2, 0)
    images = np.concatenate([sample["x_train"], sample["x_test"]])
    labels = np.concatenate([sample["y_train"], sample["y_test"]])
    names = read_label_names(bundled_sample_dir())
    rng = np.random.default_rng(seed)
    if layout == "cifar":
        with open(os.path.join(bundled_sample_dir(), "batches.meta"), "rb") as src, \
                open(os.path.join(folder, "batches.meta"), "wb") as dst:
            dst.write(src.read())
        per_batch = -(-n_train // BATCHES)
        for k, (x, y) in enumerate(recycled(images, labels, n_train, rng, per_batch), start=1):
            _write_cifar_batch(os.path.join(folder, f"data_batch_{k}"), x, y, f"training batch {k}")
        chunks = list(recycled(images, labels, n_test, rng))
        x, y = np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])
        _write_cifar_batch(os.path.join(folder, "test_batch"), x, y, "testing batch 1")
    else:
        from PIL import Image

        for split, n in (("train", n_train), ("test", n_test)):
            for name in names:
                os.makedirs(os.path.join(folder, split, name), exist_ok=True)
            index = 0
            for x, y in recycled(images, labels, n, rng):
                for image, label in zip(x, y):
                    Image.fromarray(image).save(os.path.join(folder, split, names[label], f"{index:06d}.png"),
                                                compress_level=1)
                    index += 1
    with open(stamp_path, "w") as f:
        json.dump(stamp, f)
    return folder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("--train", type=int, default=50_000)
    p.add_argument("--test", type=int, default=10_000)
    p.add_argument("--layout", choices=("cifar", "images"), default="cifar")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    make_folder(a.folder, a.train, a.test, a.layout, a.seed)
    print(f"{a.folder}: {a.train} train + {a.test} test images, {a.layout} layout; {NOTICE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
