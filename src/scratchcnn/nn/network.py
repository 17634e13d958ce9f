"""Which network: a preset (--arch), a spec (--layers) or the seed family's options, and model files of any kind.

Every network is a stack of layers (nn/stack_layers.py). The write-up's network and its variants
(one convolution with bottom-right padding and no bias, an optional ReLU, one 2×2 pooling, a dense
layer of C scores) are built as ``ConvNet``: the same stack with the seed network's hand-tuned
compiled kernel (nn/engine.py), so the default trains bit for bit as the write-up's network always has.
Any other stack is a ``Stack``. ``network_spec`` writes either as a spec string.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from scratchcnn.errors import ModelFileError
from scratchcnn.nn import model, stack
from scratchcnn.nn.model import ConvNet
from scratchcnn.nn.npzfile import Expected, read_npz
from scratchcnn.nn.spec import PRESETS, parse
from scratchcnn.nn.stack import Stack
from scratchcnn.nn.stack_layers import PADDINGS, Conv, Dense, Flatten, Layer, Pool, ReLU
from scratchcnn.options import CLASSES, INPUT_SHAPE, NETWORK, TRAINING, NetworkOptions

Network = ConvNet | Stack
FORMATS: dict[str, type[ConvNet] | type[Stack]] = {model.FILE_FORMAT: ConvNet, stack.FILE_FORMAT: Stack}


def seed_family(layers: Sequence[Layer]) -> dict[str, Any] | None:
    """ConvNet's options for a stack of the write-up's shape, or None for any other stack.

    The shape: conv:Kxk (bottom-right, no bias), [relu], pool:TYPE, flatten, dense[-b] of C outputs.
    """
    kinds = [type(layer) for layer in layers]
    if kinds not in ([Conv, Pool, Flatten, Dense], [Conv, ReLU, Pool, Flatten, Dense]):
        return None
    conv, pool, dense = layers[0], layers[-3], layers[-1]
    assert isinstance(conv, Conv) and isinstance(pool, Pool) and isinstance(dense, Dense)
    if conv.padding != PADDINGS[0] or conv.bias or dense.width not in (None, CLASSES):
        return None
    return {"filters": conv.filters, "kernel_size": conv.kernel_size, "pool": pool.how,
            "activation": "relu" if ReLU in kinds else "none", "bias": dense.bias}


def from_spec(
    spec: str | Sequence[Layer],
    *,
    input_shape: tuple[int, int] = INPUT_SHAPE,
    classes: int = CLASSES,
    seed: int | None = TRAINING.seed,
    dtype: str = NETWORK.dtype,
) -> Network:
    """The network a spec string, preset name or list of layer objects describes.

    A stack of the write-up's shape (see ``seed_family``) with C = 10 classes is a ConvNet, so that it
    trains with the seed network's compiled kernel; any other is a Stack. ConfigError, one line naming
    the layer and why, for a malformed spec or shapes that do not fit.
    """
    layers = parse(spec) if isinstance(spec, str) else copy.deepcopy(list(spec))  # a Stack fills its layers in
    family = seed_family(layers) if classes == CLASSES else None
    if family is not None:
        Stack(layers, input_shape=input_shape, classes=classes, seed=None, dtype=dtype, initialise=False)  # checks
        return ConvNet(**family, input_shape=input_shape, seed=seed, dtype=dtype, classes=classes)
    return Stack(layers, input_shape=input_shape, classes=classes, seed=seed, dtype=dtype)


def build_network(options: NetworkOptions, *, input_shape: tuple[int, int] = INPUT_SHAPE,
                  classes: int = CLASSES, seed: int | None = TRAINING.seed) -> Network:
    """The network of a run's resolved options (``options.resolve``, which fills in each preset's values):
    ``layers`` if given, else the preset ``arch``, built from the seed family's options for seed and wide."""
    if options.layers is not None:
        return from_spec(options.layers, input_shape=input_shape, classes=classes, seed=seed, dtype=options.dtype)
    if options.arch in ("seed", "wide"):
        return ConvNet(filters=options.filters, kernel_size=options.kernel_size, pool=options.pool,
                       activation=options.activation, bias=options.bias, input_shape=input_shape, seed=seed,
                       dtype=options.dtype, classes=classes)
    return from_spec(PRESETS[options.arch], input_shape=input_shape, classes=classes, seed=seed, dtype=options.dtype)


def network_spec(net: Network) -> str:
    """Any network as a spec string (ConvNet as the stack it is)."""
    if isinstance(net, Stack):
        return net.spec()
    conv = f"conv:{net.filters}x{net.kernel_size}-b"
    relu = ["relu"] if net.activation == "relu" else []
    return ",".join([conv, *relu, f"pool:{net.pool}", "flatten", "dense" if net.bias else "dense-b"])


def file_class(raw_header: np.ndarray | None, where: str) -> type[ConvNet] | type[Stack]:
    """Which class wrote a saved header; ModelFileError naming the file when it is no scratchcnn model."""
    try:
        kind = json.loads(str(raw_header)).get("format") if raw_header is not None and raw_header.shape == () else None
    except (json.JSONDecodeError, AttributeError):
        kind = None
    if kind is None:  # ConvNet's own check gives the one-line reason (no header, not JSON, not a model file)
        ConvNet.expected_arrays(raw_header, where)
    if kind not in FORMATS:
        raise ModelFileError(f"{where}: not a scratchcnn model file (its header says format {kind!r})")
    return FORMATS[kind]


def expected_arrays(raw_header: np.ndarray | None, where: str) -> dict[str, Expected]:
    """{name: (dtype, shape)} the header of a model file of either kind promises."""
    return file_class(raw_header, where).expected_arrays(raw_header, where)


def from_arrays(arrays: dict[str, np.ndarray], where: str) -> Network:
    """A network of either kind from a saved header (arrays["header"]) and its parameter arrays."""
    return file_class(arrays.get("header"), where).from_arrays(arrays, where)


def load_model(path: str | os.PathLike) -> Network:
    """Read a model file written by ``save`` of a ConvNet or a Stack; ModelFileError (one line) if amiss."""
    return from_arrays(read_npz(path, "model", lambda raw: expected_arrays(raw, str(path))), str(path))



def as_stack(net: Network) -> Stack:
    """Any network as a Stack computing the same function; a ConvNet's arrays are shared, reshaped.

    f (K, k, k) becomes the conv layer's (K, 1, k, k); W (C, K, H', W') the dense layer's (C, K·H'·W').
    """
    if isinstance(net, Stack):
        return net
    stack = Stack(parse(network_spec(net)), input_shape=net.input_shape, classes=net.classes, seed=None,
                  dtype=net.dtype, initialise=False)
    conv, dense = stack.layers[0], stack.layers[-1]
    conv.params["f"] = net.f.reshape(net.filters, 1, net.kernel_size, net.kernel_size)
    dense.params["W"] = net.W.reshape(net.classes, -1)
    if net.bias:
        dense.params["b"] = net.b
    stack.dataset = net.dataset
    return stack
