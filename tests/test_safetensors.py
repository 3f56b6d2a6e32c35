"""safetensors files: written here, read back by purenet, by the safetensors package
(NumPy and PyTorch), and refused with a clear error when damaged."""
import json
import struct

import numpy as np
import pytest

import purenet as pn
from purenet.errors import ConfigError, DataError, ModelFileError
from purenet.export.safetensors import load_safetensors, save_safetensors, write_safetensors

safetensors_numpy = pytest.importorskip("safetensors.numpy")


def bn_model():
    return pn.serial(pn.Conv2D(3, 3, padding="same"), pn.BatchNorm(), pn.Flatten(),
                     pn.Dense(4, "relu"), pn.Dense(2, name="head"))


def trained_state(model, params, state, x):
    """Batch-norm statistics that are not their initial values."""
    _, state = model.apply(params, state, x, train=True, key=pn.key(1))
    return state


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def saved(request, tmp_path):
    dtype = request.param
    model = bn_model()
    _, params, state = model.init(pn.key(0), (1, 5, 5), dtype)
    x = np.random.default_rng(0).standard_normal((6, 1, 5, 5)).astype(dtype)
    state = trained_state(model, params, state, x)
    path = tmp_path / "model.safetensors"
    pn.save_model(path, model, params, state, in_shape=(1, 5, 5), extra={"note": "hi"})
    return path, model, params, state, x, dtype


def flat(tree):
    return dict(pn.tree.tree_flatten_with_paths(tree))


def test_load_model_gives_back_the_same_model(saved):
    path, model, params, state, x, dtype = saved
    model2, params2, state2, meta = pn.load_model(path)
    assert meta["extra"] == {"note": "hi"} and meta["in_shape"] == [1, 5, 5]
    assert meta["dtype"] == np.dtype(dtype).name
    for mine, theirs in ((params, params2), (state, state2)):
        mine, theirs = flat(mine), flat(theirs)
        assert mine.keys() == theirs.keys()
        for name in mine:
            assert theirs[name].dtype == dtype
            np.testing.assert_array_equal(theirs[name], mine[name])
    np.testing.assert_array_equal(model2(params2, x, state2), model(params, x, state))


def test_the_safetensors_package_reads_the_same_arrays(saved):
    path, _, params, state, _, dtype = saved
    expected = {**flat(params), **{f"state/{k}": v for k, v in flat(state).items()}}
    assert "head/W" in expected and "state/batchnorm_1/mean" in expected
    arrays = safetensors_numpy.load_file(str(path))
    assert arrays.keys() == expected.keys()
    for name, a in expected.items():
        assert arrays[name].dtype == dtype
        np.testing.assert_array_equal(arrays[name], a)


def test_pytorch_reads_the_same_arrays(saved):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    path, _, params, state, _, dtype = saved
    tensors = safetensors_torch.load_file(str(path))
    expected = {**flat(params), **{f"state/{k}": v for k, v in flat(state).items()}}
    assert tensors.keys() == expected.keys()
    for name, a in expected.items():
        assert tensors[name].dtype == (torch.float32 if dtype == np.float32 else torch.float64)
        np.testing.assert_array_equal(tensors[name].numpy(), a)


def test_the_architecture_is_in_the_metadata(saved):
    from safetensors import safe_open
    path, model = saved[:2]
    with safe_open(str(path), "np") as f:
        metadata = f.metadata()
    assert metadata["format"] == "purenet-model-1"
    assert json.loads(metadata["architecture"]) == pn.io.layer_to_config(model)
    assert json.loads(metadata["in_shape"]) == [1, 5, 5]


def test_save_model_format_argument(tmp_path):
    model = pn.serial(pn.Dense(3))
    _, params, state = model.init(pn.key(0), (2,))
    pn.save_model(tmp_path / "weights.bin", model, params, state, in_shape=(2,),
                  format="safetensors")
    assert pn.load_model(tmp_path / "weights.bin")[1]["dense_0"]["W"].shape == (2, 3)
    assert (tmp_path / "weights.bin").read_bytes()[8:9] == b"{"
    pn.save_model(tmp_path / "m.safetensors", model, params, state, in_shape=(2,), format="npz")
    assert (tmp_path / "m.safetensors").read_bytes()[:2] == b"PK"
    assert pn.load_model(tmp_path / "m.safetensors")[1]["dense_0"]["W"].shape == (2, 3)
    with pytest.raises(ConfigError, match="format"):
        pn.save_model(tmp_path / "m.x", model, params, state, in_shape=(2,), format="hdf5")


def test_a_layer_named_state_is_refused(tmp_path):
    model = pn.serial(pn.Dense(3, name="state"))
    _, params, state = model.init(pn.key(0), (2,))
    with pytest.raises(ConfigError, match="state"):
        pn.save_model(tmp_path / "m.safetensors", model, params, state, in_shape=(2,))
    assert not (tmp_path / "m.safetensors").exists()


def test_arrays_only_and_every_dtype_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"f16": rng.standard_normal((2, 3)).astype(np.float16),
               "f32": rng.standard_normal(5).astype(np.float32),
               "f64": rng.standard_normal((1, 2, 2)),
               "i8": np.arange(-3, 3, dtype=np.int8), "u8": np.arange(7, dtype=np.uint8),
               "i32": np.arange(4, dtype=np.int32).reshape(2, 2), "i64": np.arange(3),
               "bool": np.array([True, False, True]), "scalar": np.float32(2.5),
               "empty": np.zeros((0, 4), np.float32),
               "big_endian": np.arange(6, dtype=">f4").reshape(3, 2),
               "strided": np.arange(20, dtype=np.float64).reshape(4, 5)[:, ::2]}
    path = tmp_path / "t.safetensors"
    write_safetensors(path, tensors, {"who": "test"})
    for reader in (lambda p: load_safetensors(p)[0], safetensors_numpy.load_file):
        got = reader(str(path))
        assert got.keys() == tensors.keys()
        for name, a in tensors.items():
            assert got[name].shape == np.shape(a) and got[name].dtype == np.asarray(a).dtype \
                .newbyteorder("="), name
            np.testing.assert_array_equal(got[name], a)
    assert load_safetensors(path)[1] == {"who": "test"}
    header_length = struct.unpack("<Q", path.read_bytes()[:8])[0]
    assert (8 + header_length) % 8 == 0                   # the data starts 8-byte aligned
    loaded = load_safetensors(path)[0]["f32"]
    loaded += 1                                           # arrays come back writable


def test_trees_without_a_model(tmp_path):
    params = {"encoder": {"W": np.ones((2, 2), np.float32)}, "b": np.zeros(2, np.float32)}
    state = {"bn": {"mean": np.full(2, 0.5, np.float32)}}
    save_safetensors(tmp_path / "w.safetensors", params, state, metadata={"epoch": "3"})
    tensors, metadata = load_safetensors(tmp_path / "w.safetensors")
    assert set(tensors) == {"encoder/W", "b", "state/bn/mean"} and metadata == {"epoch": "3"}
    with pytest.raises(ModelFileError, match="without purenet's model metadata"):
        pn.load_model(tmp_path / "w.safetensors")
    with pytest.raises(ConfigError, match="strings"):
        save_safetensors(tmp_path / "x.safetensors", params, metadata={"epoch": 3})
    with pytest.raises(DataError, match="object"):
        save_safetensors(tmp_path / "x.safetensors", {"a": np.array(["x"], dtype=object)})
    assert not (tmp_path / "x.safetensors").exists()


def test_files_of_the_safetensors_package_are_read(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.arange(3, dtype=np.int64)}
    safetensors_numpy.save_file(arrays, str(tmp_path / "theirs.safetensors"),
                                metadata={"k": "v"})
    tensors, metadata = load_safetensors(tmp_path / "theirs.safetensors")
    assert metadata == {"k": "v"}
    for name, a in arrays.items():
        np.testing.assert_array_equal(tensors[name], a)


# --- damaged files ---------------------------------------------------------------

def header_file(path, header, data=b"", length=None):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


ENTRY = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
BAD_HEADERS = {
    "not-json": (b"{nope", "not valid JSON"),
    "not-an-object": ([1, 2], "not a JSON object"),
    "unknown-dtype": ({"w": {**ENTRY, "dtype": "F8_E4M3"}}, "dtype 'F8_E4M3'"),
    "bad-shape": ({"w": {**ENTRY, "shape": [-2]}}, "shape"),
    "missing-offsets": ({"w": {"dtype": "F32", "shape": [2]}}, "data_offsets"),
    "size-mismatch": ({"w": {**ENTRY, "shape": [3]}}, "needs 12 bytes"),
    "overlap": ({"w": ENTRY, "v": ENTRY}, "overlaps"),
    "gap": ({"w": {**ENTRY, "data_offsets": [4, 12]}}, "gap"),
    "metadata-not-strings": ({"__metadata__": {"a": 1}, "w": ENTRY}, "__metadata__"),
}


@pytest.mark.parametrize("case", list(BAD_HEADERS))
def test_a_damaged_header_is_a_model_file_error(tmp_path, case):
    header, message = BAD_HEADERS[case]
    path = tmp_path / "bad.safetensors"
    if isinstance(header, bytes):
        path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    else:
        header_file(path, header, bytes(8 if case != "gap" else 12))
    with pytest.raises(ModelFileError, match=message) as err:
        pn.load_model(path)
    assert str(path) in str(err.value)


def test_truncated_files_are_model_file_errors(saved):
    path = saved[0]
    data = path.read_bytes()
    for cut, message in ((0, "0 bytes"), (5, "fewer than the 8"), (40, "truncated"),
                         (len(data) - 3, "truncated")):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match=message):
            pn.load_model(path)
    path.write_bytes(data + b"extra")
    with pytest.raises(ModelFileError, match="after the last tensor"):
        pn.load_model(path)
    path.write_bytes(struct.pack("<Q", 10 ** 12) + data[8:])
    with pytest.raises(ModelFileError, match="header length"):
        pn.load_model(path)


def test_metadata_that_is_not_json_is_a_model_file_error(tmp_path):
    path = tmp_path / "m.safetensors"
    write_safetensors(path, {"dense_0/W": np.ones((2, 3), np.float32)},
                      {"format": "purenet-model-1", "architecture": "{broken", "in_shape": "[2]",
                       "dtype": "float32"})
    with pytest.raises(ModelFileError, match="'architecture' is not valid JSON"):
        pn.load_model(path)


def test_a_failed_write_keeps_the_old_file(saved):
    path = saved[0]
    before = path.read_bytes()
    with pytest.raises(DataError):
        write_safetensors(path, {"ok": np.ones(3), "bad": np.array([1 + 2j])})
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]
