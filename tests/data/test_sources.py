"""data.py: every --dataset source on small real data, the auto decision, and bad input."""
import socket

import numpy as np
import pytest
from helpers import image_file_bytes, write_cifar_folder
from PIL import Image

from keras_latent.data import load_dataset
from keras_latent.data import sources as data
from keras_latent.data.sources import outside_image, resize_images
from keras_latent.errors import UsageError


def write_image(path, rng, size, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, (size, size, 3 if mode == "RGB" else 1), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(), mode if mode == "RGB" else "L").save(path)


def test_bundled_sample(sample_splits):
    s = sample_splits
    assert s.x_train.shape == (3051, 32, 32, 3) and s.x_test.shape == (1017, 32, 32, 3)
    assert s.x_train.dtype == np.uint8 and s.y_train.dtype == np.int64
    assert s.class_names[:3] == ("airplane", "automobile", "bird") and len(s.class_names) == 10
    assert s.dataset == "sample" and "sample" in s.description
    assert set(np.unique(s.y_test)) == set(range(10))


def test_cifar_folder_matches_its_source(tmp_path, sample_splits):
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", sample_splits)
    s = load_dataset(str(folder))
    np.testing.assert_array_equal(s.x_train, sample_splits.x_train[:80])
    np.testing.assert_array_equal(s.y_test, sample_splits.y_test[:40])
    assert s.class_names == sample_splits.class_names


def test_partial_cifar_folder_holds_out_a_seeded_test_split(tmp_path, sample_splits, caplog):
    folder = write_cifar_folder(tmp_path / "partial", sample_splits, with_test=False)
    a, b = load_dataset(str(folder), test_fraction=0.25, seed=3), load_dataset(str(folder), test_fraction=0.25, seed=3)
    assert len(a.x_train) == 60 and len(a.x_test) == 20
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert "no test_batch" in caplog.text


def test_split_seed_fixes_the_split_and_subset_whatever_the_run_seed(tmp_path, sample_splits):
    """load_splits draws the held-out split and the --max-train-samples subset with data.split_seed (as every
    run of a study does), else with the run's seed."""
    from keras_latent.config import DataConfig, TrainConfig
    from keras_latent.data import load_splits

    folder = str(write_cifar_folder(tmp_path / "partial", sample_splits, with_test=False))
    split = lambda seed, split_seed: load_splits(TrainConfig(seed=seed, data=DataConfig(  # noqa: E731
        dataset=folder, test_fraction=0.25, max_train_samples=30, split_seed=split_seed)))[0]
    a, b, c = split(1, 7), split(2, 7), split(2, None)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(b.x_test, c.x_test)


def test_resize_and_max_train_samples():
    s = load_dataset("sample", image_size=24, max_train_samples=100, seed=1)
    assert s.x_train.shape == (100, 24, 24, 3) and s.x_test.shape == (1017, 24, 24, 3)
    assert s.x_train.dtype == np.uint8


def test_image_folder_with_train_and_test(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            for i in range(n):
                write_image(tmp_path / split / cls / f"{i}.png", rng, 40 + i, "RGB" if i % 2 else "L")
    s = load_dataset(str(tmp_path), image_size=32)
    assert s.class_names == ("cat", "dog")
    assert s.x_train.shape == (6, 32, 32, 3) and s.x_test.shape == (4, 32, 32, 3)
    assert sorted(s.y_train.tolist()) == [0, 0, 0, 1, 1, 1]


def test_an_outside_image_is_read_as_the_data_set_read_its_own(tmp_path, sample_splits):
    """An outside image (an explorer upload) read and resized as load_dataset read the run's images, pixel for
    pixel: an image folder's reader for an image-folder run, CIFAR-10's resize for a CIFAR-10 run."""
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for name in ("a", "b"):  # a classifier needs two classes
            write_image(tmp_path / split / name / "0.png", rng, 45, "RGB")
    folder_images = load_dataset(str(tmp_path), image_size=16).x_test  # the image folder's reader resized it
    data = (tmp_path / "test" / "a" / "0.png").read_bytes()
    np.testing.assert_array_equal(outside_image(data, 16, str(tmp_path)), folder_images[0])
    antialiased = resize_images(np.asarray(Image.open(tmp_path / "test" / "a" / "0.png"))[None], 16)[0]
    assert not np.array_equal(antialiased, folder_images[0])  # the two rules differ, so the choice is tested
    np.testing.assert_array_equal(outside_image(data, 16, "sample"), antialiased)
    cifar_24 = load_dataset("sample", image_size=24).x_test[:1]
    np.testing.assert_array_equal(outside_image(image_file_bytes(sample_splits.x_test[0]), 24, "sample"), cifar_24[0])


def test_flat_image_folder_uses_seeded_test_fraction(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("a", "b", "c"):
        for i in range(10):
            write_image(tmp_path / cls / f"{i}.jpg", rng, 16, "RGB")
    s1 = load_dataset(str(tmp_path), image_size=16, test_fraction=0.2, seed=5)
    s2 = load_dataset(str(tmp_path), image_size=16, test_fraction=0.2, seed=5)
    assert len(s1.x_train) == 24 and len(s1.x_test) == 6
    np.testing.assert_array_equal(s1.y_test, s2.y_test)


def test_auto_falls_back_to_sample_with_a_notice(monkeypatch, caplog):
    monkeypatch.setattr(data, "tfds_cifar10_prepared", lambda data_dir: False)
    monkeypatch.setattr(data, "download_reachable", lambda: (False, "URLError: offline"))
    s = load_dataset("auto", max_train_samples=10)
    assert s.dataset == "sample"
    notices = [r for r in caplog.records if r.name == "keras_latent"]
    assert len(notices) == 1 and notices[0].levelname == "WARNING"
    assert "bundled" in notices[0].getMessage() and "--dataset cifar10" in notices[0].getMessage()


def test_download_probe_gives_up_after_one_timed_out_try():
    """A server that never answers (the kernel completes the handshake, nobody reads): the probe returns False
    with 'timed out' after one connection, instead of retrying for minutes as tensorflow-datasets does. No
    clock and no thread: what is checked is the number of connections the server's queue received."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    connections = []
    try:
        ok, why = data.download_reachable(f"http://127.0.0.1:{server.getsockname()[1]}/cifar.tar.gz", timeout_s=0.5)
        server.setblocking(False)
        while True:
            try:
                connections.append(server.accept()[0])
            except BlockingIOError:
                break
    finally:
        for connection in connections:
            connection.close()
        server.close()
    assert not ok and "timed out" in why.lower()
    assert len(connections) == 1


@pytest.mark.parametrize("setup,message", [
    (lambda p: str(p / "missing"), "neither a known name nor an existing path"),
    (lambda p: "cifar100", "allowed: auto, cifar10, sample"),
    (lambda p: (p / "empty").mkdir() or str(p / "empty"), "holds no images"),
    (lambda p: (p / "f.txt").write_text("x") and str(p / "f.txt"), "is a file"),
])
def test_bad_dataset_gets_one_clear_error(tmp_path, setup, message):
    with pytest.raises(UsageError, match=message):
        load_dataset(setup(tmp_path))
