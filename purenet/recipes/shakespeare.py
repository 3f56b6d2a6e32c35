"""Character-level language model (LSTM, GRU or RNN) on tiny Shakespeare or any UTF-8 text.

The text is split by position (first 90% train, last 10% validation), cut into
``batch-size`` contiguous streams and trained with truncated backpropagation
through time: windows of ``seq-len`` characters, the recurrent state carried
from each window to the next (and reset after each validation); each pass over
the text starts at a random offset. Adam with gradient-norm clipping and a
warm-up + cosine learning rate over the step budget. ``fit`` trains it: one of
its epochs is the ``eval-every`` steps between two validations. Validation loss
is in nats per character over the whole validation text; the params of the
lowest validation loss are the ones kept, sampled from and saved (the model
overfits tiny Shakespeare late in a long run). ``--resume`` continues a run
exactly when its budget is ``--steps``; with ``--minutes`` the step count is
measured again.
"""
import itertools
import math
import time

import numpy as np

from .. import optim
from ..data.datasets import load_tiny_shakespeare
from ..data.text import bptt_batches, build_vocab, decode, encode, load_text, split_text
from ..errors import ConfigError, DataError
from ..files import write_json
from ..io import save_model
from ..layers import GRU, LSTM, Dense, Dropout, Embedding, SimpleRNN, reset_states, serial
from ..losses import softmax_cross_entropy
from ..ops import softmax
from ..random import fold_in, generator, key
from ..train import Callback, EarlyStopping, fit
from ..train.step import train_step
from ..tree import tree_size
from .common import (COMPLETE, DIVERGED, INTERRUPTED, check_paths, run_options, writes,
                     describe_time, destination, draw, end_run, has_diverged, non_negative_int,
                     out_path, positive_float, positive_int, probability, run_header,
                     short_reason, verbosity, was_interrupted)

SHORT_HELP = ("a character-level LSTM/GRU/RNN on tiny Shakespeare or any text (default: "
              "30 min of training)")
DEFAULT_MINUTES = 30.0

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}
VAL_BATCH = 16
SAMPLE_LENGTH = 200                     # characters shown after each validation


def char_model(vocab_size, cell="lstm", hidden=512, layers=1, embed=64, dropout=0.0):
    """Embedding -> ``layers`` stateful recurrent layers -> dense logits on every step."""
    stack = [Embedding(vocab_size, embed)]
    for _ in range(layers):
        stack.append(CELLS[cell](hidden, return_sequences=True, stateful=True))
        if dropout:
            stack.append(Dropout(dropout))
    return serial(*stack, Dense(vocab_size))


def add_arguments(parser):
    parser.add_argument("--cell", choices=sorted(CELLS), default="lstm",
                        help="recurrent cell (default: lstm)")
    parser.add_argument("--hidden", type=positive_int, default=512, metavar="N",
                        help="units per recurrent layer (default: 512)")
    parser.add_argument("--layers", type=positive_int, default=1, metavar="N",
                        help="recurrent layers (default: 1)")
    parser.add_argument("--embed", type=positive_int, default=64, metavar="N",
                        help="embedding size (default: 64)")
    parser.add_argument("--dropout", type=probability, default=0.5, metavar="P",
                        help="drop probability after each recurrent layer, in [0, 1) "
                             "(default: 0.5)")
    parser.add_argument("--seq-len", type=positive_int, default=64, metavar="N",
                        help="characters per training window (default: 64)")
    parser.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                        help="windows per step (default: 32)")
    parser.add_argument("--lr", type=positive_float, default=3e-3, metavar="RATE",
                        help="peak Adam learning rate (default: 0.003)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=positive_float, default=None, metavar="M",
                        help=f"training time in minutes, a hard limit (default: "
                             f"{DEFAULT_MINUTES:g} unless --steps is given)")
    budget.add_argument("--steps", type=positive_int, default=None, metavar="N",
                        help="training steps instead of a time budget (default: as many as "
                             "fit in --minutes)")
    parser.add_argument("--eval-every", type=positive_int, default=500, metavar="N",
                        help="steps between validations; the params of the best one are kept "
                             "(default: 500)")
    parser.add_argument("--text", default=None, metavar="FILE",
                        help="a UTF-8 text file (default: tiny Shakespeare, shipped)")
    parser.add_argument("--seed", type=non_negative_int, default=0, metavar="N",
                        help="init, shuffling and dropout seed, 0 or more (default: 0)")


def validation_loss(model, params, ids, seq_len):
    """Mean cross-entropy (nats/char) of predicting each next character of ``ids``."""
    state, total, count = {}, 0.0, 0
    batch = max(1, min(VAL_BATCH, (len(ids) - 1) // seq_len))
    for x, y in bptt_batches(ids, batch, seq_len, drop_last=False):
        logits, state = model.apply(params, state, x)
        total += float(softmax_cross_entropy(logits, y)) * y.size
        count += y.size
    return total / count


def generate(model, params, vocab, prime, length, temperature=0.8, seed=0):
    """``prime`` followed by ``length`` sampled characters."""
    if temperature <= 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    rng = generator(key(seed))
    ids = encode(prime, vocab)[None] if prime else np.zeros((1, 1), np.int32)
    logits, state = model.apply(params, {}, ids)
    out = []
    for _ in range(length):
        z = logits[0, -1].astype(np.float64) / temperature
        nxt = rng.choice(len(z), p=softmax(z))
        out.append(nxt)
        logits, state = model.apply(params, state, np.array([[nxt]], np.int32))
    return prime + decode(np.array(out, np.int32), vocab)


PROBE_STEPS = 20                        # timed steps that turn --minutes into a step count


def _budget(args, step_once, validate_once):
    """``(steps, seconds, per_step)``: ``--steps`` as given (no time limit), or
    ``--minutes`` converted to the steps that fit with their validations (the schedule
    needs a step count) and kept as a hard time limit too. Timed on the real work: the
    mean of ``PROBE_STEPS`` steps (a mean, not a median: the run meets the same slow
    steps) and, for a time budget, one validation with its sample."""
    per_step = _mean_seconds(step_once, PROBE_STEPS)
    if args.steps is not None:
        return args.steps, float("inf"), per_step
    seconds = 60 * (DEFAULT_MINUTES if args.minutes is None else args.minutes)
    per_validation = _mean_seconds(validate_once, 1, warm=0)
    return _steps_within(seconds, per_step, per_validation, args.eval_every), seconds, per_step


def _mean_seconds(fn, count, warm=1):
    """Mean seconds of ``count`` calls of ``fn`` after ``warm`` untimed ones."""
    for _ in range(warm):
        fn()
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - start) / count


def _steps_within(seconds, per_step, per_validation, every):
    """The most steps (at least 1) whose time, with one validation after each ``every``
    steps and after the last, fits in ``seconds``."""
    steps = int(seconds / (per_step + per_validation / every))
    while steps > 1 and steps * per_step + -(-steps // every) * per_validation > seconds:
        steps -= 1
    return max(1, steps)


def _passes(train_ids, args, seed):
    """Endless BPTT windows; each pass over the text starts at a random offset."""
    for n in range(10 ** 9):
        offset = int(generator(fold_in(key(seed), n)).integers(args.seq_len))
        yield n, bptt_batches(train_ids[offset:], args.batch_size, args.seq_len)


def _check_length(train_ids, args):
    """Every pass (which starts up to ``seq-len`` characters in) must hold one window per
    stream."""
    need = (args.batch_size + 1) * args.seq_len
    if len(train_ids) < need:
        raise DataError(f"the training text ({len(train_ids):,} characters) is too short for "
                        f"--batch-size {args.batch_size} x --seq-len {args.seq_len} (needs "
                        f"{need:,}): make them smaller or the text longer")


class Windows:
    """``fit``'s stream: ``windows(epoch)`` is the ``epoch``-th group of ``eval_every``
    windows of the endless passes, the last group cut at ``steps`` in all. A group
    also ends (after at least one window) once ``deadline()`` is true. Asked for
    the groups in order it just reads on; asked for another (a resumed run), it
    starts the passes again and skips to that group."""

    def __init__(self, train_ids, args, steps, deadline):
        self.train_ids, self.args, self.steps, self.deadline = train_ids, args, steps, deadline
        self.every = args.eval_every
        self.position = self.passes = 0
        self._windows = None

    def _all(self):
        for n, windows in _passes(self.train_ids, self.args, self.args.seed):
            self.passes = n + 1
            yield from windows

    def __call__(self, epoch):
        start = epoch * self.every
        if self._windows is None or self.position != start:
            self._windows, self.position = self._all(), 0
            for _ in range(start):
                next(self._windows)
                self.position += 1
        return self._group(min(self.every, self.steps - start))

    def _group(self, count):
        for i in range(count):
            if i and self.deadline():
                return
            self.position += 1
            yield next(self._windows)


class CharacterRun(Callback):
    """The recipe's part of ``fit``: after each epoch, a fresh recurrent state for the
    next, the validation loss (``val_loss``, nats/char) and the step count logged,
    a sample shown, and training stopped once the time budget is spent."""

    def __init__(self, windows, val_ids, vocab, args, start):
        self.windows, self.val_ids, self.vocab, self.args = windows, val_ids, vocab, args
        self.start, self.clock = start, {}      # epoch -> seconds since the start

    def on_epoch_end(self, epoch, logs, run):
        run.state = reset_states(run.state)     # before anything keeps or saves it
        logs["val_loss"] = validation_loss(run.model, run.params, self.val_ids, self.args.seq_len)
        logs["step"] = self.windows.position
        run.log(generate(run.model, run.params, self.vocab, "\n", SAMPLE_LENGTH, 0.8,
                         seed=epoch).rstrip())
        self.clock[epoch] = time.perf_counter() - self.start
        if self.windows.deadline():
            run.stop(f"time budget spent after step {self.windows.position}")


def _train(model, params, state, opt, train_ids, val_ids, steps, seconds, vocab, args, found):
    """``fit`` over the windows; the params of the best validation loss are kept."""
    start = time.perf_counter()
    windows = Windows(train_ids, args, steps, lambda: time.perf_counter() - start > seconds)
    epochs = -(-steps // args.eval_every)
    keep_best = EarlyStopping("val_loss", patience=epochs, restore_best_weights=True)
    character_run = CharacterRun(windows, val_ids, vocab, args, start)
    result = fit(model, params, "softmax_cross_entropy", opt, windows, state=state,
                 epochs=epochs, seed=args.seed, callbacks=[character_run, keep_best],
                 verbose=verbosity(args), **run_options(args, "", found))
    history = result.history
    status = INTERRUPTED if was_interrupted(history) else \
        DIVERGED if has_diverged(history) else COMPLETE
    logs = [entry for entry in history.logs if entry.get("val_loss") is not None]
    records = [{"step": entry["step"], "loss": entry["loss"], "val_loss": entry["val_loss"],
                "seconds": _rounded(character_run.clock.get(entry["epoch"]))}
               for entry in logs]              # seconds: None for epochs of an earlier run
    best = min(records, key=lambda r: r["val_loss"], default=None)
    return {"params": result.params if records else None,
            "best_step": best["step"] if best else 0, "history": records,
            "passes": windows.passes, "steps": records[-1]["step"] if records else 0,
            "steps_requested": steps, "status": status,
            "stop_reason": short_reason(history.stop_reason) if status == DIVERGED else
            history.stop_reason, "seconds": time.perf_counter() - start}


def _rounded(seconds):
    return None if seconds is None else round(seconds, 1)


def run(args):
    if getattr(args, "distributed", None) is not None and args.steps is None:
        raise ConfigError("on more than one process give --steps N: a time budget (--minutes) "
                          "would end each process after a different number of steps")
    found = check_paths(args, [f"{args.cell}.npz", "metrics.json", "loss_curve.png"])
    text = load_text(args.text) if args.text else load_tiny_shakespeare()
    vocab = build_vocab(text)
    train_ids, val_ids = split_text(encode(text, vocab))
    _check_length(train_ids, args)
    model = char_model(len(vocab["chars"]), args.cell, args.hidden, args.layers, args.embed,
                       args.dropout)
    _, params, state = model.init(key(args.seed), (None,))
    steps, seconds, per_step = _budget(args, *_probes(model, params, train_ids, val_ids, vocab,
                                                      args))
    lr = optim.schedules.warmup(optim.schedules.cosine_decay(args.lr, steps, args.lr / 20),
                                min(200, steps // 10))
    opt = optim.adam(lr, clip_norm=5.0)
    limit = f", stopped after {seconds / 60:g} min" if math.isfinite(seconds) else ""
    print(f"{args.cell} {args.layers}x{args.hidden}, {tree_size(params):,} parameters, "
          f"{steps} steps of {args.batch_size}x{args.seq_len} characters: about "
          f"{describe_time(min(steps * per_step, seconds))} plus validation{limit} (Ctrl-C "
          "stops and keeps the best validated params)")
    with np.errstate(over="ignore", invalid="ignore"):   # a diverging loss is reported
        result = _train(model, params, state, opt, train_ids, val_ids, steps, seconds, vocab,
                        args, found)
    if not writes(args):                # on more than one process, the first one reports
        return None
    result["parameters"] = tree_size(params)
    return _finish(model, result, vocab, args)


def _probes(model, params, train_ids, val_ids, vocab, args):
    """``(step_once, validate_once)``: one training step as the run takes them (Adam with
    clipping, the next window, a dropout key; the params are left as they are) and one
    validation with its sample."""
    windows = itertools.cycle(itertools.islice(
        bptt_batches(train_ids, args.batch_size, args.seq_len), 4))
    opt = optim.adam(1e-9, clip_norm=5.0)
    opt_state = opt.init(params)

    def step_once():
        x, y = next(windows)
        train_step(model, "softmax_cross_entropy", opt, params, {}, opt_state, x, y,
                   key(args.seed))

    def validate_once():
        validation_loss(model, params, val_ids, args.seq_len)
        generate(model, params, vocab, "\n", SAMPLE_LENGTH, 0.8)
    return step_once, validate_once


def _no_better_than_chance(val_loss, vocab):
    """The reason a validation loss is no result, or None: predicting every
    character as equally likely scores ``log(vocabulary size)``."""
    chance = math.log(len(vocab["chars"]))
    if math.isfinite(val_loss) and val_loss < chance:
        return None
    return (f"validation loss {val_loss:.3f} nats/char is no better than chance (log of "
            f"{len(vocab['chars'])} characters = {chance:.3f}); try a smaller --lr")


def _finish(model, result, vocab, args):
    params, history, steps = result["params"], result["history"], result["steps"]
    status, reason = result["status"], result["stop_reason"]
    worse = _no_better_than_chance(min(h["val_loss"] for h in history), vocab) \
        if status == COMPLETE and history else None
    if worse:
        status, reason = DIVERGED, worse
    out = destination(args, status)
    sample = generate(model, params, vocab, "ROMEO:", 500, 0.8, seed=args.seed) \
        if status == COMPLETE else None
    best = min((h["val_loss"] for h in history), default=None)
    report = {**run_header(args, result["seconds"], status),
              "cell": args.cell, "hidden": args.hidden, "layers": args.layers,
              "parameters": result["parameters"], "steps": steps,
              "steps_requested": result["steps_requested"], "passes": result["passes"],
              "stop_reason": reason,
              "val_loss": best if status == COMPLETE else None,
              "best_val_loss_seen": best, "best_step": result["best_step"],
              "last_val_loss": history[-1]["val_loss"] if history else None,
              "train_minutes": round(result["seconds"] / 60, 2),
              "chars_per_second": round(steps * args.batch_size * args.seq_len
                                        / max(result["seconds"], 1e-9)),
              "history": history, "sample": sample}
    extra = {"recipe": "shakespeare", "vocab": vocab, "seq_len": args.seq_len}
    if params is not None:              # params are kept only once validated
        save_model(out_path(out, f"{args.cell}.npz"), model, params, {}, in_shape=(None,),
                   extra=extra)
    write_json(out_path(out, "metrics.json"), report)
    if history:
        _plot(history, args, out)
    if status == COMPLETE:
        print(f"{sample}\n\nvalidation loss {report['val_loss']:.3f} nats/char (step "
              f"{report['best_step']} of {steps}, {describe_time(result['seconds'])}); "
              f"wrote {out}")
        return report
    if status == INTERRUPTED:
        kept = f"kept step {result['best_step']} (validation loss {best:.3f})" if history \
            else f"no validation yet (every {args.eval_every} steps), so no model kept"
        raise end_run(args, status, out, f"{steps} of {result['steps_requested']} steps "
                                         f"validated, {kept}")
    raise end_run(args, status, out, reason)


def _plot(history, args, out):
    from ..plots import plot_curves
    series = {k: [h[k] for h in history] for k in ("step", "loss", "val_loss")}
    draw(lambda path: plot_curves({"": series}, path, keys=("loss", "val_loss"),
                                  title=f"{args.cell}: nats per character", x="step"),
         out_path(out, "loss_curve.png"))


def generate_saved(model, params, meta, args):
    """Text from a saved character model (``purenet generate``)."""
    extra = meta["extra"]
    if extra.get("recipe") != "shakespeare":
        raise ConfigError(f"{args.model}: not a character model (recipe {extra.get('recipe')!r})")
    return generate(model, params, extra["vocab"], args.prime, args.length, args.temperature,
                    args.seed)
