"""The HTML report: one self-contained, well-formed page with every figure embedded as a PNG data:
URI, the run's numbers, the tuning and overtraining results, a note when the test set is missing,
and one-line errors for a run directory it cannot read."""

from __future__ import annotations

import base64
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_fake_dataset

from scratchcnn.data import datasets as data
from scratchcnn.errors import ModelFileError, ScratchCNNError
from scratchcnn.train.runs import train_run
from scratchcnn.viz import report
from scratchcnn.viz.report import write_report

VOID = {"meta", "img", "br", "hr", "link", "input"}
PNG_URI = "data:image/png;base64,"
TUNING = {
    "learning_rates": [0.0001, 0.001, 0.01, 10.0], "validation_accuracy": [0.61, 0.83, 0.79, None],
    "diverged": [False, False, False, True], "best_learning_rate": 0.001, "epochs": 3,
    "curves": [[0.5, 0.58, 0.61], [0.7, 0.8, 0.83], [0.75, 0.8, 0.79], [0.2]],
}
OVERTRAINING = {
    "train_accuracy": [0.4, 0.8, 1.0, 1.0, 1.0], "validation_accuracy": [0.5, 0.66, 0.7125, 0.70, 0.6875],
    "train_records": 100, "validation_records": 1000, "first_epoch_train_100": 3,
    "best_validation_accuracy": 0.7125, "best_validation_epoch": 3, "final_validation_accuracy": 0.6875,
}


class Page(HTMLParser):
    """Collects start tags with their attributes and checks that every non-void element is closed."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, Any]]] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()

    def named(self, tag: str) -> list[dict[str, Any]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    assert page.open == [], f"unclosed: {page.open}"
    return page


def png_images(page: Page) -> list[bytes]:
    images = []
    for attrs in page.named("img"):
        assert attrs["src"].startswith(PNG_URI)
        images.append(base64.b64decode(attrs["src"][len(PNG_URI):], validate=True))
        assert images[-1][:8] == b"\x89PNG\r\n\x1a\n"
        assert attrs.get("alt")
    return images


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, fake_data: Path) -> Path:
    out = tmp_path_factory.mktemp("run")
    train_run({"epochs": 2, "train_size": 40, "validation_size": 10}, out, data_dir=fake_data, download=False)
    (out / "tuning.json").write_text(json.dumps(TUNING))
    (out / "overtraining.json").write_text(json.dumps(OVERTRAINING))
    return out


@pytest.fixture()
def no_system_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the data_dir passed in is searched: not $SCRATCHCNN_DATA, the cache or the system's."""
    monkeypatch.delenv("SCRATCHCNN_DATA", raising=False)
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "no-cache")
    monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "no-system")


@pytest.fixture()
def no_model_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip drawing figures 1-9, for tests about the text around them (a second or two each)."""
    monkeypatch.setattr(report, "model_figure_set", lambda *args: {})


@pytest.fixture(scope="module")
def full_report(run_dir: Path, fake_data: Path) -> tuple[Path, str]:
    """The report of run_dir with every figure, written once to its default place."""
    path = write_report(run_dir, data_dir=fake_data)
    return path, path.read_text(encoding="utf-8")


def copy_run(run_dir: Path, tmp_path: Path, name: str = "copy") -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / name, ignore=shutil.ignore_patterns("report.html")))


def test_report_is_one_self_contained_page(run_dir: Path, full_report: tuple[Path, str]) -> None:
    path, text = full_report
    assert path == run_dir / "report.html"
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == []  # no temporary files left
    assert "http://" not in text and "https://" not in text
    page = parse(text)
    assert [tag for tag, _ in page.tags[:3]] == ["html", "head", "meta"]
    assert page.named("script") == [] and page.named("link") == []
    assert len(png_images(page)) == 13  # 9 model figures, tuning, overtraining, mistakes, evidence
    summary = json.loads((run_dir / "history.json").read_text())
    assert f"{summary['test_accuracy']:.2%}" in text
    assert text.count("<tr><td class=num>") == 2  # one row per epoch
    for equation in ("∂L/∂A = P − onehot(y)", "L = −ln P<sub>y</sub>", "∂L/∂W = ∂L/∂A ⊗ Z"):
        assert equation in text


def test_report_shows_tuning_and_overtraining(full_report: tuple[Path, str]) -> None:
    text = full_report[1]
    assert "Tuning the learning rate" in text and "for 3 epochs" in text
    assert "<tr class=best><td>0.001</td><td class=num>83.00%</td><td class=num>no</td></tr>" in text
    assert "<tr><td>10</td><td class=num>–</td><td class=num>yes</td></tr>" in text
    assert "Overtraining" in text
    for number in ("71.25%", "68.75%", "100 records", "1000 validation records"):
        assert number in text


def test_optional_sections_absent_without_their_files(run_dir: Path, fake_data: Path, tmp_path: Path,
                                                      no_model_figures: None) -> None:
    run = copy_run(run_dir, tmp_path)
    (run / "tuning.json").unlink()
    (run / "overtraining.json").unlink()
    text = write_report(run, tmp_path / "elsewhere" / "r.html", data_dir=fake_data).read_text(encoding="utf-8")
    assert "Tuning the learning rate" not in text and "Overtraining" not in text
    assert len(png_images(parse(text))) == 2  # the mistakes gallery and the evidence maps
    assert not (run / "report.html").exists()


def test_without_the_test_set_the_report_says_so(run_dir: Path, tmp_path: Path, no_system_data: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run = copy_run(run_dir, tmp_path)
    summary = json.loads((run / "history.json").read_text())
    summary.pop("confusion_matrix", None)
    (run / "history.json").write_text(json.dumps(summary))
    text = write_report(run, data_dir=tmp_path / "nowhere").read_text(encoding="utf-8")
    assert "test set was not found" in text and "confusion matrix are left out" in text
    assert "The first test record" not in text
    assert len(png_images(parse(text))) == 2 + 4  # tuning, overtraining; kernels ×2, accuracy, weights
    summary["confusion_matrix"] = np.eye(10, dtype=int).tolist()  # a saved matrix is still shown
    (run / "history.json").write_text(json.dumps(summary))
    drawn: list[tuple] = []
    monkeypatch.setattr(report, "model_figure_set", lambda *args: drawn.append(args) or {})
    text = write_report(run, data_dir=tmp_path / "nowhere").read_text(encoding="utf-8")
    assert "confusion matrix are left out" not in text
    (_, image, _, _, matrix, _), = drawn
    assert image is None and np.array_equal(matrix, np.eye(10))


def test_text_is_escaped(run_dir: Path, fake_data: Path, tmp_path: Path, no_model_figures: None) -> None:
    run = copy_run(run_dir, tmp_path, name="a<b>&c")
    summary = json.loads((run / "history.json").read_text())
    summary["stopped"] = "<script>alert(1)</script>"
    (run / "history.json").write_text(json.dumps(summary))
    text = write_report(run, data_dir=fake_data).read_text(encoding="utf-8")
    assert "a&lt;b&gt;&amp;c" in text and "<b>&c" not in text
    assert "&lt;script&gt;" in text and "<script>" not in text
    parse(text)


@pytest.mark.parametrize("damage", ["no-dir", "no-history", "bad-json", "not-a-summary", "bad-epochs", "bad-tuning"])
def test_unreadable_runs_are_one_line_errors(run_dir: Path, tmp_path: Path, damage: str) -> None:
    run = copy_run(run_dir, tmp_path)
    if damage == "no-dir":
        run = tmp_path / "missing"
    elif damage == "no-history":
        (run / "history.json").unlink()
    elif damage == "bad-json":
        (run / "history.json").write_text("{truncated")
    elif damage == "not-a-summary":
        (run / "history.json").write_text("[1, 2]")
    elif damage == "bad-epochs":
        (run / "history.json").write_text(json.dumps({"history": [1, 2], "options": {}}))
    else:
        (run / "tuning.json").write_text(json.dumps({"learning_rates": [0.1]}))
    with pytest.raises(ScratchCNNError) as caught:
        write_report(run)
    message = str(caught.value)
    assert "\n" not in message
    assert ("tuning.json" if damage == "bad-tuning" else "history.json" if damage != "no-dir" else "missing") in message
    assert not (run / "report.html").exists()


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_unreadable_model_is_a_model_file_error(run_dir: Path, tmp_path: Path, damage: str) -> None:
    run = copy_run(run_dir, tmp_path)
    if damage == "missing":
        (run / "model.npz").unlink()
    else:
        (run / "model.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match=r"model\.npz"):
        write_report(run)


def test_real_mnist_end_to_end(data_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_run({"epochs": 1, "train_size": 300, "validation_size": 100}, run, data_dir=data_dir, download=False)
    text = write_report(run, data_dir=data_dir).read_text(encoding="utf-8")
    assert "Its label is 7" in text  # MNIST test record 0 is a 7
    assert "not found" not in text
    images = png_images(parse(text))
    assert len(images) == 11 and all(len(image) > 5000 for image in images)  # 9 figures, mistakes, evidence
