"""A training run on disk: its options, a checkpoint after every epoch, its outputs, and resuming it.

``DIR/checkpoint.npz`` is rewritten atomically after each epoch; ``DIR/model.npz``,
``DIR/history.json`` and ``DIR/history.csv`` are written when the run ends. A run killed at any
moment and resumed from its checkpoint ends with the same model and history, bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from scratchcnn.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from scratchcnn.data import load_dataset
from scratchcnn.errors import ConfigError, ModelFileError
from scratchcnn.files import write_text_atomically
from scratchcnn.model import ConvNet
from scratchcnn.train import (
    BATCH_SIZE,
    EPOCHS,
    LEARNING_RATE,
    VALIDATION_SIZE,
    EpochRecord,
    History,
    confusion_matrix,
    evaluate,
    fit,
    resolve_engine,
)

TRAIN_DEFAULTS: dict[str, Any] = {
    "dataset": "mnist", "learning_rate": LEARNING_RATE, "epochs": EPOCHS, "batch_size": BATCH_SIZE,
    "epoch_size": None, "train_size": None, "validation_size": VALIDATION_SIZE, "seed": 0,
    "filters": 3, "kernel_size": 3, "pool": "decimate", "activation": "none", "bias": False, "dtype": "float32",
    "engine": "auto",
}
# Measured: 1 437 small 8×8 digits need larger steps than MNIST (0.005: test accuracy 0.89–0.91 in 20
# epochs over seeds 0–2, where 0.0005 gives 0.79–0.83).
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {"digits": {"learning_rate": 0.005}}
NETWORK_OPTIONS = ("filters", "kernel_size", "pool", "activation", "bias", "dtype")
EXTENDABLE = ("epochs",)  # a resumed run may be given more epochs than it was started with


def resolve_options(given: dict[str, Any], saved: dict[str, Any] | None = None) -> dict[str, Any]:
    """The options of a run: the defaults overridden by ``given``, or, resuming, the ``saved`` ones.

    Resuming, a given option that contradicts the saved one is refused (only epochs may grow).
    """
    if saved is None:
        dataset = given.get("dataset", TRAIN_DEFAULTS["dataset"])
        return {**TRAIN_DEFAULTS, **DATASET_DEFAULTS.get(dataset, {}), **given}
    for key, value in given.items():
        if key in EXTENDABLE and value >= saved[key]:
            continue
        if key in saved and saved[key] != value:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(
                f"{flag} {value} contradicts the checkpoint, which was trained with {flag} {saved[key]}; "
                "drop the flag to resume as it was started"
            )
    return {**saved, **given}


def data_fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of the training data, so a run is never resumed on different data."""
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()


def train_run(
    given: dict[str, Any],
    out: Path,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    resume: bool = False,
    progress: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Train (or resume) the run in ``out`` and write its outputs. Returns the summary it saves."""
    checkpoint_path = out / CHECKPOINT_NAME
    net = state = None
    if resume:
        net, state, saved = load_checkpoint(checkpoint_path)
        training = saved.get("training")
        if not isinstance(training, dict) or set(training) != set(TRAIN_DEFAULTS) \
                or not isinstance(saved.get("data_fingerprint"), str):
            raise ModelFileError(f"{checkpoint_path}: checkpoint has no complete training options and data fingerprint")
        options = resolve_options(given, training)
        fingerprint = saved["data_fingerprint"]
    else:
        options = resolve_options(given)
        # Saved as resolved: a resumed run must use the same engine to end bit for bit the same.
        options["engine"] = resolve_engine(options["engine"])
    data = load_dataset(options["dataset"], data_dir, download=download, progress=progress)
    out.mkdir(parents=True, exist_ok=True)  # fail now, not after the first epoch, if out cannot be written
    if resume and data_fingerprint(data.train_images, data.train_labels) != fingerprint:
        raise ConfigError(f"the {data.name} training data in {data.directory} differs from the checkpoint's")
    if net is None:
        net = ConvNet(**{k: options[k] for k in NETWORK_OPTIONS}, input_shape=data.train_images.shape[1:],
                      seed=options["seed"])
        net.dataset = data.name
    saved_options = {"training": options, "data_fingerprint": data_fingerprint(data.train_images, data.train_labels)}
    say(f"{'resuming' if resume else 'training'} {net} on {data.name} ({data.directory}); writing to {out}")
    say(EPOCH_HEADER)
    history = fit(
        net, data.train_images, data.train_labels,
        **{k: options[k] for k in ("learning_rate", "epochs", "batch_size", "epoch_size", "train_size",
                                   "validation_size", "seed", "engine")},
        progress=progress, on_epoch=lambda record: say(epoch_line(record)), resume=state,
        save_state=lambda s: save_checkpoint(checkpoint_path, net, s, saved_options),
    )
    X_test, y_test = net.check_images(data.test_images), data.test_labels.astype(np.int64)
    test_accuracy, test_loss = evaluate(net, X_test, y_test)
    summary = run_summary(options, history, test_accuracy, test_loss, out / "model.npz")
    summary["confusion_matrix"] = confusion_matrix(y_test, net.scores(X_test).argmax(axis=1), net.classes).tolist()
    net.save(out / "model.npz")
    write_text_atomically(out / "history.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomically(out / "history.csv", history.to_csv())
    return summary


def run_summary(options: dict[str, Any], history: History, test_accuracy: float, test_loss: float,
                model_path: Path) -> dict[str, Any]:
    """What history.json holds and ``train --json`` prints."""
    last: EpochRecord | None = history.epochs[-1] if history.epochs else None
    return {
        "test_accuracy": test_accuracy, "test_loss": test_loss,
        "validation_accuracy": last and last.validation_accuracy,
        "train_accuracy": last and last.train_accuracy,
        "epochs": len(history.epochs),
        "seconds_per_epoch": float(np.mean([e.seconds for e in history.epochs])) if history.epochs else None,
        "stopped": history.stopped,
        "engine": history.engine,
        "compile_seconds": history.compile_seconds,
        "model": str(model_path),
        "options": options,
        "history": [vars(e) for e in history.epochs],
    }


EPOCH_HEADER = f"{'epoch':>5} {'train acc':>9} {'val acc':>8} {'train loss':>10} {'val loss':>8} {'seconds':>7}"


def epoch_line(e: EpochRecord) -> str:
    """One row of the table printed during training (header: EPOCH_HEADER)."""
    def fmt(value: float | None, width: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.4f}"

    return (f"{e.epoch:>5} {fmt(e.train_accuracy, 9)} {fmt(e.validation_accuracy, 8)} "
            f"{fmt(e.train_loss, 10)} {fmt(e.validation_loss, 8)} {e.seconds:>7.2f}")
