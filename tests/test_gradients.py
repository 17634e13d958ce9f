"""ConvNet gradients against central finite differences, for every combination of the options."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from helpers import ACTIVATIONS, KERNEL_SIZES, POOLS, images, small_net

from scratchcnn import ConvNet

TINY = 1e-300


# ---- helpers --------------------------------------------------------------------------------------


def rel_err(num: np.ndarray, ana: np.ndarray) -> float:
    scale = max(np.abs(num).max(), np.abs(ana).max(), TINY)
    return float(np.abs(num - ana).max() / scale)


def numeric_gradient(net: ConvNet, X: np.ndarray, y: np.ndarray, name: str, indices, h: float = 1e-6) -> np.ndarray:
    """Central differences of the loss with respect to net.<name>[index] for each index."""
    param = net.parameters()[name]
    out = np.empty(len(indices))
    for i, index in enumerate(indices):
        old = param[index]
        param[index] = old + h
        plus = net.loss_and_gradients(X, y)[0]
        param[index] = old - h
        minus = net.loss_and_gradients(X, y)[0]
        param[index] = old
        out[i] = (plus - minus) / (2 * h)
    return out


def all_indices(a: np.ndarray) -> list[tuple[int, ...]]:
    return list(np.ndindex(a.shape))


# ---- gradients against central finite differences -------------------------------------------------


def test_gradient_check_default_network():
    net = ConvNet(dtype="float64", seed=0)
    rng = np.random.default_rng(7)
    X = images(rng, 4, (28, 28), sparse=True)
    y = rng.integers(0, 10, 4)
    _, grads = net.loss_and_gradients(X, y)

    f_idx = all_indices(net.f)
    num_f = numeric_gradient(net, X, y, "f", f_idx)
    ana_f = np.array([grads["f"][i] for i in f_idx])
    assert np.abs(ana_f).max() > 0
    assert rel_err(num_f, ana_f) < 1e-6

    flat = rng.choice(net.W.size, 60, replace=False)
    W_idx = [np.unravel_index(i, net.W.shape) for i in flat]
    num_W = numeric_gradient(net, X, y, "W", W_idx)
    ana_W = np.array([grads["W"][i] for i in W_idx])
    assert np.abs(ana_W).max() > 0
    assert rel_err(num_W, ana_W) < 1e-6


@pytest.mark.parametrize("shape", [(7, 9), (8, 8)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("k", KERNEL_SIZES, ids=lambda k: f"k{k}")
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("pool", POOLS)
def test_gradient_check_every_combination(pool, activation, bias, k, shape):
    net = small_net(pool, activation, bias, k, shape)
    rng = np.random.default_rng(zlib.crc32(repr((pool, activation, bias, k, shape)).encode()))
    X = images(rng, 3, shape)
    y = np.array([0, 3, 9])

    if activation == "relu":  # ReLU must be neither dead everywhere nor the identity everywhere
        Y = net.forward(net.prepare(X))[1]["Y"]
        assert (Y > 0).any() and (Y < 0).any()

    loss, grads = net.loss_and_gradients(X, y)
    assert np.isfinite(loss)
    assert set(grads) == set(net.parameters())
    assert np.abs(grads["f"]).max() > 0, "gradient of f is all zero: the check would be vacuous"
    for name, param in net.parameters().items():
        idx = all_indices(param)
        num = numeric_gradient(net, X, y, name, idx)
        ana = np.array([grads[name][i] for i in idx])
        assert rel_err(num, ana) < 1e-6, name


def test_gradient_check_detects_a_wrong_gradient():
    """The checker itself can fail: a gradient off by a small amount is caught."""
    net = small_net("max", "relu", True, 3, (7, 9))
    rng = np.random.default_rng(3)
    X = images(rng, 3, (7, 9))
    y = np.array([1, 2, 3])
    _, grads = net.loss_and_gradients(X, y)
    idx = all_indices(net.f)
    num = numeric_gradient(net, X, y, "f", idx)
    ana = np.array([grads["f"][i] for i in idx])
    assert rel_err(num, ana) < 1e-6
    assert rel_err(num, ana * (1 + 1e-4)) > 1e-6
