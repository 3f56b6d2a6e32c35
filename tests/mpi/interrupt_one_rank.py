"""Run under ``mpiexec -n 2``: rank 1 alone gets Ctrl-C (SIGINT) at the end of epoch 2.

Every rank must stop after the same step, with ``history.interrupted`` and the params
of the same completed epoch; rank 0 prints ``rank <r> <interrupted> <epochs> <checksum>``
for every rank.
"""
import os
import signal
import zlib

import numpy as np

from purenet import optim
from purenet.distributed import DataParallel, abort_on_error
from purenet.layers import Dense, serial
from purenet.random import key
from purenet.train import LambdaCallback, fit
from purenet.tree import tree_leaves


def main():
    parallel = DataParallel()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 4)), rng.standard_normal((64, 1))
    model = serial(Dense(8, "tanh"), Dense(1))
    _, params, _ = model.init(key(0), (4,))

    def ctrl_c(epoch, logs, run):
        if parallel.rank == 1 and epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)

    result = fit(model, params, "mse", optim.sgd(0.01), x, y, epochs=1000, batch_size=8,
                 verbose=0, distributed=parallel, callbacks=[LambdaCallback(on_epoch_end=ctrl_c)])
    crc = 0
    for leaf in tree_leaves(result.params):
        crc = zlib.crc32(np.ascontiguousarray(leaf).tobytes(), crc)
    # rank 0 prints every rank's row: two processes printing at once may interleave
    rows = parallel.comm.gather(f"rank {parallel.rank} {result.history.interrupted} "
                                f"{len(result.history)} {crc}")
    if parallel.rank == 0:
        print("\n".join(rows), flush=True)


if __name__ == "__main__":
    with abort_on_error():
        main()
