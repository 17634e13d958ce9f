"""Pictures of the network and its training, drawn with matplotlib (the experiments': experiment_figures.py).

Every function builds a ``matplotlib.figure.Figure`` directly (no pyplot, so no global state and
no display needed) and returns it; ``save_figure`` writes one as PNG or SVG, atomically.
Filters use a diverging colour map centred on 0 (red positive, blue negative) with a range shared
by all panels, so the colours of two panels can be compared; the dense weights get one scale per
filter (column), and the convolved and pooled images one per image (still white at 0), so a weak
filter's weights and response stay visible. The input X is drawn as MNIST stores it: white ink on black.
Any network is drawn as the stack it is: stack_figures.py picks the pictures of its layers.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from scratchcnn.errors import ConfigError
from scratchcnn.files import write_atomically
from scratchcnn.nn.network import Network
from scratchcnn.options import FIGURE_FORMATS
from scratchcnn.viz.drawer import forked_workers

FIGURE_NAMES = {  # key → file stem of the figures model_figures writes
    "record": "01-record", "record_surface": "02-record-surface", "kernels": "03-kernels",
    "kernel_surfaces": "04-kernel-surfaces", "convolved": "05-convolved", "pooled": "06-pooled",
    "accuracy": "07-accuracy", "confusion": "08-confusion", "weights": "09-weights",
}
DPI = 120
DIVERGING = "RdBu_r"  # blue < 0 < red
POOL_TITLES = {
    "decimate": r"by decimation, only the even $(i, j)$ pass: $Z_k(i/2,\,j/2) = Y_k(i,j)$",
    "max": r"by 2×2 maximum: $Z_k(i,j) = \max_{a,b \in \{0,1\}}\, Y_k(2i+a,\,2j+b)$",
    "avg": r"by 2×2 average: $Z_k(i,j) = \frac{1}{4} \sum_{a,b \in \{0,1\}} Y_k(2i+a,\,2j+b)$",
}


# ---- helpers -------------------------------------------------------------------------------------


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def symmetric_scale(values: np.ndarray) -> Normalize:
    """A colour scale centred on 0 covering ±max|values| (±1 if all are 0)."""
    limit = float(np.max(np.abs(values))) if np.size(values) else 0.0
    return Normalize(-limit, limit) if limit > 0 and math.isfinite(limit) else Normalize(-1, 1)


def _own_scale(values: np.ndarray) -> tuple[Normalize, str]:
    """Diverging around 0; white to red from 0 when nothing is negative (e.g. after a ReLU)."""
    if values.min() >= 0 and values.max() > 0:
        return Normalize(0, float(values.max())), "Reds"
    return symmetric_scale(values), DIVERGING


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _image_panels(fig: Figure, maps: np.ndarray, titles: Sequence[str], cbar_label: str, *, shared: bool = True,
                  xlabel: str = "column j", ylabel: str = "row i") -> np.ndarray:
    """One panel per map (rows of up to 4), diverging colours centred on 0; returns the axes (rows, cols).

    shared: one colour scale and bar for all panels; otherwise each panel gets its own (see _own_scale),
    below it, labelled cbar_label and the panel's title.
    """
    rows, cols = _grid(len(maps))
    axes = fig.subplots(rows, cols, squeeze=False)
    norm = symmetric_scale(maps)
    for index, ax in enumerate(axes.flat):
        if index >= len(maps):
            ax.set_axis_off()
            continue
        panel_norm, cmap = (norm, DIVERGING) if shared else _own_scale(maps[index])
        ax.imshow(maps[index], cmap=cmap, norm=panel_norm, interpolation="nearest")
        ax.set_title(titles[index])
        integer_ticks(ax)
        if index + cols >= len(maps):
            ax.set_xlabel(xlabel)
        if index % cols == 0:
            ax.set_ylabel(ylabel)
        if not shared:
            fig.colorbar(ScalarMappable(panel_norm, cmap), ax=ax, label=f"{cbar_label} {titles[index]}",
                         location="bottom", shrink=0.9, aspect=30)
    if shared:
        fig.colorbar(ScalarMappable(norm, DIVERGING), ax=axes, label=cbar_label, shrink=0.9 if rows > 1 else 0.8)
    return axes


def integer_ticks(ax: Any, y: bool = True) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if y:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _pixel_scale(image: np.ndarray) -> tuple[float, str]:
    if image.dtype == np.uint8:
        return 255.0, "pixel value (0 = black, 255 = white)"
    return 1.0, "pixel value X (0 = black, 1 = white)"


def _surface(ax: Any, values: np.ndarray, **style: Any) -> None:
    """Pixel (i, j) at x = j, y = i, height = value; row 0 at the back as in the image."""
    i, j = np.indices(values.shape)
    ax.plot_surface(j, i, values.astype(float), rstride=1, cstride=1, linewidth=0.2, edgecolor="0.4", **style)
    ax.set_ylim(values.shape[0] - 1, 0)


def series(values: Sequence[float | None]) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], float)


# ---- the network ---------------------------------------------------------------------------------


def plot_record(image: np.ndarray, label: str) -> Figure:
    """The input record X: (H, W), uint8 or float in [0, 1], as a grayscale image."""
    image = np.asarray(image)
    top, cbar_label = _pixel_scale(image)
    fig = new_figure(4.8, 4.2)
    ax = fig.add_subplot()
    shown = ax.imshow(image, cmap="gray", vmin=0, vmax=top, interpolation="nearest")
    ax.set(xlabel="column j", ylabel="row i")
    fig.colorbar(shown, ax=ax, label=cbar_label, shrink=0.9)
    fig.suptitle(f"Input record X (label: {label})")
    return fig


def plot_record_surface(image: np.ndarray, label: str) -> Figure:
    """The record X: (H, W) as a surface whose height is the pixel intensity."""
    image = np.asarray(image)
    top, cbar_label = _pixel_scale(image)
    fig = new_figure(7.0, 5.0)
    ax = fig.add_subplot(projection="3d")
    _surface(ax, image, cmap="viridis", vmin=0, vmax=top)
    ax.set(xlabel="column j", ylabel="row i", zlim=(0, top))
    ax.set_zlabel("intensity", labelpad=8)
    ax.view_init(elev=50, azim=-65)
    ax.set_box_aspect(None, zoom=0.9)
    fig.colorbar(ScalarMappable(Normalize(0, top), "viridis"), ax=ax, label=cbar_label, shrink=0.6, pad=0.1)
    fig.suptitle(f"Input record X as a surface: height = intensity (label: {label})")
    return fig


def plot_kernels(f: np.ndarray) -> Figure:
    """The K filters f: (K, k, k) as images, their values written in the cells when k ≤ 5."""
    f = np.asarray(f, float)
    (K, k, _), (rows, cols), limit = f.shape, _grid(len(f)), symmetric_scale(f).vmax
    fig = new_figure(1.0 + 2.6 * cols, 0.8 + 2.6 * rows)
    axes = _image_panels(fig, f, [f"$f_{{{n + 1}}}$" for n in range(K)], "filter weight $f_k(a, b)$",
                         xlabel="b (column offset)", ylabel="a (row offset)")
    for n, ax in enumerate(axes.flat[:K]):
        if k <= 5:
            for (a, b), value in np.ndenumerate(f[n]):
                text = f"{value:.2f}".replace("-0.00", "0.00")
                ax.text(b, a, text, ha="center", va="center", fontsize=11 if k <= 3 else 8,
                        color="white" if abs(value) > 0.55 * limit else "black")
    fig.suptitle(f"The {K} filters ({k}×{k}), red > 0 > blue")
    return fig


def plot_kernel_surfaces(f: np.ndarray) -> Figure:
    """The K filters f: (K, k, k) as surfaces, height = weight, on a shared vertical scale."""
    f, norm = np.asarray(f, float), symmetric_scale(f)
    K, (rows, cols) = len(f), _grid(len(f))
    fig = new_figure(1.0 + 3.4 * cols, 0.6 + 3.1 * rows)
    axes = [fig.add_subplot(rows, cols, n + 1, projection="3d") for n in range(K)]
    for n, ax in enumerate(axes):
        _surface(ax, f[n], cmap=DIVERGING, norm=norm, alpha=0.85)
        A, B = np.indices(f[n].shape)  # each weight as a dot at its grid point, coloured by its value
        ax.scatter(B.ravel(), A.ravel(), f[n].ravel(), c=f[n].ravel(), cmap=DIVERGING, norm=norm,
                   edgecolors="black", linewidths=0.5, s=25, depthshade=False)
        ax.set(xlabel="b", ylabel="a", zlim=(norm.vmin, norm.vmax), title=f"$f_{{{n + 1}}}$")
        if n % cols == cols - 1 or n == K - 1:  # on the right only: a label further left hides behind a panel
            ax.set_zlabel("$f_k(a, b)$", labelpad=10)
        integer_ticks(ax)
        ax.zaxis.set_major_locator(MaxNLocator(4, symmetric=True))
        ax.tick_params(labelsize=8)
        ax.set_box_aspect(None, zoom=0.95)
    fig.colorbar(ScalarMappable(norm, DIVERGING), ax=axes, label="filter weight $f_k(a, b)$", shrink=0.6)
    fig.suptitle(f"The {K} filters as surfaces: height = weight")
    return fig


def feature_maps_figure(maps: np.ndarray, symbol: str, title: str) -> Figure:
    """Images (K, rows, cols), each on its own colour scale centred on 0, titled symbol_k(i, j)."""
    maps = np.asarray(maps, float)
    rows, cols = _grid(len(maps))
    fig = new_figure(0.6 + 3.2 * cols, 1.0 + 3.6 * rows)
    _image_panels(fig, maps, [f"${symbol}_{{{n + 1}}}(i, j)$" for n in range(len(maps))], "value of", shared=False)
    fig.suptitle(title)
    return fig


def plot_convolved(Y: np.ndarray) -> Figure:
    """The convolved images Y: (K, H, W)."""
    title = r"Convolved images $Y_k(i,j) = \Sigma_a\, \Sigma_b\, X(i+a,\,j+b)\, f_k(a,b)$ (white = 0)"
    return feature_maps_figure(Y, "Y", title)


def plot_pooled(Z: np.ndarray, pool: str) -> Figure:
    """The pooled images Z: (K, H', W') that the dense layer sees; pool names the pooling."""
    return feature_maps_figure(Z, "Z", f"Pooled images {POOL_TITLES.get(pool, f'({pool})')}")


def plot_weights(W: np.ndarray, class_names: Sequence[str]) -> Figure:
    """The dense weights W: (C, K, H', W'): one row per class, one column per filter.

    Each column (filter k) has its own colour scale ±max|W[:, k]|, with its bar below it and the scale in
    its title: one filter's weights are often several times another's, and a shared scale would leave the
    weaker columns white. Within a column the classes share the scale, so they can be compared.
    """
    W = np.asarray(W, float)
    classes, K = W.shape[:2]
    fig = new_figure(max(6.4, 2.4 + 1.4 * K), 1.8 + 1.0 * classes)
    axes = fig.subplots(classes, K, squeeze=False)
    for n in range(K):
        norm = symmetric_scale(W[:, n])
        for c, ax in enumerate(axes[:, n]):
            ax.imshow(W[c, n], cmap=DIVERGING, norm=norm, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([(W.shape[2] - 1) / 2], [str(class_names[c])] if n == 0 else [""], fontsize=10)
            ax.tick_params(axis="y", length=0)
        axes[0, n].set_title(f"× $Z_{{{n + 1}}}$ (±{norm.vmax:.3g})")
        fig.colorbar(ScalarMappable(norm, DIVERGING), ax=axes[:, n], location="bottom", shrink=0.9, aspect=12,
                     label=f"W(class, {n + 1}, i, j)")
    fig.supylabel("class j: its score $a_j$ = Σ (row j × $Z_k$)")
    fig.supxlabel("one weight per pixel of $Z_k$; one colour scale per column, ± its max")
    fig.suptitle("Dense weights W: row = class, column = pooled image $Z_k$")
    return fig


# ---- training and results ------------------------------------------------------------------------


def plot_accuracy(history: Sequence[dict[str, Any]]) -> Figure:
    """Training and validation accuracy per epoch; history as in history.json (validation may be None)."""
    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    epochs = [e["epoch"] for e in history]
    for key, name, marker in (("train_accuracy", "training", "o"), ("validation_accuracy", "validation", "s")):
        values = series([e.get(key) for e in history])
        if np.isfinite(values).any():
            ax.plot(epochs, values, marker=marker, label=f"{name} (last: {values[np.isfinite(values)][-1]:.1%})")
    if not history:
        ax.text(0.5, 0.5, "no completed epochs", transform=ax.transAxes, ha="center")
    ax.set(xlabel="epoch", ylabel="accuracy")
    integer_ticks(ax, y=False)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    fig.suptitle("Accuracy after each epoch")
    return fig


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str]) -> Figure:
    """The (C, C) confusion matrix: row = true class, column = predicted, counts in the cells."""
    matrix = np.asarray(matrix)
    total = int(matrix.sum())
    accuracy = np.trace(matrix) / total if total else math.nan
    fig = new_figure(7.4, 6.4)
    ax = fig.add_subplot()
    shown = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    ticks = range(len(matrix))
    long_names = max(len(str(name)) for name in class_names) > 3
    ax.set_xticks(ticks, class_names, rotation=40 if long_names else 0, ha="right" if long_names else "center",
                  rotation_mode="anchor")
    ax.set_yticks(ticks, class_names)
    ax.set(xlabel="predicted class", ylabel="true class")
    threshold = matrix.max() / 2 if total else 1
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=9,
                    color="white" if count > threshold else "black")
    fig.colorbar(shown, ax=ax, label="test images", shrink=0.85)
    fig.suptitle(f"Confusion matrix on the test set: {total:,} images, accuracy {accuracy:.1%}")
    return fig


# ---- files ---------------------------------------------------------------------------------------


def _check_format(fmt: str) -> None:
    if fmt not in FIGURE_FORMATS:
        raise ConfigError(f"figure format must be one of {', '.join(FIGURE_FORMATS)}, got {fmt!r}")


def figure_bytes(fig: Figure, fmt: str = "png") -> bytes:
    """The figure rendered as PNG or SVG, without the 'Software'/'Creator' link matplotlib adds."""
    _check_format(fmt)
    buffer = io.BytesIO()
    metadata = {"Software": None} if fmt == "png" else {"Creator": None, "Date": None}
    fig.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)
    return buffer.getvalue()


_RENDERING: dict[str, tuple[Figure, str]] = {}  # what the forked renderers of figures_bytes draw


def figures_bytes(figures: dict[str, Figure], fmt: str = "png") -> dict[str, bytes]:
    """figure_bytes of each figure, by key; on Linux in forked processes, one per CPU.

    Matplotlib lays text out in Python, one figure at a time: the report's nine figures took ~6 s on one
    core. Forked processes inherit the figures as they are (nothing is pickled but the bytes coming back)
    and each renders whole figures, the most crowded first; elsewhere, or for one figure, they are drawn here.
    """
    _check_format(fmt)
    workers = forked_workers(len(figures))
    if not workers:
        return {key: figure_bytes(fig, fmt) for key, fig in figures.items()}
    _RENDERING.update((key, (fig, fmt)) for key, fig in figures.items())
    crowded_first = sorted(figures, key=lambda key: -len(figures[key].axes))
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            drawn = dict(pool.imap_unordered(_render, crowded_first))
    finally:
        _RENDERING.clear()
    return {key: drawn[key] for key in figures}


def _render(key: str) -> tuple[str, bytes]:
    fig, fmt = _RENDERING[key]
    return key, figure_bytes(fig, fmt)


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write fig to path as PNG or SVG, by its suffix, atomically."""
    path = Path(path)
    data = figure_bytes(fig, path.suffix.lower().lstrip("."))
    return write_atomically(path, lambda fh: fh.write(data))


def figure_stem(key: str) -> str:
    """The file stem of a figure: FIGURE_NAMES[key], or for convolution n's "convolved_n" "05-convolved-n"."""
    base, _, number = key.rpartition("_")
    return f"{FIGURE_NAMES[base]}-{number}" if number.isdigit() else FIGURE_NAMES[key]


def model_figure_set(net: Network, image: np.ndarray | None, label: str, history: Sequence[dict] | None,
                     matrix: np.ndarray | None, class_names: Sequence[str]) -> dict[str, Figure]:
    """Figures 1–9 by key (see figure_stem) in file order, and a deeper network's further convolutions.

    Those needing a missing image, history or matrix are left out, and those the network's shape has no
    place for (stack_figures.left_out says why).
    """
    from scratchcnn.viz.stack_figures import layer_figures  # it draws with this module's functions

    figures = layer_figures(net, image, class_names)
    if image is not None:
        figures.update(record=plot_record(image, label), record_surface=plot_record_surface(image, label))
    if history is not None:
        figures["accuracy"] = plot_accuracy(history)
    if matrix is not None:
        figures["confusion"] = plot_confusion(matrix, class_names)
    return {key: figures[key] for key in sorted(figures, key=figure_stem)}


def model_figures(net: Network, image: np.ndarray, label: str, history: Sequence[dict] | None,
                  matrix: np.ndarray | None, class_names: Sequence[str], out_dir: str | os.PathLike,
                  fmt: str = "png") -> dict[str, Path]:
    """Write the figures of model_figure_set as out_dir/<figure_stem(key)>.<fmt>; returns their paths by key.

    history None skips the accuracy figure, matrix None the confusion matrix.
    """
    _check_format(fmt)
    drawn = figures_bytes(model_figure_set(net, image, label, history, matrix, class_names), fmt)
    return {key: write_atomically(Path(out_dir) / f"{figure_stem(key)}.{fmt}", lambda fh, data=data: fh.write(data))
            for key, data in drawn.items()}
