"""One self-contained HTML page about a training run: its configuration, accuracies, figures and equations.

Everything is inside the one file (figures as base64 PNG data: URIs, the style sheet inline), so it
can be mailed or opened offline; it links to nothing.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from scratchcnn._version import __version__
from scratchcnn.data import CLASS_NAMES, load_dataset
from scratchcnn.errors import DataError, ScratchCNNError
from scratchcnn.files import write_text_atomically
from scratchcnn.nn.metrics import confusion_matrix
from scratchcnn.nn.model import ConvNet
from scratchcnn.options import RunOptions
from scratchcnn.train.rundir import RunDir
from scratchcnn.viz.experiment_figures import plot_overtraining, plot_tuning
from scratchcnn.viz.figures import figure_bytes, model_figure_set

REPORT_NAME = RunDir.REPORT
CAPTIONS = {
    "record": "The first test record X, the network's input (its pixels are scaled to [0, 1] before use).",
    "record_surface": "The same record as a landscape: the height of each pixel is its intensity.",
    "kernels": "The learnt filters f_k. Each convolved image Y_k is this small pattern slid over X.",
    "kernel_surfaces": "The filters as surfaces; each dot is one weight f_k(a, b).",
    "convolved": "The convolved images Y_k of the record: red where it looks like filter k, blue where like its "
                 "negative.",
    "pooled": "The pooled images Z_k: all the dense layer sees of the record.",
    "accuracy": "Accuracy on the training and validation records after each epoch.",
    "confusion": "How the test images of each true class (row) were classified (column); the diagonal is correct.",
    "weights": "The dense weights W. The score a_j of class j is the sum of row j, cell by cell, times Z_1 … Z_K: "
               "red cells vote for the class where Z_k is positive, blue ones against.",
}
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; color: #222;
       line-height: 1.45; }
h1, h2 { font-weight: 600; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; } td, th { padding: .25em .8em; border: 1px solid #ddd; }
th { background: #f3f3f3; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #fff6cc; font-weight: 600; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: .95em; }
.note { background: #fff4e5; border-left: 4px solid #f0a030; padding: .5em 1em; }
.eq { font-family: "Cambria Math", "STIX Two Math", serif; font-size: 1.1em; }
"""


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                 data_dir: str | os.PathLike | None = None) -> Path:
    """Write RUN_DIR's report (default RUN_DIR/report.html), atomically; returns its path.

    Reads RUN_DIR/history.json and model.npz (ScratchCNNError / ModelFileError if missing or corrupt),
    and tuning.json and overtraining.json when present. The test set (for the record and confusion
    figures) is looked up with data_dir, never downloaded; without it the report says so.
    """
    run = RunDir(run_dir)
    if run.path.exists() and not run.path.is_dir():  # e.g. the run's model.npz, given for the run
        kind = "a model file" if run.path.suffix == ".npz" else "a file"
        holder = RunDir(run.path.parent)
        example = (holder.path if str(holder.path) != "." else Path.cwd()) if holder.summary.is_file() else "runs/demo"
        raise ScratchCNNError(f"{run.path}: that is {kind}; report takes a run folder such as {example}")
    if not run.path.is_dir():
        raise ScratchCNNError(f"{run.path}: no such run directory")
    with run.lock():  # not while a training process is writing the run
        return _write_report(run, out, data_dir)


def _write_report(run: RunDir, out: str | os.PathLike | None, data_dir: str | os.PathLike | None) -> Path:
    summary = run.read_summary()
    if summary is None:
        raise ScratchCNNError(f"{run.summary}: no such file (is {run.path} a run written by 'scratchcnn train'?)")
    net = ConvNet.load(run.model)
    options = summary.get("options") or {}
    dataset = net.dataset or options.get("dataset") or RunOptions.dataset
    class_names = CLASS_NAMES.get(dataset, CLASS_NAMES["mnist"])
    image, label, matrix, note = _test_figures_input(net, dataset, run.data_dir(data_dir), summary)
    figures = model_figure_set(net, image, label, summary["history"], matrix, class_names)
    captions = dict(CAPTIONS)
    if image is not None:
        P = net.predict_proba(image[None])[0]
        guess = class_names[int(P.argmax())]
        captions["record"] += f" Its label is {label}; the network predicts {guess} with probability {P.max():.2f}."
    body = [
        f"<h1>scratchcnn training run: {escape(run.path.resolve().name)}</h1>",
        f"<p>A {escape(_describe(net))}, trained on {escape(dataset)}.</p>",
        _results_section(summary),
        _configuration_section(net, options),
        "<h2>Figures</h2>",
        f'<p class="note">{escape(note)}</p>' if note else "",
        *(_figure_html(fig, captions[key]) for key, fig in figures.items()),
        _experiment_section(run, run.TUNING, "a learning-rate tuning result", _tuning_section),
        _experiment_section(run, run.OVERTRAINING, "an overtraining result", _overtraining_section),
        _equations_section(net),
        f"<p><small>Written by scratchcnn {escape(__version__)}.</small></p>",
    ]
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>scratchcnn report: {escape(run.path.resolve().name)}</title>\n<style>{STYLE}</style>\n"
            "</head>\n<body>\n" + "\n".join(part for part in body if part) + "\n</body>\n</html>\n")
    return write_text_atomically(Path(out) if out is not None else run.path / REPORT_NAME, page)


# ---- inputs --------------------------------------------------------------------------------------


def _test_figures_input(net: ConvNet, dataset: str, data_dir: str | os.PathLike | None, summary: dict[str, Any]
                        ) -> tuple[np.ndarray | None, str, np.ndarray | None, str]:
    """(first test image, its label, confusion matrix, note for the reader) — Nones without the test set."""
    names = CLASS_NAMES.get(dataset, CLASS_NAMES["mnist"])
    try:
        data = load_dataset(dataset, data_dir, download=False, image_shape=net.input_shape)
    except DataError as error:
        saved = summary.get("confusion_matrix")
        matrix = np.array(saved) if saved is not None and np.shape(saved) == (net.classes, net.classes) else None
        left_out = "the input record and its convolved and pooled images" + ("" if matrix is not None else
                                                                            " and the confusion matrix")
        return None, "", matrix, f"The {dataset} test set was not found, so {left_out} are left out. ({error})"
    y = data.test_labels.astype(np.int64)
    matrix = confusion_matrix(y, net.predict(data.test_images), net.classes)
    return data.test_images[0], names[y[0]], matrix, ""


# ---- sections ------------------------------------------------------------------------------------


def _describe(net: ConvNet) -> str:
    H, W = net.input_shape
    pool = {"decimate": "decimation", "max": "2×2 maximum", "avg": "2×2 average"}.get(net.pool, net.pool)
    return (f"ConvNet: {net.filters} filters of {net.kernel_size}×{net.kernel_size} on {H}×{W} images, "
            f"pooling by {pool}, activation {net.activation}, {'with' if net.bias else 'no'} bias")


def _fmt(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if math.isnan(value) else format(value, spec)
    return str(value)


def _pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2%}"


def _count(size: float | int) -> str:
    """A validation size as given: a fraction below 1 as a percentage, else a number of records."""
    return f"{size:.0%}" if isinstance(size, float) and size < 1 else str(size)


def _table(header: list[str], rows: list[list[str]], numeric_from: int = 1, best: int | None = None) -> str:
    """An HTML table of already-formatted text (escaped here); row ``best`` highlighted."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for n, row in enumerate(rows):
        cells = "".join(f'<td{" class=num" if i >= numeric_from else ""}>{escape(c)}</td>' for i, c in enumerate(row))
        body.append(f'<tr{" class=best" if n == best else ""}>{cells}</tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _results_section(summary: dict[str, Any]) -> str:
    rows = [["test accuracy", _pct(summary.get("test_accuracy"))],
            ["validation accuracy (last epoch)", _pct(summary.get("validation_accuracy"))],
            ["training accuracy (last epoch)", _pct(summary.get("train_accuracy"))],
            ["test loss (mean −ln P_y)", _fmt(summary.get("test_loss"), ".4f")],
            ["epochs", _fmt(summary.get("epochs"))],
            ["seconds per epoch", _fmt(summary.get("seconds_per_epoch"), ".2f")]]
    epochs = [[_fmt(e.get("epoch")), _fmt(e.get("records")), _pct(e.get("train_accuracy")),
               _fmt(e.get("train_loss"), ".4f"), _pct(e.get("validation_accuracy")),
               _fmt(e.get("validation_loss"), ".4f"), _fmt(e.get("seconds"), ".2f")] for e in summary["history"]]
    stopped = summary.get("stopped")
    return "\n".join([
        "<h2>Accuracy</h2>", _table(["", "value"], rows),
        f'<p class="note">Training stopped early: {escape(str(stopped))}</p>' if stopped else "",
        "<h3>After each epoch</h3>",
        _table(["epoch", "records seen", "training accuracy", "training loss", "validation accuracy",
                "validation loss", "seconds"], epochs, numeric_from=0),
    ])


def _configuration_section(net: ConvNet, options: dict[str, Any]) -> str:
    unset = {"epoch_size": "all training records", "train_size": "all records"}  # what None means
    model = [[key, _fmt(value)] for key, value in {**net.config, "dataset": net.dataset}.items()]
    training = [[key, unset.get(key, "–") if value is None else _fmt(value)] for key, value in options.items()]
    return "\n".join(["<h2>Configuration</h2>",
                      "<h3>Network (from model.npz)</h3>", _table(["option", "value"], model, numeric_from=2),
                      "<h3>Training options (from history.json)</h3>", _table(["option", "value"], training, 2)])


def _figure_html(fig: Any, caption: str) -> str:
    data = base64.b64encode(figure_bytes(fig, "png")).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _experiment_section(run: RunDir, name: str, what: str, section: Callable[[dict[str, Any]], str]) -> str:
    """The report's section on the experiment result in RUN_DIR/name; "" when the run has none."""
    result = run.read_json(name)
    if result is None:
        return ""
    try:
        return section(result)
    except (KeyError, TypeError, ValueError) as error:
        raise ScratchCNNError(f"{run.path / name}: not {what} ({error!r})") from None


def _tuning_section(tuning: dict[str, Any]) -> str:
    rates, finals, diverged = tuning["learning_rates"], tuning["validation_accuracy"], tuning["diverged"]
    if not len(rates) == len(finals) == len(diverged) == len(tuning["curves"]):
        raise ValueError("its lists have different lengths")
    best = tuning.get("best_learning_rate")
    rows = [[_fmt(float(r)), _pct(v), "yes" if d else "no"] for r, v, d in zip(rates, finals, diverged, strict=True)]
    best_row = next((n for n, r in enumerate(rates) if best is not None and math.isclose(r, best)), None)
    figure = _figure_html(plot_tuning(tuning), "Left: the final validation accuracy of each learning rate. "
                                               "Right: how it got there, epoch by epoch.")
    epochs, records, held_out = (tuning.get(key) for key in ("epochs", "train_size", "validation_size"))
    intro = (f"Each learning rate η trained the same network from the same start"
             f"{f' for {epochs} epochs' if epochs else ''}{f' on {records} records' if records else ''}"
             f"{f' ({_count(held_out)} of them held out for validation)' if held_out else ''}; the best is "
             "highlighted. A rate that diverged (the loss became NaN or infinite) has no final accuracy.")
    return "\n".join(["<h2>Tuning the learning rate</h2>", f"<p>{escape(intro)}</p>",
                      _table(["learning rate η", "final validation accuracy", "diverged"], rows, best=best_row),
                      f"<p>Best learning rate: <b>{escape(_fmt(best))}</b>.</p>", figure])


def _overtraining_section(result: dict[str, Any]) -> str:
    losses = [math.inf if v is None else v for v in result.get("validation_loss") or []]
    figure = _figure_html(plot_overtraining(result), "Upper: the few training records. Lower: validation records "
                          "never trained on." + (" Left: accuracy. Right: loss." if losses else ""))
    n_train, n_val = result.get("train_records", "?"), result.get("validation_records", "?")
    if "best_validation_loss" not in result and losses:  # a result saved before these keys existed
        lowest = losses.index(min(losses))
        result = {**result, "best_validation_loss": losses[lowest], "best_validation_loss_epoch": lowest + 1}
    rows = [[label, fmt(result[key])] for label, key, fmt in (
        ("epochs", "epochs", _fmt), ("learning rate η", "learning_rate", _fmt),
        ("first epoch with 100% training accuracy", "first_epoch_train_100", _fmt),
        ("best validation accuracy", "best_validation_accuracy", _pct),
        ("epoch of the best validation accuracy", "best_validation_epoch", _fmt),
        ("final validation accuracy", "final_validation_accuracy", _pct),
        ("lowest validation loss", "best_validation_loss", _fmt),
        ("epoch of the lowest validation loss", "best_validation_loss_epoch", _fmt),
        ) if key in result]
    if losses:
        rows.append(["final validation loss", _fmt(losses[-1])])
    intro = (f"The network trained for many epochs on only {n_train} records and was checked after each epoch "
             f"on {n_val} validation records it never trained on. When the accuracy on the training records "
             "reaches 100% while the validation accuracy levels off or falls, the network has learnt those "
             "particular records rather than what their classes have in common: it is overtrained. The "
             "validation loss shows it most plainly: after its lowest point it rises, as the network grows "
             "ever more certain of the training records and of its mistakes on the others.")
    return "\n".join(["<h2>Overtraining</h2>", f"<p>{escape(intro)}</p>",
                      _table(["", "value"], rows) if rows else "", figure])


def _equations_section(net: ConvNet) -> str:
    """The network's equations in HTML (fixed markup, no user text), following its configuration."""
    pool = {
        "decimate": "Z<sub>k</sub>(i/2, j/2) = Y<sub>k</sub>(i, j) &nbsp; for even i, j (decimation)",
        "max": "Z<sub>k</sub>(i, j) = max<sub>a,b ∈ {0,1}</sub> Y<sub>k</sub>(2i+a, 2j+b)",
        "avg": "Z<sub>k</sub>(i, j) = ¼ Σ<sub>a,b ∈ {0,1}</sub> Y<sub>k</sub>(2i+a, 2j+b)",
    }[net.pool]
    relu = (" then Y<sub>k</sub> ← max(0, Y<sub>k</sub>)" if net.activation == "relu" else "")
    bias = " + b" if net.bias else ""
    forward = [
        ("convolution", "Y<sub>k</sub>(i, j) = Σ<sub>a</sub> Σ<sub>b</sub> X(i+a, j+b) f<sub>k</sub>(a, b)" + relu),
        ("pooling", pool), ("dense layer", f"A = W Z{bias}"),
        ("softmax", "P<sub>j</sub> = e<sup>a<sub>j</sub></sup> / Σ<sub>k</sub> e<sup>a<sub>k</sub></sup>"),
        ("loss", "L = −ln P<sub>y</sub> &nbsp; (y the true class)"),
    ]
    backward = [
        ("scores", "∂L/∂A = P − onehot(y)"), ("dense weights", "∂L/∂W = ∂L/∂A ⊗ Z (outer product)"),
        *([("bias", "∂L/∂b = ∂L/∂A")] if net.bias else []),
        ("pooled images", "∂L/∂Z = W<sup>T</sup> ∂L/∂A"),
        ("convolved images", {
            "decimate": "∂L/∂Y<sub>k</sub>(i, j) = ∂L/∂Z<sub>k</sub>(i/2, j/2) at even i, j; 0 elsewhere",
            "max": "∂L/∂Y<sub>k</sub> = ∂L/∂Z<sub>k</sub> at the maximum of each window; 0 elsewhere",
            "avg": "∂L/∂Y<sub>k</sub>(2i+a, 2j+b) = ¼ ∂L/∂Z<sub>k</sub>(i, j)",
        }[net.pool] + (" &nbsp; (× 0 where Y<sub>k</sub> &lt; 0, for the ReLU)" if net.activation == "relu" else "")),
        ("filters", "∂L/∂f<sub>k</sub>(a, b) = Σ<sub>m,n</sub> ∂L/∂Y<sub>k</sub>(m, n) X(m+a, n+b)"),
    ]

    def rows(pairs: list[tuple[str, str]]) -> str:
        return "".join(f'<tr><td>{name}</td><td class="eq">{markup}</td></tr>' for name, markup in pairs)

    return "\n".join([
        "<h2>The network's equations</h2>",
        "<p>Forward: the image X is convolved with each filter f<sub>k</sub>, pooled, and multiplied by W into "
        "one score a<sub>j</sub> per class; the softmax turns the scores into probabilities P.</p>",
        f"<table>{rows(forward)}</table>",
        "<p>Backward: the chain rule carries ∂L/∂A back through each step; stochastic gradient descent then "
        "moves every parameter θ by θ ← θ − η ∂L/∂θ.</p>",
        f"<table>{rows(backward)}</table>",
    ])
