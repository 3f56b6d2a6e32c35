"""The chapter-7 autoencoder trained in purenet and, with the same architecture, in PyTorch.

Same data (Fashion-MNIST scaled to [0, 1], or MNIST via --data-dir), same network
(see ``purenet.recipes.autoencoder_model``), Adam 1e-3, batch 128, MSE, the same
epochs and threads; each side initialised its own way (He normal for purenet's
ReLU layers, PyTorch's defaults for PyTorch). Prints the test reconstruction MSE per
pixel and the seconds per epoch of each, and their ratios.

    python bench/bench_autoencoder.py [--epochs 5] [--latent 28] [--threads N] [--data-dir DIR]
"""
import argparse
import time

import blas_threads

THREADS = blas_threads.apply()                   # before NumPy loads its BLAS

import numpy as np  # noqa: E402


def load(directory, samples):
    from purenet.data import image_scale, load_idx_dataset
    (x_tr, _), (x_te, _) = load_idx_dataset(directory)
    scale = lambda x: image_scale(x)[:, None].astype(np.float32)
    return scale(x_tr[:samples]), scale(x_te)


def purenet_run(x, x_te, epochs, latent, batch):
    import purenet as pn
    from purenet.recipes import autoencoder_model as ae
    model = ae.autoencoder(latent)
    _, params, state = model.init(pn.key(0), x.shape[1:])
    start = time.perf_counter()
    result = pn.fit(model, params, "mse", pn.optim.adam(1e-3), x, x, state=state, epochs=epochs,
                    batch_size=batch, seed=0, progress=False)
    seconds = (time.perf_counter() - start) / epochs
    return ae.reconstruction_mse(model, result.params, x_te, result.state), seconds


def torch_run(x, x_te, epochs, latent, batch):
    import torch
    from torch import nn
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64 * 49, latent),
        nn.Linear(latent, 64 * 49), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
        nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(32, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt = torch.from_numpy(x)
    start = time.perf_counter()
    for epoch in range(epochs):
        perm = torch.from_numpy(np.random.default_rng(epoch).permutation(len(x)))
        for i in range(0, len(x), batch):
            xb = xt[perm[i:i + batch]]
            opt.zero_grad()
            nn.functional.mse_loss(model(xb), xb).backward()
            opt.step()
    seconds = (time.perf_counter() - start) / epochs
    with torch.no_grad():
        out = torch.cat([model(torch.from_numpy(x_te[i:i + 1000])) for i in range(0, len(x_te), 1000)])
    return float(((out.numpy() - x_te) ** 2).mean()), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--latent", type=int, default=28)
    parser.add_argument("--samples", type=int, default=60000, help="training images used")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    x, x_te = load(args.data_dir, args.samples)
    print(f"{blas_threads.cpu_model()}; threads {args.threads}; {len(x)} training images, "
          f"{args.epochs} epochs, latent {args.latent}")
    mse_t, sec_t = torch_run(x, x_te, args.epochs, args.latent, args.batch_size)
    mse_p, sec_p = purenet_run(x, x_te, args.epochs, args.latent, args.batch_size)
    print(f"purenet  test MSE/pixel {mse_p:.5f}  {sec_p:6.1f} s/epoch")
    print(f"pytorch  test MSE/pixel {mse_t:.5f}  {sec_t:6.1f} s/epoch")
    print(f"MSE ratio purenet/pytorch {mse_p / mse_t:.3f}; time ratio {sec_p / sec_t:.2f}")


if __name__ == "__main__":
    main()
