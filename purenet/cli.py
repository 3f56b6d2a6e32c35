"""The ``purenet`` command line.

    purenet train boston [--epochs N] [--lr X] [--seed S] [--out DIR]
    purenet train fashion-mnist --model mlp|cnn|book [--epochs N] [--batch-size B] [--out DIR]
    purenet train mnist --data-dir DIR ...
    purenet evaluate MODEL.npz --data fashion-mnist|mnist [--data-dir DIR]
    purenet predict MODEL.npz IMAGE.png|IMAGES.npy ...
    purenet train shakespeare --cell lstm|gru|rnn [--hidden H] [--layers L] [--seq-len T]
                              [--batch-size B] [--minutes M | --steps N] [--text FILE]
    purenet generate MODEL.npz --prime "ROMEO:" --length 500 --temperature 0.8 [--seed S]
    purenet summary MODEL.npz
"""
import argparse
import importlib
import sys

from .errors import PurenetError

# data set name -> recipe module (purenet.recipes.<module>)
RECIPES = {"boston": "boston", "fashion-mnist": "fashion_mnist", "mnist": "fashion_mnist",
           "shakespeare": "shakespeare"}


def _recipe(name):
    return importlib.import_module(f".recipes.{RECIPES[name]}", __package__)


def _add_train(commands):
    train = commands.add_parser("train", help="train a recipe on a data set")
    recipes = train.add_subparsers(dest="recipe", required=True, metavar="DATASET")
    for name in RECIPES:
        module = _recipe(name)
        p = recipes.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(p)
        p.add_argument("--out", default=f"runs/{name}", help="output directory (runs/%(default)s)")
        p.add_argument("--no-progress", dest="progress", action="store_false",
                       help="no progress bars")
        p.set_defaults(handler=module.run)


def _summary(args):
    from .io import load_model
    from .summary import summary
    model, params, _, meta = load_model(args.model)
    print(summary(model, meta["in_shape"], params))


def _evaluate(args):
    from .io import load_model
    model, params, state, meta = load_model(args.model)
    args.recipe = args.data
    print(_recipe(args.data).evaluate_saved(model, params, state, meta, args))


def _predict(args):
    from .io import load_model
    model, params, state, meta = load_model(args.model)
    recipe = meta["extra"].get("recipe")
    if recipe not in RECIPES or not hasattr(_recipe(recipe), "predict_files"):
        raise PurenetError(f"{args.model}: 'predict' works on image models; this one is from {recipe!r}")
    print(_recipe(recipe).predict_files(model, params, state, meta, args.inputs))


def _generate(args):
    from .io import load_model
    model, params, _, meta = load_model(args.model)
    print(_recipe("shakespeare").generate_saved(model, params, meta, args))


def build_parser():
    parser = argparse.ArgumentParser(prog="purenet", description="Deep learning from scratch on NumPy.")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train(commands)
    p = commands.add_parser("evaluate", help="score a saved model on a data set's test split")
    p.add_argument("model", help="a model file (.npz) written by purenet")
    p.add_argument("--data", required=True, choices=[n for n in RECIPES if n != "boston"])
    p.add_argument("--data-dir", default=None, help="directory of IDX files")
    p.set_defaults(handler=_evaluate)
    p = commands.add_parser("predict", help="classify image files (.png, .npy) with a saved model")
    p.add_argument("model", help="a model file (.npz) written by purenet")
    p.add_argument("inputs", nargs="+", help="image files (.png/.jpg) or .npy arrays of images")
    p.set_defaults(handler=_predict)
    p = commands.add_parser("generate", help="sample text from a saved character model")
    p.add_argument("model", help="a model file (.npz) written by 'purenet train shakespeare'")
    p.add_argument("--prime", default="\n", help="text to start from")
    p.add_argument("--length", type=int, default=500, help="characters to generate")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_generate)
    p = commands.add_parser("summary", help="print a saved model's layers, shapes and parameters")
    p.add_argument("model", help="a model file (.npz) written by purenet")
    p.set_defaults(handler=_summary)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except PurenetError as err:
        print(f"purenet: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("purenet: interrupted", file=sys.stderr)
        return 130
    return 0
