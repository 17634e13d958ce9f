"""A user's own picture of a digit → the image the network expects, made the way MNIST was made.

MNIST's digits are white ink on black, their ink scaled (keeping the aspect ratio) to fit a 20×20
box and pasted into 28×28 so that the ink's centre of mass sits at the centre. A network trained on
them sees nothing else, so a photo or a drawing has to be brought into that form first:

1. grayscale (luminance; transparent pixels are put on a backdrop that contrasts with the ink);
2. ink = how far each pixel is from the background, on the ink's side: the background is the median
   of the outermost rows and columns, and the ink is darker than it when the image's mean is;
   this inverts dark-on-light pictures and subtracts the grey of photographed paper;
3. crop to the ink's bounding box (pixels above INK_FRACTION of the strongest ink);
4. scale the longer side to 20 px (20/28 of the model's input size), keeping the aspect ratio;
5. stretch the ink to 0..255 and paste it so its centre of mass is at the centre of 28×28.

Pillow is optional (the ``image`` extra): it is imported only inside the functions that read,
resize or write pictures, so the package imports without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scratchcnn.errors import DataError, ScratchCNNError
from scratchcnn.files import write_atomically

if TYPE_CHECKING:
    from PIL import Image as PILImage

MNIST_SHAPE = (28, 28)  # the canvas MNIST's digits were pasted into
MNIST_BOX = 20  # ... after their ink was scaled to fit a 20×20 box
INK_FRACTION = 0.1  # a pixel is ink (for the bounding box) above this fraction of the strongest ink
NOISE_PERCENTILE = 90  # the paper's own variation: this percentile of the border's distance from the background
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
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, inside the try
            gray = to_gray(image)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError("no such file", path) from None
    except IsADirectoryError:
        raise ImageError("is a directory, not an image", path) from None
    except Image.UnidentifiedImageError:
        raise ImageError("not an image Pillow can read (PNG, JPEG, BMP, ...)", path) from None
    except Exception as error:  # Pillow raises many kinds (OSError, ValueError, DecompressionBombError, ...)
        raise ImageError(f"cannot read the image ({_first_line(error)})", path) from None
    if gray.size == 0 or np.ptp(gray) < MIN_CONTRAST:
        raise ImageError("no ink: the image is all one colour", path)
    return np.rint(gray).astype(np.uint8)


def to_gray(image: PILImage.Image | np.ndarray) -> np.ndarray:
    """Luminance of a picture as float64 (H, W) on the 0..255 scale.

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
        pixels = array.astype(np.float64) * 255
    elif np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating):
        pixels = array.astype(np.float64)
        if not np.isfinite(pixels).all():
            raise ImageError("the image holds NaN or infinite values")
        top = pixels.max(initial=0)
        if np.issubdtype(array.dtype, np.floating) and top <= 1:
            pixels *= 255
        elif array.dtype != np.uint8 and top > 255:
            pixels *= 255 / 65535  # 16-bit
        pixels = np.clip(pixels, 0, 255)
    else:
        raise ImageError(f"image pixels must be numbers, got dtype {array.dtype}")
    if pixels.ndim == 2:
        return pixels
    gray = pixels[:, :, :3] @ LUMA
    if pixels.shape[2] == 4 and (pixels[:, :, 3] < 255).any():
        alpha = pixels[:, :, 3] / 255
        # A drawing exported with a transparent background: put it on white when the opaque strokes are
        # dark, on black when they are light, so that the strokes stay visible.
        opaque_mean = (gray * alpha).sum() / alpha.sum() if alpha.sum() > 0 else 0.0
        backdrop = 255.0 if opaque_mean < 128 else 0.0
        gray = alpha * gray + (1 - alpha) * backdrop
    return gray


def _pil_to_array(image: PILImage.Image) -> np.ndarray:
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)  # phones store photos sideways plus an orientation tag
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        return np.asarray(image)  # 16/32-bit integer or float grayscale: to_gray scales it
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    return np.asarray(image.convert("RGBA" if has_alpha else "RGB"))


# ---- preprocessing ------------------------------------------------------------------------------


def ink(gray: np.ndarray) -> np.ndarray:
    """How much ink each pixel holds: float64 (H, W) ≥ 0, 0 on the paper, whatever the colours.

    ``gray``: (H, W) luminance 0..255. The paper is the plane a + b·row + c·col fitted to the outermost
    rows and columns (flat paper gives their median level; a photo's uneven light, a slope). The ink
    lies on the side of the paper where the image's mean lies: ink pulls the mean its way, whereas
    the image median would be the paper's own level. The paper's noise (NOISE_PERCENTILE of the
    border's distance from the plane, on the ink's side) is subtracted. Raises ImageError when
    nothing stands out by MIN_CONTRAST gray levels.
    """
    paper = paper_level(gray)
    deviation = gray - paper
    side = np.sign(deviation.mean())  # −1: dark ink on light paper (to be inverted)
    if side == 0:
        raise ImageError("no ink: the image is all one colour")
    amount = np.clip(side * deviation, 0, None)
    noise = np.percentile(_border(amount), NOISE_PERCENTILE)
    amount = np.clip(amount - noise, 0, None)
    if amount.max() < MIN_CONTRAST:
        raise ImageError(f"no ink: nothing differs from the background by {MIN_CONTRAST} gray levels or more")
    return amount


def paper_level(gray: np.ndarray) -> np.ndarray:
    """The background's gray level at each pixel: the plane fitted to the border, float64 (H, W).

    Least squares on the border pixels, refitted once without the pixels that lie far from the first
    fit (ink touching the edge of the picture), so that a stroke crossing the border does not tilt it.
    """
    H, W = gray.shape
    rows, cols = np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64)
    values = _border(gray)
    border_rows = _border(np.broadcast_to(rows[:, None], (H, W)))
    border_cols = _border(np.broadcast_to(cols[None, :], (H, W)))
    design = np.column_stack([np.ones(values.size), border_rows, border_cols])
    keep = np.ones(values.size, bool)
    for _ in range(2):
        coef = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
        residual = np.abs(values - design @ coef)
        keep = residual <= 3 * np.median(residual[keep]) + 2  # + 2 gray levels: a clean border has no spread
    return coef[0] + coef[1] * rows[:, None] + coef[2] * cols[None, :]


def _border(array: np.ndarray) -> np.ndarray:
    """The outermost rows and columns of (H, W), as one vector (corners twice)."""
    return np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])


def crop_to_ink(amount: np.ndarray) -> np.ndarray:
    """The bounding box of the pixels above INK_FRACTION of the strongest ink: (h, w) float64."""
    rows = np.flatnonzero((amount > INK_FRACTION * amount.max()).any(axis=1))
    cols = np.flatnonzero((amount > INK_FRACTION * amount.max()).any(axis=0))
    return amount[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def fit_box(amount: np.ndarray, box: tuple[int, int]) -> np.ndarray:
    """Scale ink (h, w) to fit box (rows, cols), keeping the aspect ratio: float64, one side touching the box.

    Pillow's Lanczos filter: when shrinking it averages over the whole footprint of each output
    pixel (no aliasing of thin strokes); its slight overshoot is clipped away.
    """
    Image = require_pillow()
    h, w = amount.shape
    scale = min(box[0] / h, box[1] / w)
    size = (max(1, min(box[1], round(w * scale))), max(1, min(box[0], round(h * scale))))  # Pillow: (w, h)
    if size == (w, h):
        return amount
    resized = Image.fromarray(amount.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float64), 0, None)


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


def ink_box(shape: tuple[int, int]) -> tuple[int, int]:
    """The box the ink is scaled into: MNIST's 20/28 of each side, e.g. (20, 20) for 28×28, (6, 6) for 8×8."""
    return tuple(max(1, round(side * MNIST_BOX / MNIST_SHAPE[0])) for side in shape)  # type: ignore[return-value]


def preprocess(image: PILImage.Image | np.ndarray, shape: tuple[int, int] = MNIST_SHAPE) -> np.ndarray:
    """A picture of one digit → what the network sees: (H, W) = ``shape`` uint8, white ink on black.

    ``image``: a PIL image or an array (see to_gray for the accepted shapes and scales), any size,
    dark ink on light paper or light on dark, any colours. The ink is cropped, scaled so its longer
    side is 20/28 of the output (20 px for 28×28), stretched so its strongest pixel is 255, and
    pasted with its centre of mass at the centre. Raises ImageError when the picture has no ink.
    """
    H, W = (int(side) for side in shape)
    if H < 1 or W < 1:
        raise ImageError(f"shape must be two positive sizes, got {shape!r}")
    gray = to_gray(image)
    if gray.size == 0:
        raise ImageError("the image is empty (0 pixels)")
    scaled = fit_box(crop_to_ink(ink(gray)), ink_box((H, W)))
    peak = scaled.max()
    if peak <= 0:
        raise ImageError("no ink left after scaling the image down")
    canvas = paste_centred(scaled * (255 / peak), (H, W))
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


# ---- writing ------------------------------------------------------------------------------------


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a grayscale (H, W) uint8 image as an 8-bit grayscale PNG, atomically."""
    Image = require_pillow()
    picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))  # 2-D uint8: mode "L"
    return write_atomically(path, lambda fh: picture.save(fh, format="PNG"))


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
