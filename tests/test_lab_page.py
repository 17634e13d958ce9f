"""The lab (issue 13): `scratchcnn lab` and the explorer's Train panel, trained in headless Chromium.

The page's training (trainer.js in the page's Web Worker, float64) is held equal to fit's; the model it saves
evaluates in Python to the accuracy the page showed; the overtraining preset overtrains; the page stays
responsive while it trains, one file, linking to nothing.
"""

# ruff: noqa: F811 (test_explorer's fixtures, imported, are the parameters of the tests below)
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import run_main
from test_explorer import browser, open_page  # noqa: F401 (a fixture)

from scratchcnn.data import load_dataset
from scratchcnn.nn.metrics import evaluate
from scratchcnn.nn.network import as_stack, build_network, load_model
from scratchcnn.options import resolve
from scratchcnn.train import fit
from scratchcnn.viz.explorer import write_lab
from scratchcnn.viz.lab import LAB_RECORDS, LAB_VALIDATION

pytestmark = pytest.mark.browser


def lab_json(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="lab-data">(.*?)</script>', page, re.S)
    assert match, "no lab data"
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def mnist(data_dir: Path):
    return load_dataset("mnist", data_dir, download=False)


def lab_page(tmp_path: Path, mnist, records: int = 500, **given) -> tuple[Path, object]:
    run = resolve({"dataset": "mnist", **given})
    net = build_network(run.network, seed=run.seed)
    net.dataset = "mnist"
    return write_lab(net, mnist, run, tmp_path / "lab.html", records), net


def wait_stopped(page, timeout: float = 120_000) -> None:
    page.wait_for_function("window.scratchcnn.lab.status() && window.scratchcnn.lab.status().steps > 0 "
                           "&& !window.scratchcnn.lab.status().running", timeout=timeout)


# ---- the command -------------------------------------------------------------------------------------


def test_lab_writes_a_page_with_its_sample(tmp_path, data_dir, capsys):
    out = tmp_path / "lab.html"
    status, stdout, stderr = run_main(["lab", "--data-dir", data_dir, "--out", out, "--lab-records", 300], capsys)
    assert status == 0, stderr
    assert f"wrote {out}" in stdout and "300 training records" in stdout
    lab = lab_json(out.read_text(encoding="utf-8"))
    assert lab["train"]["count"] == 300 and lab["validation"]["count"] == LAB_VALIDATION
    assert len(lab["train"]["labels"]) == 300 and len(lab["train"]["base64"]) == 4 * 300 * 784 // 3
    assert lab["header"]["format"] == "scratchcnn.Stack" and set(lab["presets"]) == {"write-up", "overtraining"}


def test_lab_never_overwrites_without_being_asked(tmp_path, data_dir, capsys):
    out = tmp_path / "lab.html"
    out.write_text("mine")
    status, _, stderr = run_main(["lab", "--data-dir", data_dir, "--out", out], capsys)
    assert status == 2 and out.read_text() == "mine"
    assert len(stderr.strip().splitlines()) == 1 and "--overwrite" in stderr
    status, _, stderr = run_main(["lab", "--data-dir", data_dir, "--out", out, "--overwrite", "--lab-records", 50],
                                 capsys)
    assert status == 0, stderr and out.read_text() != "mine"


@pytest.mark.parametrize("argv, words", [
    (["--lab-records", "10000"], "--lab-records must lie in 1..9999"),
    (["--lab-records", "0"], "--lab-records"),
    (["--layers", "conv:0x3"], "layer 1 of 1"),
    (["--arch", "lenet", "--filters", "8"], "--filters"),
])
def test_lab_refuses_bad_options_in_one_line(tmp_path, data_dir, capsys, argv, words):
    status, _, stderr = run_main(["lab", "--data-dir", data_dir, "--out", tmp_path / "x.html", *argv], capsys)
    last = stderr.strip().splitlines()[-1]  # argparse's own refusals print the usage above it
    assert status == 2 and words in last and "Traceback" not in stderr
    assert not (tmp_path / "x.html").exists()


def test_lab_of_a_model_refuses_network_flags(tmp_path, data_dir, capsys, mnist):
    net = build_network(resolve({}).network, seed=0)
    net.dataset = "mnist"
    model = net.save(tmp_path / "model.npz")
    status, _, stderr = run_main(["lab", model, "--arch", "wide", "--out", tmp_path / "x.html"], capsys)
    assert status == 2 and "--arch" in stderr
    status, _, stderr = run_main(["lab", model, "--data-dir", data_dir, "--out", tmp_path / "x.html",
                                  "--lab-records", 100], capsys)
    assert status == 0, stderr


def test_default_page_is_one_small_file_linking_to_nothing(tmp_path, mnist):
    path, _ = lab_page(tmp_path, mnist, LAB_RECORDS)
    page = path.read_text(encoding="utf-8")
    assert path.stat().st_size < 8_000_000
    assert not re.search(r"https?:", page), "a network reference"
    assert not re.search(r"""(?:src|href)\s*=\s*["']?//|url\(\s*["']?//|@import""", page)


def test_explore_gets_a_train_panel_unless_asked_not_to(tmp_path, data_dir, capsys, mnist):
    net = build_network(resolve({}).network, seed=0)
    net.dataset = "mnist"
    model = net.save(tmp_path / "run" / "model.npz")
    status, _, stderr = run_main(["explore", model, "--data-dir", data_dir, "--lab-records", 200], capsys)
    assert status == 0, stderr
    assert lab_json((tmp_path / "run" / "explorer.html").read_text())["train"]["count"] == 200
    status, _, _ = run_main(["explore", model, "--data-dir", data_dir, "--lab-records", 0], capsys)
    assert status == 0 and lab_json((tmp_path / "run" / "explorer.html").read_text()) is None


# ---- in the browser: equal to fit ----------------------------------------------------------------------


def fit_order(n: int, seed: int) -> np.ndarray:
    """The records fit trains on in its first epoch (validation_size 0): its split, then its stream's order."""
    rng = np.random.default_rng(seed)
    split = rng.permutation(n)
    return split[rng.permutation(n)]


def page_params(page) -> dict[str, np.ndarray]:
    named = page.evaluate("""() => Object.fromEntries(Object.entries(window.scratchcnn.lab.parameters())
        .map(([name, a]) => [name, Array.from(a)]))""")
    return {name: np.array(values) for name, values in named.items()}


@pytest.mark.parametrize("arch", ["seed", "lenet"])
@pytest.mark.parametrize("batch_size", [1, 8])
@pytest.mark.parametrize("optimiser", ["sgd", "adam"])
def test_page_training_equals_fit(tmp_path, browser, mnist, arch, batch_size, optimiser):
    records, seed, rate = 500, 3, 0.001 if optimiser == "adam" else 0.01
    path, net = lab_page(tmp_path, mnist, records, arch=arch, dtype="float64", seed=seed)
    page, errors = open_page(browser, path)
    order = fit_order(records, seed)
    page.evaluate("""([order, options]) => {
        const lab = window.scratchcnn.lab;
        lab.setOptions(options); lab.send({type: "order", order}); lab.send({type: "start"}); }""",
                  [order.tolist(), {"learning_rate": rate, "batch_size": batch_size, "optimiser": optimiser,
                                    "weight_decay": 0, "schedule": "constant", "epochs": 1, "train_records": records,
                                    "epoch_records": records}])
    wait_stopped(page)
    ours = page_params(page)
    fit(net, mnist.train_images[:records], mnist.train_labels[:records], learning_rate=rate, epochs=1,
        batch_size=batch_size, validation_size=0, seed=seed, optimiser=optimiser, weight_decay=0,
        schedule="constant")
    theirs = {name: p.reshape(-1) for name, p in as_stack(net).parameters().items()}
    assert set(ours) == set(theirs)
    for name, value in theirs.items():
        assert np.abs(ours[name] - value).max() <= 1e-9 * np.abs(value).max(), name
    record = page.evaluate("window.scratchcnn.lab.history[0]")
    X_train = mnist.train_images[:records]
    assert record["train_accuracy"] == pytest.approx(evaluate(net, X_train, mnist.train_labels[:records])[0])
    assert not errors


# ---- in the browser: save, overtrain, stay responsive ----------------------------------------------------


def test_saved_model_evaluates_to_what_the_page_showed(tmp_path, browser, mnist, capsys, data_dir):
    records = 400
    path, _ = lab_page(tmp_path, mnist, records)
    page, errors = open_page(browser, path)
    page.evaluate("window.scratchcnn.lab.setOptions({epochs: 1, learning_rate: 0.005})")
    page.click("#lab-start")
    wait_stopped(page)
    with page.expect_download() as download:
        page.click("#lab-save")
    saved = tmp_path / "lab-model.npz"
    download.value.save_as(saved)
    page.wait_for_function("window.scratchcnn.lastSave !== undefined")
    shown = page.evaluate("window.scratchcnn.lastSave.validation_accuracy")
    net = load_model(saved)
    X_val = mnist.train_images[records : records + LAB_VALIDATION]
    accuracy, _ = evaluate(net, X_val, mnist.train_labels[records : records + LAB_VALIDATION])
    assert accuracy == pytest.approx(shown, abs=1e-12) and accuracy > 0.5
    assert f"{100 * shown:.2f} %" in page.inner_text("#lab-status")
    status, _, stderr = run_main(["evaluate", saved, "--data-dir", data_dir], capsys)
    assert status == 0, stderr
    assert not errors


def test_overtraining_preset_overtrains_live(tmp_path, browser, mnist):
    path, _ = lab_page(tmp_path, mnist, 1000)
    page, errors = open_page(browser, path)
    page.select_option("#lab-preset", "overtraining")
    assert page.input_value("#lab-train-records") == "100" and page.input_value("#lab-epochs") == "300"
    page.click("#lab-start")
    wait_stopped(page, timeout=300_000)
    history = page.evaluate("window.scratchcnn.lab.history")
    assert len(history) == 300
    first_perfect = next(r["epoch"] for r in history if r["train_accuracy"] == 1)
    assert first_perfect < 50
    assert max(r["validation_accuracy"] for r in history) < 0.80
    assert not errors


def test_page_stays_responsive_while_it_trains(tmp_path, browser, mnist):
    path, _ = lab_page(tmp_path, mnist, 2000)
    page, errors = open_page(browser, path)
    page.click("#lab-start")
    page.wait_for_function("window.scratchcnn.lab.status().steps > 100")
    page.evaluate("""() => { window.frames_ = []; window.long_ = [];
        const tick = (t) => { window.frames_.push(t); requestAnimationFrame(tick); }; requestAnimationFrame(tick);
        new PerformanceObserver((list) => { for (const e of list.getEntries()) window.long_.push(e.duration); })
          .observe({ type: "long-animation-frame" }); }""")
    box = page.locator("#draw").bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 60)
    before = page.evaluate("window.scratchcnn.lab.status().steps")
    page.mouse.down()
    for n in range(100):  # a stroke over ~5 s while the worker trains
        page.mouse.move(box["x"] + 60 + 1.5 * n, box["y"] + 60 + (n % 20) * 5)
        page.wait_for_timeout(50)
    page.mouse.up()
    frames, busy = np.array(page.evaluate("window.frames_")), page.evaluate("window.long_")
    trained = page.evaluate("window.scratchcnn.lab.status().steps") - before
    page.click("#lab-pause")
    assert frames[-1] - frames[0] > 4500 and trained > 500, trained  # it went on training while the stroke was drawn
    # Training on the page's thread would stall frames for seconds; the bound is loose so that a busy machine
    # does not fail it (the typical figures, ~17 ms gaps and no long frame, are the benchmark's to state).
    assert np.diff(frames).max() <= 250, f"a gap of {np.diff(frames).max():.0f} ms between frames"
    assert max(busy, default=0) <= 250, busy  # no frame's work on the page's thread took a quarter second
    print(f"largest gap between frames {np.diff(frames).max():.0f} ms, long frames {busy}")
    assert not errors


def test_reset_replays_the_same_run_and_step_is_one_batch(tmp_path, browser, mnist):
    path, _ = lab_page(tmp_path, mnist, 300)
    page, errors = open_page(browser, path)
    page.evaluate("window.scratchcnn.lab.setOptions({epochs: 1})")
    page.click("#lab-start")
    wait_stopped(page)
    first = page_params(page)
    page.click("#lab-reset")
    page.wait_for_function("window.scratchcnn.lab.status().steps === 0")
    page.click("#lab-step")
    page.wait_for_function("window.scratchcnn.lab.status().steps === 1")
    assert page.evaluate("window.scratchcnn.lab.status().records") == 1
    page.click("#lab-start")
    page.wait_for_function("window.scratchcnn.lab.status().epoch === 1 && !window.scratchcnn.lab.status().running")
    again = page_params(page)
    for name in first:
        assert np.array_equal(first[name], again[name]), name
    assert not errors
