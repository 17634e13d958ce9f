"""A training run: train (or resume) a network into its run folder, with a checkpoint after every epoch.

The folder's files are RunDir's (rundir.py). A run killed at any moment and resumed from its
checkpoint ends with the same model and history, bit for bit.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from scratchcnn import options as run_options
from scratchcnn.data import load_dataset
from scratchcnn.errors import ConfigError, DivergedError, ModelFileError
from scratchcnn.nn.metrics import confusion_matrix, score_metrics
from scratchcnn.nn.network import build_network
from scratchcnn.options import RunOptions
from scratchcnn.train.checkpoint import load_checkpoint, save_checkpoint
from scratchcnn.train.rundir import RunDir
from scratchcnn.train.sgd import EpochRecord, History, TrainState, fit, resolve_engine

# The options a checkpoint held before stacks and optimisers were added; newer ones may be absent.
PRE_STACK_OPTIONS = ("learning_rate", "epochs", "batch_size", "epoch_size", "train_size", "validation_size", "seed",
                     "engine", "filters", "kernel_size", "pool", "activation", "bias", "dtype", "dataset")


def data_fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of the training data, so a run is never resumed on different data."""
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()


def _saved_options(where: Path, saved: dict[str, Any]) -> RunOptions:
    """The options a checkpoint was trained with; ModelFileError when they are incomplete or invalid."""
    training = saved.get("training")
    # Options added since (arch, layers, optimiser...) are absent from older checkpoints: they take their
    # defaults, which are what those runs trained with.
    if not isinstance(training, dict) or not set(training) <= {f.name for f in fields(RunOptions)} \
            or not set(training) >= set(PRE_STACK_OPTIONS) or not isinstance(saved.get("data_fingerprint"), str):
        raise ModelFileError(f"{where}: checkpoint has no complete training options and data fingerprint")
    try:
        return RunOptions(**training)
    except ConfigError as error:
        raise ModelFileError(f"{where}: bad training options in checkpoint ({error})") from None


def resolved(given: dict[str, Any]) -> RunOptions:
    """The options a new run trains with: the defaults overridden by ``given``, and the engine "auto" stands
    for here (saved so: a resumed run must use the same engine to end bit for bit the same)."""
    options = run_options.resolve(given)
    return replace(options, engine=resolve_engine(options.engine))


def train_run(
    given: dict[str, Any],
    out: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    say: Callable[[str], None] = lambda _: None,
    finish: Callable[[RunDir, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume) the run in folder ``out`` and write its outputs. Returns the summary it saves.

    ``given``: options by name (see scratchcnn.options.RunOptions); the rest take their defaults.
    The folder is locked for the whole run. A folder that already holds a run is refused unless
    ``resume`` (continue it) or ``overwrite`` (replace it: its files go once the new run's first
    checkpoint is about to be written). ``finish(run, summary)`` runs at the end, still under the lock.
    """
    with RunDir(out).lock() as run:
        summary = _train_locked(run, given, data_dir=data_dir, download=download, resume=resume,
                                overwrite=overwrite, progress=progress, say=say)
        if finish is not None:
            finish(run, summary)
    return summary


def _train_locked(run: RunDir, given: dict[str, Any], *, data_dir: str | os.PathLike | None, download: bool,
                  resume: bool, overwrite: bool, progress: bool, say: Callable[[str], None]) -> dict[str, Any]:
    net = state = fingerprint = None
    replacing = False
    if resume:
        net, state, saved = load_checkpoint(run.checkpoint)
        options = run_options.resolve(given, _saved_options(run.checkpoint, saved))
        fingerprint = saved["data_fingerprint"]
    else:
        replacing = bool(run.existing())
        if replacing and not overwrite:
            run.refuse_existing()
        options = resolved(given)
    data = load_dataset(options.dataset, data_dir, download=download, progress=progress)
    train_fingerprint = data_fingerprint(data.train_images, data.train_labels)
    if resume and train_fingerprint != fingerprint:
        raise ConfigError(f"the {data.name} training data in {data.directory} differs from the checkpoint's")
    if net is None:
        net = build_network(options.network, input_shape=data.train_images.shape[1:], seed=options.seed)
        net.dataset = data.name
    saved_options = {"training": options.to_json(), "data_fingerprint": train_fingerprint}

    def save_state(s: TrainState) -> None:
        nonlocal replacing
        if replacing:  # --overwrite: the old run's files go only now that the new run has an epoch to keep
            run.remove_outputs()
            replacing = False
        save_checkpoint(run.checkpoint, net, s, saved_options)

    say(f"{'resuming' if resume else 'training'} {net} on {data.name} ({data.directory}); writing to {run.path}")
    say(EPOCH_HEADER)
    history = fit(
        net, data.train_images, data.train_labels, **asdict(options.training),
        progress=progress, on_epoch=lambda record: say(epoch_line(record)), resume=state, save_state=save_state,
    )
    if history.stopped and not history.epochs:  # not one good epoch: no model worth saving (an --overwrite
        # run has not touched the old run: its files go only with the first checkpoint)
        raise DivergedError(f"training diverged in epoch 1: the loss became NaN or infinite at learning rate "
                            f"{options.learning_rate:g}; nothing was saved. Try a smaller --learning-rate.")
    X_test, y_test = net.check_images(data.test_images), data.test_labels.astype(np.int64)
    A_test = net.scores(X_test)  # once: the accuracy, the loss and the confusion matrix all come from it
    test_accuracy, test_loss = score_metrics(A_test, y_test)
    summary = run_summary(options, history, test_accuracy, test_loss, run.model)
    summary["confusion_matrix"] = confusion_matrix(y_test, A_test.argmax(axis=1), net.classes).tolist()
    summary["data"] = {"dataset": data.name, "directory": str(data.directory)}
    net.save(run.model)
    run.write_summary(summary, history.to_csv())
    return summary


def run_summary(options: RunOptions, history: History, test_accuracy: float, test_loss: float,
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
        "diverged_in_epoch": len(history.epochs) + 1 if history.stopped else None,  # the last good one was kept
        "engine": history.engine,
        "compile_seconds": history.compile_seconds,
        "model": str(model_path),
        "options": options.to_json(),
        "history": [vars(e) for e in history.epochs],
    }


EPOCH_HEADER = f"{'epoch':>5} {'train acc':>9} {'val acc':>8} {'train loss':>10} {'val loss':>8} {'seconds':>7}"


def epoch_line(e: EpochRecord) -> str:
    """One row of the table printed during training (header: EPOCH_HEADER)."""
    def fmt(value: float | None, width: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.4f}"

    return (f"{e.epoch:>5} {fmt(e.train_accuracy, 9)} {fmt(e.validation_accuracy, 8)} "
            f"{fmt(e.train_loss, 10)} {fmt(e.validation_loss, 8)} {e.seconds:>7.2f}")
