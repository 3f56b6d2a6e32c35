"""Character-level language model (LSTM, GRU or RNN) on tiny Shakespeare or any UTF-8 text.

The text is split by position (first 90% train, last 10% validation), cut into
``batch-size`` contiguous streams and trained with truncated backpropagation
through time: windows of ``seq-len`` characters, the recurrent state carried
from each window to the next (reset at every pass, which starts at a random
offset). Adam with gradient-norm clipping and a warm-up + cosine learning
rate over the step budget. Validation loss is in nats per character over the
whole validation text; the params of the lowest validation loss are the ones
kept, sampled from and saved (the model overfits tiny Shakespeare late in a
long run).
"""
import time

import numpy as np

from .. import optim
from ..data.datasets import load_tiny_shakespeare
from ..data.text import bptt_batches, build_vocab, decode, encode, load_text, split_text
from ..errors import ConfigError
from ..io import save_model, write_json
from ..layers import GRU, LSTM, Dense, Dropout, Embedding, SimpleRNN, serial
from ..losses import softmax_cross_entropy
from ..ops import softmax
from ..random import fold_in, generator, key
from ..train.progress import progress_bar
from ..train.step import train_step
from ..tree import tree_size
from .common import out_path, run_header

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}
VAL_BATCH = 16


def char_model(vocab_size, cell="lstm", hidden=512, layers=1, embed=64, dropout=0.0):
    """Embedding -> ``layers`` stateful recurrent layers -> dense logits on every step."""
    stack = [Embedding(vocab_size, embed)]
    for _ in range(layers):
        stack.append(CELLS[cell](hidden, return_sequences=True, stateful=True))
        if dropout:
            stack.append(Dropout(dropout))
    return serial(*stack, Dense(vocab_size))


def add_arguments(parser):
    parser.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--embed", type=int, default=64, help="embedding size (64)")
    parser.add_argument("--dropout", type=float, default=0.0, help="drop probability after each layer")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak Adam learning rate")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None, help="training time budget (30)")
    budget.add_argument("--steps", type=int, default=None, help="training steps budget")
    parser.add_argument("--eval-every", type=int, default=500, help="steps between validations")
    parser.add_argument("--text", default=None, help="a UTF-8 text file (default: tiny Shakespeare)")
    parser.add_argument("--seed", type=int, default=0)


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


def _budget(args, step_once):
    """``(steps, seconds)``: ``--steps`` as given (no time limit), or ``--minutes``
    converted to steps by timing a few (the schedule needs a step count) and kept
    as a hard time limit too."""
    if args.steps is not None:
        return args.steps, float("inf")
    seconds = 60 * (30.0 if args.minutes is None else args.minutes)
    step_once()
    start = time.perf_counter()
    for _ in range(5):
        step_once()
    per_step = (time.perf_counter() - start) / 5
    return max(1, int(seconds / per_step)), seconds


def _passes(train_ids, args, seed):
    """Endless BPTT windows; each pass over the text starts at a random offset."""
    for n in range(10 ** 9):
        offset = int(generator(fold_in(key(seed), n)).integers(args.seq_len))
        yield n, bptt_batches(train_ids[offset:], args.batch_size, args.seq_len)


def run(args):
    text = load_text(args.text) if args.text else load_tiny_shakespeare()
    vocab = build_vocab(text)
    train_ids, val_ids = split_text(encode(text, vocab))
    model = char_model(len(vocab["chars"]), args.cell, args.hidden, args.layers, args.embed,
                       args.dropout)
    _, params, state = model.init(key(args.seed), (None,))
    x0, y0 = next(bptt_batches(train_ids, args.batch_size, args.seq_len))
    probe = optim.adam(1e-9)
    steps, seconds = _budget(args, lambda: train_step(model, "softmax_cross_entropy", probe, params,
                                                      {}, probe.init(params), x0, y0))
    lr = optim.schedules.warmup(optim.schedules.cosine_decay(args.lr, steps, args.lr / 20),
                                min(200, steps // 10))
    opt = optim.adam(lr, clip_norm=5.0)
    print(f"{args.cell} {args.layers}x{args.hidden}, {tree_size(params):,} parameters, "
          f"{steps} steps of {args.batch_size}x{args.seq_len} characters")
    result = _train(model, params, opt, train_ids, val_ids, steps, seconds, vocab, args)
    return _finish(model, result, vocab, args)


def _train(model, params, opt, train_ids, val_ids, steps, seconds, vocab, args):
    """The step loop; ends after ``steps`` steps or ``seconds`` of training."""
    opt_state, history, step, start = opt.init(params), [], 0, time.perf_counter()
    best = {"val_loss": float("inf"), "params": params, "step": 0}
    chars = args.batch_size * args.seq_len
    bar = progress_bar(args.progress, steps * chars, 0, 1, unit="chars", desc="training")
    running, seen = 0.0, 0
    for n, windows in _passes(train_ids, args, args.seed):
        state = {}
        for x, y in windows:
            step_key = fold_in(key(args.seed + 1), step)
            params, state, opt_state, loss = train_step(model, "softmax_cross_entropy", opt,
                                                        params, state, opt_state, x, y, step_key)
            step, running, seen = step + 1, running + loss, seen + 1
            bar.update(step * chars, running / seen)
            if time.perf_counter() - start > seconds:
                steps = step            # out of time: validate and stop here
            if step % args.eval_every == 0 or step == steps:
                history.append(_evaluate(model, params, val_ids, vocab, step, running / seen,
                                         time.perf_counter() - start, args))
                if history[-1]["val_loss"] < best["val_loss"]:
                    best = {"val_loss": history[-1]["val_loss"], "params": params, "step": step}
                running, seen = 0.0, 0
            if step == steps:
                bar.close({"val_loss": history[-1]["val_loss"]})
                return {"params": best["params"], "best_step": best["step"], "history": history,
                        "passes": n + 1, "steps": step, "seconds": time.perf_counter() - start}


def _evaluate(model, params, val_ids, vocab, step, train_loss, seconds, args):
    val = validation_loss(model, params, val_ids, args.seq_len)
    sample = generate(model, params, vocab, "\n", 200, 0.8, seed=step)
    print(f"\nstep {step}: train loss {train_loss:.3f}, val loss {val:.3f} nats/char "
          f"({seconds / 60:.1f} min)\n{sample}\n")
    return {"step": step, "loss": train_loss, "val_loss": val, "seconds": round(seconds, 1)}


def _finish(model, result, vocab, args):
    params, history, steps = result["params"], result["history"], result["steps"]
    sample = generate(model, params, vocab, "ROMEO:", 500, 0.8, seed=args.seed)
    report = {**run_header(args, result["seconds"]),
              "cell": args.cell, "hidden": args.hidden, "layers": args.layers,
              "parameters": tree_size(params), "steps": steps, "passes": result["passes"],
              "val_loss": min(h["val_loss"] for h in history), "best_step": result["best_step"],
              "last_val_loss": history[-1]["val_loss"],
              "train_minutes": round(result["seconds"] / 60, 2),
              "chars_per_second": round(steps * args.batch_size * args.seq_len / result["seconds"]),
              "history": history, "sample": sample}
    extra = {"recipe": "shakespeare", "vocab": vocab, "seq_len": args.seq_len}
    save_model(out_path(args, f"{args.cell}.npz"), model, params, {}, in_shape=(None,), extra=extra)
    write_json(out_path(args, "metrics.json"), report)
    _plot(history, args)
    print(f"{sample}\n\nvalidation loss {report['val_loss']:.3f} nats/char (step "
          f"{report['best_step']} of {steps}, {report['train_minutes']:.1f} min); wrote {args.out}")
    return report


def _plot(history, args):
    from ..plots import plot_curves
    series = {k: [h[k] for h in history] for k in ("step", "loss", "val_loss")}
    try:
        plot_curves({"": series}, out_path(args, "loss_curve.png"), keys=("loss", "val_loss"),
                    title=f"{args.cell}: nats per character", x="step")
    except ImportError as err:
        print(f"no plot: {err}")


def generate_saved(model, params, meta, args):
    """Text from a saved character model (``purenet generate``)."""
    extra = meta["extra"]
    if extra.get("recipe") != "shakespeare":
        raise ConfigError(f"{args.model}: not a character model (recipe {extra.get('recipe')!r})")
    return generate(model, params, extra["vocab"], args.prime, args.length, args.temperature,
                    args.seed)
