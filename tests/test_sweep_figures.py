"""A sweep's figures and its report page: the three PNGs (decodable, the same bytes for the same records),
the Pareto front drawn from the right rows, a sweep where nothing finished, and `scratchcnn report` on a
sweep's folder (a self-contained page with the configurations table and the figures embedded)."""

from __future__ import annotations

import base64
import copy
import io
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from matplotlib.image import imread

from scratchcnn.train.sweep_store import SweepFolder
from scratchcnn.train.sweeps import sweep
from scratchcnn.viz import sweep_report
from scratchcnn.viz.sweep_figures import (
    FIGURE_FILES,
    front_rows,
    plot_accuracy_vs_time,
    plot_metric_vs_rate,
    sweep_figure_set,
    sweep_figures,
)
from scratchcnn.viz.sweep_report import is_sweep_folder, write_sweep_report

RATES = (0.003, 0.03)
SPEC = f"""\
epochs = 1
train_size = 600
validation_size = 200
seeds = 2
[grid]
learning_rate = [{RATES[0]}, {RATES[1]}]
arch = ["seed"]
"""
PNG_URI = "data:image/png;base64,"


@pytest.fixture(scope="module")
def swept(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A real sweep of 4 points (2 rates × 2 seeds, one short epoch each), run once for the module."""
    root = tmp_path_factory.mktemp("sweep")
    (root / "study.toml").write_text(SPEC)
    result = sweep(root / "study.toml", root / "s", data_dir=data_dir, download=False, jobs=2)
    assert result["ok"] == 4, result
    return root / "s", result


def row(rate: float, seconds: float | None, accuracy: float | None, diverged: int = 0) -> dict[str, Any]:
    """A hand-made summary row (as sweep_summary.summarise makes them), two seeds."""
    ok = accuracy is not None
    return {"configuration": {"learning_rate": rate, "epochs": 1}, "seeds": [0, 1], "points": 2,
            "ok": 2 - diverged, "diverged": diverged, "failed": 0,
            "validation_accuracy_mean": accuracy, "validation_accuracy_std": 0.01 if ok else None,
            "validation_loss_mean": 1 - accuracy if ok else None, "validation_loss_std": 0.01 if ok else None,
            "train_accuracy_mean": accuracy, "train_accuracy_std": 0.0 if ok else None,
            "seconds_per_epoch_mean": seconds, "seconds_per_epoch_std": 0.0 if seconds else None,
            "curve_mean": [accuracy] if ok else []}


def diverged_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lost = copy.deepcopy(records)
    for record in lost:
        record.update(status="diverged", validation_accuracy=None, validation_loss=None, train_accuracy=None,
                      seconds_per_epoch=None, epochs=[])
    return lost


@pytest.fixture(scope="module")
def drawn(swept: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sweep's figures as the sweep command draws them (its records and summary), drawn once."""
    folder, result = swept
    return sweep_figures(SweepFolder(folder).read(), result, tmp_path_factory.mktemp("figures"))


def test_three_pngs_are_written_and_decode(drawn: dict[str, Path]) -> None:
    assert sorted(path.name for path in drawn.values()) == sorted(FIGURE_FILES.values())
    for path in drawn.values():
        pixels = imread(path)
        assert pixels.ndim == 3 and pixels.shape[0] >= 300 and pixels.shape[1] >= 600, (path, pixels.shape)
        assert pixels.std() > 0.01, f"{path.name} is blank"


def test_the_same_records_give_the_same_bytes(swept: tuple[Path, dict[str, Any]], drawn: dict[str, Path],
                                              tmp_path: Path) -> None:
    folder, result = swept
    again = sweep_figures(SweepFolder(folder).read(), {"metric": result["metric"]}, tmp_path)  # rows summarised here
    for key in FIGURE_FILES:
        assert drawn[key].read_bytes() == again[key].read_bytes(), key


def test_the_pareto_front_is_the_faster_and_as_accurate_rows() -> None:
    rows = [row(0.1, 0.10, 0.80), row(0.2, 0.20, 0.85), row(0.3, 0.20, 0.90), row(0.4, 0.30, 0.84),
            row(0.5, 0.05, 0.70), row(0.6, 0.40, 0.90), row(0.7, None, None, diverged=2), row(0.8, None, 0.95)]
    front = front_rows(rows)
    # 0.2 is beaten by 0.3 (as fast, more accurate); 0.6 by 0.3 (slower, as accurate); 0.8 has no time
    assert [r["configuration"]["learning_rate"] for r in front] == [0.5, 0.1, 0.3]
    fig = plot_accuracy_vs_time(rows)
    (line,) = [line for line in fig.axes[0].get_lines() if line.get_drawstyle() == "steps-post"]
    assert list(line.get_xdata()) == [0.05, 0.10, 0.20]
    assert list(line.get_ydata()) == [0.70, 0.80, 0.90]


def test_a_diverged_configuration_is_marked_at_its_rate() -> None:
    rows = [row(0.001, 0.1, 0.8), row(0.01, 0.1, 0.85), row(1.0, None, None, diverged=2)]
    fig = plot_metric_vs_rate(rows, "validation_accuracy")
    crosses = [line for line in fig.axes[0].get_lines() if line.get_marker() == "x"]
    assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [1.0]
    assert fig.axes[0].get_xscale() == "log"


def test_nothing_finished_draws_notes(swept: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    paths = sweep_figures(diverged_records(SweepFolder(swept[0]).read()), {"metric": "validation_accuracy"}, tmp_path)
    assert len(paths) == 3
    for path in paths.values():
        assert imread(path).shape[0] > 100
    for fig in sweep_figure_set([]).values():  # no point yet: a note, not an empty plot
        assert [text.get_text() for text in fig.axes[0].texts] == ["No point has finished yet."]


class Page(HTMLParser):
    """The start tags' attributes and the text of each table cell."""

    def __init__(self) -> None:
        super().__init__()
        self.attrs: list[tuple[str, dict[str, str | None]]] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs.append((tag, dict(attrs)))
        if tag == "td":
            self._in_cell = True
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_cell = self._in_cell and tag != "td"

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells[-1] += data


def test_report_command_on_a_sweep_folder(swept: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(swept[0], folder)
    done = subprocess.run([sys.executable, "-m", "scratchcnn", "report", str(folder)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    path = folder / "report.html"
    assert str(path) in done.stdout
    text = path.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    assert "scratchcnn sweep" in text and "4 points" in text
    for rate in RATES:
        assert f"{rate:g}" in page.cells, rate
    images = [attrs["src"] or "" for tag, attrs in page.attrs if tag == "img"]
    assert len(images) == 3 and all(src.startswith(PNG_URI) for src in images)
    for src in images:
        assert imread(io.BytesIO(base64.b64decode(src[len(PNG_URI):])), format="png").shape[1] >= 600
    links = [value or "" for _, attrs in page.attrs for name, value in attrs.items() if name in ("src", "href")]
    assert not [link for link in links if link.startswith(("http://", "https://"))]


def test_report_leaves_a_torn_line_alone(swept: tuple[Path, dict[str, Any]], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep_report, "sweep_figure_bytes", lambda rows, metric: dict.fromkeys(FIGURE_FILES, b""))
    folder = tmp_path / "torn"
    shutil.copytree(swept[0], folder)
    results = folder / "sweep.jsonl"
    with results.open("ab") as fh:
        fh.write(b'{"key":"half a li')
    before = results.read_bytes()
    text = write_sweep_report(folder, tmp_path / "page.html").read_text(encoding="utf-8")
    assert "torn" in text and "4 points" in text
    assert results.read_bytes() == before  # only read: the sweep repairs it when it runs again


def test_a_run_folder_is_not_a_sweep_folder(tmp_path: Path) -> None:
    (tmp_path / "sweep.jsonl").write_text("")
    assert is_sweep_folder(tmp_path)
    (tmp_path / "model.npz").write_bytes(b"")
    assert not is_sweep_folder(tmp_path)
