"""Where a network goes wrong: the test set's most confident mistakes, the accuracy of each class, and the
evidence behind one record's class scores.

The evidence is the explorer's Evidence panel (assets/evidence.js) drawn with matplotlib. The last dense layer
computes each class's score as one sum over the pooled maps Z_k it reads (K maps of R × Q pixels):

    A_j = Σ_k Σ_{p,q} W_j(k, p, q) Z_k(p, q) (+ b_j)

so each term E_j,k(p, q) = W_j(k, p, q) Z_k(p, q) — the map W_j ⊙ Z_k — says how much pooled pixel (p, q) of
map k pushed class j up (> 0) or down (< 0). It exists only when the last dense layer reads the maps straight
after a flatten (the write-up's network); for any other network ``evidence_left_out`` says why there is none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from scratchcnn.errors import ConfigError, DataError
from scratchcnn.nn.layers import log_softmax
from scratchcnn.nn.model import ConvNet
from scratchcnn.nn.network import Network, as_stack
from scratchcnn.nn.stack import Stack
from scratchcnn.viz import figures as fg
from scratchcnn.viz.stack_figures import GAP, dense_maps, layer_outputs

MISTAKES = 16  # tiles in the gallery
TILE_COLUMNS = 4  # up to 16 tiles; 8 beyond
MAP_COLUMNS = 8  # evidence maps a line, in each class's panel
LABEL_ROWS = 3  # blank pixel rows above each line of evidence maps, for their sums


# ---- mistakes and per-class accuracy -------------------------------------------------------------


@dataclass(frozen=True)
class Mistake:
    """A wrongly classified test record: its index in the test set, true and predicted classes, P(predicted)."""

    index: int
    true: int
    predicted: int
    probability: float

    def as_json(self) -> dict[str, int | float]:
        return asdict(self)


def class_scores(net: Network, images: np.ndarray) -> np.ndarray:
    """Class scores A: (N, C) of images (N, H, W): what ``predict`` and ``predict_proba`` compute from."""
    return net.scores(net.check_images(images))


def mistakes_from_scores(A: np.ndarray, labels: np.ndarray, count: int = MISTAKES) -> list[Mistake]:
    """The ``count`` wrong predictions with the highest P(predicted), highest first (ties: lower index first).

    A: (N, C) class scores; labels: (N,) true classes. The predicted class is argmax_j A_j (as ``predict``)
    and P = e^{A_j} / Σ_k e^{A_k} computed as ``predict_proba`` does, so P is its value to the last bit.
    """
    labels = np.asarray(labels).astype(np.int64)
    if A.ndim != 2 or labels.shape != (len(A),):
        raise DataError(f"{len(labels)} labels for {len(A)} sets of class scores")
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
        raise ConfigError(f"the number of mistakes must be a whole number ≥ 0, got {count!r}")
    predicted = A.argmax(axis=1)
    P = np.exp(log_softmax(A))
    wrong = np.flatnonzero(predicted != labels)
    confidence = P[wrong, predicted[wrong]]
    ranked = wrong[np.argsort(-confidence, kind="stable")][:count]  # stable: equal P keep the test set's order
    return [Mistake(int(i), int(labels[i]), int(predicted[i]), float(P[i, predicted[i]])) for i in ranked]


def most_confident_mistakes(net: Network, images: np.ndarray, labels: np.ndarray,
                            count: int = MISTAKES) -> list[Mistake]:
    """The network's ``count`` most confident wrong predictions on images (N, H, W) labelled (N,)."""
    return mistakes_from_scores(class_scores(net, images), labels, count)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """(C,) accuracy of each true class from a (C, C) confusion matrix: M[c, c] / Σ_j M[c, j]; NaN for a class
    with no test records."""
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, matrix.diagonal() / totals, math.nan)


def _pixel_top(images: np.ndarray) -> float:
    return 255.0 if images.dtype == np.uint8 else 1.0


def plot_mistakes(images: np.ndarray, rows: Sequence[Mistake], class_names: Sequence[str], *,
                  wrong: int | None = None) -> Figure:
    """A gallery of mistakes: one tile per row, the test image images[row.index] (white ink on black), titled
    "test image #index" over "true t → p, P 0.98". wrong: how many mistakes there are in all (for the title).

    Checkable: tile n is drawn by one ``imshow`` of images[rows[n].index] itself (not resampled: nearest),
    in an axes labelled "test image <index>"; its AxesImage's array is that image (tests compare them).
    """
    images = np.asarray(images)
    columns = max(1, min(len(rows), TILE_COLUMNS if len(rows) <= 16 else 2 * TILE_COLUMNS))
    lines = max(1, math.ceil(len(rows) / columns))
    long_names = max((len(str(name)) for name in class_names), default=1) > 3
    fig = fg.new_figure(0.4 + (2.3 if long_names else 1.9) * columns, 0.7 + 2.2 * lines)
    axes = fig.subplots(lines, columns, squeeze=False)
    top = _pixel_top(images)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, row in zip(axes.flat, rows, strict=False):
        ax.imshow(images[row.index], cmap="gray", vmin=0, vmax=top, interpolation="nearest")
        ax.set_label(f"test image {row.index}")
        ax.set_title(f"test image #{row.index}\ntrue {class_names[row.true]} → {class_names[row.predicted]}, "
                     f"P {row.probability:.2f}", fontsize=8 if long_names else 9)
    if not rows:
        axes[0, 0].text(0.5, 0.5, "no mistakes", transform=axes[0, 0].transAxes, ha="center", va="center")
    of = f" of {wrong:,}" if wrong is not None else ""
    fig.suptitle(f"The {len(rows)} most confident mistakes{of}: true class → predicted, P(predicted)")
    return fig


# ---- evidence ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """Why one record got its class scores, term by term (float64).

    maps: (C, K, R, Q), maps[j, k] = W_j(k) ⊙ Z_k; bias: (C,) b_j (0 without a bias); scores: (C,) A_j;
    probabilities: (C,) P_j = softmax(A)_j.
    """

    maps: np.ndarray
    bias: np.ndarray
    scores: np.ndarray
    probabilities: np.ndarray

    @property
    def sums(self) -> np.ndarray:
        """(C, K): Σ_{p,q} W_j(k, p, q) Z_k(p, q), what map k adds to class j's score."""
        return self.maps.sum(axis=(2, 3))


def evidence_left_out(net: Network) -> str | None:
    """Why the network has no evidence maps (its last dense layer reads no maps), or None when it has."""
    stack = as_stack(net)
    if dense_maps(stack) is not None:
        return None
    return (f"the evidence maps W_j ⊙ Z_k exist only when the last dense layer reads pooled maps straight after a "
            f"flatten; this one reads a vector of {stack.shapes[-2][0]} values, the output of layer "
            f"{len(stack.layers) - 1} ({stack.layers[-2].spec()})")


def _dense_input_maps(net: Network, image: np.ndarray) -> np.ndarray:
    """Z: (K, R, Q), the maps the last dense layer reads for image (H, W)."""
    if isinstance(net, ConvNet):  # its own forward pass, as it scores: Z from the cache
        return net.forward(net.prepare(np.asarray(image)[None]), training=False)[1]["Z"][0]
    assert isinstance(net, Stack)
    if len(net.layers) == 2:  # flatten, dense: the maps are the prepared image itself
        return net.prepare(np.asarray(image)[None])[0]
    return layer_outputs(net, image)[-3]  # the input of the flatten layer (layers[-2])


def evidence(net: Network, image: np.ndarray) -> Evidence:
    """The evidence maps of one image (H, W); ConfigError (evidence_left_out's reason) for a network without."""
    why = evidence_left_out(net)
    if why is not None:
        raise ConfigError(f"no evidence maps: {why}")
    stack = as_stack(net)
    W = dense_maps(stack).astype(np.float64)  # (C, K, R, Q)
    Z = _dense_input_maps(net, image).astype(np.float64)  # (K, R, Q)
    b = stack.layers[-1].params.get("b")
    bias = np.zeros(len(W)) if b is None else b.astype(np.float64)
    maps = W * Z[None]  # E_j,k(p, q) = W_j(k, p, q) Z_k(p, q)
    A = maps.sum(axis=(1, 2, 3)) + bias  # A_j = Σ_k Σ_{p,q} W_j(k, p, q) Z_k(p, q) + b_j
    return Evidence(maps, bias, A, np.exp(log_softmax(A[None]))[0])


def shown_classes(ev: Evidence, label: int | None) -> list[int]:
    """The classes drawn: the predicted one, then the true one when it differs, else the runner-up."""
    ranked = [int(j) for j in np.argsort(-ev.scores, kind="stable")]
    second = label if label is not None and label != ranked[0] else ranked[1]
    return [ranked[0], int(second)]


def plot_evidence(net: Network, image: np.ndarray, label: int | None, class_names: Sequence[str], *,
                  classes: Sequence[int] | None = None, title: str | None = None) -> Figure:
    """The evidence maps W_j ⊙ Z_k of image (H, W) whose true class is label, for the predicted class and the
    true one (or the runner-up when the prediction is right), or for ``classes``.

    One panel per class, its K maps tiled (up to 8 a line) with each map's sum above it; the panel's title
    adds them up to A_j. One diverging colour scale centred on 0 for all panels (red pushed the class up,
    blue down), so the classes can be compared, as in the explorer.
    """
    ev = evidence(net, image)
    shown = list(classes) if classes is not None else shown_classes(ev, label)
    K, R, Q = ev.maps.shape[1:]
    columns = min(K, MAP_COLUMNS)
    grid_shape = (math.ceil(K / columns) * (R + LABEL_ROWS), columns * (Q + GAP) - GAP)
    norm = fg.symmetric_scale(ev.maps[shown])
    cmap = matplotlib.colormaps[fg.DIVERGING].with_extremes(bad=(1, 1, 1, 0))  # the gaps: the white page
    inches = min(0.15, 10 / grid_shape[1])  # per pixel
    fig = fg.new_figure(max(7.0, 2.0 + inches * grid_shape[1]), 1.0 + len(shown) * (0.8 + inches * grid_shape[0]))
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    predicted, runner_up = (int(j) for j in np.argsort(-ev.scores, kind="stable")[:2])
    second = runner_up if label in (predicted, None) else None  # the runner-up is drawn only beside a right answer
    for ax, j in zip(axes, shown, strict=True):
        _class_panel(ax, ev.maps[j], columns, norm, cmap)
        roles = (("predicted", predicted), ("true", label), ("runner-up", second))
        role = ", ".join(name for name, c in roles if c == j) or "other"
        ax.set_title(f"class {class_names[j]} ({role}): {_score_text(ev, j)}, $P_j$ = {ev.probabilities[j]:.3f}",
                     fontsize=10)
    fig.colorbar(ScalarMappable(norm, cmap), ax=axes, shrink=0.9, label=r"$W_j(k,p,q)\, Z_k(p,q)$")
    fig.suptitle(title or r"Evidence: the maps $W_j \odot Z_k$ (red pushed class $j$ up, blue down)")
    return fig


def _class_panel(ax: Any, maps: np.ndarray, columns: int, norm: Normalize, cmap: Colormap) -> None:
    """One class's maps (K, R, Q) tiled in ax, ``columns`` a line, each framed, its sum above it."""
    K, R, Q = maps.shape
    grid = np.full((math.ceil(K / columns) * (R + LABEL_ROWS), columns * (Q + GAP) - GAP), np.nan)
    for k in range(K):
        top, left = (k // columns) * (R + LABEL_ROWS) + LABEL_ROWS, (k % columns) * (Q + GAP)
        grid[top : top + R, left : left + Q] = maps[k]
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), Q, R, fill=False, edgecolor="0.6", linewidth=0.6,
                               clip_on=False))
        ax.text(left + (Q - 1) / 2, top - 0.8, f"$k={k + 1}$: {maps[k].sum():+.3f}", ha="center", va="bottom",
                fontsize=7 if columns > 4 else 8)
    ax.imshow(grid, cmap=cmap, norm=norm, interpolation="nearest")
    ax.set_axis_off()


def _score_text(ev: Evidence, j: int) -> str:
    """A_j written as the sum it is: each map's share (when few), the bias, the total."""
    K = ev.maps.shape[1]
    parts = " + ".join(f"{v:.3f}" for v in ev.sums[j]) if K <= 4 else f"Σ of the {K} maps' sums"
    bias = f" + {ev.bias[j]:.3f} (b)" if np.any(ev.bias) else ""
    if K == 1 and not bias:  # one map, no bias: the sum is A_j itself
        return f"$A_j$ = {ev.scores[j]:.3f}"
    return f"$A_j$ = {parts}{bias} = {ev.scores[j]:.3f}".replace("+ -", "− ")
