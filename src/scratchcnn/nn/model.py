"""ConvNet: convolution → pooling → dense → softmax, trained with hand-derived gradients.

The softmax is the standard P_j = e^{a_j} / Σ_k e^{a_k} and the loss L = −ln P_y. The original
write-up prints e^{−a_j} (the same model with W negated) and drops the minus sign of L (a typo).
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

import numpy as np

from scratchcnn import options
from scratchcnn.errors import ConfigError, ModelFileError, first_line
from scratchcnn.nn import layers
from scratchcnn.nn.inputs import Classifier
from scratchcnn.nn.npzfile import MAX_ELEMENTS, Expected, check_saved_arrays, read_json_header
from scratchcnn.options import CLASSES, INPUT_SHAPE, NETWORK, TRAINING

FILE_FORMAT = "scratchcnn.ConvNet"
FILE_FORMAT_VERSION = 1


class ConvNet(Classifier):
    """The write-up's network and its variants.

    Parameters: f (K, k, k) filters, W (C, K, H', W') dense weights with H' = H // 2, W' = W // 2,
    and b (C,) when ``bias`` is on. Inputs X: (N, H, W), uint8 (divided by 255) or float in [0, 1].
    """

    file_format, file_version = FILE_FORMAT, FILE_FORMAT_VERSION

    def __init__(
        self,
        filters: int = NETWORK.filters,
        kernel_size: int = NETWORK.kernel_size,
        pool: str = NETWORK.pool,
        activation: str = NETWORK.activation,
        bias: bool = NETWORK.bias,
        input_shape: tuple[int, int] = INPUT_SHAPE,
        seed: int | None = TRAINING.seed,
        dtype: str = NETWORK.dtype,
        classes: int = CLASSES,
    ) -> None:
        checked = options.NetworkOptions(filters=filters, kernel_size=kernel_size, pool=pool, activation=activation,
                                         bias=bool(bias), dtype=_dtype_name(dtype))
        self.filters, self.kernel_size = int(checked.filters), int(checked.kernel_size)
        self.pool, self.activation, self.bias = checked.pool, checked.activation, checked.bias
        self.dtype = checked.dtype
        self.input_shape = options.input_shape(input_shape)
        self.classes = options.whole_number("classes", classes, 2)
        self.dataset: str | None = None  # what it was trained on, recorded in saved files
        if seed is not None:
            options.whole_number("seed", seed, 0)
        self._init_parameters(np.random.default_rng(seed))

    def _init_parameters(self, rng: np.random.Generator) -> None:
        # Uniform in ±1/√fan_in, the default of common frameworks: keeps A of order 1 at the start.
        K, k = self.filters, self.kernel_size
        self.f = (rng.uniform(-1, 1, (K, k, k)) / k).astype(self.dtype)  # fan_in = k²
        fan_in = K * self.pooled_shape[0] * self.pooled_shape[1]
        self.W = (rng.uniform(-1, 1, (self.classes, K, *self.pooled_shape)) / np.sqrt(fan_in)).astype(self.dtype)
        if self.bias:
            self.b = np.zeros(self.classes, self.dtype)

    @property
    def pooled_shape(self) -> tuple[int, int]:
        """(H', W') = (H // 2, W // 2): the size of each pooled image Z_k."""
        return self.input_shape[0] // 2, self.input_shape[1] // 2

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments that define the architecture (the seed only sets the start)."""
        return {
            "filters": self.filters, "kernel_size": self.kernel_size, "pool": self.pool,
            "activation": self.activation, "bias": self.bias,
            "input_shape": list(self.input_shape), "dtype": self.dtype, "classes": self.classes,
        }

    def parameters(self) -> dict[str, np.ndarray]:
        """The trainable arrays by name, the same objects the network computes with."""
        params = {"f": self.f, "W": self.W}
        if self.bias:
            params["b"] = self.b
        return params

    def __repr__(self) -> str:
        config = dict(self.config, input_shape=self.input_shape)
        args = ", ".join(f"{key}={value!r}" for key, value in config.items())
        return f"ConvNet({args})"

    def _repr_html_(self) -> str:
        """A compact table for notebooks: each step of the forward pass, its output shape and parameter count."""
        K, k, C = self.filters, self.kernel_size, self.classes
        (H, W), (rows, cols) = self.input_shape, self.pooled_shape
        steps = [("input X", f"{H}×{W}", 0),
                 (f"convolution f: {K} filters {k}×{k} → Y", f"{K}×{H}×{W}", self.f.size)]
        if self.activation != "none":
            steps.append((self.activation, f"{K}×{H}×{W}", 0))
        dense = ("dense W Z + b → A", str(C), self.W.size + C) if self.bias else ("dense W Z → A", str(C), self.W.size)
        steps += [(f"pooling ({self.pool}) → Z", f"{K}×{rows}×{cols}", 0), dense, ("softmax → P", str(C), 0)]
        body = "".join(f"<tr><td>{escape(name)}</td><td>{escape(shape)}</td><td>{count:,}</td></tr>"
                       for name, shape, count in steps)
        total = sum(p.size for p in self.parameters().values())
        caption = (f"ConvNet: {total:,} parameters, {self.dtype}, "
                   f"dataset: {self.dataset or 'not recorded'}")
        return (f"<table><caption>{escape(caption)}</caption>"
                f"<tr><th>step</th><th>output shape</th><th>parameters</th></tr>{body}</table>")

    # ---- computing ---------------------------------------------------------------------------

    def forward(self, X: np.ndarray, *, training: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
        """Class scores A: (N, C) for prepared images X: (N, H, W), and what backward needs (training)."""
        N, k = len(X), self.kernel_size
        rows, cols = self.pooled_shape
        # Decimation keeps only even (i, j): compute Y there alone. Max/avg need every pixel of each window.
        stride = 2 if self.pool == "decimate" else 1
        Xcol = layers.patches(X, k, stride, rows * 2 // stride, cols * 2 // stride)  # (N·positions, k·k)
        Y = layers.convolve(Xcol, self.f)  # Y_k(i, j) = Σ_a Σ_b X(i+a, j+b) f_k(a, b)
        if training or self.pool != "max":
            Z, winner = layers.pool(layers.activate(Y, self.activation), self.pool, N, rows, cols)
        else:  # only Z: the maximum, then ReLU (the same Z: ReLU keeps the order of numbers, and NaN)
            Z, winner = layers.activate(layers.max_pool(Y, N, rows, cols), self.activation), None
        A = Z.reshape(N, -1) @ self.W.reshape(self.classes, -1).T  # A = W Z
        if self.bias:
            A = A + self.b  # A = W Z + b
        return A, {"Xcol": Xcol, "Y": Y, "Z": Z, "winner": winner}

    def backward(self, dA: np.ndarray, cache: dict[str, Any]) -> dict[str, np.ndarray]:
        """Gradients of L with respect to the parameters, from ∂L/∂A: (N, C), by the chain rule."""
        Z = cache["Z"]
        grads = {"W": (dA.T @ Z.reshape(len(Z), -1)).reshape(self.W.shape)}  # ∂L/∂W = ∂L/∂A ⊗ Z
        if self.bias:
            grads["b"] = dA.sum(axis=0)  # ∂L/∂b = ∂L/∂A
        dZ = (dA @ self.W.reshape(self.classes, -1)).reshape(Z.shape)  # ∂L/∂Z = Wᵀ ∂L/∂A
        dY = layers.pool_backward(dZ, self.pool, cache["winner"])
        dY = layers.activate_backward(dY, cache["Y"], self.activation)
        grads["f"] = layers.convolve_backward(dY, cache["Xcol"], self.f.shape)  # Σ ∂L/∂Y_k X(m+a, n+b)
        return {name: grads[name] for name in self.parameters()}

    def loss_and_gradients_prepared(self, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """loss_and_gradients without input checks, for a trainer that checked its data once."""
        A, cache = self.forward(X)
        log_P = layers.log_softmax(A)
        L = -log_P[np.arange(len(y)), y].mean()  # L = −ln P_y, averaged over the batch
        dA = layers.cross_entropy_backward(np.exp(log_P), y)  # ∂L/∂A = P − onehot(y)
        return float(L), self.backward(dA, cache)

    def loss_and_gradients(self, X: Any, y: Any) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy over the batch and its gradients {"f", "W"(, "b")} shaped like the parameters.

        X: (N, H, W) uint8 or float in [0, 1]; y: (N,) integer labels 0..C−1.
        """
        X = self.prepare(X)
        return self.loss_and_gradients_prepared(X, self.prepare_labels(y, len(X)))

    def feature_maps(self, image: Any) -> tuple[np.ndarray, np.ndarray]:
        """For pictures: the full convolved images Y (K, H, W), after the activation, and the pooled Z.

        image: (H, W). Training never needs Y at the dropped pixels; a reader looking at Y_k does.
        """
        X = self.prepare(np.asarray(image)[None])
        H, W = self.input_shape
        Xcol = layers.patches(X, self.kernel_size, 1, H, W)
        Y = layers.activate(layers.convolve(Xcol, self.f), self.activation)  # (H·W, K)
        Y_full = Y.reshape(H, W, -1).transpose(2, 0, 1)
        rows, cols = self.pooled_shape
        step = 2 if self.pool == "decimate" else 1  # pool() takes the positions forward() computes
        Y_kept = Y_full[:, : 2 * rows : step, : 2 * cols : step]
        Z, _ = layers.pool(Y_kept.transpose(1, 2, 0).reshape(-1, self.filters), self.pool, 1, rows, cols)
        return Y_full, Z[0]

    def chunk_scores(self, X: np.ndarray) -> np.ndarray:
        """Class scores A: (n, C) for one chunk of checked images (N, H, W) (Classifier.scores chunks)."""
        return self.forward(self.scale(X), training=False)[0]

    # ---- files -------------------------------------------------------------------------------

    @classmethod
    def expected_arrays(cls, raw_header: np.ndarray | None, where: str) -> dict[str, Expected]:
        """{name: (dtype, shape)} of the parameters a saved header promises, computed without allocating them.

        f (K, k, k), W (C, K, H // 2, W // 2), b (C,) with bias. A file is checked against these before its
        arrays are read: building the network to find out would allocate whatever sizes the header claims.
        """
        header = read_json_header(raw_header, where, FILE_FORMAT, FILE_FORMAT_VERSION, ("config",))
        config = header["config"]
        try:
            K = options.whole_number("filters", config.get("filters", NETWORK.filters), 1)
            k = options.whole_number("kernel_size", config.get("kernel_size", NETWORK.kernel_size), 1)
            C = options.whole_number("classes", config.get("classes", CLASSES), 2)
            H, W = options.input_shape(config.get("input_shape", INPUT_SHAPE))
            # The constructor checks everything else (pool, dtype, unknown keys...) on the smallest network.
            small = cls(**dict(config, filters=1, kernel_size=1, input_shape=(2, 2), classes=2), seed=0)
        except (ConfigError, TypeError) as error:
            raise ModelFileError(f"{where}: bad configuration in header: {first_line(error)}") from None
        shapes = {"f": (K, k, k), "W": (C, K, H // 2, W // 2)} | ({"b": (C,)} if small.bias else {})
        total = sum(math.prod(shape) for shape in shapes.values())
        if total > MAX_ELEMENTS:
            raise ModelFileError(f"{where}: header declares a network of {total:,} parameters, "
                                 f"more than the {MAX_ELEMENTS:,} scratchcnn loads")
        return {name: (np.dtype(small.dtype), shape) for name, shape in shapes.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], where: str) -> ConvNet:
        """Rebuild a network from a saved header (JSON in arrays["header"]) and parameter arrays.

        Raises ModelFileError, naming ``where``, for anything that disagrees with the header.
        """
        arrays = dict(arrays)
        header = read_json_header(arrays.pop("header", None), where, FILE_FORMAT, FILE_FORMAT_VERSION, ("config",))
        try:
            net = cls(**header["config"], seed=0)
        except (ConfigError, TypeError) as error:
            raise ModelFileError(f"{where}: bad configuration in header: {first_line(error)}") from None
        check_saved_arrays(arrays, {name: (p.dtype, p.shape) for name, p in net.parameters().items()}, where)
        for name, value in arrays.items():
            setattr(net, name, value.copy())
        net.dataset = header.get("dataset")
        return net


def _dtype_name(value: Any) -> Any:
    """"float32" for np.float32, np.dtype("float32") and "float32"; anything else as it is (refused later)."""
    try:
        return np.dtype(value).name if value is not None else value
    except TypeError:
        return value
