"""The compiled convolution kernels of nn/stack_engine.py, and a convolution fused with the ReLU and max
pooling after it.

Plain Python functions compiled with numba.njit by stack_engine._compile, calling each other and
nn/stack_kernels.py's helpers by their global names (rebound to the compiled versions).

The wide layout, the table ``desc`` and the flat buffers: nn/stack_kernels.py's docstring.

Fused conv → ReLU → max pool (``desc[layer, FUSED] == 1``; the wide and LeNet presets). The forward pools
straight from the wide output: Z = max over the window of max(Y + b, 0), with no copy of Y and no ReLU
pass. The backward gets ∂L/∂Z and knows where it goes: to the window's winner, when Z > 0 (ReLU passes
it), else nowhere. So at most one position in four of ∂L/∂Y is non-zero, and after ReLU typically one in
ten: the filter gradient ∂L/∂f_kc(a, b) = Σ_{i,j} ∂L/∂Y_k(i, j) X_c(i+a, j+b) sums over the winners only: each
adds its ∂L/∂Y times the patch of X under the filter there, one contiguous row of ``cols`` (X's patches,
built once per record; "im2col").
"""

from __future__ import annotations

import numpy as np

from scratchcnn.nn.stack_kernels import (
    BACK,
    BEFORE,
    CIN,
    COUT,
    FUSED,
    HIN,
    HOUT,
    IN,
    KSIZE,
    OPT,
    OUT,
    P1,
    P2,
    PAD,
    TAPS,
    WIDE,
    WIN,
    WOUT,
    _apply,
    _dot,
    _dot8,
    _max4,
    _rows,
    _sum,
)


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
    for kk in range(0, K - 1, 2):  # two filters a pass over the map: each X load serves both
        _two_filters(d, kk, theta, xpad, yw, tapoff, T, taps, zero)
    if K % 2:
        _one_filter(d, K - 1, theta, xpad, yw, tapoff, T, taps, zero)
    for kk in range(K):
        if not d[FUSED]:  # (fused: pooled from yw by _relu_max_forward)
            bias = theta[d[P2] + kk] if d[OPT] else zero  # the W' used positions of each wide row, + b_k
            _rows(yw, d[WIDE] + kk * T, Wp, acts, d[OUT] + kk * Ho * Wo, Wo, Ho, Wo, bias)


def _one_filter(d, kk, theta, xpad, yw, tapoff, T, taps, zero):
    """Y_k = Σ_taps f_k(c, a, b) X_c shifted by (a, b), into yw: four taps a pass over the wide map."""
    y0, fk, tk = np.uint64(d[WIDE] + kk * T), d[P1] + kk * taps, d[TAPS]
    for j in range(0, taps - 3, 4):  # tap (c, a, b) reads xpad from c·S + a·Wp + b
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


def _two_filters(d, kk, theta, xpad, yw, tapoff, T, taps, zero):
    """_one_filter for filters k and k + 1 at once: the same sums, half the loads of X (~1.4 times as fast)."""
    y0, y1, f0, tk = np.uint64(d[WIDE] + kk * T), np.uint64(d[WIDE] + (kk + 1) * T), d[P1] + kk * taps, d[TAPS]
    f1 = f0 + taps
    for j in range(0, taps - 3, 4):
        w0, w1, w2, w3 = theta[f0 + j], theta[f0 + j + 1], theta[f0 + j + 2], theta[f0 + j + 3]
        v0, v1, v2, v3 = theta[f1 + j], theta[f1 + j + 1], theta[f1 + j + 2], theta[f1 + j + 3]
        o0, o1, o2, o3 = tapoff[tk + j], tapoff[tk + j + 1], tapoff[tk + j + 2], tapoff[tk + j + 3]
        if j == 0:
            for t in range(np.uint64(T)):
                x0, x1, x2, x3 = xpad[o0 + t], xpad[o1 + t], xpad[o2 + t], xpad[o3 + t]
                yw[y0 + t] = ((w0 * x0 + w1 * x1) + w2 * x2) + w3 * x3
                yw[y1 + t] = ((v0 * x0 + v1 * x1) + v2 * x2) + v3 * x3
        else:
            for t in range(np.uint64(T)):
                x0, x1, x2, x3 = xpad[o0 + t], xpad[o1 + t], xpad[o2 + t], xpad[o3 + t]
                yw[y0 + t] = (((yw[y0 + t] + w0 * x0) + w1 * x1) + w2 * x2) + w3 * x3
                yw[y1 + t] = (((yw[y1 + t] + v0 * x0) + v1 * x1) + v2 * x2) + v3 * x3
    if taps < 4:
        for t in range(np.uint64(T)):
            yw[y0 + t], yw[y1 + t] = zero, zero
    for j in range(taps - taps % 4, taps):
        w0, v0, o0 = theta[f0 + j], theta[f1 + j], tapoff[tk + j]
        for t in range(np.uint64(T)):
            x0 = xpad[o0 + t]
            yw[y0 + t] += w0 * x0
            yw[y1 + t] += v0 * x0


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


def _relu_max_forward(desc, layer, theta, acts, yw, wins, zero):
    """Z_k(p, q) = max_{u,v} max(Y_k(2p+u, 2q+v) + b_k, 0), read from the wide output of the conv at
    ``layer``; Z at the pool's OUT, the winners at its PAD (the two layers after the conv, fused into it).

    Computed as max(max_{u,v} (Y + b), 0): the same Z (ReLU keeps the order of positive numbers, and a NaN
    stays NaN) with one ReLU instead of four. Where Z = 0 the winner may differ from ReLU-then-pool's, but
    no gradient passes there.
    """
    d, pool = desc[layer], desc[layer + 2]
    Wp, two = np.uint64(d[WOUT] + d[KSIZE] - 1), np.uint64(2)
    T, Hz, Wz = np.uint64(d[HOUT]) * Wp, pool[HOUT], pool[WOUT]
    for kk in range(d[COUT]):
        bias = theta[d[P2] + kk] if d[OPT] else zero
        for p in range(Hz):
            r0 = np.uint64(d[WIDE]) + np.uint64(kk) * T + two * np.uint64(p) * Wp  # rows 2p and 2p + 1 of Y_k
            r1, z = r0 + Wp, np.uint64(pool[OUT] + (kk * Hz + p) * Wz)
            w = np.uint64(pool[PAD] + (kk * Hz + p) * Wz)
            for q in range(np.uint64(Wz)):
                c = two * q
                # Z_k(p, q) = max(max_{u,v} (Y_k(2p+u, 2q+v) + b_k), 0), and the winner (u, v) as 2u + v
                m, i = _max4(yw[r0 + c] + bias, yw[r0 + c + 1] + bias, yw[r1 + c] + bias, yw[r1 + c + 1] + bias)
                acts[z + q], wins[w + q] = (zero if m < zero else m), i


def _relu_max_conv_backward(desc, layer, theta, grad, acts, dacts, xpad, dxpad, dyw, wins, tapoff, cols, acc,
                            picks, values, lr, descend, zero):
    """The fused conv's ∂L/∂f, ∂L/∂b and (if needed) ∂L/∂X from ∂L/∂Z at its pool's OUT (see the docstring).

    ∂L/∂Y_k is ∂L/∂Z_k(p, q) at the window's winner (2p+u, 2q+v) when Z_k(p, q) > 0, and 0 elsewhere; so
    ∂L/∂f_k = Σ_{p,q} ∂L/∂Y_k(2p+u, 2q+v) · (the patch of X under the filter there), one row of cols each.
    """
    d, pool = desc[layer], desc[layer + 2]
    K, taps, Wp = d[COUT], d[CIN] * d[KSIZE] * d[KSIZE], d[WOUT] + d[KSIZE] - 1
    T, n = d[HOUT] * Wp, np.uint64(_row(taps))
    _patches(d, pool, xpad, tapoff, cols)
    if d[BACK] == 2:  # ∂L/∂Y in full for ∂L/∂X, before f moves
        for t in range(np.uint64(K * T)):
            dyw[d[WIDE] + t] = zero
        for kk in range(K):  # (the winners are listed again below: cheaper than keeping every filter's list)
            y0 = np.uint64(d[WIDE] + kk * T)
            for e in range(_winners(pool, kk, Wp, acts, dacts, wins, picks, values, zero)):
                dyw[y0 + picks[e]] = values[e]
        _conv_input_gradient(d, theta, dacts, dxpad, dyw, tapoff, zero)
    for kk in range(K):
        m = _winners(pool, kk, Wp, acts, dacts, wins, picks, values, zero)
        _patch_sums(cols, n, picks, values, m, acc, zero)  # Σ_{i,j} ∂L/∂Y_k(i, j) · patch(i, j)
        for tap in range(taps):
            _apply(theta, grad, d[P1] + kk * taps + tap, acc[tap], lr, descend)
        if d[OPT]:  # ∂L/∂b_k = Σ_{i,j} ∂L/∂Y_k(i, j)
            _apply(theta, grad, d[P2] + kk, _sum(values, np.uint64(0), m, zero), lr, descend)


def _patches(d, pool, xpad, tapoff, cols):
    """cols[t] = the patch of X under the filter at wide position t (its taps, then 0s to the row's end),
    for the positions a window of the pool covers: X_c(i+a, j+b) at t = i·Wp + j, tap (c, a, b)."""
    Wp, taps, tk = d[WOUT] + d[KSIZE] - 1, np.uint64(d[CIN] * d[KSIZE] * d[KSIZE]), np.uint64(d[TAPS])
    n = np.uint64(_row(taps))
    for i in range(2 * pool[HOUT]):
        for j in range(2 * pool[WOUT]):
            t = np.uint64(i * Wp + j)
            for tap in range(taps):
                cols[t * n + tap] = xpad[tapoff[tk + tap] + t]


def _row(taps):
    """The length of a row of cols: taps rounded up to a multiple of 8 (the spare numbers stay 0), so that
    _patch_sums's loops have no remainder: ~1.4 times as fast for 25 taps."""
    return (taps + 7) // 8 * 8


def _patch_sums(cols, n, picks, values, m, acc, zero):
    """acc[:n] = Σ_e values[e] · cols[picks[e]] (rows of n numbers), four rows a pass: fewer loads and stores
    of acc (one row a pass took ~5 times as long)."""
    for tap in range(n):
        acc[tap] = zero
    for e in range(0, m - m % 4, 4):
        g0, g1, g2, g3 = values[e], values[e + 1], values[e + 2], values[e + 3]
        c0, c1, c2, c3 = picks[e] * n, picks[e + 1] * n, picks[e + 2] * n, picks[e + 3] * n
        for tap in range(n):
            # ∂L/∂f_k(tap) += ∂L/∂Y_k(i, j) X(patch at (i, j), tap), for four winners (i, j) at once
            acc[tap] += ((g0 * cols[c0 + tap] + g1 * cols[c1 + tap]) + g2 * cols[c2 + tap]) + g3 * cols[c3 + tap]
    for e in range(m - m % 4, m):
        g, c0 = values[e], picks[e] * n
        for tap in range(n):
            acc[tap] += g * cols[c0 + tap]


def _winners(pool, kk, Wp, acts, dacts, wins, picks, values, zero):
    """The non-zero ∂L/∂Y_k: their number m, their wide positions in picks[:m], their values in values[:m].

    ∂L/∂Y_k(2p+u, 2q+v) = ∂L/∂Z_k(p, q) at window (p, q)'s winner (u, v) if Z_k(p, q) > 0 (ReLU passed
    it; a NaN is kept), else 0. Every window is written and m advanced only for a non-zero one: a
    select, not a branch.
    """
    Hz, Wz, Wp, one, two = np.uint64(pool[HOUT]), np.uint64(pool[WOUT]), np.uint64(Wp), np.uint64(1), np.uint64(2)
    z0, w0, m = np.uint64(pool[OUT]), np.uint64(pool[PAD]), 0
    for p in range(Hz):
        row, top = (np.uint64(kk) * Hz + p) * Wz, two * p * Wp  # window row p; Y's row 2p
        for q in range(Wz):
            at, i = row + q, np.uint64(wins[w0 + row + q])
            g = dacts[z0 + at] if acts[z0 + at] > zero else zero
            picks[m], values[m] = top + (i >> one) * Wp + two * q + (i & one), g
            m += np.int64(g != zero)
    return m
