"""The explorer page: one self-contained HTML file to draw a digit and watch the network work on it.

The page is assets/explorer.html with explorer.css, network.js and explorer.js inlined: one file holding
the model's parameters as JSON, up to PICKER_IMAGES test images, the training curves as inline SVG, the
forward pass in JavaScript (network.js: no DOM, so a Web Worker can load the same file) and the page's
drawing and interaction (explorer.js). It links to nothing, so it opens from disk in any modern browser,
offline.

Every network reaches the page as a stack (``as_stack``: a ConvNet as the stack it is), so network.js
has one forward function per layer type, mirroring nn/stack_layers.py layer by layer.
"""

from __future__ import annotations

import base64
import json
import math
import os
from dataclasses import dataclass, field, replace
from functools import cache
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from scratchcnn.data import CLASS_NAMES, load_dataset
from scratchcnn.data.datasets import Dataset
from scratchcnn.errors import ScratchCNNError, first_line
from scratchcnn.files import write_text_atomically
from scratchcnn.nn.model import ConvNet
from scratchcnn.nn.network import Network, as_stack, load_model, network_spec
from scratchcnn.options import RunOptions, run_defaults
from scratchcnn.train.rundir import RunDir
from scratchcnn.viz.lab import LAB_RECORDS, lab_data

EXPLORER_NAME = RunDir.EXPLORER
PICKER_IMAGES = 50  # test images embedded for the picker: the first ones of the test set


@dataclass
class Explorer:
    """What write_explorer did: the page's path, and notes for the user (e.g. no test images found)."""

    path: Path
    notes: list[str] = field(default_factory=list)


def write_explorer(model: str | os.PathLike, out: str | os.PathLike | None = None,
                   data_dir: str | os.PathLike | None = None, lab_records: int = LAB_RECORDS) -> Explorer:
    """Write the explorer page for MODEL (default MODEL's folder/explorer.html), atomically.

    Test images come from the model's dataset on disk (never downloaded); without them the page has no
    picker and a note says so. history.json beside the model gives the training curves and test accuracy.
    lab_records > 0: a Train panel that goes on training the model on that many embedded training records.
    """
    model = Path(model)
    net = load_model(model)
    notes: list[str] = []
    dataset = net.dataset or RunOptions.dataset
    images = labels = None
    test_accuracy = None
    try:
        data = load_dataset(dataset, RunDir.of_model(model).data_dir(data_dir), download=False,
                            image_shape=net.input_shape)
    except (ScratchCNNError, ImportError) as error:
        reason = first_line(error).replace("; or allow downloading", "")  # explore never downloads
        notes.append(f"no test images embedded, the page has no picker: {reason}")
    else:
        images, labels = data.test_images[:PICKER_IMAGES], data.test_labels[:PICKER_IMAGES]
        test_accuracy = float((net.predict(data.test_images) == data.test_labels).mean())
    history, summary_accuracy, history_note = read_history(RunDir.of_model(model))
    if history_note:
        notes.append(history_note)
    if summary_accuracy is not None:
        test_accuracy = summary_accuracy
    lab = None
    if lab_records and images is not None and len(data.train_images) > 1:
        records = min(lab_records, len(data.train_images) * 4 // 5)  # a small dataset: a fifth validates
        lab = lab_data(net, data, _run_options(RunDir.of_model(model), dataset), max(records, 1))
    page = build_page(net, title=f"scratchcnn explorer: {model.parent.name}/{model.name}", images=images,
                      labels=labels, history=history, test_accuracy=test_accuracy,
                      images_note=notes[0] if images is None else None, lab=lab)
    path = Path(out) if out is not None else model.parent / EXPLORER_NAME
    write_text_atomically(path, page)
    return Explorer(path, notes)


def write_lab(net: Network, data: Dataset, run: RunOptions, out: str | os.PathLike,
              records: int = LAB_RECORDS, fresh: bool = True) -> Path:
    """Write the lab page for a network, fresh (built with run.seed) or trained: the explorer and its Train panel."""
    title = f"scratchcnn lab: {network_spec(net).replace(',', ' → ')} on {data.name}"
    page = build_page(net, title=title, images=data.test_images[:PICKER_IMAGES],
                      labels=data.test_labels[:PICKER_IMAGES], lab=lab_data(net, data, run, records),
                      summary=describe(net, None, fresh_seed=run.seed) if fresh else None)
    path = Path(out)
    write_text_atomically(path, page)
    return path


def read_history(run: RunDir) -> tuple[list[dict[str, Any]] | None, float | None, str | None]:
    """(per-epoch history, test accuracy, note) from a run's history.json; Nones and a note if unusable."""
    try:
        summary = run.read_summary()
    except ScratchCNNError as error:
        return None, None, f"{error}; no curves"
    if summary is None:
        return None, None, None
    return summary["history"], summary.get("test_accuracy"), None


def _run_options(run: RunDir, dataset: str) -> RunOptions:
    """The options the run was trained with (history.json), for the Train panel to go on with; else defaults."""
    try:
        saved = (run.read_summary() or {}).get("options", {})
        known = {name: value for name, value in saved.items() if name in RunOptions.__dataclass_fields__}
        return replace(run_defaults(dataset), **known)
    except (ScratchCNNError, TypeError):
        return run_defaults(dataset)


def page_data(net: Network, images: np.ndarray | None = None, labels: np.ndarray | None = None,
              images_note: str | None = None) -> dict[str, Any]:
    """The JSON the page computes with: the network as a stack (its config, each layer's spec and input
    shape then the output's, its parameters "<layer index>.<name>" flat and row-major), class names, images."""
    names = CLASS_NAMES.get(net.dataset or "", ())
    if len(names) != net.classes:
        names = tuple(str(c) for c in range(net.classes))
    stack = as_stack(net)
    data: dict[str, Any] = {
        "config": stack.config, "specs": [layer.spec() for layer in stack.layers],
        "shapes": [list(shape) for shape in stack.shapes], "dataset": net.dataset, "class_names": list(names),
        "params": {name: _numbers(value) for name, value in stack.parameters().items()},
        "centre_default": True, "images": None, "images_note": images_note,
    }
    if images is not None and labels is not None and len(images):
        X = np.ascontiguousarray(net.check_images(images))
        if X.dtype != np.uint8:
            X = np.clip(np.rint(X * 255), 0, 255).astype(np.uint8)
        data["images"] = {"base64": base64.b64encode(X.tobytes()).decode("ascii"),
                          "labels": [int(v) for v in labels], "indices": list(range(len(X)))}
    return data


# The page's scripts by placeholder, in the order the page runs them (worker.js is text for the worker).
SCRIPTS = {"__NETWORK__": "network.js", "__BACKPROP__": "backprop.js", "__TRAINER__": "trainer.js",
           "__WORKER__": "worker.js", "__NPZ__": "npz.js", "__PICTURE__": "picture.js", "__SCRIPT__": "explorer.js",
           "__EVIDENCE__": "evidence.js", "__OWN_PICTURE__": "own_picture.js", "__LAB_SCRIPT__": "lab.js"}


def build_page(net: Network, *, title: str = "scratchcnn explorer", images: np.ndarray | None = None,
               labels: np.ndarray | None = None, history: list[dict[str, Any]] | None = None,
               test_accuracy: float | None = None, images_note: str | None = None,
               lab: dict[str, Any] | None = None, summary: str | None = None) -> str:
    """The whole HTML page as a string; ``lab`` (viz/lab.py's lab_data) adds the Train panel."""
    curves = curves_svg(history, test_accuracy)
    if lab is not None and not history:
        curves = '<p class="hint">No training run behind this page: the Train panel draws its curves.</p>'
    replacements = {
        "__TITLE__": escape(title), "__SUMMARY__": escape(summary or describe(net, test_accuracy)),
        "__CURVES__": curves, "__LAB__": _script_json(lab),
        "__DATA__": _script_json(page_data(net, images, labels, images_note)),
    }
    page = _asset("explorer.html").replace("__STYLE__", _asset("explorer.css"))
    for key, name in SCRIPTS.items():
        page = page.replace(key, _asset(name))
    for key, value in replacements.items():  # the data last: its text is not scanned for placeholders
        page = page.replace(key, value)
    return page


def _script_json(value: Any) -> str:
    """JSON to sit inside <script>: no "</script>" or "<!--" can appear (JSON allows these escapes)."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@cache
def _asset(name: str) -> str:
    """A file of the page (package data in scratchcnn/viz/assets)."""
    return resources.files("scratchcnn.viz").joinpath("assets", name).read_text(encoding="utf-8")


def describe(net: Network, test_accuracy: float | None, fresh_seed: int | None = None) -> str:
    """One sentence: the network's shape, its input, classes, data and test accuracy (or, ``fresh_seed``
    given, that its parameters are a fresh initialisation to train in the page)."""
    H, W = net.input_shape
    if isinstance(net, ConvNet):
        shape = [f"{net.filters} filters of {net.kernel_size}×{net.kernel_size}", f"pooling: {net.pool}",
                 f"activation: {net.activation}", "with bias b" if net.bias else "no bias"]
    else:
        shape = [f"{len(net.layers)} layers: {network_spec(net).replace(',', ' → ')}"]
    data = net.dataset or "unknown data"
    parts = [*shape, f"input {H}×{W}", f"{net.classes} classes",
             f"to train on {data}" if fresh_seed is not None else f"trained on {data}"]
    if fresh_seed is not None:
        return ", ".join(parts) + f"; fresh parameters (seed {fresh_seed}), not trained yet."
    accuracy = f"test accuracy {100 * test_accuracy:.2f} %" if test_accuracy is not None else "test accuracy unknown"
    return ", ".join(parts) + "; " + accuracy + "."


def curves_svg(history: list[dict[str, Any]] | None, test_accuracy: float | None) -> str:
    """Train and validation accuracy per epoch (and the test accuracy) as inline SVG, or a note."""
    if not history:
        note = "No history.json beside the model: no training curves."
        if test_accuracy is not None:
            note += f" Test accuracy {100 * test_accuracy:.2f} %."
        return f'<p class="hint">{escape(note)}</p>'
    series = {key: [(e.get("epoch", n + 1), e.get(key)) for n, e in enumerate(history)]
              for key in ("train_accuracy", "validation_accuracy")}
    values = [v for s in series.values() for _, v in s if isinstance(v, (int, float)) and math.isfinite(v)]
    if test_accuracy is not None:
        values.append(test_accuracy)
    if not values:
        return '<p class="hint">history.json holds no accuracies.</p>'
    low = max(0.0, math.floor(min(values) * 10 - 0.5) / 10)
    width, height, left, right, top, bottom = 600, 260, 48, 200, 14, 36
    epochs = [e for e, _ in series["train_accuracy"]]
    first, last = min(epochs), max(max(epochs), min(epochs) + 1)

    def x(epoch: float) -> float:
        return left + (epoch - first) / (last - first) * (width - left - right)

    def y(value: float) -> float:
        return top + (1 - (value - low) / (1 - low)) * (height - top - bottom)

    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             'aria-label="accuracy per epoch" style="font: 11px system-ui, sans-serif">']
    for tick in np.linspace(low, 1, round((1 - low) * 10) + 1):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.1f}</text>')
    step = max(1, math.ceil(len(epochs) / 10))
    for epoch in epochs[::step]:
        parts.append(f'<text x="{x(epoch):.1f}" y="{height - bottom + 16}" text-anchor="middle">{epoch}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 4}" text-anchor="middle">epoch</text>'
                 f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}" stroke="#888"/>'
                 f'<line x1="{left}" x2="{width - right}" y1="{height - bottom}" y2="{height - bottom}" '
                 'stroke="#888"/>')
    legend = []
    for (key, points), colour in zip(series.items(), ("#2a6fb0", "#e08020"), strict=True):
        good = [(e, v) for e, v in points if isinstance(v, (int, float)) and math.isfinite(v)]
        if not good:
            continue
        coords = " ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in good)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{x(e):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}"/>' for e, v in good]
        legend.append((key.replace("_", " ") + f" {100 * good[-1][1]:.1f} %", colour, False))
    if test_accuracy is not None:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(test_accuracy):.1f}" y2="{y(test_accuracy):.1f}" '
                     'stroke="#3a9a3a" stroke-dasharray="5 4" stroke-width="1.5"/>')
        legend.append((f"test accuracy {100 * test_accuracy:.2f} %", "#3a9a3a", True))
    for n, (label, colour, dashed) in enumerate(legend):
        ly = top + 12 + 18 * n
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        parts.append(f'<line x1="{width - right + 10}" x2="{width - right + 28}" y1="{ly - 4}" y2="{ly - 4}" '
                     f'stroke="{colour}" stroke-width="2"{dash}/><text x="{width - right + 32}" y="{ly}">'
                     f'{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _numbers(array: np.ndarray) -> list[float]:
    """Flat row-major values, each the shortest decimal that reads back as the same float32/float64."""
    flat = np.asarray(array).ravel()
    if flat.dtype == np.float32:
        return [float(str(v)) for v in flat]  # str(np.float32) is its shortest round-tripping form
    return [float(v) for v in flat]
