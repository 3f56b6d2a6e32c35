"""The ``purenet`` command line.

    purenet train boston [--epochs N] [--lr X] [--seed S] [--out DIR]
    purenet train fashion-mnist --model mlp|cnn|book [--epochs N] [--batch-size B] [--out DIR]
    purenet train mnist --data-dir DIR ...
    purenet train shakespeare --cell lstm|gru|rnn [--hidden H] [--layers L] [--seq-len T]
                              [--batch-size B] [--minutes M | --steps N] [--text FILE]
    purenet train autoencoder [--latent 28] [--epochs N] [--batch-size B] [--data-dir DIR]
    purenet evaluate MODEL.npz --data fashion-mnist|mnist [--data-dir DIR]
    purenet predict MODEL.npz IMAGE.png|IMAGES.npy ...
    purenet encode MODEL.npz IMAGE.png|IMAGES.npy ...
    purenet generate MODEL.npz --prime "ROMEO:" --length 500 --temperature 0.8 [--seed S]
    purenet export MODEL.npz --format onnx|safetensors [-o FILE]
    purenet summary MODEL.npz

Every ``train`` also takes ``--checkpoint-dir DIR``, ``--resume``, ``--no-progress``,
``--workers N`` and ``--sync-batch-norm``. ``mpiexec -n N purenet train ...`` (or
``--workers N``, which starts mpiexec) trains on N processes, data-parallel, with
the result of one process; rank 0 alone prints and writes.
Exit status: 0 done, 1 training diverged, 2 a usage or input error (one line on
stderr, ``purenet: error: ...``), 130 stopped with Ctrl-C.
"""
import argparse
import difflib
import importlib
import os
import shutil
import subprocess
import sys
import warnings
from contextlib import nullcontext

from .errors import ConfigError, PurenetError
from .recipes.common import RunDiverged, RunInterrupted, add_common_arguments, non_negative_int, \
    positive_float

# data set name -> recipe module (purenet.recipes.<module>)
RECIPES = {"boston": "boston", "fashion-mnist": "fashion_mnist", "mnist": "fashion_mnist",
           "shakespeare": "shakespeare", "autoencoder": "autoencoder"}
IMAGE_DATA = ("fashion-mnist", "mnist")

WHERE_RUNS_WRITE = """\
where a run writes:
  A run that completes writes its model(s), metrics.json and plots into OUT.
  Ctrl-C stops a run at once: it writes the model(s) of the last completed epoch
  (shakespeare: of the best validation so far) and a metrics.json marked
  "interrupted": true, with the epochs actually run, into OUT/interrupted/, and
  exits with status 130. A run whose training loss became NaN or inf (or, for
  shakespeare, that ended no better than chance) writes into OUT/diverged/ and
  exits with status 1. Neither ever replaces a finished run's files in OUT.
  With --checkpoint-dir, the same command plus --resume continues the run.

exit status: 0 done, 1 diverged, 2 usage or input error, 130 interrupted"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, with exit status 2."""

    def error(self, message):
        self.exit(2, f"purenet: error: {message} (see '{self.prog} --help')\n")


def _recipe(name):
    return importlib.import_module(f".recipes.{RECIPES[name]}", __package__)


def _add_train(commands):
    train = commands.add_parser("train", help="train a recipe on a data set",
                                description="Train a recipe on a data set. Every recipe writes "
                                            "its model(s), metrics.json and plots into --out.")
    recipes = train.add_subparsers(dest="recipe", required=True, metavar="DATASET",
                                   parser_class=_Parser)
    for name in RECIPES:
        module = _recipe(name)
        doc = (module.__doc__ or "").strip()
        p = recipes.add_parser(name, help=module.SHORT_HELP, description=doc,
                               epilog=WHERE_RUNS_WRITE,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        add_common_arguments(p, name)
        p.set_defaults(handler=module.run, _parser=p)


def _load(path):
    from .io import load_model
    return load_model(path)


def _summary(args):
    from .summary import summary
    model, params, _, meta = _load(args.model)
    print(summary(model, meta["in_shape"], params))


def _evaluate(args):
    model, params, state, meta = _load(args.model)
    args.recipe = args.data
    print(_recipe(args.data).evaluate_saved(model, params, state, meta, args))


def _predict(args):
    model, params, state, meta = _load(args.model)
    images = _recipe("fashion-mnist")
    images.check_image_model(meta, args.model, "predict")
    print(images.predict_files(model, params, state, meta, args.inputs))


def _encode(args):
    model, params, state, meta = _load(args.model)
    print(_recipe("autoencoder").encode_files(model, params, state, meta, args.model,
                                              args.inputs))


def _generate(args):
    model, params, _, meta = _load(args.model)
    print(_recipe("shakespeare").generate_saved(model, params, meta, args))


EXPORT_FORMATS = {"onnx": ".onnx", "safetensors": ".safetensors"}


def _export(args):
    target = args.output or os.path.splitext(args.model)[0] + EXPORT_FORMATS[args.format]
    if os.path.abspath(target) == os.path.abspath(args.model):
        raise ConfigError(f"{target}: the export would replace the model file itself; "
                          "give another -o FILE")
    model, params, state, meta = _load(args.model)
    if args.format == "onnx":
        from .export import export_onnx
        export_onnx(model, params, state, meta["in_shape"], target)
    else:
        from .io import save_model
        save_model(target, model, params, state, in_shape=meta["in_shape"], extra=meta["extra"],
                   format="safetensors")
    print(f"wrote {target}")


def _version():
    import platform

    import numpy as np

    from . import __version__
    return f"purenet {__version__} (numpy {np.__version__}, python {platform.python_version()})"


def build_parser():
    parser = _Parser(prog="purenet", description="Deep learning from scratch on NumPy.",
                     epilog="exit status: 0 done, 1 training diverged, 2 usage or input error, "
                            "130 interrupted (Ctrl-C)")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)
    _add_train(commands)
    p = commands.add_parser("evaluate", help="score a saved image model on a data set's test split")
    p.add_argument("model", help="a model file (.npz) written by 'purenet train fashion-mnist' "
                                 "or 'purenet train mnist'")
    p.add_argument("--data", required=True, choices=IMAGE_DATA,
                   help="which test split (required; mnist needs --data-dir)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="directory of MNIST-format IDX files (default: Fashion-MNIST's "
                        "install location)")
    p.set_defaults(handler=_evaluate, _parser=p)
    p = commands.add_parser("predict", help="classify image files (.png, .npy) with a saved model")
    p.add_argument("model", help="a model file (.npz) written by 'purenet train fashion-mnist' "
                                 "or 'purenet train mnist'")
    p.add_argument("inputs", nargs="+", help="image files (.png/.jpg) or .npy arrays of "
                                             "images, 28x28 greyscale")
    p.set_defaults(handler=_predict, _parser=p)
    p = commands.add_parser("encode", help="print the latent codes of image files (.png, .npy) "
                                           "by a saved autoencoder")
    p.add_argument("model", help="a model file (.npz) written by 'purenet train autoencoder'")
    p.add_argument("inputs", nargs="+", help="image files (.png/.jpg) or .npy arrays of "
                                             "images, 28x28 greyscale")
    p.set_defaults(handler=_encode, _parser=p)
    p = commands.add_parser("generate", help="sample text from a saved character model")
    p.add_argument("model", help="a model file (.npz) written by 'purenet train shakespeare'")
    p.add_argument("--prime", default="\n", help="text to start from (default: a newline)")
    p.add_argument("--length", type=non_negative_int, default=500, metavar="N",
                   help="characters to generate after the prime (default: 500)")
    p.add_argument("--temperature", type=positive_float, default=0.8, metavar="T",
                   help="sampling temperature, above 0; lower is more conservative "
                        "(default: 0.8)")
    p.add_argument("--seed", type=non_negative_int, default=0, metavar="N",
                   help="sampling seed, 0 or more (default: 0)")
    p.set_defaults(handler=_generate, _parser=p)
    p = commands.add_parser("export", help="write a saved model as ONNX or safetensors",
                            description="Write a saved model as an ONNX graph (for ONNX Runtime "
                                        "and others; needs the onnx package) or as a "
                                        "safetensors file (weights for NumPy, PyTorch and "
                                        "others, with the architecture in its metadata; "
                                        "purenet loads it like an .npz).")
    p.add_argument("model", help="a model file written by purenet (.npz or .safetensors)")
    p.add_argument("--format", required=True, choices=sorted(EXPORT_FORMATS),
                   help="the file format to write (required)")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="where to write (default: the model's path with the format's extension, "
                        ".onnx or .safetensors, in place of its own)")
    p.set_defaults(handler=_export, _parser=p)
    p = commands.add_parser("summary", help="print a saved model's layers, shapes and parameters")
    p.add_argument("model", help="a model file (.npz) written by purenet")
    p.set_defaults(handler=_summary, _parser=p)
    return parser


def _unrecognized(parser, args, extras):
    """The one-line error for unknown arguments, with the closest known flag."""
    which = getattr(args, "_parser", parser)
    known = [s for action in which._actions for s in action.option_strings]
    hints = []
    for token in extras:
        flag = token.split("=", 1)[0]
        close = difflib.get_close_matches(flag, known, n=1) if flag.startswith("-") else []
        if close:
            hints.append((close[0], flag))
    hint = ""
    if len(hints) == 1:
        hint = f" (did you mean {hints[0][0]}?)"
    elif hints:
        hint = f" (did you mean {', '.join(f'{a} for {b}' for a, b in hints)}?)"
    which.error(f"unrecognized arguments: {' '.join(extras)}{hint}")


def _one_line(text):
    return " ".join(str(text).split())


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"purenet: warning: {_one_line(message)}", file=sys.stderr)


def _os_error(err):
    if err.filename is not None:
        return f"{err.filename}: {err.strerror or err}"
    return str(err)


def _launch(workers, argv):
    """``--workers N``: the same command on N processes, started by mpiexec, each with its
    share of the cores for BLAS unless the environment sets thread counts."""
    from .distributed import INSTALL_HINT, thread_settings
    mpiexec = shutil.which("mpiexec")
    if importlib.util.find_spec("mpi4py") is None or mpiexec is None:
        missing = "mpi4py" if mpiexec else "mpiexec"
        raise ConfigError(f"--workers {workers} needs MPI ({missing} not found): {INSTALL_HINT}")
    env = {**os.environ, **thread_settings(workers, os.environ)}
    try:
        return subprocess.call([mpiexec, "-n", str(workers), sys.executable, "-m", "purenet",
                                *argv], env=env)
    except KeyboardInterrupt:
        return 130


def _distributed(args):
    """Under an MPI launcher with more than one process: the ``DataParallel`` the
    recipes train with (rank 0 alone prints), and the context that turns an error
    on one rank into a stop of all; else ``(None, nullcontext())``."""
    from .distributed import DataParallel, abort_on_error, launched_size
    if args.command != "train" or launched_size() < 2:
        return None, nullcontext()
    parallel = DataParallel(sync_batch_norm=args.sync_batch_norm)
    _note_threads(parallel)
    if not parallel.writes:
        sys.stdout = open(os.devnull, "w")
    return parallel, abort_on_error(parallel.comm, prefix="purenet: error: ",
                                    passing=(RunInterrupted, RunDiverged))


def _note_threads(parallel):
    """Say (once) how to avoid oversubscribing the cores when several processes on this
    machine were started without thread counts (``--workers`` sets them)."""
    from .distributed import cores, thread_settings
    here = parallel.comm.Split_type(parallel.MPI.COMM_TYPE_SHARED).Get_size()
    settings = thread_settings(here, os.environ)
    if parallel.writes and here > 1 and settings:
        print(f"purenet: note: {here} processes share this machine's {cores()} cores, and "
              "each one's BLAS may start a thread per core; for speed set "
              f"OPENBLAS_NUM_THREADS={settings['OPENBLAS_NUM_THREADS']} and OMP_NUM_THREADS="
              f"{settings['OMP_NUM_THREADS']} for mpiexec (--workers {here} does that)",
              file=sys.stderr, flush=True)


def main(argv=None):
    """Run the command line; returns the exit status (see the module docstring)."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:
            _unrecognized(parser, args, extras)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 2)
    args.argv = argv
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            args.distributed, guard = _distributed(args)
            if args.distributed is None and (getattr(args, "workers", None) or 1) > 1:
                from .distributed import launched_size
                if launched_size() < 2:
                    return _launch(args.workers, argv)
            with guard:
                args.handler(args)
        except RunInterrupted as stop:
            print(f"purenet: {_one_line(stop)}", file=sys.stderr)
            return 130
        except RunDiverged as err:
            print(f"purenet: error: {_one_line(err)}", file=sys.stderr)
            return 1
        except PurenetError as err:
            print(f"purenet: error: {_one_line(err)}", file=sys.stderr)
            return 2
        except BrokenPipeError:             # the reader went away (| head): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except OSError as err:
            print(f"purenet: error: {_one_line(_os_error(err))}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("purenet: interrupted", file=sys.stderr)
            return 130
    return 0
