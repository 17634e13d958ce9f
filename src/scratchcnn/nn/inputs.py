"""What every network of scratchcnn checks on its way in: images and class labels."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from scratchcnn.errors import ConfigError
from scratchcnn.nn.layers import log_softmax

PREDICT_CHUNK = 512  # images per forward pass in predict: bounds memory, keeps matrices large


class Classifier:
    """Input checks shared by the networks (ConvNet, Stack); they set input_shape (H, W), dtype and classes."""

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

    def chunk_scores(self, X: np.ndarray) -> np.ndarray:
        """Class scores A: (n, C) for a chunk of checked images (n, H, W); each network computes its own."""
        raise NotImplementedError

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

        if len(starts) == 1:
            return chunk(0)
        # One BLAS thread per chunk: BLAS's own threads on top of ours would fight for the cores.
        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            return np.concatenate(list(pool.map(chunk, starts)))

    def predict_proba(self, X: Any) -> np.ndarray:
        """P: (N, C), the softmax of the class scores. X: (N, H, W) uint8 or float in [0, 1]."""
        return np.exp(log_softmax(self.scores(self.check_images(X))))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each image: (N,) int64."""
        return self.scores(self.check_images(X)).argmax(axis=1)
