"""Choose the test-time views of saved Fashion-MNIST models on the validation split alone.

For each model file (from ``purenet train fashion-mnist``), prints its validation accuracy
scored on the images alone and on the mean softmax over three sets of shifted and flipped
views: 6 (the image, its mirror, the 4 one-pixel shifts), 10 (no shift and the 4 one-pixel
shifts, each unflipped and flipped) and 18 (every shift of up to a pixel, unflipped and
flipped: ``shift_flip_views(1)``, the outcomes of the training augmentation). The test set
is never loaded.

    python examples/choose_views.py runs/fashion-mnist/cnn.npz [more.npz ...] [--data-dir DIR]
"""
import argparse
import functools

import purenet as pn
from purenet.data.augment import shift_flip_views, shifted_view
from purenet.recipes.fashion_mnist import FASHION_MNIST_DIR, load_data

ONE_PIXEL = [(1, 0), (-1, 0), (0, 1), (0, -1)]


def view(move=(0, 0), mirrored=False):
    """The function ``x -> x`` mirrored (if asked), then shifted by ``move`` (down, right)."""
    return functools.partial(shifted_view, move=move, mirrored=mirrored)


def view_sets():
    """``{name: [x -> x', ...]}``, the candidates compared (the image alone first)."""
    return {"image alone": [view()],
            "6 views": [view(), view(mirrored=True)] + [view(move=m) for m in ONE_PIXEL],
            "10 views": [view(move=m, mirrored=f) for f in (False, True)
                         for m in [(0, 0)] + ONE_PIXEL],
            "18 views": shift_flip_views(1)}


def validation_accuracies(model, params, state, x_val, y_val):
    """``{view set: validation accuracy}`` of one model."""
    return {name: float((pn.predict_averaged(model, params, x_val, views, state=state)
                         .argmax(axis=1) == y_val).mean())
            for name, views in view_sets().items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model files from purenet train fashion-mnist")
    parser.add_argument("--data-dir", default=FASHION_MNIST_DIR)
    args = parser.parse_args()
    _, (x_val, y_val), _, _ = load_data(args.data_dir)     # the test set is not used here
    for path in args.models:
        model, params, state, _ = pn.load_model(path)
        scores = validation_accuracies(model, params, state, x_val, y_val)
        print(f"{path}: " + ", ".join(f"{name} {acc:.4f}" for name, acc in scores.items()))


if __name__ == "__main__":
    main()
