"""PNG plots of training runs. Matplotlib is an optional extra, imported here only.

Every function builds a ``matplotlib.figure.Figure`` on its own Agg canvas and
returns it; given a ``path``, it also writes the figure there as a PNG,
atomically. Nothing goes through ``pyplot``: the global backend and pyplot's
list of open figures are never touched, so these work the same in a script, a
notebook or a thread, and a returned figure is freed like any other object.

    fig = plot_curves({"run": history.history}, "curves.png")
    save_figure(fig, "again.png")
"""
import io as _io

import numpy as np

from .files import atomic_write

DPI = 110


def _matplotlib():
    """``(Figure, FigureCanvasAgg, MaxNLocator)``, or an ImportError saying what to install."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'purenet[cli]'") from None
    return Figure, FigureCanvasAgg, MaxNLocator


def _new_figure(**kwargs):
    """A Figure with an Agg canvas attached (no pyplot, no global backend)."""
    Figure, FigureCanvasAgg, _ = _matplotlib()
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path):
    """Write ``fig`` to ``path`` as a PNG, atomically; returns ``path``."""
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path


def _finish(fig, path):
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_curves(histories, path=None, keys=("loss", "val_loss"), title="", ylabel="loss",
                logy=False, x=None):
    """Line plot of logged values: ``histories`` maps a run name to a dict of lists
    (``History.history``); entries may be ``None`` where a value was not computed.
    ``keys`` is one tuple of keys, or a list of ``(keys, ylabel)`` for side-by-side
    panels. The x axis is the epoch (1, 2, ...), or the list ``hist[x]`` when given.
    Returns the Figure (written to ``path`` when given)."""
    MaxNLocator = _matplotlib()[2]
    panels = keys if isinstance(keys, list) else [(keys, ylabel)]
    fig = _new_figure(figsize=(7 * len(panels), 4.2))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (panel_keys, panel_label) in zip(axes[0], panels):
        drawn = _draw_panel(ax, histories, panel_keys, x)
        ax.set_xlabel(x or "epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if x is None and max((len(v or ()) for h in histories.values() for v in h.values()),
                             default=0) == 1:
            ax.set_xticks([1])          # one epoch: a single tick, not fractions of one
        ax.set_ylabel(panel_label)
        if logy and panel_label == ylabel and drawn:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def _draw_panel(ax, histories, keys, x):
    """Plot every key of every run on ``ax``; the number of lines drawn."""
    drawn = 0
    for run, hist in histories.items():
        xs = hist[x] if x else range(1, 1 + max((len(v or ()) for v in hist.values()), default=0))
        for k in keys:
            pairs = [(t, v) for t, v in zip(xs, hist.get(k) or ()) if v is not None]
            if not pairs:
                continue
            style = "--o" if k.startswith("val_") else "-o" if len(pairs) == 1 else "-"
            ax.plot(*zip(*pairs), style, markersize=3, label=f"{run} {k}" if run else k)
            drawn += 1
    return drawn


def plot_confusion_matrix(matrix, class_names, path=None, title="confusion matrix"):
    """Heat map of counts, rows = true class, columns = predicted class. Returns the
    Figure (written to ``path`` when given)."""
    matrix = np.asarray(matrix)
    fig = _new_figure(figsize=(7, 6))
    ax = fig.subplots()
    im = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(im, ax=ax)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > threshold else "black")
    ax.set_title(title)
    return _finish(fig, path)


def plot_image_grid(images, true_labels, pred_labels, class_names, path=None, columns=8):
    """Grid of greyscale images titled ``predicted`` (and ``(true)`` below it, in red,
    for mistakes). Returns the Figure (written to ``path`` when given)."""
    rows = max(1, int(np.ceil(len(images) / columns)))
    fig = _new_figure(figsize=(columns * 1.4, rows * 1.6))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, t, p in zip(axes.ravel(), images, true_labels, pred_labels):
        ax.imshow(np.squeeze(img), cmap="gray_r")
        ok = t == p
        ax.set_title(f"{class_names[p]}" + ("" if ok else f"\n({class_names[t]})"),
                     fontsize=7, color="black" if ok else "red")
    return _finish(fig, path)


def plot_reconstructions(originals, reconstructions, path=None, titles=None, title=""):
    """Greyscale images in a row above their reconstructions (pixels in [0, 1], both on
    one scale), each reconstruction labelled with its mean squared error per pixel;
    ``titles`` name the columns. Returns the Figure (written to ``path`` when given)."""
    originals = np.asarray(originals).reshape(len(originals), *np.shape(originals)[-2:])
    reconstructions = np.asarray(reconstructions).reshape(originals.shape)
    columns = len(originals)
    fig = _new_figure(figsize=(1.25 * columns + 1.2, 3.3))
    axes = fig.subplots(2, columns, squeeze=False)
    for j in range(columns):
        error = float(np.mean((reconstructions[j] - originals[j]) ** 2))
        for row, image in enumerate((originals[j], reconstructions[j])):
            ax = axes[row, j]
            ax.imshow(image, cmap="gray_r", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
        if titles is not None:
            axes[0, j].set_title(str(titles[j]), fontsize=8)
        axes[1, j].set_xlabel(f"MSE {error:.4f}", fontsize=7)
    axes[0, 0].set_ylabel("original", fontsize=9)
    axes[1, 0].set_ylabel("reconstructed", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, path)


def plot_embedding(points, labels, class_names, path=None, title="", axis_labels=("", "")):
    """Scatter of 2-D points coloured by class, with a legend of ``class_names``
    (``labels[i]`` indexes it). Returns the Figure (written to ``path`` when given)."""
    points, labels = np.asarray(points), np.asarray(labels)
    fig = _new_figure(figsize=(8.6, 6.4))
    ax = fig.subplots()
    colours = _class_colours(len(class_names))
    size = float(np.clip(18000 / max(len(points), 1), 6, 30))   # fewer points, larger dots
    for c, name in enumerate(class_names):
        mine = labels == c
        if mine.any():
            ax.scatter(points[mine, 0], points[mine, 1], s=size, alpha=0.65, color=colours[c],
                       label=f"{name} ({int(mine.sum())})", linewidths=0)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.grid(alpha=0.2)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, markerscale=2.5,
              frameon=False, title="class (points)", title_fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _finish(fig, path)


def _class_colours(count):
    """``count`` distinct colours: matplotlib's tab10, or tab20 for more classes."""
    from matplotlib import colormaps
    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]
