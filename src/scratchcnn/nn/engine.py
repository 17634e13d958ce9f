"""The fast training engine: whole epochs of SGD compiled with Numba, one record at a time.

``sgd_epoch(net, X, y, order, learning_rate, batch_size)`` does exactly what a loop over
``net.loss_and_gradients_prepared`` followed by ``θ ← θ − η ∂L/∂θ`` does (see README, "The network"),
for every option the model supports, in one compiled call. At batch size 1 a NumPy step spends
~50 µs in the interpreter and in NumPy's per-call overhead for ~30 000 multiply-adds of real work;
compiled, a step of the default network takes ~2 µs. Per record the kernel

1. copies the image into four zero-padded "phase planes" (below),
2. convolves at the positions the pooling needs (only the even ones for decimation):
   Y_k(i, j) = Σ_a Σ_b X(i+a, j+b) f_k(a, b), then the ReLU if any,
3. pools, Z_k(i/2, j/2) = Y_k(i, j) (or the max or mean of the 2×2 window), and computes
   A = W Z (+ b), P = softmax(A) (stably) and L = −ln P_y,
4. goes back: ∂L/∂A = P − onehot(y) (divided by the batch size, L being the batch mean),
   ∂L/∂W = ∂L/∂A ⊗ Z, ∂L/∂Z = Wᵀ ∂L/∂A, ∂L/∂Y through the pooling (and ReLU), and
   ∂L/∂f_k(a, b) = Σ_{m,n} ∂L/∂Y_k(m, n) X(m+a, n+b),

accumulating the batch's gradients in buffers allocated once per call; after each batch it moves
every parameter by −η times its gradient, in place (at batch size 1, W and b move as soon as ∂L/∂Z
is known, which gives the same numbers without the buffer).

Phase planes. Pooling needs Y at the pixels (2p + u, 2q + v) of each window, u, v ∈ {0, 1} (only
u = v = 0 for decimation). With the padded image split into four planes, plane (u, v) holding
X(2r + u, 2c + v), the tap (a, b) of the filter for window pixel (u, v) reads one plane at a fixed
offset, contiguously. The rows of each plane and of the output grid are laid end to end with the
same row length Cw ≥ W' ("wide" layout), so each tap is a single contiguous loop over the whole
image, which the compiler vectorises. The few positions past the right edge (q ≥ W') are computed
but never used: Z is set to 0 there and the dense weights are used in the same layout with zero
columns there, so they get no gradient.

Rounding. Everything is computed in the net's dtype (float32 accumulates in float32). The code is
compiled without fastmath, except that the dot products of the dense layer and of the filter
gradient may be summed in any order (LLVM's "reassoc" flag alone, see ``_FASTMATH``): otherwise each
would run at one addition per ~4 cycles, and the whole step ~3.5 times as slowly. NaN and infinities keep
their IEEE meaning, so a non-finite loss is still caught. Results differ from NumPy's (whose BLAS also
sums in its own order) by rounding only: ~1e-16 relative per step in float64.

Numba is optional: without it (``NUMBA_AVAILABLE`` is False), ``sgd_epoch`` runs the same steps with
NumPy, so callers need no second code path. Numba is imported on first use, not with this module.
The compiled code is cached on disk (``cache=True``, in ``__pycache__`` or ``$NUMBA_CACHE_DIR``); if
no cache directory is writable, it is compiled in memory at each start instead.
"""

from __future__ import annotations

import importlib.util
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from scratchcnn.errors import ConfigError
from scratchcnn.nn.model import ConvNet
from scratchcnn.options import whole_number

# Whether the compiled engine is used. True when Numba is installed; it turns False on first use (and
# sgd_epoch falls back to NumPy) if Numba cannot be imported or NUMBA_DISABLE_JIT is set. warm_up()
# settles it. Numba itself is imported on first use only: it takes ~0.2 s.
NUMBA_AVAILABLE: bool = importlib.util.find_spec("numba") is not None

POOL_CODES = {"decimate": 0, "max": 1, "avg": 2}


# ---- the compiled kernel ----------------------------------------------------------------------
# Plain Python functions, compiled with numba.njit on first use (``_kernel``). They call each other
# by their global names, which ``_kernel`` rebinds to the compiled versions.
#
# Layout. K filters of k×k; H' = H // 2, W' = W // 2; P = 1 window pixel computed per pooling window
# for decimate, else 4. Every image-like array uses the "wide" grid of H' rows of Cw = W' + e ≥ W'
# positions (t = p·Cw + q), so that each tap of the convolution is one contiguous loop over the whole
# grid: Y, dY (K, P, T) with Y[k, 2u + v, t] = Y_k(2p + u, 2q + v); Z, dZ (K, T); and the dense weights
# are used in the same layout, Ww (C, K·T), a copy of W with zero columns at the positions q ≥ W'
# (copied back after the epoch). Z is set to 0 there, so those columns get zero gradient and stay 0.
# ``zero``, ``one``, ``quarter`` are scalars in the net's dtype (Python literals would be float64).
# Performance notes. Indices in inner loops are plain loop variables, or unsigned (the uint64 tap
# offsets and loop ranges), because Numba's check for negative indices would otherwise stop the loops
# from vectorising. Array views are not made inside loops (each costs atomic reference counting).


def _fill_planes(X, i, planes, rows, cols, divisor):
    """planes[2u + v, r, c] = X_i(2r + u, 2c + v) / divisor for r < rows, c < cols inside the image.

    divisor: 255 for uint8 pixels (→ [0, 1], as ConvNet.scale does), 1 for prepared floats. The rest
    of the planes stays 0: the zero padding below and right of the image.
    """
    H, W = X.shape[1], X.shape[2]
    n_even, n_odd = min(cols, (W + 1) // 2), min(cols, W // 2)  # columns c with 2c < W, with 2c + 1 < W
    for row in range(min(2 * rows, H)):
        u, r = row % 2, row // 2
        for c in range(n_odd):
            planes[2 * u, r, c] = X[i, row, 2 * c] / divisor
            planes[2 * u + 1, r, c] = X[i, row, 2 * c + 1] / divisor
        for c in range(n_odd, n_even):
            planes[2 * u, r, c] = X[i, row, 2 * c] / divisor


def _convolve(flat, plane_of, offset, f2, Y, relu, zero):
    """Y_k(i, j) = Σ_a Σ_b X(i+a, j+b) f_k(a, b) over the whole grid, then the ReLU.

    The taps (a, b) are added one after the other in row-major order, four per pass over the grid.
    """
    K, P, T = Y.shape
    taps = f2.shape[1]
    for kk in range(K):
        for ph in range(P):
            for t in range(T):
                Y[kk, ph, t] = zero
            for tap in range(0, taps - 3, 4):
                w0, w1, w2, w3 = f2[kk, tap], f2[kk, tap + 1], f2[kk, tap + 2], f2[kk, tap + 3]
                p0, p1, p2, p3 = plane_of[ph, tap], plane_of[ph, tap + 1], plane_of[ph, tap + 2], plane_of[ph, tap + 3]
                o0, o1, o2, o3 = offset[ph, tap], offset[ph, tap + 1], offset[ph, tap + 2], offset[ph, tap + 3]
                for t in range(np.uint64(T)):
                    Y[kk, ph, t] = ((((Y[kk, ph, t] + w0 * flat[p0, o0 + t]) + w1 * flat[p1, o1 + t])
                                     + w2 * flat[p2, o2 + t]) + w3 * flat[p3, o3 + t])
            for tap in range(taps - taps % 4, taps):
                w, pl, o = f2[kk, tap], plane_of[ph, tap], offset[ph, tap]
                for t in range(np.uint64(T)):
                    Y[kk, ph, t] += w * flat[pl, o + t]
            if relu:
                for t in range(T):
                    Y[kk, ph, t] = zero if Y[kk, ph, t] < zero else Y[kk, ph, t]  # max(Y, 0); backward mask Y > 0


def _pool(Y, valid, pool, Z, winner, quarter, zero):
    """Z_k(p, q) from the 2×2 window of Y_k at (2p, 2q): its (0,0) pixel, its maximum or its mean.

    Max: the first maximum in the order (0,0), (0,1), (1,0), (1,1) wins, and a NaN before any number,
    as np.argmax and PyTorch decide. Z = 0 off the image (valid[t] false).
    """
    K, T = Z.shape
    for kk in range(K):
        if pool == 0:
            for t in range(T):
                Z[kk, t] = Y[kk, 0, t] if valid[t] else zero  # Z_k(i/2, j/2) = Y_k(i, j), i and j even
        elif pool == 2:
            for t in range(T):
                mean = (((Y[kk, 0, t] + Y[kk, 1, t]) + Y[kk, 2, t]) + Y[kk, 3, t]) * quarter
                Z[kk, t] = mean if valid[t] else zero  # ¼ Σ_{u,v} Y_k(2p+u, 2q+v)
        else:
            for t in range(T):
                best, arg = Y[kk, 0, t], 0
                for ph in range(1, 4):
                    value = Y[kk, ph, t]
                    take = (value > best) | ((value != value) & (best == best))
                    best, arg = (value, ph) if take else (best, arg)
                Z[kk, t] = best if valid[t] else zero  # max_{u,v} Y_k(2p+u, 2q+v)
                winner[kk, t] = arg


def _scores(Ww, Z, A, zero):
    """A = W Z: one dot product per class (the one function compiled with reassociation, see _FASTMATH)."""
    for c in range(Ww.shape[0]):
        total = zero
        for j in range(Ww.shape[1]):
            total += Ww[c, j] * Z[j]
        A[c] = total


def _softmax_backward(A, b, bias, label, N, dA, one, zero):
    """With A = W Z (+ b): returns L = −ln P_y and sets ∂L/∂A = (P − onehot(y)) / N, for a batch of N.

    P is computed stably: ln P_c = (a_c − m) − ln Σ_j e^{a_j − m} with m = max_j a_j.
    """
    if bias:
        for c in range(len(A)):
            A[c] += b[c]
    a_max = A[0]
    for c in range(1, len(A)):
        a_max = max(a_max, A[c])
    total = zero
    for c in range(len(A)):
        total += np.exp(A[c] - a_max)
    log_total = np.log(total)
    loss = zero
    for c in range(len(A)):
        log_P = (A[c] - a_max) - log_total
        if c == label:
            loss = -log_P
            dA[c] = (np.exp(log_P) - one) / N
        else:
            dA[c] = np.exp(log_P) / N
    return loss


def _dense_backward(dA, Z, Ww, gW, gb, bias, dZ, zero):
    """∂L/∂W += ∂L/∂A ⊗ Z, ∂L/∂b += ∂L/∂A, and ∂L/∂Z = Wᵀ ∂L/∂A (W before this batch's update)."""
    for j in range(len(dZ)):
        dZ[j] = zero
    for c in range(len(dA)):
        d = dA[c]
        for j in range(len(Z)):
            gW[c, j] += d * Z[j]
        for j in range(len(Z)):
            dZ[j] += d * Ww[c, j]
    if bias:
        for c in range(len(dA)):
            gb[c] += dA[c]


def _dense_backward_descend(dA, Z, Ww, b, bias, dZ, lr, zero):
    """For a batch of one: ∂L/∂Z = Wᵀ ∂L/∂A with W as it was, and at once W ← W − η ∂L/∂A ⊗ Z, b ← b − η ∂L/∂A.

    The same numbers as _dense_backward followed by _descend, without the gradient buffer.
    """
    for j in range(len(dZ)):
        dZ[j] = zero
    for c in range(len(dA)):
        d = dA[c]
        for j in range(len(Z)):
            dZ[j] += d * Ww[c, j]
            Ww[c, j] -= lr * (d * Z[j])
    if bias:
        for c in range(len(dA)):
            b[c] -= lr * dA[c]


def _touch(Xflat, i, sink):
    """Read one number in each cache line of image i, so that its misses overlap with the work before it."""
    step = max(64 // Xflat.itemsize, 1)
    total = Xflat[i, 0]
    for j in range(step, Xflat.shape[1], step):
        total += Xflat[i, j]
    sink[0] = total


def _pool_backward(dZ, winner, Y, pool, relu, dY, quarter, zero):
    """∂L/∂Y from ∂L/∂Z: each Z goes back to the pixel(s) it came from; ReLU passes it where Y > 0.

    Decimate: ∂L/∂Y = ∂L/∂Z at even (i, j), the dropped pixels being never computed. Off the image
    ∂L/∂Z = 0 (W's columns there are 0), so ∂L/∂Y = 0 there too.
    """
    K, P, T = dY.shape
    for kk in range(K):
        if pool == 0:
            for t in range(T):
                dY[kk, 0, t] = dZ[kk, t]
        elif pool == 2:
            for ph in range(4):
                for t in range(T):
                    dY[kk, ph, t] = dZ[kk, t] * quarter  # ∂Z/∂Y = ¼ for each pixel of the window
        else:
            for ph in range(4):
                for t in range(T):
                    dY[kk, ph, t] = dZ[kk, t] if winner[kk, t] == ph else zero  # only the maximum passes ∂L/∂Z
        if relu:
            for ph in range(P):
                for t in range(T):
                    dY[kk, ph, t] = dY[kk, ph, t] if Y[kk, ph, t] > zero else zero


def _dot(dY, kk, ph, flat, plane, start, zero):
    """Σ_t dY[kk, ph, t] flat[plane, start + t] over the grid (compiled with reassociation, see _FASTMATH)."""
    total = zero
    for t in range(np.uint64(dY.shape[2])):
        total += dY[kk, ph, t] * flat[plane, start + t]
    return total


def _filter_gradient(dY, flat, plane_of, offset, gf, zero):
    """∂L/∂f_k(a, b) += Σ_{m,n} ∂L/∂Y_k(m, n) X(m+a, n+b): one dot product over the grid per tap."""
    K, P = dY.shape[0], dY.shape[1]
    for kk in range(K):
        for ph in range(P):
            for tap in range(gf.shape[1]):
                gf[kk, tap] += _dot(dY, kk, ph, flat, plane_of[ph, tap], offset[ph, tap], zero)


def _descend(p, g, lr, zero):
    """θ ← θ − η ∂L/∂θ for one parameter (flattened), and its gradient buffer back to 0."""
    for j in range(len(p)):
        p[j] -= lr * g[j]
        g[j] = zero


def _widen(W2, Ww, Wp, Cw, back):
    """Copy W (C, K·H'·W') into the wide layout Ww (C, K·H'·Cw), or back if ``back``."""
    rows = W2.shape[1] // Wp
    for c in range(W2.shape[0]):
        for row in range(rows):
            narrow = W2[c, row * Wp : (row + 1) * Wp]
            wide = Ww[c, row * Cw : row * Cw + Wp]
            for q in range(Wp):
                if back:
                    narrow[q] = wide[q]
                else:
                    wide[q] = narrow[q]


def _epoch(X, y, order, f2, W2, b, lr, batch_size, k, pool, relu, bias, divisor):
    """One epoch of SGD in place on f2 (K, k·k), W2 (C, K·H'·W') and b (C,). Returns (steps, last loss).

    pool: 0 decimate, 1 max, 2 avg; relu, bias: 0 or 1. Stops before the update of a batch whose loss
    is not finite; W2 then holds the parameters after the last good step, like f2 and b.
    """
    H, W = X.shape[1], X.shape[2]
    K = f2.shape[0]
    Hp, Wp = H // 2, W // 2
    P = 1 if pool == 0 else 4  # window pixels computed: (0,0) only for decimate, else all four
    e = (k - 1 + (P > 1)) // 2  # farthest plane offset of a tap: (u + a) // 2 for u < 2 (or 1), a < k
    Cw = Wp + e  # row length of the planes and of the grid
    T = Hp * Cw  # grid positions t = p·Cw + q (those with q ≥ W' are off the image: computed, unused)

    # Scratch, allocated once. The planes have one spare row of zeros that the last grid rows read into.
    planes = np.zeros((4, Hp + e + 1, Cw), f2.dtype)
    flat = planes.reshape(4, (Hp + e + 1) * Cw)
    Y, dY = np.zeros((K, P, T), f2.dtype), np.zeros((K, P, T), f2.dtype)
    Z, dZ, winner = np.zeros((K, T), f2.dtype), np.zeros((K, T), f2.dtype), np.zeros((K, T), np.int64)
    Z_flat, dZ_flat = Z.reshape(K * T), dZ.reshape(K * T)
    valid = np.zeros(T, np.bool_)
    for t in range(T):
        valid[t] = t % Cw < Wp
    C = W2.shape[0]  # classes
    Ww = np.zeros((C, K * T), f2.dtype)
    _widen(W2, Ww, Wp, Cw, False)
    A, dA = np.zeros(C, f2.dtype), np.zeros(C, f2.dtype)
    gf, gW, gb = np.zeros_like(f2), np.zeros_like(Ww), np.zeros(C, f2.dtype)
    const = np.zeros(4, f2.dtype)
    const[0], const[1] = 1, 0.25
    one, quarter, zero = const[0], const[1], const[2]
    # Tap (a, b) for window pixel (u, v) reads X(2p + u + a, 2q + v + b): plane ((u+a) mod 2, (v+b) mod 2)
    # at row p + (u+a) // 2, column q + (v+b) // 2, so over the grid from flat offset ((u+a)//2)·Cw + (v+b)//2 on.
    plane_of, offset = np.zeros((P, k * k), np.int64), np.zeros((P, k * k), np.uint64)
    for ph in range(P):
        u, v = ph // 2, ph % 2
        for a in range(k):
            for bb in range(k):
                plane_of[ph, a * k + bb] = ((u + a) % 2) * 2 + (v + bb) % 2
                offset[ph, a * k + bb] = ((u + a) // 2) * Cw + (v + bb) // 2

    Xflat, sink = X.reshape(X.shape[0], H * W), np.zeros(1, X.dtype)  # X: uint8 or the net's dtype
    steps = 0
    last_loss = np.nan
    for first in range(0, len(order), batch_size):
        stop = min(first + batch_size, len(order))
        const[3] = stop - first
        N = const[3]  # records in this batch, in the net's dtype
        loss_sum = zero
        for r in range(first, stop):
            i = order[r]
            if r + 1 < len(order):
                _touch(Xflat, order[r + 1], sink)
            _fill_planes(X, i, planes, Hp + e, Cw, divisor)
            _convolve(flat, plane_of, offset, f2, Y, relu, zero)
            _pool(Y, valid, pool, Z, winner, quarter, zero)
            _scores(Ww, Z_flat, A, zero)
            loss_sum += _softmax_backward(A, b, bias, y[i], N, dA, one, zero)
            if batch_size > 1:
                _dense_backward(dA, Z_flat, Ww, gW, gb, bias, dZ_flat, zero)
            elif np.isfinite(loss_sum):  # one record per step: update W and b right away
                _dense_backward_descend(dA, Z_flat, Ww, b, bias, dZ_flat, lr, zero)
            else:
                break
            _pool_backward(dZ, winner, Y, pool, relu, dY, quarter, zero)
            _filter_gradient(dY, flat, plane_of, offset, gf, zero)
        last_loss = loss_sum / N  # L, the mean of −ln P_y over the batch
        if not np.isfinite(last_loss):
            break  # this batch's update is not applied
        _descend(f2.reshape(-1), gf.reshape(-1), lr, zero)
        if batch_size > 1:
            _descend(Ww.reshape(-1), gW.reshape(-1), lr, zero)
            if bias:
                _descend(b, gb, lr, zero)
        steps += 1
    _widen(W2, Ww, Wp, Cw, True)
    return steps, float(last_loss)


_KERNELS = ("_fill_planes", "_convolve", "_pool", "_scores", "_softmax_backward", "_dense_backward",
            "_dense_backward_descend", "_touch", "_pool_backward", "_dot", "_filter_gradient", "_descend", "_widen",
            "_epoch")
# Only the sums of the dot products (dense layer: _scores; filter gradient: _dot) may be reordered, by
# LLVM's "reassoc" flag alone: NaN and infinities keep their IEEE meaning, so the non-finite-loss check
# still works; everything else is compiled strictly. Without it (an empty dict), a step of the default
# network takes ~3.5 times as long (measured 6.4 µs instead of 1.8 µs): see benchmarks/engine_speed.py.
_FASTMATH = {"_dot": {"reassoc"}, "_scores": {"reassoc"}}
_compiled: Callable[..., tuple[int, float]] | None = None
_lock = threading.Lock()


def _kernel() -> Callable[..., tuple[int, float]] | None:
    """The compiled ``_epoch`` (compiled lazily per dtype by Numba), or None without Numba."""
    global _compiled, NUMBA_AVAILABLE
    if _compiled is not None or not NUMBA_AVAILABLE:
        return _compiled
    with _lock:
        if _compiled is None:
            try:
                import numba
            except ImportError:  # installed but unusable (e.g. too old for this NumPy): use NumPy instead
                NUMBA_AVAILABLE = False
                return None
            if numba.config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1: the kernel would run as Python, very slowly
                NUMBA_AVAILABLE = False
                return None
            namespace = globals()
            for name in _KERNELS:
                function = namespace[name]
                fastmath = _FASTMATH.get(name, False)
                try:
                    jitted = numba.njit(cache=True, fastmath=fastmath, nogil=True)(function)
                except RuntimeError:  # no writable cache directory anywhere: compile in memory
                    jitted = numba.njit(cache=False, fastmath=fastmath, nogil=True)(function)
                namespace[name] = jitted
            _compiled = namespace["_epoch"]
    return _compiled


# ---- the public API ------------------------------------------------------------------------------


def numba_available() -> bool:
    """Whether the compiled engine can run here (imports Numba, on first call only)."""
    return _kernel() is not None


def sgd_epoch(net: ConvNet, X: np.ndarray, y: np.ndarray, order: np.ndarray, learning_rate: float,
              batch_size: int, compiled: bool = True) -> tuple[int, float]:
    """Run one epoch of SGD in place on net's parameters; returns (steps done, loss of the last batch).

    X: the training images (N, H, W), uint8 (scaled by 1/255 record by record, so a large training
    set stays 1 byte a pixel) or prepared floats in net.dtype; y: (N,) labels 0..C−1; order: the record
    indices of the epoch, taken in consecutive batches ``order[i : i + batch_size]``. Each batch moves
    every parameter θ by ``θ ← θ − η ∂L/∂θ``, L the mean cross-entropy over the batch, exactly as a
    loop over ``net.loss_and_gradients_prepared`` would. If a batch's loss is NaN or infinite, its
    update is not applied and the epoch stops there: the result is then (batches applied, that loss).
    An empty order returns (0, nan). Bad shapes or out-of-range indices or labels raise ConfigError.
    Runs compiled (see warm_up) when Numba is available and ``compiled`` is on, with NumPy otherwise.
    """
    dtype = np.dtype(net.dtype)
    X = np.ascontiguousarray(X, dtype=np.uint8 if X.dtype == np.uint8 else dtype)  # uint8 is scaled per record
    y = np.ascontiguousarray(y, dtype=np.int64)
    order = np.ascontiguousarray(order, dtype=np.int64)
    if X.ndim != 3 or X.shape[1:] != net.input_shape:
        raise ConfigError(f"expected images of shape (N, {net.input_shape[0]}, {net.input_shape[1]}), got {X.shape}")
    if y.shape != (len(X),):
        raise ConfigError(f"expected {len(X)} labels, got shape {y.shape}")
    if order.ndim != 1:
        raise ConfigError(f"order must be one-dimensional, got shape {order.shape}")
    whole_number("batch_size", batch_size, 1)
    if len(order) == 0:
        return 0, math.nan
    # The compiled code does not check indices: check them here, once (O(N), microseconds).
    if order.min() < 0 or order.max() >= len(X):
        raise ConfigError(f"order holds indices outside 0..{len(X) - 1}")
    if len(y) and (y.min() < 0 or y.max() >= net.classes):
        raise ConfigError(f"labels must lie in 0..{net.classes - 1}")

    kernel = _kernel() if compiled and isinstance(net, ConvNet) else None  # the kernel is the seed network's
    if kernel is None:
        return net.sgd_steps(X, y, order, learning_rate, int(batch_size))  # the same steps in NumPy
    params = net.parameters()
    work = {name: np.ascontiguousarray(p) for name, p in params.items()}  # the arrays themselves if contiguous
    b = work.get("b", np.zeros(net.classes, dtype))
    with np.errstate(over="ignore"):  # as in NumPy's p -= η·g, η is rounded to the dtype (maybe to inf)
        learning_rate = dtype.type(learning_rate)
    steps, loss = kernel(X, y, order, work["f"].reshape(net.filters, -1), work["W"].reshape(net.classes, -1), b,
                         learning_rate, int(batch_size), net.kernel_size, POOL_CODES[net.pool],
                         int(net.activation == "relu"), int(net.bias), dtype.type(255 if X.dtype == np.uint8 else 1))
    for name, p in params.items():
        if work[name] is not p:
            p[...] = work[name]
    return int(steps), float(loss)


def warm_up(dtype: Any) -> float:
    """Import Numba and compile the kernel for dtype (float32 or float64), or load it from Numba's cache.

    Returns the seconds it took (a few seconds to compile, ~0.2 s from the cache, ~0 once loaded), so
    that a caller can report it apart from the first epoch. Without Numba it does nothing and returns 0.0.
    """
    start = time.perf_counter()
    if _kernel() is None:
        return 0.0
    net = ConvNet(filters=1, kernel_size=2, pool="max", activation="relu", bias=True, input_shape=(4, 4),
                  seed=0, dtype=np.dtype(dtype).name)  # any configuration: the options are run-time arguments
    for pixels in (np.uint8, net.dtype):  # one specialisation for uint8 images, one for prepared floats
        sgd_epoch(net, np.zeros((2, 4, 4), pixels), np.zeros(2, np.int64), np.arange(2), 0.0, 1)
    return time.perf_counter() - start
