"""Run under ``mpiexec -n N`` with a directory argument: train the MLP of
``equal_training`` data-parallel for one epoch, writing its checkpoint there."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from equal_training import mlp  # noqa: E402
from purenet.distributed import DataParallel, abort_on_error  # noqa: E402
from purenet.random import key  # noqa: E402
from purenet.train import fit  # noqa: E402


def main(directory):
    model, in_shape, x, y, loss, opt, batch = mlp()
    _, params, state = model.init(key(0), in_shape, np.float64)
    fit(model, params, loss, opt, x, y, state=state, epochs=1, batch_size=batch, seed=5,
        verbose=0, distributed=DataParallel(), checkpoint_dir=directory)


if __name__ == "__main__":
    with abort_on_error():
        main(sys.argv[1])
