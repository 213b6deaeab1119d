"""data/cifar.py: CIFAR batch and meta files are data, never code; a bad file is one line, exit 2, nothing written."""
import os
import pickle
import re

import numpy as np
import pytest
from helpers import refused_by_train, write_cifar_folder

from keras_latent.data import load_dataset
from keras_latent.data.cifar import read_batch
from keras_latent.errors import UsageError


class CreatesAFile:
    """A pickle payload that, when unpickled, creates the folder `marker` (what a hostile download could do)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def test_a_crafted_pickle_runs_nothing(tmp_path, sample_splits, capsys):
    """The issue's report: a data_batch_1 whose pickle holds a crafted __reduce__. With a plain pickle.load the
    folder loads normally and the payload runs (the control below shows it does); here it must be refused."""
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", sample_splits, n=40)
    marker = str(tmp_path / "pwned")
    batch = {b"data": sample_splits.x_train[:40].transpose(0, 3, 1, 2).reshape(40, 3072),
             b"labels": sample_splits.y_train[:40].tolist(), b"batch_label": CreatesAFile(marker)}
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch))
    with open(folder / "data_batch_1", "rb") as f:  # control: the file is hostile indeed, plain pickle runs it
        pickle.load(f, encoding="bytes")
    assert os.path.isdir(marker)
    os.rmdir(marker)

    try:
        load_dataset(str(folder))
        refused = None
    except UsageError as err:
        refused = str(err)
    assert not os.path.exists(marker), "reading the data folder ran the code in data_batch_1"
    assert refused is not None and re.search(r"data_batch_1 refers to os\.makedirs, which a CIFAR file never holds; "
                                             r"refused without running it", refused), refused
    line = refused_by_train(folder, tmp_path / "run", capsys)
    assert "refused without running it" in line and not os.path.exists(marker)


def test_the_original_pickle_protocols_load(tmp_path, sample_splits):
    """Python 2's protocol 2 (the real download), and Python 3's protocols 2 to 5, all read the same arrays."""
    rows = sample_splits.x_train[:4].transpose(0, 3, 1, 2).reshape(4, 3072)
    for protocol in (2, 3, 4, 5):
        path = tmp_path / f"batch_{protocol}"
        path.write_bytes(pickle.dumps({"data": rows, "labels": np.arange(4)}, protocol=protocol))
        images, labels = read_batch(str(path))
        np.testing.assert_array_equal(images, sample_splits.x_train[:4])
        assert labels.tolist() == [0, 1, 2, 3]


def _batch(rows, labels) -> bytes:
    return pickle.dumps({b"data": rows, b"labels": labels, b"batch_label": b"x"})


def _write(folder, name, data: bytes):
    (folder / name).write_bytes(data)


ROWS = np.zeros((4, 3072), np.uint8)
# (what is wrong, how the folder is damaged, what the one line must say)
CASES = [
    ("zero-byte batch", lambda f: _write(f, "data_batch_1", b""), "data_batch_1 is empty (0 bytes)"),
    ("truncated batch", lambda f: _write(f, "data_batch_2", (f / "data_batch_2").read_bytes()[:5000]),
     "data_batch_2 is truncated or not a pickle (UnpicklingError: pickle data was truncated)"),
    ("not a pickle", lambda f: _write(f, "test_batch", b"\x89PNG not a batch"),
     "test_batch is truncated or not a pickle"),
    ("wrong-length rows", lambda f: _write(f, "data_batch_1", _batch(np.zeros((4, 1024), np.uint8), [0, 1, 2, 3])),
     "each row of 'data' must hold 3072 values (32 x 32 pixels x 3 colours), got rows of 1024"),
    ("float pixels", lambda f: _write(f, "data_batch_1", _batch(ROWS.astype(np.float32), [0, 1, 2, 3])),
     "'data' must be a 2-D uint8 array (N, 3072), got a float32 array of shape (4, 3072)"),
    ("more labels than images", lambda f: _write(f, "data_batch_1", _batch(ROWS, [0, 1, 2, 3, 4])),
     "data_batch_1 has 4 images but 5 labels"),
    ("labels that are not integers", lambda f: _write(f, "data_batch_1", _batch(ROWS, ["cat"] * 4)),
     "'labels' must be a list of integers, got ['cat', 'cat', 'cat', 'cat']"),
    ("a list, not a dict", lambda f: _write(f, "data_batch_1", pickle.dumps([1, 2, 3])),
     "data_batch_1 holds a list; expected a pickled dict"),
    ("no labels", lambda f: _write(f, "data_batch_1", pickle.dumps({b"data": ROWS})),
     "data_batch_1 has no 'labels' entry (it has 'data')"),
    ("label 10 of 10 classes", lambda f: _write(f, "data_batch_2", _batch(ROWS, [0, 1, 10, 3])),
     "data_batch_2: label 10 (image 2) is out of range: ", ),
    ("negative label", lambda f: _write(f, "test_batch", _batch(ROWS, [0, -1, 2, 3])),
     "test_batch: label -1 (image 1) is out of range"),
    ("no batches.meta", lambda f: os.remove(f / "batches.meta"), "has data_batch_* files but no batches.meta"),
    ("batches.meta with fewer classes than the labels",
     lambda f: _write(f, "batches.meta", pickle.dumps({b"label_names": [b"a", b"b", b"c", b"d", b"e"]})),
     "is out of range: {meta} names 5 classes, so labels must be 0..4"),
    ("batches.meta with more classes than the labels", lambda f: _write(f, "batches.meta", pickle.dumps(
        {b"label_names": [f"class {i}".encode() for i in range(12)]})),
     "batches.meta names 12 classes but the training batches have no image of 2 of them (class 10, class 11)"),
    ("batches.meta with a duplicate name",
     lambda f: _write(f, "batches.meta", pickle.dumps({b"label_names": [b"cat"] * 10})),
     "'label_names' must be distinct, non-empty names"),
    ("corrupt batches.meta", lambda f: _write(f, "batches.meta", b"\x80\x04\x95"),
     "batches.meta is truncated or not a pickle"),
]


@pytest.mark.parametrize("damage,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_cifar_folder_is_one_line_and_nothing_is_written(tmp_path, sample_splits, capsys, damage, expected):
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py", sample_splits, n=40)
    damage(folder)
    line = refused_by_train(folder, tmp_path / "run", capsys)
    assert expected.format(meta=os.path.join(folder, "batches.meta")) in line, line
