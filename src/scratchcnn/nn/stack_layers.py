"""The layers of a Stack, each a forward and a hand-derived backward, vectorised over a batch of N.

Notation of the write-up: X a layer's input, f filters, Y convolved images, Z pooled images,
W dense weights, A dense outputs. ``dQ`` means ∂L/∂Q. Images are (N, C, H, W), vectors (N, D).

Every layer has the same small surface, so that a list of them is the whole network and the
explorer's JavaScript can mirror it layer by layer:

* ``config``: a JSON-able dict with "type" (``from_config`` rebuilds the layer from it);
* ``params``: name → array (conv "f" (K, C_in, k, k) and "b" (K,); dense "W" (out, in) and "b" (out,));
  empty until ``initialise`` (the Stack calls it) or until arrays are assigned;
* ``output_shape(shape)``: (C, H, W) or (D,) of the output, or ConfigError naming the layer and why;
* ``forward(X) -> (Y, cache)`` and ``backward(dY, cache) -> (dX, grads)``, grads keyed like params.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from scratchcnn.errors import ConfigError

PADDINGS = ("bottom-right", "same", "valid")
POOL_TYPES = ("decimate", "max", "avg")
Shape = tuple[int, ...]


class Layer:
    """What every layer has; layers without parameters keep ``params`` empty."""

    kind = ""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.text: str | None = None  # the spec token it was parsed from, for error messages

    @property
    def config(self) -> dict[str, Any]:
        return {"type": self.kind}

    def spec(self) -> str:
        """The layer as a spec token (see nn/spec.py), e.g. "conv:6x5:same"."""
        return self.kind

    def refuse(self, why: str) -> ConfigError:
        """The error for an input this layer cannot take: names the layer, says why."""
        return ConfigError(f"{self.text or self.spec()!r}: {why}")

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """The shape of each parameter for this input shape, without allocating them (none by default)."""
        return {}

    def initialise(self, input_shape: Shape, rng: np.random.Generator, dtype: str, he: bool) -> None:
        """Create the parameters for this input shape (nothing to create by default)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec()}>"


def _image(layer: Layer, shape: Shape) -> Shape:
    if len(shape) != 3:
        raise layer.refuse(f"needs images (C, H, W), got a flat vector of {shape[0]} (it must come before flatten)")
    return shape


def _uniform(rng: np.random.Generator, shape: Shape, fan_in: int, he: bool, dtype: str) -> np.ndarray:
    """He-uniform ±√(6/fan_in) (variance 2/fan_in) before a ReLU, which zeroes half; ±1/√fan_in otherwise."""
    limit = np.sqrt(6 / fan_in) if he else 1 / np.sqrt(fan_in)
    return rng.uniform(-limit, limit, shape).astype(dtype)


class Conv(Layer):
    """K filters f_k of k×k over C_in channels, stride 1: Y_k(i, j) = Σ_c Σ_a Σ_b X_c(i+a, j+b) f_kc(a, b) (+ b_k).

    padding: "bottom-right" (the write-up: k−1 zeros below and right, output H×W), "same" (k−1 zeros
    split top/bottom and left/right, the extra one at the bottom/right for even k, as PyTorch does),
    "valid" (none: output (H−k+1)×(W−k+1)).
    """

    kind = "conv"

    def __init__(self, filters: int, kernel_size: int, padding: str = PADDINGS[0], *, bias: bool) -> None:
        super().__init__()
        self.filters, self.kernel_size, self.padding, self.bias = int(filters), int(kernel_size), padding, bool(bias)
        if self.filters < 1 or self.kernel_size < 1:
            raise self.refuse("needs at least 1 filter of at least 1×1")
        if padding not in PADDINGS:
            raise self.refuse(f"padding must be one of {', '.join(PADDINGS)}; got {padding!r}")

    @property
    def config(self) -> dict[str, Any]:
        return {"type": self.kind, "filters": self.filters, "kernel_size": self.kernel_size,
                "padding": self.padding, "bias": self.bias}

    def spec(self) -> str:
        padding = "" if self.padding == PADDINGS[0] else f":{self.padding}"
        return f"conv:{self.filters}x{self.kernel_size}{padding}{'' if self.bias else '-b'}"

    def pads(self) -> tuple[int, int]:
        """(before, after) zeros on each spatial axis."""
        k = self.kernel_size
        return {"bottom-right": (0, k - 1), "same": ((k - 1) // 2, k - 1 - (k - 1) // 2), "valid": (0, 0)}[self.padding]

    def output_shape(self, input_shape: Shape) -> Shape:
        _, H, W = _image(self, input_shape)
        before, after = self.pads()
        rows, cols = H + before + after - self.kernel_size + 1, W + before + after - self.kernel_size + 1
        if rows < 1 or cols < 1:
            raise self.refuse(f"a {self.kernel_size}×{self.kernel_size} filter does not fit in a {H}×{W} map "
                              f"with {self.padding} padding")
        return self.filters, rows, cols

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        k = self.kernel_size
        return {"f": (self.filters, input_shape[0], k, k)} | ({"b": (self.filters,)} if self.bias else {})

    def initialise(self, input_shape: Shape, rng: np.random.Generator, dtype: str, he: bool) -> None:
        C_in, k = input_shape[0], self.kernel_size
        self.params = {"f": _uniform(rng, (self.filters, C_in, k, k), C_in * k * k, he, dtype)}  # fan_in = C_in·k²
        if self.bias:
            self.params["b"] = np.zeros(self.filters, dtype)

    def forward(self, X: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """X: (N, C_in, H, W) → Y: (N, K, H', W'), one matrix product of the k×k windows ("im2col")."""
        f, (before, after) = self.params["f"], self.pads()
        Xpad = np.pad(X, ((0, 0), (0, 0), (before, after), (before, after)))
        windows = sliding_window_view(Xpad, f.shape[2:], axis=(2, 3))  # (N, C_in, H', W', k, k)
        N, _, rows, cols = windows.shape[:4]
        Xcol = windows.transpose(0, 2, 3, 1, 4, 5).reshape(N * rows * cols, -1)  # rows (n, i, j), columns (c, a, b)
        Y = Xcol @ f.reshape(len(f), -1).T  # Y_k(i, j) = Σ_c Σ_a Σ_b X_c(i+a, j+b) f_kc(a, b)
        if self.bias:
            Y = Y + self.params["b"]  # + b_k
        return Y.reshape(N, rows, cols, -1).transpose(0, 3, 1, 2), {"Xcol": Xcol, "shape": X.shape}

    def backward(self, dY: np.ndarray, cache: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """∂L/∂X, ∂L/∂f (and ∂L/∂b) from ∂L/∂Y: (N, K, H', W')."""
        f, k, (before, _) = self.params["f"], self.kernel_size, self.pads()
        dYcol = dY.transpose(0, 2, 3, 1).reshape(-1, len(f))
        # ∂L/∂f_kc(a, b) = Σ_{n,i,j} ∂L/∂Y_k(i, j) X_c(i+a, j+b)
        grads = {"f": (dYcol.T @ cache["Xcol"]).reshape(f.shape)}
        if self.bias:
            grads["b"] = dYcol.sum(axis=0)  # ∂L/∂b_k = Σ_{n,i,j} ∂L/∂Y_k(i, j)
        # ∂L/∂Xpad_c(u, v) = Σ_k Σ_a Σ_b ∂L/∂Y_k(u−a, v−b) f_kc(a, b): the full cross-correlation of ∂L/∂Y
        # (k−1 zeros on every side) with the flipped filters f_kc(k−1−a, k−1−b); the padding is then cut off.
        dYpad = np.pad(dY, ((0, 0), (0, 0), (k - 1, k - 1), (k - 1, k - 1)))
        windows = sliding_window_view(dYpad, (k, k), axis=(2, 3))  # (N, K, Hpad, Wpad, k, k)
        dXpad = np.tensordot(windows, f[:, :, ::-1, ::-1], axes=([1, 4, 5], [0, 2, 3])).transpose(0, 3, 1, 2)
        _, _, H, W = cache["shape"]
        return dXpad[:, :, before : before + H, before : before + W], grads


class ReLU(Layer):
    """Y = max(X, 0), elementwise, on images or vectors."""

    kind = "relu"

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def forward(self, X: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        return np.maximum(X, 0), {"on": X > 0}

    def backward(self, dY: np.ndarray, cache: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return dY * cache["on"], {}  # ∂L/∂X = ∂L/∂Y · [X > 0]


class Pool(Layer):
    """2×2 pooling, stride 2: Z: (N, C, H//2, W//2); an odd last row/column is dropped.

    how: "decimate" (the write-up: Z(p, q) = Y(2p, 2q)), "max" (first maximum on ties, as PyTorch),
    "avg" (Z(p, q) = ¼ Σ_{u,v} Y(2p+u, 2q+v)).
    """

    kind = "pool"

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        if how not in POOL_TYPES:
            raise self.refuse(f"pooling must be one of {', '.join(POOL_TYPES)}; got {how!r}")

    @property
    def config(self) -> dict[str, Any]:
        return {"type": self.kind, "how": self.how}

    def spec(self) -> str:
        return f"pool:{self.how}"

    def output_shape(self, input_shape: Shape) -> Shape:
        C, H, W = _image(self, input_shape)
        if H < 2 or W < 2:
            raise self.refuse(f"2×2 pooling needs a map of at least 2×2, got {C}×{H}×{W}")
        return C, H // 2, W // 2

    def forward(self, Y: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        N, C, H, W = Y.shape
        rows, cols = H // 2, W // 2
        if self.how == "decimate":
            return Y[:, :, : 2 * rows : 2, : 2 * cols : 2], {"shape": Y.shape}  # Z(p, q) = Y(2p, 2q)
        windows = Y[:, :, : 2 * rows, : 2 * cols].reshape(N, C, rows, 2, cols, 2).transpose(0, 1, 2, 4, 3, 5)
        windows = windows.reshape(N, C, rows, cols, 4)
        if self.how == "avg":
            return windows.mean(axis=-1), {"shape": Y.shape}  # Z(p, q) = ¼ Σ_{u,v} Y(2p+u, 2q+v)
        winner = windows.argmax(axis=-1)
        Z = np.take_along_axis(windows, winner[..., None], axis=-1)[..., 0]  # Z(p, q) = max_{u,v} Y(2p+u, 2q+v)
        return Z, {"shape": Y.shape, "winner": winner}

    def backward(self, dZ: np.ndarray, cache: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Each Y pixel receives the share of ∂L/∂Z it contributed; dropped pixels receive 0."""
        N, C, rows, cols = dZ.shape
        dY = np.zeros(cache["shape"], dZ.dtype)
        if self.how == "decimate":
            dY[:, :, : 2 * rows : 2, : 2 * cols : 2] = dZ  # ∂Z(p, q)/∂Y(2p, 2q) = 1
            return dY, {}
        if self.how == "avg":
            dwindows = np.repeat(dZ[..., None] / 4, 4, axis=-1)  # ∂Z/∂Y = ¼ for each of the 4 pixels
        else:
            dwindows = (np.arange(4) == cache["winner"][..., None]) * dZ[..., None]  # only the winner
        dY[:, :, : 2 * rows, : 2 * cols] = (
            dwindows.reshape(N, C, rows, cols, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(N, C, 2 * rows, 2 * cols)
        )
        return dY, {}


class Flatten(Layer):
    """Images (N, C, H, W) → vectors (N, C·H·W), in (c, i, j) order as the write-up's W_{j,k,p,q}."""

    kind = "flatten"

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise self.refuse(f"its input is already a flat vector of {input_shape[0]}")
        C, H, W = input_shape
        return (C * H * W,)

    def forward(self, X: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        return X.reshape(len(X), -1), {"shape": X.shape}

    def backward(self, dY: np.ndarray, cache: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return dY.reshape(cache["shape"]), {}


class Dense(Layer):
    """A = W X (+ b): W (out, in), X (N, in) → A (N, out). width None: the number of classes C (set by Stack)."""

    kind = "dense"

    def __init__(self, width: int | None = None, *, bias: bool) -> None:
        super().__init__()
        self.width, self.bias = (None if width is None else int(width)), bool(bias)
        if self.width is not None and self.width < 1:
            raise self.refuse("needs a width of at least 1")

    @property
    def config(self) -> dict[str, Any]:
        return {"type": self.kind, "width": self.width, "bias": self.bias}

    def spec(self) -> str:
        return f"dense{'' if self.width is None else f':{self.width}'}{'' if self.bias else '-b'}"

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise self.refuse("needs a flat vector, got images {}: put flatten before it".format("×".join(
                map(str, input_shape))))
        if self.width is None:
            raise self.refuse("has no width (a Stack sets it to the number of classes)")
        return (self.width,)

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        return {"W": (self.width, input_shape[0])} | ({"b": (self.width,)} if self.bias else {})

    def initialise(self, input_shape: Shape, rng: np.random.Generator, dtype: str, he: bool) -> None:
        self.params = {"W": _uniform(rng, (self.width, input_shape[0]), input_shape[0], he, dtype)}  # fan_in = in
        if self.bias:
            self.params["b"] = np.zeros(self.width, dtype)

    def forward(self, X: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        A = X @ self.params["W"].T  # A = W X
        if self.bias:
            A = A + self.params["b"]  # A = W X + b
        return A, {"X": X}

    def backward(self, dA: np.ndarray, cache: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        grads = {"W": dA.T @ cache["X"]}  # ∂L/∂W = ∂L/∂A ⊗ X, summed over the batch
        if self.bias:
            grads["b"] = dA.sum(axis=0)  # ∂L/∂b = ∂L/∂A
        return dA @ self.params["W"], grads  # ∂L/∂X = Wᵀ ∂L/∂A


LAYER_TYPES: dict[str, type[Layer]] = {cls.kind: cls for cls in (Conv, ReLU, Pool, Flatten, Dense)}


def from_config(config: dict[str, Any]) -> Layer:
    """The layer a ``config`` dict describes (parameters not included)."""
    settings = dict(config)
    kind = settings.pop("type", None)
    if kind not in LAYER_TYPES:
        raise ConfigError(f"unknown layer type {kind!r} (known: {', '.join(LAYER_TYPES)})")
    try:
        return LAYER_TYPES[kind](**settings)
    except TypeError as error:
        raise ConfigError(f"bad {kind} layer configuration {config!r}: {error}") from None
