"""ONNX export: each layer family runs in ONNX Runtime and agrees with purenet."""
import numpy as np
import pytest

import purenet as pn
from purenet.errors import ConfigError
from purenet.recipes import boston, fashion_mnist, shakespeare

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

rng = np.random.default_rng(0)


def floats(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def agreement(model, in_shape, x, train_state=False, tmp_path=None):
    """Max error of ONNX Runtime's output relative to purenet's largest output value."""
    _, params, state = model.init(pn.key(0), in_shape)
    if train_state:                       # non-trivial running statistics
        _, state = model.apply(params, state, x, train=True, key=pn.key(1))
        state = pn.layers.reset_states(state)
    expected = model(params, x, state)
    path = pn.export.export_onnx(model, params, state, in_shape, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x})[0]
    assert got.shape == expected.shape
    return np.abs(got - expected).max() / np.abs(expected).max()


CASES = {
    "dense + activations + dropout": (
        lambda: pn.serial(pn.Dense(8, "relu"), pn.Dropout(0.2), pn.Dense(6, "elu"),
                          pn.Dense(5, "leaky_relu"), pn.Dense(4, "sigmoid"), pn.Dense(3, "softmax")),
        (5,), lambda n: floats(n, 5)),
    "conv2d + batch norm + pooling": (
        lambda: pn.serial(pn.Conv2D(4, 3, padding="same", activation="tanh"), pn.BatchNorm(),
                          pn.MaxPool2D(2), pn.Conv2D(6, 3, stride=2, padding="same", dilation=1),
                          pn.AvgPool2D(2, padding="same"), pn.Flatten(), pn.Dense(2)),
        (2, 9, 9), lambda n: floats(n, 2, 9, 9)),
    "conv1d + pooling": (
        lambda: pn.serial(pn.Conv1D(4, 3, padding="same", dilation=2), pn.MaxPool1D(2),
                          pn.AvgPool1D(2), pn.Flatten(), pn.Dense(2)),
        (2, 16), lambda n: floats(n, 2, 16)),
    "transposed convolutions + upsampling": (
        lambda: pn.serial(pn.Conv2DTranspose(3, 3, stride=2, padding="same", activation="relu"),
                          pn.Conv2DTranspose(4, (3, 2), stride=(2, 1), padding=1, output_padding=(1, 0)),
                          pn.Conv2DTranspose(2, 1, stride=2, padding="same", use_bias=False),
                          pn.UpSampling2D(2), pn.UpSampling2D((1, 2), "bilinear"), pn.Flatten()),
        (2, 5, 4), lambda n: floats(n, 2, 5, 4)),
    "transposed conv1d": (
        lambda: pn.serial(pn.Conv1DTranspose(3, 3, stride=2, padding=1, output_padding=1),
                          pn.Conv1DTranspose(2, 4, dilation=2), pn.Flatten(), pn.Dense(2)),
        (2, 6), lambda n: floats(n, 2, 6)),
    "global pooling": (
        lambda: pn.serial(pn.Conv2D(4, (3, 2), use_bias=False), pn.GlobalAvgPool2D(),
                          pn.Dense(2, "softplus")),
        (1, 7, 6), lambda n: floats(n, 1, 7, 6)),
    "residual + reshape": (
        lambda: pn.serial(pn.Dense(4), pn.residual(pn.Dense(4, "tanh"), pn.Dense(4)),
                          pn.Reshape((2, 2)), pn.Flatten(), pn.Dense(2), pn.Activation("log_softmax")),
        (3,), lambda n: floats(n, 3)),
    "embedding + gru (torch biases)": (
        lambda: pn.serial(pn.Embedding(11, 4), pn.GRU(5, b_init="torch", b_h_init="torch"),
                          pn.Dense(3)),
        (6,), lambda n: rng.integers(0, 11, (n, 6))),
}
for cell in (pn.SimpleRNN, pn.LSTM, pn.GRU):
    CASES[f"stacked {cell.__name__}"] = (
        lambda cell=cell: pn.serial(cell(6, return_sequences=True), cell(5, b_init="torch"),
                                    pn.Dense(2)), (7, 3), lambda n: floats(n, 7, 3))
    CASES[f"bidirectional {cell.__name__}"] = (
        lambda cell=cell: pn.serial(pn.Bidirectional(cell(6, return_sequences=True)),
                                    pn.Bidirectional(cell(4)), pn.Dense(2)),
        (7, 3), lambda n: floats(n, 7, 3))


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("batch", [1, 3])
def test_each_family_agrees_with_onnx_runtime(name, batch, tmp_path):
    build, in_shape, data = CASES[name]
    assert agreement(build(), in_shape, data(batch), train_state=True, tmp_path=tmp_path) <= 1e-5


@pytest.mark.parametrize("name,build,in_shape,data", [
    ("boston book dl", lambda: boston.book_models()["dl"], (13,), lambda: floats(4, 13)),
    ("boston purenet", boston.purenet_model, (13,), lambda: floats(4, 13)),
    ("fashion mlp", fashion_mnist.mlp, (1, 28, 28), lambda: floats(2, 1, 28, 28)),
    ("fashion cnn", fashion_mnist.cnn, (1, 28, 28), lambda: floats(2, 1, 28, 28)),
    ("fashion book", fashion_mnist.book, (1, 28, 28), lambda: floats(2, 1, 28, 28)),
    ("shakespeare char lstm", lambda: shakespeare.char_model(30, "lstm", 16, 2, 8, 0.1), (12,),
     lambda: rng.integers(0, 30, (2, 12))),
])
def test_the_recipes_models_export(name, build, in_shape, data, tmp_path):
    assert agreement(build(), in_shape, data(), train_state=True, tmp_path=tmp_path) <= 1e-5


def test_a_saved_model_file_exports_the_same(tmp_path):
    model = fashion_mnist.book()
    _, params, state = model.init(pn.key(3), (1, 28, 28))
    pn.save_model(tmp_path / "book.npz", model, params, state, in_shape=(1, 28, 28))
    loaded, params2, state2, meta = pn.load_model(tmp_path / "book.npz")
    path = pn.export.export_onnx(loaded, params2, state2, meta["in_shape"], tmp_path / "b.onnx")
    x = floats(2, 1, 28, 28)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model(params, x, state), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model,message", [
    (pn.serial(pn.Dense(3, lambda z: z * pn.ops.sigmoid(z))), "dense_0.*activation"),
    (pn.serial(pn.Dense(3), pn.layers.Layer("mine", lambda k, s, d: (s, {}, {}),
                                            lambda p, s, x, t, k: (x, s))), "mine_1"),
], ids=["custom activation", "unregistered layer"])
def test_what_onnx_cannot_express_is_a_clear_error(model, message, tmp_path):
    _, params, state = model.init(pn.key(0), (4,))
    with pytest.raises(ConfigError, match=message):
        pn.export.export_onnx(model, params, state, (4,), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_batch_norm_without_its_state_is_a_clear_error(tmp_path):
    model = pn.serial(pn.Dense(3), pn.BatchNorm())
    _, params, _ = model.init(pn.key(0), (4,))
    with pytest.raises(ConfigError, match="batchnorm_1.*state"):
        pn.export.export_onnx(model, params, {}, (4,), tmp_path / "x.onnx")
