"""Stack: a network as a plain list of layers (nn/stack_layers.py), then softmax and cross-entropy.

The write-up's network is one stack (the "seed" preset of nn/spec.py): conv 3@3×3 bottom-right,
decimate, flatten, dense C without bias. Parameters are named "<layer index>.<name>", e.g. "0.f", "3.W".

Initialisation: a conv or dense layer whose next layer is a ReLU gets He-uniform weights in
±√(6/fan_in) (variance 2/fan_in: the ReLU zeroes half of its inputs, so this keeps the activations'
scale through the stack); any other gets the write-up's uniform ±1/√fan_in. fan_in = C_in·k² for a
convolution, the input width for a dense layer. Biases start at 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

import numpy as np

from scratchcnn import options
from scratchcnn.errors import ConfigError, ModelFileError, first_line
from scratchcnn.nn import layers as equations
from scratchcnn.nn.inputs import Classifier
from scratchcnn.nn.npzfile import MAX_ELEMENTS, Expected, check_saved_arrays, read_json_header
from scratchcnn.nn.stack_layers import Dense, Layer, ReLU, Shape, from_config
from scratchcnn.options import CLASSES, INPUT_SHAPE, NETWORK, TRAINING

FILE_FORMAT = "scratchcnn.Stack"
FILE_FORMAT_VERSION = 1


class Stack(Classifier):
    """Layers applied in turn to images X: (N, H, W), ending in a dense layer of C class scores A: (N, C)."""

    file_format, file_version = FILE_FORMAT, FILE_FORMAT_VERSION
    chunk = 128  # images scored at once per thread: a deep stack's im2col matrices are ~25× the images' size

    def __init__(
        self,
        layers: Sequence[Layer],
        input_shape: tuple[int, int] = INPUT_SHAPE,
        classes: int = CLASSES,
        seed: int | None = TRAINING.seed,
        dtype: str = NETWORK.dtype,
        *,
        initialise: bool = True,
    ) -> None:
        self.layers = list(layers)
        self.dataset: str | None = None  # what it was trained on, recorded in saved files
        self.input_shape = options.input_shape(input_shape)
        self.classes = options.whole_number("classes", classes, 2)
        self.dtype = options.choice("dtype", np.dtype(dtype).name, options.DTYPES)
        if seed is not None:
            options.whole_number("seed", seed, 0)
        self.shapes = self._check_shapes()
        if not initialise:  # a saved file's arrays come next (from_arrays)
            return
        rng = np.random.default_rng(seed)
        for i, layer in enumerate(self.layers):
            followed_by_relu = i + 1 < len(self.layers) and isinstance(self.layers[i + 1], ReLU)
            layer.initialise(self.shapes[i], rng, self.dtype, he=followed_by_relu)

    def _check_shapes(self) -> list[Shape]:
        """The input shape of each layer, then the output's: ConfigError naming the first layer that does not fit."""
        if not self.layers or not isinstance(self.layers[-1], Dense):
            last = repr(self.layers[-1].text or self.layers[-1].spec()) if self.layers else "nothing"
            raise ConfigError(f"the last layer must be dense (the {self.classes} class scores A), got {last}")
        shapes: list[Shape] = [(1, *self.input_shape)]
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dense) and layer.width is None:
                layer.width = self.classes  # a dense without a width: one output per class
            try:
                shapes.append(layer.output_shape(shapes[-1]))
            except ConfigError as error:
                raise ConfigError(f"layer {i + 1} of {len(self.layers)} {error}") from None
        if shapes[-1] != (self.classes,):
            last = self.layers[-1].text or self.layers[-1].spec()
            raise ConfigError(f"layer {len(self.layers)} of {len(self.layers)} {last!r}: "
                              f"the last dense layer must have {self.classes} outputs, one per class")
        return shapes

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able: the layers' configs, input shape, classes and dtype."""
        return {"layers": [layer.config for layer in self.layers], "input_shape": list(self.input_shape),
                "classes": self.classes, "dtype": self.dtype}

    def spec(self) -> str:
        """The stack as a spec string (nn/spec.py), with every width written out."""
        return ",".join(layer.spec() for layer in self.layers)

    def parameters(self) -> dict[str, np.ndarray]:
        """The trainable arrays as "<layer index>.<name>", the same objects the layers compute with."""
        return {f"{i}.{name}": value for i, layer in enumerate(self.layers) for name, value in layer.params.items()}

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of each parameter, keyed like ``parameters()``, known before any is allocated."""
        return {f"{i}.{name}": shape for i, layer in enumerate(self.layers)
                for name, shape in layer.param_shapes(self.shapes[i]).items()}

    def __repr__(self) -> str:
        return f"Stack({self.spec()!r}, input_shape={self.input_shape}, classes={self.classes}, dtype={self.dtype!r})"

    def _repr_html_(self) -> str:
        """A compact table for notebooks: each layer, its output shape and parameter count."""
        counts = [sum(math.prod(shape) for shape in layer.param_shapes(self.shapes[i]).values())
                  for i, layer in enumerate(self.layers)]
        rows = [("", "input X", self.shapes[0], 0)]
        rows += [(str(i + 1), layer.spec(), self.shapes[i + 1], counts[i]) for i, layer in enumerate(self.layers)]
        body = "".join(f"<tr><td>{index}</td><td>{escape(spec)}</td><td>{'×'.join(map(str, shape))}</td>"
                       f"<td>{count:,}</td></tr>" for index, spec, shape, count in rows)
        caption = (f"Stack: {len(self.layers)} layers, {sum(counts):,} parameters, {self.dtype}, "
                   f"dataset: {self.dataset or 'not recorded'}")
        return (f"<table><caption>{escape(caption)}</caption>"
                f"<tr><th>layer</th><th>spec</th><th>output shape</th><th>parameters</th></tr>{body}</table>")

    # ---- computing ---------------------------------------------------------------------------

    def scale(self, X: np.ndarray) -> np.ndarray:
        """Checked images (N, H, W) as the first layer's input (N, 1, H, W) in [0, 1] (uint8 divided by 255)."""
        return super().scale(X).astype(self.dtype, copy=False)[:, None]

    def chunk_scores(self, X: np.ndarray) -> np.ndarray:
        """Class scores A: (n, C) for a chunk of checked images X: (n, H, W) (Classifier.scores chunks)."""
        A = self.scale(X)
        for layer in self.layers:
            A = layer.forward(A)[0]  # each cache dropped at once: scoring keeps one layer's arrays alive, not all
        return A

    def forward_cached(self, X: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Class scores A: (N, C) for prepared images X: (N, 1, H, W), and each layer's cache."""
        caches = []
        for layer in self.layers:
            X, cache = layer.forward(X)  # each layer's output is the next one's input
            caches.append(cache)
        return X, caches

    def forward(self, X: Any) -> np.ndarray:
        """Class scores A: (N, C) for images X: (N, H, W)."""
        return self.forward_cached(self.prepare(X))[0]

    def backward(self, dA: np.ndarray, caches: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Every parameter's gradient from ∂L/∂A: (N, C), each layer's ∂L/∂X being the previous one's ∂L/∂Y."""
        grads: dict[str, np.ndarray] = {}
        for i in reversed(range(len(self.layers))):
            dA, layer_grads = self.layers[i].backward(dA, caches[i])
            grads.update({f"{i}.{name}": value for name, value in layer_grads.items()})
        return {name: grads[name] for name in self.parameters()}

    def loss_and_gradients(self, X: Any, y: Any) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy L = −ln P_y over the batch and its gradients keyed like ``parameters()``.

        X: (N, H, W) uint8 or floats in [0, 1]; y: (N,) integer labels 0..C−1.
        """
        X = self.prepare(X)
        return self.loss_and_gradients_prepared(X, self.prepare_labels(y, len(X)))

    def loss_and_gradients_prepared(self, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """loss_and_gradients for prepared images X: (N, 1, H, W) and checked labels (what fit's steps use)."""
        A, caches = self.forward_cached(X)
        log_P = equations.log_softmax(A)  # ln P_j = a_j − ln Σ_k e^{a_k}
        L = -log_P[np.arange(len(y)), y].mean()  # L = −ln P_y, averaged over the batch
        dA = equations.cross_entropy_backward(np.exp(log_P), y)  # ∂L/∂A = (P − onehot(y)) / N
        return float(L), self.backward(dA, caches)

    # ---- files -------------------------------------------------------------------------------

    def header(self) -> dict[str, Any]:
        """What a saved file says about itself: Classifier's header and the stack as a spec string."""
        return super().header() | {"spec": self.spec()}

    @classmethod
    def described(cls, raw_header: np.ndarray | None, where: str) -> Stack:
        """The Stack a saved header describes, shapes checked, parameters not yet allocated."""
        header = read_json_header(raw_header, where, FILE_FORMAT, FILE_FORMAT_VERSION, ("config",))
        config = dict(header["config"])
        try:
            if not isinstance(config.get("layers"), list):
                raise ConfigError("no list of layers")
            layers = [from_config(layer) for layer in config.pop("layers")]
            net = cls(layers, **config, seed=None, initialise=False)
        except (ConfigError, TypeError, AttributeError) as error:
            raise ModelFileError(f"{where}: bad configuration in header: {first_line(error)}") from None
        net.dataset = header.get("dataset")
        return net

    @classmethod
    def expected_arrays(cls, raw_header: np.ndarray | None, where: str) -> dict[str, Expected]:
        """{name: (dtype, shape)} of the parameters a saved header promises, computed without allocating them."""
        net = cls.described(raw_header, where)
        shapes = net.param_shapes()
        total = sum(math.prod(shape) for shape in shapes.values())
        if total > MAX_ELEMENTS:
            raise ModelFileError(f"{where}: header declares a network of {total:,} parameters, "
                                 f"more than the {MAX_ELEMENTS:,} scratchcnn loads")
        return {name: (np.dtype(net.dtype), shape) for name, shape in shapes.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], where: str) -> Stack:
        """Rebuild a Stack from its saved header (JSON in arrays["header"]) and parameter arrays.

        ModelFileError, naming ``where``, for anything that disagrees with the header.
        """
        arrays = dict(arrays)
        net = cls.described(arrays.pop("header", None), where)
        dtype = np.dtype(net.dtype)
        check_saved_arrays(arrays, {name: (dtype, shape) for name, shape in net.param_shapes().items()}, where)
        for name, value in arrays.items():
            index, _, key = name.partition(".")
            net.layers[int(index)].params[key] = value.copy()
        return net
