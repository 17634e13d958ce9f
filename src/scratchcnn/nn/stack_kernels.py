"""The compiled kernels of nn/stack_engine.py: the table, helpers, and each layer type's forward and
backward for one record (convolutions: nn/stack_conv.py; the loops over records: nn/stack_loop.py).

Plain Python functions, compiled with numba.njit on first use (stack_engine._compile). They call each
other by their global names, which the compiler rebinds to the compiled versions, as nn/engine.py does.

Memory. A stack is a table ``desc`` (one row per layer, the columns below) and a few flat arrays:
theta (every parameter, one after the other), grad (the same layout), acts/dacts (every layer's output
and its gradient for one record: the image at 0, then each output at its row's OUT; a flatten's is
its input), xpad/dxpad (each convolution's zero-padded input and its gradient), yw/dyw (each
convolution's output in the "wide" layout), wins (each max pool's winners, 0–3 in its window) and, for
a fused conv (stack_conv.py), cols, acc, picks and values.

Wide layout. A convolution's padded input has rows of Wp = W' + k − 1 numbers and its output is
computed in rows of the same length, so that filter tap (c, a, b) reads the input at one fixed offset
c·S + a·Wp + b from every output position t = i·Wp + j: each tap is one contiguous loop over the whole
map, which the compiler vectorises. The k − 1 positions j ≥ W' of each row are computed and dropped;
their gradient dyw stays 0, so they add nothing to ∂L/∂f or ∂L/∂X.

Indices in inner loops are unsigned (uint64 offsets plus a uint64 loop variable): with signed ones
Numba checks each for a negative value and the loops stay scalar (a LeNet step took ~1.4 times as
long). Mixing the two would give float64 indices: offsets are made uint64 before the loops. ``zero``
and ``quarter`` are scalars in the net's dtype (a Python literal would turn float32 sums into float64).
"""

from __future__ import annotations

import numpy as np

# The layer types, and the columns of a row of ``desc`` (all int64).
CONV, RELU, POOL, FLATTEN, DENSE = 0, 1, 2, 3, 4
KIND, IN, OUT, CIN, HIN, WIN, COUT, HOUT, WOUT, KSIZE, BEFORE, OPT, P1, P2, PAD, WIDE, TAPS, BACK, FUSED = range(19)
COLUMNS = 19
# CIN, HIN, WIN: input channels and size (dense: CIN inputs); COUT, HOUT, WOUT: the output's (dense: COUT outputs).
# OPT: conv/dense 1 with bias; pool 0 decimate, 1 max, 2 avg. P1, P2: offsets of f or W, and of b (−1: none).
# PAD: conv offset in xpad; pool offset in wins. WIDE: conv offset in yw. TAPS: conv offset in tapoff.
# BACK: 0 no backward (nothing before it is trained), 1 parameter gradients only (the first trained
# layer: its ∂L/∂X is not needed), 2 all. FUSED: 1 on a conv followed by ReLU and max pooling, whose
# forward and backward it does itself (stack_conv.py); 2 on those two layers, which then do nothing.


def _dot(a, a0, b, b0, n, zero):
    """Σ_t a[a0 + t] b[b0 + t] for t < n (compiled with reassociation, so that it vectorises)."""
    total = zero
    for t in range(np.uint64(n)):
        total += a[a0 + t] * b[b0 + t]
    return total


def _sum(a, a0, n, zero):
    """Σ_t a[a0 + t] for t < n (compiled with reassociation)."""
    total = zero
    for t in range(np.uint64(n)):
        total += a[a0 + t]
    return total


def _dot8(a, a0, a1, b, b0, b1, b2, b3, n, zero):
    """Σ_t a[ai + t] b[bj + t] for two offsets ai and four bj: eight dot products sharing their loads.

    (Compiled with reassociation; two rows of a at once make it ~1.8 times as fast as one.)
    """
    s0, s1, s2, s3, r0, r1, r2, r3 = zero, zero, zero, zero, zero, zero, zero, zero
    for t in range(np.uint64(n)):
        u, v = a[a0 + t], a[a1 + t]
        x0, x1, x2, x3 = b[b0 + t], b[b1 + t], b[b2 + t], b[b3 + t]
        s0, s1, s2, s3 = s0 + u * x0, s1 + u * x1, s2 + u * x2, s3 + u * x3
        r0, r1, r2, r3 = r0 + v * x0, r1 + v * x1, r2 + v * x2, r3 + v * x3
    return s0, s1, s2, s3, r0, r1, r2, r3


def _rows(src, s0, s_step, dst, d0, d_step, rows, cols, add):
    """dst[d0 + r·d_step + c] = src[s0 + r·s_step + c] + add: a block of rows from one layout into another."""
    for r in range(rows):
        s, d = np.uint64(s0 + r * s_step), np.uint64(d0 + r * d_step)
        for c in range(np.uint64(cols)):
            dst[d + c] = src[s + c] + add


def _apply(theta, grad, at, g, lr, descend):
    """θ ← θ − η ∂L/∂θ for one parameter at once (a batch of one), else its gradient added to grad."""
    if descend:
        theta[at] -= lr * g  # θ ← θ − η ∂L/∂θ
    else:
        grad[at] += g


def _fill_image(pixels, floats, i, acts, divisor):
    """acts[0 : H·W] = record i: pixels_i / 255 (uint8 scaled to [0, 1], as Stack.scale) if pixels holds the
    images, else floats_i (already in the net's dtype; the other array is empty)."""
    n = np.uint64(floats.shape[1] * floats.shape[2])
    if len(pixels):
        image = pixels[i].reshape(n)
        for t in range(n):
            acts[t] = image[t] / divisor
    else:
        image = floats[i].reshape(n)
        for t in range(n):
            acts[t] = image[t]


def _relu_forward(desc, layer, acts, zero):
    """Y = max(X, 0) (NaN stays NaN, as np.maximum).

    Out of place: in place, LLVM turns the select into a masked store, ~4 times as slow on this CPU.
    """
    d = desc[layer]
    x0, y0 = np.uint64(d[IN]), np.uint64(d[OUT])
    for t in range(np.uint64(d[CIN] * d[HIN] * d[WIN])):
        x = acts[x0 + t]
        acts[y0 + t] = zero if x < zero else x


def _relu_backward(desc, layer, acts, dacts, zero):
    """∂L/∂X = ∂L/∂Y · [X > 0]."""
    d = desc[layer]
    x0, y0 = np.uint64(d[IN]), np.uint64(d[OUT])
    for t in range(np.uint64(d[CIN] * d[HIN] * d[WIN])):
        dacts[x0 + t] = dacts[y0 + t] if acts[x0 + t] > zero else zero


def _pool_forward(desc, layer, acts, wins, quarter):
    """Z_c(p, q) from the 2×2 window of Y_c at (2p, 2q): its (0, 0) pixel, its maximum or its mean.

    Max: the first maximum in the order (0,0), (0,1), (1,0), (1,1) wins, a NaN before any number (_max4).
    """
    d = desc[layer]
    Cc, Hin, Win, Ho, Wo, how = d[CIN], d[HIN], d[WIN], d[HOUT], d[WOUT], d[OPT]
    for c in range(Cc):
        for p in range(Ho):
            r0 = np.uint64(d[IN] + (c * Hin + 2 * p) * Win)  # rows 2p and 2p + 1 of Y_c
            r1, z, w = r0 + np.uint64(Win), np.uint64(d[OUT] + (c * Ho + p) * Wo), np.uint64(d[PAD] + (c * Ho + p) * Wo)
            for q in range(np.uint64(Wo)):
                a0, a1, a2, a3 = acts[r0 + 2 * q], acts[r0 + 2 * q + 1], acts[r1 + 2 * q], acts[r1 + 2 * q + 1]
                if how == 0:
                    acts[z + q] = a0  # Z(p, q) = Y(2p, 2q)
                elif how == 2:
                    acts[z + q] = (((a0 + a1) + a2) + a3) * quarter  # Z(p, q) = ¼ Σ_{u,v} Y(2p+u, 2q+v)
                else:  # Z(p, q) = max_{u,v} Y(2p+u, 2q+v)
                    m, i = _max4(a0, a1, a2, a3)
                    acts[z + q], wins[w + q] = m, i


def _max4(a0, a1, a2, a3):
    """(the maximum, its index) of a 2×2 window a0 a1 / a2 a3: the first maximum in that order wins, a
    NaN before any number, as np.argmax. Selects, not branches: random winners would mispredict."""
    right, lower = a1 > a0, a3 > a2
    top, bottom = a1 if right else a0, a3 if lower else a2
    up = bottom > top
    m, i = bottom if up else top, (2 + np.int32(lower)) if up else np.int32(right)
    n0, n1, n2 = a0 != a0, a1 != a1, a2 != a2
    nan = n0 | n1 | n2 | (a3 != a3)  # the first NaN wins
    i = (0 if n0 else 1 if n1 else 2 if n2 else 3) if nan else i
    return (((a0 + a1) + a2) + a3 if nan else m), i


def _pool_backward(desc, layer, dacts, wins, quarter, zero):
    """Each Y pixel receives the share of ∂L/∂Z it contributed; dropped pixels receive 0."""
    d = desc[layer]
    Cc, Hin, Win, Ho, Wo, how = d[CIN], d[HIN], d[WIN], d[HOUT], d[WOUT], d[OPT]
    x0 = np.uint64(d[IN])
    for t in range(np.uint64(Cc * Hin * Win)):
        dacts[x0 + t] = zero
    for c in range(Cc):
        for p in range(Ho):
            r0 = np.uint64(d[IN] + (c * Hin + 2 * p) * Win)
            r1, z, w = r0 + np.uint64(Win), np.uint64(d[OUT] + (c * Ho + p) * Wo), np.uint64(d[PAD] + (c * Ho + p) * Wo)
            for q in range(np.uint64(Wo)):
                dz = dacts[z + q]
                if how == 0:
                    dacts[r0 + 2 * q] = dz  # ∂Z(p, q)/∂Y(2p, 2q) = 1
                elif how == 2:  # ∂Z/∂Y = ¼ for each pixel of the window
                    dacts[r0 + 2 * q], dacts[r0 + 2 * q + 1] = dz * quarter, dz * quarter
                    dacts[r1 + 2 * q], dacts[r1 + 2 * q + 1] = dz * quarter, dz * quarter
                else:  # only the maximum passes ∂L/∂Z
                    i = wins[w + q]
                    dacts[(r0 if i < 2 else r1) + 2 * q + np.uint64(i % 2)] = dz


def _dense_forward(desc, layer, theta, acts, zero):
    """A = W X (+ b): W (out, in) at P1, X at IN, A at OUT."""
    d = desc[layer]
    n_in, x0 = d[CIN], np.uint64(d[IN])
    for o in range(d[COUT]):
        a = _dot(theta, np.uint64(d[P1] + o * n_in), acts, x0, n_in, zero)  # a_o = Σ_j W_oj x_j
        acts[d[OUT] + o] = a + theta[d[P2] + o] if d[OPT] else a


def _dense_backward(desc, layer, theta, grad, acts, dacts, lr, descend, zero):
    """∂L/∂W = ∂L/∂A ⊗ X, ∂L/∂b = ∂L/∂A (added to grad, or θ ← θ − η ∂L/∂θ at once), ∂L/∂X = Wᵀ ∂L/∂A.

    One pass over each row of W does both; ∂L/∂X reads the row before it moves, so descending at once
    gives the same numbers.
    """
    d = desc[layer]
    n_in, x0 = np.uint64(d[CIN]), np.uint64(d[IN])
    full = d[BACK] == 2
    if full:
        for t in range(n_in):
            dacts[x0 + t] = zero
    for o in range(d[COUT]):
        da, w0 = dacts[d[OUT] + o], np.uint64(d[P1] + o * d[CIN])
        if full and descend:
            for t in range(n_in):
                dacts[x0 + t] += da * theta[w0 + t]  # ∂L/∂X = Σ_o W_o ∂L/∂a_o
                theta[w0 + t] -= lr * (da * acts[x0 + t])  # W ← W − η ∂L/∂A ⊗ X
        elif full:
            for t in range(n_in):
                dacts[x0 + t] += da * theta[w0 + t]
                grad[w0 + t] += da * acts[x0 + t]  # ∂L/∂W_oj = ∂L/∂a_o x_j
        elif descend:
            for t in range(n_in):
                theta[w0 + t] -= lr * (da * acts[x0 + t])
        else:
            for t in range(n_in):
                grad[w0 + t] += da * acts[x0 + t]
        if d[OPT]:
            _apply(theta, grad, d[P2] + o, da, lr, descend)  # ∂L/∂b = ∂L/∂A


def _softmax_backward(A, dA, start, C, label, N, one, zero):
    """L = −ln P_y for the scores A[start : start + C], and ∂L/∂A = (P − onehot(y)) / N into dA.

    Stably: ln P_c = (a_c − m) − ln Σ_j e^{a_j − m}, m = max_j a_j.
    """
    m = A[start]
    for c in range(1, C):
        m = max(m, A[start + c])
    total = zero
    for c in range(C):
        total += np.exp(A[start + c] - m)
    log_total, loss = np.log(total), zero
    for c in range(C):
        log_P = (A[start + c] - m) - log_total
        if c == label:
            loss = -log_P  # L = −ln P_y
            dA[start + c] = (np.exp(log_P) - one) / N
        else:
            dA[start + c] = np.exp(log_P) / N
    return loss
