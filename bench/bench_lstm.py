"""Training steps per second of a character LSTM: purenet vs PyTorch's nn.LSTM on CPU.

The model on both sides: embedding of 65 symbols into 64 features, one LSTM
layer of 256 units over sequences of 64 steps, a dense 65-way layer on every
step, softmax cross-entropy, Adam (lr 1e-3); batch 32, float32, the same
number of threads. One step is forward, backward and the Adam update. The two
frameworks take turns in several rounds (so neither always gets the quieter
machine); each one's best round is reported, with the ratio purenet / PyTorch
in steps per second (above 1.0 means purenet is faster).

purenet's step is ``train_step``: ``purenet.grad`` differentiates the model, and
the LSTM layer runs the fused ``lstm_sequence`` primitive (its input gradient is
computed, since the embedding before it is trained).

    python bench/bench_lstm.py [--steps 30] [--rounds 3] [--threads N] [--profile]
    python bench/bench_lstm.py --tiny        # a seconds-long smoke run of small sizes
    python bench/bench_lstm.py --sweep-chunks   # the measurement behind FACTOR_CHUNK_BYTES
    python bench/bench_lstm.py --split          # where the kernel's time goes
    python bench/bench_lstm.py --floor          # the least time any NumPy LSTM kernel needs here

``--sweep-chunks`` times the fused ``lstm_sequence`` alone (forward + backward, every
gradient) at the benchmark's sizes and at the tiny recurrent net's of ``bench_engine.py``
(8 units, 32 steps, batch 64) for several ``recurrent.common.FACTOR_CHUNK_BYTES``, the
sizes alternating.

``--floor`` asks how close a NumPy kernel can come at all. It times, on buffers of the
kernel's sizes, a *skeleton* of one forward + backward that does less than any
correct LSTM must: per step the recurrent product, one ``exp`` over the four gates,
one ``tanh`` of the cell (via exp, the cheaper here), three calls for
``c = f c + i g``, one for ``h = o tanh(c)`` and one for the squash (forward); the
product back and two gate-gradient calls (backward); plus the four sequence-wide
products. Against PyTorch's WHOLE training step (embedding, dense layer, loss and
optimizer included), at the benchmark's sizes and at ``bench_engine.py``'s tiny
recurrent net (8 units, 32 steps of 4 features, batch 64, dense 2 on the last step,
SGD with momentum), the two alternating. Its time over PyTorch's is a lower bound on
purenet's time ratio for that step.
"""
import argparse
import os
import sys
import time


import blas_threads

THREADS = blas_threads.apply()                   # before NumPy loads its BLAS

import numpy as np  # noqa: E402  (after the thread settings)

# run from a checkout without installing
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FULL = {"vocab": 65, "embed": 64, "units": 256, "steps": 64, "batch": 32}
TINY = {"vocab": 11, "embed": 8, "units": 16, "steps": 6, "batch": 4}


def make_batch(sizes, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, sizes["vocab"], (sizes["batch"], sizes["steps"] + 1))
    return ids[:, :-1], ids[:, 1:]


def purenet_runner(x, y, sizes):
    """A function running n purenet training steps and returning the seconds taken."""
    from purenet.layers import Dense, serial
    from purenet.layers.embedding import Embedding
    from purenet.layers.recurrent import LSTM
    from purenet.optim import adam
    from purenet.random import key
    from purenet.train.step import train_step

    vocab = sizes["vocab"]
    model = serial(Embedding(vocab, sizes["embed"]), LSTM(sizes["units"], return_sequences=True),
                   Dense(vocab))
    _, params, state = model.init(key(0), (sizes["steps"],))
    optimizer = adam(1e-3)
    box = {"params": params, "opt": optimizer.init(params)}

    def run(n):
        start = time.perf_counter()
        for _ in range(n):
            box["params"], _, box["opt"], _ = train_step(
                model, "softmax_cross_entropy", optimizer, box["params"], state, box["opt"], x, y)
        return time.perf_counter() - start

    return run


def torch_runner(x, y, sizes):
    """The same model and step in PyTorch."""
    import torch

    vocab, embed, units = sizes["vocab"], sizes["embed"], sizes["units"]

    class CharLSTM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(vocab, embed)
            self.lstm = torch.nn.LSTM(embed, units, batch_first=True)
            self.out = torch.nn.Linear(units, vocab)

        def forward(self, ids):
            return self.out(self.lstm(self.embed(ids))[0])

    torch.manual_seed(0)
    model = CharLSTM()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).reshape(-1)

    def run(n):
        start = time.perf_counter()
        for _ in range(n):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt).reshape(-1, vocab), yt)
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    return run


def limit_threads(threads):
    import torch
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    except ImportError:
        pass


def profile(run):
    import cProfile
    import pstats
    profiler = cProfile.Profile()
    profiler.runcall(run, 10)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


CHUNKS = [16 << 10, 128 << 10, 256 << 10, 1 << 20, 1 << 40]


def sequence_gradient(b, t, f, h, rng):
    """``(loss, args)``: every gradient of the sum of ``lstm_sequence``'s outputs, a forward
    and backward of the fused kernel, and float32 arguments of batch b, t steps, f
    features and h units to call it with."""
    from purenet import grad
    from purenet.ops.recurrent import lstm
    args = [rng.standard_normal(s).astype(np.float32) * 0.1 for s in
            [(b, t, f), (b, h), (b, h), (f, 4 * h), (h, 4 * h), (4 * h,)]]
    return grad(lambda *a: lstm.lstm_sequence(*a)[0].sum(), argnums=(0, 1, 2, 3, 4, 5)), args


def sweep_chunks(rounds):
    """Best fwd+bwd ms of one LSTM sequence per FACTOR_CHUNK_BYTES, two sizes."""
    from purenet.ops.recurrent import common
    chosen, rng = common.FACTOR_CHUNK_BYTES, np.random.default_rng(0)
    cases = {"B32 T64 H256": (32, 64, 64, 256), "B64 T32 H8": (64, 32, 4, 8)}
    times = {(name, c): float("inf") for name in cases for c in CHUNKS}
    for _ in range(rounds):
        for name, (b, t, f, h) in cases.items():
            loss, args = sequence_gradient(b, t, f, h, rng)
            repeats = 5 if h > 100 else 100
            for c in CHUNKS:
                common.FACTOR_CHUNK_BYTES = c
                loss(*args)
                start = time.perf_counter()
                for _ in range(repeats):
                    loss(*args)
                times[name, c] = min(times[name, c], (time.perf_counter() - start) / repeats * 1e3)
    common.FACTOR_CHUNK_BYTES = chosen
    print("FACTOR_CHUNK_BYTES: ms for forward + backward of one lstm_sequence (best of rounds)")
    for name in cases:
        row = ", ".join(f"{'all' if c == CHUNKS[-1] else f'{c >> 10} KB'}: {times[name, c]:.2f}"
                        + (" (chosen)" if c == chosen else "") for c in CHUNKS)
        print(f"  {name}: {row}")


def kernel_split(rounds):
    """Where one lstm_sequence's forward + backward goes at the benchmark's sizes: the whole
    kernel, its 2 T per-step products (B x H by H x 4H, and back) alone, the forward's
    ``exp`` over all four gates alone, and NumPy's float32 exp and multiply per value."""
    b, t, f, h = FULL["batch"], FULL["steps"], FULL["embed"], FULL["units"]
    rng = np.random.default_rng(0)
    loss, args = sequence_gradient(b, t, f, h, rng)
    w_h, w_ht = args[4], np.ascontiguousarray(args[4].T)
    h_t, rec = rng.standard_normal((b, h)).astype(np.float32), np.empty((b, 4 * h), np.float32)
    dz, dh = rng.standard_normal((b, 4 * h)).astype(np.float32), np.empty((b, h), np.float32)
    gates = np.empty((4, b, h), np.float32)
    big, out = rng.standard_normal(1 << 20).astype(np.float32), np.empty(1 << 20, np.float32)

    def products():
        for _ in range(t):
            np.matmul(h_t, w_h, out=rec)
            np.matmul(dz, w_ht, out=dh)

    def gate_exps():
        for _ in range(t):
            np.exp(rec.reshape(b, 4, h).transpose(1, 0, 2), out=gates)

    parts = {"kernel fwd+bwd": lambda: loss(*args), "per-step products": products,
             "forward gate exps": gate_exps,
             "exp, 1M floats": lambda: np.exp(big, out=out),
             "multiply, 1M floats": lambda: np.multiply(big, big, out=out)}
    best = dict.fromkeys(parts, float("inf"))
    for _ in range(rounds):
        for name, fn in parts.items():
            fn()
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], (time.perf_counter() - start) * 1e3)
    print(f"one lstm_sequence, B{b} T{t} H{h} (ms, best of {rounds} rounds)")
    for name, ms in best.items():
        print(f"  {name:22s} {ms:7.2f}")
    print(f"  exp per float32 value {best['exp, 1M floats'] * 1e6 / (1 << 20):.2f} ns, "
          f"{best['exp, 1M floats'] / best['multiply, 1M floats']:.1f} x a multiply")


def skeleton(b, t, f, h, rng):
    """A function running the floor's skeleton (see the module docstring) once."""
    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32) * 0.1
    x, w_x, w_h, w_ht = arr(t * b, f + 1), arr(f + 1, 4 * h), arr(h, 4 * h), arr(4 * h, h)
    acts, dz, hs = arr(t * b, 4 * h), arr(t * b, 4 * h), arr(t * b, h)
    rec, gates, c, c2, tc, hh = arr(b, 4 * h), arr(4, b, h), arr(b, h), arr(b, h), arr(b, h), arr(b, h)
    dh, dc = arr(b, h), arr(b, h)

    def run():
        np.matmul(x, w_x, out=acts)                              # the projection
        for _ in range(t):
            np.matmul(hh, w_h, out=rec)
            np.exp(rec.reshape(4, b, h), out=gates)               # all gates
            np.divide(1, gates, out=gates)                        # the squash
            np.multiply(gates[1], c, out=c2)
            np.multiply(gates[0], gates[2], out=tc)
            np.add(c2, tc, out=c)
            np.exp(c, out=tc)                                     # tanh(c), via exp
            np.multiply(gates[3], tc, out=hh)
        for _ in range(t):
            np.multiply(dh, c, out=dc)
            np.multiply(dc, gates, out=gates)
            np.matmul(rec, w_ht, out=dh)
        hs.T @ dz, x.T @ dz, dz @ w_x[:-1].T                     # dW_h, [dW_x; db], dxs
    return run


def floor(rounds):
    """The skeleton's time, purenet's whole step and PyTorch's, at both sizes, alternating."""
    from bench_engine import purenet_steps, torch_steps
    rng = np.random.default_rng(0)
    x, y = make_batch(FULL)
    tx, ty = rng.standard_normal((64, 32, 4)).astype(np.float32), rng.integers(0, 2, 64)
    cases = {"B32 T64 H256 (bench_lstm)": (skeleton(32, 64, 64, 256, rng), purenet_runner(x, y, FULL),
                                            torch_runner(x, y, FULL), 10),
             "B64 T32 H8 (bench_engine tiny)": (skeleton(64, 32, 4, 8, rng),
                                                 lambda n: n / purenet_steps(tx, ty, n, True),
                                                 lambda n: n / torch_steps(tx, ty, n, True), 500)}
    print(f"ms (best of {rounds} alternating rounds): a skeleton doing less than any NumPy LSTM "
          "kernel must (fwd + bwd), and the whole training step of purenet and of PyTorch")
    with np.errstate(all="ignore"):
        for name, (bare, pure, ref, n) in cases.items():
            bare(), pure(2), ref(2)
            best = [float("inf")] * 3
            for _ in range(rounds):
                start = time.perf_counter()
                for _ in range(n):
                    bare()
                times = [time.perf_counter() - start, pure(n), ref(n)]
                best = [min(b, t / n * 1e3) for b, t in zip(best, times)]
            print(f"  {name}: skeleton {best[0]:.3f}, purenet {best[1]:.3f}, PyTorch {best[2]:.3f}; "
                  f"purenet / PyTorch {best[1] / best[2]:.2f}, and no NumPy kernel below "
                  f"{best[0] / best[2]:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--profile", action="store_true", help="profile purenet's step instead")
    parser.add_argument("--sweep-chunks", action="store_true",
                        help="time the LSTM backward's FACTOR_CHUNK_BYTES choices instead")
    parser.add_argument("--split", action="store_true",
                        help="time the LSTM kernel's parts (products, exp) instead")
    parser.add_argument("--floor", action="store_true",
                        help="time a skeleton of the least work any NumPy LSTM kernel does")
    parser.add_argument("--tiny", action="store_true",
                        help="small sizes and few steps: checks that the benchmark runs")
    args = parser.parse_args()
    sizes = TINY if args.tiny else FULL
    if args.tiny:
        args.steps, args.rounds = min(args.steps, 3), min(args.rounds, 1)
    limit_threads(args.threads)
    if args.sweep_chunks or args.split or args.floor:
        print(f"{blas_threads.cpu_model()}; threads {args.threads}")
        mode = sweep_chunks if args.sweep_chunks else floor if args.floor else kernel_split
        mode(max(args.rounds, 5))
        return
    x, y = make_batch(sizes)
    pure = purenet_runner(x, y, sizes)
    if args.profile:
        profile(pure)
        return
    ref = torch_runner(x, y, sizes)
    pure(3), ref(3)                                   # warm up
    rates = {"purenet": [], "pytorch": []}
    for _ in range(args.rounds):
        rates["pytorch"].append(args.steps / ref(args.steps))
        rates["purenet"].append(args.steps / pure(args.steps))
    best = {name: max(r) for name, r in rates.items()}
    print(f"{blas_threads.cpu_model()}; LSTM {sizes['units']} units, embedding {sizes['vocab']}x{sizes['embed']}, "
          f"sequence {sizes['steps']}, batch {sizes['batch']}, threads {args.threads}")
    for name, r in rates.items():
        print(f"{name:8s} {best[name]:6.1f} steps/s  (rounds: {', '.join(f'{v:.1f}' for v in r)})")
    print(f"ratio purenet/pytorch (steps/s): {best['purenet'] / best['pytorch']:.2f}")


if __name__ == "__main__":
    main()
