"""The figures of a network's layers, for any network drawn as the stack it is (``as_stack``).

The first convolution gets the write-up's figures 3–6 (its filters as images and surfaces, its maps Y_k and
pooled maps Z_k for a record); each deeper convolution n gets its filters f_kc as one grid (a column per
filter k, a row per input channel c) and its own Y_k and Z_k figures, keyed "kernels_n", "convolved_n",
"pooled_n". The dense weights W as K maps (figure 9) exist only when the last dense layer reads the maps
directly, as in the write-up's network; for any other network ``left_out`` says why it has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from scratchcnn.nn.network import Network, as_stack
from scratchcnn.nn.stack import Stack
from scratchcnn.nn.stack_layers import PADDINGS, Conv, Flatten, Pool, ReLU
from scratchcnn.viz import figures as fg

GAP = 1  # blank pixels between two filters (or maps) in a grid
MIN_WIDTH = 9.0  # inches: room for the title's equation


@dataclass(frozen=True)
class ConvBlock:
    """A convolution and the layers drawn with it: its ReLU (if next) and its pooling (if next, then its ReLU).

    conv, y, z: indices into the stack's layers of the convolution, of the layer drawn as Y_k (the conv or
    its ReLU) and of the one drawn as Z_k (None without a pooling); number counts the convolutions from 1.
    """

    number: int
    conv: int
    y: int
    pool: int | None
    z: int | None


def conv_blocks(stack: Stack) -> list[ConvBlock]:
    """Every convolution of the stack, with the layers drawn beside it."""
    layers, blocks = stack.layers, []

    def next_is(i: int, kind: type) -> bool:
        return i + 1 < len(layers) and isinstance(layers[i + 1], kind)

    for i, layer in enumerate(layers):
        if isinstance(layer, Conv):
            y = i + 1 if next_is(i, ReLU) else i
            pool = y + 1 if next_is(y, Pool) else None
            z = None if pool is None else pool + 1 if next_is(pool, ReLU) else pool
            blocks.append(ConvBlock(len(blocks) + 1, i, y, pool, z))
    return blocks


def layer_outputs(stack: Stack, image: np.ndarray) -> list[np.ndarray]:
    """Each layer's output for one image (H, W): (C, H', W') maps or (D,) vectors, as the layers compute them."""
    X, outputs = stack.prepare(np.asarray(image)[None]), []
    for layer in stack.layers:
        X, _ = layer.forward(X)  # each layer's output is the next one's input
        outputs.append(X[0])
    return outputs


def dense_maps(stack: Stack) -> np.ndarray | None:
    """The last dense layer's W (C, K, H', W') when it reads K maps directly (flatten, dense), else None."""
    if len(stack.layers) < 2 or not isinstance(stack.layers[-2], Flatten) or len(stack.shapes[-3]) != 3:
        return None
    return stack.layers[-1].params["W"].reshape(stack.classes, *stack.shapes[-3])


def left_out(net: Network) -> dict[str, str]:
    """The figures of FIGURE_NAMES this network's shape has no place for, each with why (for a note)."""
    stack, notes = as_stack(net), {}
    if dense_maps(stack) is None:
        width = stack.shapes[-2][0]
        notes["weights"] = (f"the dense weights W as one map per filter are drawn only when the last dense layer "
                            f"reads the pooled maps Z_k directly; this one reads a vector of {width} values, the "
                            f"output of layer {len(stack.layers) - 1} ({stack.layers[-2].spec()})")
    if not conv_blocks(stack):
        for key in ("kernels", "kernel_surfaces", "convolved", "pooled"):
            notes[key] = "the network has no convolution"
    return notes


def layer_figures(net: Network, image: np.ndarray | None, class_names: Sequence[str]) -> dict[str, Figure]:
    """The kernels of every convolution, its maps for image (H, W) if given, and W, by figure key."""
    stack, figures = as_stack(net), {}
    outputs = layer_outputs(stack, image) if image is not None else None
    for block in conv_blocks(stack):
        conv = stack.layers[block.conv]
        assert isinstance(conv, Conv)
        f, suffix = conv.params["f"], "" if block.number == 1 else f"_{block.number}"
        if block.number == 1 and f.shape[1] == 1:  # the write-up's single-channel filters f_k
            figures.update(kernels=fg.plot_kernels(f[:, 0]), kernel_surfaces=fg.plot_kernel_surfaces(f[:, 0]))
        else:
            figures["kernels" + suffix] = plot_channel_kernels(f, block, stack)
        if outputs is not None:
            figures["convolved" + suffix] = plot_block_convolved(outputs[block.y], block, stack)
            if block.z is not None:
                figures["pooled" + suffix] = plot_block_pooled(outputs[block.z], block, stack)
    W = dense_maps(stack)
    if W is not None:
        figures["weights"] = fg.plot_weights(W, class_names)
    return figures


def plot_block_convolved(Y: np.ndarray, block: ConvBlock, stack: Stack) -> Figure:
    """A convolution's maps Y: (K, H', W') (after its ReLU when one follows), each on its own scale."""
    conv = stack.layers[block.conv]
    assert isinstance(conv, Conv)
    if block.number == 1 and conv.padding == PADDINGS[0] and not conv.bias and stack.shapes[block.conv][0] == 1:
        return fg.plot_convolved(Y)  # the write-up's convolution: its figure as it has always been
    before = conv.pads()[0]
    shift = rf"-{before}" if before else ""
    channels = r"\Sigma_c\, " if stack.shapes[block.conv][0] > 1 else ""
    x = r"X_c" if channels else "X"
    fc = r"f_{kc}" if channels else "f_k"
    bias = r" + b_k" if conv.bias else ""
    relu = ", after its ReLU" if block.y != block.conv else ""
    title = (rf"Convolution {block.number} ({conv.spec()}{relu}): $Y_k(i,j) = {channels}\Sigma_a\, \Sigma_b\, "
             rf"{x}(i+a{shift},\,j+b{shift})\, {fc}(a,b){bias}$ (white = 0)")
    return fg.feature_maps_figure(Y, "Y", title) if block.number == 1 else plot_map_grid(Y, "Y", title)


def plot_block_pooled(Z: np.ndarray, block: ConvBlock, stack: Stack) -> Figure:
    """A convolution's pooled maps Z: (K, H'', W'') (after a ReLU when one follows the pooling)."""
    pool = stack.layers[block.pool] if block.pool is not None else None
    assert isinstance(pool, Pool)
    if block.number == 1 and block.z == block.pool:
        return fg.plot_pooled(Z, pool.how)  # the write-up's figure
    relu = ", then ReLU" if block.z != block.pool else ""
    title = f"Convolution {block.number} (layer {block.pool + 1}{relu}): pooled images {fg.POOL_TITLES[pool.how]}"
    return fg.feature_maps_figure(Z, "Z", title) if block.number == 1 else plot_map_grid(Z, "Z", title)


def plot_map_grid(maps: np.ndarray, symbol: str, title: str) -> Figure:
    """Maps (K, rows, cols) tiled in one picture, up to 8 a row, each divided by its own max |value|.

    Each map on its own scale (printed above it), as feature_maps_figure does, but in one axes: a deeper
    layer's dozens of maps would each need a panel and a colour bar, and seconds to lay out.
    """
    maps = np.asarray(maps, float)
    K, h, w = maps.shape
    limits = np.abs(maps).reshape(K, -1).max(axis=1)
    scaled = maps / np.where(limits > 0, limits, 1)[:, None, None]  # each map in [−1, 1]
    columns = min(K, 8)
    rows = -(-K // columns)
    grid = np.full((rows * (h + 3) - 3, columns * (w + GAP) - GAP), np.nan)  # 3 rows of gap: room for a label
    inches = min(0.22, 11 / grid.shape[1])  # per pixel
    fig = fg.new_figure(max(MIN_WIDTH, 1.8 + inches * grid.shape[1]), max(3.0, 1.4 + inches * grid.shape[0]))
    ax = fig.add_subplot()
    for n in range(K):
        top, left = (n // columns) * (h + 3), (n % columns) * (w + GAP)
        grid[top : top + h, left : left + w] = scaled[n]
        ax.text(left + (w - 1) / 2, top - 0.7, f"${symbol}_{{{n + 1}}}$ ±{limits[n]:.2g}", ha="center",
                va="bottom", fontsize=7)
    nonnegative = maps.min() >= 0
    norm = Normalize(0 if nonnegative else -1, 1)
    cmap = matplotlib.colormaps["Reds" if nonnegative else fg.DIVERGING].with_extremes(bad="0.9")  # 0 is white
    shown = ax.imshow(grid, cmap=cmap, norm=norm, interpolation="nearest")
    ax.set_ylim(grid.shape[0] - 0.5, -2.5)  # room for the first row's labels
    ax.set(xticks=[], yticks=[], xlabel="each map: column j →", ylabel="each map: ← row i")
    fig.colorbar(shown, ax=ax, shrink=0.9, label=f"${symbol}_k(i, j)$ ÷ the ± above its map")
    fig.suptitle(title)
    return fig


def plot_channel_kernels(f: np.ndarray, block: ConvBlock, stack: Stack) -> Figure:
    """A convolution's filters f: (K, C_in, k, k) as one grid: column k = filter f_k, row c = its channel c.

    One colour scale, centred on 0, for the whole grid, so that filters and channels can be compared.
    """
    f = np.asarray(f, float)
    K, C, k, _ = f.shape
    step = k + GAP
    grid = np.full((C * step - GAP, K * step - GAP), np.nan)  # NaN: the gaps, drawn grey
    for n in range(K):
        for c in range(C):
            grid[c * step : c * step + k, n * step : n * step + k] = f[n, c]
    inches = min(0.14, 13 / grid.shape[1], 9 / grid.shape[0])  # per pixel: the figure stays on a page
    fig = fg.new_figure(max(MIN_WIDTH, 2.2 + inches * grid.shape[1]), max(3.0, 1.6 + inches * grid.shape[0]))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps[fg.DIVERGING].with_extremes(bad="0.85")
    norm = fg.symmetric_scale(f)
    shown = ax.imshow(grid, cmap=cmap, norm=norm, interpolation="nearest")
    every = max(1, K // 16)  # at most 16 labels a side
    ax.set_xticks([n * step + (k - 1) / 2 for n in range(0, K, every)], [str(n + 1) for n in range(0, K, every)])
    every = max(1, C // 16)
    ax.set_yticks([c * step + (k - 1) / 2 for c in range(0, C, every)], [str(c + 1) for c in range(0, C, every)])
    ax.set(xlabel="filter k", ylabel="input channel c")
    fig.colorbar(shown, ax=ax, label="filter weight $f_{kc}(a, b)$", shrink=0.9)
    where = f"layer {block.conv + 1}, {stack.layers[block.conv].spec()}"
    fig.suptitle(f"Convolution {block.number} ({where}): its {K} filters of {k}×{k} over {C} channels, "
                 "red > 0 > blue")
    return fig
