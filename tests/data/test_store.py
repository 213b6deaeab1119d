"""data.store: a data set above the memory budget is decoded once into .npy memory maps and streamed from them,
with the same images, the same batches in the same order and the same training results as from memory; the
checked readers still refuse broken files."""
import json
import os

import numpy as np
import pytest
from helpers import tiny_config, write_cifar_folder
from PIL import Image

from keras_latent.config import DataConfig
from keras_latent.data import load_dataset, store
from keras_latent.data.pipeline import make_dataset
from keras_latent.data.store import Store, choose_store, decoded_mb
from keras_latent.errors import UsageError


def write_image_folder(root, sample_splits, n=12):
    for split in ("train", "test"):
        for name in sample_splits.class_names:
            os.makedirs(root / split / name, exist_ok=True)
            Image.fromarray(sample_splits.x_train[0]).save(root / split / name / "extra.png")  # none empty
    for split, x, y in (("train", sample_splits.x_train, sample_splits.y_train),
                        ("test", sample_splits.x_test, sample_splits.y_test)):
        for i in range(n):
            name = sample_splits.class_names[int(y[i])]
            Image.fromarray(x[i]).save(root / split / name / f"{i}.png")
    return str(root)


def test_the_budget_decides_where_the_images_go(tmp_path):
    assert decoded_mb(1000, 32) == pytest.approx(3.072)
    assert not choose_store(1000, 32, 3.1, None, "x").streaming
    streaming = choose_store(1000, 32, 3.0, str(tmp_path / "cache"), "x")
    assert streaming.streaming and streaming.folder == str(tmp_path / "cache")
    assert DataConfig().memory_budget_mb == 256 == store.DEFAULT_MEMORY_BUDGET_MB


@pytest.mark.parametrize("kind", ["cifar", "images", "cifar-holdout", "resized"])
def test_streaming_reads_the_same_images_as_memory(tmp_path, sample_splits, kind):
    if kind.startswith("cifar") or kind == "resized":
        folder = str(write_cifar_folder(tmp_path / "data", sample_splits, n=30, with_test=kind != "cifar-holdout"))
    else:
        folder = write_image_folder(tmp_path / "data", sample_splits)
    size = 24 if kind == "resized" else 32
    memory = load_dataset(folder, image_size=size, seed=3, max_train_samples=40)
    cache = tmp_path / "cache"
    streamed = load_dataset(folder, image_size=size, seed=3, max_train_samples=40, memory_budget_mb=0,
                            cache_dir=str(cache))
    assert not isinstance(memory.x_train, np.memmap)
    assert isinstance(streamed.x_train, np.memmap) and isinstance(streamed.x_test, np.memmap)
    assert not streamed.x_train.flags.writeable  # read-only: nothing can change the cached data
    assert os.listdir(cache) and all(name.endswith(".npy") for name in os.listdir(cache))
    for field in ("x_train", "y_train", "x_test", "y_test", "class_names"):
        np.testing.assert_array_equal(np.asarray(getattr(streamed, field)), np.asarray(getattr(memory, field)))


def test_streamed_batches_are_the_in_memory_batches_in_the_same_order(tmp_path, sample_splits):
    store = Store(streaming=True, folder=str(tmp_path))
    x, y = sample_splits.x_train[:100], sample_splits.y_train[:100]
    mapped = store.take(x, np.arange(100), "x")
    assert isinstance(mapped, np.memmap)
    for training in (True, False):
        a = make_dataset(x, y, 16, training=training, seed=5, reconstruction_outputs=("reconstruction",))
        b = make_dataset(mapped, y, 16, training=training, seed=5, reconstruction_outputs=("reconstruction",))
        for _ in range(2):  # two epochs: reshuffled alike
            batches = list(zip(a, b))
            assert len(batches) == 7
            for (xa, ta), (xb, tb) in batches:
                np.testing.assert_array_equal(xa.numpy(), xb.numpy())
                np.testing.assert_array_equal(ta["classifier"].numpy(), tb["classifier"].numpy())
                np.testing.assert_array_equal(ta["reconstruction"].numpy(), tb["reconstruction"].numpy())


def test_streaming_still_refuses_a_broken_file(tmp_path, sample_splits):
    folder = tmp_path / "data"
    write_image_folder(folder, sample_splits, n=4)
    broken = next((folder / "train").glob("*/*.png"))
    broken.write_bytes(broken.read_bytes()[:40])  # a truncated PNG
    with pytest.raises(UsageError, match="damaged image"):
        load_dataset(str(folder), memory_budget_mb=0, cache_dir=str(tmp_path / "run" / "data_cache"))
    assert not (tmp_path / "run").exists()  # a refused data set writes nothing, no run folder either
    cifar = write_cifar_folder(tmp_path / "cifar", sample_splits, n=10)
    (cifar / "data_batch_2").write_bytes((cifar / "data_batch_2").read_bytes()[:100])
    with pytest.raises(UsageError, match="truncated"):
        load_dataset(str(cifar), memory_budget_mb=0, cache_dir=str(tmp_path / "cache2"))
    assert not (tmp_path / "cache2").exists()


@pytest.mark.slow
def test_a_streamed_train_gives_the_same_metrics_and_leaves_no_cache(tmp_path, sample_splits):
    from keras_latent.training.fit import train

    folder = str(write_cifar_folder(tmp_path / "data", sample_splits, n=64))
    results = {}
    for name, budget in (("memory", 1024.0), ("streamed", 0.0)):
        config = tiny_config(data=DataConfig(dataset=folder, memory_budget_mb=budget))
        results[name] = train(config, str(tmp_path / name), verbose=0)
        assert not os.path.exists(tmp_path / name / "data_cache")
    for key in ("test_accuracy", "test_reconstruction_mse", "train_images", "test_images"):
        assert results["streamed"][key] == results["memory"][key], key
    history = [json.dumps(open(tmp_path / name / "history.csv").read()) for name in ("memory", "streamed")]
    assert history[0] == history[1]
