"""Recurrent cells, scan, fused kernels and layers: gradients against central differences
(float64), fused kernels against scan over the reference cells (values and engine
gradients), state carrying, PyTorch agreement and tiny learning runs."""
import gc
import warnings

import numpy as np
import pytest

from purenet import grad, value_and_grad, vjp
from purenet.errors import ConfigError, ShapeError
from purenet.layers import Dense, serial
from purenet.layers.embedding import Embedding
from purenet.layers.recurrent import (GRU, LSTM, Bidirectional, Cell, Recurrent, SimpleRNN,
                                      make_gru_cell, make_lstm_cell, make_simple_rnn_cell,
                                      reset_states)
from purenet.ops import reference
from purenet.ops.recurrent import common as fused_common, workspace
from purenet.ops import recurrent as rec
from purenet.ops.activations import sigmoid, tanh
from purenet.random import key
from purenet.testing import check_grads, check_layer_grads, check_model_grads
from purenet.tree import tree_leaves, tree_map

F, H = 3, 4
KINDS = ["gru", "lstm", "rnn"]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
STEPS = {"rnn": reference.rnn_step, "lstm": reference.lstm_step, "gru": reference.gru_step}
PRIMITIVES = {"rnn": rec.rnn_sequence, "lstm": rec.lstm_sequence, "gru": rec.gru_sequence}
CELLS = {"simple_rnn": make_simple_rnn_cell, "lstm": make_lstm_cell, "gru": make_gru_cell}
LAYERS = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}


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


def kernel(kind):
    """The fused primitive as ``(params, carry, xs) -> (ys, carry_T)``, called with flat arrays."""
    def run(p, carry, xs):
        if kind == "lstm":
            ys, h, c = rec.lstm_sequence(xs, carry[0], carry[1], p["W_x"], p["W_h"], p["b"])
            return ys, (h, c)
        if kind == "gru":
            return rec.gru_sequence(xs, carry, p["W_x"], p["W_h"], p["b"], p["b_h"])
        return rec.rnn_sequence(xs, carry, p["W_x"], p["W_h"], p["b"])
    return run


def scanned(kind):
    """``scan`` over the reference cell: the definition the kernel must reproduce."""
    return lambda p, carry, xs: rec.scan(STEPS[kind], p, carry, xs)


def assert_trees_close(a, b, rtol=1e-10, atol=1e-12):
    leaves_a, leaves_b = tree_leaves(a), tree_leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


# --- one step: the reference cells ----------------------------------------------

@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_reference_step_gradients(kind, batch):
    # every input of one step: params, carry (h, or (h, c)) and x_t
    x, p, c = randn(batch, F), cell_params(kind), carry0(kind, batch)
    check_grads(lambda params, carry, x_t: STEPS[kind](params, carry, x_t), p, c, x)


@pytest.mark.parametrize("runner", ["reference step", "kernel"])
def test_gru_update_gate_gets_its_own_gradient(runner):
    # the update gate's weights must see a gradient, and h' must depend on h directly
    p, x, h = cell_params("gru"), randn(2, F), randn(2, H, seed=1)
    if runner == "kernel":
        fn = lambda p, h, x: kernel("gru")(p, h, x[:, None])[1]  # noqa: E731
    else:
        fn = lambda p, h, x: reference.gru_step(p, h, x)[1]  # noqa: E731
    _, back = vjp(fn, p, h, x)
    dp, dh, _ = back(np.ones((2, H)))
    assert np.abs(dp["W_x"][:, H:2 * H]).sum() > 0 and np.abs(dp["W_h"][:, H:2 * H]).sum() > 0
    assert np.abs(dh).sum() > 0


# --- whole sequences ------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("runner", ["kernel", "scan"])
def test_sequence_gradients_with_initial_state(kind, runner):
    run = kernel(kind) if runner == "kernel" else scanned(kind)
    xs = randn(2, 4, F, seed=9)
    check_grads(run, cell_params(kind), carry0(kind, 2), xs)


@pytest.mark.parametrize("kind", KINDS)
def test_kernel_primitive_gradients_flat_arguments(kind):
    # the primitive itself, every positional argument (xs, h0[, c0], weights, biases)
    p, c, xs = cell_params(kind), carry0(kind, 2), randn(2, 3, F, seed=9)
    check_grads(PRIMITIVES[kind], xs, *tree_leaves(c), *p.values())


@pytest.mark.parametrize("kind", KINDS)
def test_kernel_gradient_of_each_argument_alone(kind):
    # with only argument i traced, the backward sees needed = (False, .., True, .., False)
    # and must still give that argument's full gradient
    p, c, xs = cell_params(kind), carry0(kind, 2), randn(2, 3, F, seed=9)
    args = (xs, *tree_leaves(c), *p.values())
    out, back = vjp(PRIMITIVES[kind], *args)
    u = tuple(randn(*o.shape, seed=k) for k, o in enumerate(out))
    full = back(u)
    for i in range(len(args)):
        def alone(a, i=i):
            return PRIMITIVES[kind](*args[:i], a, *args[i + 1:])
        np.testing.assert_allclose(vjp(alone, args[i])[1](u)[0], full[i], rtol=1e-12, atol=0)


def cotangent_choices(kind, ys, carry):
    """Output gradients for: ys only, the final carry only, both, and (LSTM) c_T alone."""
    dys = randn(*ys.shape, seed=3)
    none_carry = tree_map(lambda a: None, carry)
    choices = [(dys, none_carry), (None, tree_map(np.ones_like, carry)),
               (dys, tree_map(lambda a: randn(*a.shape, seed=4), carry))]
    if kind == "lstm":
        choices.append((None, (None, randn(*carry[1].shape, seed=6))))
    return choices


@pytest.mark.parametrize("kind", KINDS)
def test_kernel_matches_scan(kind):
    p, c, xs = cell_params(kind), carry0(kind, 3), randn(3, 5, F, seed=9)
    (ys1, c1), back1 = vjp(scanned(kind), p, c, xs)
    (ys2, c2), back2 = vjp(kernel(kind), p, c, xs)
    np.testing.assert_allclose(ys2, ys1, rtol=1e-12, atol=1e-12)
    assert_trees_close(c2, c1, rtol=1e-12, atol=1e-12)
    for grads in cotangent_choices(kind, ys1, c1):
        # gradients for params, the initial carry (h0, c0) and xs all agree
        assert_trees_close(back2(grads), back1(grads))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk_bytes", [1, 3 * (4 * 3 * H * 8)])   # 1 step; 3 (LSTM), 4 (GRU)
def test_backward_in_chunks_of_steps_matches_scan(kind, chunk_bytes, monkeypatch):
    """The backward's step factors computed a step at a time, or a few steps at a time over
    5 steps (a short last chunk), give the scan's gradients."""
    from purenet.ops.recurrent import common
    monkeypatch.setattr(common, "FACTOR_CHUNK_BYTES", chunk_bytes)
    p, c, xs = cell_params(kind), carry0(kind, 3), randn(3, 5, F, seed=9)
    (ys1, c1), back1 = vjp(scanned(kind), p, c, xs)
    _, back2 = vjp(kernel(kind), p, c, xs)
    for grads in cotangent_choices(kind, ys1, c1):
        assert_trees_close(back2(grads), back1(grads))


@pytest.mark.parametrize("kind", KINDS)
def test_kernel_matches_scan_under_grad(kind):
    # the same through purenet.grad (a scalar loss, the tape consumed as it runs)
    p, c, xs = cell_params(kind), carry0(kind, 2), randn(2, 4, F, seed=9)
    w = randn(2, 4, H, seed=2)

    def loss(run):
        def f(params, carry, inputs):
            ys, carry_T = run(params, carry, inputs)
            h_T = carry_T[0] if kind == "lstm" else carry_T
            return (ys * w).sum() + (h_T * h_T).sum()
        return f

    v1, g1 = value_and_grad(loss(scanned(kind)), argnums=(0, 1, 2))(p, c, xs)
    v2, g2 = value_and_grad(loss(kernel(kind)), argnums=(0, 1, 2))(p, c, xs)
    np.testing.assert_allclose(v2, v1, rtol=1e-12)
    assert_trees_close(g2, g1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_saturated_gates_match_scan_without_warnings(kind, dtype):
    # pre-activations of +-1e4: exp overflows to inf inside the kernels, which must
    # give exactly the saturated activations (0, 1, -1), finite, and no warning
    p = tree_map(lambda a: (a * 1e3).astype(dtype), cell_params(kind))
    c = tree_map(lambda a: a.astype(dtype), carry0(kind, 3))
    xs = (randn(3, 5, F, seed=4) * 10).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ys, c_T = kernel(kind)(p, c, xs)
    ref, ref_T = scanned(kind)(p, c, xs)
    assert np.isfinite(ys).all() and np.abs(ys).max() > 0.95
    np.testing.assert_allclose(ys, ref, rtol=1e-5, atol=1e-6)
    assert_trees_close(c_T, ref_T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [100, fused_common.EXP_TANH_MIN_SIZE])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_into_matches_numpy_on_both_routes(size, dtype):
    # below EXP_TANH_MIN_SIZE elements NumPy's tanh, from it on 2 / (1 + exp(-2x)) - 1
    x = np.concatenate([[-1e4, -30, -1e-6, 0, 1e-6, 30, 1e4],
                        3 * randn(size - 7, seed=3)]).astype(dtype)
    out = np.empty_like(x)
    with warnings.catch_warnings(), np.errstate(over="ignore"):
        warnings.simplefilter("error")
        fused_common.tanh_into(x, out)
    np.testing.assert_allclose(out, np.tanh(x), rtol=0, atol=4 * np.finfo(dtype).eps)
    assert out[0] == -1 and out[6] == 1 and out[3] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_kernels_stay_float32(kind):
    p = tree_map(lambda a: a.astype(np.float32), cell_params(kind))
    c = tree_map(lambda a: a.astype(np.float32), carry0(kind, 2))
    xs = randn(2, 3, F).astype(np.float32)
    (ys, c_T), back = vjp(kernel(kind), p, c, xs)
    grads = back((np.ones_like(ys), tree_map(np.ones_like, c_T)))
    assert {a.dtype for a in tree_leaves([ys, c_T, grads])} == {np.dtype(np.float32)}
    ref = kernel(kind)(cell_params(kind), carry0(kind, 2), randn(2, 3, F))[0]
    np.testing.assert_allclose(ys, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_live_backward_keeps_its_buffers(kind):
    # buffers are recycled only once a backward is unreachable: a second forward pass
    # (and a third, after the second's backward is dropped) must not disturb the first
    p, c = cell_params(kind), carry0(kind, 2)
    xs1, xs2 = randn(2, 4, F, seed=1), randn(2, 4, F, seed=2)
    dys = randn(2, 4, H, seed=3)
    none_carry = tree_map(lambda a: None, c)
    expected = tree_leaves(vjp(kernel(kind), p, c, xs1)[1]((dys, none_carry)))
    _, back1 = vjp(kernel(kind), p, c, xs1)
    for _ in range(2):
        _, back2 = vjp(kernel(kind), p, c, xs2)
        back2((dys, none_carry))
        del back2
        gc.collect()                          # the dropped pullback's buffers are free now
        kernel(kind)(p, c, xs2)               # an inference pass takes and returns them too
    for a, b in zip(tree_leaves(back1((dys, none_carry))), expected):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(tree_leaves(back1((dys, none_carry))), expected):     # twice: still intact
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_workspace_returns_to_the_pool(kind, monkeypatch):
    # inference gives its buffers back at once; so does grad once the backward has run
    # (no cycle collection needed), so the next call reuses the same workspace
    taken = []
    original = workspace.take

    def recording(*args):
        key_, ws = original(*args)
        taken.append(ws)
        return key_, ws

    monkeypatch.setattr(workspace, "take", recording)
    p, c, xs = cell_params(kind), carry0(kind, 3), randn(3, 6, F, seed=11)
    gc.disable()
    try:
        kernel(kind)(p, c, xs)
        kernel(kind)(p, c, xs)
        grad(lambda q: kernel(kind)(q, c, xs)[0].sum())(p)
        grad(lambda q: kernel(kind)(q, c, xs)[0].sum())(p)
    finally:
        gc.enable()
    assert len(taken) == 4 and all(ws is taken[0] for ws in taken)


def test_sequence_shape_errors():
    p = cell_params("lstm")
    with pytest.raises(ShapeError, match="features|time"):
        kernel("lstm")(p, carry0("lstm", 2), randn(2, 4, F + 1))
    with pytest.raises(ShapeError, match="initial state"):
        kernel("lstm")(p, carry0("lstm", 3), randn(2, 4, F))
    with pytest.raises(ShapeError, match=r"W_h must have shape \(units, 4 \* units\)"):
        rec.lstm_sequence(randn(2, 4, F), *carry0("lstm", 2), p["W_x"], p["W_h"][:, :H], p["b"])
    with pytest.raises(ShapeError, match=r"b_h must have shape \(12,\)"):
        q = cell_params("gru")
        rec.gru_sequence(randn(2, 4, F), carry0("gru", 2), q["W_x"], q["W_h"], q["b"], q["b"][:H])
    with pytest.raises(ShapeError, match="time step"):
        rec.scan(reference.rnn_step, cell_params("rnn"), randn(2, H), np.zeros((2, 0, F)))
    with pytest.raises(ShapeError, match="time step"):
        rec.scan(reference.rnn_step, cell_params("rnn"), randn(2, H), randn(F))


@pytest.mark.parametrize("kind", KINDS)
def test_agrees_with_pytorch(kind):
    torch = pytest.importorskip("torch")
    p, c, xs = cell_params(kind), carry0(kind, 2), randn(2, 5, F, seed=4)
    net = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    net = net(F, H, batch_first=True).double()
    with torch.no_grad():
        net.weight_ih_l0.copy_(torch.from_numpy(p["W_x"].T))
        net.weight_hh_l0.copy_(torch.from_numpy(p["W_h"].T))
        net.bias_ih_l0.copy_(torch.from_numpy(p["b"]))
        net.bias_hh_l0.copy_(torch.from_numpy(p.get("b_h", np.zeros_like(p["b"]))))
    xt = torch.from_numpy(xs).requires_grad_()
    state = (tuple(torch.from_numpy(a)[None].requires_grad_() for a in c) if kind == "lstm"
             else torch.from_numpy(c)[None].requires_grad_())
    ys_ref, _ = net(xt, state)
    w = randn(*ys_ref.shape, seed=8)
    (ys_ref * torch.from_numpy(w)).sum().backward()
    ys = kernel(kind)(p, c, xs)[0]
    np.testing.assert_allclose(ys, ys_ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    dp, dc, dxs = grad(lambda *a: (kernel(kind)(*a)[0] * w).sum(), argnums=(0, 1, 2))(p, c, xs)
    np.testing.assert_allclose(dxs, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dp["W_x"], net.weight_ih_l0.grad.numpy().T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dp["W_h"], net.weight_hh_l0.grad.numpy().T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dp["b"], net.bias_ih_l0.grad.numpy(), rtol=1e-9, atol=1e-12)
    torch_h0 = state[0] if kind == "lstm" else state
    dh0 = dc[0] if kind == "lstm" else dc
    np.testing.assert_allclose(dh0, torch_h0.grad.numpy()[0], rtol=1e-9, atol=1e-12)


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


# --- fused layers against the same layers run by scan over the reference cells ------

def scan_layer(kind, name, **options):
    """The built-in cell of ``kind`` without its fused kernel nor readout: plain ``scan``."""
    cell_options = {k: options.pop(k) for k in ("forget_bias",) if k in options}
    cell = CELLS[kind](H, **cell_options)._replace(sequence=None, readout=None)
    return Recurrent(cell, name=name, **options)


def fused_layer(kind, name, **options):
    return LAYERS[kind](H, name=name, **options)


def both_ways(build):
    """``build(make)`` with the fused layers and with their scan twins."""
    return build(fused_layer), build(scan_layer)


def compare_models(fused, scanned_model, x, state=None, in_shape=None, steps=4):
    """Same params, same outputs, same gradients for params and (float) inputs."""
    in_shape = in_shape or (steps, F)
    _, params, state0 = fused.init(key(0), in_shape, np.float64)
    _, params2, _ = scanned_model.init(key(0), in_shape, np.float64)
    assert_trees_close(params2, params, rtol=0, atol=0)
    state = state0 if state is None else state
    outs = []
    for model in (fused, scanned_model):
        def f(p, inputs, model=model):
            return model.apply(p, state, inputs)[0]
        if np.asarray(x).dtype.kind == "f":
            y, back = vjp(f, params, x)
        else:                                           # integer ids: params only
            y, back = vjp(lambda p: f(p, x), params)
        outs.append((y, back(randn(*y.shape, seed=12)), model.apply(params, state, x)[1]))
    (y1, g1, s1), (y2, g2, s2) = outs
    np.testing.assert_allclose(y1, y2, rtol=1e-12, atol=1e-12)
    assert_trees_close(g1, g2)
    assert_trees_close(s1, s2, rtol=1e-12, atol=1e-12)
    return params


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("return_sequences", [True, False])
def test_fused_layer_matches_scan(kind, return_sequences):
    fused, scanned_layer = both_ways(lambda make: make(kind, "r",
                                                      return_sequences=return_sequences))
    compare_models(fused, scanned_layer, randn(3, 4, F, seed=2))


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("return_sequences", [True, False])
def test_fused_bidirectional_matches_scan(kind, return_sequences):
    fused, scanned_layer = both_ways(lambda make: Bidirectional(
        make(kind, "r", return_sequences=return_sequences), name="bi"))
    compare_models(fused, scanned_layer, randn(2, 5, F, seed=3), steps=5)


def test_fused_stack_matches_scan():
    fused, scanned_model = both_ways(lambda make: serial(
        make("lstm", "a", return_sequences=True, forget_bias=2.0),
        Bidirectional(make("gru", "b", return_sequences=True), name="c"),
        make("simple_rnn", "d"), Dense(2)))
    compare_models(fused, scanned_model, randn(2, 4, F, seed=4))
    # and from data that needs no gradient (an embedding's ids), params only
    fused_ids, scanned_ids = (serial(Embedding(5, F), m) for m in (fused, scanned_model))
    compare_models(fused_ids, scanned_ids, np.arange(8).reshape(2, 4) % 5, in_shape=(4,))


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_fused_stateful_matches_scan(kind):
    fused, scanned_layer = both_ways(lambda make: make(kind, "r", return_sequences=True,
                                                       stateful=True))
    x = randn(2, 6, F, seed=5)
    params = fused.init(key(0), (3, F), np.float64)[1]
    _, s_fused = fused.apply(params, {}, x[:, :3])
    _, s_scan = scanned_layer.apply(params, {}, x[:, :3])
    assert_trees_close(s_fused, s_scan, rtol=1e-12, atol=1e-12)
    # the second half from the stored carry: values, gradients and the next state agree
    compare_models(fused, scanned_layer, x[:, 3:], state=s_fused, steps=3)


def test_return_sequences_false_builds_no_gradient_for_ys(monkeypatch):
    # the last output comes from the kernel's h_T, so its backward gets dys = None
    seen = []
    original = rec.lstm_sequence

    def spying(*args):
        out, backward = original.fn(*args)

        def spy(g, needed):
            seen.append(g)
            return backward(g, needed)
        return out, spy

    monkeypatch.setattr(rec, "lstm_sequence", type(original)(spying, "lstm_sequence"))
    layer = LSTM(H)
    params, state, x = layer_inputs(layer)
    grad(lambda p: layer.apply(p, state, x)[0].sum())(params)
    (dys, dh_T, dc_T), = seen
    assert dys is None and dc_T is None and dh_T.shape == (2, H)


# --- state ------------------------------------------------------------------------

def test_given_initial_state_is_used():
    layer = LSTM(H, return_sequences=True)
    params, _, x = layer_inputs(layer)
    c = carry0("lstm", 2)
    y = layer.apply(params, {"carry": c}, x)[0]
    np.testing.assert_allclose(y, kernel("lstm")(params, c, x)[0])
    assert not np.allclose(y, layer(params, x))
    # the given carry is differentiable like any input
    dc = grad(lambda s: layer.apply(params, s, x)[0].sum())({"carry": c})["carry"]
    expected = grad(lambda cc: kernel("lstm")(params, cc, x)[0].sum())(c)
    assert_trees_close(dc, expected)


@pytest.mark.parametrize("make", [SimpleRNN, LSTM, GRU], ids=["simple_rnn", "lstm", "gru"])
def test_stateful_halves_equal_the_whole(make):
    whole = make(H, return_sequences=True)
    halves = make(H, return_sequences=True, stateful=True)
    params, state, x = layer_inputs(whole, steps=6)
    y_whole = whole(params, x)
    y1, state = halves.apply(params, state, x[:, :3])
    y2, state = halves.apply(params, state, x[:, 3:])
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y_whole, rtol=1e-12)
    # truncated BPTT: the carry is stored as plain arrays, so the second half's
    # gradients do not reach back into the first

    def second_half(p, inputs):
        y, new_state = halves.apply(p, state, inputs)
        assert all(type(a) is np.ndarray for a in tree_leaves(new_state["carry"]))
        return y
    _, back = vjp(second_half, params, x[:, 3:])
    dparams, dx = back(np.ones_like(y2))
    assert dx.shape == (2, 3, F)
    assert tree_map(np.shape, dparams) == tree_map(np.shape, params)
    fresh = reset_states(state)
    assert "carry" not in fresh and "carry" in state
    np.testing.assert_allclose(halves.apply(params, fresh, x[:, :3])[0], y1)


def test_stateful_needs_a_constant_batch_size():
    layer = LSTM(H, stateful=True)
    params, state, x = layer_inputs(layer)
    _, state = layer.apply(params, state, x)
    with pytest.raises(ShapeError, match="reset_states"):
        layer.apply(params, state, x[:1])
    layer.apply(params, reset_states(state), x[:1])


def test_stateful_carry_inside_serial_resets():
    model = serial(GRU(H, return_sequences=True, stateful=True), GRU(H, stateful=True))
    _, params, state = model.init(key(0), (3, F), np.float64)
    _, state = model.apply(params, state, randn(2, 3, F))
    assert all("carry" in s for s in state.values())
    assert reset_states(state) == {"gru_0": {}, "gru_1": {}}


# --- initialisation and errors -------------------------------------------------------

def test_lstm_init():
    layer = LSTM(H, forget_bias=1.0)
    out_shape, params, state = layer.init(key(0), (None, F))
    assert out_shape == (H,) and state == {}
    assert params["W_x"].dtype == np.float32 and params["W_h"].shape == (H, 4 * H)
    np.testing.assert_array_equal(params["b"], np.r_[np.zeros(H), np.ones(H), np.zeros(2 * H)])
    block = params["W_h"][:, 2 * H:3 * H]                    # each gate block is orthogonal
    np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-5)


def recording_init(value, calls):
    """A bias initialiser filling ``value`` and recording the fan_in it was given."""
    def init(key, shape, dtype, fan_in=None):
        calls.append(fan_in)
        return np.full(shape, value, dtype)
    return init


def test_bias_initialisers_are_honoured():
    calls = []
    _, p, _ = LSTM(H, b_init=recording_init(0.25, calls)).init(key(0), (None, F))
    np.testing.assert_array_equal(p["b"], np.r_[np.full(H, 0.25), np.ones(H), np.full(2 * H, 0.25)])
    _, p, _ = LSTM(H, forget_bias=None, b_init=recording_init(0.5, calls)).init(key(0), (None, F))
    np.testing.assert_array_equal(p["b"], np.full(4 * H, 0.5))
    _, p, _ = GRU(H, b_init=recording_init(0.5, calls),
                  b_h_init=recording_init(-0.5, calls)).init(key(0), (None, F))
    np.testing.assert_array_equal(p["b"], np.full(3 * H, 0.5))
    np.testing.assert_array_equal(p["b_h"], np.full(3 * H, -0.5))
    _, p, _ = SimpleRNN(H, b_init="ones").init(key(0), (None, F))
    np.testing.assert_array_equal(p["b"], np.ones(H))
    assert calls == [H] * 4                          # fan_in=units, whatever the features
    # "torch" is PyTorch's U(±1/sqrt(units)), independent draws for b and b_h
    units = 64
    _, p, _ = GRU(units, b_init="torch", b_h_init="torch").init(key(0), (None, 2), np.float64)
    for b in (p["b"], p["b_h"]):
        assert np.abs(b).max() <= 1 / np.sqrt(units) and np.abs(b).max() > 0.9 / np.sqrt(units)
    assert not np.allclose(p["b"], p["b_h"])
    # a user initialiser without fan_in is adapted; the weights do not depend on b_init
    _, q, _ = GRU(units, b_init=lambda k, shape, dtype: np.ones(shape, dtype)).init(
        key(0), (None, 2), np.float64)
    np.testing.assert_array_equal(q["b"], 1.0)
    np.testing.assert_array_equal(q["W_x"], p["W_x"])


def test_layer_errors():
    with pytest.raises(ConfigError):
        LSTM(0)
    with pytest.raises(ConfigError, match="stateful"):
        Bidirectional(LSTM(H, stateful=True))
    with pytest.raises(ConfigError, match="Cell"):
        Recurrent(lambda *a: None)
    layer = GRU(H)
    params, state, x = layer_inputs(layer)
    with pytest.raises(ShapeError, match=r"\(batch, time"):
        layer.apply(params, state, x[:, 0])
    with pytest.raises(ShapeError, match=str(F)):
        layer.apply(params, state, x[..., :2])
    with pytest.raises(ShapeError):
        layer.init(key(0), (F,))


# --- user-defined cells ------------------------------------------------------------

def leaky_cell(units, decay=0.5):
    """A user-defined cell: h' = decay h + tanh(x W), plain primitives, no backward."""
    def step(params, h, x):
        h_new = decay * h + tanh(x @ params["W"])
        return h_new, h_new

    def init(k, n_in, dtype):
        return {"W": randn(n_in, units, seed=k[-1]).astype(dtype)}

    return Cell(init, step, lambda batch, dtype: np.zeros((batch, units), dtype), units)


def test_user_defined_cell_runs_through_scan():
    layer = Recurrent(leaky_cell(H), return_sequences=True, stateful=True)
    params, state, x = layer_inputs(layer)
    check_layer_grads(layer, params, x, state)
    y, new_state = layer.apply(params, state, x)
    np.testing.assert_allclose(new_state["carry"], y[:, -1])
    # by hand: h_t = 0.5 h_{t-1} + tanh(x_t W)
    h = np.zeros((2, H))
    for t in range(x.shape[1]):
        h = 0.5 * h + np.tanh(x[:, t] @ params["W"])
    np.testing.assert_allclose(y[:, -1], h, rtol=1e-12)


def gated_cell(units):
    """A user-defined gated cell: a learned per-unit leak, written as plain primitives."""
    def step(params, h, x):
        keep = sigmoid(params["a"])
        h_new = keep * h + (1 - keep) * tanh(x @ params["W"] + params["b"])
        return h_new, h_new

    def init(k, n_in, dtype):
        return {"W": (0.3 * randn(n_in, units, seed=k[-1])).astype(dtype),
                "b": np.zeros(units, dtype), "a": np.zeros(units, dtype)}

    return Cell(init, step, lambda batch, dtype: np.zeros((batch, units), dtype), units)


def test_user_defined_cell_trains_without_a_backward():
    from purenet.train.step import loss_and_grads
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6, 2))
    y = x[:, :, :1].mean(axis=1) - 0.5 * x[:, -1, 1:]          # needs memory of the sequence
    model = serial(Recurrent(gated_cell(8)), Dense(1))
    _, params, state = model.init(key(0), (6, 2), np.float64)
    losses = []
    m = tree_map(np.zeros_like, params)
    v = tree_map(np.zeros_like, params)
    for t in range(1, 151):                                  # Adam, written out
        loss, grads, _ = loss_and_grads(model, "mse", params, state, x, y)
        losses.append(loss)
        m = tree_map(lambda a, g: 0.9 * a + 0.1 * g, m, grads)
        v = tree_map(lambda a, g: 0.999 * a + 0.001 * g * g, v, grads)
        params = tree_map(lambda p, a, b: p - 0.03 * (a / (1 - 0.9 ** t))
                          / (np.sqrt(b / (1 - 0.999 ** t)) + 1e-8), params, m, v)
    assert losses[-1] < 0.1 * losses[0]
    assert all(np.abs(g).sum() > 0 for g in tree_leaves(grads))   # every param learns


# --- learning and saving -----------------------------------------------------------

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
    model = serial(Embedding(5, F), Bidirectional(LSTM(H, forget_bias=2.0, return_sequences=True,
                                                       b_init="torch")),
                   GRU(H, b_h_init="ones"), Dense(2))
    _, params, state = model.init(key(0), (4,))
    save_model(tmp_path / "m.npz", model, params, state, in_shape=(4,))
    loaded, params2, state2, _ = load_model(tmp_path / "m.npz")
    ids = np.arange(8).reshape(2, 4) % 5
    np.testing.assert_allclose(loaded(params2, ids, state2), model(params, ids))


# --- the input gradient of a first layer is skipped ----------------------------------

@pytest.fixture
def count_input_grads(monkeypatch):
    """Count the fused kernels' ``dxs`` matmuls."""
    calls = []
    original = fused_common.input_gradient

    def counting(ws, W_x, dz):
        calls.append(dz.shape)
        return original(ws, W_x, dz)

    monkeypatch.setattr(fused_common, "input_gradient", counting)
    return calls


@pytest.mark.parametrize("make", [SimpleRNN, LSTM, GRU], ids=["simple_rnn", "lstm", "gru"])
def test_data_input_skips_dx_only(make, count_input_grads):
    layer = Bidirectional(make(H, return_sequences=True))
    params, state, x = layer_inputs(layer)
    dy = randn(2, 4, 2 * H, seed=4)

    def out(p, inputs):
        return layer.apply(p, state, inputs)[0]

    # x traced: both directions compute dxs
    dparams, dx = vjp(out, params, x)[1](dy)
    assert dx.shape == x.shape and len(count_input_grads) == 2
    # x is data: neither does, and the params' gradients are exactly the same
    dparams2, = vjp(lambda p: out(p, x), params)[1](dy)
    assert len(count_input_grads) == 2
    for a, b in zip(tree_leaves(dparams), tree_leaves(dparams2)):
        np.testing.assert_array_equal(a, b)


def test_first_recurrent_layer_skips_its_input_gradient(count_input_grads):
    from purenet.train.step import loss_and_grads
    model = serial(LSTM(H, return_sequences=True), GRU(H, return_sequences=True),
                   SimpleRNN(H), Dense(2))
    _, params, state = model.init(key(0), (5, F), np.float64)
    x, y = randn(3, 5, F, seed=1), randn(3, 2, seed=2)
    _, grads, _ = loss_and_grads(model, "mse", params, state, x, y)
    assert len(count_input_grads) == 2            # the GRU's and the RNN's, not the LSTM's
    assert all(np.abs(g).sum() > 0 for g in tree_leaves(grads))
    # the same from an embedding: its output is traced, so the LSTM computes dxs too
    count_input_grads.clear()
    model = serial(Embedding(5, F), LSTM(H), Dense(2))
    _, params, state = model.init(key(0), (5,), np.float64)
    loss_and_grads(model, "mse", params, state, np.arange(15).reshape(3, 5) % 5, y)
    assert len(count_input_grads) == 1


@pytest.mark.parametrize("cell", [SimpleRNN, LSTM, GRU])
def test_a_batch_of_one_never_aliases_the_kernels_workspace(cell):
    # for a batch of one the kernels' time-major buffers transpose into contiguous views;
    # outputs and input gradients handed out must still be copies, or the next call of
    # the same shape (the backward direction, the next layer) overwrites them
    model = serial(Bidirectional(cell(3, return_sequences=True)), cell(3, return_sequences=True),
                   Dense(2))
    _, params, state = model.init(key(0), (5, 2), np.float64)
    x = np.random.default_rng(1).standard_normal((1, 5, 2))
    twice = np.concatenate([x, x])
    np.testing.assert_allclose(model(params, x, state), model(params, twice, state)[:1],
                               rtol=1e-12, atol=1e-12)
    check_layer_grads(model, params, x, state)
