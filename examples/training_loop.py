"""``fit`` unrolled: the training loop written out with purenet's pure pieces.

Everything a step touches is a value passed in and returned: params, layer state,
optimizer state and random keys. Nothing hides in objects, so the loop below is
the whole story, and running it twice gives the same numbers.

The model is the book's chapter-3 network with two hidden layers, trained on
Boston housing with SGD, momentum and a learning rate that decays each epoch.

Run:  python examples/training_loop.py
"""
import numpy as np

import purenet as pn

EPOCHS, BATCH = 50, 32


def load():
    x, y, _ = pn.data.load_boston()
    x = pn.data.standardize(x, pn.data.fit_standardizer(x))
    return pn.data.book_boston_split(x, y.reshape(-1, 1))


def train(seed=0):
    (x_tr, y_tr), (x_te, y_te) = load()
    model = pn.serial(pn.Dense(13, "sigmoid"), pn.Dense(13, "sigmoid"), pn.Dense(1))
    root = pn.key(seed)
    init_key, data_key = pn.random.split(root, 2)
    _, params, state = model.init(init_key, x_tr.shape[1:])

    steps_per_epoch = -(-len(x_tr) // BATCH)
    lr = pn.optim.schedules.per_epoch(pn.optim.schedules.exponential_decay(0.01, 0.001, EPOCHS - 1),
                                      steps_per_epoch)
    opt = pn.optim.sgd(lr, momentum=0.9)
    opt_state = opt.init(params)

    for epoch in range(EPOCHS):
        epoch_key = pn.random.fold_in(data_key, epoch)          # a fresh shuffle per epoch
        losses = []
        for xb, yb in pn.data.batches(x_tr, y_tr, BATCH, epoch_key):
            loss, grads, state = pn.loss_and_grads(model, "mse", params, state, xb, yb)
            updates, opt_state = opt.update(grads, opt_state, params)
            params = pn.optim.apply_updates(params, updates)
            losses.append(loss)
        if (epoch + 1) % 10 == 0:
            test_mse = float(pn.losses.mean_squared_error(model(params, x_te, state), y_te))
            print(f"epoch {epoch + 1:3d}  train loss {np.mean(losses):7.3f}  test RMSE "
                  f"{np.sqrt(test_mse):.2f}  lr {opt.learning_rate(opt_state):.4f}")
    return params


if __name__ == "__main__":
    first, second = train(), train()
    same = all(np.array_equal(a, b) for a, b in zip(pn.tree.tree_leaves(first),
                                                      pn.tree.tree_leaves(second)))
    print("two runs from the same seed give identical params:", same)
