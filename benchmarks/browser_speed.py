"""Training speed in the browser: scratchcnn's JavaScript trainer against ConvNetJS and TensorFlow.js.

Usage: python benchmarks/browser_speed.py [--records 2000,500] [--repeats 3] [--data-dir DIR] [--keep-npm DIR]
       python benchmarks/browser_speed.py --implementations ours --profile ours   (where ours spends its time)

A benchmark, not a test: it asserts nothing. In one headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright), each implementation trains the same network, per record (batch size 1, plain SGD, learning rate
0.005, softmax cross-entropy), on the same MNIST training records in the same order, and the script prints
records per second:

- ours: the page's network.js + backprop.js + trainer.js, read from the installed package, in float64;
- ConvNetJS 0.3.0 (float64 too: its arrays are Float64Array);
- TensorFlow.js 4.22.0 on its cpu backend (float32), one tf.train.sgd minimize per record inside tf.tidy.

ConvNetJS and TensorFlow.js are installed with npm into a temporary folder (or --keep-npm DIR, reused when it
already holds them), never into the project; their browser bundles are injected into blank pages.

Networks: "seed" (the write-up's: conv 3@3×3, no activation, decimation 2×2 keeping the top-left pixel, dense 10
without bias) and "lenet" (conv 6@5×5 same, relu, max pool 2, conv 16@5×5 valid, relu, max pool 2, dense 120 relu,
dense 84 relu, dense 10). The libraries pad "same" on all four sides where ours pads bottom-right only: the output
has the same size, so the arithmetic is the same. ConvNetJS always adds biases to its conv and dense layers
(TF.js's seed network has none, as ours). Decimation is ConvNetJS's pool with sx=1, stride=2 and TF.js's maxPool
of size 1, stride 2.

Each implementation runs in its own page (its own browser context), warms up for about a second, then trains
N records --repeats times, the implementations alternating. Every timed run starts at the first record, so all
implementations see the same records in the same order; N is the network's --records minimum, raised for a fast
implementation so that its run lasts at least --min-seconds (records cycle through the 10 000 loaded). It prints
medians of records/s and ours ÷ each library, as a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import base64
import importlib.resources
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-renderer-backgrounding",
                 "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows"]
PACKAGES = {"convnetjs": "0.3.0", "@tensorflow/tfjs": "4.22.0"}
BUNDLES = {"convnetjs": ("build/convnet-min.js", "build/convnet.js"), "@tensorflow/tfjs": ("dist/tf.min.js",)}
NETWORKS = ("seed", "lenet")
IMPLEMENTATIONS = ("ours", "convnetjs", "tfjs")
TITLES = {"ours": "ours", "convnetjs": "ConvNetJS", "tfjs": "TF.js (cpu)"}
LEARNING_RATE = 0.005
MAX_IMAGES = 10_000  # records loaded into each page; runs longer than that cycle through them
WARM_UP_SECONDS = 1.0


class BenchmarkError(Exception):
    """Something the benchmark needs is missing: reported as one line, exit status 2."""


# ---- the pages' JavaScript ------------------------------------------------------------------------

# Common to every page: the records (uint8 N·H·W, labels), and a timer around the implementation's own
# `self.Bench.train(order)` which trains one record per entry of `order` and returns {loss, correct} totals.
HARNESS_JS = r"""
"use strict";
self.Bench = {
  load(base64, labels, H, W) {
    const text = atob(base64), images = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) images[i] = text.charCodeAt(i);
    Object.assign(this, {images, labels: Int32Array.from(labels), H, W, count: labels.length});
  },
  order(start, n) {  // records start, start+1, ... cycling through the loaded ones
    const order = new Int32Array(n);
    for (let t = 0; t < n; t++) order[t] = (start + t) % this.count;
    return order;
  },
  time(start, n) {
    const order = this.order(start, n), t0 = performance.now();
    const result = this.train(order);
    const seconds = (performance.now() - t0) / 1000;
    return {seconds, records: n, loss: result.loss / n, accuracy: result.correct / n};
  },
  warmUp(seconds) {  // growing chunks until `seconds` have passed and JIT tiers settle: the best chunk's records/s
    let done = 0, chunk = 10, best = 0, chunks = 0;
    const t0 = performance.now();
    while ((performance.now() - t0) / 1000 < seconds || chunks < 3) {
      const run = this.time(done, chunk);
      best = Math.max(best, run.records / run.seconds);
      done += chunk; chunks++;
      chunk = Math.min(chunk * 2, 2000);
    }
    return best;
  },
};
function argmax(values) {
  let best = 0;
  for (let c = 1; c < values.length; c++) if (values[c] > values[best]) best = c;
  return best;
}
"""

# Ours: ScratchTrain.trainer over the page data, one trainBatch of one record per step.
OURS_JS = r"""
"use strict";
Bench.build = function (data, lr) {
  const T = ScratchTrain.trainer(data, {optimiser: "sgd", learningRate: lr, batchSize: 1});
  const one = [0];
  Bench.train = (order) => {
    let loss = 0, correct = 0;
    for (let t = 0; t < order.length; t++) {
      one[0] = order[t];
      const r = T.trainBatch(Bench.images, Bench.labels, one, lr);
      loss += r.loss; correct += r.correct;
    }
    return {loss, correct};
  };
};
"""

# ConvNetJS: its layer definitions and Trainer (plain SGD: momentum 0, no weight decay).
CONVNETJS_JS = r"""
"use strict";
Bench.build = function (arch, lr) {
  const H = Bench.H, W = Bench.W;
  const layers = [{type: "input", out_sx: W, out_sy: H, out_depth: 1}];
  if (arch === "seed") {
    layers.push({type: "conv", sx: 3, filters: 3, stride: 1, pad: 1});  // no activation; bias forced
    layers.push({type: "pool", sx: 1, stride: 2});  // decimation: Z(p, q) = Y(2p, 2q)
  } else {
    layers.push({type: "conv", sx: 5, filters: 6, stride: 1, pad: 2, activation: "relu"});
    layers.push({type: "pool", sx: 2, stride: 2});
    layers.push({type: "conv", sx: 5, filters: 16, stride: 1, pad: 0, activation: "relu"});
    layers.push({type: "pool", sx: 2, stride: 2});
    layers.push({type: "fc", num_neurons: 120, activation: "relu"});
    layers.push({type: "fc", num_neurons: 84, activation: "relu"});
  }
  layers.push({type: "softmax", num_classes: 10});  // ConvNetJS puts a dense (fc, with bias) before it
  const net = new convnetjs.Net();
  net.makeLayers(layers);
  const trainer = new convnetjs.Trainer(net, {method: "sgd", learning_rate: lr, batch_size: 1, momentum: 0,
                                                l2_decay: 0});
  const x = new convnetjs.Vol(W, H, 1, 0.0), n = H * W, last = net.layers[net.layers.length - 1];
  Bench.train = (order) => {
    let loss = 0, correct = 0;
    for (let t = 0; t < order.length; t++) {
      const r = order[t], offset = r * n, label = Bench.labels[r];
      for (let k = 0; k < n; k++) x.w[k] = Bench.images[offset + k] / 255;  // Vol (x, y, d=0): y·W + x
      loss += trainer.train(x, label).loss;
      if (argmax(last.out_act.w) === label) correct++;
    }
    return {loss, correct};
  };
};
"""

# TensorFlow.js: variables and ops (no tf.layers overhead), tf.train.sgd's minimize per record in tf.tidy.
TFJS_JS = r"""
"use strict";
Bench.prepare = async function () {
  tf.enableProdMode();  // no correctness checks between ops: TF.js at its fastest
  await tf.setBackend("cpu");
  await tf.ready();
  return tf.getBackend();
};
Bench.build = function (arch, lr) {
  const H = Bench.H, W = Bench.W, n = H * W;
  const init = tf.initializers.glorotUniform({seed: 0});
  const weight = (shape) => tf.variable(init.apply(shape));
  const bias = (size) => tf.variable(tf.zeros([size]));
  let forward;
  if (arch === "seed") {
    const f = weight([3, 3, 1, 3]), Wd = weight([3 * (H >> 1) * (W >> 1), 10]);
    forward = (X) => {
      const Y = tf.conv2d(X, f, 1, "same");  // no bias, no activation
      const Z = tf.maxPool(Y, 1, 2, "valid");  // decimation: Z(p, q) = Y(2p, 2q)
      return tf.matMul(Z.reshape([1, -1]), Wd);  // dense 10 without bias
    };
  } else {
    const f1 = weight([5, 5, 1, 6]), b1 = bias(6), f2 = weight([5, 5, 6, 16]), b2 = bias(16);
    const W1 = weight([400, 120]), c1 = bias(120), W2 = weight([120, 84]), c2 = bias(84);
    const W3 = weight([84, 10]), c3 = bias(10);
    forward = (X) => {
      let Y = tf.maxPool(tf.relu(tf.add(tf.conv2d(X, f1, 1, "same"), b1)), 2, 2, "valid");
      Y = tf.maxPool(tf.relu(tf.add(tf.conv2d(Y, f2, 1, "valid"), b2)), 2, 2, "valid");
      Y = tf.relu(tf.add(tf.matMul(Y.reshape([1, -1]), W1), c1));
      Y = tf.relu(tf.add(tf.matMul(Y, W2), c2));
      return tf.add(tf.matMul(Y, W3), c3);
    };
  }
  const optimizer = tf.train.sgd(lr);
  Bench.train = (order) => {
    let loss = 0, correct = 0;
    for (let t = 0; t < order.length; t++) {
      const r = order[t], label = Bench.labels[r], pixels = new Float32Array(n), hot = new Float32Array(10);
      for (let k = 0; k < n; k++) pixels[k] = Bench.images[r * n + k] / 255;
      hot[label] = 1;
      const cost = tf.tidy(() => {
        const X = tf.tensor4d(pixels, [1, H, W, 1]), target = tf.tensor2d(hot, [1, 10]);
        return optimizer.minimize(() => {
          const A = forward(X);
          if (argmax(A.dataSync()) === label) correct++;
          return tf.losses.softmaxCrossEntropy(target, A);
        }, true);
      });
      loss += cost.dataSync()[0];
      cost.dispose();
    }
    return {loss, correct};
  };
};
"""


# ---- setup ----------------------------------------------------------------------------------------


def install_libraries(folder: Path) -> dict[str, Path]:
    """npm install ConvNetJS and TF.js into folder (skipped when it holds both versions); their bundles' paths."""
    if not all(installed_version(folder, name) == version for name, version in PACKAGES.items()):
        npm = shutil.which("npm")
        if npm is None:
            raise BenchmarkError("npm not found: install Node.js and npm (apt-get install npm)")
        specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
        command = [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", "--ignore-scripts", *specs]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            why = npm_reason(done.stderr)
            raise BenchmarkError(f"npm install {' '.join(specs)} failed (exit {done.returncode}): {why}")
    return {name: bundle(folder, name) for name in PACKAGES}


def npm_reason(stderr: str) -> str:
    """The line of npm's error output that says what went wrong (not its code, errno or stack lines)."""
    lines = [line.removeprefix("npm error").strip() for line in stderr.splitlines() if line.startswith("npm error")]
    telling = [line for line in lines if line and not re.match(r"(code|errno|syscall|at) |A complete log", line)]
    return (telling or lines or stderr.strip().splitlines() or ["no output"])[0]


def installed_version(folder: Path, name: str) -> str | None:
    manifest = folder / "node_modules" / name / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.is_file() else None


def bundle(folder: Path, name: str) -> Path:
    """The package's browser build: the first of BUNDLES[name] that exists."""
    for relative in BUNDLES[name]:
        path = folder / "node_modules" / name / relative
        if path.is_file():
            return path
    raise BenchmarkError(f"{name} installed, but none of {', '.join(BUNDLES[name])} is in it")


def named(text: str, name: str) -> str:
    """A script's text that the page's profiler and error messages call `name`."""
    return f"{text}\n//# sourceURL={name}\n"


def our_scripts() -> list[str]:
    """network.js, backprop.js then trainer.js, as the installed package ships them."""
    assets = importlib.resources.files("scratchcnn.viz") / "assets"
    texts = []
    for name in ("network.js", "backprop.js", "trainer.js"):
        resource = assets / name
        if not resource.is_file():
            raise BenchmarkError(f"scratchcnn.viz assets have no {name}: the trainer is not built yet")
        texts.append(named(resource.read_text(encoding="utf-8"), name))
    return texts


def our_page_data(arch: str) -> dict[str, Any]:
    """The page's JSON for a fresh preset network (float64, seed 0), without images."""
    from scratchcnn.nn.spec import build
    from scratchcnn.viz.explorer import page_data

    return page_data(build(arch, seed=0, dtype="float64"))


def load_records(data_dir: Path | None, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` MNIST training records: images uint8 (N, 28, 28), labels (N,)."""
    from scratchcnn.data import load_dataset

    try:
        dataset = load_dataset("mnist", data_dir, download=False)
    except Exception as error:  # DataError, or anything the loader finds wrong with the files
        raise BenchmarkError(f"MNIST not loaded from {data_dir}: {str(error).split(';')[0]}") from error
    return dataset.train_images[:count], dataset.train_labels[:count]


@dataclass
class Records:
    """The MNIST records every page trains on, as the pages receive them."""

    base64: str  # uint8 N·H·W
    labels: list[int]
    shape: tuple[int, int]  # H, W

    @classmethod
    def load(cls, data_dir: Path | None) -> Records:
        images, labels = load_records(data_dir, MAX_IMAGES)
        pixels = np.ascontiguousarray(images, np.uint8).tobytes()
        return cls(base64.b64encode(pixels).decode("ascii"), [int(v) for v in labels],
                   (int(images.shape[1]), int(images.shape[2])))


def machine_line(browser_version: str) -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    load = f", load average {os.getloadavg()[0]:.2f} at the start" if hasattr(os, "getloadavg") else ""
    return (f"machine: {cpu}, {os.cpu_count()} cores, Chromium {browser_version}, "
            f"Python {platform.python_version()}{load}")


# ---- the runs -------------------------------------------------------------------------------------


@dataclass
class Runner:
    """One implementation training one network in its own page."""

    implementation: str
    network: str
    page: Any
    warm_rate: float = 0.0
    records: int = 0  # per timed run: records 0, 1, ... (cycling), the same sequence for every implementation
    rates: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)

    def timed(self) -> None:
        self.page.bring_to_front()
        result = self.page.evaluate("n => Bench.time(0, n)", self.records)
        self.rates.append(result["records"] / result["seconds"])
        self.accuracies.append(result["accuracy"])

    def summary(self) -> str:
        rates = ", ".join(f"{v:,.0f}" for v in self.rates)
        accuracies = ", ".join(f"{a:.3f}" for a in self.accuracies)
        return (f"{self.network} {TITLES[self.implementation]}: {self.records} records × {len(self.rates)}, "
                f"records/s {rates} (warm-up {self.warm_rate:,.0f}); training accuracy during the runs {accuracies}")

    def profile(self, top: int) -> str:
        """One more timed run under Chromium's sampling profiler: the `top` functions by self time."""
        cdp = self.page.context.new_cdp_session(self.page)
        cdp.send("Profiler.enable")
        cdp.send("Profiler.setSamplingInterval", {"interval": 100})  # µs
        cdp.send("Profiler.start")
        self.page.evaluate("n => Bench.time(0, n)", self.records)
        nodes = cdp.send("Profiler.stop")["profile"]["nodes"]
        cdp.detach()
        samples: dict[str, int] = {}
        for node in nodes:
            frame = node["callFrame"]
            where = f"{frame['url'].rsplit('/', 1)[-1]}:{frame['lineNumber'] + 1}" if frame["url"] else ""
            name = f"{frame['functionName'] or '(anonymous)'} {where}".strip()
            samples[name] = samples.get(name, 0) + node.get("hitCount", 0)
        total = sum(samples.values()) or 1
        ranked = sorted(samples.items(), key=lambda item: -item[1])[:top]
        return ", ".join(f"{name} {100 * count / total:.0f} %" for name, count in ranked)


def open_runner(browser: Any, implementation: str, network: str, scripts: dict[str, list[str]],
                records: Records) -> Runner:
    """A fresh page with the harness, the implementation's scripts and the records; its network built."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_content("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body></body></html>")
    for script in scripts[implementation]:
        page.add_script_tag(content=script)
    page.add_script_tag(content=named(HARNESS_JS, "harness.js"))
    glue = {"ours": OURS_JS, "convnetjs": CONVNETJS_JS, "tfjs": TFJS_JS}[implementation]
    page.add_script_tag(content=named(glue, f"bench-{implementation}.js"))
    page.evaluate("([b, l, H, W]) => Bench.load(b, l, H, W)", [records.base64, records.labels, *records.shape])
    if implementation == "tfjs":
        backend = page.evaluate("Bench.prepare()")
        if backend != "cpu":
            raise BenchmarkError(f"TF.js runs on {backend}, not cpu")
    what = our_page_data(network) if implementation == "ours" else network
    page.evaluate("([what, lr]) => Bench.build(what, lr)", [what, LEARNING_RATE])
    if errors:
        raise BenchmarkError(f"{implementation} on {network}: {errors[0]}")
    return Runner(implementation, network, page)


def measure(runners: list[Runner], minimum: int, repeats: int, min_seconds: float) -> None:
    """Warm each up, give it its N (≥ minimum, and ≥ min_seconds at its warm-up speed), time N records
    `repeats` times, rotating which implementation goes first."""
    for runner in runners:
        runner.page.bring_to_front()
        runner.warm_rate = runner.page.evaluate("s => Bench.warmUp(s)", WARM_UP_SECONDS)
        runner.records = max(minimum, math.ceil(runner.warm_rate * min_seconds))
    for repeat in range(repeats):
        shift = repeat % len(runners)
        for runner in runners[shift:] + runners[:shift]:
            runner.timed()


def paired_ratios(network: str, runners: list[Runner]) -> str:
    """Ours ÷ each library repeat by repeat: runs of one repeat are close in time, so they share the machine's
    load more than medians do; a wide spread says the machine was busy."""
    ours = next((r for r in runners if r.implementation == "ours"), None)
    if ours is None:
        return f"{network} repeat by repeat: -"
    parts = []
    for r in runners:
        if r is not ours:
            ratios = ", ".join(f"{a / b:.1f}" for a, b in zip(ours.rates, r.rates, strict=True))
            parts.append(f"ours ÷ {TITLES[r.implementation]} {ratios}")
    return f"{network} repeat by repeat: {'; '.join(parts)}"


def ratio(ours: float | None, theirs: float | None) -> str:
    return f"{ours / theirs:.1f}×" if ours and theirs else "–"


def table(results: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| network | ours records/s | ConvNetJS records/s | TF.js (cpu) records/s | ours ÷ ConvNetJS "
             "| ours ÷ TF.js |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for network, rates in results.items():
        cells = [f"{rates[i]:,.0f}" if i in rates else "–" for i in IMPLEMENTATIONS]
        ours = rates.get("ours")
        lines.append(f"| {network} | {' | '.join(cells)} | {ratio(ours, rates.get('convnetjs'))} "
                     f"| {ratio(ours, rates.get('tfjs'))} |")
    return lines


def load_scripts(implementations: list[str], npm_folder: Path) -> dict[str, list[str]]:
    """Each implementation's scripts, in loading order: ours from the package, the libraries from npm."""
    scripts: dict[str, list[str]] = {}
    if "ours" in implementations:
        scripts["ours"] = our_scripts()
    if {"convnetjs", "tfjs"} & set(implementations):
        bundles = install_libraries(npm_folder)
        for implementation, package in (("convnetjs", "convnetjs"), ("tfjs", "@tensorflow/tfjs")):
            scripts[implementation] = [named(bundles[package].read_text(encoding="utf-8"), bundles[package].name)]
    return scripts


def run(args: argparse.Namespace, npm_folder: Path, log: Callable[[str], None]) -> list[str]:
    """The whole benchmark: the report's lines (progress goes to `log` as it comes)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        raise BenchmarkError("playwright is not installed (pip install playwright; no browser download)") from error
    if not CHROMIUM.exists():
        raise BenchmarkError(f"{CHROMIUM} not found (apt-get install chromium)")
    records = Records.load(args.data_dir)
    implementations = [i for i in IMPLEMENTATIONS if i in args.implementations]
    scripts = load_scripts(implementations, npm_folder)
    results: dict[str, dict[str, float]] = {}
    details: list[str] = []

    def note(line: str) -> None:
        details.append(line)
        log(line)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            header = machine_line(browser.version)
            log(header)
            for network, minimum in zip(args.networks, args.records, strict=True):
                runners = [open_runner(browser, i, network, scripts, records) for i in implementations]
                measure(runners, minimum, args.repeats, args.min_seconds)
                results[network] = {r.implementation: statistics.median(r.rates) for r in runners}
                for r in runners:
                    note(r.summary())
                note(paired_ratios(network, runners))
                for r in runners:
                    if r.implementation in args.profile:
                        note(f"{network} {TITLES[r.implementation]} profile (self time): {r.profile(args.top)}")
                    r.page.context.close()
        finally:
            browser.close()
    return [header, "", *details, "", *table(results), "", *NOTES]


NOTES = [
    "Per record (batch size 1), plain SGD, learning rate 0.005, softmax cross-entropy, the same MNIST records "
    "in the same order for each; medians of the repeats.",
    "Ours and ConvNetJS compute in float64, TF.js in float32. ConvNetJS and TF.js pad \"same\" on all sides "
    "where ours pads bottom-right only: same output size, same arithmetic. ConvNetJS always has biases in its conv "
    "and dense layers; decimation is its pool with sx=1, stride 2, and TF.js's maxPool of size 1, stride 2.",
]


def parse_records(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers ≥ 1, comma-separated")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Records per second of per-record SGD training in headless Chromium: scratchcnn's trainer.js "
                    "against ConvNetJS 0.3.0 and TensorFlow.js 4.22.0 (cpu backend), on the seed network and lenet. "
                    "npm installs the two libraries into a temporary folder (the npm registry must be reachable).",
        epilog="Prints the machine (CPU, cores, Chromium), each run's records/s, then a Markdown table of the "
               "medians and ours ÷ ConvNetJS, ours ÷ TF.js. Exit status 2, with one line saying why, when npm, "
               "Chromium, Playwright or the data is missing or npm install fails.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--records", type=parse_records, default="2000,500",
                        help="the fewest records per timed run, one number per network of --networks (in its "
                             "order) or one for all; a faster implementation times more, to last --min-seconds")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per implementation (the median counts)")
    parser.add_argument("--min-seconds", type=float, default=1.0,
                        help="each implementation's timed run lasts at least about this long (from its warm-up speed)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the folder holding mnist/ (its first 10 000 training records are used; default: "
                             "where scratchcnn finds it, e.g. $SCRATCHCNN_DATA)")
    parser.add_argument("--keep-npm", type=Path, metavar="DIR",
                        help="install ConvNetJS and TF.js into DIR and keep them there (reused when DIR already "
                             "holds them) instead of a temporary folder")
    parser.add_argument("--networks", default=",".join(NETWORKS), help="which networks, comma-separated")
    parser.add_argument("--implementations", default=",".join(IMPLEMENTATIONS),
                        help="which implementations, comma-separated")
    parser.add_argument("--profile", default="",
                        help="implementations to profile, comma-separated (e.g. ours): one more run each under "
                             "Chromium's sampling profiler, its functions by self time printed")
    parser.add_argument("--top", type=int, default=10, help="functions listed per --profile")
    args = parser.parse_args(argv)
    args.networks = [n for n in args.networks.split(",") if n]
    args.profile = [i for i in args.profile.split(",") if i]
    chosen = set(args.implementations.split(",")) | set(args.profile)
    unknown = set(args.networks) - set(NETWORKS) | chosen - set(IMPLEMENTATIONS)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    if len(args.records) == 1:
        args.records *= len(args.networks)
    if len(args.records) != len(args.networks):
        parser.error(f"--records: {len(args.records)} numbers for {len(args.networks)} networks")
    args.implementations = args.implementations.split(",")
    if args.repeats < 1:
        parser.error("--repeats must be ≥ 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731 (progress; the report is stdout)
    try:
        if args.keep_npm:
            args.keep_npm.mkdir(parents=True, exist_ok=True)
            report = run(args, args.keep_npm, log)
        else:
            with tempfile.TemporaryDirectory(prefix="browser-speed-npm-") as folder:
                report = run(args, Path(folder), log)
    except BenchmarkError as error:
        print(f"browser_speed: {error}", file=sys.stderr)
        return 2
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
