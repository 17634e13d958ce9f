"""Figures, the report and predict for any network: a lenet Stack as well as the seed ConvNet.

The figures draw every convolution (its kernels and, for a record, its maps), exactly the arrays the
layers compute; the seed network's figures hold what they always held; a picture a network's shape has
no place for (the dense weights as maps) is left out with a note. The report and predict work on a run
trained with ``--arch lenet``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run_main
from test_report import parse, png_images

from scratchcnn.cli import main
from scratchcnn.data import CLASS_NAMES, load_dataset
from scratchcnn.data.images import read_digit, save_png
from scratchcnn.nn.model import ConvNet
from scratchcnn.nn.network import as_stack, from_spec, load_model
from scratchcnn.nn.stack import Stack
from scratchcnn.viz import figures as fg
from scratchcnn.viz.report import write_report
from scratchcnn.viz.stack_figures import conv_blocks, dense_maps, layer_outputs, left_out

DIGITS = CLASS_NAMES["mnist"]
HISTORY = [{"epoch": 1, "records": 30, "train_accuracy": 0.5, "train_loss": 1.2, "validation_accuracy": 0.4,
            "validation_loss": 1.4, "seconds": 0.1}]
LENET_STEMS = ["01-record", "02-record-surface", "03-kernels", "03-kernels-2", "04-kernel-surfaces", "05-convolved",
               "05-convolved-2", "06-pooled", "06-pooled-2", "07-accuracy", "08-confusion"]


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)


@pytest.fixture(scope="module")
def lenet() -> Stack:
    net = from_spec("lenet", seed=2)
    assert isinstance(net, Stack)
    for layer in net.layers:  # nonzero biases, so that they show in the maps
        if "b" in layer.params:
            layer.params["b"][...] = np.random.default_rng(3).normal(0, 0.2, layer.params["b"].shape)
    return net


def tiles(fig: Any) -> np.ndarray:
    """The array drawn by the figure's one image (NaN in the gaps)."""
    (shown,) = [image for ax in fig.axes for image in ax.images]
    return np.ma.filled(shown.get_array().astype(float), np.nan)


# ---- figures ---------------------------------------------------------------------------------------


def test_stack_figures_draw_exactly_what_the_layers_compute(lenet: Stack, image: np.ndarray) -> None:
    figures = fg.model_figure_set(lenet, image, "7", None, None, DIGITS)
    outputs = layer_outputs(lenet, image)
    np.testing.assert_allclose(outputs[-1], lenet.forward(image[None])[0], rtol=1e-6)  # the scores A
    f1, f2 = lenet.layers[0].params["f"], lenet.layers[3].params["f"]
    kernels = [ax.images[0].get_array() for ax in figures["kernels"].axes if ax.images]
    np.testing.assert_array_equal(np.array(kernels), f1[:, 0])
    Y1 = [ax.images[0].get_array() for ax in figures["convolved"].axes if ax.images]
    np.testing.assert_allclose(np.array(Y1), outputs[1], rtol=1e-6)  # after the ReLU
    assert "Convolution 1 (conv:6x5:same, after its ReLU)" in figures["convolved"].get_suptitle()

    # the second convolution's 16 filters over 6 channels: column k, row c, one pixel of gap
    grid = tiles(figures["kernels_2"])
    assert grid.shape == (6 * 6 - 1, 16 * 6 - 1)
    for k, c in [(0, 0), (15, 5), (7, 2)]:
        np.testing.assert_array_equal(grid[c * 6 : c * 6 + 5, k * 6 : k * 6 + 5], f2[k, c])
    assert np.isnan(grid[5]).all() and np.isnan(grid[:, 5]).all()
    assert "Convolution 2 (layer 4, conv:16x5:valid)" in figures["kernels_2"].get_suptitle()

    # its maps Y_k (after the ReLU, layer 5) and Z_k (layer 6), each divided by its own max |value|, printed
    for key, Q in (("convolved_2", outputs[4]), ("pooled_2", outputs[5])):
        K, h, w = Q.shape
        grid, limits = tiles(figures[key]), np.abs(Q).reshape(K, -1).max(1)
        for k in (0, 9, 15):
            top, left = (k // 8) * (h + 3), (k % 8) * (w + 1)
            want = Q[k] / limits[k] if limits[k] > 0 else Q[k]
            np.testing.assert_allclose(grid[top : top + h, left : left + w], want, rtol=1e-6, atol=1e-7)
        labels = [text.get_text() for text in figures[key].axes[0].texts]
        assert len(labels) == K and labels[0].endswith(f"±{limits[0]:.2g}")


def test_seed_network_figures_hold_what_they_always_held(image: np.ndarray) -> None:
    net = ConvNet(filters=4, kernel_size=5, pool="max", activation="relu", bias=True, seed=3)
    figures = fg.model_figure_set(net, image, "7", HISTORY, np.eye(10, dtype=int), DIGITS)
    assert list(figures) == list(fg.FIGURE_NAMES) and left_out(net) == {}
    Y, Z = net.feature_maps(image)
    for key, want in (("kernels", net.f), ("convolved", Y), ("pooled", Z)):
        drawn = np.array([ax.images[0].get_array() for ax in figures[key].axes if ax.images])
        np.testing.assert_allclose(drawn, want, rtol=1e-5, atol=1e-6, err_msg=key)
    assert figures["convolved"].get_suptitle().startswith("Convolved images $Y_k(i,j)")
    weights = np.array([ax.images[0].get_array() for ax in figures["weights"].axes if ax.images])
    np.testing.assert_array_equal(weights, net.W.reshape(-1, *net.pooled_shape))  # row by row: class, filter


def test_weights_maps_whenever_the_last_dense_reads_maps(lenet: Stack, image: np.ndarray) -> None:
    assert list(left_out(lenet)) == ["weights"] and "a vector of 84 values" in left_out(lenet)["weights"]
    assert dense_maps(lenet) is None
    three_classes = from_spec("seed", classes=3, seed=0)  # the seed's shape, but a Stack
    assert isinstance(three_classes, Stack) and left_out(three_classes) == {}
    np.testing.assert_array_equal(dense_maps(three_classes), three_classes.layers[-1].params["W"].reshape(3, 3, 14, 14))
    figures = fg.model_figure_set(three_classes, image, "7", None, None, ["a", "b", "c"])
    assert set(figures) == set(fg.FIGURE_NAMES) - {"accuracy", "confusion"}
    dense_only = from_spec("flatten,dense:8,relu,dense", seed=0)
    assert conv_blocks(as_stack(dense_only)) == []
    assert set(fg.model_figure_set(dense_only, image, "7", None, None, DIGITS)) == {"record", "record_surface"}
    assert set(left_out(dense_only)) == {"kernels", "kernel_surfaces", "convolved", "pooled", "weights"}


# ---- a run trained with --arch lenet: figures, report, predict -----------------------------------------


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("lenet") / "run"
    assert main(["train", "--data-dir", str(data_dir), "--arch", "lenet", "--epochs", "1", "--train-size", "300",
                 "--engine", "numpy", "--out", str(out)]) == 0
    return out


def test_figures_command_on_a_lenet_run(lenet_run: Path, data_dir: Path, tmp_path: Path, capsys) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. 'constrained layout not applied' or a missing glyph
        status, out, err = run_main(["figures", lenet_run / "model.npz", "--data-dir", data_dir, "--out", tmp_path,
                                     "--json"], capsys)
    assert status == 0, err
    assert err.strip().splitlines() == [err.strip()] and err.startswith("scratchcnn: note: no 09-weights: ")
    listed = json.loads(out.splitlines()[-1])
    assert [Path(p).stem for p in listed["figures"].values()] == LENET_STEMS  # one file each, in file order
    assert list(listed["left_out"]) == ["09-weights"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{stem}.png" for stem in LENET_STEMS)
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, path.name


def test_report_of_a_lenet_run(lenet_run: Path, data_dir: Path) -> None:
    net = load_model(lenet_run / "model.npz")
    assert isinstance(net, Stack)
    text = write_report(lenet_run, data_dir=data_dir).read_text(encoding="utf-8")
    page = parse(text)
    assert len(png_images(page)) == len(LENET_STEMS) + 1  # and the mistakes gallery (no evidence maps: see why)
    assert f"<td>spec</td><td>{net.spec()}</td>" in text
    assert f"Stack of 12 layers on 28×28 images ({net.spec()})" in text
    for row in ("<td>4</td><td>conv:16x5:valid</td><td class=num>16×10×10</td><td class=num>2,416</td>",
                "<td>12</td><td>dense:10</td><td class=num>10</td><td class=num>850</td>"):
        assert row in text
    assert "No 09-weights figure: " in text and "Its label is 7" in text
    assert "<td>pool</td>" not in text  # the seed family's options: not this network's
    assert "X<sub>c</sub>(i+a, j+b) f<sub>kc</sub>(a, b) + b<sub>k</sub>" in text  # convolution 2's equation
    assert "X(i+a−2, j+b−2) f<sub>k</sub>(a, b)" in text  # convolution 1: same padding, one channel
    assert "The maps Y_k of convolution 2" in text


def test_predict_with_a_lenet_model(lenet_run: Path, data_dir: Path, tmp_path: Path, capsys) -> None:
    net = load_model(lenet_run / "model.npz")
    test = load_dataset("mnist", data_dir, download=False)
    files = [save_png(digit, tmp_path / f"digit{i}.png") for i, digit in enumerate(test.test_images[:4])]
    status, out, err = run_main(["predict", lenet_run / "model.npz", *files, "--json"], capsys)
    assert status == 0 and err == ""
    results = json.loads(out.splitlines()[-1])
    assert [Path(r["file"]).name for r in results] == [f"digit{i}.png" for i in range(4)]
    P = net.predict_proba(np.stack([read_digit(path) for path in files]))
    np.testing.assert_allclose([r["probabilities"] for r in results], P, rtol=1e-6)
    assert [r["prediction"] for r in results] == P.argmax(1).tolist()
    status, out, _ = run_main(["predict", lenet_run / "model.npz", files[0]], capsys)
    assert status == 0 and out.startswith(f"{files[0]}: {DIGITS[int(P[0].argmax())]}")


def test_predict_refuses_what_is_no_model_in_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "model.npz").write_text("not a model")
    picture = save_png(np.eye(28, dtype=np.uint8) * 255, tmp_path / "line.png")
    status, out, err = run_main(["predict", tmp_path / "model.npz", picture], capsys)
    assert status == 2 and out == "" and err.count("\n") == 1 and "model.npz" in err and "Traceback" not in err
