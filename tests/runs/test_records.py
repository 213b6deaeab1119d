"""runs/records.py's .npz reader and writer: numeric arrays only, never pickled objects; one line on bad files."""
import numpy as np
import pytest

from keras_latent.errors import UsageError
from keras_latent.runs.records import read_arrays, write_arrays


def test_arrays_round_trip_and_a_missing_file_is_none(tmp_path):
    path = str(tmp_path / "views.npz")
    arrays = {"channels": np.arange(3), "decoded": np.zeros((2, 3, 4, 4, 3), np.uint8)}
    write_arrays(path, arrays)
    found = read_arrays(path, ("channels", "decoded", "optimized"))
    assert sorted(found) == ["channels", "decoded"]
    for name, value in arrays.items():
        np.testing.assert_array_equal(found[name], value)
        assert found[name].dtype == value.dtype
    assert read_arrays(str(tmp_path / "absent.npz"), ("channels",)) is None


@pytest.mark.parametrize("content, message", [
    (b"PK\x03\x04 broken", "is not a readable .npz file of numeric arrays"),
    ({"channels": np.array([{"a": 1}], dtype=object)}, "is not a readable .npz file of numeric arrays"),
    ({"channels": np.arange(2), "script": np.arange(2)}, "may hold only the numeric arrays channels, got "
                                                         "channels (int64), script (int64)"),
    ({"channels": np.array(["a", "b"])}, "may hold only the numeric arrays channels, got channels (<U1)"),
])
def test_a_file_that_is_not_numeric_arrays_is_one_line(tmp_path, content, message):
    path = tmp_path / "views.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.savez(path, **content)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
        read_arrays(str(path), ("channels",))
    assert "\n" not in str(raised.value)
