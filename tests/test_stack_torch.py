"""The layer stack against the same layers written with torch.nn.functional, gradients by autograd (float64)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import skip_or_fail
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scratchcnn.errors import ConfigError
from scratchcnn.nn.spec import PRESETS, build
from scratchcnn.nn.stack import Stack

try:
    import torch
except ImportError:  # pragma: no cover - CI installs torch
    torch = None
else:
    F = torch.nn.functional


@pytest.fixture(autouse=True)
def _needs_torch() -> None:
    if torch is None:
        skip_or_fail("PyTorch is not installed")


def torch_layer(config: dict, x, params: dict):
    """One layer of the stack, from its config, in torch."""
    kind = config["type"]
    if kind == "conv":
        k = config["kernel_size"]
        if config["padding"] == "bottom-right":
            x = F.pad(x, (0, k - 1, 0, k - 1))  # the write-up: k−1 zeros right and below
        elif config["padding"] == "same":
            before = (k - 1) // 2
            x = F.pad(x, (before, k - 1 - before, before, k - 1 - before))
        return F.conv2d(x, params["f"], params.get("b"))
    if kind == "relu":
        return F.relu(x)
    if kind == "pool":
        if config["how"] == "decimate":
            return x[:, :, : x.shape[2] // 2 * 2 : 2, : x.shape[3] // 2 * 2 : 2]
        return F.max_pool2d(x, 2) if config["how"] == "max" else F.avg_pool2d(x, 2)
    if kind == "flatten":
        return x.flatten(1)
    return F.linear(x, params["W"], params.get("b"))


def compare(net: Stack, seed: int, n: int = 4) -> None:
    """Logits, loss and every parameter's gradient equal autograd's to 1e-9, relative."""
    rng = np.random.default_rng(seed)
    for value in net.parameters().values():
        value[...] += rng.normal(0, 0.1, value.shape)  # nonzero biases, so they count
    X = rng.random((n, *net.input_shape)) * (rng.random((n, *net.input_shape)) > 0.5)
    y = rng.integers(0, net.classes, n)
    tensors = {name: torch.tensor(value, requires_grad=True) for name, value in net.parameters().items()}
    x = torch.tensor(X)[:, None]
    for i, layer in enumerate(net.layers):
        x = torch_layer(layer.config, x, {name: tensors[f"{i}.{name}"] for name in layer.params})
    L = F.cross_entropy(x, torch.tensor(y))
    L.backward()

    A = net.forward(X)
    np.testing.assert_allclose(A, x.detach().numpy(), rtol=1e-9, atol=1e-12 * np.abs(A).max())
    loss, grads = net.loss_and_gradients(X, y)
    assert loss == pytest.approx(L.item(), rel=1e-9)
    assert set(grads) == set(tensors)
    # a vacuous comparison would prove nothing (one tensor may be all zero behind a dead ReLU, not all)
    assert any(np.abs(t.grad.numpy()).max() > 0 for t in tensors.values())
    for name, value in grads.items():
        theirs = tensors[name].grad.numpy()  # all zero only behind a dead ReLU, which random stacks can draw
        np.testing.assert_allclose(value, theirs, rtol=1e-9, atol=1e-9 * np.abs(theirs).max(), err_msg=name)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets(preset):
    compare(build(preset, seed=1, dtype="float64"), seed=2)


@pytest.mark.parametrize("preset", ["seed", "wide"])
def test_presets_on_odd_images(preset):
    compare(build(preset, input_shape=(13, 11), classes=4, seed=3, dtype="float64"), seed=4)


@pytest.mark.parametrize("spec", [
    "conv:4x4:same,relu,pool:avg,conv:3x2:valid-b,pool:decimate,flatten,dense:7-b,relu,dense",
    "conv:2x1:valid,pool:max,conv:5x4,relu,pool:max,flatten,dense",
    "conv:3x3:same-b,conv:2x3:bottom-right,relu,flatten,dense:5,dense:6,relu,dense-b",
])
def test_hand_picked_stacks(spec):
    compare(build(spec, input_shape=(11, 14), classes=5, seed=5, dtype="float64"), seed=6)


@st.composite
def random_specs(draw: st.DrawFn) -> str:
    """A random stack: 1–3 conv blocks (any K, k, padding, bias; ReLU or none; any pooling), 0–2 hidden dense."""
    tokens = []
    for _ in range(draw(st.integers(1, 3))):
        padding = draw(st.sampled_from(["", ":same", ":valid", ":bottom-right"]))
        bias = draw(st.sampled_from(["", "-b", "+b"]))
        tokens.append(f"conv:{draw(st.integers(1, 4))}x{draw(st.integers(1, 3))}{padding}{bias}")
        tokens += ["relu"] * draw(st.integers(0, 1)) + [f"pool:{draw(st.sampled_from(['decimate', 'max', 'avg']))}"]
    tokens.append("flatten")
    for _ in range(draw(st.integers(0, 2))):
        tokens += [f"dense:{draw(st.integers(1, 8))}{draw(st.sampled_from(['', '-b']))}", "relu"]
    return ",".join([*tokens, "dense"])


@settings(max_examples=25, deadline=None, derandomize=True)
@given(spec=random_specs(), seed=st.integers(0, 2**16))
def test_random_stacks(spec: str, seed: int) -> None:
    try:
        net = build(spec, input_shape=(20, 20), classes=3, seed=seed, dtype="float64")
    except ConfigError:  # three valid convolutions and pools can shrink 20×20 to nothing: not a valid stack
        assume(False)
    compare(net, seed=seed)
