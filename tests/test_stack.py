"""The layer stack: every layer's hand-derived backward against central finite differences (float64),
the presets end to end, the seed preset against ConvNet, and specs refused with one line naming the layer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scratchcnn import ConfigError, ConvNet
from scratchcnn.nn.spec import PRESETS, build, parse
from scratchcnn.nn.stack import Stack
from scratchcnn.nn.stack_layers import Conv, Dense, Flatten, Pool, ReLU, from_config

H_STEP = 1e-5  # central differences: error O(h²) from the curvature, O(ε/h) from rounding


def rel_error(ours: np.ndarray, numeric: np.ndarray) -> float:
    """max |ours − numeric| relative to the largest entry: entries near 0 do not blow the ratio up."""
    assert ours.shape == numeric.shape
    return float(np.abs(ours - numeric).max() / max(np.abs(numeric).max(), 1e-12))


def numeric_gradient(loss, x: np.ndarray, entries=None) -> np.ndarray:
    """(L(x + h) − L(x − h)) / 2h for each entry of x (or only ``entries``, flat indices; NaN elsewhere)."""
    grad = np.full(x.shape, np.nan) if entries is not None else np.zeros(x.shape)
    flat, out = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size) if entries is None else entries:
        saved = flat[i]
        flat[i] = saved + H_STEP
        up = loss()
        flat[i] = saved - H_STEP
        down = loss()
        flat[i] = saved
        out[i] = (up - down) / (2 * H_STEP)
    return grad


def check_layer(layer, input_shape: tuple[int, ...], seed: int = 0) -> None:
    """L = Σ Y·R for a random R, so ∂L/∂Y = R: ∂L/∂X and every ∂L/∂param against finite differences."""
    rng = np.random.default_rng(seed)
    layer.initialise(input_shape, rng, "float64", he=False)
    for value in layer.params.values():
        value[...] = rng.normal(0, 1, value.shape)  # nonzero biases too, so every term counts
    X = rng.normal(0, 1, (2, *input_shape))
    R = rng.normal(0, 1, (2, *layer.output_shape(input_shape)))
    Y, cache = layer.forward(X)
    assert Y.shape == R.shape
    dX, grads = layer.backward(R, cache)
    assert set(grads) == set(layer.params)

    def loss() -> float:
        return float((layer.forward(X)[0] * R).sum())

    assert np.abs(dX).max() > 0
    assert rel_error(dX, numeric_gradient(loss, X)) < 1e-6
    for name, value in layer.params.items():
        assert rel_error(grads[name], numeric_gradient(loss, value)) < 1e-6, name


@pytest.mark.parametrize("k", [1, 3, 4])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("padding", ["bottom-right", "same", "valid"])
def test_conv_gradients(padding, bias, channels, k):
    layer = Conv(3, k, padding, bias=bias)
    shape = layer.output_shape((channels, 6, 5))
    assert shape == ((3, 6, 5) if padding != "valid" else (3, 7 - k, 6 - k))
    check_layer(layer, (channels, 6, 5), seed=k)


@pytest.mark.parametrize("how", ["decimate", "max", "avg"])
@pytest.mark.parametrize("size", [(4, 6), (5, 7)], ids=["even", "odd"])
def test_pool_gradients(how, size):
    layer = Pool(how)
    assert layer.output_shape((2, *size)) == (2, size[0] // 2, size[1] // 2)
    check_layer(layer, (2, *size))


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_dense_gradients(bias):
    check_layer(Dense(4, bias=bias), (7,))


@pytest.mark.parametrize("layer, shape", [(ReLU(), (2, 3, 4)), (ReLU(), (5,)), (Flatten(), (2, 3, 4))],
                         ids=["relu-images", "relu-vector", "flatten"])
def test_parameterless_gradients(layer, shape):
    check_layer(layer, shape)


def test_same_padding_of_an_even_filter_puts_the_extra_zero_bottom_right():
    """k = 4 "same": one zero above/left, two below/right (PyTorch's choice): check one output pixel by hand."""
    layer = Conv(1, 4, "same", bias=False)
    layer.params = {"f": np.arange(16.0).reshape(1, 1, 4, 4)}
    X = np.arange(25.0).reshape(1, 1, 5, 5)
    Y = layer.forward(X)[0]
    padded = np.pad(X[0, 0], ((1, 2), (1, 2)))
    assert Y[0, 0, 0, 0] == (padded[:4, :4] * layer.params["f"][0, 0]).sum()
    assert Y[0, 0, 4, 4] == (padded[4:8, 4:8] * layer.params["f"][0, 0]).sum()


def images(seed: int, n: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape)), rng.integers(0, 10, n)


@pytest.mark.parametrize("preset, shape", [("seed", (12, 12)), ("wide", (12, 12)), ("seed", (13, 11)),
                                           ("lenet", (28, 28))])
def test_preset_gradients(preset, shape):
    """Every parameter array of each preset, on 25 random entries each (the largest arrays are big)."""
    net = build(preset, input_shape=shape, seed=1, dtype="float64")
    rng = np.random.default_rng(2)
    for value in net.parameters().values():
        value[...] += rng.normal(0, 0.1, value.shape)  # nonzero biases
    X, y = images(3, 2, shape)
    _, grads = net.loss_and_gradients(X, y)
    assert set(grads) == set(net.parameters())
    for name, value in net.parameters().items():
        entries = rng.choice(value.size, min(value.size, 25), replace=False)
        numeric = numeric_gradient(lambda: net.loss_and_gradients(X, y)[0], value, entries)
        chosen = np.unravel_index(entries, value.shape)
        assert np.abs(grads[name][chosen]).max() > 0, name
        assert rel_error(grads[name][chosen], numeric[chosen]) < 1e-6, name


@pytest.mark.parametrize("shape", [(28, 28), (13, 10)])
def test_seed_preset_is_convnet(shape):
    net = ConvNet(dtype="float64", seed=4, input_shape=shape)
    stack = build("seed", input_shape=shape, seed=9, dtype="float64")
    stack.layers[0].params["f"][...] = net.f[:, None]  # f (K, k, k) → (K, 1, k, k)
    stack.layers[3].params["W"][...] = net.W.reshape(10, -1)  # W (C, K, H', W') → (C, K·H'·W')
    X, y = images(5, 6, shape)
    np.testing.assert_allclose(stack.forward(X), net.forward(net.prepare(X))[0], rtol=1e-12)
    loss, grads = stack.loss_and_gradients(X, y)
    loss_net, grads_net = net.loss_and_gradients(X, y)
    assert loss == pytest.approx(loss_net, rel=1e-12)
    np.testing.assert_allclose(grads["0.f"], grads_net["f"][:, None], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads["3.W"], grads_net["W"].reshape(10, -1), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(stack.predict_proba(X), net.predict_proba(X), rtol=1e-12)
    assert (stack.predict(X) == net.predict(X)).all()


def test_presets_shapes_and_parameter_names():
    lenet = build("lenet")
    assert [s for s in lenet.shapes] == [(1, 28, 28), (6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10),
                                         (16, 10, 10), (16, 5, 5), (400,), (120,), (120,), (84,), (84,), (10,)]
    assert {k: v.shape for k, v in build("seed").parameters().items()} == {"0.f": (3, 1, 3, 3), "3.W": (10, 588)}
    assert set(build("wide").parameters()) == {"0.f", "4.W", "4.b"}
    assert build("wide").parameters()["0.f"].shape == (32, 1, 5, 5)
    assert lenet.parameters()["0.f"].dtype == np.float32
    assert lenet.spec() == PRESETS["lenet"].replace("dense", "dense:10").replace("dense:10:", "dense:")


def test_initialisation_he_before_relu_uniform_otherwise():
    net = build("conv:64x5,relu,pool:max,flatten,dense:200,dense:300,relu,dense", seed=0, dtype="float64")
    params = net.parameters()
    assert np.abs(params["0.f"]).max() == pytest.approx(np.sqrt(6 / 25), rel=0.02)  # He: before a ReLU
    assert np.abs(params["4.W"]).max() == pytest.approx(1 / np.sqrt(64 * 14 * 14), rel=0.02)  # not before a ReLU
    assert np.abs(params["5.W"]).max() == pytest.approx(np.sqrt(6 / 200), rel=0.02)
    assert not params["0.b"].any() and not params["4.b"].any()
    same = build("conv:64x5,relu,pool:max,flatten,dense:200,dense:300,relu,dense", seed=0, dtype="float64")
    assert all((same.parameters()[k] == v).all() for k, v in params.items())  # same seed, same start


def test_configs_are_json_and_rebuild_the_stack():
    net = build("lenet", input_shape=(30, 30), classes=7)
    config = json.loads(json.dumps(net.config))
    again = Stack([from_config(c) for c in config["layers"]], input_shape=config["input_shape"],
                  classes=config["classes"])
    assert again.spec() == net.spec()
    assert config["layers"][0] == {"type": "conv", "filters": 6, "kernel_size": 5, "padding": "same", "bias": True}
    assert config["layers"][-1] == {"type": "dense", "width": 7, "bias": True}


def test_spec_syntax():
    conv, relu, pool, flat, dense = parse(" conv:4x3:valid-b , relu,pool:avg,flatten,dense:12+b")
    assert conv.config == {"type": "conv", "filters": 4, "kernel_size": 3, "padding": "valid", "bias": False}
    assert isinstance(relu, ReLU) and isinstance(flat, Flatten)
    assert pool.how == "avg" and (dense.width, dense.bias) == (12, True)
    assert parse("conv:2x3:bottom-right-b")[0].config["padding"] == "bottom-right"
    assert parse("dense-b")[0].config == {"type": "dense", "width": None, "bias": False}


@pytest.mark.parametrize("spec, shape, fragments", [
    ("conv:0x3,flatten,dense", (28, 28), ["layer 1 of 3", "'conv:0x3'", "at least 1 filter"]),
    ("convv:3x3,flatten,dense", (28, 28), ["layer 1 of 3", "'convv:3x3'", "unknown layer 'convv'"]),
    ("conv:3x3,pool:median,flatten,dense", (28, 28), ["layer 2 of 4", "'pool:median'", "decimate, max, avg"]),
    ("conv:3x3:left,flatten,dense", (28, 28), ["layer 1 of 3", "padding must be one of"]),
    ("conv:3,flatten,dense", (28, 28), ["layer 1 of 3", "conv:KxK"]),
    ("conv:3x3,,dense", (28, 28), ["layer 2 of 3", "empty layer"]),
    ("relu:2,flatten,dense", (28, 28), ["layer 1 of 3", "relu takes no options"]),
    ("dense:0,dense", (28, 28), ["layer 1 of 2", "width of at least 1"]),
    ("flatten,dense:20,conv:3x3,flatten,dense", (28, 28),
     ["layer 3 of 5", "'conv:3x3'", "needs images", "before flatten"]),
    ("conv:3x3,pool:max,dense", (28, 28), ["layer 3 of 3", "'dense'", "put flatten before it"]),
    ("conv:2x3,pool:max,pool:max,pool:max,flatten,dense", (4, 4), ["layer 4 of 6", "'pool:max'", "2×2", "1×1"]),
    ("conv:4x5:valid,flatten,dense", (4, 9), ["layer 1 of 3", "5×5 filter does not fit in a 4×9 map"]),
    ("flatten,flatten,dense", (28, 28), ["layer 2 of 3", "already a flat vector"]),
    ("conv:3x3,flatten,dense:5", (28, 28), ["layer 3 of 3", "'dense:5'", "10 outputs"]),
    ("conv:3x3,flatten,dense,relu", (28, 28), ["last layer must be dense", "'relu'"]),
    ("", (28, 28), ["preset"]),
])
def test_bad_specs_are_one_line_naming_the_layer(spec, shape, fragments):
    with pytest.raises(ConfigError) as caught:
        build(spec, input_shape=shape)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    for fragment in fragments:
        assert fragment in message, message


def test_bad_inputs_are_refused():
    net = build("seed", input_shape=(12, 12))
    with pytest.raises(ConfigError, match=r"\(N, 12, 12\)"):
        net.forward(np.zeros((2, 12, 13)))
    with pytest.raises(ConfigError, match="labels"):
        net.loss_and_gradients(np.zeros((2, 12, 12)), np.array([0, 10]))
    assert net.predict(np.zeros((3, 12, 12), np.uint8)).shape == (3,)
