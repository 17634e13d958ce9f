"""ConvNet forward pass against a naive implementation written with loops, and small cases worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import ACTIVATIONS, KERNEL_SIZES, POOLS, images, small_net

from scratchcnn import ConvNet

# ---- forward pass against a naive implementation written with loops -------------------------------


def naive_forward(X, f, W, b, pool: str, activation: str) -> list[list[float]]:
    """The write-up's equations with explicit loops: zero padding k−1 at the bottom/right,
    Y_k(i, j) = Σ_a Σ_b X(i+a, j+b) f_k(a, b), activation, 2×2 pooling (H' = H // 2), A = W Z + b."""
    N, H, Wd = X.shape
    K, k, _ = f.shape
    Hp, Wp = H // 2, Wd // 2

    def x_at(n, i, j):
        return float(X[n, i, j]) if i < H and j < Wd else 0.0  # padding below and to the right

    A = []
    for n in range(N):
        Z = [[[0.0] * Wp for _ in range(Hp)] for _ in range(K)]
        for kk in range(K):
            Y = [[0.0] * Wd for _ in range(H)]
            for i in range(H):
                for j in range(Wd):
                    s = 0.0
                    for a in range(k):
                        for c in range(k):
                            s += x_at(n, i + a, j + c) * float(f[kk, a, c])
                    Y[i][j] = max(s, 0.0) if activation == "relu" else s
            for p in range(Hp):
                for q in range(Wp):
                    window = [Y[2 * p][2 * q], Y[2 * p][2 * q + 1], Y[2 * p + 1][2 * q], Y[2 * p + 1][2 * q + 1]]
                    if pool == "decimate":
                        Z[kk][p][q] = Y[2 * p][2 * q]
                    elif pool == "max":
                        Z[kk][p][q] = max(window)
                    else:
                        Z[kk][p][q] = sum(window) / 4
        row = []
        for cls in range(10):
            s = float(b[cls]) if b is not None else 0.0
            for kk in range(K):
                for p in range(Hp):
                    for q in range(Wp):
                        s += float(W[cls, kk, p, q]) * Z[kk][p][q]
            row.append(s)
        A.append(row)
    return A


def naive_softmax(row: list[float]) -> list[float]:
    m = max(row)
    e = [math.exp(a - m) for a in row]
    total = sum(e)
    return [v / total for v in e]


@pytest.mark.parametrize("shape", [(7, 9), (8, 8), (5, 6)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("k", KERNEL_SIZES, ids=lambda k: f"k{k}")
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("pool", POOLS)
def test_forward_matches_naive_loops(pool, activation, bias, k, shape):
    net = small_net(pool, activation, bias, k, shape, seed=2)
    rng = np.random.default_rng(11)
    X = images(rng, 2, shape)
    y = np.array([4, 7])

    A_ref = np.array(naive_forward(X, net.f, net.W, net.b if bias else None, pool, activation))
    P_ref = np.array([naive_softmax(row) for row in A_ref])
    L_ref = -np.mean([math.log(P_ref[n, y[n]]) for n in range(len(y))])

    A = net.forward(net.prepare(X))[0]
    assert A.shape == (2, 10)
    np.testing.assert_allclose(A, A_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net.predict_proba(X), P_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(net.predict(X), A_ref.argmax(axis=1))
    assert net.loss_and_gradients(X, y)[0] == pytest.approx(L_ref, rel=1e-12)


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        # Y(0,0) = a + 10b + 100c + 1000d, Y(0,1) = b + 100d, Y(1,0) = c + 10d, Y(1,1) = d
        ("decimate", 1 + 20 + 300 + 4000),
        ("max", 1 + 20 + 300 + 4000),
        ("avg", (4321 + (2 + 400) + (3 + 40) + 4) / 4),
    ],
)
def test_forward_by_hand_padding_is_bottom_right(pool, expected):
    """A 2×2 image [[1, 2], [3, 4]] and the 2×2 filter [[1, 10], [100, 1000]], worked by hand."""
    net = ConvNet(filters=1, kernel_size=2, pool=pool, input_shape=(2, 2), dtype="float64")
    net.f[...] = [[[1, 10], [100, 1000]]]
    net.W[...] = 0
    net.W[0, 0, 0, 0] = 1
    net.W[1, 0, 0, 0] = -2
    X = np.array([[[1, 2], [3, 4]]], dtype=np.float64) / 10
    A = net.forward(net.prepare(X))[0]
    assert A[0, 0] == pytest.approx(expected / 10, rel=1e-12)
    assert A[0, 1] == pytest.approx(-2 * expected / 10, rel=1e-12)
    np.testing.assert_array_equal(A[0, 2:], 0)


def test_forward_odd_size_drops_last_row_and_column():
    """For a 5×5 image the pooled map is 2×2: the last row and column of Y do not reach A."""
    for pool in POOLS:
        net = ConvNet(filters=1, kernel_size=1, pool=pool, input_shape=(5, 5), dtype="float64")
        net.f[...] = 1
        net.W[...] = 1
        X = np.zeros((1, 5, 5))
        X[0, 4, :] = 1
        X[0, :, 4] = 1
        np.testing.assert_array_equal(net.forward(net.prepare(X))[0], 0)
        X[0, 3, 3] = 1  # inside the last window that is kept
        assert net.forward(net.prepare(X))[0][0, 0] == (1 if pool == "max" else 0.25 if pool == "avg" else 0)
