"""What every network of scratchcnn shares: the checks of images and labels on their way in, chunked
scoring, the NumPy SGD loop (the readable reference of the compiled engines) and saving to a file."""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from scratchcnn._version import __version__
from scratchcnn.cpus import usable_cpus
from scratchcnn.errors import ConfigError
from scratchcnn.nn.layers import log_softmax
from scratchcnn.nn.npzfile import Expected, read_npz, write_npz

PREDICT_CHUNK = 512  # images per forward pass in predict: bounds memory, keeps matrices large
_scoring_threads: int | None = None  # None: one per CPU; a sweep's worker processes score on one each


def set_scoring_threads(threads: int | None) -> None:
    """How many threads ``scores`` runs its chunks on in this process (None: one per CPU it may use).

    Processes that already run side by side, one per core (a sweep's workers), set 1: two threads
    each would make four fight for two cores. The scores are the same either way.
    """
    global _scoring_threads
    _scoring_threads = threads


def _threads() -> int:
    return usable_cpus() if _scoring_threads is None else _scoring_threads


class Classifier(ABC):
    """What the networks (ConvNet, Stack) share; they set input_shape (H, W), dtype, classes and their file format."""

    file_format: str
    file_version: int
    dataset: str | None

    input_shape: tuple[int, int]
    dtype: str
    classes: int
    chunk = PREDICT_CHUNK  # images scored at once by each thread

    def check_images(self, X: Any) -> np.ndarray:
        """Check images; uint8 stays uint8 (1 byte a pixel), floats must lie in [0, 1]. Returns (N, H, W)."""
        X = np.asarray(X)
        if X.ndim != 3 or X.shape[1:] != self.input_shape:
            hint = " (for one image pass X[None])" if X.shape == self.input_shape else ""
            raise ConfigError(
                f"expected images of shape (N, {self.input_shape[0]}, {self.input_shape[1]}), got {X.shape}{hint}"
            )
        if X.dtype == np.uint8:
            return X
        if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
            raise ConfigError(f"images must be uint8 or real numbers, got dtype {X.dtype}")
        X = X.astype(self.dtype, copy=False)
        if not np.isfinite(X).all():
            raise ConfigError("images contain NaN or infinite values")
        if X.size and (X.min() < 0 or X.max() > 1):
            raise ConfigError(
                f"float pixel values must lie in [0, 1], got [{X.min():g}, {X.max():g}] (divide by 255?)"
            )
        return X

    def scale(self, X: np.ndarray) -> np.ndarray:
        """Checked images in the network's dtype: uint8 pixels 0..255 → [0, 1]; floats as they are."""
        if X.dtype == np.uint8:
            return X.astype(self.dtype) / np.array(255, self.dtype)
        return X

    def prepare(self, X: Any) -> np.ndarray:
        """Check images and scale them to the network's dtype in [0, 1]. Returns (N, H, W)."""
        return self.scale(self.check_images(X))

    def prepare_labels(self, y: Any, n: int) -> np.ndarray:
        """Check class labels: n integers in 0..C−1. Returns (n,) int64."""
        y = np.asarray(y)
        if y.shape != (n,):
            raise ConfigError(f"expected {n} labels of shape ({n},), got shape {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            raise ConfigError(f"labels must be integers 0..{self.classes - 1}, got dtype {y.dtype}")
        if n and (y.min() < 0 or y.max() >= self.classes):
            raise ConfigError(f"labels must lie in 0..{self.classes - 1}, got [{y.min()}, {y.max()}]")
        return y.astype(np.int64, copy=False)

    @abstractmethod
    def chunk_scores(self, X: np.ndarray) -> np.ndarray:
        """Class scores A: (n, C) for a chunk of checked images (n, H, W); each network computes its own."""

    @abstractmethod
    def parameters(self) -> dict[str, np.ndarray]:
        """The trainable arrays by name, the same objects the network computes with."""

    @abstractmethod
    def loss_and_gradients_prepared(self, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy L over a prepared batch and ∂L/∂θ keyed like ``parameters()``."""

    @property
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able: what a saved file needs to rebuild the network's architecture."""

    def sgd_steps(self, X: np.ndarray, y: np.ndarray, order: np.ndarray, learning_rate: float, batch_size: int,
                  update: Callable[[dict[str, np.ndarray]], None] | None = None) -> tuple[int, float]:
        """One epoch of SGD in NumPy, the readable reference the compiled engines are held equal to.

        X: (N, H, W) checked images; y: (N,) labels; order: record indices taken in consecutive batches.
        Each batch moves every θ by θ ← θ − η ∂L/∂θ, or calls ``update(grads)`` (an optimiser's step).
        A batch whose loss is not finite is not applied and ends the epoch. Returns (steps, last loss).
        """
        params = self.parameters()
        steps, L = 0, math.nan
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for first in range(0, len(order), batch_size):
                batch = order[first : first + batch_size]
                L, grads = self.loss_and_gradients_prepared(self.scale(X[batch]), y[batch])
                if not math.isfinite(L):
                    break
                if update is not None:
                    update(grads)
                else:
                    for name, p in params.items():
                        p -= learning_rate * grads[name]  # θ ← θ − η ∂L/∂θ
                steps += 1
        return steps, L

    def header(self) -> dict[str, Any]:
        """What a saved file says about itself, beside the parameter arrays."""
        return {
            "format": self.file_format, "format_version": self.file_version, "scratchcnn_version": __version__,
            "config": self.config, "dataset": self.dataset,
            "input": {"pixels": "uint8 divided by 255, or float in [0, 1]", "scale": 1 / 255},
            "arrays": {name: list(value.shape) for name, value in self.parameters().items()},
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write parameters and header to one .npz, atomically: a crash never leaves half a file."""
        return write_npz(path, self.parameters(), self.header(), "model")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Any:
        """Read a file written by ``save``; refuse one whose arrays disagree with its header."""
        return cls.from_arrays(read_npz(path, "model", lambda raw: cls.expected_arrays(raw, str(path))), str(path))

    @classmethod
    @abstractmethod
    def expected_arrays(cls, raw_header: np.ndarray | None, where: str) -> dict[str, Expected]:
        """{name: (dtype, shape)} of the parameters a saved header promises, computed without allocating them."""

    @classmethod
    @abstractmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], where: str) -> Any:
        """The network a saved header (arrays["header"]) and its parameter arrays describe; ModelFileError if amiss."""

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Class scores A: (N, C) for checked images (uint8 or prepared), in chunks of ``self.chunk``.

        Chunks bound the memory (uint8 images are scaled one chunk at a time) and run on all cores:
        NumPy releases the GIL inside its gathers and matrix products, so threads suffice.
        """
        starts = range(0, len(X), self.chunk)
        if len(starts) == 0:
            return np.zeros((0, self.classes), self.dtype)

        caller_errstate = np.geterr()  # np.errstate is per thread: the workers take the caller's

        def chunk(start: int) -> np.ndarray:
            with np.errstate(**caller_errstate):
                return self.chunk_scores(X[start : start + self.chunk])

        threads = _threads()
        if len(starts) == 1 or threads == 1:
            return np.concatenate([chunk(start) for start in starts])
        # One BLAS thread per chunk: BLAS's own threads on top of ours would fight for the cores.
        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
            return np.concatenate(list(pool.map(chunk, starts)))

    def predict_proba(self, X: Any) -> np.ndarray:
        """P: (N, C), the softmax of the class scores. X: (N, H, W) uint8 or float in [0, 1]."""
        return np.exp(log_softmax(self.scores(self.check_images(X))))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each image: (N,) int64."""
        return self.scores(self.check_images(X)).argmax(axis=1)
