"""Datasets: where their files are found (or downloaded to), and loading them checked.

A data directory DIR holds DIR/<dataset>/ with the four IDX files of MNIST's layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchcnn.data import download as downloads
from scratchcnn.data.arrays_cache import read_idx_cached
from scratchcnn.errors import DataError
from scratchcnn.options import DATASETS

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


@dataclass(frozen=True)
class Dataset:
    """A dataset's four arrays: images (N, H, W) uint8 and labels (N,) uint8 in 0..C−1."""

    name: str
    directory: Path
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The data directories looked in: data_dir alone when given (the user's choice is never replaced by
    another copy), else $SCRATCHCNN_DATA, the cache and the system's, in that order."""
    if data_dir:
        return [Path(data_dir).expanduser()]
    dirs = [Path(os.environ["SCRATCHCNN_DATA"]).expanduser()] if os.environ.get("SCRATCHCNN_DATA") else []
    return [*dirs, CACHE_DIR.expanduser(), SYSTEM_DIR]


def dataset_dirs(base: Path, name: str) -> list[Path]:
    """Where a data directory may hold dataset name: base/name, or base itself when it is that folder
    (``--data-dir data/mnist`` for ``data/mnist/<the four files>``)."""
    if downloads.names_the_dataset(base, name):
        return [base / name, base]
    return [base / name]


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
                 progress: bool = False, image_shape: tuple[int, int] | None = None) -> Dataset:
    """Load a dataset from the first data directory holding ``<dir>/<name>/`` with all four files.

    When none has them and ``download`` is on (and $SCRATCHCNN_OFFLINE is not set), fetch and verify
    them into data_dir (or the cache) first. Raises DataError saying which files are needed and where
    it looked, or, with ``image_shape`` (a model's input), when the images have another size.
    """
    data = _load(name, data_dir, download, progress)
    if image_shape is not None and data.test_images.shape[1:] != tuple(image_shape):
        raise DataError(f"{name} images are {data.test_images.shape[1:]}, the model takes {tuple(image_shape)}")
    return data


def _load(name: str, data_dir: str | os.PathLike | None, download: bool, progress: bool) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if name == "digits":
        return load_digits()
    looked = []
    for base in search_dirs(data_dir):
        for directory in dataset_dirs(base, name):
            found = find_files(directory)
            if len(found) == len(FILES):
                return _read_dataset(name, directory, found)
            missing = [FILES[role] for role in FILES if role not in found]
            if found or directory == base / name:  # base itself only when it holds some of the files
                looked.append(f"{directory}" + (f" (missing {', '.join(missing)})" if found else ""))
    if not download or os.environ.get(OFFLINE_ENV):
        needed = ", ".join(f"{stem}.gz" for stem in FILES.values())
        remedy = _remedy(name, data_dir, there=len(looked) == 1)
        raise DataError(f"dataset {name} not found in {' or '.join(looked)} (need {needed}, or unzipped); {remedy}")
    try:
        results = downloads.download_dataset(name, data_dir or CACHE_DIR, progress=progress)
    except downloads.DownloadError as error:
        remedy = _remedy(name, data_dir)
        raise DataError(f"dataset {name} not found, and downloading failed: {error.problem}; {remedy}") from None
    directory = results[0].path.parent
    return _read_dataset(name, directory, find_files(directory))


def _remedy(name: str, data_dir: str | os.PathLike | None, there: bool = False) -> str:
    """The one thing to do when a dataset is nowhere: put its files where asked ("there": in the one
    folder the message has just named), or point at them."""
    offline = "or use --dataset digits (works offline, needs scikit-learn)"
    if data_dir and there:
        return f"put them there, {offline}"
    if data_dir:
        dirs = dataset_dirs(Path(data_dir).expanduser(), name)
        folder = dirs[-1] if find_files(dirs[-1]) else dirs[0]  # the dataset folder itself if it has begun
        return f"put the four files in {folder}/, {offline}"
    return f"pass --data-dir DIR (files in DIR/{name}/) or set SCRATCHCNN_DATA=DIR, {offline}"


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
    arrays = {role: read_idx_cached(path) for role, path in paths.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        image_path, label_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{image_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise DataError(f"{label_path}: expected uint8 labels (N,), got {labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise DataError(f"{image_path} holds {len(images)} images but {label_path} {len(labels)} labels")
        classes = len(CLASS_NAMES[name])
        if len(labels) and labels.max() >= classes:
            raise DataError(f"{label_path}: label {labels.max()} outside 0..{classes - 1}")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DataError(
            f"{directory}: training images are {arrays['train_images'].shape[1:]}, "
            f"test images {arrays['test_images'].shape[1:]}"
        )
    return Dataset(name=name, directory=directory, **arrays)
