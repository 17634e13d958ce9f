"""A Stack trains with the same fit as ConvNet (on the NumPy path): the seed preset step for step like ConvNet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scratchcnn import ConvNet, evaluate, fit, load_dataset
from scratchcnn.nn.spec import build
from scratchcnn.nn.stack import Stack
from scratchcnn.train import sgd


def seed_stack_like(net: ConvNet) -> Stack:
    """The seed preset holding ConvNet's parameters: f (K, k, k) → (K, 1, k, k), W (C, K, H', W') → (C, K·H'·W')."""
    stack = build("seed", input_shape=net.input_shape, classes=net.classes, dtype=net.dtype)
    stack.parameters()["0.f"][...] = net.f[:, None]
    stack.parameters()["3.W"][...] = net.W.reshape(net.classes, -1)
    return stack


def test_the_seed_preset_trains_step_for_step_like_convnet() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 256, (60, 12, 12), dtype=np.uint8), rng.integers(0, 10, 60)
    net = ConvNet(input_shape=(12, 12), dtype="float64", seed=1)
    stack = seed_stack_like(net)
    options = {"learning_rate": 0.05, "epochs": 3, "batch_size": 4, "validation_size": 10, "seed": 2,
               "engine": "numpy"}
    ours, theirs = fit(stack, X, y, **options), fit(net, X, y, **options)
    np.testing.assert_allclose(stack.parameters()["0.f"][:, 0], net.f, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stack.parameters()["3.W"], net.W.reshape(10, -1), rtol=1e-10, atol=1e-12)
    for a, b in zip(ours.epochs, theirs.epochs, strict=True):
        assert np.isclose(a.train_loss, b.train_loss, rtol=1e-10) and a.validation_accuracy == b.validation_accuracy


def test_lenet_learns_mnist_with_fit(data_dir: Path) -> None:
    """The default engine compiles a Stack too (nn/stack_engine.py)."""
    data = load_dataset("mnist", data_dir)
    stack = build("lenet", seed=0)
    history = fit(stack, data.train_images[:2000], data.train_labels[:2000], learning_rate=0.05, epochs=2,
                  batch_size=32, validation_size=0, seed=0)
    assert history.engine == "numba" and len(history.epochs) == 2 and history.stopped is None
    accuracy, loss = evaluate(stack, stack.check_images(data.test_images[:1000]), data.test_labels[:1000].astype(int))
    assert accuracy > 0.8 and np.isfinite(loss)


@pytest.mark.parametrize("optimiser", ["sgd", "adam"])
def test_a_convnet_with_relu_and_max_pooling_trains_on_the_stack_engine(optimiser: str) -> None:
    """`train --arch wide` builds a ConvNet; compiled, it trains as the stack it is (conv → ReLU → max fused),
    equal to the NumPy path in float64, with plain SGD and with an optimiser (gradients keyed "0.f" → "f")."""
    rng = np.random.default_rng(3)
    X, y = rng.integers(0, 256, (40, 12, 12), dtype=np.uint8), rng.integers(0, 10, 40)
    nets = [ConvNet(filters=4, kernel_size=5, activation="relu", pool="max", bias=True, input_shape=(12, 12),
                    dtype="float64", seed=1) for _ in range(2)]
    assert sgd._kernel(nets[0], numba=True, plain=optimiser == "sgd") == "stack"
    options = {"learning_rate": 0.05, "epochs": 2, "batch_size": 3, "validation_size": 5, "seed": 2,
               "optimiser": optimiser}
    compiled, reference = fit(nets[0], X, y, engine="numba", **options), fit(nets[1], X, y, engine="numpy", **options)
    assert compiled.engine == "numba" and reference.engine == "numpy"
    for name, p in nets[1].parameters().items():
        np.testing.assert_allclose(nets[0].parameters()[name], p, rtol=1e-10, atol=1e-12, err_msg=name)
    for a, b in zip(compiled.epochs, reference.epochs, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-10)


def test_the_write_up_network_keeps_its_own_kernel() -> None:
    """The default network stays on nn/engine.py (bit for bit the write-up's runs); an optimiser: NumPy."""
    net = ConvNet()
    assert sgd._kernel(net, numba=True, plain=True) == "seed"
    assert sgd._kernel(net, numba=True, plain=False) is None
    assert sgd._kernel(net, numba=False, plain=True) is None
