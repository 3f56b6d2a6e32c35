"""The fashion-mnist recipes' networks in PyTorch, for the benchmarks that compare against it.

Built from the recipe's own constants, so both sides stay the same network when the
recipe changes.
"""


def recipe_cnn():
    """The ``cnn`` recipe: conv blocks (conv without bias, batch norm and 2x2 max pool in
    the recipe's order, ReLU), dense 128."""
    import torch.nn as nn
    from purenet.recipes.fashion_mnist import CNN_FILTERS, CNN_KERNELS, CNN_POOL_FIRST
    layers = []
    for c_in, c_out, size in zip((1,) + CNN_FILTERS, CNN_FILTERS, CNN_KERNELS):
        norm_pool = [nn.BatchNorm2d(c_out), nn.MaxPool2d(2)]
        layers += [nn.Conv2d(c_in, c_out, size, padding=size // 2, bias=False),
                   *(norm_pool[::-1] if CNN_POOL_FIRST else norm_pool), nn.ReLU()]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(CNN_FILTERS[-1] * 3 * 3, 128),
                         nn.ReLU(), nn.Dropout(0.4), nn.Linear(128, 10))


def recipe_mlp():
    """The ``mlp`` recipe: 784-512-256-10 ReLU with dropout 0.3."""
    import torch.nn as nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 10))
