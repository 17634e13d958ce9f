"""Layer specs: a network written as one short string, e.g. for ``--layers``.

Grammar (no spaces needed; spaces around commas are ignored)::

    spec    := PRESET | layer ("," layer)*
    layer   := conv | "relu" | pool | "flatten" | dense
    conv    := "conv:" K "x" k [":" padding] [bias]      K filters of k×k, stride 1
    padding := "bottom-right" | "same" | "valid"          default bottom-right (the write-up's)
    pool    := "pool:" ("decimate" | "max" | "avg")       2×2, stride 2
    dense   := "dense" [":" width] [bias]                 no width: C outputs, one per class
    bias    := "+b" | "-b"                                default +b (with bias); -b: without
    K, k, width := whole numbers ≥ 1

The last layer must be a dense of C outputs (the class scores A): write it as a bare ``dense``
(or ``dense-b``), or with its width C. Images enter as 1 channel; a dense needs a ``flatten``
before it when its input is still images.

Examples: the presets below, or ``conv:8x3:same,relu,pool:max,flatten,dense``.
Every error is one line naming the layer (its position and text) and why, as a ConfigError.
"""

from __future__ import annotations

import re

from scratchcnn.errors import ConfigError
from scratchcnn.nn.stack import Stack
from scratchcnn.nn.stack_layers import PADDINGS, POOL_TYPES, Conv, Dense, Flatten, Layer, Pool, ReLU
from scratchcnn.options import CLASSES, INPUT_SHAPE, NETWORK, TRAINING

PRESETS = {
    # The write-up: conv 3@3×3 bottom-right, no activation, decimate, dense C without bias.
    "seed": "conv:3x3-b,pool:decimate,flatten,dense-b",
    # Wider: 32 filters of 5×5 (bottom-right, no bias as the write-up's), ReLU, max pooling, dense with bias.
    "wide": "conv:32x5-b,relu,pool:max,flatten,dense",
    # LeNet-5's shape (with ReLU and max pooling): 28×28 → 6@28×28 → 6@14×14 → 16@10×10 → 16@5×5 → 120 → 84 → C.
    "lenet": "conv:6x5:same,relu,pool:max,conv:16x5:valid,relu,pool:max,flatten,dense:120,relu,dense:84,relu,dense",
    # No convolution (the previous article's classifier): A = W X + b on the H·W pixels, softmax, the same SGD.
    "softmax": "flatten,dense",
}

_CONV = re.compile(r"conv:(\d+)x(\d+)(?::([a-z-]+?))?([+-]b)?")
_DENSE = re.compile(r"dense(?::(\d+))?([+-]b)?")
_POOL = re.compile(r"pool:([a-z]+)")
_SIMPLE = {"relu": ReLU, "flatten": Flatten}
KNOWN = "conv:KxK[:padding][±b], relu, pool:TYPE, flatten, dense[:WIDTH][±b]"


def parse_layer(token: str) -> Layer:
    """One layer from its spec token; ConfigError (the token and why) when malformed."""
    layer = _parse(token)
    layer.text = token
    return layer


def _parse(token: str) -> Layer:
    name = token.split(":")[0].removesuffix("+b").removesuffix("-b")
    if name in _SIMPLE and token == name:
        return _SIMPLE[name]()
    if name == "conv":
        match = _CONV.fullmatch(token)
        if not match:
            raise ConfigError(f"{token!r}: a convolution is written conv:KxK[:padding][±b], e.g. conv:6x5:same")
        padding = match.group(3) or PADDINGS[0]
        if padding not in PADDINGS:
            raise ConfigError(f"{token!r}: padding must be one of {', '.join(PADDINGS)}; got {padding!r}")
        filters, size = int(match.group(1)), int(match.group(2))
        if filters < 1 or size < 1:
            raise ConfigError(f"{token!r}: needs at least 1 filter of at least 1×1")
        return Conv(filters, size, padding, bias=match.group(4) != "-b")
    if name == "pool":
        match = _POOL.fullmatch(token)
        if not match or match.group(1) not in POOL_TYPES:
            raise ConfigError(f"{token!r}: pooling is written pool:TYPE with TYPE one of {', '.join(POOL_TYPES)}")
        return Pool(match.group(1))
    if name == "dense":
        match = _DENSE.fullmatch(token)
        if not match:
            raise ConfigError(f"{token!r}: a dense layer is written dense[:WIDTH][±b], e.g. dense:120")
        width = None if match.group(1) is None else int(match.group(1))
        if width == 0:
            raise ConfigError(f"{token!r}: needs a width of at least 1")
        return Dense(width, bias=match.group(2) != "-b")
    if name in _SIMPLE:
        raise ConfigError(f"{token!r}: {name} takes no options")
    raise ConfigError(f"{token!r}: unknown layer {name!r} (known: {KNOWN})")


def parse(spec: str) -> list[Layer]:
    """The layers of a spec string or preset name; ConfigError "layer i of n 'text': why" when malformed."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"a layer spec must be a preset ({', '.join(PRESETS)}) or layers like {PRESETS['seed']}")
    text = PRESETS.get(spec.strip(), spec)
    tokens = [token.strip() for token in text.split(",")]
    layers = []
    for i, token in enumerate(tokens):
        try:
            if not token:
                raise ConfigError("'': empty layer (two commas in a row?)")
            layers.append(parse_layer(token))
        except ConfigError as error:
            raise ConfigError(f"layer {i + 1} of {len(tokens)} {error}") from None
    return layers


def build(
    spec: str,
    input_shape: tuple[int, int] = INPUT_SHAPE,
    classes: int = CLASSES,
    seed: int | None = TRAINING.seed,
    dtype: str = NETWORK.dtype,
) -> Stack:
    """A Stack from a spec string or preset name, its shapes checked layer by layer and parameters initialised.

    ConfigError, one line naming the layer (position and text) and why, for a malformed spec or shapes
    that do not fit (e.g. a dense on images, a pool on a 1×1 map, a valid 5×5 conv on a 4×4 map).
    """
    return Stack(parse(spec), input_shape=input_shape, classes=classes, seed=seed, dtype=dtype)
