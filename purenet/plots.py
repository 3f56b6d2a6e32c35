"""PNG plots of training runs. Matplotlib is an optional extra, imported here only.

Every function writes its file atomically and returns the path.
"""
import io as _io

import numpy as np

from .io import atomic_write


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'purenet[cli]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    plt = _pyplot()
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path


def plot_curves(histories, path, keys=("loss", "val_loss"), title="", ylabel="loss", logy=False,
                x=None):
    """Line plot of logged values: ``histories`` maps a run name to a dict of lists
    (``History.history``); entries may be ``None`` where a value was not computed.
    ``keys`` is one tuple of keys, or a list of ``(keys, ylabel)`` for side-by-side
    panels. The x axis is the epoch (1, 2, ...), or the list ``hist[x]`` when given."""
    plt = _pyplot()
    panels = keys if isinstance(keys, list) else [(keys, ylabel)]
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.2), squeeze=False)
    for ax, (panel_keys, panel_label) in zip(axes[0], panels):
        _draw_panel(ax, histories, panel_keys, x)
        ax.set_xlabel(x or "epoch")
        ax.set_ylabel(panel_label)
        if logy and panel_label == ylabel:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def _draw_panel(ax, histories, keys, x):
    for run, hist in histories.items():
        xs = hist[x] if x else range(1, 1 + max(len(v or ()) for v in hist.values()))
        for k in keys:
            values = hist.get(k)
            if not values:
                continue
            pairs = [(t, v) for t, v in zip(xs, values) if v is not None]
            style = "-" if not k.startswith("val_") else "--o"
            ax.plot(*zip(*pairs), style, markersize=3, label=f"{run} {k}" if run else k)


def plot_confusion_matrix(matrix, class_names, path, title="confusion matrix"):
    """Heat map of counts, rows = true class, columns = predicted class."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(im, ax=ax)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > threshold else "black")
    ax.set_title(title)
    return _save(fig, path)


def plot_image_grid(images, true_labels, pred_labels, class_names, path, columns=8):
    """Grid of greyscale images titled ``predicted (true)``; mistakes in red."""
    plt = _pyplot()
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.4, rows * 1.6))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, img, t, p in zip(np.ravel(axes), images, true_labels, pred_labels):
        ax.imshow(np.squeeze(img), cmap="gray_r")
        ok = t == p
        ax.set_title(f"{class_names[p]}" + ("" if ok else f"\n({class_names[t]})"),
                     fontsize=7, color="black" if ok else "red")
    return _save(fig, path)
