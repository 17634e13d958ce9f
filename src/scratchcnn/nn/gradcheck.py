"""Gradient check: each hand-derived ∂L/∂θ against central finite differences of the loss itself.

For one entry θ_e of a parameter tensor (or one pixel of the images, with ``inputs``)::

    ∂L/∂θ_e ≈ (L(θ + ε e) − L(θ − ε e)) / 2ε        (central differences, error O(ε²))

The analytic side is the network's own ``loss_and_gradients``, the function the NumPy trainer steps with
(the compiled engines are held equal to it by the test suite); the numeric side perturbs the network's
own parameter arrays in place, one entry at a time, and evaluates its own forward pass and softmax
cross-entropy L = −ln P_y (mean over the batch). Every entry is restored to its exact old value.

The error of a tensor is ``max_e |a_e − n_e| / max(max_e |a_e|, max_e |n_e|)``: the largest disagreement
relative to the tensor's largest gradient. (An entry-wise ratio |a − n| / (|a| + |n|) blows up on entries
whose derivative is ~0, e.g. weights of blank pixels, where finite differences return rounding noise.)

ReLU and max pooling make L piecewise smooth: where θ ± ε crosses a kink (a ReLU input changes sign,
a pooling window changes its winner), the difference quotient mixes two slopes and, at the kink itself,
L has no derivative to compare with. Such entries are found by comparing the ReLU on/off masks and the
max-pool winners of the very forward passes at θ ± ε with those at θ, and are counted as ``kinks``, not
compared. A fresh network with conv biases at 0 has its ReLUs exactly at the kink on blank pixels
(``spread_biases`` moves it off); the pixels of blank areas often sit on pooling ties.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from scratchcnn.errors import ConfigError
from scratchcnn.nn.layers import cross_entropy_backward, log_softmax
from scratchcnn.nn.model import ConvNet
from scratchcnn.nn.network import Network, as_stack
from scratchcnn.nn.stack import Stack
from scratchcnn.options import GRADCHECK_EPSILON, GRADCHECK_SAMPLES, GRADCHECK_TOLERANCE, TRAINING

# float64: the truncation error ε²/6·|L'''| (~1e-13 for ε = 1e-6) and the rounding error ~u·|A|/ε
# (u = 1.1e-16, scores A of order 1–10: ~1e-9) are far below 1e-6 of a gradient of order 1e-3–1 (measured
# on the presets, fresh and trained: 5e-10 to 2e-8), while a derivation mistake (a missing factor, a
# transposed index, a wrong mask) is off by 1e-3 or (much) more.
FLOAT64_TOLERANCE = GRADCHECK_TOLERANCE
SAMPLES = GRADCHECK_SAMPLES
TINY = 1e-300


@dataclass(frozen=True)
class TensorCheck:
    """One tensor's check: ``checked`` entries compared (``kinks`` more found at a kink, not compared)."""

    name: str
    shape: tuple[int, ...]
    checked: int
    kinks: int
    max_relative_error: float  # max |a − n| over the tensor's largest |a| or |n|
    max_abs_error: float  # max |a − n|, in units of L per unit of θ
    passed: bool


@dataclass(frozen=True)
class GradcheckResult:
    """Every tensor's check, the tolerance and step used, and L as the network computes it."""

    tensors: list[TensorCheck]
    tolerance: float
    epsilon: float
    records: int
    loss: float

    @property
    def passed(self) -> bool:
        return all(tensor.passed for tensor in self.tensors)

    @property
    def failed(self) -> list[str]:
        return [tensor.name for tensor in self.tensors if not tensor.passed]

    def to_json(self) -> dict[str, Any]:
        """JSON-able, a NaN error (a NaN gradient) as null."""
        def row(tensor: TensorCheck) -> dict[str, Any]:
            errors = {key: _finite_or_none(getattr(tensor, key)) for key in ("max_relative_error", "max_abs_error")}
            return asdict(tensor) | {"shape": list(tensor.shape)} | errors

        return {"passed": self.passed, "tolerance": self.tolerance, "epsilon": self.epsilon, "records": self.records,
                "loss": self.loss, "tensors": [row(tensor) for tensor in self.tensors]}


def _finite_or_none(value: float) -> float | None:
    return value if np.isfinite(value) else None


def gradcheck(net: Network, X: Any, y: Any, *, inputs: bool = False, epsilon: float = GRADCHECK_EPSILON,
              tolerance: float | None = None, samples: int | None = None,
              seed: int = TRAINING.seed) -> GradcheckResult:
    """Check ∂L/∂θ of every parameter tensor of ``net`` (and ∂L/∂X with ``inputs``) on images X and labels y.

    X: (N, H, W) uint8 or floats in [0, 1]; y: (N,) labels. ``samples``: entries checked per tensor
    (default: all of a tensor of at most 200, else 200 drawn with ``seed``). ``tolerance``: the largest
    relative error that passes (default 1e-6, float64 only: a float32 loss is good to ~1e-7, too coarse
    for finite differences to tell a right gradient from a slightly wrong one; pass a float32 network
    through ``float64_copy`` or give a tolerance and a larger ε yourself). The input check perturbs the
    prepared images (scaled to [0, 1] in the network's dtype). The parameters are left bit-identical.
    """
    tolerance = _tolerance(net, tolerance)
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise ConfigError(f"epsilon must be a positive number, got {epsilon!r}")
    X_prepared = np.array(net.prepare(X))  # a copy of its own: the input check perturbs its pixels
    y = net.prepare_labels(y, len(X_prepared))
    if len(y) == 0:
        raise ConfigError("a gradient check needs at least one record")
    L, grads = net.loss_and_gradients(X, y)  # the analytic gradients: the training path itself
    if not np.isfinite(L):
        raise ConfigError(f"the loss is {L} at these parameters: no gradient to check")
    probe = _Probe(net, X_prepared, y)
    if not np.isclose(probe.loss, L, rtol=1e-12, atol=0):  # the function differenced must be the one trained
        raise RuntimeError(f"the network's forward pass gives L = {probe.loss!r}, loss_and_gradients {L!r}")
    rng = np.random.default_rng(seed)
    wanted = SAMPLES if samples is None else samples
    targets = [(name, value, grads[name]) for name, value in net.parameters().items()]
    if inputs:
        targets.append(("X", X_prepared, input_gradient(net, X_prepared, y)))
    # Thousands of forward passes of a few records each: BLAS's threads would cost more in hand-offs than
    # such small products gain (measured: lenet's check 44 s with 2 threads, 12 s with 1, on 2 cores).
    with threadpool_limits(1, user_api="blas"):
        rows = [_check_tensor(name, value, analytic, probe, epsilon, tolerance, _entries(value.size, wanted, rng))
                for name, value, analytic in targets]
    return GradcheckResult(rows, tolerance, epsilon, len(y), L)


def _tolerance(net: Network, tolerance: float | None) -> float:
    if tolerance is not None:
        if not tolerance > 0:
            raise ConfigError(f"tolerance must be a positive number, got {tolerance!r}")
        return float(tolerance)
    if net.dtype != "float64":
        raise ConfigError(f"a gradient check needs a float64 network, this one is {net.dtype} (its loss is good to "
                          "~1e-7, too coarse for finite differences): check float64_copy(net), or --dtype float64")
    return FLOAT64_TOLERANCE


def _entries(size: int, wanted: int, rng: np.random.Generator) -> np.ndarray:
    """Flat indices to check: all of them, or ``wanted`` of them drawn without replacement, in order."""
    if wanted < 1:
        raise ConfigError(f"samples must be a whole number ≥ 1, got {wanted!r}")
    return np.arange(size) if size <= wanted else np.sort(rng.choice(size, wanted, replace=False))


class _Probe:
    """L at the current parameters and images, by the network's own forward pass and cross-entropy, and
    which piece of the piecewise-smooth L they lie on (read from the same pass's caches)."""

    def __init__(self, net: Network, X: np.ndarray, y: np.ndarray) -> None:
        self.net, self.X, self.y = net, X, y
        self.loss, self.base = self.evaluate()

    def evaluate(self) -> tuple[float, list[np.ndarray]]:
        """(L = −ln P_y averaged over the batch, as loss_and_gradients_prepared computes it; the ReLU on/off
        masks and max-pool winners)."""
        net = self.net
        if isinstance(net, ConvNet):
            A, cache = net.forward(self.X)  # training=True: loss_and_gradients' own forward
            pieces = [cache["Y"] > 0] if net.activation == "relu" else []
            pieces += [cache["winner"]] if cache["winner"] is not None else []
        else:
            A, caches = net.forward_cached(self.X)
            pieces = [cache[key] for cache in caches for key in ("on", "winner") if key in cache]
        return float(-log_softmax(A)[np.arange(len(self.y)), self.y].mean()), pieces

    def on_base_piece(self, pieces: list[np.ndarray]) -> bool:
        return all(np.array_equal(a, b) for a, b in zip(pieces, self.base, strict=True))


def _central_difference(value: np.ndarray, index: tuple[int, ...], probe: _Probe, epsilon: float
                        ) -> tuple[float, bool]:
    """(L(θ + ε) − L(θ − ε)) / 2ε for one entry of ``value`` (moved in place, then restored to its exact old
    value), and whether θ ± ε lies on another piece of L than θ (a ReLU mask or a max-pool winner changed)."""
    old = value[index]
    try:
        value[index] = old + epsilon
        (plus, plus_pieces), high = probe.evaluate(), float(value[index])
        value[index] = old - epsilon
        (minus, minus_pieces), low = probe.evaluate(), float(value[index])
    finally:
        value[index] = old
    kink = not (probe.on_base_piece(plus_pieces) and probe.on_base_piece(minus_pieces))
    return (plus - minus) / (high - low), kink  # the step as stored: θ ± ε is rounded to the array's precision


def _check_tensor(name: str, value: np.ndarray, analytic: np.ndarray, probe: _Probe, epsilon: float,
                  tolerance: float, entries: np.ndarray) -> TensorCheck:
    indices = [np.unravel_index(e, value.shape) for e in entries]
    a = np.array([float(analytic[index]) for index in indices])
    differences = [_central_difference(value, index, probe, epsilon) for index in indices]
    n = np.array([numeric for numeric, _ in differences])
    kink = np.array([on_kink for _, on_kink in differences], bool)
    compared = ~kink
    error = np.abs(a - n)[compared]
    worst = float(error.max(initial=0))
    relative = worst / _scale(a[compared], n[compared])
    checked = int(compared.sum())
    return TensorCheck(name, tuple(value.shape), checked, len(a) - checked, relative, worst,
                       checked > 0 and relative <= tolerance)


def _scale(a: np.ndarray, n: np.ndarray) -> float:
    return max(float(np.abs(a).max(initial=0)), float(np.abs(n).max(initial=0)), TINY)


def input_gradient(net: Network, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """∂L/∂X for prepared images X (shaped as ``net.prepare`` gives them), through each layer's backward.

    A ConvNet is taken as the Stack computing the same function (``as_stack``); the chain is Stack.backward's,
    kept going past the first layer: ∂L/∂X = ∂L/∂(first layer's input).
    """
    stack = as_stack(net)
    A, caches = stack.forward_cached(X.reshape(len(X), 1, *net.input_shape))
    dA = cross_entropy_backward(np.exp(log_softmax(A)), y)  # ∂L/∂A = (P − onehot(y)) / N
    for layer, cache in zip(reversed(stack.layers), reversed(caches), strict=True):
        dA = layer.backward(dA, cache)[0]
    return dA.reshape(X.shape)


def float64_copy(net: Network) -> Network:
    """A copy of ``net`` in float64, its parameters cast exactly (float32 → float64 loses nothing)."""
    twin = copy.deepcopy(net)
    twin.dtype = "float64"
    if isinstance(twin, Stack):
        for layer in twin.layers:
            layer.params = {key: value.astype(np.float64) for key, value in layer.params.items()}
    else:
        for name, value in twin.parameters().items():
            setattr(twin, name, value.astype(np.float64))
    return twin


def spread_biases(net: Network, seed: int = TRAINING.seed, spread: float = 0.1) -> None:
    """Draw every bias of ``net`` (in place) uniformly from ±``spread`` instead of the fresh network's 0.

    A conv bias of 0 before a ReLU puts the ReLU exactly at its kink on blank pixels (Y = b = 0), where L
    has no derivative to check (see the module's docstring); any other value moves it off.
    """
    rng = np.random.default_rng(seed)
    for name, value in net.parameters().items():
        if name == "b" or name.endswith(".b"):
            value[...] = rng.uniform(-spread, spread, value.shape)
