# Contract: a schedule is a pure function ``step -> float``. ``step`` is the
# number of updates already applied (0 for the first update) and may be a
# Python int or a 0-d integer array; the value is always a Python float, so it
# never changes the dtype of the arrays it multiplies. Constructors check their
# settings once and raise ConfigError for bad ones.
"""Learning-rate schedules.

Every schedule reaches its final value after ``transition_steps`` steps and
holds it from then on; a ``transition_steps`` of 0 holds the initial value
(the book's per-epoch decay with a single epoch). Schedules compose:

    lr = warmup(cosine_decay(0.1, transition_steps=900), warmup_steps=100)
    lr = per_epoch(linear_decay(0.01, 0.001, epochs - 1), steps_per_epoch)
"""
import math
import numbers

from ..errors import ConfigError


def as_schedule(value):
    """A schedule from a number (held constant) or a schedule (returned as is)."""
    if callable(value):
        return value
    return constant(value)


def constant(value):
    """``lr(t) = value``."""
    value = _finite("constant", "value", value)
    return lambda step: value


def linear_decay(init_value, end_value, transition_steps):
    """Straight line from ``init_value`` to ``end_value``, then held.

    ``lr(t) = init + (end - init) * min(t, T) / T`` with ``T = transition_steps``.
    """
    init_value = _finite("linear_decay", "init_value", init_value)
    end_value = _finite("linear_decay", "end_value", end_value)
    T = _count("linear_decay", "transition_steps", transition_steps)
    return _transition(init_value, end_value, T, lambda f: init_value + (end_value - init_value) * f)


def _transition(init_value, end_value, T, curve):
    """``init_value`` at step 0, ``curve(t / T)`` on the way, ``end_value`` from step ``T``
    on; with ``T == 0`` it holds ``init_value`` (no division by zero)."""
    def schedule(step):
        t = _step(step)
        if T == 0:
            return init_value
        if t >= T:
            return end_value
        return curve(t / T)
    return schedule


def exponential_decay(init_value, end_value, transition_steps):
    """Geometric interpolation from ``init_value`` to ``end_value``, then held.

    ``lr(t) = init * (end / init) ** (min(t, T) / T)``; both values must be > 0.
    """
    init_value = _positive("exponential_decay", "init_value", init_value)
    end_value = _finite("exponential_decay", "end_value", end_value)
    if end_value <= 0:
        raise ConfigError(
            f"exponential_decay: end_value must be > 0, got {end_value} (a geometric curve "
            "never reaches 0); use linear_decay or cosine_decay to decay to 0")
    T = _count("exponential_decay", "transition_steps", transition_steps)
    ratio = end_value / init_value
    return _transition(init_value, end_value, T, lambda f: init_value * ratio ** f)


def step_decay(init_value, factor, every):
    """Multiply by ``factor`` once every ``every`` steps.

    ``lr(t) = init * factor ** floor(t / every)``.
    """
    init_value = _finite("step_decay", "init_value", init_value)
    factor = _positive("step_decay", "factor", factor)
    every = _count("step_decay", "every", every, minimum=1)
    return lambda step: init_value * factor ** (_step(step) // every)


def cosine_decay(init_value, transition_steps, end_value=0.0):
    """Half a cosine wave from ``init_value`` down to ``end_value``, then held.

    ``lr(t) = end + (init - end) * (1 + cos(pi * min(t, T) / T)) / 2``.
    """
    init_value = _finite("cosine_decay", "init_value", init_value)
    end_value = _finite("cosine_decay", "end_value", end_value)
    T = _count("cosine_decay", "transition_steps", transition_steps)
    return _transition(init_value, end_value, T, lambda f: end_value + (init_value - end_value)
                       * 0.5 * (1.0 + math.cos(math.pi * f)))


def warmup(schedule, warmup_steps, start_value=0.0):
    """Linear ramp from ``start_value`` to ``schedule(0)``, then ``schedule`` shifted.

    ``lr(t) = start + (schedule(0) - start) * t / W`` for ``t < W``, else
    ``schedule(t - W)``, with ``W = warmup_steps``. ``schedule`` may be a number.
    """
    schedule = as_schedule(schedule)
    start_value = _finite("warmup", "start_value", start_value)
    W = _count("warmup", "warmup_steps", warmup_steps)
    target = float(schedule(0))

    def warmed(step):
        t = _step(step)
        if t < W:
            return start_value + (target - start_value) * (t / W)
        return float(schedule(t - W))
    return warmed


def per_epoch(schedule, steps_per_epoch):
    """Staircase: ``lr(t) = schedule(t // steps_per_epoch)``.

    Turns a schedule written in epochs into one in steps; the rate changes only
    at epoch boundaries, as in the book's per-epoch decay.
    """
    schedule = as_schedule(schedule)
    steps_per_epoch = _count("per_epoch", "steps_per_epoch", steps_per_epoch, minimum=1)
    return lambda step: float(schedule(_step(step) // steps_per_epoch))


def _step(step):
    t = int(step)
    if t < 0:
        raise ConfigError(f"schedule step must be >= 0, got {t}")
    return t


def _finite(where, name, value):
    if not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{where}: {name} must be a finite number, got {value!r}")
    return float(value)


def _positive(where, name, value):
    value = _finite(where, name, value)
    if value <= 0:
        raise ConfigError(f"{where}: {name} must be > 0, got {value}")
    return value


def _count(where, name, value, minimum=0):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
