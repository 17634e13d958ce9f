"""The compiled Stack engine against the NumPy loop it replaces: same steps, same losses, same parameters.

The reference is the loop of the engine's contract: for each consecutive batch of ``order``,
``net.loss_and_gradients_prepared(net.scale(X[batch]), y[batch])``, stop at a non-finite loss, else
θ ← θ − η ∂L/∂θ (or an optimiser's step). Parameters must agree to rtol 1e-10 in float64, relative to the
largest entry of each array (an entry near 0 is not held to a tighter standard than its neighbours),
and to 1e-4 in float32. The kernels are compiled once per dtype for the whole module (Numba's cache
makes later runs quick).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from scratchcnn.errors import ConfigError
from scratchcnn.nn import stack_engine
from scratchcnn.nn.spec import build
from scratchcnn.nn.stack import Stack
from scratchcnn.train.optimisers import Adam, Momentum

RECORDS = 20
SMALL = (12, 12)

# Every layer type and option, on small images: all paddings (even and odd k), all pools (odd sizes
# dropping a row or column), conv and dense with and without bias, ReLU on images and on vectors,
# hidden dense layers, layers before the first trained one, a filter as large as its input.
SPECS = {
    "same-max-valid-avg": "conv:3x3:same,relu,pool:max,conv:4x2:valid-b,relu,pool:avg,flatten,dense:7,relu,dense",
    "bottom-right-decimate": "conv:2x4,pool:decimate,conv:3x3:same,pool:max,flatten,dense:5-b,relu,dense-b",
    "1x1-relu-on-vectors": "conv:5x1-b,relu,pool:avg,flatten,relu,dense:6,relu,dense",
    "untrained-first-layers": "relu,pool:max,conv:3x4:same,relu,flatten,dense",
    "dense-only": "flatten,dense:9-b,relu,dense:4,dense",
    "whole-image-filter": "conv:3x6:valid,relu,pool:max,conv:2x3:valid,flatten,dense",
    # conv, ReLU, max pool: computed fused (stack_conv.py); odd K (a pair of filters and one), even k,
    # with and without bias, a second fused conv that needs ∂L/∂X, maps that drop a row or a column.
    "fused-odd": "conv:3x3:same,relu,pool:max,conv:5x2:same,relu,pool:max,flatten,dense",
    "fused-valid-no-bias": "conv:4x3:valid-b,relu,pool:max,flatten,dense:5,relu,dense",
}
SHAPES = {"bottom-right-decimate": (13, 11), "fused-odd": (13, 11)}  # odd: the pools drop a row or a column


def random_spec(rng: np.random.Generator, size: int) -> str:
    """A valid stack for size×size images: 1–2 (conv, maybe ReLU, maybe pool), flatten, maybe a hidden dense."""
    layers = []
    for _ in range(rng.integers(1, 3)):
        k, padding = int(rng.integers(1, 5)), str(rng.choice(["bottom-right", "same", "valid"]))
        if padding == "valid" and size - k + 1 < 2:
            padding = "same"
        layers.append(f"conv:{rng.integers(1, 5)}x{k}:{padding}{rng.choice(['', '-b'])}")
        size = size - k + 1 if padding == "valid" else size
        if rng.random() < 0.6:
            layers.append("relu")
        if size >= 4 and rng.random() < 0.7:
            layers.append(f"pool:{rng.choice(['decimate', 'max', 'avg'])}")
            size //= 2
    layers.append("flatten")
    if rng.random() < 0.5:
        layers += [f"dense:{rng.integers(2, 9)}{rng.choice(['', '-b'])}", "relu"]
    return ",".join([*layers, f"dense{rng.choice(['', '-b'])}"])


for seed in (0, 1, 2, 4):  # seed 3 draws a dead network (a 1×1 filter < 0, no bias, then ReLU): nothing to compare
    SPECS[f"random-{seed}"] = random_spec(np.random.default_rng(seed), 12)


def reference_epoch(net: Stack, X: np.ndarray, y: np.ndarray, order: np.ndarray, learning_rate: float,
                    batch_size: int, update: Callable | None = None) -> tuple[int, float]:
    """The NumPy loop of the engine's contract."""
    params = net.parameters()
    steps, L = 0, math.nan
    with np.errstate(all="ignore"):
        for first in range(0, len(order), batch_size):
            batch = order[first : first + batch_size]
            L, grads = net.loss_and_gradients_prepared(net.scale(X[batch]), y[batch])
            if not math.isfinite(L):
                break
            if update is None:
                for name, p in params.items():
                    p -= learning_rate * grads[name]  # θ ← θ − η ∂L/∂θ
            else:
                update(grads)
            steps += 1
    return steps, L


def data(shape: tuple[int, int], pixels: str, n: int = RECORDS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images with about half the pixels 0 (as MNIST): uint8, or floats in [0, 1]; labels 0..9."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, *shape)) * (rng.random((n, *shape)) > 0.5)
    labels = rng.integers(0, 10, n).astype(np.uint8)  # as MNIST stores them
    return (np.round(X * 255).astype(np.uint8) if pixels == "uint8" else X.astype(pixels)), labels


def assert_same_parameters(net: Stack, ref: Stack, rtol: float) -> None:
    for name, p in ref.parameters().items():
        scale = float(np.abs(p).max())
        np.testing.assert_allclose(net.parameters()[name], p, rtol=rtol, atol=rtol * scale, err_msg=name)


def compare(spec: str, shape: tuple[int, int], pixels: str, batch_size: int, learning_rate: float = 0.1,
            dtype: str = "float64", rtol: float = 1e-10, n: int = RECORDS) -> None:
    """Both ways from the same start; also checks the update is in place and did move every parameter."""
    X, y = data(shape, pixels, n)
    order = np.random.default_rng(1).permutation(n)
    net, ref = (build(spec, input_shape=shape, seed=2, dtype=dtype) for _ in range(2))
    start = {name: p.copy() for name, p in net.parameters().items()}
    arrays = {name: p for name, p in net.parameters().items()}
    steps, loss = stack_engine.epoch(net, X, y, order, learning_rate, batch_size)
    ref_steps, ref_loss = reference_epoch(ref, X, y, order, learning_rate, batch_size)
    assert steps == ref_steps == math.ceil(n / batch_size)
    assert loss == pytest.approx(ref_loss, rel=rtol)
    assert_same_parameters(net, ref, rtol)
    for name, p in net.parameters().items():
        assert p is arrays[name], f"{name} was replaced, not updated in place"
        assert not np.array_equal(p, start[name]), f"{name} did not move: the comparison would prove little"


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("preset", ["seed", "wide", "lenet"])
def test_presets(preset: str, batch_size: int) -> None:
    compare(preset, (28, 28), "uint8", batch_size, learning_rate=0.05, n=6)


@pytest.mark.parametrize("pixels", ["uint8", "float64"])
@pytest.mark.parametrize("batch_size", [1, 7])  # 7 does not divide 20: the last batch holds 6 records
@pytest.mark.parametrize("name", list(SPECS))
def test_every_layer_and_option(name: str, batch_size: int, pixels: str) -> None:
    compare(SPECS[name], SHAPES.get(name, SMALL), pixels, batch_size)


@pytest.mark.parametrize("parts", [2, 3])
def test_batches_shared_among_threads(monkeypatch: pytest.MonkeyPatch, parts: int) -> None:
    """Large batches are split among threads, each part with its own buffers: the same steps as the loop."""
    monkeypatch.setattr(stack_engine, "PART_WORK", 1)  # split every batch of at least `parts` records
    monkeypatch.setattr(stack_engine, "usable_cpus", lambda: parts)
    pool, handed = stack_engine._pool(), []

    class Counting:
        def submit(self, share: Callable, part: int) -> object:
            handed.append(part)
            return pool.submit(share, part)

    monkeypatch.setattr(stack_engine, "_pool", Counting)
    compare("lenet", (28, 28), "uint8", 7, n=15)  # batches of 7, 7 and 1 record(s)
    assert handed == list(range(1, parts)) * 2
    compare(SPECS["same-max-valid-avg"], SMALL, "float64", 7)


@pytest.mark.parametrize(("spec", "fused"), [("wide", [1, 2, 2, 0, 0]), ("lenet", [1, 2, 2, 1, 2, 2, 0, 0, 0, 0, 0, 0]),
                                             (SPECS["bottom-right-decimate"], [0] * 8)])
def test_conv_relu_max_is_fused(spec: str, fused: list[int]) -> None:
    """The compiled engine computes conv → ReLU → max pool as one (the cases above check its numbers)."""
    desc = stack_engine._layout(build(spec, input_shape=(28, 28))).desc
    assert desc[:, stack_engine.kern.FUSED].tolist() == fused


def test_float32() -> None:
    """float32 is computed in float32: after 20 steps it agrees with NumPy to rounding."""
    compare("lenet", (28, 28), "uint8", 1, learning_rate=0.05, dtype="float32", rtol=1e-4, n=6)
    compare(SPECS["same-max-valid-avg"], SMALL, "float32", 3, dtype="float32", rtol=1e-4)


@pytest.mark.parametrize("make", [Momentum, lambda: Momentum(nesterov=True, weight_decay=1e-3), Adam],
                         ids=["momentum", "nesterov", "adam"])
@pytest.mark.parametrize("batch_size", [1, 6])
def test_optimiser_updates(make: Callable, batch_size: int) -> None:
    """With an update callable the engine computes the gradients and the optimiser steps, as in the loop."""
    X, y = data(SMALL, "uint8")
    order = np.random.default_rng(3).permutation(RECORDS)
    spec = SPECS["same-max-valid-avg"]
    net, ref = (build(spec, input_shape=SMALL, seed=4, dtype="float64") for _ in range(2))
    ours, theirs = make(), make()
    seen = []

    def update(grads: dict[str, np.ndarray]) -> None:
        seen.append({name: g.shape for name, g in grads.items()})
        ours.step(net.parameters(), grads, 0.05)

    steps, loss = stack_engine.epoch(net, X, y, order, 0.05, batch_size, update=update)
    ref_steps, ref_loss = reference_epoch(ref, X, y, order, 0.05, batch_size,
                                          update=lambda grads: theirs.step(ref.parameters(), grads, 0.05))
    assert steps == ref_steps == len(seen) == math.ceil(RECORDS / batch_size)
    assert seen[0] == {name: p.shape for name, p in net.parameters().items()}
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    assert_same_parameters(net, ref, 1e-10)


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("learning_rate", [1e200, math.nan])
def test_stops_at_a_non_finite_loss(learning_rate: float, batch_size: int) -> None:
    """A huge (or NaN) learning rate: after a step or more the loss is not finite; the engine stops at that
    batch without its update, as the loop does, and returns the steps made and that loss."""
    spec = SPECS["same-max-valid-avg"]
    X, y = data(SMALL, "float64")
    order = np.random.default_rng(5).permutation(RECORDS)
    net, ref = (build(spec, input_shape=SMALL, seed=6, dtype="float64") for _ in range(2))
    steps, loss = stack_engine.epoch(net, X, y, order, learning_rate, batch_size)
    ref_steps, ref_loss = reference_epoch(ref, X, y, order, learning_rate, batch_size)
    assert 1 <= steps == ref_steps < math.ceil(RECORDS / batch_size)
    assert not math.isfinite(loss) and not math.isfinite(ref_loss)
    for name, p in ref.parameters().items():  # the parameters after the last good step (maybe inf or NaN)
        np.testing.assert_allclose(net.parameters()[name], p, rtol=1e-10, err_msg=name)


def test_empty_order() -> None:
    net = build("seed", dtype="float64")
    before = {name: p.copy() for name, p in net.parameters().items()}
    steps, loss = stack_engine.epoch(net, *data((28, 28), "uint8", 3), np.array([], np.int64), 0.1, 2)
    assert steps == 0 and math.isnan(loss)
    assert all(np.array_equal(p, before[name]) for name, p in net.parameters().items())


@pytest.mark.parametrize("change, message", [
    (dict(order=np.array([0, RECORDS])), "indices outside"),
    (dict(order=np.array([-1, 0])), "indices outside"),
    (dict(order=np.array([[0, 1]])), "one-dimensional"),
    (dict(order=np.array([0.0, 1.0])), "record indices"),
    (dict(y=np.full(RECORDS, 10)), "labels must lie in 0..9"),
    (dict(y=np.full(RECORDS, -1)), "labels must lie"),
    (dict(y=np.zeros(RECORDS - 1, np.int64)), "labels"),
    (dict(X=np.zeros((RECORDS, 12, 13), np.uint8)), "shape"),
    (dict(batch_size=0), "batch_size"),
])
def test_bad_input(change: dict, message: str) -> None:
    X, y = data(SMALL, "uint8")
    args = dict(X=X, y=y, order=np.arange(RECORDS), batch_size=2) | change
    net = build("seed", input_shape=SMALL, dtype="float64")
    with pytest.raises(ConfigError, match=message):
        stack_engine.epoch(net, args["X"], args["y"], args["order"], 0.1, args["batch_size"])


def test_available_and_warm_up() -> None:
    assert stack_engine.available()
    assert stack_engine.warm_up("float64") >= 0.0
