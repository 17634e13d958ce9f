"""How well a network does on labelled images: accuracy, mean loss, confusion matrix."""

from __future__ import annotations

import math

import numpy as np

from scratchcnn.nn import layers
from scratchcnn.nn.model import ConvNet
from scratchcnn.options import CLASSES


def evaluate(net: ConvNet, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Accuracy and mean cross-entropy −ln P_y of net on checked images X: (N, H, W) and labels y: (N,)."""
    return score_metrics(net.scores(X), y)


def score_metrics(A: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Accuracy and mean cross-entropy −ln P_y from class scores A: (N, C) of images labelled y: (N,);
    (nan, nan) for no images."""
    if len(y) == 0:
        return math.nan, math.nan
    log_P_y = layers.log_softmax(A)[np.arange(len(y)), y]  # ln P_y
    return float((A.argmax(axis=1) == y).mean()), float(-log_P_y.mean())


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int = CLASSES) -> np.ndarray:
    """M[i, j] = how many images of class i were predicted as class j. Returns (classes, classes) int64."""
    counts = np.bincount(np.asarray(y_true) * classes + np.asarray(y_pred), minlength=classes * classes)
    return counts.reshape(classes, classes)
