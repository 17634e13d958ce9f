"""Measure what MNIST's digits look like to ``scratchcnn predict`` and write src/scratchcnn/data/mnist_typical.json.

Usage: python benchmarks/typical_digits.py [--data-dir DIR] [--check]

Each MNIST training image is prepared as predict prepares a user's picture (preprocess), both as it
is and as a user's larger drawing (UPSCALE× larger, black on white, bilinear: softer strokes after
scaling back down), and described by five ink statistics (scratchcnn.data.images.ink_statistics). The JSON holds their
mean, the inverse of their covariance, and the 99.9th percentile of the Mahalanobis distance from
that mean on the training images: predict flags a picture farther than that as "unlike the training
images". Then it reports, with the file as written, how often that flag is raised on MNIST's 10 000
test images (false alarms) and on things that are not handwritten digits: Fashion-MNIST's 10 000 test
images, letters and digits typed in Pillow's default font, and random photo-like textures.
--check only measures, with the JSON already in the package.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import string
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from scratchcnn.data import load_dataset
from scratchcnn.data.images import TYPICAL_MNIST, ImageError, ink_statistics, oddness, preprocess, typical_mnist

OUT = Path(__file__).resolve().parents[1] / "src" / "scratchcnn" / "data" / TYPICAL_MNIST
PERCENTILE = 99.9
UPSCALE = 3  # the training images are also measured this many times larger, as a user's drawing
TEXTURES = 60


def prepared(images: np.ndarray) -> np.ndarray:
    """Each picture as predict prepares it: (N, 28, 28) uint8; pictures without ink are left out."""
    out = []
    for image in images:
        with contextlib.suppress(ImageError):
            out.append(preprocess(image))
    return np.stack(out)


def drawn(images: np.ndarray, scale: int) -> np.ndarray:
    """MNIST images (N, 28, 28) as a user's drawings: black ink on white, ``scale``× larger (bilinear)."""
    size = (28 * scale, 28 * scale)
    return np.stack([np.asarray(Image.fromarray(255 - x).resize(size, Image.Resampling.BILINEAR)) for x in images])


def reference(train: np.ndarray) -> dict:
    """The JSON's content, from prepared training images (N, 28, 28)."""
    features = ink_statistics(train)
    mean = features.mean(axis=0)
    inverse = np.linalg.inv(np.cov(features.T))
    z = features - mean
    distance = np.sqrt(np.einsum("ni,ij,nj->n", z, inverse, z))
    return {
        "about": f"ink_statistics of MNIST's first {len(train) // 2} training images as predict prepares them, "
                 f"as they are and {UPSCALE}x larger; written by benchmarks/typical_digits.py",
        "features": ["log mean ink", "log share inked", "log spread", "log edge", "logit share grey"],
        "mean": [round(float(v), 10) for v in mean],
        "inverse_covariance": [[round(float(v), 10) for v in row] for row in inverse],
        "percentile": PERCENTILE,
        "threshold": round(float(np.percentile(distance, PERCENTILE)), 4),
    }


def typed(size: int | None, characters: str) -> np.ndarray:
    """Characters in Pillow's default font (at ``size`` points, or its own size), black on white: (N, 64, 64)."""
    font = ImageFont.load_default() if size is None else ImageFont.load_default(size=size)
    pictures = []
    for character in characters:
        picture = Image.new("L", (64, 64), 255)
        ImageDraw.Draw(picture).text((8, 4), character, fill=0, font=font)
        pictures.append(np.asarray(picture))
    return np.stack(pictures)


def textures(n: int, seed: int = 0) -> np.ndarray:
    """Photo-like random textures: noise blurred at 0.5..4 px and stretched to full contrast, (n, 120, 160)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        noise = Image.fromarray((rng.random((120, 160)) * 255).astype(np.uint8))
        blurred = np.asarray(noise.filter(ImageFilter.GaussianBlur(0.5 + 3.5 * i / n)), dtype=float)
        out.append(np.rint(255 * (blurred - blurred.min()) / np.ptp(blurred)).astype(np.uint8))
    return np.stack(out)


def flagged(images: np.ndarray) -> str:
    """'k of n (p %)' of prepared images beyond the threshold."""
    k = int((oddness(images) > typical_mnist()["threshold"]).sum())
    return f"{k:5d} of {len(images):5d} ({100 * k / len(images):5.1f} %)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="where mnist/ and fashion-mnist/ are")
    parser.add_argument("--check", action="store_true", help="only measure, with the JSON already written")
    args = parser.parse_args()
    mnist = load_dataset("mnist", args.data_dir, download=False)
    if not args.check:
        content = reference(np.concatenate([prepared(mnist.train_images),
                                            prepared(drawn(mnist.train_images, UPSCALE))]))
        lines = ",\n".join(f" {json.dumps(key)}: {json.dumps(value)}" for key, value in content.items())
        OUT.write_text("{\n" + lines + "\n}\n", encoding="utf-8")
        typical_mnist.cache_clear()
        print(f"wrote {OUT}")
    print(f"threshold {typical_mnist()['threshold']} (the {PERCENTILE}th percentile on MNIST's training images)")
    fashion = load_dataset("fashion-mnist", args.data_dir, download=False)
    print(f"MNIST test (false alarms)        {flagged(prepared(mnist.test_images))}")
    print(f"  drawn 2x larger                {flagged(prepared(drawn(mnist.test_images, 2)))}")
    print(f"  drawn 4x larger                {flagged(prepared(drawn(mnist.test_images, 4)))}")
    print(f"Fashion-MNIST test               {flagged(prepared(fashion.test_images))}")
    print(f"  4x larger, black on white      {flagged(prepared(drawn(fashion.test_images, 4)))}")
    print(f"letters, default font            {flagged(prepared(typed(None, string.ascii_letters)))}")
    print(f"letters, default font at 40 pt   {flagged(prepared(typed(40, string.ascii_letters)))}")
    print(f"digits, default font             {flagged(prepared(typed(None, string.digits)))}")
    print(f"digits, default font at 40 pt    {flagged(prepared(typed(40, string.digits)))}")
    print(f"random photo-like textures       {flagged(prepared(textures(TEXTURES)))}")


if __name__ == "__main__":
    main()
