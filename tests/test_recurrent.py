"""Recurrent cells, scan, fused kernels and layers: gradients against central differences
(float64), kernels against scan, state carrying, PyTorch agreement and a tiny learning run."""
import numpy as np
import pytest

from purenet.errors import ConfigError, ShapeError
from purenet.layers import Dense, serial
from purenet.layers.embedding import Embedding
from purenet.layers.recurrent import (GRU, LSTM, Bidirectional, Cell, Recurrent, SimpleRNN,
                                      reset_states)
from purenet.ops import recurrent as rec
from purenet.random import key
from purenet.testing import check_grads, check_layer_grads, check_model_grads, check_vjp
from purenet.tree import tree_leaves, tree_map

F, H = 3, 4
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
STEPS = {"rnn": rec.rnn_step, "lstm": rec.lstm_step, "gru": rec.gru_step}
KERNELS = {"rnn": rec.rnn_sequence, "lstm": rec.lstm_sequence, "gru": rec.gru_sequence}


def randn(*shape, seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


def cell_params(kind, seed=1, n_in=F):
    g = GATES[kind]
    params = {"W_x": randn(n_in, g * H, seed=seed, scale=0.5),
              "W_h": randn(H, g * H, seed=seed + 1, scale=0.5),
              "b": randn(g * H, seed=seed + 2, scale=0.5)}
    if kind == "gru":
        params["b_h"] = randn(g * H, seed=seed + 3, scale=0.5)
    return params


def carry0(kind, batch, seed=5):
    h = randn(batch, H, seed=seed)
    return (h, randn(batch, H, seed=seed + 1)) if kind == "lstm" else h


# --- one step -----------------------------------------------------------------

@pytest.mark.parametrize("batch", [1, 3])
def test_cell_step_gradients(batch):
    x, h, c = randn(batch, F), randn(batch, H, seed=1), randn(batch, H, seed=2)
    p = cell_params("rnn")
    check_grads(rec.rnn_cell, x, h, p["W_x"], p["W_h"], p["b"])
    p = cell_params("lstm")
    check_grads(rec.lstm_cell, x, h, c, p["W_x"], p["W_h"], p["b"])
    p = cell_params("gru")
    check_grads(rec.gru_cell, x, h, p["W_x"], p["W_h"], p["b"], p["b_h"])


def test_gru_update_gate_gets_its_own_gradient():
    # the update gate's weights must see a gradient, and h' must depend on h directly
    p = cell_params("gru")
    x, h = randn(2, F), randn(2, H, seed=1)
    _, back = rec.gru_cell.vjp(x, h, p["W_x"], p["W_h"], p["b"], p["b_h"])
    grads = back(np.ones((2, H)))
    assert np.abs(grads[2][:, H:2 * H]).sum() > 0 and np.abs(grads[3][:, H:2 * H]).sum() > 0


# --- whole sequences ------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(GATES))
@pytest.mark.parametrize("runner", ["kernel", "scan"])
def test_sequence_gradients_with_initial_state(kind, runner):
    run = KERNELS[kind]
    if runner == "scan":
        run = lambda p, c, xs: rec.scan(STEPS[kind], p, c, xs)  # noqa: E731
    xs = randn(2, 4, F, seed=9)
    check_vjp(run, cell_params(kind), carry0(kind, 2), xs, name=f"{kind} {runner}")


@pytest.mark.parametrize("kind", sorted(GATES))
def test_kernel_matches_scan(kind):
    p, c, xs = cell_params(kind), carry0(kind, 3), randn(3, 5, F, seed=9)
    (ys1, c1), back1 = rec.scan(STEPS[kind], p, c, xs)
    (ys2, c2), back2 = KERNELS[kind](p, c, xs)
    np.testing.assert_allclose(ys2, ys1, rtol=1e-12, atol=1e-12)
    for a, b in zip(tree_leaves(c2), tree_leaves(c1)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for grads in [(randn(*ys1.shape, seed=3), None), (None, tree_map(np.ones_like, c))]:
        for a, b in zip(tree_leaves(back2(grads)), tree_leaves(back1(grads))):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", sorted(GATES))
def test_kernels_stay_float32(kind):
    p = tree_map(lambda a: a.astype(np.float32), cell_params(kind))
    c = tree_map(lambda a: a.astype(np.float32), carry0(kind, 2))
    xs = randn(2, 3, F).astype(np.float32)
    (ys, c_T), back = KERNELS[kind](p, c, xs)
    grads = back((np.ones_like(ys), None))
    assert {a.dtype for a in tree_leaves([ys, c_T, grads])} == {np.dtype(np.float32)}
    ref = KERNELS[kind](cell_params(kind), carry0(kind, 2), randn(2, 3, F))[0][0]
    np.testing.assert_allclose(ys, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(GATES))
def test_live_backward_keeps_its_buffers(kind):
    # buffers are recycled only once a backward is unreachable: a second forward pass
    # (and a third, after the second's backward is dropped) must not disturb the first
    p, c = cell_params(kind), carry0(kind, 2)
    xs1, xs2 = randn(2, 4, F, seed=1), randn(2, 4, F, seed=2)
    dys = randn(2, 4, H, seed=3)
    expected = tree_leaves(KERNELS[kind](p, c, xs1)[1]((dys, None)))
    (_, _), back1 = KERNELS[kind](p, c, xs1)
    for _ in range(2):
        (_, _), back2 = KERNELS[kind](p, c, xs2)
        back2((dys, None))
        del back2
    for a, b in zip(tree_leaves(back1((dys, None))), expected):
        np.testing.assert_array_equal(a, b)


def test_sequence_shape_errors():
    p = cell_params("lstm")
    with pytest.raises(ShapeError, match="features|time"):
        rec.lstm_sequence(p, carry0("lstm", 2), randn(2, 4, F + 1))
    with pytest.raises(ShapeError, match="initial state"):
        rec.lstm_sequence(p, carry0("lstm", 3), randn(2, 4, F))
    with pytest.raises(ShapeError, match="time step"):
        rec.scan(rec.rnn_step, cell_params("rnn"), randn(2, H), np.zeros((2, 0, F)))


@pytest.mark.parametrize("module", ["lstm", "gru"])
def test_agrees_with_pytorch(module):
    torch = pytest.importorskip("torch")
    kind = module
    p, c, xs = cell_params(kind), carry0(kind, 2), randn(2, 5, F, seed=4)
    net = getattr(torch.nn, module.upper())(F, H, batch_first=True).double()
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(p["W_x"].T))
        net.weight_hh_l0.copy_(torch.from_numpy(p["W_h"].T))
        net.bias_ih_l0.copy_(torch.from_numpy(p["b"]))
        net.bias_hh_l0.copy_(torch.from_numpy(p.get("b_h", np.zeros_like(p["b"]))))
    h0 = c if kind == "gru" else c[0]
    state = torch.from_numpy(h0)[None] if kind == "gru" else tuple(
        torch.from_numpy(a)[None] for a in c)
    ys_ref = net(torch.from_numpy(xs), state)[0].detach().numpy()
    np.testing.assert_allclose(KERNELS[kind](p, c, xs)[0][0], ys_ref, rtol=1e-10, atol=1e-12)


# --- layers ---------------------------------------------------------------------

def layer_inputs(layer, steps=4, batch=2, seed=0):
    _, params, state = layer.init(key(seed), (steps, F), np.float64)
    return params, state, randn(batch, steps, F, seed=seed + 7)


@pytest.mark.parametrize("make", [SimpleRNN, LSTM, GRU], ids=["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_layer_gradients(make, return_sequences):
    layer = make(H, return_sequences=return_sequences)
    params, state, x = layer_inputs(layer)
    check_layer_grads(layer, params, x, state)
    out_shape = layer.init(key(0), (4, F))[0]
    y = layer(params, x)
    assert y.shape == (2,) + out_shape == ((2, 4, H) if return_sequences else (2, H))


@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_gradients_and_shapes(return_sequences):
    layer = Bidirectional(GRU(H, return_sequences=return_sequences))
    params, state, x = layer_inputs(layer)
    check_layer_grads(layer, params, x, state)
    y = layer(params, x)
    assert y.shape == ((2, 4, 2 * H) if return_sequences else (2, 2 * H))
    # the second half is the backward-direction layer run on the reversed sequence
    inner = GRU(H, return_sequences=return_sequences)
    rev = inner(params["backward"], x[:, ::-1])
    np.testing.assert_allclose(y[..., H:], rev[:, ::-1] if return_sequences else rev)


def test_stacked_layers_and_time_distributed_dense_gradients():
    model = serial(Embedding(5, F), LSTM(H, return_sequences=True),
                   Bidirectional(SimpleRNN(H, return_sequences=True)), Dense(5))
    _, params, state = model.init(key(0), (4,), np.float64)
    ids = np.random.default_rng(0).integers(0, 5, (2, 4))
    logits = model(params, ids)
    assert logits.shape == (2, 4, 5)
    check_model_grads(model, "softmax_cross_entropy", params, ids, (ids + 1) % 5, state)


def test_given_initial_state_is_used():
    layer = LSTM(H, return_sequences=True)
    params, _, x = layer_inputs(layer)
    c = carry0("lstm", 2)
    y = layer.apply(params, {"carry": c}, x)[0]
    np.testing.assert_allclose(y, rec.lstm_sequence(params, c, x)[0][0])
    assert not np.allclose(y, layer(params, x))


@pytest.mark.parametrize("make", [SimpleRNN, LSTM, GRU], ids=["simple_rnn", "lstm", "gru"])
def test_stateful_halves_equal_the_whole(make):
    whole = make(H, return_sequences=True)
    halves = make(H, return_sequences=True, stateful=True)
    params, state, x = layer_inputs(whole, steps=6)
    y_whole = whole(params, x)
    y1, state, _ = halves.apply(params, state, x[:, :3])
    y2, state, back = halves.apply(params, state, x[:, 3:])
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y_whole, rtol=1e-12)
    # truncated BPTT: the second half's gradients do not reach back into the first
    dparams, dx = back(np.ones_like(y2))
    assert dx.shape == (2, 3, F)
    fresh = reset_states(state)
    assert "carry" not in fresh and "carry" in state
    np.testing.assert_allclose(halves.apply(params, fresh, x[:, :3])[0], y1)


def test_stateful_needs_a_constant_batch_size():
    layer = LSTM(H, stateful=True)
    params, state, x = layer_inputs(layer)
    _, state, _ = layer.apply(params, state, x)
    with pytest.raises(ShapeError, match="reset_states"):
        layer.apply(params, state, x[:1])
    layer.apply(params, reset_states(state), x[:1])


def test_stateful_carry_inside_serial_resets():
    model = serial(GRU(H, return_sequences=True, stateful=True), GRU(H, stateful=True))
    _, params, state = model.init(key(0), (3, F), np.float64)
    _, state, _ = model.apply(params, state, randn(2, 3, F))
    assert all("carry" in s for s in state.values())
    assert reset_states(state) == {"gru_0": {}, "gru_1": {}}


def test_lstm_init():
    layer = LSTM(H, forget_bias=1.0)
    out_shape, params, state = layer.init(key(0), (None, F))
    assert out_shape == (H,) and state == {}
    assert params["W_x"].dtype == np.float32 and params["W_h"].shape == (H, 4 * H)
    np.testing.assert_array_equal(params["b"], np.r_[np.zeros(H), np.ones(H), np.zeros(2 * H)])
    block = params["W_h"][:, 2 * H:3 * H]                    # each gate block is orthogonal
    np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-5)


def test_layer_errors():
    with pytest.raises(ConfigError):
        LSTM(0)
    with pytest.raises(ConfigError, match="stateful"):
        Bidirectional(LSTM(H, stateful=True))
    layer = GRU(H)
    params, state, x = layer_inputs(layer)
    with pytest.raises(ShapeError, match=r"\(batch, time"):
        layer.apply(params, state, x[:, 0])
    with pytest.raises(ShapeError, match=str(F)):
        layer.apply(params, state, x[..., :2])
    with pytest.raises(ShapeError):
        layer.init(key(0), (F,))


def leaky_cell(units, decay=0.5):
    """A user-defined cell: h' = decay h + tanh(x W); its own backward, run by scan."""
    def step(params, h, x):
        a = np.tanh(x @ params["W"])
        h_new = decay * h + a

        def backward(grads):
            dy, dh = grads
            g = dy + dh
            # h' = decay h + tanh(x W)  =>  dh = decay g; d(xW) = g (1 - a^2)
            dz = g * (1 - a * a)
            return {"W": x.T @ dz}, decay * g, dz @ params["W"].T

        return (h_new, h_new), backward

    def init(k, n_in, dtype):
        return {"W": randn(n_in, units, seed=k[-1]).astype(dtype)}

    return Cell(init, step, lambda batch, dtype: np.zeros((batch, units), dtype), units)


def test_user_defined_cell_runs_through_scan():
    layer = Recurrent(leaky_cell(H), return_sequences=True, stateful=True)
    params, state, x = layer_inputs(layer)
    check_layer_grads(layer, params, x, state)
    y, new_state, _ = layer.apply(params, state, x)
    np.testing.assert_allclose(new_state["carry"], y[:, -1])


def test_tiny_lstm_learns_a_repeating_sequence():
    from purenet.train.step import loss_and_grads
    pattern = np.array([0, 0, 1, 2] * 6)           # after a 0, the next symbol needs memory
    x, y = pattern[None, :-1], pattern[None, 1:]
    model = serial(Embedding(3, 8), LSTM(16, return_sequences=True), Dense(3))
    _, params, state = model.init(key(0), (x.shape[1],))
    m = tree_map(np.zeros_like, params)
    v = tree_map(np.zeros_like, params)
    for t in range(1, 201):                                  # Adam, written out
        loss, grads, _ = loss_and_grads(model, "softmax_cross_entropy", params, state, x, y)
        m = tree_map(lambda a, g: 0.9 * a + 0.1 * g, m, grads)
        v = tree_map(lambda a, g: 0.999 * a + 0.001 * g * g, v, grads)
        params = tree_map(lambda p, a, b: p - 0.05 * (a / (1 - 0.9 ** t))
                          / (np.sqrt(b / (1 - 0.999 ** t)) + 1e-8), params, m, v)
    predicted = model(params, x).argmax(axis=-1)
    assert loss < 0.05
    np.testing.assert_array_equal(predicted[:, 3:], y[:, 3:])


def test_model_with_recurrent_layers_saves_and_loads(tmp_path):
    from purenet.io import load_model, save_model
    model = serial(Embedding(5, F), Bidirectional(LSTM(H, forget_bias=2.0, return_sequences=True)),
                   GRU(H), Dense(2))
    _, params, state = model.init(key(0), (4,))
    save_model(tmp_path / "m.npz", model, params, state, in_shape=(4,))
    loaded, params2, state2, _ = load_model(tmp_path / "m.npz")
    ids = np.arange(8).reshape(2, 4) % 5
    np.testing.assert_allclose(loaded(params2, ids, state2), model(params, ids))


@pytest.mark.parametrize("make", [SimpleRNN, LSTM, GRU], ids=["simple_rnn", "lstm", "gru"])
def test_input_grad_false_skips_dx_only(make):
    layer = Bidirectional(make(H, return_sequences=True))
    params, state, x = layer_inputs(layer)
    dy = randn(2, 4, 2 * H, seed=4)
    dparams, dx = layer.apply(params, state, x)[2](dy)
    dparams2, dx2 = layer.apply(params, state, x, input_grad=False)[2](dy)
    assert dx.shape == x.shape and dx2 is None
    for a, b in zip(tree_leaves(dparams), tree_leaves(dparams2)):
        np.testing.assert_array_equal(a, b)
