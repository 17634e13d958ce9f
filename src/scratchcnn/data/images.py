"""A user's own picture of a digit → the image the network expects, made the way MNIST was made.

MNIST's digits are white ink on black, their ink scaled (keeping the aspect ratio) to fit a 20×20
box and pasted into 28×28 so that the ink's centre of mass sits at the centre. A network trained on
them sees nothing else, so a photo or a drawing has to be brought into that form first:

1. grayscale (luminance; transparent pixels go on a backdrop that contrasts with the strokes);
2. ink = how far each pixel is from the paper, on the ink's side: the paper is the plane fitted to
   the bare paper in the outermost rows and columns (its level, and the slope of uneven light in a
   photo), and the ink is the side with more pixels far from it. This inverts dark-on-light
   pictures and subtracts the grey of photographed paper;
3. crop to the ink's bounding box (pixels above INK_FRACTION of the strongest ink);
4. scale the longer side to 20 px (20/28 of the model's input size), keeping the aspect ratio;
5. stretch the ink to 0..255 and paste it, shifted by whole pixels as MNIST was, so that its centre
   of mass is at the centre of 28×28.

Pillow is optional (the ``image`` extra): it is imported only inside the functions that read,
resize or write pictures, so the package imports without it.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scratchcnn.errors import DataError, ScratchCNNError, first_line
from scratchcnn.files import write_atomically

if TYPE_CHECKING:
    from PIL import Image as PILImage

MNIST_SHAPE = (28, 28)  # the canvas MNIST's digits were pasted into
MNIST_BOX = 20  # ... after their ink was scaled to fit a 20×20 box
INK_FRACTION = 0.3  # a pixel is ink (for the bounding box) above this fraction of the strongest ink
NOISE_PERCENTILE = 90  # the paper's own variation: this percentile of the bare border's distance from it
PAPER_FITS = 3  # rounds of fitting the paper's plane and keeping the border pixels close to it
MAX_SIDE = 1600  # larger pictures are averaged down to this many pixels on their longer side first
# Larger pictures are refused before they are decoded: a digit needs far fewer pixels, and decoding a
# 12 000 × 12 000 PNG (144 MP) took ~8 s and 1.6 GB (below Pillow's own bomb warning at ~89 MP, too).
MAX_PIXELS = 50_000_000
MIN_CONTRAST = 16  # gray levels (of 255) the ink must stand out from the paper's noise; less is a blank image
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601 luminance, the weights Pillow's convert("L") uses
PILLOW_MISSING = "predict needs Pillow: pip install 'scratchcnn[image]'"


class ImageError(DataError):
    """A picture that cannot be used: unreadable, empty, or without ink. One line, naming the file if known."""

    def __init__(self, reason: str, path: str | os.PathLike | None = None) -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path is not None else reason)


class PillowMissingError(ScratchCNNError, ImportError):
    """Reading or writing pictures needs Pillow, which is not installed."""


def require_pillow() -> Any:
    """The PIL.Image module; PillowMissingError (one line: how to install it) when Pillow is absent."""
    try:
        from PIL import Image
    except ImportError:
        raise PillowMissingError(PILLOW_MISSING) from None
    return Image


# ---- reading ------------------------------------------------------------------------------------


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read a picture file (PNG, JPEG, BMP or anything else Pillow reads) as grayscale: (H, W) uint8.

    0 is black and 255 white, as in the file (nothing is inverted yet); colours become their
    luminance, transparent pixels are put on a backdrop contrasting with the opaque ones, and a
    photo's EXIF orientation is applied. Raises ImageError, naming the file, when it is missing, empty,
    not a picture, or all one colour.
    """
    Image = require_pillow()
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageError("empty file", path)
        with warnings.catch_warnings():  # Pillow warns above ~89 MP; MAX_PIXELS refuses those in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)  # reads the header only: the size is known before decoding
        with image:
            if image.width * image.height > MAX_PIXELS:
                raise ImageError(_too_large(f"{image.width} × {image.height} pixels"), path)
            image.load()  # decode now: a truncated file fails here, inside the try
            gray = to_gray(image)
    except Image.DecompressionBombError:  # over twice Pillow's limit: refused by Image.open itself
        raise ImageError(_too_large(f"over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels"), path) from None
    except ImageError as error:
        raise ImageError(error.reason, path) from None  # name the file
    except FileNotFoundError:
        raise ImageError("no such file", path) from None
    except IsADirectoryError:
        raise ImageError("is a directory, not an image", path) from None
    except Image.UnidentifiedImageError:
        raise ImageError("not an image Pillow can read (PNG, JPEG, BMP, ...)", path) from None
    except Exception as error:  # Pillow raises many kinds (OSError, ValueError, DecompressionBombError, ...)
        raise ImageError(f"cannot read the image ({first_line(error)})", path) from None
    if gray.size == 0:
        raise ImageError("the image has no pixels", path)
    contrast = float(np.ptp(gray))
    if contrast < MIN_CONTRAST:
        reason = "all one colour" if contrast == 0 else f"nearly one colour (contrast {contrast:.0f} of 255)"
        raise ImageError(f"no ink: the image is {reason}", path)
    return np.rint(gray).astype(np.uint8)


def _too_large(size: str) -> str:
    return f"too large: {size} (at most {MAX_PIXELS // 1_000_000} megapixels; scale it down first)"


def to_gray(image: PILImage.Image | np.ndarray) -> np.ndarray:
    """Luminance of a picture as float32 (H, W) on the 0..255 scale.

    ``image``: a PIL image of any mode, or an array (H, W) grayscale, (H, W, 3) RGB or (H, W, 4) RGBA.
    Array scales: bool; uint8 0..255; other integers 0..255, or 0..65535 when above 255; floats in
    [0, 1], or 0..255 when above 1.
    """
    if not isinstance(image, np.ndarray):
        image = _pil_to_array(image)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.dtype == bool:
        pixels = array.astype(np.float32) * 255
    elif np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating):
        pixels = array.astype(np.float32)  # float32: exact for 0..255, half the memory of a big photo
        if not np.isfinite(pixels).all():
            raise ImageError("the image holds NaN or infinite values")
        top = pixels.max(initial=0)
        if np.issubdtype(array.dtype, np.floating) and top <= 1:
            pixels *= 255
        elif array.dtype != np.uint8 and top > 255:
            pixels *= 255 / 65535  # 16 bits a channel
        np.clip(pixels, 0, 255, out=pixels)
    else:
        raise ImageError(f"image pixels must be numbers, got dtype {array.dtype}")
    if pixels.ndim == 2:
        return pixels
    gray = pixels[:, :, :3] @ LUMA.astype(np.float32)
    if pixels.shape[2] == 4 and (pixels[:, :, 3] < 255).any():
        alpha = pixels[:, :, 3] / 255
        # A drawing exported with a transparent background: put it on white when the opaque strokes are
        # dark, on black when they are light, so that the strokes stay visible.
        opaque_mean = (gray * alpha).sum() / alpha.sum() if alpha.sum() > 0 else 0.0
        backdrop = 255.0 if opaque_mean < 128 else 0.0
        gray = alpha * gray + (1 - alpha) * np.float32(backdrop)
    return gray


def _pil_to_array(image: PILImage.Image) -> np.ndarray:
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)  # phones store photos sideways plus an orientation tag
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        return np.asarray(image)  # 16/32-bit integer or float grayscale: to_gray scales it
    if "A" in image.getbands() or "transparency" in image.info:
        return np.asarray(image.convert("RGBA"))  # to_gray puts it on a backdrop
    return np.asarray(image.convert("L"))  # Pillow's luminance: the same weights as LUMA, 1 byte a pixel


# ---- preprocessing ------------------------------------------------------------------------------


def ink(gray: np.ndarray) -> np.ndarray:
    """How much ink each pixel holds: float32 (H, W) ≥ 0, 0 on the paper, whatever the colours.

    ``gray``: (H, W) luminance 0..255. The paper is the plane fitted to the bare paper along the
    border (paper_level); the ink is on the side of it that ink_side finds, so dark-on-light pictures
    come out inverted, and the grey of photographed paper is subtracted. So is the paper's own noise
    (NOISE_PERCENTILE of the bare border's distance from the plane, on the ink's side). Raises
    ImageError when nothing stands out by MIN_CONTRAST gray levels.
    """
    paper, on_paper = paper_level(gray)
    deviation = gray - paper
    side = ink_side(deviation)
    amount = np.clip(side * deviation, 0, None)
    bare = _border(amount)[on_paper]  # ink touching the edge is not the paper's noise
    noise = np.percentile(bare, NOISE_PERCENTILE) if bare.size else 0.0
    amount = np.clip(amount - noise, 0, None)
    if amount.max() < MIN_CONTRAST:
        raise ImageError(f"no ink: nothing differs from the background by {MIN_CONTRAST} gray levels or more")
    return amount


def ink_side(deviation: np.ndarray) -> int:
    """−1 when the ink is darker than the paper (it gets inverted), +1 when lighter.

    ``deviation``: (H, W) gray levels minus the paper's. The ink is the side with more pixels beyond
    half the largest deviation: strokes stand out far from the paper, whereas uneven light (a bright
    middle, a shadow) strays only a little from it on either side, however many pixels it covers.
    """
    reach = np.abs(deviation).max() / 2
    darker, lighter = np.count_nonzero(deviation < -reach), np.count_nonzero(deviation > reach)
    if darker == lighter == 0:
        raise ImageError("no ink: the image is all one colour")
    return -1 if darker >= lighter else 1


def paper_level(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paper's gray level under each pixel, and which border pixels show bare paper.

    Returns the level, float32 (H, W), and a mask over ``_border(gray)``: the plane a + b·row + c·col
    fitted to the bare paper in the outermost rows and columns. Flat paper gives its level, light
    falling off across a photo a slope. Bare paper is found by starting from the border's most
    common gray level (paper is flat; strokes are not, and in a picture cropped tight around its
    digit they may cover much of the border) and then keeping the border pixels close to the plane
    fitted to the ones kept so far, so that strokes touching the edge neither tilt the plane nor
    count as the paper's noise.
    """
    H, W = gray.shape
    rows, cols = np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64)
    values = _border(gray).astype(np.float64)
    border_rows = _border(np.broadcast_to(rows[:, None], (H, W)))
    border_cols = _border(np.broadcast_to(cols[None, :], (H, W)))
    design = np.column_stack([np.ones(values.size), border_rows, border_cols])
    counts, edges = np.histogram(values, bins=32, range=(0, 256))  # 8 gray levels a bin
    fullest = np.argmax(counts)
    level = np.median(values[(values >= edges[fullest]) & (values < edges[fullest + 1])])
    keep = np.abs(values - level) <= MIN_CONTRAST
    for _ in range(PAPER_FITS):
        if np.linalg.matrix_rank(design[keep]) < 3:  # bare paper only along one line: no slope to see
            coef = np.array([np.median(values[keep]), 0.0, 0.0])
        else:
            coef = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
        residual = np.abs(values - design @ coef)
        keep = residual <= 3 * np.median(residual[keep]) + 2  # + 2 gray levels: a clean border has no spread
    a, b, c = coef.astype(np.float32)
    return a + b * rows.astype(np.float32)[:, None] + c * cols.astype(np.float32)[None, :], keep


def _border(array: np.ndarray) -> np.ndarray:
    """The outermost rows and columns of (H, W), as one vector (corners twice)."""
    return np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])


def crop_to_ink(amount: np.ndarray) -> np.ndarray:
    """Ink (H, W) cut to the bounding box of the pixels above INK_FRACTION of the strongest ink: (h, w)."""
    inked = amount > INK_FRACTION * amount.max()  # well above the paper: a speck of noise does not widen the box
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    return amount[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def fit_box(amount: np.ndarray, box: tuple[int, int]) -> np.ndarray:
    """Scale ink (h, w) to fit box (rows, cols), keeping the aspect ratio: float32, one side touching the box.

    Pillow's Lanczos filter: when shrinking it averages over the whole footprint of each output
    pixel (no aliasing of thin strokes); its slight overshoot is clipped away.
    """
    Image = require_pillow()
    h, w = amount.shape
    scale = min(box[0] / h, box[1] / w)
    size = (max(1, min(box[1], round(w * scale))), max(1, min(box[0], round(h * scale))))  # Pillow: (w, h)
    if size == (w, h):
        return amount.astype(np.float32)
    resized = Image.fromarray(amount.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized), 0, None)


def paste_centred(amount: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Put ink (h, w) into a zero canvas ``shape`` so its centre of mass lands at (H/2, W/2): float64.

    MNIST's convention (its digits' mean centre of mass is (14.0, 14.0) in pixel indices). The shift
    is rounded to whole pixels (no extra blur); ink pushed past an edge is cut off.
    """
    H, W = shape
    h, w = amount.shape
    total = amount.sum()
    cy = (amount.sum(axis=1) @ np.arange(h)) / total
    cx = (amount.sum(axis=0) @ np.arange(w)) / total
    top, left = int(np.floor(H / 2 - cy + 0.5)), int(np.floor(W / 2 - cx + 0.5))
    canvas = np.zeros(shape)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, H), min(left + w, W)
    if r0 < r1 and c0 < c1:
        canvas[r0:r1, c0:c1] = amount[r0 - top : r1 - top, c0 - left : c1 - left]
    return canvas


def shrink(gray: np.ndarray) -> np.ndarray:
    """A photo larger than MAX_SIDE pixels, averaged over blocks of pixels down to at most MAX_SIDE: float32.

    The digit ends up 20 pixels tall anyway; this bounds the memory and time a 12-megapixel photo takes.
    """
    factor = -(-max(gray.shape) // MAX_SIDE)  # ceiling division
    if factor <= 1:
        return gray
    Image = require_pillow()
    return np.asarray(Image.fromarray(np.ascontiguousarray(gray, dtype=np.float32)).reduce(factor))


def ink_box(shape: tuple[int, int]) -> tuple[int, int]:
    """The box the ink is scaled into: MNIST's 20/28 of each side, e.g. (20, 20) for 28×28, (6, 6) for 8×8."""
    rows, cols = (max(1, round(side * MNIST_BOX / MNIST_SHAPE[0])) for side in shape)
    return rows, cols


def preprocess(image: PILImage.Image | np.ndarray, shape: tuple[int, int] = MNIST_SHAPE) -> np.ndarray:
    """A picture of one digit → what the network sees: (H, W) = ``shape`` uint8, white ink on black.

    ``image``: a PIL image or an array (see to_gray for the accepted shapes and scales), any size,
    dark ink on light paper or light on dark, any colours. The ink is cropped, scaled so its longer
    side is 20/28 of the output (20 px for 28×28), stretched so its strongest pixel is 255, and
    pasted with its centre of mass at the centre. Raises ImageError when the picture has no ink.
    Needs Pillow (for the resizing) even for arrays.
    """
    H, W = (int(side) for side in shape)
    if H < 1 or W < 1:
        raise ImageError(f"shape must be two positive sizes, got {shape!r}")
    gray = to_gray(image)
    if gray.size == 0:
        raise ImageError("the image has no pixels")
    scaled = fit_box(crop_to_ink(ink(shrink(gray))), ink_box((H, W)))
    peak = scaled.max()
    if peak <= 0:
        raise ImageError("no ink left after scaling the image down")
    canvas = paste_centred(scaled * (255 / peak), (H, W))
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def read_digit(path: str | os.PathLike, shape: tuple[int, int] = MNIST_SHAPE) -> np.ndarray:
    """A picture file → exactly what the network sees: (H, W) = ``shape`` uint8, white ink on black.

    load_image then preprocess, as ``scratchcnn predict`` does: ``net.predict(read_digit(path)[None])``.
    Raises ImageError, naming the file, when it cannot be read or has no ink.
    """
    return preprocess(load_image(path), shape)


# ---- how typical --------------------------------------------------------------------------------

TYPICAL_MNIST = "mnist_typical.json"  # beside this module; written by benchmarks/typical_digits.py
INKED = 0.1  # a pixel is inked above this fraction of full white, and solid (not grey) above SOLID
SOLID = 0.9
TINY = 1e-3  # keeps the logs and the logit finite (a single dot, an image with no grey at all)


def ink_statistics(images: np.ndarray) -> np.ndarray:
    """Five numbers per prepared image, (..., H, W) uint8 → float64 (..., 5):

    log mean ink (0..1); log share of pixels inked; log spread (RMS distance of the ink from its
    centre of mass, px); log edge (summed |difference| between neighbouring pixels per unit of ink,
    about 2 / stroke width); logit of the share of inked pixels that are grey rather than solid.
    MNIST's pen strokes are a few pixels wide around a solid core; clothes are filled areas (little
    edge), while small print scaled up and photos are mostly grey.
    """
    X = np.asarray(images, dtype=np.float64) / 255
    rows, cols = np.indices(X.shape[-2:])
    mass = np.maximum(X.sum(axis=(-2, -1)), TINY)
    inked = np.maximum((X > INKED).sum(axis=(-2, -1)), 1)
    cy, cx = ((X * grid).sum(axis=(-2, -1)) / mass for grid in (rows, cols))
    square = (rows - cy[..., None, None]) ** 2 + (cols - cx[..., None, None]) ** 2
    spread = np.sqrt((X * square).sum(axis=(-2, -1)) / mass)
    edge = sum(np.abs(np.diff(X, axis=axis)).sum(axis=(-2, -1)) for axis in (-2, -1)) / mass
    grey = np.clip(((X > INKED) & (X < SOLID)).sum(axis=(-2, -1)) / inked, TINY, 1 - TINY)
    pixels = X.shape[-2] * X.shape[-1]
    logs = np.log(np.maximum(np.stack([mass / pixels, inked / pixels, spread, edge], axis=-1), TINY))
    return np.concatenate([logs, np.log(grey / (1 - grey))[..., None]], axis=-1)


@functools.cache
def typical_mnist() -> dict[str, Any]:
    """What MNIST's training digits look like to ink_statistics: {"mean", "inverse_covariance", "threshold", ...}."""
    return json.loads(resources.files("scratchcnn.data").joinpath(TYPICAL_MNIST).read_text(encoding="utf-8"))


def oddness(images: np.ndarray) -> np.ndarray | float:
    """How unlike MNIST's training digits prepared 28×28 images are: (..., 28, 28) uint8 → (...) float.

    The Mahalanobis distance of their ink_statistics from those of MNIST's training images (10 000 of them,
    as they are and drawn 3× larger; see benchmarks/typical_digits.py).
    Above typical_mnist()["threshold"] (its 99.9th percentile on those images) counts as unlike them.
    """
    reference = typical_mnist()
    z = ink_statistics(images) - np.array(reference["mean"])
    distance = np.sqrt(np.einsum("...i,ij,...j->...", z, np.array(reference["inverse_covariance"]), z))
    return float(distance) if distance.ndim == 0 else distance


# ---- writing ------------------------------------------------------------------------------------


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a grayscale (H, W) uint8 image as an 8-bit grayscale PNG, atomically."""
    Image = require_pillow()
    picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))  # 2-D uint8: mode "L"
    return write_atomically(path, lambda fh: picture.save(fh, format="PNG"))
