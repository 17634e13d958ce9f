"""ConvNet: gradients against finite differences, forward pass against a naive loop implementation,
shapes and dtypes, input validation, model files and determinism."""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import zipfile
import zlib

import numpy as np
import pytest

import scratchcnn.nn.model
from scratchcnn import ConvNet
from scratchcnn.errors import ConfigError, ModelFileError

POOLS = ("decimate", "max", "avg")
ACTIVATIONS = ("none", "relu")
KERNEL_SIZES = (1, 2, 3, 5)
TINY = 1e-300


# ---- helpers -----------------------------------------------------------------------------------


def images(rng: np.random.Generator, n: int, shape: tuple[int, int], sparse: bool = False) -> np.ndarray:
    """Float images in [0, 1]; ``sparse`` zeroes about half the pixels, as in MNIST."""
    X = rng.random((n, *shape))
    if sparse:
        X *= rng.random((n, *shape)) > 0.5
    return X


def rel_err(num: np.ndarray, ana: np.ndarray) -> float:
    scale = max(np.abs(num).max(), np.abs(ana).max(), TINY)
    return float(np.abs(num - ana).max() / scale)


def numeric_gradient(net: ConvNet, X: np.ndarray, y: np.ndarray, name: str, indices, h: float = 1e-6) -> np.ndarray:
    """Central differences of the loss with respect to net.<name>[index] for each index."""
    param = net.parameters()[name]
    out = np.empty(len(indices))
    for i, index in enumerate(indices):
        old = param[index]
        param[index] = old + h
        plus = net.loss_and_gradients(X, y)[0]
        param[index] = old - h
        minus = net.loss_and_gradients(X, y)[0]
        param[index] = old
        out[i] = (plus - minus) / (2 * h)
    return out


def all_indices(a: np.ndarray) -> list[tuple[int, ...]]:
    return list(np.ndindex(a.shape))


def small_net(pool: str, activation: str, bias: bool, k: int, shape: tuple[int, int], seed: int = 1) -> ConvNet:
    """A float64 two-filter network with O(1) parameters: filter 0 is positive (alive under ReLU),
    filter 1 has mixed signs (negative for k = 1) so that ReLU clips some positions and not others."""
    net = ConvNet(
        filters=2, kernel_size=k, pool=pool, activation=activation, bias=bias,
        input_shape=shape, dtype="float64", seed=seed,
    )
    rng = np.random.default_rng(100 + seed)
    f = rng.uniform(-1, 1, (2, k, k))
    f[0] = np.abs(f[0]) + 0.1
    if k == 1:
        f[1] = -np.abs(f[1]) - 0.1
    net.f[...] = f
    net.W[...] = rng.normal(0, 0.7, net.W.shape)
    if bias:
        net.b[...] = rng.normal(0, 0.5, 10)
    return net


# ---- 1. gradients against central finite differences ----------------------------------------------


def test_gradient_check_default_network():
    net = ConvNet(dtype="float64", seed=0)
    rng = np.random.default_rng(7)
    X = images(rng, 4, (28, 28), sparse=True)
    y = rng.integers(0, 10, 4)
    _, grads = net.loss_and_gradients(X, y)

    f_idx = all_indices(net.f)
    num_f = numeric_gradient(net, X, y, "f", f_idx)
    ana_f = np.array([grads["f"][i] for i in f_idx])
    assert np.abs(ana_f).max() > 0
    assert rel_err(num_f, ana_f) < 1e-6

    flat = rng.choice(net.W.size, 60, replace=False)
    W_idx = [np.unravel_index(i, net.W.shape) for i in flat]
    num_W = numeric_gradient(net, X, y, "W", W_idx)
    ana_W = np.array([grads["W"][i] for i in W_idx])
    assert np.abs(ana_W).max() > 0
    assert rel_err(num_W, ana_W) < 1e-6


@pytest.mark.parametrize("shape", [(7, 9), (8, 8)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("k", KERNEL_SIZES, ids=lambda k: f"k{k}")
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("pool", POOLS)
def test_gradient_check_every_combination(pool, activation, bias, k, shape):
    net = small_net(pool, activation, bias, k, shape)
    rng = np.random.default_rng(zlib.crc32(repr((pool, activation, bias, k, shape)).encode()))
    X = images(rng, 3, shape)
    y = np.array([0, 3, 9])

    if activation == "relu":  # ReLU must be neither dead everywhere nor the identity everywhere
        Y = net.forward(net.prepare(X))[1]["Y"]
        assert (Y > 0).any() and (Y < 0).any()

    loss, grads = net.loss_and_gradients(X, y)
    assert np.isfinite(loss)
    assert set(grads) == set(net.parameters())
    assert np.abs(grads["f"]).max() > 0, "gradient of f is all zero: the check would be vacuous"
    for name, param in net.parameters().items():
        idx = all_indices(param)
        num = numeric_gradient(net, X, y, name, idx)
        ana = np.array([grads[name][i] for i in idx])
        assert rel_err(num, ana) < 1e-6, name


def test_gradient_check_detects_a_wrong_gradient():
    """The checker itself can fail: a gradient off by a small amount is caught."""
    net = small_net("max", "relu", True, 3, (7, 9))
    rng = np.random.default_rng(3)
    X = images(rng, 3, (7, 9))
    y = np.array([1, 2, 3])
    _, grads = net.loss_and_gradients(X, y)
    idx = all_indices(net.f)
    num = numeric_gradient(net, X, y, "f", idx)
    ana = np.array([grads["f"][i] for i in idx])
    assert rel_err(num, ana) < 1e-6
    assert rel_err(num, ana * (1 + 1e-4)) > 1e-6


# ---- 2. forward pass against a naive implementation written with loops ---------------------------


def naive_forward(X, f, W, b, pool: str, activation: str) -> list[list[float]]:
    """The write-up's equations with explicit loops: zero padding k−1 at the bottom/right,
    Y_k(i, j) = Σ_a Σ_b X(i+a, j+b) f_k(a, b), activation, 2×2 pooling (H' = H // 2), A = W Z + b."""
    N, H, Wd = X.shape
    K, k, _ = f.shape
    Hp, Wp = H // 2, Wd // 2

    def x_at(n, i, j):
        return float(X[n, i, j]) if i < H and j < Wd else 0.0  # padding below and to the right

    A = []
    for n in range(N):
        Z = [[[0.0] * Wp for _ in range(Hp)] for _ in range(K)]
        for kk in range(K):
            Y = [[0.0] * Wd for _ in range(H)]
            for i in range(H):
                for j in range(Wd):
                    s = 0.0
                    for a in range(k):
                        for c in range(k):
                            s += x_at(n, i + a, j + c) * float(f[kk, a, c])
                    Y[i][j] = max(s, 0.0) if activation == "relu" else s
            for p in range(Hp):
                for q in range(Wp):
                    window = [Y[2 * p][2 * q], Y[2 * p][2 * q + 1], Y[2 * p + 1][2 * q], Y[2 * p + 1][2 * q + 1]]
                    if pool == "decimate":
                        Z[kk][p][q] = Y[2 * p][2 * q]
                    elif pool == "max":
                        Z[kk][p][q] = max(window)
                    else:
                        Z[kk][p][q] = sum(window) / 4
        row = []
        for cls in range(10):
            s = float(b[cls]) if b is not None else 0.0
            for kk in range(K):
                for p in range(Hp):
                    for q in range(Wp):
                        s += float(W[cls, kk, p, q]) * Z[kk][p][q]
            row.append(s)
        A.append(row)
    return A


def naive_softmax(row: list[float]) -> list[float]:
    m = max(row)
    e = [math.exp(a - m) for a in row]
    total = sum(e)
    return [v / total for v in e]


@pytest.mark.parametrize("shape", [(7, 9), (8, 8), (5, 6)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("k", KERNEL_SIZES, ids=lambda k: f"k{k}")
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("pool", POOLS)
def test_forward_matches_naive_loops(pool, activation, bias, k, shape):
    net = small_net(pool, activation, bias, k, shape, seed=2)
    rng = np.random.default_rng(11)
    X = images(rng, 2, shape)
    y = np.array([4, 7])

    A_ref = np.array(naive_forward(X, net.f, net.W, net.b if bias else None, pool, activation))
    P_ref = np.array([naive_softmax(row) for row in A_ref])
    L_ref = -np.mean([math.log(P_ref[n, y[n]]) for n in range(len(y))])

    A = net.forward(net.prepare(X))[0]
    assert A.shape == (2, 10)
    np.testing.assert_allclose(A, A_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net.predict_proba(X), P_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(net.predict(X), A_ref.argmax(axis=1))
    assert net.loss_and_gradients(X, y)[0] == pytest.approx(L_ref, rel=1e-12)


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        # Y(0,0) = a + 10b + 100c + 1000d, Y(0,1) = b + 100d, Y(1,0) = c + 10d, Y(1,1) = d
        ("decimate", 1 + 20 + 300 + 4000),
        ("max", 1 + 20 + 300 + 4000),
        ("avg", (4321 + (2 + 400) + (3 + 40) + 4) / 4),
    ],
)
def test_forward_by_hand_padding_is_bottom_right(pool, expected):
    """A 2×2 image [[1, 2], [3, 4]] and the 2×2 filter [[1, 10], [100, 1000]], worked by hand."""
    net = ConvNet(filters=1, kernel_size=2, pool=pool, input_shape=(2, 2), dtype="float64")
    net.f[...] = [[[1, 10], [100, 1000]]]
    net.W[...] = 0
    net.W[0, 0, 0, 0] = 1
    net.W[1, 0, 0, 0] = -2
    X = np.array([[[1, 2], [3, 4]]], dtype=np.float64) / 10
    A = net.forward(net.prepare(X))[0]
    assert A[0, 0] == pytest.approx(expected / 10, rel=1e-12)
    assert A[0, 1] == pytest.approx(-2 * expected / 10, rel=1e-12)
    np.testing.assert_array_equal(A[0, 2:], 0)


def test_forward_odd_size_drops_last_row_and_column():
    """For a 5×5 image the pooled map is 2×2: the last row and column of Y do not reach A."""
    for pool in POOLS:
        net = ConvNet(filters=1, kernel_size=1, pool=pool, input_shape=(5, 5), dtype="float64")
        net.f[...] = 1
        net.W[...] = 1
        X = np.zeros((1, 5, 5))
        X[0, 4, :] = 1
        X[0, :, 4] = 1
        np.testing.assert_array_equal(net.forward(net.prepare(X))[0], 0)
        X[0, 3, 3] = 1  # inside the last window that is kept
        assert net.forward(net.prepare(X))[0][0, 0] == (1 if pool == "max" else 0.25 if pool == "avg" else 0)


# ---- 3. shapes, dtypes, probabilities ------------------------------------------------------------


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
    monkeypatch.setattr(scratchcnn.nn.model, "PREDICT_CHUNK", 3)
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


# ---- 4. input validation ---------------------------------------------------------------------------


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


# ---- 5. model files --------------------------------------------------------------------------------

NON_DEFAULT = {
    "filters": 4, "kernel_size": 5, "pool": "max", "activation": "relu", "bias": True,
    "input_shape": (12, 11), "dtype": "float64",
}


@pytest.mark.parametrize("kwargs", [{}, NON_DEFAULT], ids=["default", "nondefault"])
def test_save_load_round_trip(tmp_path, kwargs):
    net = ConvNet(**kwargs, seed=3)
    if net.bias:
        net.b[...] = np.random.default_rng(0).normal(size=10)
    net.dataset = "mnist"
    path = net.save(tmp_path / "model.npz")
    assert path == tmp_path / "model.npz"
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # atomic: no temporary file left behind

    loaded = ConvNet.load(path)
    assert loaded.config == net.config
    assert loaded.dataset == "mnist"
    assert set(loaded.parameters()) == set(net.parameters())
    for name, value in net.parameters().items():
        got = loaded.parameters()[name]
        assert got.dtype == value.dtype and got.shape == value.shape
        assert got.tobytes() == value.tobytes()
    X = images(np.random.default_rng(1), 6, net.input_shape)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))

    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {*net.parameters(), "header"}
        header = json.loads(str(npz["header"]))
        for name in net.parameters():
            np.testing.assert_array_equal(npz[name], net.parameters()[name])
    assert header["format"] == "scratchcnn.ConvNet"
    assert header["config"] == net.config


def test_save_overwrites_and_string_path(tmp_path):
    first, second = ConvNet(seed=1), ConvNet(seed=2)
    path = str(tmp_path / "m.npz")
    first.save(path)
    second.save(path)
    assert ConvNet.load(path).f.tobytes() == second.f.tobytes()
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_save_failure_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    ConvNet(seed=1).save(path)
    before = path.read_bytes()

    def broken_savez(fh, **arrays):
        fh.write(b"PK half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        ConvNet(seed=2).save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_save_creates_parent_directories(tmp_path):
    path = ConvNet().save(tmp_path / "a" / "b" / "m.npz")
    assert ConvNet.load(path).config == ConvNet().config


def good_header(**config_changes) -> dict:
    net = ConvNet()
    header = net.header()
    header["config"].update(config_changes)
    return header


def write_npz(path, header, /, **arrays) -> None:
    """Write an .npz by hand: the arrays, plus a header array holding ``header`` (str → as is, dict → JSON)."""
    if header is not None:
        assert "header" not in arrays
        arrays["header"] = np.array(header if isinstance(header, str) else json.dumps(header))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def default_arrays() -> dict[str, np.ndarray]:
    net = ConvNet()
    return {"f": net.f, "W": net.W}


def assert_refused(path, *needles):
    with pytest.raises(ModelFileError) as info:
        ConvNet.load(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def test_hand_written_good_file_loads(tmp_path):
    """The control for the refusals below: write_npz with the right header and arrays is accepted."""
    path = tmp_path / "m.npz"
    write_npz(path, good_header(), **default_arrays())
    assert ConvNet.load(path).f.tobytes() == ConvNet().f.tobytes()


def test_load_missing_file(tmp_path):
    assert_refused(tmp_path / "nope.npz", "no such model file")


def test_load_directory(tmp_path):
    assert_refused(tmp_path, "directory")


def test_load_single_npy_file(tmp_path):
    path = tmp_path / "m.npy"
    np.save(path, ConvNet().f)
    assert_refused(path, "not a scratchcnn model file")


@pytest.mark.parametrize(
    "content", [b"", b"hello, this is not a zip file\n" * 10, b"PK\x03\x04garbage", b"\x93NUMPY"], ids=repr
)
def test_load_garbage(tmp_path, content):
    path = tmp_path / "garbage.npz"
    path.write_bytes(content)
    assert_refused(path, "not a scratchcnn model file")


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.99])
def test_load_truncated(tmp_path, fraction):
    good = ConvNet().save(tmp_path / "good.npz").read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(good[: int(len(good) * fraction)])
    assert_refused(path, "not a scratchcnn model file")


def test_load_corrupted_byte_in_array(tmp_path):
    path = ConvNet().save(tmp_path / "m.npz")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # inside W's data: the zip CRC no longer matches
    path.write_bytes(bytes(raw))
    assert_refused(path, "not a scratchcnn model file")


def test_load_npz_without_header(tmp_path):
    path = tmp_path / "m.npz"
    write_npz(path, None, **default_arrays())
    assert_refused(path, "no scratchcnn header")


@pytest.mark.parametrize(
    "header",
    [np.array([1, 2, 3]), np.array(b"{}"), np.array(["{}", "{}"]), np.array(3.0)],
    ids=["ints", "bytes", "two-strings", "float"],
)
def test_load_header_of_wrong_kind(tmp_path, header):
    path = tmp_path / "m.npz"
    write_npz(path, None, header=header, **default_arrays())
    assert_refused(path, "no scratchcnn header")


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        ("not json {", "not valid JSON"),
        ("[1, 2]", "not a scratchcnn.ConvNet file"),
        ({"format": "something.Else", "format_version": 1, "config": {}}, "not a scratchcnn.ConvNet file"),
        ({"format_version": 1, "config": {}}, "not a scratchcnn.ConvNet file"),
        ({"format": "scratchcnn.ConvNet", "format_version": 2, "config": {}}, "version 2"),
        ({"format": "scratchcnn.ConvNet", "config": {}}, "version None"),
        ({"format": "scratchcnn.ConvNet", "format_version": 1}, "has no config"),
        ({"format": "scratchcnn.ConvNet", "format_version": 1, "config": [3]}, "has no config"),
    ],
    ids=["json", "list", "format", "no-format", "version", "no-version", "no-config", "config-list"],
)
def test_load_header_wrong_format(tmp_path, header, needle):
    path = tmp_path / "m.npz"
    write_npz(path, header, **default_arrays())
    assert_refused(path, needle)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"pool": "median"}, "bad configuration in header"),
        ({"filters": 0}, "bad configuration in header"),
        ({"unknown_option": 1}, "bad configuration in header"),
        ({"seed": 5}, "bad configuration in header"),
    ],
)
def test_load_header_bad_config(tmp_path, changes, needle):
    path = tmp_path / "m.npz"
    write_npz(path, good_header(**changes), **default_arrays())
    assert_refused(path, needle)


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        ({"filters": 4}, ["array f", "(3, 3, 3)", "(4, 3, 3)"]),
        ({"kernel_size": 5}, ["array f", "(3, 5, 5)"]),
        ({"input_shape": [26, 28]}, ["array W", "(10, 3, 13, 14)"]),
        ({"dtype": "float64"}, ["float32", "float64"]),
    ],
)
def test_load_header_disagrees_with_arrays(tmp_path, changes, needles):
    path = tmp_path / "m.npz"
    write_npz(path, good_header(**changes), **default_arrays())
    assert_refused(path, *needles)


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("name", ["f", "W"])
def test_load_array_not_finite(tmp_path, name, value):
    arrays = default_arrays()
    arrays[name] = arrays[name].copy()
    arrays[name].flat[3] = value
    path = tmp_path / "m.npz"
    write_npz(path, good_header(), **arrays)
    assert_refused(path, f"array {name}", "NaN or infinite")


UNPICKLED = []


def _record_unpickling(tag):
    UNPICKLED.append(tag)
    return tag


class Booby:
    """Records it if anyone unpickles it: load must never run pickled code."""

    def __reduce__(self):
        return (_record_unpickling, ("ran",))


def test_load_refuses_pickled_object_array(tmp_path):
    arrays = default_arrays()
    arrays["f"] = np.array([Booby()] * 27, dtype=object).reshape(3, 3, 3)
    path = tmp_path / "m.npz"
    write_npz(path, good_header(), **arrays)
    message = assert_refused(path, "not a scratchcnn model file")
    assert "pickle" in message
    assert UNPICKLED == []


def test_load_refuses_pickled_header(tmp_path):
    path = tmp_path / "m.npz"
    write_npz(path, None, header=np.array(Booby(), dtype=object), **default_arrays())
    assert_refused(path, "pickle")
    assert UNPICKLED == []


@pytest.mark.parametrize(
    ("arrays", "header_changes"),
    [
        ({"extra": np.zeros(3, np.float32)}, {}),
        ({"b": np.zeros(10, np.float32)}, {}),
        ({"W": None}, {}),
        ({"f": None}, {}),
        ({}, {"bias": True}),
    ],
    ids=["extra", "unexpected-b", "missing-W", "missing-f", "missing-b"],
)
def test_load_extra_or_missing_arrays(tmp_path, arrays, header_changes):
    base = default_arrays()
    for name, value in arrays.items():
        if value is None:
            del base[name]
        else:
            base[name] = value
    path = tmp_path / "m.npz"
    write_npz(path, good_header(**header_changes), **base)
    assert_refused(path, "holds arrays", "header needs")


def _zip_with_raw_members(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_load_zip_whose_header_is_not_npy(tmp_path):
    """Once a bug: np.load hands back bytes for a member that is not .npy, and load raised AttributeError."""
    path = tmp_path / "m.npz"
    _zip_with_raw_members(path, {"header": b"hello", "f.npy": _npy_bytes(ConvNet().f)})
    assert_refused(path, "header")


def test_load_zip_whose_array_is_not_npy(tmp_path):
    net = ConvNet()
    path = tmp_path / "m.npz"
    _zip_with_raw_members(
        path,
        {
            "header.npy": _npy_bytes(np.array(json.dumps(net.header()))),
            "f.npy": b"garbage",
            "W.npy": _npy_bytes(net.W),
        },
    )
    assert_refused(path, "'f'")


def test_loaded_parameters_are_writable_and_trainable(tmp_path):
    net = ConvNet(bias=True)
    loaded = ConvNet.load(net.save(tmp_path / "m.npz"))
    for value in loaded.parameters().values():
        assert value.flags.writeable
        value -= 0.01  # an in-place SGD step must work
    assert not np.array_equal(loaded.f, net.f)


# ---- 6. determinism --------------------------------------------------------------------------------


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
