"""ConvNet's interface: shapes, dtypes and probabilities, input validation of the constructor, predict
and loss_and_gradients, the initial parameters and their seeds, and any number of classes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from helpers import NON_DEFAULT, images

from scratchcnn import ConvNet
from scratchcnn.errors import ConfigError, ModelFileError

# ---- shapes, dtypes, probabilities ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"filters": 4, "kernel_size": 5, "bias": True},
        {"filters": 1, "kernel_size": 1, "input_shape": (7, 9), "pool": "max"},
        {"filters": 2, "kernel_size": 2, "input_shape": (2, 3), "pool": "avg", "bias": True, "dtype": "float64"},
    ],
    ids=["default", "K4k5bias", "odd7x9", "tiny2x3"],
)
def test_shapes_and_dtypes(kwargs):
    net = ConvNet(**kwargs)
    K, k = kwargs.get("filters", 3), kwargs.get("kernel_size", 3)
    H, Wd = kwargs.get("input_shape", (28, 28))
    dtype = np.dtype(kwargs.get("dtype", "float32"))
    bias = kwargs.get("bias", False)

    assert net.f.shape == (K, k, k)
    assert net.W.shape == (10, K, H // 2, Wd // 2)
    assert net.pooled_shape == (H // 2, Wd // 2)
    expected_names = {"f", "W", "b"} if bias else {"f", "W"}
    assert set(net.parameters()) == expected_names
    if bias:
        assert net.b.shape == (10,)
    else:
        assert not hasattr(net, "b")
    for value in net.parameters().values():
        assert value.dtype == dtype

    rng = np.random.default_rng(0)
    X = images(rng, 5, (H, Wd))
    y = rng.integers(0, 10, 5)
    loss, grads = net.loss_and_gradients(X, y)
    assert isinstance(loss, float) and np.isfinite(loss)
    assert set(grads) == expected_names
    for name, value in net.parameters().items():
        assert grads[name].shape == value.shape
        assert grads[name].dtype == dtype

    A = net.forward(net.prepare(X))[0]
    assert A.shape == (5, 10) and A.dtype == dtype
    P = net.predict_proba(X)
    assert P.shape == (5, 10) and P.dtype == dtype
    assert (P >= 0).all()
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-6 if dtype == np.float32 else 1e-12)
    pred = net.predict(X)
    assert pred.shape == (5,) and np.issubdtype(pred.dtype, np.integer)
    np.testing.assert_array_equal(pred, P.argmax(axis=1))
    np.testing.assert_array_equal(pred, A.argmax(axis=1))


def test_default_is_float32_and_float64_on_request():
    assert ConvNet().dtype == "float32"
    assert ConvNet().f.dtype == np.float32
    assert ConvNet(dtype="float64").W.dtype == np.float64
    assert ConvNet(dtype=np.float64).dtype == "float64"
    X = np.full((1, 28, 28), 0.5)
    assert ConvNet().prepare(X).dtype == np.float32
    assert ConvNet(dtype="float64").prepare(X).dtype == np.float64


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uint8_input_equals_float_input_divided_by_255(dtype):
    net = ConvNet(dtype=dtype, bias=True, pool="max", activation="relu")
    rng = np.random.default_rng(5)
    Xu = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    Xu[0, 0, :] = np.arange(28)
    Xu[0, 1, :] = 255
    Xf = Xu / 255.0
    np.testing.assert_array_equal(net.prepare(Xu), net.prepare(Xf))
    np.testing.assert_array_equal(net.predict_proba(Xu), net.predict_proba(Xf))
    np.testing.assert_array_equal(net.predict(Xu), net.predict(Xf))
    y = rng.integers(0, 10, 6)
    lu, gu = net.loss_and_gradients(Xu, y)
    lf, gf = net.loss_and_gradients(Xf, y)
    assert lu == lf
    for name in gu:
        np.testing.assert_array_equal(gu[name], gf[name])


def test_predict_in_chunks_equals_one_pass(monkeypatch):
    net = ConvNet(pool="avg", bias=True, dtype="float64")
    X = images(np.random.default_rng(2), 10, (28, 28))
    whole = net.forward(net.prepare(X))[0]
    monkeypatch.setattr(ConvNet, "chunk", 3)
    np.testing.assert_allclose(net.scores(net.prepare(X)), whole, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(net.predict(X), whole.argmax(axis=1))
    assert net.predict_proba(X[:0]).shape == (0, 10)


def test_loss_of_uniform_scores_is_ln10():
    net = ConvNet(bias=True, dtype="float64")
    net.W[...] = 0
    X = images(np.random.default_rng(0), 3, (28, 28))
    loss, grads = net.loss_and_gradients(X, [0, 5, 9])
    assert loss == pytest.approx(math.log(10), rel=1e-12)
    np.testing.assert_allclose(net.predict_proba(X), 0.1, rtol=1e-12)
    np.testing.assert_allclose(grads["b"], 0.1 - np.bincount([0, 5, 9], minlength=10) / 3, atol=1e-15)


# ---- input validation -----------------------------------------------------------------------------


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
    assert issubclass(ModelFileError, ValueError)


@pytest.mark.parametrize(
    ("shape", "needle"),
    [
        ((2, 27, 28), "(N, 28, 28)"),
        ((2, 28, 28, 1), "(N, 28, 28)"),
        ((784,), "(N, 28, 28)"),
        ((2, 784), "(N, 28, 28)"),
        ((), "(N, 28, 28)"),
    ],
)
def test_wrong_image_shape(shape, needle):
    net = ConvNet()
    with pytest.raises(ConfigError) as info:
        net.predict(np.zeros(shape))
    assert needle in str(info.value)
    assert str(shape) in str(info.value)
    assert "X[None]" not in str(info.value)


def test_single_image_hints_at_x_none():
    net = ConvNet()
    with pytest.raises(ConfigError, match=r"X\[None\]"):
        net.predict(np.zeros((28, 28)))
    with pytest.raises(ConfigError, match=r"X\[None\]"):
        net.loss_and_gradients(np.zeros((28, 28)), [3])
    assert net.predict(np.zeros((28, 28))[None]).shape == (1,)


def test_transposed_image_shape_refused():
    net = ConvNet(input_shape=(7, 9))
    with pytest.raises(ConfigError, match=r"\(N, 7, 9\)"):
        net.predict(np.zeros((1, 9, 7)))


@pytest.mark.parametrize(
    ("value", "needle"),
    [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite"), (-0.1, "[0, 1]"), (1.5, "[0, 1]"), (255.0, "255")],
)
def test_bad_pixel_values(value, needle):
    net = ConvNet()
    X = np.full((2, 28, 28), 0.5)
    X[1, 3, 4] = value
    for call in (net.predict, net.predict_proba, lambda X: net.loss_and_gradients(X, [0, 1])):
        with pytest.raises(ConfigError) as info:
            call(X)
        assert needle in str(info.value)


def test_boundary_pixel_values_accepted():
    net = ConvNet()
    X = np.zeros((2, 28, 28))
    X[1] = 1.0
    assert net.predict(X).shape == (2,)
    assert net.predict(X.astype(np.int64)).shape == (2,)  # integers 0 and 1 are fine


@pytest.mark.parametrize(
    "X",
    [
        np.zeros((1, 28, 28), dtype=bool),
        np.zeros((1, 28, 28), dtype=complex),
        np.full((1, 28, 28), "a"),
        np.full((1, 28, 28), None, dtype=object),
    ],
    ids=["bool", "complex", "str", "object"],
)
def test_non_numeric_images_refused(X):
    with pytest.raises(ConfigError, match="uint8 or real numbers"):
        ConvNet().predict(X)


@pytest.mark.parametrize(
    ("y", "needle"),
    [
        ([0, 1, 10], "0..9"),
        ([0, -1, 2], "0..9"),
        ([0, 1], "expected 3 labels"),
        ([0, 1, 2, 3], "expected 3 labels"),
        ([[0, 1, 2]], "expected 3 labels"),
        (5, "expected 3 labels"),
        ([0.0, 1.0, 2.0], "integers"),
        ([0, 1.5, 2], "integers"),
        (["0", "1", "2"], "integers"),
        ([True, False, True], "integers"),
    ],
)
def test_bad_labels(y, needle):
    X = np.zeros((3, 28, 28))
    with pytest.raises(ConfigError) as info:
        ConvNet().loss_and_gradients(X, y)
    assert needle in str(info.value)


def test_good_labels_of_any_integer_dtype():
    X = images(np.random.default_rng(0), 3, (28, 28))
    net = ConvNet(dtype="float64")
    ref = net.loss_and_gradients(X, [0, 9, 4])[0]
    for dt in (np.uint8, np.int16, np.int32, np.int64, np.uint64):
        assert net.loss_and_gradients(X, np.array([0, 9, 4], dtype=dt))[0] == ref


@pytest.mark.parametrize(
    ("kwargs", "needles"),
    [
        ({"filters": 0}, ["filters", "whole number ≥ 1", "0"]),
        ({"filters": -3}, ["filters", "whole number ≥ 1"]),
        ({"filters": 2.5}, ["filters", "2.5"]),
        ({"filters": True}, ["filters"]),
        ({"filters": "3"}, ["filters"]),
        ({"kernel_size": -1}, ["kernel_size", "whole number ≥ 1", "-1"]),
        ({"kernel_size": 0}, ["kernel_size"]),
        ({"pool": "median"}, ["pool", "decimate", "max", "avg", "median"]),
        ({"activation": "tanh"}, ["activation", "none", "relu", "tanh"]),
        ({"dtype": "int8"}, ["dtype", "float32", "float64", "int8"]),
        ({"dtype": "nonsense"}, ["dtype", "float32"]),
        ({"dtype": "float16"}, ["dtype", "float16"]),
        ({"input_shape": (1, 5)}, ["input_shape", "(1, 5)"]),
        ({"input_shape": (5, 1)}, ["input_shape"]),
        ({"input_shape": (28,)}, ["input_shape"]),
        ({"input_shape": (28, 28, 1)}, ["input_shape"]),
        ({"input_shape": 28}, ["input_shape"]),
        ({"input_shape": "28"}, ["input_shape"]),
        ({"input_shape": None}, ["input_shape"]),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else "",
)
def test_bad_constructor_arguments(kwargs, needles):
    with pytest.raises(ConfigError) as info:
        ConvNet(**kwargs)
    for needle in needles:
        assert needle in str(info.value)


@pytest.mark.parametrize("value", ["28", (2.7, 3), (28, 28.0), (True, 5), ("28", "28"), {28: 28}], ids=repr)
def test_input_shape_must_be_two_whole_numbers(value):
    """Once a bug: "28" was read as (2, 8) and 2.7 truncated to 2."""
    with pytest.raises(ConfigError, match="input_shape"):
        ConvNet(input_shape=value)


def test_good_constructor_arguments():
    net = ConvNet(filters=np.int64(2), kernel_size=1, input_shape=[2, np.int32(2)], dtype=np.dtype("float64"))
    assert net.filters == 2 and isinstance(net.filters, int)
    assert net.input_shape == (2, 2)
    assert net.config == {
        "filters": 2, "kernel_size": 1, "pool": "decimate", "activation": "none", "bias": False,
        "input_shape": [2, 2], "dtype": "float64", "classes": 10,
    }


# ---- determinism and initial parameters -----------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, NON_DEFAULT], ids=["default", "nondefault"])
def test_same_seed_same_parameters(kwargs):
    a, b = ConvNet(**kwargs, seed=42), ConvNet(**kwargs, seed=42)
    for name in a.parameters():
        assert a.parameters()[name].tobytes() == b.parameters()[name].tobytes()


@pytest.mark.parametrize("kwargs", [{}, NON_DEFAULT], ids=["default", "nondefault"])
def test_different_seed_different_parameters(kwargs):
    a, b = ConvNet(**kwargs, seed=1), ConvNet(**kwargs, seed=2)
    assert not np.array_equal(a.f, b.f)
    assert not np.array_equal(a.W, b.W)


def test_seed_none_is_random_and_parameters_are_scaled():
    a, b = ConvNet(seed=None), ConvNet(seed=None)
    assert not np.array_equal(a.W, b.W)
    for net in (a, b, ConvNet(kernel_size=5, filters=4)):
        k = net.kernel_size
        assert np.abs(net.f).max() <= 1 / k
        assert np.abs(net.W).max() <= 1 / math.sqrt(net.W[0].size)
        assert len(np.unique(net.W)) > net.W.size // 2


def test_parameter_pairs_independent():
    """No two filters start equal, or their gradients would stay equal forever."""
    net = ConvNet(filters=4)
    for i, j in itertools.combinations(range(4), 2):
        assert not np.array_equal(net.f[i], net.f[j])


# ---- number of classes ----------------------------------------------------------------------------


@pytest.mark.parametrize("classes", [2, 3, 26])
def test_any_number_of_classes(classes):
    """The output layer has C rows: W (C, K, H', W'), b (C,), P (N, C); gradients still exact."""
    rng = np.random.default_rng(classes)
    net = ConvNet(classes=classes, bias=True, input_shape=(6, 7), dtype="float64", seed=1)
    assert net.W.shape == (classes, 3, 3, 3) and net.b.shape == (classes,)
    X, y = rng.uniform(size=(4, 6, 7)), rng.integers(0, classes, 4)
    assert net.predict_proba(X).shape == (4, classes)
    _loss, grads = net.loss_and_gradients(X, y)
    W = net.W
    numeric = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        old = W[idx]
        W[idx] = old + 1e-6
        up, _ = net.loss_and_gradients(X, y)
        W[idx] = old - 1e-6
        down, _ = net.loss_and_gradients(X, y)
        W[idx] = old
        numeric[idx] = (up - down) / 2e-6
    assert np.abs(numeric - grads["W"]).max() / np.abs(numeric).max() < 1e-6
    with pytest.raises(ConfigError, match="labels"):
        net.loss_and_gradients(X, np.full(4, classes))


def test_one_class_is_refused():
    with pytest.raises(ConfigError, match="classes"):
        ConvNet(classes=1)
