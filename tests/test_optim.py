"""Optimizers: hand-computed updates, convergence on test functions, state, schedules."""
import doctest
import math

import numpy as np
import pytest

import purenet.optim
from purenet import optim
from purenet.errors import ConfigError
from purenet.optim import apply_updates, schedules
from purenet.tree import tree_flatten_with_paths, tree_leaves, tree_map, tree_unflatten_like

rng = np.random.default_rng(0)


def make_tree(fill):
    """A small nested tree: a dict in a dict, and a list."""
    return {"dense": {"W": fill((2, 3)), "b": fill((3,))}, "out": [fill((2,))]}


PARAMS = make_tree(rng.standard_normal)
GRADS = [make_tree(rng.standard_normal) for _ in range(3)]


def run(opt, params, grads_seq):
    state = opt.init(params)
    for grads in grads_seq:
        updates, state = opt.update(grads, state, params)
        params = apply_updates(params, updates)
    return params, state


# Reference updates for one leaf, written straight from each optimizer's equations.

def ref_sgd(p, gs, lr, wd=0.0):
    for g in gs:
        p = p - lr * (g + wd * p)
    return p


def ref_momentum(p, gs, lr, mu, wd=0.0):
    velocity = 0.0  # the book's form: the learning rate inside the velocity
    for g in gs:
        velocity = mu * velocity + lr * (g + wd * p)
        p = p - velocity
    return p


def ref_nesterov(p, gs, lr, mu, wd=0.0):
    v = 0.0
    for g in gs:
        g = g + wd * p
        v = mu * v + g
        p = p - lr * (g + mu * v)
    return p


def ref_adagrad(p, gs, lr, eps=1e-7, wd=0.0):
    s = 0.0
    for g in gs:
        g = g + wd * p
        s = s + g ** 2
        p = p - lr * g / (np.sqrt(s) + eps)
    return p


def ref_rmsprop(p, gs, lr, decay=0.9, eps=1e-7, mu=0.0, wd=0.0):
    n, v = 0.0, 0.0
    for g in gs:
        g = g + wd * p
        n = decay * n + (1 - decay) * g ** 2
        v = mu * v + g / (np.sqrt(n) + eps)
        p = p - lr * v
    return p


def ref_adam(p, gs, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled_wd=0.0):
    m, v = 0.0, 0.0
    for t, g in enumerate(gs, start=1):
        g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        step = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        p = p - lr * (step + decoupled_wd * p)
    return p


HAND_CASES = {
    "sgd": (optim.sgd(0.1), lambda p, gs: ref_sgd(p, gs, 0.1)),
    "sgd-wd": (optim.sgd(0.1, weight_decay=0.05), lambda p, gs: ref_sgd(p, gs, 0.1, wd=0.05)),
    "momentum": (optim.get("momentum", learning_rate=0.1), lambda p, gs: ref_momentum(p, gs, 0.1, 0.9)),
    "momentum-wd": (optim.sgd(0.1, momentum=0.8, weight_decay=0.05),
                    lambda p, gs: ref_momentum(p, gs, 0.1, 0.8, wd=0.05)),
    "nesterov": (optim.get("nesterov", learning_rate=0.1), lambda p, gs: ref_nesterov(p, gs, 0.1, 0.9)),
    "nesterov-wd": (optim.sgd(0.1, momentum=0.7, nesterov=True, weight_decay=0.05),
                    lambda p, gs: ref_nesterov(p, gs, 0.1, 0.7, wd=0.05)),
    "adagrad": (optim.adagrad(0.1), lambda p, gs: ref_adagrad(p, gs, 0.1)),
    "adagrad-wd": (optim.adagrad(0.1, eps=1e-3, weight_decay=0.05),
                   lambda p, gs: ref_adagrad(p, gs, 0.1, eps=1e-3, wd=0.05)),
    "rmsprop": (optim.rmsprop(0.1), lambda p, gs: ref_rmsprop(p, gs, 0.1)),
    "rmsprop-momentum-wd": (optim.rmsprop(0.1, decay=0.8, eps=1e-3, momentum=0.5, weight_decay=0.05),
                            lambda p, gs: ref_rmsprop(p, gs, 0.1, 0.8, 1e-3, mu=0.5, wd=0.05)),
    "adam": (optim.adam(0.1), lambda p, gs: ref_adam(p, gs, 0.1)),
    "adam-wd": (optim.adam(0.1, b1=0.8, b2=0.9, eps=1e-3, weight_decay=0.05),
                lambda p, gs: ref_adam(p, gs, 0.1, 0.8, 0.9, 1e-3, wd=0.05)),
    "adamw": (optim.adamw(0.1), lambda p, gs: ref_adam(p, gs, 0.1, decoupled_wd=1e-2)),
    "adamw-wd": (optim.adamw(0.1, b1=0.8, b2=0.9, eps=1e-3, weight_decay=0.2),
                 lambda p, gs: ref_adam(p, gs, 0.1, 0.8, 0.9, 1e-3, decoupled_wd=0.2)),
}


@pytest.mark.parametrize("steps", [1, 2, 3])
@pytest.mark.parametrize("case", sorted(HAND_CASES))
def test_updates_match_the_equations_leaf_by_leaf(case, steps):
    opt, reference = HAND_CASES[case]
    got, _ = run(opt, PARAMS, GRADS[:steps])
    for (path, leaf), p0, *gs in zip(tree_flatten_with_paths(got), tree_leaves(PARAMS),
                                     *(tree_leaves(g) for g in GRADS[:steps])):
        np.testing.assert_allclose(leaf, reference(p0, gs), rtol=1e-12, atol=1e-14, err_msg=path)


# One step from p = 2, g = 0.5 with lr = 0.1, worked out on paper.
@pytest.mark.parametrize("opt, expected", [
    (optim.sgd(0.1), 1.95),                                     # 2 - 0.1 * 0.5
    (optim.sgd(0.1, weight_decay=0.1), 1.93),                   # 2 - 0.1 * (0.5 + 0.1 * 2)
    (optim.get("nesterov", learning_rate=0.1), 1.905),          # 2 - 0.1 * (0.5 + 0.9 * 0.5)
    (optim.adagrad(0.1, eps=0.0), 1.9),                         # 2 - 0.1 * 0.5 / 0.5
    (optim.rmsprop(0.1, eps=0.0), 2 - 0.1 / math.sqrt(0.1)),    # 0.5 / sqrt(0.1 * 0.25)
    (optim.adam(0.1, eps=0.0), 1.9),                            # bias-corrected m / sqrt(v) = 1
    (optim.adam(0.1, eps=0.0, weight_decay=0.1), 1.9),          # L2 goes through the scaling
    (optim.adamw(0.1, eps=0.0, weight_decay=0.1), 1.88),        # 2 - 0.1 * (1 + 0.1 * 2)
], ids=["sgd", "sgd-wd", "nesterov", "adagrad", "rmsprop", "adam", "adam-l2", "adamw"])
def test_one_step_worked_by_hand(opt, expected):
    params, _ = run(opt, {"w": np.array([2.0])}, [{"w": np.array([0.5])}])
    assert params["w"][0] == pytest.approx(expected, rel=1e-12)


def test_momentum_second_step_worked_by_hand():
    params, state = run(optim.get("momentum", learning_rate=0.1), {"w": np.array([2.0])},
                        [{"w": np.array([0.5])}] * 2)
    assert params["w"][0] == pytest.approx(2 - 0.1 * 0.5 - 0.1 * (0.9 * 0.5 + 0.5))
    assert state[0]["velocity"]["w"][0] == pytest.approx(0.95)


# Convergence: every optimizer on every target function.

def split(x):
    return {"a": {"x": x[:1].copy()}, "b": [x[1:].copy()]}


def join(tree):
    return np.concatenate(tree_leaves(tree))


_c, _s = math.cos(0.5), math.sin(0.5)
_ROT = np.array([[_c, -_s], [_s, _c]])
_ILL = _ROT @ np.diag([1.0, 30.0]) @ _ROT.T


def rosenbrock_grad(x, b=10.0):
    r = x[1] - x[0] ** 2
    return np.array([-2 * (1 - x[0]) - 4 * b * x[0] * r, 2 * b * r])


TARGETS = {  # gradient, start, minimum
    "quadratic": (lambda x: np.array([1.0, 2.0]) * x, np.array([1.5, -2.0]), np.zeros(2)),
    "rotated-ill-conditioned": (lambda x: _ILL @ x, np.array([1.5, -2.0]), np.zeros(2)),
    "rosenbrock": (rosenbrock_grad, np.array([-0.5, 1.0]), np.ones(2)),
}

OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.02),
    "momentum": lambda: optim.get("momentum", learning_rate=0.005),
    "nesterov": lambda: optim.get("nesterov", learning_rate=0.005),
    "adagrad": lambda: optim.adagrad(0.5),
    "rmsprop": lambda: optim.rmsprop(schedules.cosine_decay(0.01, 1000)),
    "adam": lambda: optim.adam(0.1),
    "adamw": lambda: optim.adamw(0.1, weight_decay=1e-4),
}


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_converges(name, target):
    grad, start, minimum = TARGETS[target]
    opt = OPTIMIZERS[name]()
    params = split(start)
    state = opt.init(params)
    for _ in range(1000):
        updates, state = opt.update(split(grad(join(params))), state, params)
        params = apply_updates(params, updates)
    np.testing.assert_allclose(join(params), minimum, atol=1e-3)


# State, dtypes and purity.

ALL = {name: {"learning_rate": 0.01, "weight_decay": 0.01, "clip_norm": 1.0}
       for name in optim.OPTIMIZERS}


@pytest.mark.parametrize("name", sorted(ALL))
def test_float32_params_stay_float32(name):
    lr = lambda step: np.float64(0.01) / (1 + step)  # a schedule that returns a NumPy float64
    opt = optim.get(name, **{**ALL[name], "learning_rate": lr})
    params = tree_map(lambda a: a.astype(np.float32), PARAMS)
    grads = [tree_map(lambda a: a.astype(np.float32), g) for g in GRADS]
    params, state = run(opt, params, grads)
    updates, state = opt.update(grads[0], state, params)
    assert {leaf.dtype for leaf in tree_leaves([params, updates])} == {np.dtype(np.float32)}
    dtypes = {np.asarray(leaf).dtype for path, leaf in tree_flatten_with_paths(state)
              if not path.endswith("lr_scale")}       # the one float64 scalar of the state
    assert dtypes <= {np.dtype(np.float32), np.dtype(np.int64)}


@pytest.mark.parametrize("name", sorted(ALL))
def test_state_is_a_plain_tree_that_round_trips(name):
    opt = optim.get(name, **ALL[name])
    _, state = run(opt, PARAMS, GRADS[:2])

    def check(node):
        assert isinstance(node, (dict, list, np.ndarray)), type(node)
        if isinstance(node, np.ndarray) and node.dtype.kind == "i":
            assert node.shape == () and node.dtype == np.int64
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
        for child in children:
            check(child)
    check(state)
    # Saved as (path, array) pairs and rebuilt from a fresh init, it continues identically.
    saved = [np.array(a) for _, a in tree_flatten_with_paths(state)]
    restored = tree_unflatten_like(opt.init(PARAMS), saved)
    a, _ = opt.update(GRADS[2], state, PARAMS)
    b, _ = opt.update(GRADS[2], restored, PARAMS)
    for x, y in zip(tree_leaves(a), tree_leaves(b)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", sorted(ALL))
def test_update_does_not_modify_its_inputs(name):
    opt = optim.get(name, **ALL[name])
    _, state = run(opt, PARAMS, GRADS[:1])
    before = [np.array(a) for a in tree_leaves([PARAMS, GRADS[1], state])]
    updates, _ = opt.update(GRADS[1], state, PARAMS)
    apply_updates(PARAMS, updates)
    for x, y in zip(before, tree_leaves([PARAMS, GRADS[1], state])):
        np.testing.assert_array_equal(x, y)


def test_adam_state_layout():
    state = optim.adam(0.1).init(PARAMS)
    assert isinstance(state, list) and len(state) == 2
    assert set(state[0]) == {"count", "mu", "nu"} and set(state[1]) == {"count", "lr_scale"}
    assert state[1]["lr_scale"] == 1.0 and state[1]["lr_scale"].dtype == np.float64
    assert state[0]["count"].shape == () and state[0]["count"].dtype == np.int64
    assert tree_map(np.shape, state[0]["mu"]) == tree_map(np.shape, PARAMS)
    _, state = run(optim.adam(0.1), PARAMS, GRADS[:2])
    assert int(state[0]["count"]) == 2 and int(state[1]["count"]) == 2


def test_apply_updates_keeps_each_dtype():
    params = {"a": np.ones(2, np.float32), "b": np.ones(2, np.float64)}
    new = apply_updates(params, {"a": np.full(2, 0.5), "b": np.full(2, 0.5, np.float32)})
    assert new["a"].dtype == np.float32 and new["b"].dtype == np.float64
    np.testing.assert_array_equal(new["a"], [1.5, 1.5])
    assert params["a"][0] == 1.0


# Learning rate schedules inside an optimizer.

def test_schedule_is_read_at_the_number_of_updates_already_applied():
    seen = []
    opt = optim.sgd(lambda step: seen.append(step) or 0.1 * (step + 1))
    params, grads = {"w": np.zeros(1)}, {"w": np.ones(1)}
    state = opt.init(params)
    for expected in (-0.1, -0.2, -0.3):
        updates, state = opt.update(grads, state, params)
        assert updates["w"][0] == pytest.approx(expected)
    assert seen == [0, 1, 2] and all(type(s) is int for s in seen)


def test_fresh_init_restarts_the_schedule():
    opt = optim.adam(schedules.linear_decay(0.1, 0.0, transition_steps=5))
    params, grads = {"w": np.array([2.0])}, {"w": np.array([0.5])}
    _, state = run(opt, params, [grads] * 10)
    late, _ = opt.update(grads, state, params)
    assert late["w"][0] == 0.0                     # the first run decayed to zero
    first, _ = opt.update(grads, opt.init(params), params)
    assert first["w"][0] == pytest.approx(-0.1)    # the second run starts at step 0


# Clipping.

def test_clip_by_value():
    opt = optim.clip(0.5)
    grads = {"a": np.array([-2.0, 0.1, 0.7]), "b": [np.array([0.5, -0.3])]}
    clipped, _ = opt.update(grads, opt.init(grads))
    np.testing.assert_array_equal(clipped["a"], [-0.5, 0.1, 0.5])
    np.testing.assert_array_equal(clipped["b"][0], [0.5, -0.3])


def test_clip_by_global_norm_scales_only_large_gradients():
    opt = optim.clip_by_global_norm(1.0)
    grads = {"a": np.array([3.0]), "b": [np.array([0.0, 4.0])]}  # global norm 5
    clipped, _ = opt.update(grads, opt.init(grads))
    np.testing.assert_allclose(clipped["a"], [0.6])
    np.testing.assert_allclose(clipped["b"][0], [0.0, 0.8])
    small = {"a": np.array([0.3]), "b": [np.array([0.0, 0.4])]}
    kept, _ = opt.update(small, opt.init(small))
    np.testing.assert_array_equal(kept["a"], small["a"])


def test_alias_clips_the_gradient_before_weight_decay():
    opt = optim.sgd(1.0, clip_value=0.1, weight_decay=0.5)
    params, _ = run(opt, {"w": np.array([2.0, 2.0])}, [{"w": np.array([3.0, -0.05])}])
    np.testing.assert_allclose(params["w"], [2.0 - (0.1 + 1.0), 2.0 - (-0.05 + 1.0)])
    opt = optim.adam(0.1, clip_norm=1.0)
    _, state = run(opt, {"w": np.array([0.0, 0.0])}, [{"w": np.array([3.0, 4.0])}])
    np.testing.assert_allclose(state[1]["mu"]["w"], [0.1 * 0.6, 0.1 * 0.8])


def test_custom_chain():
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.scale_by_adam(),
                      optim.scale_by_learning_rate(0.1))
    params, _ = run(opt, {"w": np.array([2.0])}, [{"w": np.array([50.0])}])
    assert params["w"][0] == pytest.approx(1.9)


# Schedules.

def values(schedule, steps):
    return [schedule(t) for t in steps]


def test_constant_and_linear_decay_to_zero():
    assert values(schedules.constant(0.3), [0, 100]) == [0.3, 0.3]
    lin = schedules.linear_decay(1.0, 0.0, transition_steps=4)
    assert values(lin, range(7)) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0])
    assert lin(4) == 0.0


def test_zero_transition_steps_hold_the_initial_value():
    for schedule in (schedules.linear_decay(0.5, 0.1, 0), schedules.exponential_decay(0.5, 0.1, 0),
                     schedules.cosine_decay(0.5, 0, end_value=0.1)):
        assert values(schedule, [0, 1, 50]) == [0.5, 0.5, 0.5]


def test_exponential_decay_is_geometric_and_cannot_reach_zero():
    exp = schedules.exponential_decay(1.0, 0.01, transition_steps=2)
    assert values(exp, range(5)) == pytest.approx([1.0, 0.1, 0.01, 0.01, 0.01])
    with pytest.raises(ConfigError, match="linear_decay or cosine_decay"):
        schedules.exponential_decay(0.1, 0.0, transition_steps=10)


def test_step_decay():
    assert values(schedules.step_decay(1.0, 0.5, every=3), [0, 2, 3, 5, 6]) == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_cosine_decay():
    cos = schedules.cosine_decay(1.0, transition_steps=4)
    expected = [1.0, (1 + math.sqrt(0.5)) / 2, 0.5, (1 - math.sqrt(0.5)) / 2, 0.0, 0.0]
    assert values(cos, range(6)) == pytest.approx(expected)
    assert schedules.cosine_decay(1.0, 2, end_value=0.2)(1) == pytest.approx(0.6)


def test_warmup_ramps_then_runs_the_shifted_schedule():
    warm = schedules.warmup(schedules.linear_decay(1.0, 0.0, 2), warmup_steps=2)
    assert values(warm, range(6)) == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0, 0.0])
    assert values(schedules.warmup(0.4, 4, start_value=0.2), [0, 2, 4, 9]) == pytest.approx(
        [0.2, 0.3, 0.4, 0.4])
    assert schedules.warmup(0.4, 0)(0) == 0.4


def test_per_epoch_reproduces_the_books_decay():
    epochs, steps_per_epoch, lr, final = 10, 5, 0.01, 0.001
    sched = schedules.per_epoch(schedules.linear_decay(lr, final, epochs - 1), steps_per_epoch)
    for step in range(epochs * steps_per_epoch):
        epoch = step // steps_per_epoch
        assert sched(step) == pytest.approx(lr - (lr - final) * epoch / (epochs - 1))
    assert sched(10_000) == pytest.approx(final)
    one_epoch = schedules.per_epoch(schedules.linear_decay(lr, final, 1 - 1), steps_per_epoch)
    assert values(one_epoch, [0, 4, 5]) == [lr, lr, lr]


def test_schedules_return_python_floats_for_array_steps():
    step = np.array(3, dtype=np.int64)
    for schedule in (schedules.constant(1), schedules.linear_decay(1, 0, 5),
                     schedules.exponential_decay(1, 0.5, 5), schedules.step_decay(1, 0.5, 2),
                     schedules.cosine_decay(1, 5), schedules.warmup(1, 5),
                     schedules.per_epoch(schedules.constant(1), 2)):
        assert type(schedule(step)) is float


@pytest.mark.parametrize("make", [
    lambda: schedules.linear_decay(1.0, 0.0, -1),
    lambda: schedules.cosine_decay(1.0, 2.5),
    lambda: schedules.exponential_decay(0.0, 0.1, 5),
    lambda: schedules.exponential_decay(1.0, -0.1, 5),
    lambda: schedules.step_decay(1.0, 0.5, every=0),
    lambda: schedules.step_decay(1.0, 0.0, every=2),
    lambda: schedules.warmup(1.0, -3),
    lambda: schedules.per_epoch(1.0, 0),
    lambda: schedules.constant(float("nan")),
    lambda: schedules.linear_decay(1.0, 0.0, 5)(-1),
])
def test_bad_schedule_settings_raise(make):
    with pytest.raises(ConfigError):
        make()


# Settings and names.

@pytest.mark.parametrize("make", [
    lambda: optim.sgd(0.0),
    lambda: optim.sgd(-0.1),
    lambda: optim.adam(float("nan")),
    lambda: optim.sgd(0.1, momentum=1.0),
    lambda: optim.sgd(0.1, nesterov=True),
    lambda: optim.sgd(0.1, weight_decay=-1e-3),
    lambda: optim.adam(b1=1.0),
    lambda: optim.rmsprop(0.1, decay=-0.1),
    lambda: optim.adagrad(0.1, eps=-1.0),
    lambda: optim.sgd(0.1, clip_value=0.0),
    lambda: optim.sgd(0.1, clip_norm=-1.0),
])
def test_bad_optimizer_settings_raise(make):
    with pytest.raises(ConfigError):
        make()


def test_settings_after_the_learning_rate_are_keyword_only():
    with pytest.raises(TypeError):
        optim.adagrad(0.01, 1e-7)  # the book's AdaGrad took these in the wrong slots
    with pytest.raises(TypeError):
        optim.sgd(0.01, 0.9)


def test_weight_decay_needs_params():
    opt = optim.add_decayed_weights(0.1)
    with pytest.raises(ConfigError, match="params"):
        opt.update(GRADS[0], opt.init(PARAMS))


def test_get_unknown_name_names_it_and_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="adamax") as info:
        optim.get("adamax", learning_rate=0.1)
    for name in ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"):
        assert name in str(info.value)


def test_get_builds_by_name_and_checks_settings():
    a, _ = run(optim.get("momentum", learning_rate=0.1), PARAMS, GRADS)
    b, _ = run(optim.sgd(0.1, momentum=0.9), PARAMS, GRADS)
    c, _ = run(optim.get("momentum", learning_rate=0.1, momentum=0.5), PARAMS, GRADS)
    np.testing.assert_array_equal(a["dense"]["W"], b["dense"]["W"])
    assert not np.allclose(a["dense"]["W"], c["dense"]["W"])
    assert len(optim.get("adam").init(PARAMS)) == 2
    with pytest.raises(ConfigError, match="lr"):
        optim.get("sgd", lr=0.1)
    opt = optim.adam()
    assert optim.get(opt) is opt


def test_package_example_runs():
    assert doctest.testmod(purenet.optim).failed == 0


# The learning-rate scale (what ReduceLROnPlateau changes) and bad rates.

def test_lr_scale_multiplies_the_rate_and_lives_in_the_state():
    opt = optim.adam(schedules.linear_decay(0.1, 0.05, 10), clip_norm=1.0)
    params, grads = {"w": np.array([1.0])}, {"w": np.array([0.5])}
    state = opt.init(params)
    assert optim.lr_scale(state) == 1.0 and opt.learning_rate(state) == pytest.approx(0.1)
    halved = optim.with_lr_scale(state, 0.5)
    assert optim.lr_scale(state) == 1.0                      # the old state is left alone
    assert opt.learning_rate(halved) == pytest.approx(0.05)
    full, _ = opt.update(grads, state, params)
    half, halved = opt.update(grads, halved, params)
    np.testing.assert_allclose(half["w"], full["w"] / 2)
    assert optim.lr_scale(halved) == 0.5                     # kept across updates
    assert optim.lr_scale([{}, {"nu": np.zeros(1)}]) is None
    same = optim.sgd(0.1)                                     # scale 1 changes no bit
    update, _ = same.update(grads, same.init(params), params)
    assert update["w"][0] == -0.1 * 0.5


@pytest.mark.parametrize("rate", [-0.1, float("nan")])
def test_a_schedule_giving_a_bad_rate_is_an_error_naming_the_step(rate):
    opt = optim.sgd(lambda step: 0.1 if step < 2 else rate)
    params, grads = {"w": np.array([1.0])}, {"w": np.array([0.5])}
    state = opt.init(params)
    for _ in range(2):
        _, state = opt.update(grads, state, params)
    with pytest.raises(ConfigError, match="learning rate at step 2"):
        opt.update(grads, state, params)
    with pytest.raises(ConfigError, match="learning rate at step 2"):
        opt.learning_rate(state)
