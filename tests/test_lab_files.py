"""The explorer lab's two file helpers, run in node on the same inputs as the Python they stand in for.

npz.js: the .npz a page writes is what np.savez writes (each .npy member byte for byte), a model file from
it loads with load_model (parameters bit for bit, the same predictions), np.load and ``scratchcnn evaluate``
read it, and a non-ASCII header survives. picture.js: a user's picture prepared in JavaScript is the image
images.preprocess makes of the same RGBA bytes (dark on light paper under uneven light, light on dark, a
transparent background, a noisy photo, a tall thin 1, MNIST digits enlarged and inverted, pictures above
MAX_SIDE), and a picture without ink is refused with Python's reason. node is required, as Chromium is for
the browser tests: without it these tests fail.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run_main

from scratchcnn.data import load_dataset
from scratchcnn.data.images import (
    ImageError,
    ink_side,
    load_image,
    paper_level,
    preprocess,
    save_png,
    shrink,
    to_gray,
)
from scratchcnn.nn import spec
from scratchcnn.nn.network import as_stack, from_spec, load_model
from scratchcnn.nn.stack import Stack

ASSETS = Path(__file__).resolve().parents[1] / "src" / "scratchcnn" / "viz" / "assets"
NON_ASCII = "chiffres écrits à la main — 手写数字 ✍️ 𝟟"  # accents, CJK, an emoji and an astral digit


def node(script: str, *args: Any, timeout: float = 120) -> str:
    """Run a node script (the asset folder as argv[1], then ``args``); its stdout. Fails without node."""
    exe = shutil.which("node")
    if exe is None:
        pytest.fail("node is not installed: the lab's JavaScript file helpers are tested in node")
    proc = subprocess.run([exe, "-e", script, str(ASSETS), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# ---- npz.js: .npz archives and model files -----------------------------------------------------------------

WRITE_MEMBERS = """
const F = require(process.argv[1] + "/npz.js"), fs = require("fs");
const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8")), members = {};
for (const [name, m] of Object.entries(spec)) {
  const data = m.dtype === "unicode" ? m.data : (m.dtype === "float32" ? Float32Array : Float64Array).from(m.data);
  members[name] = { dtype: m.dtype, shape: m.shape, data };
}
fs.writeFileSync(process.argv[3], F.npz(members));
"""


def write_members_in_node(tmp_path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """ScratchFiles.npz of float32/float64 arrays and 0-d strings (passed as JSON: floats repr round-trip)."""
    spec_ = {name: {"dtype": "unicode", "shape": [], "data": str(a)} if a.dtype.kind == "U"
             else {"dtype": a.dtype.name, "shape": list(a.shape), "data": a.ravel().tolist()}
             for name, a in arrays.items()}
    (tmp_path / "members.json").write_text(json.dumps(spec_), encoding="utf-8")
    node(WRITE_MEMBERS, tmp_path / "members.json", tmp_path / "members.npz")
    return tmp_path / "members.npz"


def test_npz_members_are_what_numpy_writes_byte_for_byte(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "matrix": rng.normal(size=(3, 4)).astype(np.float32),
        "kernels": rng.normal(size=(2, 1, 5, 5)),
        "vector": np.linspace(-1, 1, 7, dtype=np.float32),
        "scalar": np.array(np.pi),
        "empty": np.zeros((0, 3)),
        "text": np.array(NON_ASCII),
        "blank": np.array(""),
        "long": np.array("x" * 1000),
    }
    path = write_members_in_node(tmp_path, arrays)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # every member's CRC-32 checks
        infos = archive.infolist()
        assert [i.filename for i in infos] == [name + ".npy" for name in arrays]
        assert all(i.compress_type == zipfile.ZIP_STORED and i.file_size == i.compress_size for i in infos)
        for info, (name, value) in zip(infos, arrays.items(), strict=True):
            member = archive.read(info)
            assert zlib.crc32(member) == info.CRC
            expected = io.BytesIO()
            np.save(expected, value)
            assert member == expected.getvalue(), name  # magic, header padded to 64 bytes, data: identical
            assert (len(member) - value.nbytes) % 64 == 0
    with np.load(path) as loaded:  # and np.load reads it, every dtype and shape as written
        for name, value in arrays.items():
            assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape
            assert np.array_equal(loaded[name], value), name
    assert str(np.load(path)["text"]) == NON_ASCII


WRITE_MODEL = """
const F = require(process.argv[1] + "/npz.js"), fs = require("fs");
const job = JSON.parse(fs.readFileSync(process.argv[2], "utf8")), arrays = {};
for (const [name, values] of Object.entries(job.arrays)) arrays[name] = Float64Array.from(values);
fs.writeFileSync(process.argv[3], F.modelNpz(job.header, arrays, job.dtype));
"""


def write_model_in_node(tmp_path: Path, header: dict, arrays: dict[str, np.ndarray], dtype: str | None) -> Path:
    """ScratchFiles.modelNpz(header, arrays as Float64Array, dtype) written to tmp_path/model.npz."""
    job = {"header": header, "arrays": {n: a.astype(np.float64).ravel().tolist() for n, a in arrays.items()},
           "dtype": dtype}
    (tmp_path / "job.json").write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")
    node(WRITE_MODEL, tmp_path / "job.json", tmp_path / "model.npz")
    return tmp_path / "model.npz"


def with_random_biases(net: Stack, seed: int) -> Stack:
    """The stack with nonzero biases (they start at 0: a file that dropped them would pass unnoticed)."""
    rng = np.random.default_rng(seed)
    for name, value in net.parameters().items():
        if name.endswith(".b"):
            value[...] = rng.normal(0, 0.3, value.shape)
    net.dataset = "mnist"
    return net


NETWORKS = {  # name: how to build it (every one a Stack, as the lab saves)
    "seed-float32": lambda: spec.build("seed", seed=0, dtype="float32"),
    "wide-float64": lambda: spec.build("wide", seed=0, dtype="float64"),
    "lenet-float32": lambda: spec.build("lenet", seed=0, dtype="float32"),
    "lenet-float64": lambda: spec.build("lenet", seed=1, dtype="float64"),
    "convnet-as-stack": lambda: as_stack(from_spec("conv:4x5-b,relu,pool:max,flatten,dense", seed=0)),
}


@pytest.fixture(scope="module")
def mnist(data_dir: Path) -> Any:
    return load_dataset("mnist", data_dir, download=False)


@pytest.mark.parametrize("name", NETWORKS)
def test_model_file_from_node_loads_bit_for_bit(tmp_path: Path, name: str, mnist: Any) -> None:
    net = with_random_biases(NETWORKS[name](), seed=len(name))
    path = write_model_in_node(tmp_path, net.header(), net.parameters(), net.dtype)
    loaded = load_model(path)
    assert isinstance(loaded, Stack) and loaded.spec() == net.spec() and loaded.config == net.config
    assert loaded.dataset == "mnist" and loaded.header() == net.header()
    for key, value in net.parameters().items():
        saved = loaded.parameters()[key]
        assert saved.dtype == value.dtype and saved.shape == value.shape
        assert saved.tobytes() == value.tobytes(), key  # bit for bit
    images = mnist.test_images[:300]
    assert np.array_equal(loaded.predict_proba(images), net.predict_proba(images))
    with np.load(path) as raw:  # an ordinary .npz too: the arrays and the header as write_npz stores them
        assert set(raw.files) == {*net.parameters(), "header"}
        assert raw["header"].shape == () and raw["header"].dtype.kind == "U"
        assert json.loads(str(raw["header"]))["format"] == "scratchcnn.Stack"
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None


def test_float64_values_are_rounded_to_a_float32_model(tmp_path: Path) -> None:
    net = with_random_biases(spec.build("lenet", seed=2, dtype="float32"), seed=2)
    rng = np.random.default_rng(2)
    exact = {n: v.astype(np.float64) + rng.normal(0, 1e-5, v.shape) for n, v in net.parameters().items()}
    loaded = load_model(write_model_in_node(tmp_path, net.header(), exact, None))  # dtype from the header
    for key, value in exact.items():
        assert loaded.parameters()[key].dtype == np.float32
        assert np.array_equal(loaded.parameters()[key], value.astype(np.float32)), key  # nearest float32


def test_evaluate_reads_a_model_file_from_node(tmp_path: Path, data_dir: Path, mnist: Any,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    net = with_random_biases(spec.build("seed", seed=0, dtype="float32"), seed=0)
    path = write_model_in_node(tmp_path, net.header(), net.parameters(), "float32")
    accuracy = float((net.predict(mnist.test_images) == mnist.test_labels).mean())
    status, out, err = run_main(["evaluate", path, "--data-dir", data_dir, "--json"], capsys)
    assert status == 0, err
    assert json.loads(out.splitlines()[-1])["test_accuracy"] == accuracy
    proc = subprocess.run([sys.executable, "-m", "scratchcnn", "evaluate", str(path), "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120)  # the command as a user types it
    assert proc.returncode == 0, proc.stderr
    assert f"test accuracy {accuracy:.4f} on 10000 mnist test images" in proc.stdout


def test_a_non_ascii_header_survives(tmp_path: Path) -> None:
    net = with_random_biases(spec.build("seed", seed=0, dtype="float64"), seed=0)
    net.dataset = NON_ASCII
    header = net.header() | {"note": NON_ASCII}
    path = write_model_in_node(tmp_path, header, net.parameters(), "float64")
    assert load_model(path).dataset == NON_ASCII
    with np.load(path) as raw:
        assert json.loads(str(raw["header"])) == json.loads(json.dumps(header))
        assert raw["header"].dtype == np.dtype(f"<U{len(str(raw['header']))}")  # code points, not UTF-16 units


REFUSE = """
const F = require(process.argv[1] + "/npz.js");
const header = JSON.parse(process.argv[2]), good = { "0.W": new Float64Array(6) };
const attempts = {
  missing: () => F.modelNpz(header, {}, "float64"),
  extra: () => F.modelNpz(header, Object.assign({ "1.W": new Float64Array(1) }, good), "float64"),
  length: () => F.modelNpz(header, { "0.W": new Float64Array(5) }, "float64"),
  nan: () => F.modelNpz(header, { "0.W": Float64Array.of(0, 1, NaN, 0, 0, 0) }, "float64"),
  overflow: () => F.modelNpz(Object.assign({}, header, { config: { dtype: "float32" } }),
                             { "0.W": Float64Array.of(0, 1e39, 0, 0, 0, 0) }, "float32"),
  dtype: () => F.modelNpz(header, good, "float32"),
  unknown: () => F.npz({ x: { dtype: "int8", shape: [1], data: [1] } }),
};
const out = {};
for (const [name, attempt] of Object.entries(attempts)) {
  try { attempt(); out[name] = null; } catch (error) { out[name] = error.message; }
}
out.good = F.modelNpz(header, good, "float64").length;
console.log(JSON.stringify(out));
"""


def test_a_model_file_load_model_would_refuse_is_not_written() -> None:
    header = {"format": "scratchcnn.Stack", "config": {"dtype": "float64"}, "arrays": {"0.W": [2, 3]}}
    out = json.loads(node(REFUSE, json.dumps(header)))
    assert out.pop("good") > 0
    assert out == {
        "missing": 'model file: arrays [], the header needs ["0.W"]',
        "extra": 'model file: arrays ["0.W","1.W"], the header needs ["0.W"]',
        "length": "npz: member 0.W holds 5 numbers, its shape (2, 3) needs 6",
        "nan": "model file: array 0.W holds NaN or infinite values",
        "overflow": "model file: array 0.W holds NaN or infinite values",
        "dtype": "model file: dtype float32 disagrees with the header's config (float64)",
        "unknown": "npz: member x has dtype int8, not float32, float64 or unicode",
    }


# ---- picture.js: a user's picture, prepared as predict prepares it --------------------------------------------


def rgba(gray_or_rgb: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """(H, W) or (H, W, 3) values 0..255 (floats rounded) → (H, W, 4) uint8, opaque unless alpha is given."""
    a = np.clip(np.rint(np.asarray(gray_or_rgb, dtype=np.float64)), 0, 255).astype(np.uint8)
    rgb = np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a
    opacity = np.full(rgb.shape[:2], 255, np.uint8) if alpha is None else np.clip(np.rint(alpha), 0, 255)
    return np.dstack([rgb, opacity.astype(np.uint8)])


def stroke_mask(shape: tuple[int, int], segments: list[tuple[float, float, float, float]], width: float) -> np.ndarray:
    """Antialiased pen strokes: (H, W) coverage in [0, 1] of line segments (x0, y0, x1, y1) of a given width."""
    rows, cols = np.indices(shape, dtype=np.float64)
    distance = np.full(shape, np.inf)
    for x0, y0, x1, y1 in segments:
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((cols - x0) * dx + (rows - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
        distance = np.minimum(distance, np.hypot(cols - x0 - t * dx, rows - y0 - t * dy))
    return np.clip(width / 2 + 0.5 - distance, 0, 1)


SEVEN = [(0.25, 0.2, 0.75, 0.2), (0.75, 0.2, 0.45, 0.85), (0.4, 0.52, 0.65, 0.52)]
TWO = [(0.3, 0.3, 0.5, 0.15), (0.5, 0.15, 0.7, 0.3), (0.7, 0.3, 0.3, 0.8), (0.3, 0.8, 0.75, 0.8)]


def scaled(segments: list[tuple[float, float, float, float]], width: int, height: int) -> list[tuple[float, ...]]:
    return [(x0 * width, y0 * height, x1 * width, y1 * height) for x0, y0, x1, y1 in segments]


def drawn_pictures() -> dict[str, np.ndarray]:
    """RGBA pictures of digits as people photograph and draw them."""
    rng = np.random.default_rng(13)
    pictures = {}
    H, W = 240, 180  # a 7 in dark ink on paper lit from the top left
    rows, cols = np.indices((H, W))
    paper = 235 - 0.25 * rows - 0.15 * cols
    pictures["dark-on-lit-paper"] = rgba(paper - 190 * stroke_mask((H, W), scaled(SEVEN, W, H), 11))
    H, W = 200, 260  # a light 2 drawn in yellow on a dark blue board
    ink = stroke_mask((H, W), scaled(TWO, W, H), 14)[..., None]
    pictures["light-on-dark"] = rgba((1 - ink) * np.array([20, 30, 70]) + ink * np.array([250, 230, 90]))
    H, W = 150, 150  # a drawing exported with a transparent background: dark strokes, antialiased alpha
    ink = stroke_mask((H, W), scaled(TWO, W, H), 9)
    pictures["transparent-background"] = rgba(np.full((H, W, 3), [40, 40, 160]), alpha=255 * ink)
    H, W = 320, 240  # a photo: tinted paper, vignetting, a blurred 7 in pencil, sensor noise
    rows, cols = np.indices((H, W))
    light = 1 - 0.35 * (((rows - H / 2) / H) ** 2 + ((cols - W / 2) / W) ** 2) - 0.1 * cols / W
    strokes = stroke_mask((H, W), scaled(SEVEN, W, H), 16) * 0.8
    strokes = (strokes + np.roll(strokes, 2, 0) + np.roll(strokes, 2, 1)) / 3  # a soft pencil edge
    photo = (np.array([225, 215, 195]) * light[..., None]) * (1 - 0.7 * strokes[..., None])
    pictures["noisy-photo"] = rgba(photo + rng.normal(0, 6, photo.shape))
    H, W = 400, 300  # a tall thin 1
    pictures["tall-thin-one"] = rgba(250 - 230 * stroke_mask((H, W), [(150, 40, 146, 360), (150, 40, 128, 70)], 9))
    H, W = 900, 1700  # above MAX_SIDE: averaged over 2×2 blocks first
    pictures["wide-photo-1700"] = rgba(220 - 200 * stroke_mask((H, W), scaled(SEVEN, W, H), 40))
    H, W = 1001, 3203  # 3×3 blocks, with part blocks along the right and bottom edges
    pictures["panorama-3203"] = rgba(30 + 200 * stroke_mask((H, W), scaled(TWO, W, H), 60))
    return pictures


def mnist_pictures(mnist: Any, n: int = 12) -> dict[str, np.ndarray]:
    """MNIST test digits as someone might photograph them: 5× larger (Lanczos), dark ink on white paper."""
    from PIL import Image

    pictures = {}
    for i in range(n):
        big = Image.fromarray(mnist.test_images[i]).resize((140, 140), Image.Resampling.LANCZOS)
        pictures[f"mnist-{i}-label-{mnist.test_labels[i]}"] = rgba(255 - np.asarray(big, dtype=np.float64))
    return pictures


PREPARE = """
const P = require(process.argv[1] + "/picture.js"), fs = require("fs"), dir = process.argv[2];
const jobs = JSON.parse(fs.readFileSync(dir + "/jobs.json", "utf8")), out = {};
const start = process.hrtime.bigint();
for (const job of jobs) {
  const bytes = new Uint8ClampedArray(fs.readFileSync(dir + "/" + job.name + ".rgba"));
  const r = P.prepare(bytes, job.width, job.height, job.size);
  out[job.name] = { ok: r.ok, reason: r.reason || null, inverted: r.inverted, length: r.pixels.length,
                    levels: Array.from(r.pixels, (p) => Math.round(p * 255)),
                    exact: r.pixels.every((p) => p >= 0 && p <= 1 && Math.abs(p * 255 - Math.round(p * 255)) < 1e-9) };
}
out.milliseconds = Number(process.hrtime.bigint() - start) / 1e6;
console.log(JSON.stringify(out));
"""


def prepare_in_node(tmp_path: Path, pictures: dict[str, np.ndarray],
                    size: tuple[int, int] = (28, 28)) -> dict[str, Any]:
    """ScratchPicture.prepare of each RGBA picture in one node process: {name: result}, and the time."""
    jobs = []
    for name, picture in pictures.items():
        (tmp_path / f"{name}.rgba").write_bytes(np.ascontiguousarray(picture).tobytes())
        jobs.append({"name": name, "width": picture.shape[1], "height": picture.shape[0], "size": list(size)})
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    return json.loads(node(PREPARE, tmp_path))


def python_inverted(picture: np.ndarray) -> bool:
    """Whether preprocess inverts the picture: its ink is darker than the paper."""
    gray = shrink(to_gray(picture))
    return ink_side(gray - paper_level(gray)[0]) < 0


def test_pictures_prepared_in_node_are_what_predict_sees(tmp_path: Path, mnist: Any) -> None:
    pictures = drawn_pictures() | mnist_pictures(mnist)
    started = time.perf_counter()
    results = prepare_in_node(tmp_path, pictures)
    node_seconds = time.perf_counter() - started
    worst, differing, total = 0, 0, 0
    for name, picture in pictures.items():
        expected = preprocess(picture)  # (28, 28) uint8
        got = results[name]
        assert got["ok"] and got["reason"] is None and got["length"] == 28 * 28, name
        assert got["exact"], f"{name}: pixels are not whole gray levels / 255"
        delta = np.abs(np.array(got["levels"]).reshape(28, 28) - expected.astype(int))
        worst, differing, total = max(worst, int(delta.max())), differing + int((delta > 0).sum()), total + delta.size
        assert delta.max() <= 1, f"{name}: max |Δ| {delta.max()}/255 at {np.unravel_index(delta.argmax(), delta.shape)}"
        assert got["inverted"] == python_inverted(picture), name
    print(f"\n{len(pictures)} pictures: max |Δ| {worst}/255, {differing} of {total} pixels differ; "
          f"node {results['milliseconds']:.0f} ms preparing ({node_seconds:.1f} s with start-up and files)")
    assert differing <= total // 1000  # at most one pixel in a thousand off by one gray level: rounding ties
    assert [results[n]["inverted"] for n in ("dark-on-lit-paper", "light-on-dark", "transparent-background")] == [
        True, False, True]


def test_other_sizes_and_shapes(tmp_path: Path) -> None:
    pictures = {k: v for k, v in drawn_pictures().items() if "1700" not in k and "3203" not in k}
    for size in [(16, 16), (13, 9), (8, 8)]:
        results = prepare_in_node(tmp_path, pictures, size)
        for name, picture in pictures.items():
            expected = preprocess(picture, size)
            got = np.array(results[name]["levels"]).reshape(size)
            assert np.abs(got - expected.astype(int)).max() <= 1, (name, size)


def test_pictures_without_ink_are_refused_with_pythons_reason(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    pictures = {
        "blank": rgba(np.full((50, 60), 200)),
        "blank-transparent": rgba(np.zeros((40, 40)), alpha=np.zeros((40, 40))),
        "faint": rgba(np.full((50, 60), 120) + 10 * stroke_mask((50, 60), [(30, 10, 30, 40)], 5)),
        "paper-grain": rgba(128 + rng.uniform(-12, 12, (60, 60))),  # contrast ≥ 16, but nothing stands out
    }
    results = prepare_in_node(tmp_path, pictures)
    for name in pictures:
        assert results[name]["ok"] is False and results[name]["length"] == 28 * 28, name
        assert not any(results[name]["levels"]), name
    for name in ("blank", "blank-transparent", "paper-grain"):  # preprocess's refusal of the same bytes
        with pytest.raises(ImageError) as refused:
            preprocess(pictures[name])
        assert results[name]["reason"] == str(refused.value), name
    assert results["blank"]["reason"] == "no ink: the image is all one colour"
    assert results["paper-grain"]["reason"].startswith("no ink: nothing differs from the background by 16")
    save_png(pictures["faint"][..., 0], tmp_path / "faint.png")  # as predict reads a file: load_image's reason
    with pytest.raises(ImageError) as refused:
        load_image(tmp_path / "faint.png")
    assert results["faint"]["reason"] == refused.value.reason
    assert refused.value.reason == "no ink: the image is nearly one colour (contrast 10 of 255)"
