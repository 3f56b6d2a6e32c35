"""Every class of bad input gives a clear error: the right type, and a message that names
the culprit (the argument, file, array, layer or setting) and what was expected.

One table per kind of input. Each case is ``(id, call, error type, pattern)``; ``call``
takes a scratch directory and must raise ``error type`` with ``pattern`` in its message.
"""
import io
import json
import os
import zipfile

import numpy as np
import pytest

import purenet as pn
from purenet import metrics
from purenet.data import as_numeric_array
from purenet.errors import ConfigError, DataError, ModelFileError, ShapeError
from purenet.files import META_KEY, atomic_write
from purenet.layers import check_params

X = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
LABELS = np.array([0, 1, 2, 0, 1, 2])


def _build(model, in_shape=(5,)):
    _, params, state = model.init(pn.key(0), in_shape)
    return model, params, state


MLP, MLP_PARAMS, MLP_STATE = _build(pn.serial(pn.Dense(4, "relu"), pn.Dense(3)))
_, WIDE_PARAMS, _ = _build(pn.serial(pn.Dense(8, "relu"), pn.Dense(3)))       # other widths
_, DEEP_PARAMS, _ = _build(pn.serial(pn.Dense(4, "relu"), pn.Dense(3), pn.Dense(3)))
BN, BN_PARAMS, BN_STATE = _build(pn.serial(pn.Dense(4), pn.BatchNorm(), pn.Dense(3)))
CONV_BN, CONV_BN_PARAMS, CONV_BN_STATE = _build(
    pn.serial(pn.Conv2D(2, 3), pn.BatchNorm(name="norm")), (1, 3, 3))


def _with_nan(a, index):
    a = np.array(a, dtype=np.float32)
    a[index] = np.nan
    return a


def _raises(call, tmp_path, error, pattern):
    with pytest.raises(error, match=pattern):
        call(tmp_path)


def _cases(table):
    return pytest.mark.parametrize("call,error,pattern", [c[1:] for c in table],
                                   ids=[c[0] for c in table])


# --- params and state that do not belong to the model ------------------------------

PARAMS_CASES = [
    ("predict-params-of-another-model", lambda t: pn.predict(MLP, WIDE_PARAMS, X),
     ShapeError, r"params\['dense_0'\]\['W'\] has shape \(5, 8\), the model expects \(5, 4\)"),
    ("predict-params-with-an-extra-layer", lambda t: pn.predict(MLP, DEEP_PARAMS, X),
     ConfigError, r"params has 'dense_2', which the model does not have"),
    ("evaluate-params-of-another-model",
     lambda t: pn.evaluate(MLP, WIDE_PARAMS, X, LABELS, metrics=["accuracy"]),
     ShapeError, r"params\['dense_0'\]\['W'\] has shape \(5, 8\)"),
    ("save-params-of-another-model",
     lambda t: pn.save_model(t / "m.npz", MLP, WIDE_PARAMS, in_shape=(5,)),
     ShapeError, r"cannot save .*m\.npz: params\['dense_0'\]\['W'\] has shape \(5, 8\)"),
    ("save-with-the-wrong-in-shape",
     lambda t: pn.save_model(t / "m.npz", MLP, MLP_PARAMS, in_shape=(6,)),
     ShapeError, r"params\['dense_0'\]\['W'\] has shape \(5, 4\), the model expects \(6, 4\)"),
    ("predict-params-None", lambda t: pn.predict(MLP, None, X),
     ConfigError, r"params is None"),
    ("evaluate-params-None", lambda t: pn.evaluate(MLP, None, X, LABELS),
     ConfigError, r"params is None"),
    ("save-params-None", lambda t: pn.save_model(t / "m.npz", MLP, None, in_shape=(5,)),
     ConfigError, r"m\.npz: params is None"),
    ("params-missing-a-layer",
     lambda t: check_params(MLP, {"dense_0": MLP_PARAMS["dense_0"]}, (5,)),
     ConfigError, r"params has no 'dense_1'"),
    ("params-leaf-is-text",
     lambda t: check_params(MLP, {**MLP_PARAMS, "dense_1": {"W": "w", "b": MLP_PARAMS["dense_1"]["b"]}},
                            (5,)),
     ConfigError, r"params\['dense_1'\]\['W'\] is a str, the model expects an array of shape \(4, 3\)"),
    ("batchnorm-predict-without-state", lambda t: pn.predict(BN, BN_PARAMS, X),
     ConfigError, r"layer 'batchnorm_1'.*no running statistics.*pass the state returned by "
                  r"model\.init or fit"),
    ("batchnorm-apply-with-empty-state", lambda t: BN.apply(BN_PARAMS, {}, X),
     ConfigError, r"layer 'batchnorm_1'.*no running statistics"),
    ("batchnorm-state-of-another-model",
     lambda t: pn.predict(BN, BN_PARAMS, X, state={"batchnorm_1": {"mean": np.zeros(3), "var": np.ones(3)}}),
     ShapeError, r"state\['batchnorm_1'\]\['mean'\] has shape \(3,\), the model expects \(4,\)"),
    ("save-batchnorm-model-without-state",
     lambda t: pn.save_model(t / "m.npz", BN, BN_PARAMS, in_shape=(5,)),
     ConfigError, r"state has no 'batchnorm_1'"),
    ("batchnorm-trained-on-one-example",
     lambda t: BN.apply(BN_PARAMS, BN_STATE, X[:1], train=True),
     ShapeError, r"layer 'batchnorm_1'.*more than 1 value per channel.*\(1, 4\)"),
    ("batchnorm-trained-on-one-pixel",
     lambda t: CONV_BN.apply(CONV_BN_PARAMS, CONV_BN_STATE, np.ones((1, 1, 3, 3), np.float32),
                             train=True),
     ShapeError, r"layer 'norm'.*more than 1 value per channel.*\(1, 2, 1, 1\)"),
]


@_cases(PARAMS_CASES)
def test_params_and_state(call, error, pattern, tmp_path):
    _raises(call, tmp_path, error, pattern)
    assert not os.listdir(tmp_path)         # a refused save writes nothing


# --- data ------------------------------------------------------------------------------

DATA_CASES = [
    ("predict-nan-input", lambda t: pn.predict(MLP, MLP_PARAMS, _with_nan(X, (2, 3))),
     DataError, r"x has 1 non-finite value.*index \(2, 3\)"),
    ("evaluate-inf-input",
     lambda t: pn.evaluate(MLP, MLP_PARAMS, np.where(X > 1, np.inf, X), LABELS),
     DataError, r"^x has \d+ non-finite"),
    ("evaluate-nan-target",
     lambda t: pn.evaluate(MLP, MLP_PARAMS, X, _with_nan(LABELS, 4), loss="mse"),
     DataError, r"^y has 1 non-finite value.*index \(4,\)"),
    ("evaluate-label-out-of-range",
     lambda t: pn.evaluate(MLP, MLP_PARAMS, X, LABELS + 1, metrics=["accuracy"]),
     DataError, r"accuracy: target label 3 at index 2 is out of range for 3 classes"),
    ("evaluate-negative-label",
     lambda t: pn.evaluate(MLP, MLP_PARAMS, X, LABELS - 1, metrics=["accuracy"]),
     DataError, r"accuracy: target label -1 at index 0 is out of range"),
    ("evaluate-fractional-label",
     lambda t: pn.evaluate(MLP, MLP_PARAMS, X, LABELS + 0.5, metrics=["accuracy"]),
     DataError, r"accuracy: target label 0\.5 at index 0 is not a whole number"),
    ("accuracy-one-hot-of-the-wrong-width",
     lambda t: metrics.accuracy(np.zeros((6, 3)), np.eye(4)[[0, 1, 2, 3, 0, 1]]),
     ShapeError, r"accuracy: one-hot targets have 4 columns but the predictions score 3 classes"),
    ("binary-accuracy-target-not-0-or-1",
     lambda t: metrics.accuracy(np.zeros((3, 1)), np.array([0.0, 1.0, 2.0])),
     DataError, r"binary target 2\.0 at index \(2,\) is not in \[0, 1\]"),
    ("confusion-matrix-fractional-label",
     lambda t: metrics.confusion_matrix(np.array([0, 1]), np.array([0.0, 1.5]), 3),
     DataError, r"confusion_matrix: target label 1\.5 at index 1 is not a whole number"),
    ("text", lambda t: as_numeric_array(["1.5", "2"], "x_train"),
     DataError, r"x_train holds text \(dtype <U3\), not numbers"),
    ("objects", lambda t: as_numeric_array(np.array([1.0, None, 3.0], dtype=object), "x_train"),
     DataError, r"x_train holds NoneType None at index \(1,\), not a number"),
    ("ragged", lambda t: as_numeric_array([[1, 2, 3], [4, 5], [6, 7, 8]], "x_train"),
     DataError, r"x_train is not a regular array: x_train\[1\] has 2 items where x_train\[0\] "
                r"has 3 items"),
    ("empty", lambda t: as_numeric_array(np.zeros((0, 5)), "x_train"),
     DataError, r"x_train is empty"),
    ("no-values", lambda t: as_numeric_array(np.zeros((4, 0)), "x_train"),
     DataError, r"x_train holds no values"),
    ("scalar", lambda t: as_numeric_array(3.0, "x_train"),
     DataError, r"x_train is a single number"),
    ("none", lambda t: as_numeric_array(None, "y_train"),
     DataError, r"y_train is None"),
    ("nan", lambda t: as_numeric_array(_with_nan(X, (5, 0)), "x_train"),
     DataError, r"x_train has 1 non-finite value.*index \(5, 0\)"),
]


@_cases(DATA_CASES)
def test_data(call, error, pattern, tmp_path):
    _raises(call, tmp_path, error, pattern)


def test_numeric_input_passes_unchanged():
    assert as_numeric_array(X, "x") is X
    np.testing.assert_array_equal(as_numeric_array([[1, 2], [3, 4]], "x"), [[1, 2], [3, 4]])
    assert as_numeric_array(np.array([1, 2.5], dtype=object), "x").dtype == np.float64
    big = np.full((1000, 10), 3e38, np.float32)         # the sum overflows; every value is finite
    assert as_numeric_array(big, "x") is big


# --- layer settings ----------------------------------------------------------------

SETTINGS_CASES = [
    ("conv2d-kernel-0", lambda t: pn.Conv2D(4, 0), ConfigError, r"Conv2D: kernel_size must be positive, got 0"),
    ("conv2d-kernel-(3,0)", lambda t: pn.Conv2D(4, (3, 0)), ConfigError, r"Conv2D: kernel_size"),
    ("conv1d-kernel-0", lambda t: pn.Conv1D(4, 0), ConfigError, r"Conv1D: kernel_size .* got 0"),
    ("conv2dtranspose-kernel-0", lambda t: pn.Conv2DTranspose(4, 0), ConfigError,
     r"conv2dtranspose: kernel_size must be positive"),
    ("maxpool2d-0", lambda t: pn.MaxPool2D(0), ConfigError, r"MaxPool2D: pool_size must be positive"),
    ("avgpool2d-(2,0)", lambda t: pn.AvgPool2D((2, 0)), ConfigError, r"AvgPool2D: pool_size"),
    ("maxpool1d-0", lambda t: pn.MaxPool1D(0), ConfigError, r"MaxPool1D: pool_size .* got 0"),
    ("pool-stride-0", lambda t: pn.MaxPool2D(2, stride=0), ConfigError, r"MaxPool2D: stride must be positive"),
    ("pool-padding-too-big", lambda t: pn.AvgPool2D(2, padding=2), ConfigError,
     r"AvgPool2D: padding 2 must be smaller than the pool window"),
    ("dense-0", lambda t: pn.Dense(0), ConfigError, r"Dense: units must be a positive integer, got 0"),
    ("dense-fraction", lambda t: pn.Dense(2.5), ConfigError, r"Dense: units .* got 2\.5"),
    ("dense-text", lambda t: pn.Dense("4"), ConfigError, r"Dense: units .* got '4'"),
    ("dense-bool", lambda t: pn.Dense(True), ConfigError, r"Dense: units .* got True"),
    ("conv2d-filters-0", lambda t: pn.Conv2D(0, 3), ConfigError, r"Conv2D: filters must be a positive integer"),
    ("embedding-dim-0", lambda t: pn.Embedding(10, 0), ConfigError, r"Embedding: dim must be a positive integer"),
    ("lstm-units-bool", lambda t: pn.LSTM(True), ConfigError, r"LSTM: units must be a positive integer"),
    ("reshape-0", lambda t: pn.Reshape((0, 3)), ConfigError, r"Reshape: every size in shape"),
    ("dropout-text", lambda t: pn.Dropout("0.5"), ConfigError, r"Dropout: drop_prob must be a number"),
    ("batchnorm-momentum-text", lambda t: pn.BatchNorm("0.9"), ConfigError, r"BatchNorm: momentum must be a number"),
]


@_cases(SETTINGS_CASES)
def test_layer_settings(call, error, pattern, tmp_path):
    _raises(call, tmp_path, error, pattern)


# --- model files ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "model.npz"
    pn.save_model(path, BN, BN_PARAMS, BN_STATE, in_shape=(5,))
    return path.read_bytes()


def _rewrite(data, change, compression=zipfile.ZIP_STORED):
    """The archive ``data`` with each member passed through ``change(name, bytes)``, which
    returns new bytes, None (drop the member) or a list of (name, bytes) members."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", compression) as dst:
        for name in src.namelist():
            new = change(name, src.read(name))
            for member in ([] if new is None else new if isinstance(new, list) else [(name, new)]):
                dst.writestr(*member)
    return out.getvalue()


def _npy(a):
    buffer = io.BytesIO()
    np.save(buffer, a)
    return buffer.getvalue()


def _meta_changed(edit):
    def change(name, data):
        if not name.startswith(META_KEY):
            return data
        meta = json.loads(np.load(io.BytesIO(data)).tobytes())
        edit(meta)
        return _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return lambda data: _rewrite(data, change)


def _array_changed(target, edit):
    def change(name, data):
        return _npy(edit(np.load(io.BytesIO(data)))) if name == target + ".npy" else data
    return lambda data: _rewrite(data, change)


def _unknown_compression(data):
    """Mark every member as stored with compression method 99."""
    data = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.find(signature)
        while at >= 0:
            data[at + offset:at + offset + 2] = (99).to_bytes(2, "little")
            at = data.find(signature, at + 4)
    return bytes(data)


def _first_layer_args(meta):
    return meta["architecture"]["args"]["layers"][0]["args"]


def _plain_npy(data):
    return _npy(np.ones(3))


FILE_CASES = [
    ("damaged-header", lambda d: b"\0\0\0\0" + d[4:], r"not a readable purenet file.*does not start"),
    ("truncated", lambda d: d[:len(d) // 2], r"truncated or corrupted"),
    ("empty", lambda d: b"", r"the file is empty"),
    ("plain-npy", _plain_npy, r"is a plain \.npy array, not a purenet file"),
    ("unknown-compression", _unknown_compression,
     r"array 'params/dense_0/W' cannot be read .*compression method"),
    ("no-metadata", lambda d: _rewrite(d, lambda n, b: None if n.startswith(META_KEY) else b),
     r"not a purenet file \(no metadata entry\)"),
    ("metadata-not-json", lambda d: _rewrite(d, lambda n, b: _npy(np.frombuffer(b"{oops", np.uint8))
                                             if n.startswith(META_KEY) else b),
     r"metadata is corrupted"),
    ("metadata-without-format", _meta_changed(lambda m: m.pop("format")),
     r"not a purenet model file \(format None\)"),
    ("metadata-without-architecture", _meta_changed(lambda m: m.pop("architecture")),
     r"the metadata has no 'architecture' entry"),
    ("metadata-without-in-shape", _meta_changed(lambda m: m.pop("in_shape")),
     r"the metadata has no 'in_shape' entry"),
    ("metadata-without-dtype", _meta_changed(lambda m: m.pop("dtype")),
     r"the metadata has no 'dtype' entry"),
    ("in-shape-of-the-wrong-type", _meta_changed(lambda m: m.update(in_shape="5")),
     r"metadata 'in_shape' must be a list of sizes, got '5'"),
    ("dtype-not-a-float", _meta_changed(lambda m: m.update(dtype="floaty")),
     r"metadata 'dtype' must name a float dtype.*'floaty'"),
    ("layer-argument-of-the-wrong-type",
     _meta_changed(lambda m: _first_layer_args(m).update(units="four")),
     r"cannot rebuild layer Dense\(units='four'.*units must be a positive integer"),
    ("unknown-layer-argument", _meta_changed(lambda m: _first_layer_args(m).update(colour=1)),
     r"cannot rebuild layer Dense\(.*colour=1\).*unexpected keyword argument 'colour'"),
    ("unknown-layer-type",
     _meta_changed(lambda m: m["architecture"]["args"]["layers"][1].update(type="Norm")),
     r"unknown layer type 'Norm'"),
    ("architecture-not-a-layer", _meta_changed(lambda m: m.update(architecture=[1, 2])),
     r"malformed layer description \[1, 2\]"),
    ("extra-array",
     lambda d: _rewrite(d, lambda n, b: [(n, b), ("params/dense_9/W.npy", _npy(np.ones(2)))]
                        if n.startswith(META_KEY) else b),
     r"array 'params/dense_9/W' is not part of the model"),
    ("missing-array", lambda d: _rewrite(d, lambda n, b: None if n == "state/batchnorm_1/var.npy" else b),
     r"missing array 'state/batchnorm_1/var'"),
    ("array-of-the-wrong-shape", _array_changed("params/dense_2/b", lambda a: np.zeros(4, a.dtype)),
     r"array 'params/dense_2/b' has shape \(4,\), the model expects \(3,\)"),
    ("nan-weights", _array_changed("params/dense_0/W", lambda a: _with_nan(a, (1, 2))),
     r"array 'params/dense_0/W' holds NaN or inf"),
    ("text-weights", _array_changed("params/dense_0/b", lambda a: a.astype(str)),
     r"array 'params/dense_0/b' holds <U\d+ values, not numbers"),
]


@pytest.mark.parametrize("damage,pattern", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_model_files(damage, pattern, good_model_file, tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(damage(good_model_file))
    with pytest.raises(ModelFileError, match=pattern) as err:
        pn.load_model(path)
    assert str(path) in str(err.value)


def test_the_undamaged_file_loads(good_model_file, tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(good_model_file)
    model, params, state, _ = pn.load_model(path)
    np.testing.assert_array_equal(pn.predict(model, params, X, state=state),
                                  pn.predict(BN, BN_PARAMS, X, state=BN_STATE))


def test_a_directory_and_a_missing_file_are_model_file_errors(tmp_path):
    with pytest.raises(ModelFileError, match="is a directory"):
        pn.load_model(tmp_path)
    with pytest.raises(ModelFileError, match="no such file"):
        pn.load_model(tmp_path / "nope.npz")


def test_nan_weights_are_not_saved(tmp_path):
    params = {**MLP_PARAMS, "dense_1": {**MLP_PARAMS["dense_1"], "b": _with_nan(np.zeros(3), 1)}}
    with pytest.raises(DataError, match=r"m\.npz: params\['dense_1'\]\['b'\] holds NaN or inf"):
        pn.save_model(tmp_path / "m.npz", MLP, params, in_shape=(5,))
    assert not os.listdir(tmp_path)


# --- where files are written ------------------------------------------------------

def _save_into(path):
    pn.save_model(path, MLP, MLP_PARAMS, in_shape=(5,))


def _parent_is_a_file(t):
    (t / "runs").write_text("not a directory")
    _save_into(t / "runs" / "model.npz")


def _onto_a_directory(t):
    (t / "model.npz").mkdir()
    _save_into(t / "model.npz")


def _refused(directory):
    """``os.open`` refusing, as a read-only directory does, to create files in ``directory``."""
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if os.path.dirname(os.path.abspath(path)) == str(directory) and flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)
    return fake_open


WRITE_CASES = [
    ("parent-is-a-file", _parent_is_a_file, NotADirectoryError,
     r"cannot write .*runs/model\.npz: .*runs is a file, not a directory"),
    ("onto-a-directory", _onto_a_directory, IsADirectoryError,
     r"cannot write .*model\.npz: it is a directory"),
]


@_cases(WRITE_CASES)
def test_unwritable_targets_are_named(call, error, pattern, tmp_path):
    with pytest.raises(error, match=pattern) as err:
        call(tmp_path)
    assert ".tmp-" not in str(err.value)


def test_a_read_only_directory_is_named(tmp_path, monkeypatch):
    target = tmp_path / "ro" / "model.npz"
    target.parent.mkdir()
    monkeypatch.setattr(os, "open", _refused(target.parent))
    with pytest.raises(PermissionError, match=r"cannot write .*ro/model\.npz: no permission to "
                                              r"create files in .*ro") as err:
        _save_into(target)
    assert ".tmp-" not in str(err.value) and not os.listdir(target.parent)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="permission bits do not stop the superuser")
def test_a_really_read_only_directory_is_named(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=r"cannot write .*ro/model\.npz"):
            _save_into(directory / "model.npz")
    finally:
        directory.chmod(0o755)


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    def fail(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError, match="No space left"):
        atomic_write(tmp_path / "out.bin", fail)
    assert not os.listdir(tmp_path)
