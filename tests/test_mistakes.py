"""Mistakes and evidence: the most confident mistakes (wrong, sorted by P, P as predict_proba gives it), the
gallery's tiles (each the test image it names), the evidence maps W_j ⊙ Z_k (adding up to the network's
scores), `evaluate --mistakes DIR`, and the report's Mistakes and Evidence sections, also in headless Chromium.

How a tile is checked: plot_mistakes draws tile n with one imshow of images[index] itself, in an axes labelled
"test image <index>"; the test reads each such axes' AxesImage array and compares it with the test image.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import make_fake_dataset, run_main
from test_explorer import browser  # noqa: F401 (a fixture: Chromium through Playwright, or a skip)
from test_report import parse, png_images

from scratchcnn.data import CLASS_NAMES, load_dataset
from scratchcnn.errors import ConfigError, DataError
from scratchcnn.nn.model import ConvNet
from scratchcnn.nn.network import from_spec
from scratchcnn.train.runs import train_run
from scratchcnn.viz import report
from scratchcnn.viz.mistakes import (
    evidence,
    evidence_left_out,
    most_confident_mistakes,
    per_class_accuracy,
    plot_evidence,
    plot_mistakes,
)
from scratchcnn.viz.report import write_report

NAMES = CLASS_NAMES["mnist"]


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_dataset(tmp_path_factory.mktemp("data"), n_test=60)


@pytest.fixture(scope="module")
def records(fake_data: Path) -> tuple[np.ndarray, np.ndarray]:
    data = load_dataset("mnist", fake_data, download=False)
    return data.test_images, data.test_labels.astype(np.int64)


@pytest.fixture(scope="module")
def net() -> ConvNet:
    net = ConvNet(seed=5, bias=True)
    net.b[...] = np.linspace(-0.3, 0.3, 10)
    return net


def tiles(fig) -> dict[int, np.ndarray]:
    """{test index: the array its tile shows}, from the axes labelled "test image <index>", in drawing order."""
    return {int(ax.get_label().rsplit(" ", 1)[1]): np.asarray(ax.images[0].get_array())
            for ax in fig.axes if ax.get_label().startswith("test image ")}


# ---- mistakes ------------------------------------------------------------------------------------


def test_mistakes_are_the_wrong_predictions_most_confident_first(net, records) -> None:
    images, labels = records
    P = net.predict_proba(images)
    predicted = net.predict(images)
    wrong = np.flatnonzero(predicted != labels)
    assert 5 < len(wrong) < len(labels)  # something to sort, and right answers left out
    rows = most_confident_mistakes(net, images, labels, count=len(labels))
    assert sorted(row.index for row in rows) == wrong.tolist()  # every mistake, and nothing else
    for row in rows:
        assert row.true == labels[row.index] != row.predicted == predicted[row.index]
        assert row.probability == P[row.index, row.predicted]  # predict_proba's value, bit for bit
    confidence = [row.probability for row in rows]
    assert confidence == sorted(confidence, reverse=True)
    assert most_confident_mistakes(net, images, labels, count=4) == rows[:4]
    with pytest.raises(ConfigError):
        most_confident_mistakes(net, images, labels, count=-1)


def test_gallery_tiles_are_the_test_images_they_claim(net, records) -> None:
    images, labels = records
    rows = most_confident_mistakes(net, images, labels)
    fig = plot_mistakes(images, rows, NAMES, wrong=99)
    shown = tiles(fig)
    assert list(shown) == [row.index for row in rows]  # one tile per mistake, in order
    for row in rows:
        assert shown[row.index].dtype == images.dtype
        np.testing.assert_array_equal(shown[row.index], images[row.index])
    titles = [ax.get_title() for ax in fig.axes if ax.get_label().startswith("test image ")]
    first = rows[0]
    assert titles[0] == f"test image #{first.index}\ntrue {first.true} → {first.predicted}, P {first.probability:.2f}"
    assert "of 99" in fig.get_suptitle()
    assert tiles(plot_mistakes(images, [], NAMES)) == {}  # no mistakes: an empty gallery, no error


def test_per_class_accuracy() -> None:
    matrix = np.array([[3, 1, 0], [0, 0, 0], [2, 0, 6]])
    np.testing.assert_array_equal(per_class_accuracy(matrix), [0.75, np.nan, 0.75])


# ---- evidence ------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [
    "seed:decimate", "seed:max-relu-bias", "conv:4x3:same+b,relu,pool:avg,conv:5x3:same,relu,pool:max,flatten,dense",
    "flatten,dense",
])
def test_evidence_maps_add_up_to_the_scores(spec: str, records) -> None:
    images, _ = records
    if spec.startswith("seed:"):
        pool, *extra = spec[5:].split("-")
        net = ConvNet(pool=pool, activation="relu" if "relu" in extra else "none", bias="bias" in extra,
                      dtype="float64", seed=2)
        if net.bias:
            net.b[...] = np.arange(10) / 10
    else:
        net = from_spec(spec, dtype="float64", seed=2)
        net.layers[-1].params["b"][...] = np.arange(10) / 10
    for n in range(3):
        ev = evidence(net, images[n])
        A = net.scores(net.check_images(images[n : n + 1]))[0]
        np.testing.assert_allclose(ev.maps.sum(axis=(1, 2, 3)) + ev.bias, A, rtol=0, atol=1e-5)
        np.testing.assert_allclose(ev.scores, A, rtol=0, atol=1e-5)
        np.testing.assert_allclose(ev.probabilities, net.predict_proba(images[n : n + 1])[0], rtol=0, atol=1e-9)
        np.testing.assert_allclose(ev.sums.sum(axis=1) + ev.bias, A, rtol=0, atol=1e-5)
    if isinstance(net, ConvNet):  # the definition, with Z from ConvNet's own pictures' code: E = W_j ⊙ Z_k
        np.testing.assert_allclose(ev.maps, net.W * net.feature_maps(images[2])[1][None], rtol=0, atol=1e-12)


def test_evidence_of_a_float32_network_matches_its_scores(net, records) -> None:
    images, _ = records
    A = net.scores(net.check_images(images[:5]))
    for n in range(5):
        np.testing.assert_allclose(evidence(net, images[n]).scores, A[n], rtol=0, atol=1e-5)


def test_evidence_figure_and_networks_without_maps(net, records) -> None:
    images, labels = records
    ev = evidence(net, images[0])
    predicted = int(ev.scores.argmax())
    true = int(labels[0]) if labels[0] != predicted else (predicted + 1) % 10
    fig = plot_evidence(net, images[0], true, NAMES)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].startswith(f"class {predicted} (predicted)") and f"= {ev.scores[predicted]:.3f}" in titles[0]
    assert titles[1].startswith(f"class {true} (true)") and f"= {ev.scores[true]:.3f}" in titles[1]
    deep = from_spec("conv:2x3,relu,pool:max,flatten,dense:8,relu,dense", seed=0)
    assert "reads a vector of 8 values" in evidence_left_out(deep)
    with pytest.raises(ConfigError, match="no evidence maps"):
        plot_evidence(deep, images[0], 0, NAMES)


# ---- evaluate --mistakes DIR ---------------------------------------------------------------------


def test_evaluate_writes_the_mistakes(net, fake_data: Path, records, tmp_path: Path, capsys) -> None:
    images, labels = records
    net.dataset = "mnist"
    model = net.save(tmp_path / "run" / "model.npz")
    out = tmp_path / "out" / "mistakes"
    status, stdout, stderr = run_main(["evaluate", model, "--data-dir", fake_data, "--mistakes", out, "--json"],
                                      capsys)
    assert status == 0, stderr
    result = json.loads(stdout.splitlines()[-1])
    saved = json.loads((out / "mistakes.json").read_text())
    assert (out / "mistakes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    expected = most_confident_mistakes(net, images, labels)
    assert saved["mistakes"] == [row.as_json() for row in expected]
    assert saved["wrong"] == int((net.predict(images) != labels).sum()) and saved["test_images"] == len(labels)
    assert result["mistakes"]["indices"] == [row.index for row in expected]
    assert len(result["per_class_accuracy"]) == 10
    status, stdout, _ = run_main(["evaluate", model, "--data-dir", fake_data, "--mistakes", out], capsys)
    assert status == 0 and f"wrote {out / 'mistakes.png'}" in stdout
    status, _, stderr = run_main(["evaluate", model, "--data-dir", fake_data, "--mistakes", model], capsys)
    assert status == 2 and stderr.count("\n") == 1 and "that is a file" in stderr


# ---- the report ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, fake_data: Path) -> Path:
    out = tmp_path_factory.mktemp("run")
    train_run({"epochs": 1, "train_size": 40, "validation_size": 10}, out, data_dir=fake_data, download=False)
    return out


@pytest.fixture(scope="module")
def only_new_sections() -> Iterator[None]:
    """Figures 1-9 left out: these tests are about the sections after them (seconds saved)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report, "model_figure_set", lambda *args: {})
        yield


@pytest.fixture(scope="module")
def report_page(run_dir: Path, fake_data: Path, only_new_sections: None) -> Path:
    return write_report(run_dir, run_dir / "mistakes-report.html", data_dir=fake_data)


def test_report_has_mistakes_and_evidence(run_dir: Path, report_page: Path) -> None:
    text = report_page.read_text(encoding="utf-8")
    images = png_images(parse(text))
    assert len(images) == 2 and "<h2>Mistakes</h2>" in text and "<h2>Evidence</h2>" in text
    summary = json.loads((run_dir / "history.json").read_text())
    matrix = np.array(summary["confusion_matrix"])
    for c, accuracy in enumerate(per_class_accuracy(matrix)):  # the table: one row per class
        assert f"<td>{c}</td><td class=num>{matrix[c].sum()}</td><td class=num>{matrix[c, c]}</td>" \
               f"<td class=num>{accuracy:.2%}</td>" in text
    assert "most confident mistake above" in text


def test_report_without_the_test_set_keeps_the_table(run_dir: Path, tmp_path: Path, only_new_sections: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def no_test_set(*args, **kwargs):
        raise DataError("no test set here")

    monkeypatch.setattr(report, "load_dataset", no_test_set)
    text = write_report(run_dir, tmp_path / "r.html", data_dir=tmp_path / "none").read_text(encoding="utf-8")
    assert "<h2>Mistakes</h2>" in text and "they need the test set" in text and "<h2>Evidence</h2>" not in text
    assert png_images(parse(text)) == []


def test_report_for_a_network_without_maps_says_why(fake_data: Path, tmp_path: Path, only_new_sections: None) -> None:
    run = tmp_path / "deep"
    train_run({"epochs": 1, "train_size": 40, "validation_size": 10, "layers": "conv:2x3,relu,pool:max,flatten,"
               "dense:8,relu,dense"}, run, data_dir=fake_data, download=False)
    text = write_report(run, data_dir=fake_data).read_text(encoding="utf-8")
    assert "<h2>Evidence</h2>" in text and "No evidence maps: " in text and "reads a vector of 8 values" in text
    assert len(png_images(parse(text))) == 1  # the gallery only


@pytest.mark.browser
def test_report_renders_in_chromium_offline(browser, report_page: Path) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(report_page.resolve().as_uri())
    page.wait_for_load_state("load")
    for heading in ("Mistakes", "Evidence", "Accuracy of each class"):
        assert page.get_by_role("heading", name=heading, exact=True).is_visible()
    decoded = page.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 300)")
    assert decoded == [True, True]  # the gallery and the evidence maps, both drawn
    assert requests and all(url.startswith(("data:", "file:")) for url in requests), requests
    assert not errors
    page.close()
