"""Datasets on disk: the IDX file format of MNIST and Fashion-MNIST, and where to find the files.

IDX: 2 zero bytes, a type code, the number of dimensions d, then d big-endian uint32 sizes, then the
values, big-endian, in C order. Files may be gzip-compressed (recognised by content, not by name).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from scratchcnn import download as downloads
from scratchcnn.errors import DataError
from scratchcnn.files import write_atomically

DOWNLOADABLE = ("mnist", "fashion-mnist")  # four IDX files each, found on disk or downloaded
BUNDLED = ("digits",)  # shipped inside scikit-learn (the optional extra): no files, no download
DATASETS = DOWNLOADABLE + BUNDLED
DIGITS_TEST = 360  # the last 360 of scikit-learn's 1 797 digits are the test set (20 %)
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "digits": tuple(str(digit) for digit in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}
CACHE_DIR = downloads.DEFAULT_DIR
SYSTEM_DIR = Path("/usr/share/datasets")  # where Debian's dataset-fashion-mnist installs
OFFLINE_ENV = "SCRATCHCNN_OFFLINE"  # set (to anything) to never download
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"
MAX_GZIP_RATIO = 1032  # deflate cannot expand more than this: bounds what a .gz file can justify
CLASSES = 10


# ---- IDX files ---------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or plain, into an array of its shape (native byte order).

    Raises DataError naming the file and the fault for anything that is not a complete IDX file;
    the header is checked against the file's size before any memory is allocated for the values.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as raw:
            compressed = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            if not compressed:
                return _read_idx_stream(raw, path, size, exact=True)
            with gzip.GzipFile(fileobj=raw) as fh:
                return _read_idx_stream(fh, path, size * MAX_GZIP_RATIO, exact=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an IDX file") from None
    except (gzip.BadGzipFile, zlib.error, EOFError) as error:
        raise DataError(f"{path}: corrupt or truncated gzip data ({str(error) or type(error).__name__})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None


def _read_idx_stream(fh: BinaryIO, path: Path, size_bound: int, exact: bool) -> np.ndarray:
    """Parse header and values; ``size_bound`` is the most bytes the file can hold (exact if plain)."""
    magic = fh.read(4)
    if len(magic) < 4:
        raise DataError(f"{path}: empty or truncated file (no IDX header)")
    if magic[:2] != b"\0\0" or magic[2] not in IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (magic number {magic.hex()})")
    ndim = magic[3]
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares no dimensions")
    dims_bytes = fh.read(4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", dims_bytes)
    dtype = np.dtype(IDX_TYPES[magic[2]])
    header_bytes = 4 + 4 * ndim
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if expected > size_bound - header_bytes:
        what = "is" if exact else "can hold at most"
        raise DataError(
            f"{path}: header declares shape {shape} ({expected} bytes of data) but the file {what} "
            f"{max(size_bound - header_bytes, 0)} bytes: truncated or corrupt"
        )
    data = _read_up_to(fh, expected)
    if len(data) < expected:
        raise DataError(f"{path}: truncated: {len(data)} of the {expected} data bytes its header declares")
    if fh.read(1):
        raise DataError(f"{path}: more data than its header shape {shape} declares")
    try:
        return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    except ValueError:  # e.g. a shape with a 0 whose other sizes overflow NumPy's index range
        raise DataError(f"{path}: header shape {shape} cannot be represented as an array") from None


def _read_up_to(fh: BinaryIO, count: int, chunk: int = 1 << 24) -> bytes:
    """Read at most count bytes in chunks, so memory grows with the data actually there, not the claim."""
    parts, total = [], 0
    while total < count:
        part = fh.read(min(chunk, count - total))
        if not part:
            break
        parts.append(part)
        total += len(part)
    return b"".join(parts)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an array as IDX, gzip-compressed when the name ends in .gz, atomically."""
    array = np.asarray(array)
    codes = {np.dtype(t).newbyteorder("="): code for code, t in IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"{path}: IDX cannot store dtype {array.dtype}; use one of {sorted(map(str, codes))}")
    if not 1 <= array.ndim <= 255 or max(array.shape) >= 2**32:
        raise DataError(f"{path}: IDX cannot store shape {array.shape}")
    body = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    body += np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()
    if str(path).endswith(".gz"):
        body = gzip.compress(body, mtime=0)  # mtime 0: the same array always gives the same bytes
    return write_atomically(path, lambda fh: fh.write(body))


# ---- datasets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A dataset's four arrays: images (N, 28, 28) uint8 and labels (N,) uint8 in 0..9."""

    name: str
    directory: Path
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The data directories looked in, in order: data_dir, $SCRATCHCNN_DATA, the cache, the system's."""
    dirs = [Path(data_dir).expanduser()] if data_dir else []
    if os.environ.get("SCRATCHCNN_DATA"):
        dirs.append(Path(os.environ["SCRATCHCNN_DATA"]).expanduser())
    return [*dirs, CACHE_DIR.expanduser(), SYSTEM_DIR]


def find_files(directory: Path) -> dict[str, Path]:
    """The dataset files present in directory, by role; each as .gz or, failing that, plain."""
    found = {}
    for role, stem in FILES.items():
        for candidate in (directory / f"{stem}.gz", directory / stem):
            if candidate.is_file():
                found[role] = candidate
                break
    return found


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = True,
                 progress: bool = False) -> Dataset:
    """Load a dataset from the first data directory holding ``<dir>/<name>/`` with all four files.

    When none has them and ``download`` is on (and $SCRATCHCNN_OFFLINE is not set), fetch and verify
    them into data_dir (or the cache) first. Raises DataError saying which files are needed and where
    it looked.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if name == "digits":
        return load_digits()
    looked = []
    for base in search_dirs(data_dir):
        directory = base / name
        found = find_files(directory)
        if len(found) == len(FILES):
            return _read_dataset(name, directory, found)
        missing = [FILES[role] for role in FILES if role not in found]
        looked.append(f"{directory}" + (f" (missing {', '.join(missing)})" if found else ""))
    needed = (f"dataset {name} not found: need {', '.join(f'{stem}.gz' for stem in FILES.values())} "
              f"(or uncompressed) in one of: {'; '.join(looked)}")
    hint = f"pass --data-dir DIR (DIR/{name}/...) or set SCRATCHCNN_DATA"
    if not download or os.environ.get(OFFLINE_ENV):
        raise DataError(f"{needed}. To use local files, {hint}; or allow downloading")
    try:
        results = downloads.download_dataset(name, data_dir or CACHE_DIR, progress=progress)
    except downloads.DownloadError as error:
        raise DataError(f"{needed}; downloading failed: {error}. To use local files, {hint}") from None
    directory = results[0].path.parent
    return _read_dataset(name, directory, find_files(directory))


def load_digits() -> Dataset:
    """scikit-learn's bundled 8×8 handwritten digits (1 797, from 43 writers): a small offline dataset.

    Pixels 0..16 are stretched to 0..255 so they read like MNIST's; the first 1 437 images train, the
    last 360 test (an ordered split: the later writers are not seen in training).
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise DataError("the digits dataset comes with scikit-learn: pip install 'scratchcnn[sklearn]'") from None
    bunch = sklearn_digits()
    images = np.rint(bunch.images * (255 / 16)).astype(np.uint8)  # (1797, 8, 8)
    labels = bunch.target.astype(np.uint8)
    split = len(images) - DIGITS_TEST
    return Dataset(name="digits", directory=Path("<scikit-learn>"), train_images=images[:split],
                   train_labels=labels[:split], test_images=images[split:], test_labels=labels[split:])


def _read_dataset(name: str, directory: Path, paths: dict[str, Path]) -> Dataset:
    arrays = {role: read_idx(path) for role, path in paths.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        image_path, label_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{image_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise DataError(f"{label_path}: expected uint8 labels (N,), got {labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise DataError(f"{image_path} holds {len(images)} images but {label_path} {len(labels)} labels")
        if len(labels) and labels.max() >= CLASSES:
            raise DataError(f"{label_path}: label {labels.max()} outside 0..9")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DataError(
            f"{directory}: training images are {arrays['train_images'].shape[1:]}, "
            f"test images {arrays['test_images'].shape[1:]}"
        )
    return Dataset(name=name, directory=directory, **arrays)
