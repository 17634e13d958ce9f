"""ConvNet against the same computation written with torch.nn.functional, gradients by autograd."""

from __future__ import annotations

import numpy as np
import pytest

from scratchcnn import ConvNet

torch = pytest.importorskip("torch")
F = torch.nn.functional

POOLS = ("decimate", "max", "avg")
ACTIVATIONS = ("none", "relu")


def batch(seed: int, n: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-like images (about half the pixels exactly 0, the rest in (0, 1]) and labels covering 0..9."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, *shape)) * (rng.random((n, *shape)) > 0.5)
    y = rng.permutation(np.arange(n) % 10)
    return X, y


def randomize(net: ConvNet, seed: int) -> ConvNet:
    """Parameters of order 1 with mixed signs, and a nonzero bias, so every term matters."""
    rng = np.random.default_rng(seed)
    net.f[...] = rng.uniform(-1, 1, net.f.shape)
    net.W[...] = rng.normal(0, 0.3, net.W.shape)
    if net.bias:
        net.b[...] = rng.normal(0, 0.5, 10)
    return net


def torch_oracle(net: ConvNet, X: np.ndarray, y: np.ndarray, dtype) -> tuple[np.ndarray, float, dict[str, np.ndarray]]:
    """Scores A, mean cross-entropy and its gradients for net's parameters, computed by torch."""
    k = net.kernel_size
    H, Wd = net.input_shape
    Hp, Wp = H // 2, Wd // 2
    params = {name: torch.tensor(value, dtype=dtype, requires_grad=True) for name, value in net.parameters().items()}

    x = torch.tensor(net.prepare(X), dtype=dtype)[:, None]  # (N, 1, H, W)
    Y = F.conv2d(F.pad(x, (0, k - 1, 0, k - 1)), params["f"][:, None])  # zero padding bottom/right
    assert Y.shape[2:] == (H, Wd)
    if net.activation == "relu":
        Y = F.relu(Y)
    if net.pool == "decimate":
        Z = Y[:, :, ::2, ::2][:, :, :Hp, :Wp]
    elif net.pool == "max":
        Z = F.max_pool2d(Y, 2)
    else:
        Z = F.avg_pool2d(Y, 2)
    assert Z.shape[2:] == (Hp, Wp)
    A = torch.einsum("nkpq,ckpq->nc", Z, params["W"])
    if net.bias:
        A = A + params["b"]
    L = F.cross_entropy(A, torch.tensor(y, dtype=torch.int64))
    L.backward()
    return A.detach().numpy(), L.item(), {name: p.grad.numpy() for name, p in params.items()}


def assert_close(ours: np.ndarray, theirs: np.ndarray, rtol: float) -> None:
    """Relative to each entry, with an absolute floor relative to the array's largest entry."""
    assert ours.shape == theirs.shape
    scale = max(np.abs(theirs).max(), 1e-300)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale)


def compare(net: ConvNet, X: np.ndarray, y: np.ndarray, dtype, rtol: float) -> None:
    A_t, L_t, grads_t = torch_oracle(net, X, y, dtype)
    A = net.forward(net.prepare(X))[0]
    loss, grads = net.loss_and_gradients(X, y)
    assert_close(A, A_t, rtol)
    assert loss == pytest.approx(L_t, rel=rtol)
    assert set(grads) == set(grads_t) == set(net.parameters())
    for name in grads:
        assert np.abs(grads_t[name]).max() > 0, name  # a vacuous comparison would prove nothing
        assert_close(grads[name], grads_t[name], rtol)
    P = torch.softmax(torch.tensor(A_t), dim=1).numpy()
    assert_close(net.predict_proba(X), P, rtol)


def test_default_network_float64():
    net = ConvNet(dtype="float64", seed=0)  # the initial parameters, as a user would have them
    X, y = batch(0, 8, (28, 28))
    compare(net, X, y, torch.float64, rtol=1e-9)


def test_default_network_float64_uint8_input():
    net = randomize(ConvNet(dtype="float64"), 1)
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (8, 28, 28), dtype=np.uint8)
    y = np.arange(8)
    compare(net, X, y, torch.float64, rtol=1e-9)


def test_nondefault_network_float64():
    net = ConvNet(filters=4, kernel_size=5, pool="max", activation="relu", bias=True, dtype="float64", seed=3)
    randomize(net, 3)
    X, y = batch(3, 8, (28, 28))
    compare(net, X, y, torch.float64, rtol=1e-9)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"filters": 4, "kernel_size": 5, "pool": "max", "activation": "relu", "bias": True}],
    ids=["default", "nondefault"],
)
def test_float32(kwargs):
    net = randomize(ConvNet(**kwargs, dtype="float32", seed=4), 4)
    X, y = batch(4, 8, (28, 28))
    A_t, _, _ = torch_oracle(net, X, y, torch.float32)
    assert net.forward(net.prepare(X))[0].dtype == np.float32
    assert A_t.dtype == np.float32
    compare(net, X, y, torch.float32, rtol=1e-4)


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("pool", POOLS)
def test_every_pool_activation_bias(pool, activation, bias):
    net = ConvNet(pool=pool, activation=activation, bias=bias, dtype="float64", seed=5)
    randomize(net, 5)
    X, y = batch(5, 8, (28, 28))
    compare(net, X, y, torch.float64, rtol=1e-9)


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("pool", POOLS)
def test_odd_input_and_other_kernel_sizes(pool, k):
    net = ConvNet(filters=2, kernel_size=k, pool=pool, activation="relu", bias=True,
                  input_shape=(13, 10), dtype="float64", seed=6)
    randomize(net, 6)
    X, y = batch(6, 8, (13, 10))
    compare(net, X, y, torch.float64, rtol=1e-9)
