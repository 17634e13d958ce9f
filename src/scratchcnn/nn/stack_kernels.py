"""The compiled kernels of nn/stack_engine.py: each layer type's forward and backward for one record.

Plain Python functions, compiled with numba.njit on first use (stack_engine._compile). They call each
other by their global names, which the compiler rebinds to the compiled versions, as nn/engine.py does.

Memory. A stack is a table ``desc`` (one row per layer, the columns below) and a few flat arrays:
theta (every parameter, one after the other), grad (the same layout), acts/dacts (every layer's output
and its gradient for one record: the image at 0, then each output at its row's OUT; a flatten's is
its input), xpad/dxpad (each convolution's zero-padded input and its gradient), yw/dyw (each
convolution's output in the "wide" layout) and wins (each max pool's winners).

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
KIND, IN, OUT, CIN, HIN, WIN, COUT, HOUT, WOUT, KSIZE, BEFORE, OPT, P1, P2, PAD, WIDE, TAPS, BACK = range(18)
COLUMNS = 18
# CIN, HIN, WIN: input channels and size (dense: CIN inputs); COUT, HOUT, WOUT: the output's (dense: COUT outputs).
# OPT: conv/dense 1 with bias; pool 0 decimate, 1 max, 2 avg. P1, P2: offsets of f or W, and of b (−1: none).
# PAD: conv offset in xpad; pool offset in wins. WIDE: conv offset in yw. TAPS: conv offset in tapoff.
# BACK: 0 no backward (nothing before it is trained), 1 parameter gradients only (the first trained
# layer: its ∂L/∂X is not needed), 2 all.


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


def _conv_shape(d):
    """(Wp, S, T, taps) of the conv layer of row d: its padded row length, its padded planes' size (with a
    spare row), the size of its wide output map, the taps of a filter (C_in·k·k)."""
    Wp = d[WOUT] + d[KSIZE] - 1
    return Wp, (d[HOUT] + d[KSIZE]) * Wp, d[HOUT] * Wp, d[CIN] * d[KSIZE] * d[KSIZE]


def _conv_forward(desc, layer, theta, acts, xpad, yw, tapoff, zero):
    """Y_k(i, j) = Σ_c Σ_a Σ_b X_c(i+a, j+b) f_kc(a, b) (+ b_k), X zero-padded; Y: (K, H', W') at OUT."""
    d = desc[layer]
    Cin, Hin, Win, K, Ho, Wo, before = d[CIN], d[HIN], d[WIN], d[COUT], d[HOUT], d[WOUT], d[BEFORE]
    Wp, S, T, taps = _conv_shape(d)
    for c in range(Cin):  # the input into the padded planes (their margins stay 0)
        _rows(acts, d[IN] + c * Hin * Win, Win, xpad, d[PAD] + c * S + before * Wp + before, Wp, Hin, Win, zero)
    for kk in range(K):
        y0, fk, tk = np.uint64(d[WIDE] + kk * T), d[P1] + kk * taps, d[TAPS]
        for j in range(0, taps - 3, 4):  # four taps a pass over the map; tap (c, a, b) reads xpad from c·S + a·Wp + b
            w0, w1, w2, w3 = theta[fk + j], theta[fk + j + 1], theta[fk + j + 2], theta[fk + j + 3]
            o0, o1, o2, o3 = tapoff[tk + j], tapoff[tk + j + 1], tapoff[tk + j + 2], tapoff[tk + j + 3]
            if j == 0:  # the first pass sets Y (0 + a = a: the same sums as starting from zeros)
                for t in range(np.uint64(T)):
                    yw[y0 + t] = ((w0 * xpad[o0 + t] + w1 * xpad[o1 + t]) + w2 * xpad[o2 + t]) + w3 * xpad[o3 + t]
            else:
                for t in range(np.uint64(T)):
                    yw[y0 + t] = (((yw[y0 + t] + w0 * xpad[o0 + t]) + w1 * xpad[o1 + t]) + w2 * xpad[o2 + t]) \
                        + w3 * xpad[o3 + t]
        if taps < 4:
            for t in range(np.uint64(T)):
                yw[y0 + t] = zero
        for j in range(taps - taps % 4, taps):  # the last taps one a pass
            w0, o0 = theta[fk + j], tapoff[tk + j]
            for t in range(np.uint64(T)):
                yw[y0 + t] += w0 * xpad[o0 + t]
        bias = theta[d[P2] + kk] if d[OPT] else zero  # the W' used positions of each wide row, + b_k
        _rows(yw, d[WIDE] + kk * T, Wp, acts, d[OUT] + kk * Ho * Wo, Wo, Ho, Wo, bias)


def _conv_backward(desc, layer, theta, grad, dacts, xpad, dxpad, dyw, tapoff, lr, descend, zero):
    """∂L/∂f, ∂L/∂b (added to grad, or θ ← θ − η ∂L/∂θ at once if ``descend``) and ∂L/∂X from ∂L/∂Y at OUT."""
    d = desc[layer]
    K, Ho, Wo = d[COUT], d[HOUT], d[WOUT]
    Wp, _, T, taps = _conv_shape(d)
    for kk in range(K):  # ∂L/∂Y into the wide layout (its dropped positions stay 0)
        _rows(dacts, d[OUT] + kk * Ho * Wo, Wo, dyw, d[WIDE] + kk * T, Wp, Ho, Wo, zero)
    if d[BACK] == 2:  # before f moves
        _conv_input_gradient(d, theta, dacts, dxpad, dyw, tapoff, zero)
    for kk in range(0, K, 2):  # two filters (the last one twice for odd K) and four taps a pass
        k1 = min(kk + 1, K - 1)
        y0, y1 = np.uint64(d[WIDE] + kk * T), np.uint64(d[WIDE] + k1 * T)
        for j in range(0, taps - 3, 4):  # ∂L/∂f_kc(a, b) = Σ_{i,j} ∂L/∂Y_k(i, j) X_c(i+a, j+b)
            o = d[TAPS] + j
            g = _dot8(dyw, y0, y1, xpad, tapoff[o], tapoff[o + 1], tapoff[o + 2], tapoff[o + 3], T, zero)
            for jj in range(4):
                _apply(theta, grad, d[P1] + kk * taps + j + jj, g[jj], lr, descend)
                if k1 != kk:
                    _apply(theta, grad, d[P1] + k1 * taps + j + jj, g[4 + jj], lr, descend)
        for j in range(taps - taps % 4, taps):  # the last taps one at a time
            _apply(theta, grad, d[P1] + kk * taps + j, _dot(dyw, y0, xpad, tapoff[d[TAPS] + j], T, zero), lr, descend)
            if k1 != kk:
                g1 = _dot(dyw, y1, xpad, tapoff[d[TAPS] + j], T, zero)
                _apply(theta, grad, d[P1] + k1 * taps + j, g1, lr, descend)
    if d[OPT]:
        for kk in range(K):  # ∂L/∂b_k = Σ_{i,j} ∂L/∂Y_k(i, j)
            _apply(theta, grad, d[P2] + kk, _sum(dyw, np.uint64(d[WIDE] + kk * T), T, zero), lr, descend)


def _conv_input_gradient(d, theta, dacts, dxpad, dyw, tapoff, zero):
    """∂L/∂X_c(u, v) = Σ_k Σ_a Σ_b ∂L/∂Y_k(u−a, v−b) f_kc(a, b): each tap scatters back, four filters a pass."""
    Cin, Hin, Win, K, before = d[CIN], d[HIN], d[WIN], d[COUT], d[BEFORE]
    Wp, S, T, taps = _conv_shape(d)
    pad = np.uint64(d[PAD])
    for t in range(np.uint64(Cin * S)):
        dxpad[pad + t] = zero
    for j in range(taps):
        o = tapoff[d[TAPS] + j]
        for kk in range(0, K, 4):  # filters past the last weigh 0 (and read filter kk's ∂L/∂Y, for nothing)
            fj, y0 = d[P1] + kk * taps + j, d[WIDE] + kk * T
            w0, w1, w2, w3, y1, y2, y3 = theta[fj], zero, zero, zero, y0, y0, y0
            if kk + 1 < K:
                w1, y1 = theta[fj + taps], y0 + T
            if kk + 2 < K:
                w2, y2 = theta[fj + 2 * taps], y0 + 2 * T
            if kk + 3 < K:
                w3, y3 = theta[fj + 3 * taps], y0 + 3 * T
            y0, y1, y2, y3 = np.uint64(y0), np.uint64(y1), np.uint64(y2), np.uint64(y3)
            for t in range(np.uint64(T)):
                dxpad[o + t] = (((dxpad[o + t] + w0 * dyw[y0 + t]) + w1 * dyw[y1 + t]) + w2 * dyw[y2 + t]) \
                    + w3 * dyw[y3 + t]
    for c in range(Cin):  # the padding's share is dropped
        _rows(dxpad, d[PAD] + c * S + before * Wp + before, Wp, dacts, d[IN] + c * Hin * Win, Win, Hin, Win, zero)


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

    Max: the first maximum in the order (0,0), (0,1), (1,0), (1,1) wins, a NaN before any number, as np.argmax.
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
                else:  # Z(p, q) = max_{u,v} Y(2p+u, 2q+v), a tie kept by the earlier pixel; selects, not
                    # branches (random winners mispredict), but for the rare NaN
                    top, bottom = a1 if a1 > a0 else a0, a3 if a3 > a2 else a2
                    up = bottom > top
                    m, i = bottom if up else top, 2 + (a3 > a2) if up else 0 + (a1 > a0)
                    if (a0 != a0) | (a1 != a1) | (a2 != a2) | (a3 != a3):  # the first NaN wins
                        i = 0 if a0 != a0 else 1 if a1 != a1 else 2 if a2 != a2 else 3
                        m = a0 if i == 0 else a1 if i == 1 else a2 if i == 2 else a3
                    acts[z + q], wins[w + q] = m, i


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


# ---- one record, one batch, one epoch --------------------------------------------------------------


def _forward(pixels, floats, i, desc, theta, buffers, divisor, quarter, zero):
    """Every layer's output for record i, in acts; the class scores A at the last row's OUT."""
    acts, _, xpad, _, yw, _, wins, tapoff = buffers
    _fill_image(pixels, floats, i, acts, divisor)
    for layer in range(len(desc)):
        kind = desc[layer, KIND]
        if kind == CONV:
            _conv_forward(desc, layer, theta, acts, xpad, yw, tapoff, zero)
        elif kind == RELU:
            _relu_forward(desc, layer, acts, zero)
        elif kind == POOL:
            _pool_forward(desc, layer, acts, wins, quarter)
        elif kind == DENSE:
            _dense_forward(desc, layer, theta, acts, zero)


def _backward(desc, theta, grad, buffers, lr, descend, quarter, zero):
    """From ∂L/∂A (in dacts at the last row's OUT) back through the layers, each ∂L/∂X the previous ∂L/∂Y."""
    acts, dacts, xpad, dxpad, _, dyw, wins, tapoff = buffers
    for layer in range(len(desc) - 1, -1, -1):
        kind = desc[layer, KIND]
        if desc[layer, BACK] == 0:
            break  # nothing before this layer is trained
        if kind == CONV:
            _conv_backward(desc, layer, theta, grad, dacts, xpad, dxpad, dyw, tapoff, lr, descend, zero)
        elif kind == RELU:
            _relu_backward(desc, layer, acts, dacts, zero)
        elif kind == POOL:
            _pool_backward(desc, layer, dacts, wins, quarter, zero)
        elif kind == DENSE:
            _dense_backward(desc, layer, theta, grad, acts, dacts, lr, descend, zero)


def _batch(pixels, floats, y, order, lo, hi, N, desc, theta, grad, buffers, lr, descend, divisor):
    """Σ_n L_n / N over the records order[lo:hi] (L_n = −ln P_y), a batch of N or a part of one; the
    gradients of that sum added to grad.

    descend (a batch of one): θ ← θ − η ∂L/∂θ layer by layer instead, unless L is not finite.
    """
    const = np.zeros(4, theta.dtype)
    const[0], const[1], const[3] = 1, 0.25, N
    one, quarter, zero, n = const[0], const[1], const[2], const[3]  # n: N in the net's dtype
    last, classes = desc[len(desc) - 1, OUT], desc[len(desc) - 1, COUT]
    acts, dacts = buffers[0], buffers[1]
    total = zero
    for r in range(lo, hi):
        i = order[r]
        _forward(pixels, floats, i, desc, theta, buffers, divisor, quarter, zero)
        total += _softmax_backward(acts, dacts, last, classes, y[i], n, one, zero)
        if descend and not np.isfinite(total):
            break  # the batch's update is not applied
        _backward(desc, theta, grad, buffers, lr, descend, quarter, zero)
    return total / n


def _epoch(pixels, floats, y, order, first, stop, batch_size, desc, theta, grad, buffers, lr, descend, divisor):
    """descend: SGD over the batches of batch_size in order[first:stop], θ ← θ − η ∂L/∂θ after each, stopping
    at a batch whose L is not finite (before its update). Returns (steps, L of the last batch computed).

    Otherwise the records order[first:stop] are (part of) one batch of batch_size: grad ← their share of
    ∂L/∂θ, and the returned L is their share of the batch's mean loss.
    """
    if not descend:
        grad[:] = 0
        return 0, _batch(pixels, floats, y, order, first, stop, batch_size, desc, theta, grad, buffers, lr, False,
                         divisor)
    steps, L = 0, theta[0] * np.nan
    for start in range(first, stop, batch_size):
        end = min(start + batch_size, stop)
        L = _batch(pixels, floats, y, order, start, end, end - start, desc, theta, grad, buffers, lr, end - start == 1,
                   divisor)
        if not np.isfinite(L):
            break
        if end - start > 1:
            for j in range(np.uint64(len(theta))):
                theta[j] -= lr * grad[j]  # θ ← θ − η ∂L/∂θ
                grad[j] = 0
        steps += 1
    return steps, L


KERNELS = ("_dot", "_sum", "_dot8", "_rows", "_apply", "_fill_image", "_conv_shape", "_conv_forward", "_conv_backward",
           "_conv_input_gradient", "_relu_forward", "_relu_backward", "_pool_forward", "_pool_backward",
           "_dense_forward", "_dense_backward", "_softmax_backward", "_forward", "_backward", "_batch", "_epoch")
# Only the sums of the dot products may be reordered (LLVM's "reassoc" alone): NaN and infinities keep
# their IEEE meaning, so a non-finite loss is still caught; everything else is compiled strictly.
FASTMATH = {"_dot": {"reassoc"}, "_dot8": {"reassoc"}, "_sum": {"reassoc"}}
