"""The network's equations, forward and backward, vectorised over a batch of N images.

Notation of the write-up: X input, f filters, Y convolved images, Z pooled images, W dense weights,
A class scores, P probabilities, L loss. ``dQ`` below means ∂L/∂Q.

Layout: convolved images are kept as Y[n, position, k] (one row per output position, one column per
filter) so that the convolution of a whole batch is a single matrix product of the image patches
("im2col") with the filters. Pooled images Z[n, k, p, q] use the write-up's index order, like W.
"""

from __future__ import annotations

import functools

import numpy as np


def patches(X: np.ndarray, k: int, stride: int, rows: int, cols: int) -> np.ndarray:
    """The k×k windows of X whose top-left corners are (stride·p, stride·q), p < rows, q < cols.

    X: (N, H, W). Returns Xcol: (N·rows·cols, k·k) with Xcol[(n, p, q), (a, b)] = X(n, stride·p + a,
    stride·q + b), and X = 0 below and right of the image (zero padding of k−1 at the bottom/right).
    """
    N, H, W = X.shape
    Xpad = np.zeros((N, H + k - 1, W + k - 1), dtype=X.dtype)
    Xpad[:, :H, :W] = X
    # One gather with precomputed flat indices: faster than copying a strided window view.
    return np.take(Xpad.reshape(N, -1), _window_indices(H, W, k, stride, rows, cols), axis=1).reshape(-1, k * k)


@functools.lru_cache(maxsize=32)
def _window_indices(H: int, W: int, k: int, stride: int, rows: int, cols: int) -> np.ndarray:
    """Flat indices into the padded (H+k−1)×(W+k−1) image of pixel (stride·p + a, stride·q + b)."""
    p, q, a = stride * np.arange(rows), stride * np.arange(cols), np.arange(k)
    row = p[:, None, None, None] + a[None, None, :, None]  # (rows, 1, k, 1)
    col = q[None, :, None, None] + a[None, None, None, :]  # (1, cols, 1, k)
    return (row * (W + k - 1) + col).reshape(-1)


def convolve(Xcol: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Y_k(i, j) = Σ_a Σ_b X(i+a, j+b) f_k(a, b), for every window of Xcol at once.

    Xcol: (M, k·k) windows, f: (K, k, k). Returns Y: (M, K).
    """
    return Xcol @ f.reshape(len(f), -1).T


def convolve_backward(dY: np.ndarray, Xcol: np.ndarray, f_shape: tuple[int, ...]) -> np.ndarray:
    """∂L/∂f_k(a, b) = Σ_{m,n} ∂L/∂Y_k(m, n) X(m+a, n+b).

    dY: (M, K), Xcol: (M, k·k). Returns df shaped like f (K, k, k).
    """
    return (dY.T @ Xcol).reshape(f_shape)


def pool(Y: np.ndarray, how: str, N: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Pool the convolved images 2×2 with stride 2.

    Y: (N·R·C, K) for the positions computed (R = rows for "decimate", which only computes the kept
    even positions; R = 2·rows otherwise). Returns Z: (N, K, rows, cols) and, for "max", the index
    0..3 of each window's winner (needed by the backward pass).
    """
    K = Y.shape[1]
    if how == "decimate":
        # Z_k(i/2, j/2) = Y_k(i, j) for even i, j: Y holds exactly those positions.
        return Y.reshape(N, rows, cols, K).transpose(0, 3, 1, 2), None
    windows = Y.reshape(N, rows, 2, cols, 2, K).transpose(0, 5, 1, 3, 2, 4).reshape(N, K, rows, cols, 4)
    if how == "avg":
        return windows.mean(axis=-1), None  # Z_k(p, q) = ¼ Σ_{u,v} Y_k(2p+u, 2q+v)
    winner = windows.argmax(axis=-1)  # first maximum on ties, as PyTorch does
    return np.take_along_axis(windows, winner[..., None], axis=-1)[..., 0], winner  # Z = max_{u,v} Y


def max_pool(Y: np.ndarray, N: int, rows: int, cols: int) -> np.ndarray:
    """Z = max_{u,v} Y(2p+u, 2q+v) alone, for inference: ``pool``'s Z for "max" without its winners.

    Y: (N·2rows·2cols, K). Returns Z: (N, K, rows, cols). The maximum over the window's two axes where they
    lie, with no copy of Y into windows (~3 times as fast); a NaN wins, as in ``pool``.
    """
    return Y.reshape(N, rows, 2, cols, 2, Y.shape[1]).max(axis=(2, 4)).transpose(0, 3, 1, 2)


def pool_backward(dZ: np.ndarray, how: str, winner: np.ndarray | None) -> np.ndarray:
    """∂L/∂Y from ∂L/∂Z: each Y position receives the share of ∂L/∂Z it contributed to Z.

    dZ: (N, K, rows, cols). Returns dY in the layout of ``pool``'s Y: (N·R·C, K).
    Decimate: ∂L/∂Y = ∂L/∂Z at even (i, j) and 0 at the dropped pixels, which are never computed.
    """
    N, K, rows, cols = dZ.shape
    if how == "decimate":
        return dZ.transpose(0, 2, 3, 1).reshape(-1, K)
    if how == "avg":
        dwindows = np.repeat(dZ[..., None] / 4, 4, axis=-1)  # ∂Z/∂Y = ¼ for each of the 4 pixels
    else:
        dwindows = (np.arange(4) == winner[..., None]) * dZ[..., None]  # only the winner passes ∂L/∂Z
    dY = dwindows.reshape(N, K, rows, cols, 2, 2).transpose(0, 2, 4, 3, 5, 1)
    return dY.reshape(-1, K)


def activate(Y: np.ndarray, how: str) -> np.ndarray:
    """The activation after the convolution: identity, or ReLU max(Y, 0)."""
    return np.maximum(Y, 0) if how == "relu" else Y


def activate_backward(dY: np.ndarray, Y: np.ndarray, how: str) -> np.ndarray:
    """∂L/∂Y_pre = ∂L/∂Y · [Y_pre > 0] for ReLU, unchanged for the identity."""
    return dY * (Y > 0) if how == "relu" else dY


def log_softmax(A: np.ndarray) -> np.ndarray:
    """ln P_j = a_j − ln Σ_k e^{a_k}, shifted by max_k a_k so no exponential overflows. A: (N, C)."""
    shifted = A - A.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def cross_entropy_backward(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """∂L/∂A = (P − onehot(y)) / N for L the mean over the batch of −ln P_y. P: (N, C), y: (N,)."""
    dA = P.copy()
    dA[np.arange(len(y)), y] -= 1
    return dA / len(y)
