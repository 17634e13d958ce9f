"""``scratchcnn.gradcheck`` and ``scratchcnn gradcheck``: every preset and layer type passes in float64, a
deliberately wrong gradient fails (so the check can fail), the parameters are left bit-identical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import last_json, run_main
from helpers import one_line_error

import scratchcnn
from scratchcnn import ConfigError, ConvNet, Stack, options
from scratchcnn.data.datasets import load_dataset
from scratchcnn.nn import gradcheck as module
from scratchcnn.nn.gradcheck import float64_copy, gradcheck, spread_biases
from scratchcnn.nn.network import from_spec
from scratchcnn.nn.spec import PRESETS, parse
from scratchcnn.nn.stack_layers import PADDINGS, POOL_TYPES, Conv, Dense

# Every layer type between them: each padding, conv and dense with and without bias, each pooling, a dense width.
LAYER_SPECS = [
    "conv:2x3-b,pool:decimate,flatten,dense-b",  # the write-up's shape: built as a ConvNet
    "conv:2x3,relu,pool:max,flatten,dense",
    "conv:2x4:same,relu,pool:avg,flatten,dense:5,relu,dense-b",
    "conv:2x3:valid-b,pool:avg,conv:3x2,relu,pool:decimate,flatten,dense:6-b,dense",
]


@pytest.fixture(scope="module")
def mnist(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    data = load_dataset("mnist", data_dir, download=False)
    return data.train_images[:3], data.train_labels[:3].astype(np.int64)


def small_images(seed: int = 0, n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 10, 10)), rng.integers(0, 10, n)


def copies(net: ConvNet | Stack) -> dict[str, np.ndarray]:
    return {name: value.copy() for name, value in net.parameters().items()}


# ---- it passes where the gradients are right ----------------------------------------------------------


@pytest.mark.parametrize("arch", list(PRESETS))
def test_every_preset_passes_on_mnist(arch: str, mnist: tuple[np.ndarray, np.ndarray]) -> None:
    net = from_spec(arch, dtype="float64", seed=0)
    spread_biases(net)
    result = gradcheck(net, *mnist, inputs=True, samples=40)
    assert result.passed, result
    assert [row.name for row in result.tensors] == [*net.parameters(), "X"]
    assert all(row.checked > 0 and row.max_relative_error <= 1e-6 for row in result.tensors)
    assert result.tolerance == 1e-6


def test_the_specs_cover_every_layer_type() -> None:
    layers = [layer for spec in LAYER_SPECS for layer in parse(spec)]
    convs = [layer for layer in layers if isinstance(layer, Conv)]
    denses = [layer for layer in layers if isinstance(layer, Dense)]
    assert {conv.padding for conv in convs} == set(PADDINGS)
    assert {conv.bias for conv in convs} == {dense.bias for dense in denses} == {True, False}
    assert {layer.how for layer in layers if layer.kind == "pool"} == set(POOL_TYPES)
    assert {"relu", "flatten"} <= {layer.kind for layer in layers}
    assert any(dense.width is not None for dense in denses)


@pytest.mark.parametrize("spec", LAYER_SPECS)
def test_every_layer_type_passes(spec: str) -> None:
    net = from_spec(spec, input_shape=(10, 10), dtype="float64", seed=1)
    spread_biases(net, seed=1)
    result = gradcheck(net, *small_images(), inputs=True, samples=1000)
    assert result.passed, result
    for row in result.tensors:  # every entry of these small tensors: none sampled out
        assert row.checked + row.kinks == np.prod(row.shape) and row.checked > 0


# ---- it fails where they are wrong --------------------------------------------------------------------


class SkewedStack(Stack):
    """Test only: its backward makes ∂L/∂W of the first dense layer 1 % too large."""

    def backward(self, dA: np.ndarray, caches: list[dict]) -> dict[str, np.ndarray]:
        grads = super().backward(dA, caches)
        return grads | {"4.W": grads["4.W"] * 1.01}


def nudge_f(grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One entry of ∂L/∂f off by 1e-3 of the largest."""
    f = grads["f"].copy()
    f[1, 0, 2] += 1e-3 * np.abs(f).max()
    return grads | {"f": f}


class NudgedConvNet(ConvNet):
    """Test only: its backward gets one entry of ∂L/∂f wrong (``nudge_f``)."""

    def backward(self, dA: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
        return nudge_f(super().backward(dA, cache))


class SkewedConv(Conv):
    """Test only: ∂L/∂X of this layer 1 % too large. As the first layer, only the input check sees it."""

    def backward(self, dY: np.ndarray, cache: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        dX, grads = super().backward(dY, cache)
        return dX * 1.01, grads


def test_a_wrong_parameter_gradient_fails_and_the_others_pass() -> None:
    net = SkewedStack(parse(LAYER_SPECS[2]), input_shape=(10, 10), dtype="float64", seed=1)
    spread_biases(net, seed=1)
    result = gradcheck(net, *small_images())
    assert not result.passed and result.failed == ["4.W"]
    row = next(row for row in result.tensors if row.name == "4.W")
    assert row.max_relative_error == pytest.approx(0.01 / 1.01, rel=1e-3)  # |1.01 a − a| / 1.01 |a|

    nudged = NudgedConvNet(filters=2, input_shape=(10, 10), dtype="float64", seed=0)
    assert gradcheck(nudged, *small_images()).failed == ["f"]


def test_a_wrong_input_gradient_fails() -> None:
    layers = [SkewedConv(2, 3, "same", bias=True), *parse("relu,pool:avg,flatten,dense")]
    net = Stack(layers, input_shape=(10, 10), dtype="float64", seed=0)
    spread_biases(net)
    assert gradcheck(net, *small_images()).passed  # the parameters' gradients are right
    assert gradcheck(net, *small_images(), inputs=True).failed == ["X"]


def test_entries_on_a_kink_are_counted_not_compared() -> None:
    """A conv bias of 0 before a ReLU, on images with blank pixels: every ±ε of b crosses the kink."""
    net = from_spec("conv:2x3,relu,pool:avg,flatten,dense", input_shape=(10, 10), dtype="float64", seed=0)
    X, y = small_images()
    X[:, :, 5:] = 0
    bias = next(row for row in gradcheck(net, X, y).tensors if row.name == "0.b")
    assert (bias.checked, bias.kinks, bias.passed) == (0, 2, False)  # nothing compared: no pass claimed
    spread_biases(net)
    assert gradcheck(net, X, y).passed


# ---- what it leaves and what it refuses ---------------------------------------------------------------


def test_parameters_and_images_are_left_bit_identical() -> None:
    net = from_spec("lenet", input_shape=(16, 16), dtype="float64", seed=0)
    spread_biases(net)
    before, arrays = copies(net), net.parameters()
    X, y = small_images(n=2)
    X = np.pad(X, ((0, 0), (3, 3), (3, 3)))
    X_before = X.copy()
    gradcheck(net, X, y, inputs=True, samples=20)
    assert all(net.parameters()[name] is arrays[name] for name in arrays)  # the same arrays, not replacements
    assert all(np.array_equal(net.parameters()[name], value) for name, value in before.items())
    assert np.array_equal(X, X_before)


def test_float32_is_refused_unless_cast_or_given_a_tolerance() -> None:
    net = ConvNet(input_shape=(10, 10), seed=0)
    with pytest.raises(ConfigError, match="float64"):
        gradcheck(net, *small_images())
    twin = float64_copy(net)
    assert twin.dtype == "float64" and all(np.array_equal(twin.parameters()[n], v) for n, v in copies(net).items())
    assert gradcheck(twin, *small_images()).passed
    assert gradcheck(net, *small_images(), epsilon=1e-2, tolerance=1e-2).tolerance == 1e-2


def test_the_package_offers_it() -> None:
    assert scratchcnn.gradcheck is gradcheck
    assert module.SAMPLES == options.GRADCHECK_SAMPLES


# ---- the command --------------------------------------------------------------------------------------


def test_command_passes_and_prints_a_table(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(["gradcheck", "--data-dir", data_dir, "--records", 3], capsys)
    assert status == 0, out
    lines = out.splitlines()
    assert lines[-1] == "all 2 tensors pass (tolerance 1e-06)"
    assert [line.split()[0] for line in lines[2:4]] == ["f", "W"] and lines[3].endswith("pass")


def test_command_json(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(["gradcheck", "--layers", LAYER_SPECS[1], "--inputs", "--records", 2, "--samples", 30,
                               "--data-dir", data_dir, "--json"], capsys)
    summary = last_json(out)
    assert status == 0 and summary["passed"] is True and summary["records"] == 2
    assert [row["name"] for row in summary["tensors"]] == ["0.f", "0.b", "4.W", "4.b", "X"]
    assert all(row["checked"] + row["kinks"] == min(30, np.prod(row["shape"])) for row in summary["tensors"])


def test_command_exits_1_when_a_gradient_is_wrong(data_dir: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    right = ConvNet.backward

    def wrong(self: ConvNet, dA: np.ndarray, cache: dict) -> dict[str, np.ndarray]:
        return nudge_f(right(self, dA, cache))

    monkeypatch.setattr(ConvNet, "backward", wrong)  # the class of the network the command builds
    status, out, _ = run_main(["gradcheck", "--data-dir", data_dir, "--records", 2], capsys)
    assert status == 1
    assert out.splitlines()[-1] == "1 of 2 tensors FAIL (tolerance 1e-06): f"


def test_command_checks_a_float32_model_in_float64(data_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    ConvNet(bias=True, seed=3).save(tmp_path / "model.npz")
    status, out, err = run_main(["gradcheck", tmp_path / "model.npz", "--data-dir", data_dir, "--records", 2],
                                capsys)
    assert status == 0 and "all 3 tensors pass" in out
    assert "float32: checked in float64" in err


@pytest.mark.parametrize("argv", [["--arch", "vgg"], ["--records", "0"], ["--samples", "-1"]])
def test_bad_flags_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(["gradcheck", *argv], capsys)
    assert status == 2 and out == "" and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("scratchcnn gradcheck: error: argument")


def test_bad_input_is_one_line(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.npz").write_text("not a model\n")
    ConvNet(seed=0).save(tmp_path / "model.npz")
    cases = {
        ("notes.npz",): "not a scratchcnn model file",
        ("model.npz", "--arch", "lenet"): "--arch shapes a fresh network",
        ("--dtype", "float32"): "runs in float64",
        ("--layers", "conv:2x3,frob"): "--layers: layer 2 of 2 'frob'",
        ("--layers", "conv:2x3,dense"): "layer 2 of 2 'dense': needs a flat vector",
        ("--records", "99999"): "--records 99999: the mnist training set has",
    }
    for argv, fragment in cases.items():
        args = [tmp_path / a if a.endswith(".npz") else a for a in argv]
        one_line_error(*run_main(["gradcheck", *args, "--data-dir", data_dir], capsys)[::2], fragment)
