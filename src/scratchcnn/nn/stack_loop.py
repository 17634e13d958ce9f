"""The compiled loops of nn/stack_engine.py: one record forward and back, one batch, one epoch.

Plain Python functions compiled with numba.njit by stack_engine._compile, as the layer kernels they call
(nn/stack_kernels.py, nn/stack_conv.py; the table and the buffers: stack_kernels.py's docstring).
"""

from __future__ import annotations

import numpy as np

from scratchcnn.nn import stack_conv, stack_kernels
from scratchcnn.nn.stack_conv import _conv_backward, _conv_forward, _relu_max_conv_backward, _relu_max_forward
from scratchcnn.nn.stack_kernels import (
    BACK,
    CONV,
    COUT,
    DENSE,
    FUSED,
    KIND,
    OUT,
    POOL,
    RELU,
    _dense_backward,
    _dense_forward,
    _fill_image,
    _pool_backward,
    _pool_forward,
    _relu_backward,
    _relu_forward,
    _softmax_backward,
)


def _forward(pixels, floats, i, desc, theta, buffers, divisor, quarter, zero):
    """Every layer's output for record i, in acts; the class scores A at the last row's OUT."""
    acts, _, xpad, _, yw, _, wins, tapoff = buffers[:8]
    _fill_image(pixels, floats, i, acts, divisor)
    for layer in range(len(desc)):
        kind = desc[layer, KIND]
        if desc[layer, FUSED] == 2:
            continue  # done by the conv before it
        if kind == CONV:
            _conv_forward(desc, layer, theta, acts, xpad, yw, tapoff, zero)
            if desc[layer, FUSED]:
                _relu_max_forward(desc, layer, theta, acts, yw, wins, zero)
        elif kind == RELU:
            _relu_forward(desc, layer, acts, zero)
        elif kind == POOL:
            _pool_forward(desc, layer, acts, wins, quarter)
        elif kind == DENSE:
            _dense_forward(desc, layer, theta, acts, zero)


def _backward(desc, theta, grad, buffers, lr, descend, quarter, zero):
    """From ∂L/∂A (in dacts at the last row's OUT) back through the layers, each ∂L/∂X the previous ∂L/∂Y."""
    acts, dacts, xpad, dxpad, _, dyw, wins, tapoff, cols, acc, picks, values = buffers
    for layer in range(len(desc) - 1, -1, -1):
        kind = desc[layer, KIND]
        if desc[layer, BACK] == 0:
            break  # nothing before this layer is trained
        if desc[layer, FUSED] == 2:
            continue  # done by the conv before it
        if kind == CONV and desc[layer, FUSED]:
            _relu_max_conv_backward(desc, layer, theta, grad, acts, dacts, xpad, dxpad, dyw, wins, tapoff, cols, acc,
                                    picks, values, lr, descend, zero)
        elif kind == CONV:
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


MODULES = (stack_kernels, stack_conv)  # the other modules whose functions are compiled (and call each other)
KERNELS = ("_dot", "_sum", "_dot8", "_rows", "_apply", "_fill_image", "_max4", "_conv_shape", "_conv_forward",
           "_one_filter", "_two_filters", "_conv_backward", "_conv_input_gradient", "_relu_max_forward", "_winners",
           "_patches", "_row", "_patch_sums", "_relu_max_conv_backward", "_relu_forward", "_relu_backward",
           "_pool_forward", "_pool_backward", "_dense_forward", "_dense_backward", "_softmax_backward", "_forward",
           "_backward", "_batch", "_epoch")
# Only the sums of the dot products may be reordered (LLVM's "reassoc"), and a multiply-add may be one
# fused instruction (LLVM's "contract": rounded once, not twice; ~2 times the speed where multiply-adds
# are the work): NaN and infinities keep their IEEE meaning, so a non-finite loss is still caught.
_SUMS, _FMA = {"reassoc", "contract"}, {"contract"}
FASTMATH = {"_dot": _SUMS, "_dot8": _SUMS, "_sum": _SUMS, "_one_filter": _FMA, "_two_filters": _FMA,
            "_conv_input_gradient": _FMA, "_patch_sums": _FMA, "_dense_backward": _FMA}
