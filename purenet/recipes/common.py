"""What every recipe writes: the run's metadata, its metrics file and its models."""
import os
import platform
import sys

import numpy as np


def versions():
    from .. import __version__
    return {"purenet": __version__, "numpy": np.__version__, "python": platform.python_version()}


def run_header(args, seconds):
    """The fields every ``metrics.json`` starts with."""
    return {"command": "purenet " + " ".join(sys.argv[1:]), "seed": args.seed,
            "wall_seconds": round(seconds, 2), "versions": versions()}


def out_path(args, name):
    os.makedirs(args.out, exist_ok=True)
    return os.path.join(args.out, name)
