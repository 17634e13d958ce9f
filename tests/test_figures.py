"""Figures: every plot is a titled, labelled Figure that renders without layout warnings; files are
valid PNG/SVG written atomically; model_figures writes the nine named files; the real MNIST record."""

from __future__ import annotations

import os
import struct
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from scratchcnn import ConvNet
from scratchcnn.data import CLASS_NAMES, load_dataset
from scratchcnn.errors import ConfigError
from scratchcnn.viz import experiment_figures as xf
from scratchcnn.viz import figures as fg

DIGITS = CLASS_NAMES["mnist"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def render(fig: Figure) -> bytes:
    """PNG bytes; any warning (e.g. 'constrained layout not applied', missing glyphs) fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fg.figure_bytes(fig, "png")


@pytest.fixture(scope="module")
def net() -> ConvNet:
    return ConvNet(seed=0)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)


HISTORY = [
    {"epoch": 1, "records": 30, "train_accuracy": 0.5, "train_loss": 1.2, "validation_accuracy": 0.4,
     "validation_loss": 1.4, "seconds": 0.1},
    {"epoch": 2, "records": 60, "train_accuracy": 0.7, "train_loss": 0.9, "validation_accuracy": 0.6,
     "validation_loss": 1.1, "seconds": 0.1},
]
TUNING = {
    "learning_rates": [0.01, 0.0001, 0.001, 1.0], "validation_accuracy": [0.88, 0.8, 0.9, None],
    "diverged": [False, False, False, True], "best_learning_rate": 0.001,
    "curves": [[0.85, 0.88], [0.7, 0.8], [0.86, 0.9], [0.3]],
}
OVERTRAINING = {"train_accuracy": [0.3, 0.7, 1.0, 1.0], "validation_accuracy": [0.4, 0.6, 0.65, 0.62],
                "train_records": 100, "validation_records": 1000}


def confusion() -> np.ndarray:
    return np.random.default_rng(2).integers(0, 50, (10, 10)) + np.diag(np.full(10, 900))


def all_figures(net: ConvNet, image: np.ndarray) -> dict[str, Figure]:
    Y, Z = net.feature_maps(image)
    return {
        "record": fg.plot_record(image, "7"), "record_surface": fg.plot_record_surface(image, "7"),
        "kernels": fg.plot_kernels(net.f), "kernel_surfaces": fg.plot_kernel_surfaces(net.f),
        "convolved": fg.plot_convolved(Y), "pooled": fg.plot_pooled(Z, net.pool),
        "accuracy": fg.plot_accuracy(HISTORY), "confusion": fg.plot_confusion(confusion(), DIGITS),
        "weights": fg.plot_weights(net.W, DIGITS), "tuning": xf.plot_tuning(TUNING),
        "overtraining": xf.plot_overtraining(OVERTRAINING),
    }


def test_every_figure_is_titled_and_labelled(net: ConvNet, image: np.ndarray) -> None:
    figures = all_figures(net, image)
    assert len(figures) == 11
    for name, fig in figures.items():
        assert isinstance(fig, Figure), name
        assert fig.get_suptitle(), f"{name} has no title"
        assert fig.get_supxlabel() or any(ax.get_xlabel() for ax in fig.axes), f"{name} has no x label"
        assert fig.get_supylabel() or any(ax.get_ylabel() for ax in fig.axes), f"{name} has no y label"
    for name in ("tuning", "overtraining"):  # figures 1-9 are rendered by model_figures below
        width, height = png_size(render(figures[name]))
        assert 300 <= width <= 4000 and 300 <= height <= 4000, (name, width, height)


def test_titles_carry_what_the_reader_needs(net: ConvNet, image: np.ndarray) -> None:
    assert "7" in fg.plot_record(image, "7").get_suptitle()
    assert "Y_k(i,j)" in fg.plot_convolved(net.feature_maps(image)[0]).get_suptitle()
    matrix = np.diag(np.full(10, 9))
    matrix[0, 1] = 10  # 90 right of 100
    assert "90.0%" in fg.plot_confusion(matrix, DIGITS).get_suptitle()
    for pool in ("decimate", "max", "avg"):
        assert pool[:3] in fg.plot_pooled(np.ones((3, 14, 14)), pool).get_suptitle().replace("average", "avg")


def test_kernels_share_a_symmetric_scale_and_are_annotated_when_small() -> None:
    f = np.array([[[1.0, -2.0], [0.5, 0.0]], [[0.1, 0.2], [0.3, 0.4]]])
    fig = fg.plot_kernels(f)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2
    for im in images:
        assert (im.norm.vmin, im.norm.vmax) == (-2.0, 2.0)
        assert im.get_cmap().name == fg.DIVERGING
    assert sum(len(ax.texts) for ax in fig.axes) == f.size  # every value written in its cell
    big = fg.plot_kernels(np.random.default_rng(0).normal(size=(6, 7, 7)))
    assert sum(len(ax.texts) for ax in big.axes) == 0  # 7×7: too many to write
    render(big)


def test_weights_are_a_classes_by_filters_grid_one_scale_per_filter() -> None:
    W = np.random.default_rng(0).normal(size=(10, 4, 7, 7))
    fig = fg.plot_weights(W, CLASS_NAMES["fashion-mnist"])
    images = [ax.images[0] for ax in fig.axes if ax.images]  # row by row: class, then filter
    assert len(images) == 40
    for index, im in enumerate(images):
        limit = np.abs(W[:, index % 4]).max()
        assert np.isclose(im.norm.vmax, limit) and np.isclose(im.norm.vmin, -limit)
    render(fig)


def test_awkward_inputs_still_plot() -> None:
    assert fg.plot_accuracy([]).get_suptitle()
    no_validation = [dict(e, validation_accuracy=None, validation_loss=None) for e in HISTORY]
    ax = fg.plot_accuracy(no_validation).axes[0]
    assert [line.get_label() for line in ax.lines] == ["training (last: 70.0%)"]
    all_diverged = {"learning_rates": [1.0, 10.0], "validation_accuracy": [None, None], "diverged": [True, True],
                    "best_learning_rate": None, "curves": [[], [0.1]]}
    never_perfect = dict(OVERTRAINING, train_accuracy=[0.1, 0.2, 0.3, 0.4])
    float_image = np.linspace(0, 1, 28 * 28).reshape(28, 28)
    for fig in (xf.plot_tuning(all_diverged), xf.plot_overtraining(never_perfect), fg.plot_record(float_image, "x"),
                fg.plot_confusion(np.zeros((10, 10), int), DIGITS), fg.plot_kernels(np.zeros((1, 3, 3)))):
        render(fig)


def test_long_overtraining_runs_get_a_log_epoch_axis() -> None:
    epochs = np.arange(1, 301)
    result = dict(OVERTRAINING, train_accuracy=np.minimum(1, epochs / 10).tolist(),
                  validation_accuracy=(0.7 - 0.1 / epochs).tolist())
    fig = xf.plot_overtraining(result)
    upper, lower = fig.axes
    assert lower.get_xscale() == "log" and "log scale" in lower.get_xlabel()
    assert "epoch 10" in upper.texts[0].get_text()
    assert lower.get_legend().get_texts()[0].get_text() == "best: 70.0% at epoch 300"
    render(fig)


def test_tuning_marks_diverged_rates_and_the_best() -> None:
    left = xf.plot_tuning(TUNING).axes[0]
    labels = [line.get_label() for line in left.lines]
    assert any(label.startswith("diverged") for label in labels)
    assert any(label.startswith("best: η = 0.001") for label in labels)
    assert left.get_xscale() == "log"


def test_model_figures_writes_nine_png_files(net: ConvNet, image: np.ndarray, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. 'constrained layout not applied' or a missing glyph
        paths = fg.model_figures(net, image, "7", HISTORY, confusion(), DIGITS, tmp_path / "out")
    assert list(paths) == list(fg.FIGURE_NAMES)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{s}.png" for s in fg.FIGURE_NAMES.values())
    for path in paths.values():
        data = path.read_bytes()
        width, height = png_size(data)
        assert 300 <= width <= 4000 and 300 <= height <= 4000, (path.name, width, height)
        assert len(data) > 5000, path.name
        assert b"matplotlib.org" not in data  # the Software tag is dropped


def test_figures_rendered_in_forked_processes_are_the_same_bytes(net: ConvNet, image: np.ndarray,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """figures_bytes draws in one process per CPU where it can fork: the same PNG and SVG bytes as drawn here.

    (A figure is drawn once: each comparison draws a new set, as a second drawing may lay a figure out anew.)
    """
    def new_set() -> dict:
        return fg.model_figure_set(net, image, "7", HISTORY, confusion(), DIGITS)

    here = {key: fg.figure_bytes(fig) for key, fig in new_set().items()}  # PNG (SVG's ids are random)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
    forked = fg.figures_bytes(new_set())
    assert list(forked) == list(here)
    assert [key for key in here if forked[key] != here[key]] == []
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0}, raising=False)  # one CPU: drawn in this process
    assert fg.figures_bytes(new_set()) == here
    assert fg._RENDERING == {}  # nothing kept alive once drawn


def test_model_figures_svg_and_skipping(net: ConvNet, image: np.ndarray, tmp_path: Path) -> None:
    paths = fg.model_figures(net, image, "7", None, None, DIGITS, tmp_path, fmt="svg")
    assert set(paths) == set(fg.FIGURE_NAMES) - {"accuracy", "confusion"}
    for path in paths.values():
        assert path.suffix == ".svg"
        assert ET.parse(path).getroot().tag.endswith("svg")
    assert len(list(tmp_path.iterdir())) == 7


def test_save_figure_by_suffix_atomically(tmp_path: Path) -> None:
    fig = fg.plot_accuracy(HISTORY)
    png = fg.save_figure(fig, tmp_path / "a.PNG")
    svg = fg.save_figure(fig, tmp_path / "sub" / "a.svg")
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert ET.parse(svg).getroot().tag.endswith("svg")
    (tmp_path / "keep.pdf").write_text("old")
    with pytest.raises(ConfigError, match="png, svg"):
        fg.save_figure(fig, tmp_path / "keep.pdf")
    with pytest.raises(ConfigError):
        fg.model_figures(ConvNet(), np.zeros((28, 28)), "0", None, None, DIGITS, tmp_path, fmt="jpg")
    assert (tmp_path / "keep.pdf").read_text() == "old"
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []


def test_variant_network_five_filters_in_two_rows(image: np.ndarray) -> None:
    net = ConvNet(filters=5, kernel_size=5, pool="max", activation="relu", bias=True, seed=3)
    Z = net.feature_maps(image)[1]
    for fig in (fg.plot_kernel_surfaces(net.f), fg.plot_pooled(Z, net.pool)):
        assert len([ax for ax in fig.axes if ax.get_title()]) == 5
        render(fig)


def test_real_mnist_record(data_dir: Path, tmp_path: Path) -> None:
    data = load_dataset("mnist", data_dir, download=False)
    assert data.test_labels[0] == 7
    label = DIGITS[data.test_labels[0]]
    fig = fg.plot_record(data.test_images[0], label)
    assert fig.get_suptitle() == "Input record X (label: 7)"
    path = fg.save_figure(fig, tmp_path / "record.png")
    assert png_size(path.read_bytes())[0] >= 300
