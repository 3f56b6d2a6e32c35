"""A new primitive, end to end: define it, check its gradient, train with it, save and reload.

The activation is swish, ``y = x * sigmoid(x)``. Its backward is derived by hand
beside its forward, as for every primitive in purenet:

    dy/dx = sigmoid(x) + x * sigmoid(x) * (1 - sigmoid(x)) = s + y (1 - s)

Run:  python examples/custom_activation.py [--out DIR]
"""
import argparse
import os
import tempfile

import numpy as np

import purenet as pn
from purenet.ops import activations


@pn.primitive
def swish(x):
    """x * sigmoid(x), elementwise."""
    s = 0.5 + 0.5 * np.tanh(0.5 * x)          # sigmoid without overflow
    y = x * s

    def backward(g):
        # d(x s)/dx = s + x s (1 - s) = s + y (1 - s)
        return (g * (s + y * (1.0 - s)),)

    return y, backward


def main(out_dir):
    # 1. The hand-written backward against central differences, in float64.
    x_check = np.random.default_rng(0).standard_normal((4, 3))
    pn.check_grads(swish, x_check)

    # The same function written with primitives needs no backward: the engine derives it.
    # A fused primitive is worth writing when it saves memory or passes over the data.
    def swish_composed(x):
        return x * pn.ops.sigmoid(x)

    fused = pn.grad(lambda x: swish(x).sum())(x_check)
    composed = pn.grad(lambda x: swish_composed(x).sum())(x_check)
    assert np.allclose(fused, composed)

    # 2. Registered by name, it works in any layer and in saved models.
    activations.register(swish)
    x, y, _ = pn.data.load_boston()
    x = pn.data.standardize(x, pn.data.fit_standardizer(x))
    (x_tr, y_tr), (x_te, y_te) = pn.data.book_boston_split(x, y.reshape(-1, 1))
    model = pn.serial(pn.Dense(64, "swish", w_init="he_normal"), pn.Dense(1))
    _, params, state = model.init(pn.key(0), x_tr.shape[1:])
    result = pn.fit(model, params, "mse", pn.optim.adam(3e-3), x_tr, y_tr, state=state,
                    epochs=100, batch_size=32, progress=False)
    scores = pn.evaluate(model, result.params, x_te, y_te, loss="mse", metrics=["mae", "rmse"])
    print(f"Boston test MAE {scores['mae']:.2f}, RMSE {scores['rmse']:.2f}")

    # 3. Saved and reloaded: the file names the activation, not its code.
    path = os.path.join(out_dir, "swish_boston.npz")
    pn.save_model(path, model, result.params, result.state, in_shape=x_tr.shape[1:])
    loaded, params2, state2, _ = pn.load_model(path)
    assert np.array_equal(loaded(params2, x_te, state2), model(result.params, x_te, result.state))
    print(f"saved and reloaded {path}")
    return scores


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="directory for the model file (default: a temporary one)")
    args = parser.parse_args()
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        main(args.out)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(tmp)
