"""A run remembers its data; a diverged run says so with its own exit status (issue: a newcomer's path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import last_json, run_main
from helpers import one_line_error

from scratchcnn import ConvNet
from scratchcnn.cli.options import EXIT_DIVERGED
from scratchcnn.train import sgd
from scratchcnn.train.checkpoint import load_checkpoint
from scratchcnn.train.rundir import RunDir

SMALL = ["--epochs", 2, "--batch-size", 4, "--engine", "numpy"]


# ---- a run remembers where its data came from ------------------------------------------------------


def test_commands_on_a_run_find_the_data_it_was_trained_on(fake: Path, isolated: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Trained with --data-dir and nothing else set: figures, evaluate, explore and report need no flag."""
    status, _out, err = run_main(["train", "--data-dir", fake, *SMALL, "--out", "run"], capsys)
    assert status == 0, err
    assert RunDir("run").read_summary()["data"] == {"dataset": "mnist", "directory": str(fake / "mnist")}
    status, out, err = run_main(["evaluate", "run/model.npz", "--no-download"], capsys)
    assert status == 0, err
    assert str(fake / "mnist") in out  # it says which data it used
    status, out, err = run_main(["figures", "run/model.npz", "--no-download", "--json"], capsys)
    assert status == 0, err
    assert "record" in last_json(out)["figures"]  # the test record's figures: the test set was found
    status, _out, err = run_main(["explore", "run/model.npz"], capsys)
    assert status == 0 and "note" not in err, err  # no "no test images embedded" note
    status, _out, err = run_main(["report", "run"], capsys)
    assert status == 0, err
    assert "was not found" not in (isolated / "run" / "report.html").read_text(encoding="utf-8")


def test_a_given_data_dir_still_wins_and_a_vanished_one_falls_back(fake: Path, isolated: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    status, _out, err = run_main(["train", "--data-dir", fake, *SMALL, "--out", "run"], capsys)
    assert status == 0, err
    run = RunDir("run")
    assert run.data_dir() == fake
    assert run.data_dir(isolated / "elsewhere") == isolated / "elsewhere"
    (fake / "mnist").rename(fake / "moved")
    assert run.data_dir() is None  # the usual search then, and its usual message
    status, _out, err = run_main(["evaluate", "run/model.npz", "--no-download"], capsys)
    one_line_error(status, err, "mnist not found")


# ---- a diverged run -----------------------------------------------------------------------------------


def test_a_run_diverging_in_its_first_epoch_saves_nothing_and_exits_3(fake: Path, isolated: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(["train", "--data-dir", fake, *SMALL, "--lr", 1e9, "--out", "run", "--json"], capsys)
    assert status == EXIT_DIVERGED == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scratchcnn: error: training diverged in epoch 1"), err
    assert "nothing was saved" in lines[0] and "--learning-rate" in lines[0]
    answer = last_json(out)
    assert answer["diverged_in_epoch"] == 1 and answer["model"] is None
    assert not (isolated / "run").exists()  # no model of initial parameters, no empty folder


def test_a_run_diverging_later_keeps_its_last_good_epoch_and_exits_3(
        fake: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Epoch 3 blows up (forced): the model is epoch 2's, the warning and --json say so, exit status 3."""
    real = sgd.engines.sgd_epoch
    calls = []

    def third_epoch_blows_up(net: ConvNet, *args: Any, **kwargs: Any) -> tuple[int, float]:
        calls.append(1)
        steps, loss = real(net, *args, **kwargs)
        if len(calls) == 3:
            net.W[...] = np.nan
            return steps, float("nan")
        return steps, loss

    monkeypatch.setattr(sgd.engines, "sgd_epoch", third_epoch_blows_up)
    status, out, err = run_main(["train", "--data-dir", fake, "--epochs", 4, "--batch-size", 4, "--engine", "numpy",
                                 "--out", "run", "--json"], capsys)
    assert status == EXIT_DIVERGED, err
    warnings = [line for line in err.splitlines() if line.startswith("scratchcnn: warning:")]
    assert len(warnings) == 1 and "epoch 3" in warnings[0] and "after epoch 2" in warnings[0], err
    summary = last_json(out)
    assert summary["diverged_in_epoch"] == 3 and summary["epochs"] == 2
    net = ConvNet.load(isolated / "run" / "model.npz")
    kept, state, _ = load_checkpoint(isolated / "run" / "checkpoint.npz")
    assert state.epoch == 2 and np.array_equal(net.W, kept.W) and np.isfinite(net.W).all()


def test_a_run_that_does_not_diverge_says_so_in_json(fake: Path, isolated: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(["train", "--data-dir", fake, *SMALL, "--out", "run", "--json"], capsys)
    assert status == 0, err
    assert last_json(out)["diverged_in_epoch"] is None
