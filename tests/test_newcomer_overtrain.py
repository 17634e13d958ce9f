"""``scratchcnn overtrain`` for a newcomer: a progress bar in epochs on a terminal, and the validation
loss (where overtraining shows most plainly) in the summary, the JSON, the figure and the report."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import last_json, run_main

from scratchcnn.cli import main
from scratchcnn.train import experiments, sgd
from scratchcnn.train.runs import train_run
from scratchcnn.viz import report
from scratchcnn.viz.experiment_figures import plot_overtraining
from scratchcnn.viz.report import write_report

SMALL = ["--epochs", 30, "--train-records", 20, "--validation-records", 50]
LOSS_KEYS = {"best_validation_loss", "best_validation_loss_epoch"}
# Five epochs: the validation loss falls to its minimum at epoch 3, then rises.
RESULT = {
    "train_accuracy": [0.4, 0.8, 1.0, 1.0, 1.0], "validation_accuracy": [0.5, 0.66, 0.7125, 0.70, 0.6875],
    "train_loss": [2.0, 0.9, 0.2, 0.05, 0.01], "validation_loss": [2.1, 1.2, 0.8125, 0.9, 1.0625],
    "train_records": 100, "validation_records": 1000, "first_epoch_train_100": 3,
    "best_validation_accuracy": 0.7125, "best_validation_epoch": 3, "final_validation_accuracy": 0.6875,
    "best_validation_loss": 0.8125, "best_validation_loss_epoch": 3,
}


@pytest.fixture(scope="module")
def small_json(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """A short overtraining run on real MNIST with --json: (the printed JSON, the saved overtraining.json)."""
    out = tmp_path_factory.mktemp("overtrain")
    stdout = io.StringIO()  # run_main needs capsys, which a module-scoped fixture cannot have
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        status = main([str(a) for a in ["overtrain", "--data-dir", data_dir, *SMALL, "--out", out, "--json"]])
    assert status == 0
    return last_json(stdout.getvalue()), json.loads((out / "overtraining.json").read_text())


def test_json_carries_the_lowest_validation_loss(small_json: tuple[dict[str, Any], dict[str, Any]]) -> None:
    printed, saved = small_json
    assert printed.keys() >= LOSS_KEYS
    losses = saved["validation_loss"]
    assert len(losses) == 30
    assert printed["best_validation_loss"] == saved["best_validation_loss"] == min(losses)
    assert printed["best_validation_loss_epoch"] == saved["best_validation_loss_epoch"] == losses.index(min(losses)) + 1
    # The experiment's point: the loss reaches its minimum early and then rises while training goes on.
    assert 1 < printed["best_validation_loss_epoch"] < 30
    assert losses[-1] > printed["best_validation_loss"]


def test_summary_lines_show_the_lowest_validation_loss(data_dir: Path, tmp_path: Path,
                                                       small_json: tuple[dict[str, Any], dict[str, Any]],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(["overtrain", "--data-dir", data_dir, *SMALL, "--out", tmp_path / "o"], capsys)
    assert status == 0, err
    saved = small_json[1]  # the same seed and sizes: the same numbers
    line = next((line for line in out.splitlines() if line.startswith("validation loss")), None)
    assert line == (f"validation loss: lowest {saved['best_validation_loss']:.4f} "
                    f"(epoch {saved['best_validation_loss_epoch']}), final {saved['validation_loss'][-1]:.4f}")


def test_overtrain_result_of_an_empty_history_has_no_lowest_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(experiments, "fit", lambda *args, **kwargs: sgd.History())
    images, labels = np.zeros((30, 28, 28), np.uint8), np.arange(30) % 10
    result = experiments.overtrain(images, labels, train_records=10, validation_records=20, epochs=1)
    assert result["best_validation_loss"] is None and result["best_validation_loss_epoch"] is None


def test_figure_draws_both_losses_beside_the_accuracies() -> None:
    fig = plot_overtraining(RESULT)
    labels = {line.get_label() for ax in fig.axes for line in ax.lines}
    assert {"training accuracy", "validation accuracy", "training loss", "validation loss"} <= labels
    assert any(label.startswith("lowest: 0.81") and label.endswith("at epoch 3") for label in labels), labels
    loss_axes = [ax for ax in fig.axes if any(line.get_label().endswith("loss") for line in ax.lines)]
    assert len(loss_axes) == 2 and all("loss" in ax.get_ylabel() for ax in loss_axes)
    train_loss = next(ax for ax in loss_axes if any(line.get_label() == "training loss" for line in ax.lines))
    assert train_loss.get_yscale() == "log"  # it falls by orders of magnitude
    curve = next(line for line in train_loss.lines if line.get_label() == "training loss")
    assert list(curve.get_ydata()) == RESULT["train_loss"]
    old = {key: value for key, value in RESULT.items() if "loss" not in key}
    assert len(plot_overtraining(old).axes) == 2  # a result without losses: the accuracies alone


def test_report_table_shows_the_lowest_validation_loss(tmp_path: Path, fake: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "model_figure_set", lambda *args: {})  # the overtraining section is the point
    out = tmp_path / "run"
    train_run({"epochs": 1, "train_size": 40, "validation_size": 10}, out, data_dir=fake, download=False)
    (out / "overtraining.json").write_text(json.dumps(RESULT))
    text = write_report(out, data_dir=fake).read_text(encoding="utf-8")
    assert "<tr><td>lowest validation loss</td><td class=num>0.8125</td></tr>" in text
    assert "<tr><td>epoch of the lowest validation loss</td><td class=num>3</td></tr>" in text


def test_report_finds_the_lowest_loss_of_an_older_result() -> None:
    """An overtraining.json saved before the keys existed: the minimum comes from the list."""
    old = {key: value for key, value in RESULT.items() if not key.startswith("best_validation_loss")}
    html = report._overtraining_section(old)
    assert "<tr><td>lowest validation loss</td><td class=num>0.8125</td></tr>" in html
    assert "<tr><td>epoch of the lowest validation loss</td><td class=num>3</td></tr>" in html


def test_progress_bar_counts_epochs_on_a_terminal(fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    args = ["overtrain", "--data-dir", fake, "--epochs", 3, "--train-records", 20, "--validation-records", 20,
            "--out", tmp_path / "o"]
    status, out, err = run_main(args, capsys)
    assert status == 0, err
    assert "%|" in err and re.search(r"\b3/3 \[", err), err  # epochs done out of epochs asked for
    assert "epoch" in err and "train=" in err and "val=" in err and "val_loss=" in err
    status, out, err = run_main([*args, "--json"], capsys)
    assert status == 0, err
    assert "%|" not in err
    assert last_json(out).keys() >= LOSS_KEYS
