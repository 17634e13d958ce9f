"""One self-contained HTML page about a training run: its configuration, accuracies, figures and equations.

Everything is inside the one file (figures as base64 PNG data: URIs, the style sheet inline), so it
can be mailed or opened offline; it links to nothing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from scratchcnn._version import __version__
from scratchcnn.data import CLASS_NAMES, load_dataset
from scratchcnn.errors import ConfigError, DataError, ScratchCNNError
from scratchcnn.files import write_text_atomically
from scratchcnn.nn.metrics import confusion_matrix
from scratchcnn.nn.network import Network, as_stack, load_model, network_spec
from scratchcnn.nn.stack import Stack
from scratchcnn.nn.stack_layers import Conv, Dense, Flatten, Layer, Pool, ReLU
from scratchcnn.options import RunOptions
from scratchcnn.train.rundir import RunDir
from scratchcnn.viz import sweep_report
from scratchcnn.viz.experiment_figures import plot_overtraining, plot_tuning
from scratchcnn.viz.figures import figure_bytes, figure_stem, figures_bytes, model_figure_set
from scratchcnn.viz.html import STYLE, count, figure_html, fmt, pct, table
from scratchcnn.viz.report_baseline import baseline_section
from scratchcnn.viz.report_mistakes import mistakes_sections
from scratchcnn.viz.stack_figures import dense_maps, left_out

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
    # a deeper network's further convolutions (figure keys "kernels_2", ...): {n} is the convolution's number
    "kernels_n": "The filters f_kc of convolution {n}: a column per filter k, a row per input channel c (a map of "
                 "the layer before). Y_k sums each channel's map convolved with f_kc.",
    "convolved_n": "The maps Y_k of convolution {n} for the record, each divided by its largest |value| (printed "
                   "above it), so that a weak map stays visible.",
    "pooled_n": "The pooled maps Z_k of convolution {n}, each on its own scale likewise.",
}
SEED_FAMILY_OPTIONS = ("filters", "kernel_size", "pool", "activation", "bias")  # ConvNet's; a Stack ignores them


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                 data_dir: str | os.PathLike | None = None, baseline: str | os.PathLike | None = None) -> Path:
    """Write RUN_DIR's report (default RUN_DIR/report.html), atomically; returns its path.

    Reads RUN_DIR/history.json and model.npz (ScratchCNNError / ModelFileError if missing or corrupt),
    and tuning.json and overtraining.json when present. A sweep's folder (sweep.jsonl, no model.npz) gets
    the sweep's page instead (sweep_report.py). The test set (for the record and confusion
    figures) is looked up with data_dir, never downloaded; without it the report says so. ``baseline``: a run
    folder to compare with, side by side (report_baseline.py; default RUN_DIR/baseline when it holds a run).
    """
    run = RunDir(run_dir)
    if run.path.exists() and not run.path.is_dir():  # e.g. the run's model.npz, given for the run
        kind = "a model file" if run.path.suffix == ".npz" else "a file"
        holder = RunDir(run.path.parent)
        example = (holder.path if str(holder.path) != "." else Path.cwd()) if holder.summary.is_file() else "runs/demo"
        raise ScratchCNNError(f"{run.path}: that is {kind}; report takes a run folder such as {example}")
    if not run.path.is_dir():
        raise ScratchCNNError(f"{run.path}: no such run directory")
    if sweep_report.is_sweep_folder(run.path):  # a sweep's folder: its own page
        if baseline is not None:
            raise ConfigError(f"{run.path} is a sweep's folder: a baseline is compared with a training run")
        return sweep_report.write_sweep_report(run.path, out)
    with run.lock():  # not while a training process is writing the run
        return _write_report(run, out, data_dir, baseline)


def _write_report(run: RunDir, out: str | os.PathLike | None, data_dir: str | os.PathLike | None,
                  baseline: str | os.PathLike | None = None) -> Path:
    summary = run.read_summary()
    if summary is None:
        raise ScratchCNNError(f"{run.summary}: no such file (is {run.path} a run written by 'scratchcnn train'?)")
    net = load_model(run.model)
    options = summary.get("options") or {}
    dataset = net.dataset or options.get("dataset") or RunOptions.dataset
    class_names = CLASS_NAMES.get(dataset, CLASS_NAMES["mnist"])
    comparison = baseline_section(run, summary, net, class_names, baseline)  # first: a bad baseline fails at once
    image, label, matrix, note, test = _test_figures_input(net, dataset, run.data_dir(data_dir), summary)
    figures = model_figure_set(net, image, label, summary["history"], matrix, class_names)
    captions = {key: _caption(key, net) for key in figures}
    if "record" in captions:  # the test image was found
        P = net.predict_proba(image[None])[0]
        guess = class_names[int(P.argmax())]
        captions["record"] += f" Its label is {label}; the network predicts {guess} with probability {P.max():.2f}."
    body = [
        f"<h1>scratchcnn training run: {escape(run.path.resolve().name)}</h1>",
        f"<p>A {escape(_describe(net))}, trained on {escape(dataset)}.</p>",
        _results_section(summary),
        comparison,
        _configuration_section(net, options),
        "<h2>Figures</h2>",
        f'<p class="note">{escape(note)}</p>' if note else "",
        *(f'<p class="note">No {figure_stem(key)} figure: {escape(why)}.</p>' for key, why in left_out(net).items()),
        *(figure_html(png, captions[key]) for key, png in figures_bytes(figures, "png").items()),
        mistakes_sections(net, test, matrix, class_names),
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


def _test_figures_input(net: Network, dataset: str, data_dir: str | os.PathLike | None, summary: dict[str, Any]
                        ) -> tuple[np.ndarray | None, str, np.ndarray | None, str,
                                   tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """(first test image, its label, confusion matrix, note for the reader, (test images, labels, class scores A))
    — Nones without the test set."""
    names = CLASS_NAMES.get(dataset, CLASS_NAMES["mnist"])
    try:
        data = load_dataset(dataset, data_dir, download=False, image_shape=net.input_shape)
    except DataError as error:
        saved = summary.get("confusion_matrix")
        matrix = np.array(saved) if saved is not None and np.shape(saved) == (net.classes, net.classes) else None
        left_out = "the input record and its convolved and pooled images" + ("" if matrix is not None else
                                                                            " and the confusion matrix")
        return None, "", matrix, f"The {dataset} test set was not found, so {left_out} are left out. ({error})", None
    y = data.test_labels.astype(np.int64)
    A = net.scores(net.check_images(data.test_images))  # predict's scores, kept for the mistakes
    matrix = confusion_matrix(y, A.argmax(axis=1), net.classes)
    return data.test_images[0], names[y[0]], matrix, "", (data.test_images, y, A)


# ---- sections ------------------------------------------------------------------------------------


def _describe(net: Network) -> str:
    H, W = net.input_shape
    if isinstance(net, Stack):
        return f"Stack of {len(net.layers)} layers on {H}×{W} images ({network_spec(net)})"
    pool = {"decimate": "decimation", "max": "2×2 maximum", "avg": "2×2 average"}.get(net.pool, net.pool)
    return (f"ConvNet: {net.filters} filters of {net.kernel_size}×{net.kernel_size} on {H}×{W} images, "
            f"pooling by {pool}, activation {net.activation}, {'with' if net.bias else 'no'} bias")


def _results_section(summary: dict[str, Any]) -> str:
    rows = [["test accuracy", pct(summary.get("test_accuracy"))],
            ["validation accuracy (last epoch)", pct(summary.get("validation_accuracy"))],
            ["training accuracy (last epoch)", pct(summary.get("train_accuracy"))],
            ["test loss (mean −ln P_y)", fmt(summary.get("test_loss"), ".4f")],
            ["epochs", fmt(summary.get("epochs"))],
            ["seconds per epoch", fmt(summary.get("seconds_per_epoch"), ".2f")]]
    epochs = [[fmt(e.get("epoch")), fmt(e.get("records")), pct(e.get("train_accuracy")),
               fmt(e.get("train_loss"), ".4f"), pct(e.get("validation_accuracy")),
               fmt(e.get("validation_loss"), ".4f"), fmt(e.get("seconds"), ".2f")] for e in summary["history"]]
    stopped = summary.get("stopped")
    return "\n".join([
        "<h2>Accuracy</h2>", table(["", "value"], rows),
        f'<p class="note">Training stopped early: {escape(str(stopped))}</p>' if stopped else "",
        "<h3>After each epoch</h3>",
        table(["epoch", "records seen", "training accuracy", "training loss", "validation accuracy",
                "validation loss", "seconds"], epochs, numeric_from=0),
    ])


def _caption(key: str, net: Network) -> str:
    """The caption of figure ``key``; a deeper convolution's ("convolved_2") names its number."""
    base, _, number = key.rpartition("_")
    if number.isdigit():
        return CAPTIONS[base + "_n"].format(n=number)
    if key == "pooled" and dense_maps(as_stack(net)) is None:  # a deeper network: more layers read Z_k
        return "The pooled images Z_k of the first convolution: the input of the next layer."
    return CAPTIONS[key]


def _configuration_section(net: Network, options: dict[str, Any]) -> str:
    unset = {"epoch_size": "all training records", "train_size": "all records"}  # what None means
    config = {key: value for key, value in net.config.items() if key != "layers"}  # the layers: their own table
    model = [[key, fmt(value)] for key, value in {"spec": network_spec(net), **config, "dataset": net.dataset}.items()]
    unused = SEED_FAMILY_OPTIONS if isinstance(net, Stack) else ()  # a stack's shape is its spec alone
    training = [[key, unset.get(key, "–") if value is None else fmt(value)] for key, value in options.items()
                if key not in unused]
    stack = as_stack(net)
    layers = [[str(i + 1), layer.spec(), "×".join(map(str, stack.shapes[i + 1])),
               f"{sum(value.size for value in layer.params.values()):,}"] for i, layer in enumerate(stack.layers)]
    return "\n".join(["<h2>Configuration</h2>",
                      "<h3>Network (from model.npz)</h3>", table(["option", "value"], model, numeric_from=2),
                      "<h3>Its layers</h3>",
                      table(["layer", "spec", "output shape", "parameters"], layers, numeric_from=2),
                      "<h3>Training options (from history.json)</h3>", table(["option", "value"], training, 2)])


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
    rows = [[fmt(float(r)), pct(v), "yes" if d else "no"] for r, v, d in zip(rates, finals, diverged, strict=True)]
    best_row = next((n for n, r in enumerate(rates) if best is not None and math.isclose(r, best)), None)
    figure = figure_html(figure_bytes(plot_tuning(tuning)), "Left: the final validation accuracy of each learning "
                          "rate. Right: how it got there, epoch by epoch.")
    epochs, records, held_out = (tuning.get(key) for key in ("epochs", "train_size", "validation_size"))
    intro = (f"Each learning rate η trained the same network from the same start"
             f"{f' for {epochs} epochs' if epochs else ''}{f' on {records} records' if records else ''}"
             f"{f' ({count(held_out)} of them held out for validation)' if held_out else ''}; the best is "
             "highlighted. A rate that diverged (the loss became NaN or infinite) has no final accuracy.")
    return "\n".join(["<h2>Tuning the learning rate</h2>", f"<p>{escape(intro)}</p>",
                      table(["learning rate η", "final validation accuracy", "diverged"], rows, best=best_row),
                      f"<p>Best learning rate: <b>{escape(fmt(best))}</b>.</p>", figure])


def _overtraining_section(result: dict[str, Any]) -> str:
    losses = [math.inf if v is None else v for v in result.get("validation_loss") or []]
    figure = figure_html(figure_bytes(plot_overtraining(result)), "Upper: the few training records. Lower: "
                          "validation records never trained on." + (" Left: accuracy. Right: loss." if losses else ""))
    n_train, n_val = result.get("train_records", "?"), result.get("validation_records", "?")
    if "best_validation_loss" not in result and losses:  # a result saved before these keys existed
        lowest = losses.index(min(losses))
        result = {**result, "best_validation_loss": losses[lowest], "best_validation_loss_epoch": lowest + 1}
    rows = [[label, shown(result[key])] for label, key, shown in (
        ("epochs", "epochs", fmt), ("learning rate η", "learning_rate", fmt),
        ("first epoch with 100% training accuracy", "first_epoch_train_100", fmt),
        ("best validation accuracy", "best_validation_accuracy", pct),
        ("epoch of the best validation accuracy", "best_validation_epoch", fmt),
        ("final validation accuracy", "final_validation_accuracy", pct),
        ("lowest validation loss", "best_validation_loss", fmt),
        ("epoch of the lowest validation loss", "best_validation_loss_epoch", fmt),
        ) if key in result]
    if losses:
        rows.append(["final validation loss", fmt(losses[-1])])
    intro = (f"The network trained for many epochs on only {n_train} records and was checked after each epoch "
             f"on {n_val} validation records it never trained on. When the accuracy on the training records "
             "reaches 100% while the validation accuracy levels off or falls, the network has learnt those "
             "particular records rather than what their classes have in common: it is overtrained. The "
             "validation loss shows it most plainly: after its lowest point it rises, as the network grows "
             "ever more certain of the training records and of its mistakes on the others.")
    return "\n".join(["<h2>Overtraining</h2>", f"<p>{escape(intro)}</p>",
                      table(["", "value"], rows) if rows else "", figure])


def _equations_section(net: Network) -> str:
    """The network's equations in HTML (fixed markup, no user text), following its configuration."""
    if isinstance(net, Stack):
        return _stack_equations(net)
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

    return _equations_html(
        "Forward: the image X is convolved with each filter f<sub>k</sub>, pooled, and multiplied by W into "
        "one score a<sub>j</sub> per class; the softmax turns the scores into probabilities P.", forward,
        "Backward: the chain rule carries ∂L/∂A back through each step; stochastic gradient descent then "
        "moves every parameter θ by θ ← θ − η ∂L/∂θ.", backward)


def _equations_html(forward_text: str, forward: list[tuple[str, str]], backward_text: str,
                    backward: list[tuple[str, str]]) -> str:
    """The equations section: a paragraph and a table of (step, equation) rows, forward then backward."""

    def rows(pairs: list[tuple[str, str]]) -> str:
        return "".join(f'<tr><td>{name}</td><td class="eq">{markup}</td></tr>' for name, markup in pairs)

    return "\n".join(["<h2>The network's equations</h2>", f"<p>{forward_text}</p>", f"<table>{rows(forward)}</table>",
                      f"<p>{backward_text}</p>", f"<table>{rows(backward)}</table>"])


# ---- a deeper network's equations: one row per layer -------------------------------------------------

POOLING = {
    "decimate": "Z<sub>k</sub>(i, j) = Y<sub>k</sub>(2i, 2j) &nbsp; (decimation)",
    "max": "Z<sub>k</sub>(i, j) = max<sub>a,b ∈ {0,1}</sub> Y<sub>k</sub>(2i+a, 2j+b)",
    "avg": "Z<sub>k</sub>(i, j) = ¼ Σ<sub>a,b ∈ {0,1}</sub> Y<sub>k</sub>(2i+a, 2j+b)",
}
POOLING_BACKWARD = {
    "decimate": "∂L/∂Y<sub>k</sub>(2i, 2j) = ∂L/∂Z<sub>k</sub>(i, j); 0 elsewhere",
    "max": "∂L/∂Y<sub>k</sub> = ∂L/∂Z<sub>k</sub> at the (first) maximum of each window; 0 elsewhere",
    "avg": "∂L/∂Y<sub>k</sub>(2i+a, 2j+b) = ¼ ∂L/∂Z<sub>k</sub>(i, j)",
}


def _layer_equation(layer: Layer, channels: int) -> str:
    """One layer's forward equation in HTML; X is its input, with ``channels`` channels for a convolution."""
    if isinstance(layer, Conv):
        before = layer.pads()[0]
        shift = f"−{before}" if before else ""
        c, sum_c = ("<sub>c</sub>", "Σ<sub>c</sub> ") if channels > 1 else ("", "")
        return (f"Y<sub>k</sub>(i, j) = {sum_c}Σ<sub>a</sub> Σ<sub>b</sub> X{c}(i+a{shift}, j+b{shift}) "
                f"f<sub>k{'c' if channels > 1 else ''}</sub>(a, b){' + b<sub>k</sub>' if layer.bias else ''}"
                f" &nbsp; ({layer.filters} filters of {layer.kernel_size}×{layer.kernel_size}, "
                f"{'no padding' if not sum(layer.pads()) else layer.padding + ' padding: X = 0 outside the image'})")
    if isinstance(layer, ReLU):
        return "Y = max(0, X), value by value"
    if isinstance(layer, Pool):
        return POOLING[layer.how] + " &nbsp; (2×2 windows, stride 2)"
    if isinstance(layer, Flatten):
        return "x = the maps X<sub>1</sub> … X<sub>K</sub>, row by row, as one vector"
    assert isinstance(layer, Dense)
    return f"a = W x{' + b' if layer.bias else ''} &nbsp; ({layer.width} values)"


def _stack_equations(stack: Stack) -> str:
    """A Stack's equations in HTML: each layer's forward equation, then the backward rule of each kind."""
    forward = [(f"{i + 1}. {layer.spec()}", _layer_equation(layer, stack.shapes[i][0]))
               for i, layer in enumerate(stack.layers)]
    forward += [("softmax", "P<sub>j</sub> = e<sup>a<sub>j</sub></sup> / Σ<sub>k</sub> e<sup>a<sub>k</sub></sup>"),
                ("loss", "L = −ln P<sub>y</sub> &nbsp; (y the true class)")]
    kinds = {type(layer) for layer in stack.layers}
    backward = [("scores", "∂L/∂A = P − onehot(y)"),
                ("dense", "∂L/∂W = ∂L/∂a ⊗ x, &nbsp; ∂L/∂b = ∂L/∂a, &nbsp; ∂L/∂x = W<sup>T</sup> ∂L/∂a")]
    if Flatten in kinds:
        backward.append(("flatten", "∂L/∂X: ∂L/∂x cut back into maps"))
    if ReLU in kinds:
        backward.append(("relu", "∂L/∂X = ∂L/∂Y where X &gt; 0; 0 elsewhere"))
    backward += [(f"pool:{how}", POOLING_BACKWARD[how])
                 for how in dict.fromkeys(layer.how for layer in stack.layers if isinstance(layer, Pool))]
    if Conv in kinds:
        backward.append(("conv", "∂L/∂f<sub>kc</sub>(a, b) = Σ<sub>m,n</sub> ∂L/∂Y<sub>k</sub>(m, n) "
                         "X<sub>c</sub>(m+a, n+b), &nbsp; ∂L/∂b<sub>k</sub> = Σ<sub>m,n</sub> ∂L/∂Y<sub>k</sub>(m, n), "
                         "&nbsp; ∂L/∂X<sub>c</sub>(u, v) = Σ<sub>k</sub> Σ<sub>a,b</sub> ∂L/∂Y<sub>k</sub>(u−a, v−b) "
                         "f<sub>kc</sub>(a, b)"))
    return _equations_html(
        "Forward: each layer's output is the next one's input, from the image X to the scores a; the softmax "
        "turns the scores into probabilities P.", forward,
        "Backward: the chain rule carries ∂L/∂(output) back through each layer to ∂L/∂(input), collecting each "
        "parameter's gradient on the way; the optimiser then moves every parameter θ against ∂L/∂θ.", backward)
