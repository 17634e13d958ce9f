"""The write-up's two experiments, tuning the learning rate and overtraining on 100 records, on real
MNIST: the library functions, the ``tune``/``overtrain`` commands, and the ``figures``/``report`` commands
that draw a run and its experiments (every PNG, SVG and HTML file is parsed, not just found)."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pytest
from conftest import last_json, run_main

from scratchcnn.data import load_dataset
from scratchcnn.errors import ConfigError
from scratchcnn.train import experiments
from scratchcnn.train import sgd as train
from scratchcnn.train.sweep_spec import point_key

RATES = (0.001, 0.01, 5.0)  # 5 diverges within the first epoch
TUNE_SMALL = {"epochs": 2, "train_size": 1000, "validation_size": 200, "seed": 0}
OVERTRAIN_EPOCHS = 30
FIGURES = ("01-record", "02-record-surface", "03-kernels", "04-kernel-surfaces", "05-convolved", "06-pooled",
           "07-accuracy", "08-confusion", "09-weights")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
PNG_URI = "data:image/png;base64,"
VOID = {"meta", "img", "br", "hr", "link", "input"}


# ---- helpers -----------------------------------------------------------------------------------


def cli(*args: Any, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m scratchcnn ARGS`` in cwd, $HOME = cwd, no $SCRATCHCNN_DATA (pass --data-dir)."""
    env = {k: v for k, v in os.environ.items() if k != "SCRATCHCNN_DATA"}
    env["HOME"] = str(cwd)
    return subprocess.run([sys.executable, "-m", "scratchcnn", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def assert_one_line_error(status: int, err: str, *fragments: str) -> None:
    """Exit 2 and exactly one line on stderr, ``scratchcnn: error: ...``, naming each fragment."""
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("scratchcnn: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_usage_error(status: int, out: str, err: str, *fragments: str) -> None:
    """argparse's refusal: exit 2, nothing on stdout, the usage then one error line naming the problem."""
    assert status == 2, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("usage: ")
    errors = [line for line in lines if "error:" in line]
    assert errors == [lines[-1]], err
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def png_size(data: bytes) -> tuple[int, int]:
    """Check a PNG's signature, IHDR chunk (with its CRC) and IEND trailer; returns (width, height)."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", data[16:24])
    (crc,) = struct.unpack(">I", data[29:33])
    assert crc == zlib.crc32(data[12:29]), "IHDR CRC"
    assert data.endswith(PNG_END)
    return width, height


def assert_sensible_png(data: bytes) -> None:
    width, height = png_size(data)
    assert 100 <= width <= 5000 and 100 <= height <= 5000, (width, height)
    assert len(data) > 1000


class Page(HTMLParser):
    """A parsed HTML page: start tags, the rows of its tables (cell texts, whether the row is 'best')."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.open: list[str] = []
        self.rows: list[tuple[list[str], bool]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag not in VOID:
            self.open.append(tag)
        if tag == "tr":
            self.rows.append(([], attributes.get("class") == "best"))
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1][0].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist(data_dir: Path) -> Any:
    return load_dataset("mnist", data_dir, download=False)


@pytest.fixture(scope="module")
def tuned(mnist: Any) -> dict[str, Any]:
    return experiments.tune(mnist.train_images, mnist.train_labels, learning_rates=[5.0, 0.001, 0.01], jobs=1,
                            **TUNE_SMALL)


@pytest.fixture(scope="module")
def overtrained(mnist: Any) -> dict[str, Any]:
    """overtrain on real MNIST, with the training and validation sets fit evaluates on recorded."""
    seen: list[np.ndarray] = []
    real_evaluate = train.evaluate

    def spy(net: Any, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        if len(seen) < 2:  # epoch 1: the training set, then the validation set
            pixels = X if X.dtype == np.uint8 else np.rint(np.asarray(X, np.float64) * 255).astype(np.uint8)
            seen.append(pixels.copy())
        return real_evaluate(net, X, y)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train, "evaluate", spy)
        result = experiments.overtrain(mnist.train_images, mnist.train_labels, epochs=OVERTRAIN_EPOCHS)
    return {"result": result, "train_set": seen[0], "validation_set": seen[1]}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    """One real run folder: train, then tune and overtrain into the same folder, then report it."""
    cwd = tmp_path_factory.mktemp("experiments")
    procs = {
        "train": cli("train", "--data-dir", data_dir, "--train-size", 2000, "--epochs", 2, "--out", "run", "--json",
                     cwd=cwd),
        "tune": cli("tune", "--data-dir", data_dir, "--learning-rates", "0.001,0.01,5", "--epochs", 2,
                    "--train-size", 1000, "--validation-size", 200, "--out", "run", "--json", cwd=cwd),
        "overtrain": cli("overtrain", "--data-dir", data_dir, "--epochs", 20, "--json", "--out", "run", cwd=cwd),
    }
    procs["report"] = cli("report", "run", "--data-dir", data_dir, cwd=cwd)
    return {"cwd": cwd, "out": cwd / "run", **procs}


# ---- experiments.tune --------------------------------------------------------------------------


def test_tune_reports_every_rate_sorted(tuned: dict[str, Any]) -> None:
    assert tuned.keys() >= {"learning_rates", "validation_accuracy", "diverged", "best_learning_rate", "curves",
                            "epochs", "train_size", "validation_size", "seed"}
    assert tuned["learning_rates"] == sorted(RATES)
    assert len(tuned["validation_accuracy"]) == len(tuned["diverged"]) == len(tuned["curves"]) == len(RATES)
    assert (tuned["epochs"], tuned["train_size"], tuned["validation_size"]) == (2, 1000, 200)
    json.dumps(tuned, allow_nan=False)  # JSON-able as it stands


def test_tune_flags_the_huge_rate_as_diverged(tuned: dict[str, Any]) -> None:
    assert tuned["diverged"] == [False, False, True]
    assert tuned["validation_accuracy"][2] is None
    assert len(tuned["curves"][2]) < TUNE_SMALL["epochs"]
    for final, curve in zip(tuned["validation_accuracy"][:2], tuned["curves"][:2], strict=True):
        assert len(curve) == TUNE_SMALL["epochs"]  # one value per epoch
        assert all(0 <= a <= 1 for a in curve)
        assert final == curve[-1]
        assert final > 0.3  # a real network learnt something in 2 epochs of 800 records


def test_tune_best_is_the_highest_final_accuracy(tuned: dict[str, Any]) -> None:
    finals = {r: a for r, a, d in zip(tuned["learning_rates"], tuned["validation_accuracy"], tuned["diverged"],
                                      strict=True) if not d}
    assert tuned["best_learning_rate"] == max(finals, key=lambda r: (finals[r], -r))
    assert tuned["best_learning_rate"] != 5.0


def fake_runs(monkeypatch: pytest.MonkeyPatch, finals: dict[float, float | None]) -> list[float]:
    """Replace the training of each rate by a canned result; returns the rates it was asked for."""
    asked: list[float] = []

    def one_rate(images: Any, labels: Any, options: dict[str, Any], network: Any, point: dict[str, Any],
                 directories: dict[str, str]) -> dict[str, Any]:
        rate = point["learning_rate"]
        asked.append(rate)
        final = finals[rate]
        curve = [] if final is None else [final / 2] * (options["epochs"] - 1) + [final]
        return {"key": point_key(point), "options": point, "status": "diverged" if final is None else "ok",
                "learning_rate": rate, "diverged": final is None, "curve": curve, "final": final}

    monkeypatch.setattr(experiments, "_train_one_rate", one_rate)
    return asked


@pytest.mark.parametrize(("finals", "best"), [
    ({0.001: 0.8, 0.01: 0.9, 0.1: 0.9, 1.0: None}, 0.01),  # a tie goes to the smaller rate
    ({0.001: 0.9, 0.01: 0.9, 0.1: 0.9}, 0.001),
    ({0.001: 0.5, 0.01: 0.7, 0.1: 0.95}, 0.1),  # a larger rate wins when it is strictly better
    ({0.001: 0.2, 0.3: 0.4, 3.0: None}, 0.3),  # diverged rates never win
    ({0.1: None, 1.0: None}, None),  # all diverged: no best
])
def test_tune_selection_rule(finals: dict[float, float | None], best: float | None, mnist: Any,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_runs(monkeypatch, finals)
    given = list(reversed(finals))  # any order in, sorted out
    result = experiments.tune(mnist.train_images[:10], mnist.train_labels[:10], learning_rates=given, epochs=3,
                              validation_size=2, jobs=1)
    assert result["best_learning_rate"] == best
    assert result["learning_rates"] == sorted(finals) == sorted(asked)
    assert result["validation_accuracy"] == [finals[r] for r in sorted(finals)]
    assert result["diverged"] == [finals[r] is None for r in sorted(finals)]
    assert [len(c) for c in result["curves"]] == [0 if finals[r] is None else 3 for r in sorted(finals)]


def test_tune_trains_each_rate_once(mnist: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_runs(monkeypatch, {0.01: 0.5, 0.1: 0.6})
    result = experiments.tune(mnist.train_images[:10], mnist.train_labels[:10], validation_size=2,
                              learning_rates=[0.1, 0.01, 0.1], jobs=1)
    assert sorted(asked) == [0.01, 0.1]
    assert result["learning_rates"] == [0.01, 0.1]


def test_tune_does_not_depend_on_the_number_of_processes(tuned: dict[str, Any], mnist: Any) -> None:
    again = experiments.tune(mnist.train_images, mnist.train_labels, learning_rates=RATES, jobs=2, **TUNE_SMALL)
    assert again == tuned


def test_tuning_csv_has_one_row_per_rate(tuned: dict[str, Any]) -> None:
    rows = list(csv.DictReader(io.StringIO(experiments.tuning_csv(tuned))))
    assert [float(row["learning_rate"]) for row in rows] == tuned["learning_rates"]
    assert [row["diverged"] for row in rows] == ["False", "False", "True"]
    assert [row["best"] == "True" for row in rows] == [r == tuned["best_learning_rate"]
                                                      for r in tuned["learning_rates"]]
    assert rows[2]["final_validation_accuracy"] == "" and rows[2]["epoch_2"] == ""
    for row, curve in zip(rows[:2], tuned["curves"][:2], strict=True):
        assert [float(row["epoch_1"]), float(row["epoch_2"])] == curve
        assert float(row["final_validation_accuracy"]) == curve[-1]


@pytest.mark.parametrize(("rates", "validation_size"), [
    ([], 200),
    ([0.0], 200),
    ([0.1, -1.0], 200),
    ([float("nan")], 200),
    ([0.01], 0),
    ([0.01], 0.0),
])
def test_tune_refuses_bad_inputs(rates: list[float], validation_size: float, mnist: Any) -> None:
    with pytest.raises(ConfigError):
        experiments.tune(mnist.train_images, mnist.train_labels, learning_rates=rates, epochs=1, train_size=1000,
                         validation_size=validation_size, jobs=1)


def test_tune_refuses_a_fraction_that_leaves_no_validation_records(mnist: Any) -> None:
    with pytest.raises(ConfigError):
        experiments.tune(mnist.train_images, mnist.train_labels, learning_rates=[0.01], epochs=1, train_size=1000,
                         validation_size=0.0001, jobs=1)


# ---- experiments.overtrain ---------------------------------------------------------------------


def test_overtrain_records_every_epoch(overtrained: dict[str, Any]) -> None:
    result = overtrained["result"]
    assert result["stopped"] is None
    for key in ("train_accuracy", "validation_accuracy", "train_loss", "validation_loss"):
        assert len(result[key]) == OVERTRAIN_EPOCHS, key
    assert all(0 <= a <= 1 for a in result["train_accuracy"] + result["validation_accuracy"])
    assert (result["epochs"], result["train_records"], result["validation_records"]) == (
        OVERTRAIN_EPOCHS, experiments.OVERTRAIN_RECORDS, experiments.OVERTRAIN_VALIDATION)
    json.dumps(result, allow_nan=False)


def test_overtrain_memorises_the_training_records(overtrained: dict[str, Any]) -> None:
    result = overtrained["result"]
    train_accuracy = result["train_accuracy"]
    first = result["first_epoch_train_100"]
    assert first is not None
    assert train_accuracy[first - 1] == 1.0
    assert all(a < 1.0 for a in train_accuracy[: first - 1])
    assert train_accuracy[-1] == 1.0
    assert result["train_loss"][-1] < result["train_loss"][0]


def test_overtrain_best_and_final_validation_agree_with_the_list(overtrained: dict[str, Any]) -> None:
    result = overtrained["result"]
    validation = result["validation_accuracy"]
    assert result["best_validation_accuracy"] == max(validation)
    assert result["best_validation_epoch"] == validation.index(max(validation)) + 1  # the first best epoch
    assert result["final_validation_accuracy"] == validation[-1]
    assert validation[-1] < result["train_accuracy"][-1]  # it generalises worse than it memorises
    assert 0.4 < validation[-1] < 0.95


def test_overtrain_samples_are_disjoint_records_of_the_data(overtrained: dict[str, Any], mnist: Any) -> None:
    train_set, validation_set = overtrained["train_set"], overtrained["validation_set"]
    assert len(train_set) == experiments.OVERTRAIN_RECORDS
    assert len(validation_set) == experiments.OVERTRAIN_VALIDATION
    index = {image.tobytes(): n for n, image in enumerate(mnist.train_images)}  # MNIST images are all distinct
    assert len(index) == len(mnist.train_images)
    train_ids = {index[image.tobytes()] for image in train_set}
    validation_ids = {index[image.tobytes()] for image in validation_set}
    assert len(train_ids) == len(train_set) and len(validation_ids) == len(validation_set)
    assert not train_ids & validation_ids
    assert train_ids != set(range(len(train_ids)))  # a random sample, not the first records


def test_overtrain_sample_follows_the_seed(mnist: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    picked: list[np.ndarray] = []

    def no_training(net: Any, images: np.ndarray, labels: np.ndarray, **options: Any) -> train.History:
        picked.append(images.copy())
        return train.History()

    monkeypatch.setattr(experiments, "fit", no_training)
    for seed in (0, 0, 1):
        empty = experiments.overtrain(mnist.train_images, mnist.train_labels, train_records=10,
                                      validation_records=20, epochs=1, seed=seed)
        assert empty["first_epoch_train_100"] is None and empty["best_validation_accuracy"] is None
    assert all(len(p) == 30 for p in picked)
    assert np.array_equal(picked[0], picked[1])
    assert not np.array_equal(picked[0], picked[2])


@pytest.mark.parametrize(("train_records", "validation_records"), [
    (0, 10), (10, 0), (-5, 10), (9000, 9000), (10_000, 1),
])
def test_overtrain_refuses_bad_sizes(train_records: int, validation_records: int, mnist: Any) -> None:
    with pytest.raises(ConfigError):
        experiments.overtrain(mnist.train_images, mnist.train_labels, train_records=train_records,
                              validation_records=validation_records, epochs=1)


# ---- the tune and overtrain commands -----------------------------------------------------------


def test_tune_command_json_and_files(run: dict[str, Any]) -> None:
    proc, out = run["tune"], run["out"]
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result = last_json(proc.stdout)
    assert set(result) == {"learning_rates", "validation_accuracy", "diverged", "best_learning_rate"}
    assert result["learning_rates"] == [0.001, 0.01, 5.0]
    assert result["diverged"] == [False, False, True]
    assert result["validation_accuracy"][2] is None
    saved = json.loads((out / "tuning.json").read_text())
    assert {key: saved[key] for key in result} == result
    assert saved["dataset"] == "mnist" and saved["train_size"] == 1000 and saved["validation_size"] == 200
    assert [len(c) for c in saved["curves"][:2]] == [2, 2]
    assert_sensible_png((out / "tuning.png").read_bytes())


def test_tune_command_best_is_the_best_row_of_its_table(run: dict[str, Any]) -> None:
    best = last_json(run["tune"].stdout)["best_learning_rate"]
    rows = list(csv.DictReader(io.StringIO((run["out"] / "tuning.csv").read_text())))
    assert [float(row["learning_rate"]) for row in rows] == [0.001, 0.01, 5.0]
    finals = {float(row["learning_rate"]): float(row["final_validation_accuracy"]) for row in rows
              if row["diverged"] == "False"}
    assert rows[2]["diverged"] == "True" and rows[2]["final_validation_accuracy"] == ""
    assert best == max(finals, key=lambda r: (finals[r], -r))
    assert [float(row["learning_rate"]) for row in rows if row["best"] == "True"] == [best]


def test_tune_command_human_output(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(["tune", "--data-dir", data_dir, "--learning-rates", "0.01,5", "--epochs", 1,
                                 "--train-size", 500, "--validation-size", 100, "--jobs", 1, "--out", tmp_path / "t"],
                                capsys)
    assert status == 0, err
    lines = out.splitlines()
    assert [line for line in lines if "best" in line] == [next(line for line in lines if line.split()[0] == "0.01")]
    assert "diverged" in next(line for line in lines if line.split()[0] == "5")
    assert "tuning.csv" in lines[-1]
    assert {p.name for p in (tmp_path / "t").iterdir()} == {"tuning.json", "tuning.csv", "tuning.png"}


def test_overtrain_command_json_and_files(run: dict[str, Any]) -> None:
    proc, out = run["overtrain"], run["out"]
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result = last_json(proc.stdout)
    assert set(result) == {"train_accuracy", "validation_accuracy", "first_epoch_train_100",
                           "best_validation_accuracy", "best_validation_epoch", "final_validation_accuracy",
                           "best_validation_loss", "best_validation_loss_epoch", "stopped"}
    assert len(result["train_accuracy"]) == len(result["validation_accuracy"]) == 20
    first = result["first_epoch_train_100"]
    assert first is not None and result["train_accuracy"][first - 1] == 1.0
    assert 1.0 not in result["train_accuracy"][: first - 1]
    validation = result["validation_accuracy"]
    assert result["best_validation_accuracy"] == max(validation)
    assert result["best_validation_epoch"] == validation.index(max(validation)) + 1
    assert result["final_validation_accuracy"] == validation[-1]
    saved = json.loads((out / "overtraining.json").read_text())
    assert {key: saved[key] for key in result} == result
    assert saved["train_records"] == 100 and saved["validation_records"] == 1000 and saved["epochs"] == 20
    assert_sensible_png((out / "overtraining.png").read_bytes())


def test_overtrain_command_human_output(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(["overtrain", "--data-dir", data_dir, "--epochs", 3, "--train-records", 20,
                                 "--validation-records", 50, "--out", tmp_path / "o"], capsys)
    assert status == 0, err
    saved = json.loads((tmp_path / "o" / "overtraining.json").read_text())
    assert "best" in out
    assert f"{saved['best_validation_accuracy']:.4f}" in out and f"epoch {saved['best_validation_epoch']}" in out
    assert f"{saved['final_validation_accuracy']:.4f}" in out
    assert "20 records" in out and "50 other records" in out
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"overtraining.json", "overtraining.png"}


def test_overtrain_command_that_diverges_at_once(data_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(["overtrain", "--data-dir", data_dir, "--epochs", 2, "--learning-rate", "1e6",
                                 "--out", tmp_path / "o"], capsys)
    assert status in (0, 2)
    assert "Traceback" not in err
    assert "diverg" in (out + err).lower() or "nan" in (out + err).lower()


# ---- train writes its two figures; the figures command -----------------------------------------


def test_train_writes_accuracy_and_confusion_figures(run: dict[str, Any]) -> None:
    assert run["train"].returncode == 0, run["train"].stderr
    for name in ("07-accuracy.png", "08-confusion.png"):
        assert_sensible_png((run["out"] / name).read_bytes())


def test_figures_command_writes_nine_pngs(run: dict[str, Any], data_dir: Path) -> None:
    proc = cli("figures", "run/model.npz", "--data-dir", data_dir, "--out", "fig", "--json", cwd=run["cwd"])
    assert proc.returncode == 0, proc.stderr
    listed = last_json(proc.stdout)["figures"]
    folder = run["cwd"] / "fig"
    assert sorted(p.name for p in folder.iterdir()) == [f"{name}.png" for name in FIGURES]
    assert sorted(Path(p).name for p in listed.values()) == [f"{name}.png" for name in FIGURES]
    for name in FIGURES:
        assert_sensible_png((folder / f"{name}.png").read_bytes())


def test_figures_command_svg(run: dict[str, Any], data_dir: Path) -> None:
    proc = cli("figures", "run/model.npz", "--data-dir", data_dir, "--out", "svg", "--format", "svg",
               "--image-index", 3, cwd=run["cwd"])
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == len(FIGURES)
    folder = run["cwd"] / "svg"
    assert sorted(p.name for p in folder.iterdir()) == [f"{name}.svg" for name in FIGURES]
    for name in FIGURES:
        root = ElementTree.parse(folder / f"{name}.svg").getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg", name
        assert float(root.get("width", "0").removesuffix("pt")) > 50, name
        assert float(root.get("height", "0").removesuffix("pt")) > 50, name
        assert len(list(root.iter())) > 20, name


def test_figures_command_image_index_out_of_range(run: dict[str, Any], data_dir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(["figures", run["out"] / "model.npz", "--data-dir", data_dir, "--image-index",
                                 999999, "--out", run["cwd"] / "never"], capsys)
    assert_one_line_error(status, err, "999999", "10000")
    assert out == ""
    assert not (run["cwd"] / "never").exists()


@pytest.mark.parametrize("content", [b"", b"not a model at all\n", b"PK\x03\x04garbage"])
def test_figures_command_on_a_garbage_model(content: bytes, tmp_path: Path, data_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model.npz"
    model.write_bytes(content)
    status, out, err = run_main(["figures", model, "--data-dir", data_dir], capsys)
    assert_one_line_error(status, err, "model.npz")
    assert out == ""
    assert not (tmp_path / "figures").exists()


# ---- the report command ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report_page(run: dict[str, Any]) -> tuple[str, Page]:
    proc = run["report"]
    assert proc.returncode == 0, proc.stderr
    assert "report.html" in proc.stdout
    text = (run["out"] / "report.html").read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    page.close()
    return text, page


def test_report_is_a_self_contained_page(report_page: tuple[str, Page]) -> None:
    text, page = report_page
    assert text.lstrip().lower().startswith("<!doctype html>")
    assert page.open == []  # every element closed, in order
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower() and not page.named("script") and not page.named("link")
    images = page.named("img")
    assert len(images) >= len(FIGURES) + 2  # the run's nine, the tuning and the overtraining figures
    for attrs in images:
        src = attrs["src"] or ""
        assert src.startswith(PNG_URI)
        assert_sensible_png(base64.b64decode(src[len(PNG_URI):], validate=True))


def test_report_shows_the_tuning_table(report_page: tuple[str, Page], run: dict[str, Any]) -> None:
    _text, page = report_page
    tuning = json.loads((run["out"] / "tuning.json").read_text())
    table = [(cells, best) for cells, best in page.rows if len(cells) == 3 and cells[2] in ("yes", "no")]
    assert [cells[0] for cells, _ in table] == ["0.001", "0.01", "5"]
    assert [cells[2] for cells, _ in table] == ["no", "no", "yes"]
    for (cells, _), final in zip(table, tuning["validation_accuracy"], strict=True):
        assert cells[1] == ("–" if final is None else f"{final:.2%}")
    assert [float(cells[0]) for cells, best in table if best] == [tuning["best_learning_rate"]]


def test_report_shows_the_overtraining_numbers(report_page: tuple[str, Page], run: dict[str, Any]) -> None:
    _text, page = report_page
    result = json.loads((run["out"] / "overtraining.json").read_text())
    values = {cells[0]: cells[1] for cells, _ in page.rows if len(cells) == 2}

    def value(words: str) -> str:
        found = [v for label, v in values.items() if label.lower().startswith(words)]
        assert len(found) == 1, (words, values)
        return found[0]

    assert value("first epoch with 100% training") == str(result["first_epoch_train_100"])
    assert value("best validation accuracy") == f"{result['best_validation_accuracy']:.2%}"
    assert value("epoch of the best") == str(result["best_validation_epoch"])
    assert value("final validation accuracy") == f"{result['final_validation_accuracy']:.2%}"


def test_report_on_a_folder_without_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run").mkdir()
    status, out, err = run_main(["report", tmp_path / "run"], capsys)
    assert_one_line_error(status, err, "history.json")
    assert out == ""
    assert not (tmp_path / "run" / "report.html").exists()


def test_report_on_a_folder_without_history_in_a_real_process(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = cli("report", "empty", cwd=tmp_path)
    assert_one_line_error(proc.returncode, proc.stderr, "history.json")


# ---- help and bad flags ------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "texts"), [
    ("tune", ["--learning-rates", "--epochs", "--train-size", "--validation-size", "--seed", "--jobs", "--out",
              "--json", "--data-dir", "tuning.csv", "example: scratchcnn tune", "--arch", "--layers", "--optimiser",
              "--batch-size"]),
    ("overtrain", ["--train-records", "--validation-records", "--epochs", "--learning-rate", "--seed", "--out",
                   "--json", "--data-dir", "overtraining.json", "example: scratchcnn overtrain", "--arch", "--layers",
                   "--optimiser", "--batch-size"]),
    ("figures", ["MODEL", "--image-index", "--format", "--out", "--data-dir", "--json", "example: scratchcnn figures"]),
    ("report", ["RUN_DIR", "--out", "--data-dir", "--json", "report.html", "example: scratchcnn report"]),
])
def test_command_help(command: str, texts: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main([command, "--help"], capsys)
    assert status == 0
    assert err == ""
    for text in texts:
        assert text in out, text


@pytest.mark.parametrize(("argv", "named"), [
    (["tune", "--learning-rates", "abc"], "--learning-rates"),
    (["tune", "--learning-rates", "0.1,-1"], "-1"),
    (["tune", "--learning-rates", ","], "--learning-rates"),
    (["tune", "--learning-rates", "0.1,inf"], "inf"),
    (["tune", "--validation-size", "-1"], "--validation-size"),
    (["overtrain", "--train-records", "0"], "--train-records"),
    (["overtrain", "--validation-records", "-3"], "--validation-records"),
    (["overtrain", "--learning-rate", "0"], "--learning-rate"),
    (["figures", "m.npz", "--format", "gif"], "--format"),
    (["report"], "RUN_DIR"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_bad_flags_are_usage_errors(argv: list[str], named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    status, out, err = run_main(argv, capsys)
    assert_usage_error(status, out, err, named)
    assert list(tmp_path.iterdir()) == []


def test_bad_flag_in_a_real_process(tmp_path: Path) -> None:
    proc = cli("tune", "--learning-rates", "0.1,-1", cwd=tmp_path)
    assert_usage_error(proc.returncode, proc.stdout, proc.stderr, "--learning-rates")


def test_overtrain_asking_for_more_records_than_the_data(data_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(["overtrain", "--data-dir", data_dir, "--train-records", 9000,
                                 "--validation-records", 9000, "--out", tmp_path / "o"], capsys)
    assert_one_line_error(status, err, "9000", "10000")
    assert out == ""
    assert not (tmp_path / "o").exists()
