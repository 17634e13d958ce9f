"""The browser lab's trainer (viz/assets/trainer.js) against the Python side, float64 throughout.

Node runs the script with a small driver written to tmp_path (network.js, then trainer.js, from the package);
data go in as JSON and raw uint8 files. Each layer's gradients must equal ``Stack.loss_and_gradients_prepared``'s,
and an epoch in JavaScript over fit's record order must leave the parameters fit leaves (1e-9 relative), for
every optimiser, schedule and weight decay. Chromium runs the seed network's epoch in a Web Worker, as the lab does.
"""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_explorer import browser  # noqa: F401 (a fixture: headless Chromium, as the explorer's tests launch it)
from threadpoolctl import threadpool_limits

import scratchcnn.viz
from scratchcnn.data import load_dataset
from scratchcnn.nn.metrics import evaluate
from scratchcnn.nn.network import Network, as_stack, from_spec
from scratchcnn.nn.spec import build
from scratchcnn.train import sgd
from scratchcnn.viz.explorer import page_data

ASSETS = Path(scratchcnn.viz.__file__).parent / "assets"
RELATIVE = 1e-9  # max |Δθ| / max |θ| per array after an epoch
LENET_MIXED = "conv:4x4:same,relu,pool:avg,conv:3x3:valid,pool:max,relu,conv:5x2,flatten,dense:7,relu,dense"

DRIVER = r"""
"use strict";
const fs = require("fs");
const [assets, jobPath, outPath] = process.argv.slice(2);
require(assets + "/network.js");
require(assets + "/backprop.js");
const ScratchTrain = require(assets + "/trainer.js");
const job = JSON.parse(fs.readFileSync(jobPath, "utf8"));
const bytes = (path) => new Uint8Array(fs.readFileSync(path));
const plain = (arrays) => Object.fromEntries(Object.entries(arrays).map(([k, v]) => [k, Array.from(v)]));
const images = bytes(job.images), labels = bytes(job.labels);
const T = ScratchTrain.trainer(job.page, job.options);
const out = {};
if (job.batch) {
  out.batch = T.trainBatch(images, labels, Int32Array.from(job.batch), T.learningRate(0));
  out.gradients = plain(T.gradients());
}
out.epochs = (job.orders || []).map((order, e) => {
  const { steps, loss } = T.epoch(images, labels, Int32Array.from(order), e);
  return { steps, loss, lr: T.learningRate(e), params: plain(T.parameters()) };
});
if (job.evaluate) out.evaluate = T.evaluate(bytes(job.evaluate.images), bytes(job.evaluate.labels), job.evaluate.count);
const state = T.optimiserState();
out.optimiser = { optimiser: state.optimiser, t: state.t, buffers: plain(state.buffers) };
fs.writeFileSync(outPath, JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    assert found, "node is needed to run the lab's JavaScript (apt-get install nodejs)"
    return found


@pytest.fixture(scope="module")
def mnist(data_dir: Path) -> dict[str, np.ndarray]:
    data = load_dataset("mnist", data_dir, download=False)
    return {"X": data.train_images[:500], "y": data.train_labels[:500],
            "X_test": data.test_images[:300], "y_test": data.test_labels[:300]}


@pytest.fixture(autouse=True)
def one_blas_thread() -> Iterator[None]:
    """NumPy's small matrix products run faster (and as fast on a busy machine) without BLAS threads."""
    with threadpool_limits(1):
        yield


def run_js(node: str, tmp_path: Path, net: Network, X: np.ndarray, y: np.ndarray, options: dict[str, Any],
           **job: Any) -> dict[str, Any]:
    """The driver's output for a job on net's page data (taken now), images X: (N, H, W) uint8 and labels y."""
    folder = tmp_path / f"job{len(list(tmp_path.glob('job*')))}"
    folder.mkdir()
    np.ascontiguousarray(X, np.uint8).tofile(folder / "images.bin")
    np.asarray(y, np.uint8).tofile(folder / "labels.bin")
    if "evaluate" in job:
        X_eval, y_eval, count = job["evaluate"]
        np.ascontiguousarray(X_eval, np.uint8).tofile(folder / "eval_images.bin")
        np.asarray(y_eval, np.uint8).tofile(folder / "eval_labels.bin")
        job["evaluate"] = {"images": str(folder / "eval_images.bin"), "labels": str(folder / "eval_labels.bin"),
                           "count": count}
    job = {"page": page_data(net), "options": options, "images": str(folder / "images.bin"),
           "labels": str(folder / "labels.bin"), **job}
    (folder / "job.json").write_text(json.dumps(job))
    (folder / "driver.js").write_text(DRIVER)
    subprocess.run([node, folder / "driver.js", ASSETS, folder / "job.json", folder / "out.json"], check=True,
                   timeout=120)
    return json.loads((folder / "out.json").read_text())


def node_eval(node: str, code: str) -> Any:
    """The JSON a JavaScript expression gives, with ScratchNet and ScratchTrain loaded."""
    script = (f"require({json.dumps(str(ASSETS / 'network.js'))});"
              f"require({json.dumps(str(ASSETS / 'backprop.js'))});"
              f"const ScratchTrain = require({json.dumps(str(ASSETS / 'trainer.js'))});"
              f"process.stdout.write(JSON.stringify({code}));")
    return json.loads(subprocess.run([node, "-e", script], check=True, capture_output=True, text=True).stdout)


def with_random_biases(net: Network, seed: int = 4) -> Network:
    """Biases start at 0; nonzero ones make their gradients' paths count."""
    rng = np.random.default_rng(seed)
    for name, value in as_stack(net).parameters().items():
        if name.endswith(".b"):
            value[...] = rng.normal(0, 0.3, value.shape)
    return net


def assert_close(js: dict[str, list[float]], python: dict[str, np.ndarray], relative: float = RELATIVE) -> None:
    """Every array equal within `relative` of its largest magnitude."""
    assert js.keys() == python.keys()
    for name, value in python.items():
        got = np.asarray(js[name], np.float64).reshape(value.shape)
        assert np.abs(got - value).max() <= relative * np.abs(value).max(), name


def fit_orders(n: int, seed: int, epochs: int) -> list[np.ndarray]:
    """fit's record order per epoch over the original indices (validation_size 0): the split permutes the
    records, then each epoch is the next permutation of the split."""
    rng = np.random.default_rng(seed)
    split = rng.permutation(n)
    return [split[rng.permutation(n)] for _ in range(epochs)]


def fit_epochs(monkeypatch: pytest.MonkeyPatch, net: Network, X: np.ndarray, y: np.ndarray,
               **options: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run fit (NumPy engine, no validation) and return, per epoch, what its epoch saw and left, and the
    optimiser states fit saved."""
    seen: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    original = sgd._epoch

    def recording(net_: Network, X_train: np.ndarray, y_train: np.ndarray, order: np.ndarray, eta: float,
                  *args: Any, **kwargs: Any) -> tuple[int, float]:
        steps, loss = original(net_, X_train, y_train, order, eta, *args, **kwargs)
        seen.append({"X": X_train[order], "y": y_train[order], "eta": eta, "steps": steps, "loss": loss,
                     "params": {k: v.copy() for k, v in as_stack(net_).parameters().items()}})
        return steps, loss

    monkeypatch.setattr(sgd, "_epoch", recording)
    sgd.fit(net, X, y, validation_size=0, engine="numpy", save_state=lambda state: states.append(state.optimiser),
            **options)
    return seen, states


def js_options(options: dict[str, Any]) -> dict[str, Any]:
    names = {"learning_rate": "learningRate", "batch_size": "batchSize", "weight_decay": "weightDecay",
             "optimiser": "optimiser", "momentum": "momentum", "schedule": "schedule", "epochs": "epochs"}
    return {names[key]: value for key, value in options.items() if key in names}


def check_epochs_equal(js: dict[str, Any], seen: list[dict[str, Any]], orders: list[np.ndarray],
                       X: np.ndarray, y: np.ndarray) -> None:
    for order, python, ours in zip(orders, seen, js["epochs"], strict=True):
        # the order given to JavaScript is fit's: the same images and labels, in the same sequence
        np.testing.assert_array_equal(python["X"], X[order])
        np.testing.assert_array_equal(python["y"], y[order])
        assert ours["lr"] == pytest.approx(python["eta"], rel=1e-15)
        assert ours["steps"] == python["steps"]
        if math.isfinite(python["loss"]):
            assert ours["loss"] == pytest.approx(python["loss"], rel=1e-9)
        else:
            assert ours["loss"] is None or not math.isfinite(ours["loss"])  # JSON writes NaN as null
        assert_close(ours["params"], python["params"])


# ---- one batch: the backward equations -------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "shape"), [
    ("seed", (28, 28)),
    ("lenet", (28, 28)),
    (LENET_MIXED, (13, 12)),  # same with even k, avg and max on odd maps, 2×2 bottom-right, hidden dense
    ("conv:3x3:same,pool:max,conv:2x3:valid-b,relu,pool:decimate,flatten,dense-b", (11, 9)),
    ("conv:2x5:valid,relu,pool:avg,flatten,dense:9-b,relu,dense", (15, 15)),
    ("pool:max,conv:3x2:same,relu,pool:max,flatten,dense", (17, 16)),  # nothing to train before the conv
    ("flatten,dense:16,relu,dense-b", (9, 10)),
])
def test_one_batch_gives_numpys_gradients(node: str, tmp_path: Path, mnist, spec: str, shape: tuple) -> None:
    net = with_random_biases(build(spec, input_shape=shape, dtype="float64", seed=1))
    X, y = mnist["X"][:6, : shape[0], : shape[1]].copy(), mnist["y"][:6]
    js = run_js(node, tmp_path, net, X, y, {}, batch=list(range(len(X))))
    loss, grads = net.loss_and_gradients_prepared(net.prepare(X), y.astype(np.int64))
    assert js["batch"]["loss"] == pytest.approx(loss, rel=1e-12)
    assert js["batch"]["correct"] == int((net.forward(X).argmax(axis=1) == y).sum())
    assert js["gradients"].keys() == grads.keys()
    for name, g in grads.items():
        np.testing.assert_allclose(np.reshape(js["gradients"][name], g.shape), g, rtol=1e-10,
                                   atol=1e-12 * np.abs(g).max(), err_msg=name)
    assert js["optimiser"]["t"] == 1


def test_max_pooling_ties_go_to_the_first_maximum(node: str) -> None:
    """(0,0), (0,1), (1,0), (1,1): the first of equal values wins, as NumPy's argmax; a NaN wins outright."""
    got = node_eval(node, """(() => {
        const windows = [[1, 1, 1, 1], [0, 2, 2, 0], [0, 0, 3, 3], [-1, -1, -1, -0.5], [0, NaN, 5, NaN]];
        return windows.map(([a, b, c, d]) => {
            const Z = new Float64Array(1), winner = new Uint8Array(1);
            ScratchTrain.maxPoolForward(Float64Array.of(a, b, c, d), [1, 2, 2], Z, winner, [1, 1, 1]);
            return winner[0];
        });
    })()""")
    windows = np.array([[1, 1, 1, 1], [0, 2, 2, 0], [0, 0, 3, 3], [-1, -1, -1, -0.5], [0, np.nan, 5, np.nan]])
    assert got == list(windows.argmax(axis=1)) == [0, 1, 2, 3, 1]


# ---- epochs: fit's parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["seed", "lenet"])
@pytest.mark.parametrize("batch_size", [1, 8])
@pytest.mark.parametrize("optimiser", ["sgd", "adam"])
def test_an_epoch_leaves_fits_parameters(node: str, tmp_path: Path, monkeypatch, mnist, arch: str,
                                         batch_size: int, optimiser: str) -> None:
    X, y = mnist["X"], mnist["y"]
    net = from_spec(arch, seed=0, dtype="float64")
    options = {"learning_rate": 0.01 if optimiser == "sgd" else 0.001, "epochs": 1, "batch_size": batch_size,
               "optimiser": optimiser, "seed": 3}
    orders = fit_orders(len(X), 3, 1)
    js = run_js(node, tmp_path, net, X, y, js_options(options), orders=[o.tolist() for o in orders])
    seen, _ = fit_epochs(monkeypatch, net, X, y, **options)
    assert seen[0]["steps"] == math.ceil(len(X) / batch_size)
    check_epochs_equal(js, seen, orders, X, y)
    assert js["optimiser"]["t"] == seen[0]["steps"]


@pytest.mark.parametrize(("optimiser", "schedule", "weight_decay"), [
    ("momentum", "constant", 0.0),
    ("nesterov", "step", 0.01),
    ("adam", "cosine", 0.003),
    ("sgd", "step", 0.02),
    ("momentum", "cosine", 0.0),
])
def test_optimisers_schedules_and_weight_decay_over_epochs(node: str, tmp_path: Path, monkeypatch, mnist,
                                                           optimiser: str, schedule: str,
                                                           weight_decay: float) -> None:
    X, y = mnist["X"][:200], mnist["y"][:200]
    net = with_random_biases(build("conv:3x3:same,relu,pool:max,flatten,dense:12,relu,dense", dtype="float64",
                                   seed=2))
    options = {"learning_rate": 0.002 if optimiser == "adam" else 0.03, "epochs": 3, "batch_size": 3,
               "optimiser": optimiser, "momentum": 0.8, "weight_decay": weight_decay, "schedule": schedule,
               "seed": 5}
    orders = fit_orders(len(X), 5, 3)
    evaluation = (mnist["X_test"], mnist["y_test"], None)
    js = run_js(node, tmp_path, net, X, y, js_options(options), orders=[o.tolist() for o in orders],
                evaluate=evaluation)
    seen, states = fit_epochs(monkeypatch, net, X, y, **options)
    assert len(seen) == 3 and all(epoch["steps"] == 67 for epoch in seen)  # 200 = 66 × 3 + 2: a short last batch
    assert len({epoch["eta"] for epoch in seen}) == (1 if schedule == "constant" else 3)  # step: every ⌈3/3⌉ = 1
    check_epochs_equal(js, seen, orders, X, y)
    state = states[-1]
    assert js["optimiser"]["t"] == state["step"] == 3 * 67
    assert_close(js["optimiser"]["buffers"], state["buffers"])
    accuracy, loss = evaluate(net, mnist["X_test"], mnist["y_test"])
    assert js["evaluate"]["accuracy"] == accuracy
    assert js["evaluate"]["loss"] == pytest.approx(loss, rel=1e-12)


def test_evaluate_takes_the_first_count_records(node: str, tmp_path: Path, mnist) -> None:
    net = with_random_biases(build(LENET_MIXED, input_shape=(28, 28), dtype="float64", seed=6))
    X, y = mnist["X_test"], mnist["y_test"]
    js = run_js(node, tmp_path, net, X, y, {}, evaluate=(X, y, 123))
    accuracy, loss = evaluate(net, X[:123], y[:123])
    assert js["evaluate"]["accuracy"] == accuracy and js["evaluate"]["loss"] == pytest.approx(loss, rel=1e-12)


@pytest.mark.parametrize("learning_rate", [1e3, 1e20])
def test_a_non_finite_loss_stops_the_epoch_as_fit_does(node: str, tmp_path: Path, monkeypatch, mnist,
                                                       learning_rate: float) -> None:
    X, y = mnist["X"][:100], mnist["y"][:100]
    net = build("conv:2x3,pool:avg,flatten,dense:8,relu,dense", dtype="float64", seed=7)
    options = {"learning_rate": learning_rate, "epochs": 1, "batch_size": 2, "seed": 1}
    orders = fit_orders(len(X), 1, 1)
    js = run_js(node, tmp_path, net, X, y, js_options(options), orders=[o.tolist() for o in orders])
    seen, _ = fit_epochs(monkeypatch, net, X, y, **options)
    assert 0 < seen[0]["steps"] < 50 and not math.isfinite(seen[0]["loss"])  # stopped before the last batch
    check_epochs_equal(js, seen, orders, X, y)
    assert js["optimiser"]["t"] == seen[0]["steps"]


# ---- the rest of the API ------------------------------------------------------------------------------------


def test_shuffle_is_a_seeded_permutation(node: str) -> None:
    a, b, c = node_eval(node, "[1, 1, 2].map(seed => Array.from(ScratchTrain.shuffle(1000, seed)))")
    assert sorted(a) == list(range(1000)) and a == b and a != c and a != sorted(a)


def test_options_schedules_and_parameters(node: str, tmp_path: Path) -> None:
    net = build("conv:2x3,pool:avg,flatten,dense", input_shape=(8, 8), dtype="float64", seed=0)
    page = json.dumps(page_data(net))
    got = node_eval(node, f"""(() => {{
        const images = new Uint8Array(64 * 4).map((_, i) => (i * 37) % 256), labels = [1, 2, 3, 4];
        const T = ScratchTrain.trainer({page}, {{optimiser: "momentum", epochs: 9, schedule: "step",
                                                 learningRate: 0.1}});
        const initial = T.parameters(), rates = [0, 2, 3, 6, 8].map(e => T.learningRate(e));
        T.trainBatch(images, labels, [0, 1], 0.1);
        const first = T.optimiserState();
        T.setOptions({{learningRate: 0.5, batchSize: 3}});
        const kept = T.optimiserState().t;
        T.setOptions({{optimiser: "adam"}});
        const reset = T.optimiserState();
        const saved = T.parameters();
        T.trainBatch(images, labels, [2, 3], 0.1);
        const moved = T.parameters()["0.f"][0] !== saved["0.f"][0];
        T.setParameters(saved);
        const restored = T.parameters()["0.f"][0] === saved["0.f"][0];
        T.setParameters(initial);
        const P = Array.from(T.forward(new Float64Array(64).fill(0.5)));
        return {{rates, t: first.t, buffers: Object.keys(first.buffers), kept, reset: [reset.optimiser, reset.t,
                 Object.keys(reset.buffers).length], moved, restored,
                 P, outs: T.outs.map(o => o.length), steps: T.epoch(images, labels, [0, 1, 2, 3], 0).steps}};
    }})()""")
    assert got["rates"] == pytest.approx([0.1, 0.1, 0.01, 0.001, 0.001], rel=1e-15)  # ×0.1 every ⌈9/3⌉ = 3 epochs
    assert got["t"] == 1 and got["buffers"] == ["velocity.0.f", "velocity.0.b", "velocity.3.W", "velocity.3.b"]
    assert got["kept"] == 1 and got["reset"] == ["adam", 0, 0]
    assert got["moved"] and got["restored"] and got["steps"] == 2  # batches of 3 over 4 records: 3 + 1
    assert got["outs"] == [2 * 8 * 8, 2 * 4 * 4, 32, 10]
    X = np.full((1, 8, 8), 0.5)
    np.testing.assert_allclose(got["P"], net.predict_proba(X)[0], rtol=1e-12)


def test_the_trainer_touches_no_dom() -> None:
    for name, namespace in (("backprop.js", "ScratchBackprop"), ("trainer.js", "ScratchTrain")):
        text = (ASSETS / name).read_text(encoding="utf-8")
        assert not re.search(r"\b(document|window|navigator|localStorage)\s*[.\[]|\bfetch\s*\(", text)
        assert '"use strict"' in text and f"module.exports = {namespace}" in text


# ---- Chromium: the seed network's epoch in a Web Worker -----------------------------------------------------

WORKER_EPOCH = """async ({network, trainer, page, images, labels, order, options}) => {
    const body = network + "\\n" + trainer + `
        self.onmessage = ({data}) => {
            const bytes = Uint8Array.from(atob(data.images), (c) => c.charCodeAt(0));
            const T = ScratchTrain.trainer(data.page, data.options);
            const started = performance.now();
            const result = T.epoch(bytes, data.labels, Int32Array.from(data.order), 0);
            const seconds = (performance.now() - started) / 1000;
            const params = Object.fromEntries(Object.entries(T.parameters()).map(([k, v]) => [k, Array.from(v)]));
            self.postMessage({steps: result.steps, params, seconds, t: T.optimiserState().t});
        };`;
    const worker = new Worker(URL.createObjectURL(new Blob([body], {type: "text/javascript"})));
    const reply = new Promise((resolve, reject) => {
        worker.onmessage = ({data}) => resolve(data);
        worker.onerror = (error) => reject(new Error(error.message));
    });
    worker.postMessage({page, images, labels, order, options});
    return await reply;
}"""


@pytest.mark.browser
def test_chromium_trains_the_seed_network_as_fit_does(browser, monkeypatch, mnist) -> None:  # noqa: F811
    X, y = mnist["X"], mnist["y"]
    net = from_spec("seed", seed=0, dtype="float64")
    options = {"learning_rate": 0.01, "epochs": 1, "batch_size": 1, "optimiser": "sgd", "seed": 11}
    (order,) = fit_orders(len(X), 11, 1)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_content("<!DOCTYPE html><title>trainer</title>")
    result = page.evaluate(WORKER_EPOCH, {
        "network": (ASSETS / "network.js").read_text(encoding="utf-8"),
        "trainer": "\n;\n".join((ASSETS / name).read_text(encoding="utf-8") for name in ("backprop.js", "trainer.js")),
        "page": page_data(net), "images": base64.b64encode(np.ascontiguousarray(X).tobytes()).decode("ascii"),
        "labels": [int(v) for v in y], "order": order.tolist(), "options": js_options(options),
    })
    page.close()
    seen, _ = fit_epochs(monkeypatch, net, X, y, **options)
    np.testing.assert_array_equal(seen[0]["X"], X[order])
    assert result["steps"] == seen[0]["steps"] == result["t"] == len(X) and not errors
    assert_close(result["params"], seen[0]["params"])
    assert result["seconds"] < 5  # 500 records; about 0.1 s on a quiet machine
