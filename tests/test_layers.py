"""Layers, composition and initialisers."""
import numpy as np
import pytest

from purenet import grad, initializers, loss_and_grads, losses, vjp
from purenet.losses import mean_squared_error
from purenet.errors import ConfigError, ShapeError
from purenet.layers import Activation, Dense, Dropout, Flatten, Reshape, serial
from purenet.layers.base import Layer
from purenet.random import key
from purenet.testing import check_layer_grads, check_model_grads
from purenet.tree import tree_astype

rng = np.random.default_rng(0)


def mlp():
    return serial(Dense(8, "tanh"), Dense(8, "relu"), Dropout(0.25), Dense(8, "sigmoid"),
                  Dense(3, "elu"), Dense(2))


@pytest.mark.parametrize("batch", [1, 6])
def test_dense_network_gradient_with_dropout(batch):
    model = mlp()
    _, params, state = model.init(key(0), (5,), np.float64)
    x = rng.standard_normal((batch, 5))
    check_layer_grads(model, params, x, state, train=True, key=key(1))


@pytest.mark.parametrize("loss,target", [
    ("mse", rng.standard_normal((4, 2))),
    ("softmax_cross_entropy", np.array([0, 1, 1, 0])),
])
def test_whole_model_and_loss_gradient(loss, target):
    model = mlp()
    _, params, _ = model.init(key(2), (5,), np.float64)
    check_model_grads(model, loss, params, rng.standard_normal((4, 5)), target, key=key(3))


def test_gradients_are_shaped_like_params():
    from purenet.train.step import loss_and_grads
    model = mlp()
    _, params, state = model.init(key(0), (5,))
    value, grads, _ = loss_and_grads(model, losses.mean_squared_error, params, state,
                                     rng.standard_normal((4, 5)).astype(np.float32),
                                     rng.standard_normal((4, 2)).astype(np.float32), key=key(1))
    assert list(grads) == list(params)
    for name in params:
        for p in params[name]:
            assert grads[name][p].shape == params[name][p].shape
            assert grads[name][p].dtype == np.float32
    assert np.isfinite(value)


def test_shapes_through_serial_and_param_names():
    model = serial(Reshape((2, 6)), Dense(4), Flatten(), Dense(3, "softmax"))
    out_shape, params, _ = model.init(key(0), (12,))
    assert out_shape == (3,)
    assert list(params) == ["reshape_0", "dense_1", "flatten_2", "dense_3"]
    assert params["dense_1"]["W"].shape == (6, 4)
    assert params["dense_3"]["W"].shape == (8, 3)
    y = model(params, rng.standard_normal((5, 12)).astype(np.float32))
    assert y.shape == (5, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)


def test_input_width_mismatch_names_the_layer():
    model = serial(Dense(4), Dense(2))
    _, params, state = model.init(key(0), (3,))
    with pytest.raises(ShapeError, match=r"dense_0.*\(batch, \.\.\., 3\).*\(5, 7\)"):
        model.apply(params, state, np.zeros((5, 7), np.float32))


def test_backward_returning_wrong_shape_names_the_primitive():
    from purenet import loss_and_grads, primitive

    @primitive
    def broken(x):
        return x, lambda g: (g[:, :1],)

    layer = Layer("broken", lambda k, s, d: (s, {}, {}), lambda p, s, x, t, k: (broken(x), s))
    model = serial(Dense(3), layer)
    _, params, state = model.init(key(0), (2,))
    with pytest.raises(ShapeError, match="primitive 'broken'.*argument 0 has shape"):
        loss_and_grads(model, "mse", params, state, np.ones((4, 2), np.float32),
                       np.ones((4, 3), np.float32))


def test_each_layer_draws_its_own_weights():
    model = serial(Dense(6), Dense(6), Dense(6))
    _, params, _ = model.init(key(0), (6,))
    ws = [params[n]["W"] for n in ("dense_0", "dense_1", "dense_2")]
    assert not np.array_equal(ws[0], ws[1]) and not np.array_equal(ws[1], ws[2])


def test_same_seed_same_params_different_seed_different():
    a = mlp().init(key(7), (5,))[1]
    b = mlp().init(key(7), (5,))[1]
    c = mlp().init(key(8), (5,))[1]
    assert np.array_equal(a["dense_0"]["W"], b["dense_0"]["W"])
    assert not np.array_equal(a["dense_0"]["W"], c["dense_0"]["W"])


def test_dropout_scales_in_training_and_is_identity_at_inference():
    drop = Dropout(0.25)
    x = np.ones((200, 50), np.float32)
    y, back = vjp(lambda x: drop.apply({}, {}, x, train=True, key=key(0))[0], x)
    kept = y != 0
    assert 0.70 < kept.mean() < 0.80
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    np.testing.assert_allclose(back(x)[0], y)           # gradient flows through kept units only
    assert np.array_equal(drop.apply({}, {}, x)[0], x)  # inference: identity
    y2, _ = drop.apply({}, {}, x, train=True, key=key(1))
    assert not np.array_equal(y, y2)


def test_dropout_in_training_without_key_is_an_error():
    with pytest.raises(ValueError, match="key"):
        Dropout(0.5).apply({}, {}, np.ones((2, 2)), train=True)
    with pytest.raises(ConfigError):
        Dropout(1.0)


def test_unknown_activation_and_initialiser_names():
    with pytest.raises(ConfigError, match="unknown activation 'relu6'"):
        Dense(3, "relu6")
    with pytest.raises(ConfigError, match="unknown initialiser 'kaiming'"):
        Dense(3, w_init="kaiming")



def test_a_plain_function_is_an_activation_and_unsupported_numpy_is_a_clear_error():
    from purenet.ops import TracingError
    x = rng.standard_normal((3, 4))
    check_layer_grads(Activation(lambda z: np.tanh(z) * z), {}, x)    # np.tanh runs the primitive
    with pytest.raises(TracingError, match="np.sin has no gradient"):
        check_layer_grads(Activation(np.sin), {}, x)


@pytest.mark.parametrize("name,expected_std", [
    ("normal", 1.0),
    ("glorot_normal", np.sqrt(2 / (400 + 300))),
    ("glorot_uniform", np.sqrt(6 / (400 + 300)) / np.sqrt(3)),
    ("he_normal", np.sqrt(2 / 400)),
    ("he_uniform", np.sqrt(6 / 400) / np.sqrt(3)),
    ("lecun_normal", np.sqrt(1 / 400)),
    ("lecun_uniform", np.sqrt(3 / 400) / np.sqrt(3)),
    ("torch", 1 / np.sqrt(400) / np.sqrt(3)),
    (initializers.variance_scaling(2.0, "fan_in", "truncated_normal"), np.sqrt(2 / 400)),
    (initializers.variance_scaling(1.0, "fan_avg", "uniform"), np.sqrt(1 / 350)),
    (initializers.variance_scaling(3.0, "fan_out", "normal"), np.sqrt(3 / 300)),
])
def test_initialiser_scales(name, expected_std):
    w = initializers.get(name)(key(0), (400, 300), np.float32)
    assert w.dtype == np.float32 and w.shape == (400, 300)
    assert abs(w.mean()) < 0.02 * expected_std + 1e-3
    assert w.std() == pytest.approx(expected_std, rel=0.02)


def test_orthogonal_and_conv_fans():
    q = initializers.orthogonal(key(0), (16, 16), np.float64)
    np.testing.assert_allclose(q @ q.T, np.eye(16), atol=1e-10)
    assert initializers.fans((5, 5, 3, 16)) == (75, 400)


def test_initialiser_chosen_per_layer_by_name_or_function():
    def halves(k, shape, dtype):
        return np.full(shape, 0.5, dtype)

    model = serial(Dense(3, w_init="zeros"), Dense(2, w_init=halves))
    _, params, _ = model.init(key(0), (4,))
    assert not params["dense_0"]["W"].any()
    assert np.all(params["dense_1"]["W"] == 0.5)


def test_float64_params_run_in_float64():
    model = mlp()
    _, params, _ = model.init(key(0), (5,), np.float64)
    assert params["dense_0"]["W"].dtype == np.float64
    y = model(tree_astype(params, np.float64), rng.standard_normal((2, 5)))
    assert y.dtype == np.float64


def test_the_engine_skips_the_first_layers_input_gradient(monkeypatch):
    from purenet.layers import Conv2D
    from purenet.ops import core
    asked = []
    call_backward = core._call_backward

    def spy(node, g):
        asked.append((node.name, node.needed))
        return call_backward(node, g)

    monkeypatch.setattr(core, "_call_backward", spy)
    for model, x in ((mlp(), rng.standard_normal((4, 5))),
                     (serial(Conv2D(2, 3), Flatten(), Dense(2)), rng.standard_normal((2, 1, 5, 5)))):
        _, params, state = model.init(key(0), x.shape[1:], np.float64)
        y = rng.standard_normal((len(x), 2))
        asked.clear()
        _, lean, _ = loss_and_grads(model, "mse", params, state, x, y, key=key(1))
        first = [needed for name, needed in asked if name in ("linear", "conv2d")][-1]
        assert first[0] is False                       # x is data: its gradient is never asked for
        full = grad(lambda p, x: mean_squared_error(
            model.apply(p, state, x, train=True, key=key(1))[0], y), argnums=(0, 1))(params, x)
        assert full[1].shape == x.shape
        for name in params:
            for p in params[name]:
                np.testing.assert_array_equal(full[0][name][p], lean[name][p])


def test_residual_adds_its_input_and_checks_gradients():
    from purenet.layers import BatchNorm, Conv2D, residual
    block = residual(Conv2D(3, 3, padding="same"), BatchNorm(), Activation("tanh"),
                     Conv2D(3, 3, padding="same"))
    model = serial(Conv2D(3, 3, padding="same"), block, residual(Dropout(0.3)), Flatten(), Dense(2))
    x = rng.standard_normal((4, 2, 5, 6))
    _, params, state = model.init(key(0), x.shape[1:], np.float64)
    assert list(params["residual_1"]) == ["conv2d_0", "batchnorm_1", "tanh_2", "conv2d_3"]
    h = rng.standard_normal((4, 3, 5, 6))
    inner = serial(*block.children)(params["residual_1"], h, state["residual_1"])
    np.testing.assert_allclose(block(params["residual_1"], h, state["residual_1"]), h + inner)
    check_layer_grads(model, params, x, state, train=True, key=key(1))
    check_layer_grads(block, params["residual_1"], h, state["residual_1"], train=True)


def test_residual_that_changes_the_shape_is_a_clear_error():
    from purenet.layers import residual
    with pytest.raises(ShapeError, match=r"residual.*\(5,\) to \(4,\)"):
        serial(Dense(5), residual(Dense(4))).init(key(0), (3,))


def test_residual_saves_loads_and_summarises(tmp_path):
    from purenet.io import load_model, save_model
    from purenet.layers import residual
    from purenet.summary import summary
    model = serial(Dense(4, "relu"), residual(Dense(4, "tanh"), Dense(4)), Dense(2))
    _, params, state = model.init(key(0), (3,))
    path = tmp_path / "res.npz"
    save_model(path, model, params, state, in_shape=(3,))
    loaded, p2, s2, _ = load_model(path)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(p2, x, s2), model(params, x, state))
    table = summary(model, (3,), params)
    assert "residual_1" in table and "  dense_0" in table and "  dense_1" in table


def test_truncated_normal_stays_within_two_standard_deviations():
    w = initializers.variance_scaling(1.0, "fan_in", "truncated_normal")(key(0), (400, 300))
    assert np.abs(w).max() <= 2 * np.sqrt(1 / 400) / 0.8796 + 1e-6


def test_bias_initialisers_see_the_layers_fan_in():
    _, params, _ = Dense(50, w_init="torch", b_init="torch").init(key(0), (400,))
    bound = 1 / np.sqrt(400)
    for p in params.values():
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.8 * bound

    seen = []

    def recording(key_, shape, dtype, fan_in=None):
        seen.append((shape, fan_in))
        return np.zeros(shape, dtype)

    Dense(7, b_init=recording).init(key(0), (9,))
    Dense(7, b_init=lambda k, shape, dtype: np.ones(shape, dtype)).init(key(0), (9,))  # old form
    assert seen == [((7,), 9)]


def test_bad_variance_scaling_settings_are_config_errors():
    for kwargs in ({"mode": "fan_sum"}, {"distribution": "cauchy"}, {"scale": 0}):
        with pytest.raises(ConfigError):
            initializers.variance_scaling(**kwargs)


def test_layers_take_names_which_key_their_params(tmp_path):
    from purenet.io import load_model, save_model
    model = serial(Dense(4, "relu", name="hidden"), Dense(2), Dense(1, name="head"))
    _, params, state = model.init(key(0), (3,))
    assert list(params) == ["hidden", "dense_1", "head"]
    path = tmp_path / "named.npz"
    save_model(path, model, params, state, in_shape=(3,))
    loaded, params2, _, _ = load_model(path)
    assert list(params2) == ["hidden", "dense_1", "head"]
    x = rng.standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(params2, x), model(params, x))


def test_duplicate_or_bad_layer_names_are_clear_errors():
    with pytest.raises(ConfigError, match="two layers are named 'a'"):
        serial(Dense(2, name="a"), Dense(2, name="a"))
    with pytest.raises(ConfigError, match="two layers are named 'dense_1'"):
        serial(Dense(2, name="dense_1"), Dense(2))
    with pytest.raises(ConfigError, match="name must be"):
        Dense(2, name="a/b")


def test_variance_scaling_layers_save_and_load(tmp_path):
    from purenet.io import load_model, save_model
    model = serial(Dense(4, w_init=initializers.variance_scaling(2.0, "fan_avg", "uniform")))
    _, params, state = model.init(key(0), (3,))
    save_model(tmp_path / "vs.npz", model, params, state, in_shape=(3,))
    loaded, params2, _, _ = load_model(tmp_path / "vs.npz")
    _, fresh, _ = loaded.init(key(0), (3,))
    np.testing.assert_array_equal(fresh["dense_0"]["W"], params["dense_0"]["W"])


@pytest.mark.parametrize("return_sequences,out_shape", [(False, (16,)), (True, (5, 16))])
def test_summary_of_bidirectional_layers(return_sequences, out_shape):
    import purenet as pn
    from purenet.layers import LSTM, Bidirectional
    model = serial(Bidirectional(LSTM(8, return_sequences=return_sequences)), Dense(2))
    _, params, _ = model.init(key(0), (5, 3))
    table = pn.summary(model, (5, 3), params)
    per_direction = 3 * 32 + 8 * 32 + 32                  # W_x, W_h, b of one LSTM
    lines = {line.split()[0]: line for line in table.splitlines()[2:-2]}
    assert str(out_shape) in lines["bidirectional_0"]
    assert lines["bidirectional_0"].endswith(f"{2 * per_direction:,}")
    assert lines["lstm_forward"].endswith(f"{per_direction:,}")
    assert lines["lstm_backward"].endswith(f"{per_direction:,}")
    assert lines["dense_1"].endswith(f"{16 * 2 + 2:,}")
    assert table.endswith(f"total parameters {2 * per_direction + 34:,}")
    assert pn.summary(model, (5, 3)) == table                 # params default to init's


def test_summary_refuses_params_of_another_model():
    import purenet as pn
    _, params, _ = serial(Dense(3)).init(key(0), (4,))
    with pytest.raises(ShapeError, match=r"params\['dense_0'\]\['W'\] has shape \(4, 3\)"):
        pn.summary(serial(Dense(2)), (4,), params)


def test_check_params_accepts_the_models_own_and_a_stateful_carry():
    from purenet.layers import LSTM, BatchNorm, check_params
    model = serial(LSTM(3, stateful=True), BatchNorm(), Dense(2))
    _, params, state = model.init(key(0), (4, 2))
    x = rng.standard_normal((5, 4, 2)).astype(np.float32)
    _, state = model.apply(params, state, x, train=True)
    check_params(model, params, (4, 2), state=state)      # the carry is extra state, allowed
    check_params(model, params, (None, 2))                # any sequence length
    with pytest.raises(ConfigError, match=r"state\['batchnorm_1'\] has no 'var'"):
        check_params(model, params, (4, 2), state={**state, "batchnorm_1": {"mean": np.zeros(3)}})


def test_errors_inside_a_layer_name_it_and_keep_their_type():
    from purenet.errors import DataError
    from purenet.layers import Embedding
    model = serial(Embedding(3, 2, name="words"), Dense(2))
    _, params, state = model.init(key(0), (2,))
    with pytest.raises(DataError, match=r"layer 'words'"):
        model.apply(params, state, np.array([[0, 5]]))


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "elu"])
def test_dense_with_activation_equals_dense_then_activation(activation):
    """Dense fuses relu, tanh and sigmoid into its linear primitive (and leaves elu as a
    node of its own): the same values and gradients as a separate Activation layer."""
    fused, apart = serial(Dense(5, activation)), serial(Dense(5), Activation(activation))
    _, params, _ = fused.init(key(3), (4,), np.float64)
    params_apart = {"dense_0": params["dense_0"], f"{activation}_1": {}}
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 5))
    loss, grads, _ = loss_and_grads(fused, "mse", params, {}, x, y)
    loss_ref, grads_ref, _ = loss_and_grads(apart, "mse", params_apart, {}, x, y)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-13)
    for k in ("W", "b"):
        np.testing.assert_allclose(grads["dense_0"][k], grads_ref["dense_0"][k], rtol=1e-12,
                                   atol=1e-14)
