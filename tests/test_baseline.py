"""The previous article's baseline, ``--arch softmax`` (A = W X + b on the pixels, no convolution), trained
like any network on the shared MNIST, and ``scratchcnn report`` putting a run and its baseline side by side."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_fake_dataset, run_main
from helpers import one_line_error

from scratchcnn.errors import ConfigError
from scratchcnn.nn.network import load_model
from scratchcnn.nn.stack import Stack
from scratchcnn.nn.stack_layers import Dense, Flatten
from scratchcnn.options import resolve
from scratchcnn.viz import report
from scratchcnn.viz.report_baseline import RunResult, verdict

SMALL = ["--epochs", 2, "--train-size", 1000, "--validation-size", 100, "--learning-rate", 0.005]
SECTION = re.compile(r"<h2>Against the baseline</h2>(.*?)(?=<h2>)", re.S)
SENTENCE = re.compile(r"The convolution took test accuracy from (\d+\.\d+)% \(the baseline\) to (\d+\.\d+)%: "
                      r"(\d+) (fewer|more) errors in 10 000 \(([−+])\d+\.\d%\)\.")


def train(capsys: pytest.CaptureFixture[str], data: Path, out: Path, *flags: Any) -> dict[str, Any]:
    status, stdout, err = run_main(["train", "--data-dir", data, "--out", out, "--json", *flags], capsys)
    assert status == 0, err
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """A seed-network run (1 000 records, 2 epochs) with a softmax run of the same size in run/baseline."""
    from scratchcnn.cli import main

    root = tmp_path_factory.mktemp("runs")
    summaries = []
    for out, flags in ((root / "seed", []), (root / "seed" / "baseline", ["--arch", "softmax"])):
        assert main([str(a) for a in ["train", "--data-dir", data_dir, "--out", out, "--json", *SMALL, *flags]]) == 0
        summaries.append(json.loads((out / "history.json").read_text()))
    return root / "seed", summaries[0], summaries[1]


def test_softmax_is_one_dense_layer_on_the_pixels_and_trains_and_evaluates(
        runs: tuple[Path, dict, dict], data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, _, summary = runs
    net = load_model(run / "baseline" / "model.npz")
    assert isinstance(net, Stack) and [type(layer) for layer in net.layers] == [Flatten, Dense]
    assert {name: value.shape for name, value in net.parameters().items()} == {"1.W": (10, 784), "1.b": (10,)}
    assert summary["options"]["arch"] == "softmax" and summary["engine"] == "numba"
    assert summary["test_accuracy"] > 0.8  # a linear classifier on 1 000 MNIST records, 2 epochs: ~0.85
    status, out, err = run_main(["evaluate", run / "baseline" / "model.npz", "--data-dir", data_dir, "--json"],
                                capsys)
    assert status == 0, err
    assert json.loads(out)["test_accuracy"] == pytest.approx(summary["test_accuracy"])


def test_the_numpy_and_compiled_engines_train_the_same_softmax(data_dir: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--arch", "softmax", "--epochs", 2, "--train-size", 300, "--validation-size", 50, "--dtype", "float64"]
    numpy = train(capsys, data_dir, tmp_path / "numpy", *flags, "--engine", "numpy")
    numba = train(capsys, data_dir, tmp_path / "numba", *flags, "--engine", "numba")
    assert (numpy["engine"], numba["engine"]) == ("numpy", "numba")
    one, other = (load_model(tmp_path / name / "model.npz").parameters() for name in ("numpy", "numba"))
    for name in one:
        np.testing.assert_allclose(one[name], other[name], rtol=1e-9, atol=1e-12)
    assert numpy["test_accuracy"] == numba["test_accuracy"]


@pytest.mark.parametrize(("given", "flag"), [({"filters": 4}, "--filters"), ({"kernel_size": 5}, "--kernel-size"),
                                             ({"pool": "max"}, "--pool"), ({"activation": "relu"}, "--activation"),
                                             ({"bias": True}, "--bias"), ({"layers": "flatten,dense"}, "--layers")])
def test_flags_softmax_would_ignore_are_refused(given: dict[str, Any], flag: str) -> None:
    with pytest.raises(ConfigError, match=f"{flag}.*--arch softmax|--arch or {flag}"):
        resolve({"arch": "softmax", **given})


def test_the_command_line_refuses_them_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_main(["train", "--arch", "softmax", "--filters", 4, "--out", tmp_path / "run"], capsys)
    one_line_error(status, err, "--filters", "--arch softmax")
    assert not (tmp_path / "run").exists()


def comparison(page: str, run_summary: dict, baseline_summary: dict) -> str:
    """The page's baseline section, checked: the sentence, both accuracies, 10 class rows, two images."""
    section = SECTION.search(page)
    assert section, "no baseline section"
    text = section.group(1)
    sentence = SENTENCE.search(text)
    assert sentence, text[:2000]
    assert float(sentence.group(1)) == pytest.approx(100 * baseline_summary["test_accuracy"], abs=0.005)
    assert float(sentence.group(2)) == pytest.approx(100 * run_summary["test_accuracy"], abs=0.005)
    errors = [10_000 - int(np.trace(np.array(s["confusion_matrix"]))) for s in (baseline_summary, run_summary)]
    fewer = errors[0] - errors[1]
    assert fewer != 0  # (the sentence has another form for equal counts)
    assert int(sentence.group(3)) == abs(fewer)
    assert (sentence.group(4), sentence.group(5)) == (("fewer", "−") if fewer > 0 else ("more", "+"))
    class_rows = re.findall(r"<tr><td>(\d)</td><td class=num>[\d.]+%</td><td class=num>[\d.]+%</td>", text)
    assert class_rows == [str(c) for c in range(10)]
    assert text.count("data:image/png;base64,") == 2
    return text


def test_report_compares_with_run_baseline_and_with_the_flag(runs: tuple[Path, dict, dict], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    run, seed, softmax = runs
    monkeypatch.setattr(report, "model_figure_set", lambda *args: {})  # the run's own figures: test_report.py
    no_data = tmp_path / "no-data"  # the test set left out: the comparison needs only the two runs' files
    no_data.mkdir()
    status, _, err = run_main(["report", run, "--data-dir", no_data], capsys)  # RUN/baseline found by itself
    assert status == 0, err
    comparison((run / "report.html").read_text(encoding="utf-8"), seed, softmax)
    moved = tmp_path / "softmax"
    (run / "baseline").rename(moved)
    try:
        status, _, err = run_main(["report", run, "--data-dir", no_data, "--baseline", moved,
                                   "--out", tmp_path / "flag.html"], capsys)
    finally:
        moved.rename(run / "baseline")
    assert status == 0, err
    text = comparison((tmp_path / "flag.html").read_text(encoding="utf-8"), seed, softmax)
    assert str(moved) in text


def test_a_bad_baseline_is_one_line_naming_it(runs: tuple[Path, dict, dict], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = runs[0]
    empty = tmp_path / "empty"
    empty.mkdir()  # also the data folder: no test set needed to fail
    fashion = make_fake_dataset(tmp_path / "fake", name="fashion-mnist")
    train(capsys, fashion, tmp_path / "fashion", "--dataset", "fashion-mnist", "--arch", "softmax", "--epochs", 1)
    for baseline, why in ((empty, "not a run folder"), (tmp_path / "missing", "not a run folder"),
                          (tmp_path / "fashion", "fashion-mnist")):
        status, _, err = run_main(["report", run, "--baseline", baseline, "--data-dir", empty,
                                   "--out", tmp_path / "r.html"], capsys)
        one_line_error(status, err, f"baseline {baseline}", why)
    assert not (tmp_path / "r.html").exists()


def result(errors: int, convolutional: bool) -> RunResult:
    """A run on 1 000 test images of 10 classes with ``errors`` of them wrong (all class 0 taken for 1)."""
    matrix = np.diag(np.full(10, 100))
    matrix[0, 0], matrix[0, 1] = 100 - errors, errors
    return RunResult("mnist", None, None, convolutional, 1 - errors / 1000, matrix)


@pytest.mark.parametrize(("run", "baseline", "expected"), [
    (result(40, True), result(80, False), "The convolution took test accuracy from 92.00% (the baseline) to 96.00%: "
                                          "40 fewer errors in 1 000 (−50.0%)."),
    (result(80, True), result(40, False), "The convolution took test accuracy from 96.00% (the baseline) to 92.00%: "
                                          "40 more errors in 1 000 (+100.0%)."),
    (result(40, True), result(40, False), "The convolution left test accuracy where the baseline has it, at 96.00%: "
                                          "the same number of errors in 1 000."),
    (result(40, False), result(80, False), "This network took test accuracy from 92.00% (the baseline) to 96.00%: "
                                           "40 fewer errors in 1 000 (−50.0%)."),
])
def test_the_sentence_says_what_the_network_bought(run: RunResult, baseline: RunResult, expected: str) -> None:
    assert verdict(run, baseline) == expected
