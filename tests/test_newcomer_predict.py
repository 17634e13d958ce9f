"""A newcomer's own pictures: one function from a file to what the network sees (read_digit), and
``scratchcnn predict`` saying when a picture looks like none of MNIST's digits.

The mark does not depend on the weights, so an untrained network that says it was trained on MNIST
is enough; the pictures are real MNIST and Fashion-MNIST test images saved as PNG files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run_main

from scratchcnn.data import load_dataset
from scratchcnn.nn.model import ConvNet

Image = pytest.importorskip("PIL.Image")

ROOT = Path(__file__).resolve().parents[1]
UNLIKE = "(unlike the training images)"


@pytest.fixture(scope="module")
def mnist(data_dir: Path) -> Any:
    return load_dataset("mnist", data_dir, download=False)


@pytest.fixture(scope="module")
def fashion(data_dir: Path) -> Any:
    return load_dataset("fashion-mnist", data_dir, download=False)


def saved(tmp_path: Path, images: np.ndarray, stem: str, dark_on_light: bool = False) -> list[Path]:
    """Each (28, 28) uint8 image as tmp_path/<stem><i>.png, 4× larger, optionally black ink on white."""
    paths = []
    for i, image in enumerate(images):
        picture = Image.fromarray(255 - image if dark_on_light else image).resize((112, 112), Image.Resampling.BILINEAR)
        path = tmp_path / f"{stem}{i}.png"
        picture.save(path)
        paths.append(path)
    return paths


def model(tmp_path: Path, dataset: str | None = "mnist") -> Path:
    net = ConvNet(seed=0)
    net.dataset = dataset
    return net.save(tmp_path / f"model-{dataset}.npz")


def texture(path: Path, seed: int = 0) -> Path:
    """A photo-like random texture: noise blurred over about 1.5 px, full contrast."""
    from PIL import ImageFilter

    noise = np.random.default_rng(seed).integers(0, 256, (90, 120), dtype=np.uint8)
    blurred = np.asarray(Image.fromarray(noise).filter(ImageFilter.GaussianBlur(1.5)), dtype=float)
    Image.fromarray(np.rint(255 * (blurred - blurred.min()) / np.ptp(blurred)).astype(np.uint8)).save(path)
    return path


# ---- read_digit: a file → what the network sees ----------------------------------------------------------


def test_read_digit_is_ready_for_predict(mnist: Any, tmp_path: Path) -> None:
    from scratchcnn.data import load_image, preprocess, read_digit

    (path,) = saved(tmp_path, mnist.test_images[:1], "seven", dark_on_light=True)
    image = read_digit(path)
    assert image.shape == (28, 28) and image.dtype == np.uint8 and image.max() == 255
    np.testing.assert_array_equal(image, preprocess(load_image(path)))
    net = ConvNet(seed=0)
    assert net.predict(image[None]).shape == (1,)
    small = read_digit(path, shape=(8, 8))
    assert small.shape == (8, 8) and small.dtype == np.uint8


def test_readme_snippet_for_your_own_images_runs_as_written(mnist: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    (snippet,) = [block for block in blocks if "read_digit(" in block]
    assert "net.predict(" in snippet
    name = re.search(r"read_digit\(\"([^\"]+)\"\)", snippet).group(1)
    Image.fromarray(255 - mnist.test_images[0]).save(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    exec(snippet, {"net": ConvNet(seed=0)})  # the README's own code


# ---- predict marks pictures unlike MNIST's digits --------------------------------------------------------


def test_fashion_pictures_are_marked(fashion: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Shirts, a coat, a bag, a sandal (Fashion-MNIST test images 4, 10, 18, 21: classes 6, 4, 8, 5)
    paths = saved(tmp_path, fashion.test_images[[4, 10, 18, 21]], "clothes")
    status, out, err = run_main(["predict", model(tmp_path), *paths], capsys)
    assert status == 0 and err == ""
    lines = out.strip().splitlines()
    assert len(lines) == 4
    for path, line in zip(paths, lines, strict=True):
        assert line.startswith(f"{path}: ") and UNLIKE in line, line


def test_mnist_pictures_are_not_marked(mnist: Any, fashion: Any, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    paths = [*saved(tmp_path, mnist.test_images[:20], "digit"),
             *saved(tmp_path, mnist.test_images[20:40], "drawn", dark_on_light=True),
             *saved(tmp_path, fashion.test_images[4:5], "shirt")]  # among them, one shirt
    status, out, _ = run_main(["predict", model(tmp_path), *paths], capsys)
    assert status == 0
    lines = out.strip().splitlines()
    assert len(lines) == 41 and [line for line in lines if UNLIKE in line] == lines[-1:]


def test_json_carries_the_mark_and_the_distance(mnist: Any, fashion: Any, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from scratchcnn.data.images import oddness, read_digit, typical_mnist

    (digit,) = saved(tmp_path, mnist.test_images[:1], "digit")
    (shirt,) = saved(tmp_path, fashion.test_images[4:5], "shirt")
    cat = texture(tmp_path / "cat.png")
    status, out, _ = run_main(["predict", model(tmp_path), digit, shirt, cat, "--json"], capsys)
    assert status == 0
    entries = json.loads(out.splitlines()[-1])
    threshold = typical_mnist()["threshold"]
    assert entries[0]["unlike_training"] is False and entries[0]["oddness"] <= threshold
    for entry, path in zip(entries[1:], (shirt, cat), strict=True):
        assert entry["unlike_training"] is True
        assert entry["oddness"] > threshold
        assert entry["oddness"] == pytest.approx(oddness(read_digit(path)), abs=0.01)


def test_only_models_trained_on_mnist_mark(fashion: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = saved(tmp_path, fashion.test_images[[4, 10, 18]], "clothes")
    for dataset, marked in (("mnist", True), ("fashion-mnist", False), (None, False)):
        status, out, _ = run_main(["predict", model(tmp_path, dataset), *paths, "--json"], capsys)
        assert status == 0
        entries = json.loads(out.splitlines()[-1])
        assert [entry.get("unlike_training", False) for entry in entries] == [marked] * 3, dataset


def test_rates_on_real_test_sets(mnist: Any, fashion: Any) -> None:
    """Few false alarms on MNIST's test digits (the threshold is the training set's 99.9th percentile),
    much of Fashion-MNIST marked (46 % of its 10 000 test images in benchmarks/typical_digits.py)."""
    from scratchcnn.data.images import oddness, preprocess, typical_mnist

    threshold = typical_mnist()["threshold"]
    digits = np.stack([preprocess(x) for x in mnist.test_images[:2000]])
    clothes = np.stack([preprocess(x) for x in fashion.test_images[:500]])
    assert (oddness(digits) > threshold).mean() <= 0.005
    assert (oddness(clothes) > threshold).mean() >= 0.35


def test_help_says_the_network_always_answers(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_main(["predict", "--help"], capsys)
    assert status == 0
    text = " ".join(out.split())
    assert "always answers with one of its classes" in text and UNLIKE in text
    assert "always answers with one of its classes" in " ".join((ROOT / "README.md").read_text().split())
