"""``scratchcnn predict`` and its preprocessing (scratchcnn.data.images), on pictures drawn from real MNIST.

A small network is trained once per session on real MNIST. Test digits are rendered the way a user
would hand them in (dark on light, large, off-centre, PNG/JPEG/BMP, in colour) and must be predicted
as the network predicts the original 28×28 images. In-process ``main(argv)`` calls, plus one real
subprocess.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run_main

from scratchcnn.data import load_dataset
from scratchcnn.data.images import MAX_PIXELS, PILLOW_MISSING, ImageError, load_image, preprocess
from scratchcnn.errors import DataError, ScratchCNNError
from scratchcnn.nn.model import ConvNet
from scratchcnn.train import fit

Image = pytest.importorskip("PIL.Image")

N_RENDERED = 10
YELLOW, BLUE = np.array([245, 225, 70]), np.array([25, 40, 190])


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mnist(data_dir: Path) -> Any:
    return load_dataset("mnist", data_dir, download=False)


@pytest.fixture(scope="session")
def model(mnist: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[ConvNet, Path]:
    """The write-up's network trained on 10,000 real MNIST records for 2 epochs (about a second), saved."""
    net = ConvNet()
    net.dataset = "mnist"
    fit(net, mnist.train_images[:10000], mnist.train_labels[:10000], epochs=2)
    path = net.save(tmp_path_factory.mktemp("model") / "model.npz")
    return net, path


def dark_on_light(digit: np.ndarray, scale: int, canvas: tuple[int, int], at: tuple[int, int]) -> np.ndarray:
    """A 28×28 MNIST digit as a user's drawing: inverted, upscaled ``scale``×, pasted at ``at`` (row, col)
    on a white canvas (rows, cols). Returns the ink coverage in [0, 1]: (rows, cols) float."""
    size = 28 * scale
    big = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR), dtype=float) / 255
    coverage = np.zeros(canvas)
    coverage[at[0] : at[0] + size, at[1] : at[1] + size] = big
    return coverage


@pytest.fixture(scope="session")
def rendered(mnist: Any, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The first 10 test digits as files: black on white, 4-6× larger, off-centre on a 200×200 canvas;
    PNG except #7 (JPEG), #8 (BMP) and #9 (blue ink on yellow paper, RGB PNG)."""
    folder = tmp_path_factory.mktemp("rendered")
    paths = []
    for i, digit in enumerate(mnist.test_images[:N_RENDERED]):
        scale = 4 + i % 3
        room = 200 - 28 * scale
        at = (room * (i % 4) // 3, room * ((i + 2) % 5) // 4)  # corners, edges and the middle
        coverage = dark_on_light(digit, scale, (200, 200), at)
        gray = np.rint(255 * (1 - coverage)).astype(np.uint8)
        if i == 7:
            path = folder / f"digit{i}.jpg"
            Image.fromarray(gray).save(path, quality=85)
        elif i == 8:
            path = folder / f"digit{i}.bmp"
            Image.fromarray(gray).save(path)
        elif i == 9:
            path = folder / f"digit{i}.png"
            rgb = YELLOW * (1 - coverage[..., None]) + BLUE * coverage[..., None]
            Image.fromarray(np.rint(rgb).astype(np.uint8)).save(path)
        else:
            path = folder / f"digit{i}.png"
            Image.fromarray(gray).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    text, empty, white = folder / "text.png", folder / "empty.png", folder / "white.png"
    text.write_text("this is not a picture\n")
    empty.write_bytes(b"")
    Image.new("RGB", (60, 40), (255, 255, 255)).save(white)
    return {"not an image": text, "empty": empty, "all one colour": white}


def last_json(stdout: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"not standard JSON: {constant}")

    return json.loads(stdout.splitlines()[-1], parse_constant=refuse)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


# ---- the user's pictures are predicted as the originals ----------------------------------------


def test_rendered_pictures_are_predicted_like_the_originals(model, mnist, rendered, capsys) -> None:
    net, path = model
    expected = net.predict(mnist.test_images[:N_RENDERED])
    status, out, err = run_main(["predict", path, *rendered, "--json"], capsys)
    assert status == 0, err
    assert err == ""
    entries = last_json(out)
    assert [entry["file"] for entry in entries] == [str(p) for p in rendered]
    predicted = np.array([entry["prediction"] for entry in entries])
    matches = int((predicted == expected).sum())
    print(f"\nrendered pictures predicted like the originals: {matches} of {N_RENDERED}")
    assert matches >= 9, f"only {matches} of {N_RENDERED}: {predicted} vs {expected}"


def test_photographed_pictures_are_predicted_like_the_originals(model, mnist) -> None:
    """Grey paper, light falling off across the page, faint ink, sensor noise and JPEG: still the same digit."""
    net, _ = model
    rng = np.random.default_rng(0)
    digits = mnist.test_images[N_RENDERED : 2 * N_RENDERED]
    seen = []
    for i, digit in enumerate(digits):
        coverage = dark_on_light(digit, 5, (180, 230), (20 + i, 10 + 8 * i))
        paper = 165 + 50 * np.linspace(0, 1, 230)[None, :]  # lighter towards the right
        photo = paper * (1 - 0.55 * coverage) + rng.normal(0, 4, coverage.shape)
        buffer = io.BytesIO()
        Image.fromarray(np.clip(np.rint(photo), 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=75)
        buffer.seek(0)
        with Image.open(buffer) as picture:
            seen.append(preprocess(picture))
    matches = int((net.predict(np.stack(seen)) == net.predict(digits)).sum())
    print(f"\nphotographed pictures predicted like the originals: {matches} of {N_RENDERED}")
    assert matches >= 8


def test_preprocessing_an_mnist_image_changes_little(model, mnist) -> None:
    net, _ = model
    X = mnist.test_images[:300]
    P = np.stack([preprocess(x) for x in X])
    assert P.shape == X.shape and P.dtype == np.uint8
    correlations = np.array([correlation(x, p) for x, p in zip(X, P, strict=True)])
    assert np.median(correlations) > 0.999  # most come back unchanged
    assert correlations.mean() > 0.98
    assert np.mean(net.predict(P) == net.predict(X)) >= 0.97


def test_dark_on_light_is_inverted(mnist) -> None:
    for x in mnist.test_images[:20]:
        np.testing.assert_array_equal(preprocess(255 - x), preprocess(x))
        np.testing.assert_array_equal(preprocess(x.astype(float) / 255), preprocess(x))  # floats in [0, 1]


def test_pictures_cropped_tight_around_the_digit(mnist) -> None:
    """Strokes touching the edges (a drawing trimmed to its content) must not be taken for the paper."""
    same, correlations = 0, []
    for x in mnist.test_images[:100]:
        rows, cols = np.flatnonzero(x.any(axis=1)), np.flatnonzero(x.any(axis=0))
        tight = x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        out = preprocess(tight)
        np.testing.assert_array_equal(preprocess(255 - tight), out)  # dark on light: the same
        same += np.array_equal(out, preprocess(x))
        correlations.append(correlation(out, preprocess(x)))
    assert same >= 85  # the rest differ by a pixel of centring
    assert np.mean(correlations) > 0.98


def test_ink_is_scaled_to_20_px_and_centred(mnist) -> None:
    x = mnist.test_images[0]
    picture = dark_on_light(x, 7, (300, 250), (5, 40))
    out = preprocess(np.rint(255 * (1 - picture)).astype(np.uint8)).astype(float)
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (20, 21)  # + a pixel of faint edge
    assert out.max() == 255
    centre = [(out.sum(axis=1 - axis) @ np.arange(28)) / out.sum() for axis in (0, 1)]
    np.testing.assert_allclose(centre, [14, 14], atol=0.5)


def test_other_input_sizes_scale_the_box(mnist) -> None:
    """An 8×8 model gets an 8×8 picture whose ink fits round(8·20/28) = 6 pixels."""
    x = mnist.test_images[1]
    small = preprocess(255 - x, shape=(8, 8))
    assert small.shape == (8, 8) and small.dtype == np.uint8
    rows, cols = np.flatnonzero(small.any(axis=1)), np.flatnonzero(small.any(axis=0))
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 6
    assert preprocess(x, shape=(32, 24)).shape == (32, 24)


def test_transparent_drawings_and_photo_orientation(mnist, tmp_path) -> None:
    x = mnist.test_images[2]
    expected = preprocess(x)
    # A drawing app's export: opaque strokes on a transparent background, dark or light strokes.
    for colour in (0, 255):
        rgba = np.zeros((*x.shape, 4), np.uint8)
        rgba[..., :3], rgba[..., 3] = colour, x
        np.testing.assert_array_equal(preprocess(Image.fromarray(rgba)), expected)
    # A phone photo stored sideways with an EXIF orientation tag (6: rotate 90° clockwise to view).
    photo = tmp_path / "sideways.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(255 - x).transpose(Image.Transpose.ROTATE_90).save(photo, quality=95, exif=exif)
    assert load_image(photo).shape == (28, 28)
    assert correlation(preprocess(load_image(photo)), expected) > 0.95


def test_load_image_refuses_unusable_files(mnist, bad_files, tmp_path) -> None:
    for reason, path in bad_files.items():
        with pytest.raises(ImageError, match=reason) as caught:
            load_image(path)
        assert isinstance(caught.value, DataError) and isinstance(caught.value, ScratchCNNError)
        assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    truncated = tmp_path / "truncated.png"
    Image.fromarray(mnist.test_images[0]).resize((200, 200)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(ImageError, match="cannot read the image"):
        load_image(truncated)
    # Photographed blank paper: noise, but nothing that stands out like ink.
    noise = np.clip(np.rint(200 + np.random.default_rng(0).normal(0, 3, (120, 160))), 0, 255).astype(np.uint8)
    with pytest.raises(ImageError, match="no ink"):
        preprocess(noise)


# ---- the command -------------------------------------------------------------------------------


def test_bad_files_fail_alone(model, rendered, bad_files, capsys) -> None:
    _, path = model
    good = rendered[0]
    status, out, err = run_main(["predict", path, bad_files["not an image"], good, bad_files["empty"],
                                 bad_files["all one colour"]], capsys)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 3, err
    for line, (reason, bad) in zip(lines, bad_files.items(), strict=True):
        assert line.startswith(f"scratchcnn: error: {bad}: ")
        assert reason in line
    assert "Traceback" not in err
    printed = out.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith(f"{good}: ")
    assert printed[0].count("%") == 3  # the top 3 probabilities


def test_json_output(model, rendered, bad_files, capsys) -> None:
    _, path = model
    status, out, _ = run_main(["predict", path, rendered[0], bad_files["empty"], "--json"], capsys)
    assert status == 2
    good, bad = last_json(out)
    # An MNIST model also says how unlike MNIST's training digits the picture is (test_newcomer_predict.py)
    assert set(good) == {"file", "prediction", "label", "probabilities", "unlike_training", "oddness"}
    assert good["file"] == str(rendered[0])
    assert len(good["probabilities"]) == 10 and abs(sum(good["probabilities"]) - 1) < 1e-5
    assert good["prediction"] == int(np.argmax(good["probabilities"]))
    assert good["label"] == str(good["prediction"])  # MNIST's class names are the digits
    assert bad == {"file": str(bad_files["empty"]), "error": "empty file"}


def test_show_preprocessed_writes_what_the_network_saw(model, rendered, tmp_path, capsys) -> None:
    _, path = model
    out_dir = tmp_path / "seen"
    twin = tmp_path / "twin" / rendered[0].name  # the same stem as rendered[0]
    twin.parent.mkdir()
    twin.write_bytes(rendered[0].read_bytes())
    status, out, err = run_main(["predict", path, rendered[0], rendered[7], twin, "--json",
                                 "--show-preprocessed", out_dir], capsys)
    assert status == 0, err
    entries = last_json(out)
    written = [Path(entry["preprocessed"]) for entry in entries]
    assert [p.name for p in written] == ["digit0.png", "digit7.png", "digit0-2.png"]
    for source, png in zip([rendered[0], rendered[7], twin], written, strict=True):
        with Image.open(png) as picture:
            assert picture.mode == "L" and picture.size == (28, 28)
            np.testing.assert_array_equal(np.asarray(picture), preprocess(load_image(source)))
    assert not list(out_dir.glob(".*.tmp"))  # written atomically: no temporary files left


def test_small_input_model(mnist, rendered, tmp_path, capsys) -> None:
    """A model for 8×8 images predicts (untrained: only the shapes matter) and shows 8×8 pictures."""
    net = ConvNet(input_shape=(8, 8))
    path = net.save(tmp_path / "small.npz")
    status, out, err = run_main(["predict", path, rendered[0], "--json", "--show-preprocessed", tmp_path], capsys)
    assert status == 0, err
    (entry,) = last_json(out)
    assert entry["label"] == str(entry["prediction"])  # no dataset recorded: the class index
    with Image.open(entry["preprocessed"]) as picture:
        assert picture.size == (8, 8)


def test_help_mentions_the_flags_and_an_example(capsys) -> None:
    status, out, _ = run_main(["predict", "--help"], capsys)
    assert status == 0
    for text in ("--json", "--show-preprocessed", "example", "scratchcnn predict", "MODEL", "IMAGE"):
        assert text in out


def test_bad_model_is_one_line(rendered, tmp_path, capsys) -> None:
    status, out, err = run_main(["predict", tmp_path / "nope.npz", rendered[0]], capsys)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "nope.npz" in err


def test_without_pillow(model, rendered, monkeypatch, capsys) -> None:
    _, path = model
    for name in [name for name in sys.modules if name == "PIL" or name.startswith("PIL.")]:
        monkeypatch.setitem(sys.modules, name, None)  # import PIL now raises ImportError
    monkeypatch.setitem(sys.modules, "PIL", None)
    status, out, err = run_main(["predict", path, rendered[0]], capsys)
    assert status == 2 and out == ""
    assert err.strip().splitlines() == [f"scratchcnn: error: {PILLOW_MISSING}"]
    assert PILLOW_MISSING == "predict needs Pillow: pip install 'scratchcnn[image]'"


def test_images_module_imports_without_pillow() -> None:
    code = "import sys; sys.modules['PIL'] = None; import scratchcnn.data.images; print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_real_subprocess(model, mnist, rendered, bad_files, tmp_path) -> None:
    net, path = model
    env = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "scratchcnn", "predict", str(path), str(rendered[0]),
                           str(bad_files["not an image"])], capture_output=True, text=True, timeout=120,
                          check=False, cwd=tmp_path, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"scratchcnn: error: {bad_files['not an image']}: not an image Pillow can read (PNG, JPEG, BMP, ...)"
    ]
    (line,) = proc.stdout.strip().splitlines()
    expected = int(net.predict(mnist.test_images[:1])[0])
    assert line.startswith(f"{rendered[0]}: {expected}   (")


def png_header(width: int, height: int) -> bytes:
    """A PNG that is nearly all header: signature, IHDR (8-bit grayscale), an IDAT of one row, IEND. Pillow
    opens it and knows its size; decoding would fail on the missing rows, so a refusal decoded nothing."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1))) \
        + chunk(b"IEND", b"")


@pytest.mark.parametrize(("side", "says"), [
    (8000, "too large: 8000 × 8000 pixels"),  # over MAX_PIXELS
    (12000, "too large: 12000 × 12000 pixels"),  # where Pillow would warn (≥ 89 MP): no warning text
    (20000, "too large: over 179 megapixels"),  # where Pillow itself refuses (≥ 179 MP)
])
def test_a_huge_picture_is_refused_at_once_in_one_line(model, rendered, tmp_path, side: int, says: str) -> None:
    _, path = model
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header(side, side))
    proc = subprocess.run([sys.executable, "-W", "default", "-m", "scratchcnn", "predict", str(path), str(huge),
                           str(rendered[0])], capture_output=True, text=True, timeout=120, check=False,
                          cwd=tmp_path, env=dict(os.environ, HOME=str(tmp_path)))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"scratchcnn: error: {huge}: {says} (at most {MAX_PIXELS // 1_000_000} "
                                        "megapixels; scale it down first)"]
    assert len(proc.stdout.splitlines()) == 1  # the other picture is still predicted

