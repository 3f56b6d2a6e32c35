"""Epoch time of the fashion-mnist MLP and CNN recipes on one or two processes,
purenet (``fit(..., distributed=DataParallel())`` over MPI) next to PyTorch
(DistributedDataParallel, gloo backend, on the CPU), with the same layouts:

    1 process x 2 threads,   1 process x 1 thread,   2 processes x 1 thread

Synthetic 28x28 images, the recipes' batch size (128) and optimizer (Adam). Each
cell is the median of ``--epochs`` timed epochs after one untimed warm-up epoch.
Scaling efficiency = (1x1 time) / (2 x (2x1 time)): 100 % is a perfect halving.

    python bench/bench_distributed.py                     # 6000 images, 2 epochs
    python bench/bench_distributed.py --images 512 --epochs 1 --models mlp   # a quick look

Each layout runs in its own processes, started with ``mpiexec -n P`` and
OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS set to T.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

LAYOUTS = [(1, 2), (1, 1), (2, 1)]          # (processes, threads each)
BATCH = 128


def data(images, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((images, 1, 28, 28)).astype(np.float32)
    return x, rng.integers(0, 10, images)


# --- one layout, inside mpiexec -----------------------------------------------------

def rank_and_size():
    return int(os.environ.get("PMI_RANK", 0)), int(os.environ.get("PMI_SIZE", 1))


def run_purenet(model_name, images, epochs):
    from purenet import optim
    from purenet.distributed import DataParallel, abort_on_error
    from purenet.random import key
    from purenet.recipes.fashion_mnist import MODELS
    from purenet.train import Callback, fit

    class Clock(Callback):
        def __init__(self):
            self.times = []

        def on_epoch_begin(self, epoch, run):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs, run):
            self.times.append(time.perf_counter() - self.start)

    _, size = rank_and_size()
    with abort_on_error():
        x, y = data(images)
        model = MODELS[model_name].build()
        _, params, state = model.init(key(0), (1, 28, 28))
        clock = Clock()
        parallel = DataParallel() if size > 1 else None
        fit(model, params, "softmax_cross_entropy", optim.adam(1e-3), x, y, state=state,
            epochs=epochs + 1, batch_size=BATCH, verbose=0, callbacks=[clock],
            distributed=parallel)
        return clock.times[1:]


def torch_model(name):
    from torch_models import recipe_cnn, recipe_mlp
    return recipe_mlp() if name == "mlp" else recipe_cnn()


def run_torch(model_name, images, epochs):
    import torch
    import torch.distributed as dist
    rank, size = rank_and_size()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))
    torch.manual_seed(0)
    x, y = data(images)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    model = torch_model(model_name)
    if size > 1:
        dist.init_process_group("gloo", rank=rank, world_size=size)
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for epoch in range(epochs + 1):
        start = time.perf_counter()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for begin in range(0, len(x), BATCH):
            idx = order[begin:begin + BATCH]
            idx = idx[rank * len(idx) // size:(rank + 1) * len(idx) // size]   # the shard
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
        times.append(time.perf_counter() - start)
    if size > 1:
        dist.destroy_process_group()
    return times[1:]


def worker(args):
    run = run_purenet if args.worker == "purenet" else run_torch
    times = run(args.model, args.images, args.epochs)
    if rank_and_size()[0] == 0:
        print("RESULT " + json.dumps({"seconds": float(np.median(times))}), flush=True)


# --- the driver ---------------------------------------------------------------------

def measure(library, model, processes, threads, args):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(29500 + os.getpid() % 1000)}
    command = [shutil.which("mpiexec"), "-n", str(processes), sys.executable,
               os.path.abspath(__file__), "--worker", library, "--model", model,
               "--images", str(args.images), "--epochs", str(args.epochs)]
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          timeout=args.timeout)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])["seconds"]
    raise RuntimeError(f"{library} {model} {processes}x{threads} failed:\n{done.stderr[-2000:]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--libraries", nargs="+", default=["purenet", "torch"],
                        choices=["purenet", "torch"])
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after a warm-up)")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--worker", choices=["purenet", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if shutil.which("mpiexec") is None:
        sys.exit('needs mpiexec: pip install "purenet[mpi]"')
    header = f"{'model':6} {'library':8}" + "".join(f"{f'{p}x{t}':>10}" for p, t in LAYOUTS)
    print(f"{args.images} images, batch {BATCH}: seconds per epoch (processes x threads)")
    print(header + f"{'2-process efficiency':>22}")
    for model in args.models:
        for library in args.libraries:
            seconds = {layout: measure(library, model, *layout, args) for layout in LAYOUTS}
            efficiency = seconds[(1, 1)] / (2 * seconds[(2, 1)])
            print(f"{model:6} {library:8}" + "".join(f"{seconds[l]:10.2f}" for l in LAYOUTS)
                  + f"{efficiency:21.0%}", flush=True)


if __name__ == "__main__":
    main()
