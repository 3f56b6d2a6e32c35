"""purenet.data.idx: IDX read/write on small files written here, and the loaders."""
import gzip
import os

import numpy as np
import pytest

from purenet.data import (FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, IDX_FILES,
                          load_fashion_mnist, load_idx_dataset, load_mnist, read_idx,
                          write_idx)
from purenet.errors import DataError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def sample(dtype, shape=(3, 4, 5)):
    values = np.arange(np.prod(shape)).reshape(shape) - 7
    return (values * 1.5 if np.dtype(dtype).kind == "f" else values).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_round_trip(tmp_path, dtype, name):
    x = sample(dtype)
    path = write_idx(tmp_path / name, x)
    y = read_idx(path)
    assert y.dtype == np.dtype(dtype) and y.dtype.isnative and y.flags.writeable
    np.testing.assert_array_equal(y, x)
    assert (open(path, "rb").read(2) == b"\x1f\x8b") == name.endswith(".gz")
    assert os.listdir(tmp_path) == [name]  # no temporary file left behind


def test_header_layout_is_big_endian(tmp_path):
    write_idx(tmp_path / "a", np.array([[1, 2, 3], [4, 5, 6]], np.int16))
    data = (tmp_path / "a").read_bytes()
    assert data[:4] == bytes([0, 0, 0x0B, 2])
    assert data[4:12] == bytes([0, 0, 0, 2, 0, 0, 0, 3])
    assert data[12:16] == bytes([0, 1, 0, 2])


def test_gzip_detected_by_magic_not_name(tmp_path):
    x = sample(np.int32, (7,))
    write_idx(tmp_path / "packed", x, compress=True)
    write_idx(tmp_path / "plain.gz", x, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "packed"), x)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), x)


def test_one_and_four_dims(tmp_path):
    for shape in [(1,), (2, 1, 3, 2)]:
        x = sample(np.float32, shape)
        np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "x", x)), x)


@pytest.mark.parametrize("head, message", [
    (bytes([0, 1, 0x08, 1]), "bad magic 0x00010801"),
    (bytes([0, 0, 0x0A, 1]), "bad magic 0x00000A01"),
    (bytes([0, 0, 0x08, 0]), "bad magic 0x00000800"),
])
def test_bad_magic(tmp_path, head, message):
    path = tmp_path / "bad"
    path.write_bytes(head + bytes(8))
    with pytest.raises(DataError, match=f"bad.*{message}"):
        read_idx(path)


def test_truncated_payload_and_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "x", sample(np.int32, (2, 3)))
    data = open(path, "rb").read()
    (tmp_path / "short").write_bytes(data[:-5])
    with pytest.raises(DataError, match=r"short: .*should be 24 bytes, got 19"):
        read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(data + b"\0")
    with pytest.raises(DataError, match=r"should be 24 bytes, got 25"):
        read_idx(tmp_path / "long")
    (tmp_path / "short.gz").write_bytes(gzip.compress(data[:-4]))
    with pytest.raises(DataError, match=r"short.gz: .*should be 24 bytes, got 20"):
        read_idx(tmp_path / "short.gz")


def test_short_header_empty_file_and_corrupt_gzip(tmp_path):
    (tmp_path / "hdr").write_bytes(bytes([0, 0, 8, 3]) + bytes(6))
    with pytest.raises(DataError, match="needs 16 bytes, got 10"):
        read_idx(tmp_path / "hdr")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(DataError, match="empty: too short"):
        read_idx(tmp_path / "empty")
    good = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 2, 5, 6]))
    (tmp_path / "cut.gz").write_bytes(good[:-6])
    with pytest.raises(DataError, match="cut.gz: corrupt gzip"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "absent")


def test_write_refuses_unsupported_arrays(tmp_path):
    with pytest.raises(DataError, match="cannot store dtype int64"):
        write_idx(tmp_path / "x", np.zeros(3, np.int64))
    with pytest.raises(DataError, match="shape"):
        write_idx(tmp_path / "x", np.float32(1.0))
    assert os.listdir(tmp_path) == []


def make_dataset(directory, n_train=6, n_test=4, gz=("x_train", "y_test")):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(directory / (IDX_FILES[name] + (".gz" if name in gz else "")), array)
    return arrays


def test_load_idx_dataset(tmp_path):
    arrays = make_dataset(tmp_path)
    (x_train, y_train), (x_test, y_test) = load_idx_dataset(tmp_path)
    assert x_train.shape == (6, 28, 28) and x_train.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64
    np.testing.assert_array_equal(x_test, arrays["x_test"])
    np.testing.assert_array_equal(y_train, arrays["y_train"])
    (x2, _), _ = load_mnist(tmp_path)
    np.testing.assert_array_equal(x2, x_train)
    (x3, _), _ = load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(x3, x_train)


def test_missing_files_are_listed_with_directory(tmp_path):
    make_dataset(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    os.remove(tmp_path / "train-labels-idx1-ubyte")
    with pytest.raises(DataError) as info:
        load_idx_dataset(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "train-labels-idx1-ubyte[.gz]" in message and "t10k-labels-idx1-ubyte[.gz]" in message
    assert "train-images" not in message


def test_fashion_mnist_missing_directory_says_how_to_install(tmp_path):
    with pytest.raises(DataError, match=r"does not exist.*apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_count_mismatch(tmp_path):
    make_dataset(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte holds 4 images but .*"
                                        r"t10k-labels-idx1-ubyte.gz holds 3 labels"):
        load_idx_dataset(tmp_path)


def test_wrong_kind_of_file(tmp_path):
    make_dataset(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((6, 2), np.uint8))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: expected uint8 labels"):
        load_idx_dataset(tmp_path)


def test_class_names():
    assert len(FASHION_MNIST_CLASSES) == 10
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top" and FASHION_MNIST_CLASSES[9] == "Ankle boot"


INSTALLED = os.path.isfile(os.path.join(FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz"))


@pytest.mark.skipif(not INSTALLED,
                    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
def test_installed_fashion_mnist_test_set():
    x = read_idx(os.path.join(FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz"))
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [1000] * 10
