"""A number with a gradient: automatic differentiation, from one number to a network.

Chapter 6 of Deep Learning from Scratch builds "a number with a gradient": every
operation on it remembers how to pass a gradient back to its inputs, so the
chain rule runs by itself. ``purenet.grad`` does this for any Python function of
primitives: inside it, the argument is such a traced number (or array).

First the book's example, d/dx (4x + 3)^2, against the derivative by hand.
Then the same idea at work: the loss of a two-layer network written as a plain
function, its gradient by ``pn.grad``, and a few steps of gradient descent.

Run:  python examples/autodiff.py
"""
import numpy as np

import purenet as pn
from purenet import ops


# --- 1. one number ------------------------------------------------------------------

def f(x):
    return (4 * x + 3) ** 2


def df_by_hand(x):
    # chain rule: the outer square gives 2 (4x + 3), the inner 4x + 3 gives 4
    return 8 * (4 * x + 3)


def compare_with_hand_derivative(points=(-1.0, 0.0, 2.0)):
    for x in points:
        auto = float(pn.grad(f)(x))
        print(f"x = {x:4.1f}   f(x) = {f(x):5.1f}   pn.grad: {auto:6.1f}   "
              f"8(4x + 3): {df_by_hand(x):6.1f}")
        assert np.isclose(auto, df_by_hand(x))


# --- 2. a network -------------------------------------------------------------------

def sigmoid(z):
    return 1 / (1 + ops.exp(-z))


def predict(params, x):
    hidden = sigmoid(x @ params["W1"] + params["b1"])
    return hidden @ params["W2"] + params["b2"]


def loss(params, x, y):
    # mean squared error; only params are differentiated, x and y are plain data
    return ops.mean((predict(params, x) - y) ** 2)


def make_data(n=64, seed=0):
    """y = sin(2 x1) + x2 / 2, plus a little noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.5, 1.5, (n, 2))
    y = np.sin(2 * x[:, :1]) + x[:, 1:] / 2 + 0.05 * rng.standard_normal((n, 1))
    return x, y


def init_params(hidden=16, seed=0):
    rng = np.random.default_rng(seed)
    return {"W1": rng.standard_normal((2, hidden)), "b1": np.zeros(hidden),
            "W2": rng.standard_normal((hidden, 1)) / np.sqrt(hidden), "b2": np.zeros(1)}


def train(steps=300, learning_rate=0.5, seed=0, report_every=50):
    """Plain gradient descent; returns the final params and the loss at every step."""
    x, y = make_data(seed=seed)
    params = init_params(seed=seed)
    loss_and_grad = pn.value_and_grad(loss)        # gradient with respect to params
    losses = []
    for step in range(steps + 1):
        value, grads = loss_and_grad(params, x, y)
        losses.append(float(value))
        if step % report_every == 0:
            print(f"step {step:4d}   loss {value:.4f}")
        # grads has the same keys and shapes as params
        params = {name: params[name] - learning_rate * grads[name] for name in params}
    return params, losses


def main():
    print("d/dx (4x + 3)^2 by purenet.grad and by hand:")
    compare_with_hand_derivative()

    print("\nA two-layer network: its gradient checked against central differences ...")
    x, y = make_data()
    pn.check_grads(loss, init_params(), x, y)
    print("... agrees. Gradient descent on the loss:")
    _, losses = train()
    baseline = np.mean((y - y.mean()) ** 2)
    print(f"loss fell from {losses[0]:.4f} to {losses[-1]:.4f} "
          f"(always predicting the mean of y scores {baseline:.4f})")
    return losses


if __name__ == "__main__":
    main()
