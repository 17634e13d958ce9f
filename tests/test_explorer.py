"""scratchcnn explore: the HTML page (without a browser), and the page itself in Chromium (marked browser).

The browser tests need Playwright for Python and Debian's /usr/bin/chromium; without them they skip,
except in CI (CI set), where their absence is a failure.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import make_fake_dataset, skip_or_fail

from scratchcnn.cli import main
from scratchcnn.nn.model import ConvNet
from scratchcnn.nn.network import as_stack
from scratchcnn.viz.explorer import PICKER_IMAGES, build_page, write_explorer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def embedded(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="model-data">(.*?)</script>', page, re.S)
    assert match, "no embedded model data"
    return json.loads(match.group(1))


def saved_model(tmp_path: Path, name: str = "run", **config) -> Path:
    net = ConvNet(**config, seed=3)
    net.dataset = "mnist"
    if net.bias:
        net.b[...] = np.linspace(-1, 1, net.classes)
    return net.save(tmp_path / name / "model.npz")


# ---- the page, without a browser ------------------------------------------------------------------


@pytest.mark.parametrize("config", [
    {},
    {"filters": 4, "kernel_size": 5, "pool": "max", "activation": "relu", "bias": True},
    {"pool": "avg", "dtype": "float64", "input_shape": (13, 10), "classes": 3, "bias": True},
])
def test_page_embeds_the_exact_parameters_and_links_to_nothing(tmp_path: Path, config: dict) -> None:
    net = ConvNet.load(saved_model(tmp_path, **config))
    images = np.random.default_rng(0).integers(0, 256, (5, *net.input_shape), dtype=np.uint8)
    page = build_page(net, images=images, labels=np.arange(5) % net.classes)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=", page) and 'href="data:,"' in page
    assert "<canvas id=\"draw\"" in page and "window.scratchcnn" in page and "__DATA__" not in page
    data = embedded(page)  # the network as the stack it is: "<layer index>.<name>" parameters, flat
    stack = as_stack(net)
    assert data["config"] == json.loads(json.dumps(stack.config)) and data["shapes"][-1] == [net.classes]
    for name, value in stack.parameters().items():
        np.testing.assert_array_equal(np.asarray(data["params"][name], value.dtype).reshape(value.shape), value)
    np.testing.assert_array_equal(np.asarray(data["params"]["0.f"], net.dtype).reshape(net.f.shape), net.f)
    assert any(name.endswith(".b") for name in data["params"]) == net.bias
    pixels = np.frombuffer(base64.b64decode(data["images"]["base64"]), np.uint8)
    np.testing.assert_array_equal(pixels.reshape(images.shape), images)
    assert len(data["class_names"]) == net.classes


def test_page_escapes_what_could_end_its_script(tmp_path: Path) -> None:
    net = ConvNet.load(saved_model(tmp_path))
    net.dataset = "</script><!--"
    page = build_page(net, title="<b>&")
    assert "</script><!--" not in page and "<b>&" not in page
    assert embedded(page)["dataset"] == "</script><!--"


def test_explore_without_data_notes_it_and_writes_beside_the_model(tmp_path: Path, capsys, monkeypatch) -> None:
    model = saved_model(tmp_path)
    (model.parent / "history.json").write_text(json.dumps({"test_accuracy": 0.875, "history": [
        {"epoch": 1, "train_accuracy": 0.8, "validation_accuracy": 0.78},
        {"epoch": 2, "train_accuracy": 0.9, "validation_accuracy": 0.85}]}))
    monkeypatch.setenv("SCRATCHCNN_DATA", str(tmp_path / "nothing"))
    monkeypatch.setattr("scratchcnn.data.datasets.search_dirs", lambda data_dir=None: [tmp_path / "nothing"])
    opened = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    assert main(["explore", str(model), "--open"]) == 0
    out, err = capsys.readouterr()
    page_path = model.parent / "explorer.html"
    assert f"wrote {page_path}" in out and "note: no test images embedded" in err and "error" not in err
    assert opened == [page_path.resolve().as_uri()]
    page = page_path.read_text(encoding="utf-8")
    assert embedded(page)["images"] is None and "<svg" in page and "87.50 %" in page
    assert "<polyline" in page  # the training curves


def test_explore_embeds_test_images_and_honours_out(tmp_path: Path, capsys) -> None:
    fake = make_fake_dataset(tmp_path / "data", n_test=PICKER_IMAGES + 7)
    out = tmp_path / "elsewhere" / "page.html"
    assert main(["explore", str(saved_model(tmp_path)), "--out", str(out), "--data-dir", str(fake)]) == 0
    assert capsys.readouterr().err == ""
    data = embedded(out.read_text(encoding="utf-8"))
    assert len(data["images"]["labels"]) == PICKER_IMAGES
    assert not (tmp_path / "run" / "explorer.html").exists()


def test_explore_refuses_a_missing_model(tmp_path: Path, capsys) -> None:
    assert main(["explore", str(tmp_path / "none.npz")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# ---- the page in Chromium -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install playwright; no browser download needed)"
    if reason is None and not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found (apt-get install chromium)"
    if reason:
        skip_or_fail(reason)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.resolve().as_uri())
    page.wait_for_function("window.scratchcnn !== undefined")
    return page, errors


def page_probabilities(page, n: int) -> np.ndarray:
    return np.array(page.evaluate(
        "n => Array.from({length: n}, (_, i) => "
        "window.scratchcnn.predict(window.scratchcnn.image(i).map(v => v / 255)))", n))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir: Path) -> Path:
    from scratchcnn.train.runs import train_run

    out = tmp_path_factory.mktemp("explore") / "run"
    train_run({"train_size": 3000, "epochs": 2, "batch_size": 16, "learning_rate": 0.02, "engine": "numpy"}, out,
              data_dir=data_dir, download=False)
    return out


@pytest.mark.browser
def test_page_draws_predicts_and_matches_numpy(browser, trained_run: Path, data_dir: Path, tmp_path: Path) -> None:
    from scratchcnn.data import load_dataset

    path = write_explorer(trained_run / "model.npz", data_dir=data_dir).path
    net = ConvNet.load(trained_run / "model.npz")
    test = load_dataset("mnist", data_dir, download=False)
    page, errors = open_page(browser, path)
    load_ms = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    print(f"the page loaded in {load_ms:.0f} ms")  # a figure for the README, not a test: timings vary with load

    # the 10 first embedded test images: the page's probabilities are predict_proba's
    assert page.evaluate("window.scratchcnn.imageCount") == PICKER_IMAGES
    first = page.evaluate("[0, 1, 2].map(i => window.scratchcnn.image(i))")
    assert first == test.test_images[:3].reshape(3, -1).tolist()
    np.testing.assert_allclose(page_probabilities(page, 10), net.predict_proba(test.test_images[:10]), atol=1e-5)
    page.locator("#picker figure").nth(3).click()
    np.testing.assert_allclose(page.evaluate("window.scratchcnn.probabilities()"),
                               net.predict_proba(test.test_images[3:4])[0], atol=1e-5)

    # draw a stroke: the probabilities follow, and are the network's on the page's input
    page.locator("#clear").click()
    blank = page.evaluate("window.scratchcnn.probabilities()")
    box = page.locator("#draw").bounding_box()
    page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.25 * box["height"])
    page.mouse.down()
    for t in np.linspace(0, 1, 25):
        page.mouse.move(box["x"] + (0.3 + 0.35 * t) * box["width"], box["y"] + (0.25 + 0.5 * t) * box["height"])
    page.mouse.up()
    drawn = np.array(page.evaluate("window.scratchcnn.probabilities()"))
    assert np.abs(drawn - blank).max() > 1e-3
    X = np.array(page.evaluate("window.scratchcnn.input()")).reshape(net.input_shape)
    assert X.max() > 0.9 and X.min() >= 0
    np.testing.assert_allclose(drawn, net.predict_proba(X[None])[0], atol=1e-5)

    # hovering a pixel of Y_1 shows the sum that produced it
    Y, _ = net.feature_maps(X)
    size = page.locator("canvas.map").first.evaluate("el => el.clientWidth")
    i, j = 12, 14
    page.locator("canvas.map").first.hover(position={"x": 1 + (j + 0.5) * size / 28, "y": 1 + (i + 0.5) * size / 28})
    heading = page.locator("#detail h2").inner_text()
    assert heading.startswith(f"Y1({i}, {j}) = ") and abs(float(heading.split("= ")[1]) - Y[0, i, j]) < 1e-3
    assert "×" in page.locator("#detail").inner_text() and page.locator("#window").is_visible()

    ms = page.evaluate("window.scratchcnn.timeForward(200)")
    assert ms < 5, f"forward pass {ms} ms"
    shot = tmp_path / "explorer.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert errors == []
    print(f"load {load_ms:.0f} ms, forward {ms * 1000:.1f} µs")


@pytest.mark.browser
@pytest.mark.parametrize("config", [
    {"filters": 4, "kernel_size": 5, "pool": "max", "activation": "relu", "bias": True},
    {"filters": 2, "kernel_size": 4, "pool": "avg", "activation": "relu", "dtype": "float64"},
])
def test_every_layer_option_matches_numpy(browser, data_dir: Path, tmp_path: Path, config: dict) -> None:
    from scratchcnn.data import load_dataset
    from scratchcnn.train import fit

    test = load_dataset("mnist", data_dir, download=False)
    net = ConvNet(**config, seed=1)
    net.dataset = "mnist"
    fit(net, test.train_images[:1000], test.train_labels[:1000], learning_rate=0.02, epochs=1, batch_size=16,
        validation_size=0, engine="numpy")
    model = net.save(tmp_path / "run" / "model.npz")
    page, errors = open_page(browser, write_explorer(model, data_dir=data_dir).path)
    np.testing.assert_allclose(page_probabilities(page, 10), net.predict_proba(test.test_images[:10]), atol=1e-5)
    assert page.evaluate("window.scratchcnn.timeForward(100)") < 5
    assert errors == []


@pytest.mark.browser
def test_any_input_size_and_class_count(browser, tmp_path: Path) -> None:
    net = ConvNet.load(saved_model(tmp_path, pool="max", input_shape=(13, 10), classes=3, bias=True, kernel_size=2))
    path = tmp_path / "page.html"
    path.write_text(build_page(net), encoding="utf-8")
    page, errors = open_page(browser, path)
    X = np.random.default_rng(0).random((6, 13, 10)).astype(np.float32)
    got = [page.evaluate("p => window.scratchcnn.predict(p)", x.ravel().tolist()) for x in X]
    np.testing.assert_allclose(got, net.predict_proba(X), atol=1e-5)
    assert page.locator("#no-picker").is_visible() and errors == []
