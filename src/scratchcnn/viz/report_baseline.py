"""The report's comparison with a baseline run: what the network gained over, e.g., ``--arch softmax``.

A baseline is another training run folder on the same dataset: given to ``scratchcnn report --baseline``,
or found at RUN_DIR/baseline/ when that folder holds a run (its history.json). The section puts both runs'
test accuracy, per-class accuracy and confusion matrices side by side, and says in one sentence what
the network bought: fewer errors on the same test images. Everything is read from the two runs' history.json
(test accuracy and confusion matrix, written by train) and model.npz (the layers), so no data is needed.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from scratchcnn.errors import ConfigError, ScratchCNNError, first_line
from scratchcnn.nn.network import Network, as_stack, load_model, network_spec
from scratchcnn.nn.stack_layers import Conv
from scratchcnn.options import RunOptions
from scratchcnn.train.rundir import RunDir
from scratchcnn.viz.figures import figures_bytes, plot_confusion
from scratchcnn.viz.html import pct, table

BASELINE_FOLDER = "baseline"  # RUN_DIR/baseline/: a run compared automatically when it holds one


@dataclass(frozen=True)
class RunResult:
    """What the comparison needs of one run: its dataset, network, test accuracy and confusion matrix (C, C)."""

    dataset: str
    spec: str | None  # the network as a spec string; None when model.npz is missing
    parameters: int | None
    convolutional: bool
    accuracy: float
    matrix: np.ndarray  # M[i, j]: test images of class i predicted as j

    @property
    def errors(self) -> int:
        return int(self.matrix.sum() - np.trace(self.matrix))

    @property
    def per_class(self) -> np.ndarray:
        """Accuracy on each class's test images, (C,); NaN for a class with none."""
        totals = self.matrix.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.matrix) / totals


def baseline_folder(run: RunDir, given: str | os.PathLike | None) -> Path | None:
    """The baseline to compare with: ``given``, else RUN_DIR/baseline when it holds a run, else None."""
    if given is not None:
        return Path(given)
    auto = RunDir(run.path / BASELINE_FOLDER)
    return auto.path if auto.summary.is_file() else None


def run_result(path: Path, summary: dict[str, Any], net: Network | None, name: str) -> RunResult:
    """A run's result from its (checked) history.json and its network; ConfigError naming ``name`` if amiss."""
    options = summary.get("options") or {}
    recorded = summary.get("data") if isinstance(summary.get("data"), dict) else {}
    dataset = (net.dataset if net is not None else None) or options.get("dataset") or recorded.get("dataset") \
        or RunOptions.dataset
    accuracy, matrix = summary.get("test_accuracy"), summary.get("confusion_matrix")
    if accuracy is None or matrix is None or not len(matrix):
        raise ConfigError(f"{name} {path}: its history.json has no test accuracy and confusion matrix "
                          "(a run that did not finish?)")
    stack = as_stack(net) if net is not None else None
    return RunResult(
        dataset=str(dataset), spec=network_spec(net) if net is not None else None,
        parameters=sum(value.size for value in stack.parameters().values()) if stack is not None else None,
        convolutional=stack is not None and any(isinstance(layer, Conv) for layer in stack.layers),
        accuracy=float(accuracy), matrix=np.asarray(matrix, dtype=np.int64))


def read_baseline(folder: Path) -> RunResult:
    """The baseline run in ``folder``; ConfigError, one line naming it, when it is no finished run folder."""
    run = RunDir(folder)
    if not run.path.is_dir():
        raise ConfigError(f"baseline {folder}: not a run folder (no such folder)")
    try:
        summary = run.read_summary()
    except ScratchCNNError as error:
        raise ConfigError(f"baseline {folder}: {first_line(error)}") from None
    if summary is None:
        raise ConfigError(f"baseline {folder}: not a run folder (no {run.SUMMARY}: give a folder written by "
                          "scratchcnn train)")
    try:
        net = load_model(run.model) if run.model.is_file() else None
    except ScratchCNNError as error:
        raise ConfigError(f"baseline {folder}: {first_line(error)}") from None
    return run_result(folder, summary, net, "baseline")


def check_comparable(run: RunResult, baseline: RunResult, folder: Path) -> None:
    """ConfigError naming the baseline when its test set is not the run's: another dataset, classes or size."""
    if baseline.dataset != run.dataset:
        raise ConfigError(f"baseline {folder}: trained on {baseline.dataset}, but this run on {run.dataset}; "
                          "compare runs on the same dataset")
    if baseline.matrix.shape != run.matrix.shape or baseline.matrix.sum() != run.matrix.sum():
        raise ConfigError(f"baseline {folder}: scored on {int(baseline.matrix.sum())} test images of "
                          f"{len(baseline.matrix)} classes, this run on {int(run.matrix.sum())} of {len(run.matrix)}")


def verdict(run: RunResult, baseline: RunResult) -> str:
    """One sentence: what the network bought over the baseline, in accuracy and errors on the same test images."""
    subject = "The convolution" if run.convolutional and not baseline.convolutional else "This network"
    total = _spaced(int(run.matrix.sum()))
    fewer = baseline.errors - run.errors
    if fewer == 0:
        return (f"{subject} left test accuracy where the baseline has it, at {pct(run.accuracy)}: the same number "
                f"of errors in {total}.")
    relative = f" ({'−' if fewer > 0 else '+'}{abs(fewer) / baseline.errors:.1%})" if baseline.errors else ""
    return (f"{subject} took test accuracy from {pct(baseline.accuracy)} (the baseline) to {pct(run.accuracy)}: "
            f"{abs(fewer)} {'fewer' if fewer > 0 else 'more'} errors in {total}{relative}.")


def _spaced(count: int) -> str:
    """A count with its thousands set apart by spaces: 10 000."""
    return f"{count:,}".replace(",", " ")


def _points(difference: float) -> str:
    """A difference of two accuracies in percentage points, signed."""
    return "–" if np.isnan(difference) else f"{difference * 100:+.2f}".replace("-", "−")


def comparison_section(run: RunResult, baseline: RunResult, class_names: list[str] | tuple[str, ...],
                       baseline_shown: str) -> str:
    """The HTML section: the sentence, the two runs' numbers, per-class accuracy and both confusion matrices."""
    def described(result: RunResult) -> str:
        return result.spec or "model.npz not found"

    overall = [["network (spec)", described(baseline), described(run)],
               ["parameters", *(f"{r.parameters:,}" if r.parameters is not None else "–" for r in (baseline, run))],
               ["test accuracy", pct(baseline.accuracy), pct(run.accuracy)],
               [f"errors in {_spaced(int(run.matrix.sum()))} test images", str(baseline.errors), str(run.errors)]]
    names = list(class_names) if len(class_names) == len(run.matrix) else [str(c) for c in range(len(run.matrix))]
    per_class = [[str(name), pct(b), pct(r), _points(r - b)]
                 for name, b, r in zip(names, baseline.per_class, run.per_class, strict=True)]
    figures = {"baseline": plot_confusion(baseline.matrix, names), "run": plot_confusion(run.matrix, names)}
    pngs = figures_bytes(figures, "png")
    return "\n".join([
        "<h2>Against the baseline</h2>",
        f"<p>The baseline is the run in {escape(baseline_shown)}, scored on the same {escape(run.dataset)} test "
        "images.</p>",
        f"<p><b>{escape(verdict(run, baseline))}</b></p>",
        table(["", "baseline", "this run"], overall),
        "<h3>Accuracy on each class</h3>",
        table(["class", "baseline", "this run", "difference (percentage points)"], per_class),
        '<div style="display: flex; flex-wrap: wrap; gap: 1em">',
        _side_figure(pngs["baseline"], "The baseline's confusion matrix on the test set."),
        _side_figure(pngs["run"], "This run's confusion matrix on the same images."),
        "</div>",
    ])


def _side_figure(png: bytes, caption: str) -> str:
    """An embedded PNG figure that shares a row with another when the page is wide enough."""
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure style="flex: 1 1 26em; margin: .5em 0"><img src="data:image/png;base64,{data}" '
            f'alt="{escape(caption)}"><figcaption>{escape(caption)}</figcaption></figure>')


def baseline_section(run: RunDir, summary: dict[str, Any], net: Network, class_names: list[str] | tuple[str, ...],
                     given: str | os.PathLike | None) -> str:
    """The report's comparison section for run (its history.json ``summary``, its network); "" without a baseline.

    ``given``: a baseline run folder (report --baseline), else RUN_DIR/baseline when it holds a run.
    ConfigError, one line naming the baseline, when it is no run folder or was trained on another dataset.
    """
    folder = baseline_folder(run, given)
    if folder is None:
        return ""
    baseline = read_baseline(folder)
    this = run_result(run.path, summary, net, "run")
    check_comparable(this, baseline, folder)
    return comparison_section(this, baseline, class_names, str(folder))
