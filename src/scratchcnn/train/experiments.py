"""The write-up's two experiments: tuning the learning rate, and overtraining on 100 records.

Both run on any network (``network``: a preset or a spec, built by nn/network.py; the write-up's by
default) and optimiser, and return plain dicts (JSON-able) that the command line saves and the
figures and report draw.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from scratchcnn.errors import ConfigError
from scratchcnn.nn.network import Network, build_network, network_spec
from scratchcnn.nn.spec import parse
from scratchcnn.options import (  # the experiments' defaults: scratchcnn.options, with every other default
    LEARNING_RATES,
    NETWORK,
    OVERTRAIN_EPOCHS,
    OVERTRAIN_LEARNING_RATE,
    OVERTRAIN_RECORDS,
    OVERTRAIN_VALIDATION,
    TRAINING,
    TUNE_EPOCHS,
    TUNE_TRAIN_SIZE,
    TUNE_VALIDATION_SIZE,
    NetworkOptions,
)
from scratchcnn.train.sgd import EpochRecord, fit, split_sizes
from scratchcnn.train.sweep_backends import InThisProcess, LocalProcesses, local_jobs
from scratchcnn.train.sweep_run import run_sweep
from scratchcnn.train.sweep_spec import Point, Sweep, point_key


def _build(network: NetworkOptions, images: np.ndarray, seed: int) -> Network:
    """``network`` for images (N, H, W); ConfigError, one line naming the layer (and the images' H×W when its
    shapes do not fit them), if it cannot be built."""
    if network.layers is not None:
        parse(network.layers)  # a malformed layer, whatever the images
    try:
        return build_network(network, input_shape=images.shape[1:], seed=seed)
    except ConfigError as error:
        raise ConfigError(f"{error} (on {images.shape[1]}×{images.shape[2]} images)") from None


def _train_one_rate(images: np.ndarray, labels: np.ndarray, options: dict[str, Any], network: NetworkOptions,
                    point: dict[str, Any], directories: dict[str, str]) -> dict[str, Any]:
    """A sweep point of tune (sweep_run's runner, given the images): one fresh network trained at the point's
    learning rate; its per-epoch validation accuracy."""
    rate = point["learning_rate"]
    net = build_network(network, input_shape=images.shape[1:], seed=options["seed"])
    history = fit(net, images, labels, learning_rate=rate, **options)
    return {
        "key": point_key(point), "options": point, "status": "diverged" if history.stopped else "ok",
        "learning_rate": rate,
        "diverged": history.stopped is not None,
        "curve": [e.validation_accuracy for e in history.epochs],
        "final": None if history.stopped or not history.epochs else history.epochs[-1].validation_accuracy,
    }


def tune(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    learning_rates: Sequence[float] = LEARNING_RATES,
    epochs: int = TUNE_EPOCHS,
    epoch_size: int | None = None,
    batch_size: int = TRAINING.batch_size,
    train_size: int | None = TUNE_TRAIN_SIZE,
    validation_size: float | int = TUNE_VALIDATION_SIZE,
    seed: int = TRAINING.seed,
    network: NetworkOptions = NETWORK,
    optimiser: str = TRAINING.optimiser,
    momentum: float = TRAINING.momentum,
    weight_decay: float = TRAINING.weight_decay,
    schedule: str = TRAINING.schedule,
    jobs: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train a fresh network (same seed, same sample) per learning rate and pick the best.

    A sweep (train/sweeps.py) over the learning rate alone, on these images: its points run in worker
    processes in the same way. images: (N, H, W) uint8, labels: (N,). Best: the highest final validation
    accuracy, ties to the smaller rate; diverged rates are reported as such. ``jobs``: parallel processes
    (default: one per core, at most one per rate); each rate's run is seeded, so the result does not depend
    on it.
    ``network`` and the optimiser's options are taken as given (the command line fills in a preset's
    own, as options.resolve does); the result's "network" is the network as a spec string.
    """
    rates = sorted({float(r) for r in learning_rates})
    if not rates or any(not r > 0 for r in rates):
        raise ConfigError(f"learning rates must be positive numbers, got {list(learning_rates)}")
    if split_sizes(len(images), train_size, validation_size)[1] == 0:
        raise ConfigError(f"tuning compares validation accuracy, but validation_size {validation_size} holds out "
                          "no records: give a count like 1000 or a larger fraction")
    options = {"epochs": epochs, "epoch_size": epoch_size, "batch_size": batch_size, "train_size": train_size,
               "validation_size": validation_size, "seed": seed, "optimiser": optimiser, "momentum": momentum,
               "weight_decay": weight_decay, "schedule": schedule}
    spec = network_spec(_build(network, images, seed))  # here, not in a worker: a bad network fails at once
    plan = Sweep(points=tuple(Point({"learning_rate": rate}) for rate in rates), metric="validation_accuracy",
                 source="tune")
    runner = partial(_train_one_rate, images, labels, options, network)  # forked workers inherit the images
    jobs = local_jobs(jobs, len(rates))
    with (LocalProcesses(jobs, {}, runner) if jobs > 1 else InThisProcess({}, runner)) as backend, \
            tqdm(total=len(rates), unit="rate", disable=not progress, leave=False) as bar:
        runs = run_sweep(plan, None, backend, on_record=lambda record: bar.update())
    failed = next((run for run in runs if run["status"] == "failed"), None)
    if failed is not None:
        raise ConfigError(f"learning rate {failed['options']['learning_rate']:g}: {failed['error']}")
    finals = [r["final"] for r in runs]
    candidates = [(-final, rate) for final, rate in zip(finals, rates, strict=True) if final is not None]
    return {
        "learning_rates": rates,
        "validation_accuracy": finals,
        "diverged": [r["diverged"] for r in runs],
        "best_learning_rate": min(candidates)[1] if candidates else None,
        "curves": [r["curve"] for r in runs],
        "network": spec,
        **options,
    }


def tuning_csv(result: dict[str, Any]) -> str:
    """One row per learning rate: whether it diverged, its final and per-epoch validation accuracy."""
    epochs = max((len(c) for c in result["curves"]), default=0)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["learning_rate", "diverged", "final_validation_accuracy", "best",
                     *(f"epoch_{e}" for e in range(1, epochs + 1))])
    for rate, final, diverged, curve in zip(result["learning_rates"], result["validation_accuracy"],
                                            result["diverged"], result["curves"], strict=True):
        writer.writerow([rate, diverged, "" if final is None else final, rate == result["best_learning_rate"],
                         *curve, *[""] * (epochs - len(curve))])
    return out.getvalue()


def overtrain(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    train_records: int = OVERTRAIN_RECORDS,
    validation_records: int = OVERTRAIN_VALIDATION,
    epochs: int = OVERTRAIN_EPOCHS,
    learning_rate: float = OVERTRAIN_LEARNING_RATE,
    seed: int = TRAINING.seed,
    network: NetworkOptions = NETWORK,
    batch_size: int = TRAINING.batch_size,
    optimiser: str = TRAINING.optimiser,
    momentum: float = TRAINING.momentum,
    weight_decay: float = TRAINING.weight_decay,
    schedule: str = TRAINING.schedule,
    progress: bool = False,
) -> dict[str, Any]:
    """Train on a fixed sample of ``train_records`` records for many epochs, one record per step by default.

    images: (N, H, W) uint8, labels: (N,). The validation sample is ``validation_records`` other
    records. Returns both accuracies and losses after every epoch: training soon reaches 100 % while
    validation stalls far below — the network memorises its few records instead of generalising —
    and the validation loss, after its minimum (``best_validation_loss`` at
    ``best_validation_loss_epoch``), rises. ``network`` and the optimiser's options as for ``tune``.
    ``progress``: a bar in epochs on stderr.
    """
    if train_records < 1 or validation_records < 1:
        raise ConfigError("overtraining needs at least one training and one validation record")
    if train_records + validation_records > len(images):
        raise ConfigError(f"{train_records} + {validation_records} records asked for, the data has {len(images)}")
    picked = np.random.default_rng(seed).choice(len(images), train_records + validation_records, replace=False)
    net = _build(network, images, seed)
    training = {"batch_size": batch_size, "optimiser": optimiser, "momentum": momentum, "weight_decay": weight_decay,
                "schedule": schedule}
    # One bar in epochs (fit's own counts records: 100 000 of them by default, too fine to read).
    with tqdm(total=epochs, unit="epoch", disable=not progress, leave=False, dynamic_ncols=True) as bar:
        history = fit(net, images[picked], labels[picked], learning_rate=learning_rate, epochs=epochs, **training,
                      validation_size=validation_records, seed=seed, on_epoch=lambda e: _show_epoch(bar, e))
    train = [e.train_accuracy for e in history.epochs]
    validation = [e.validation_accuracy for e in history.epochs]
    losses = [e.validation_loss for e in history.epochs]
    best = int(np.argmax(validation)) if validation else None
    lowest = int(np.argmin(losses)) if losses else None  # where overtraining starts: the loss rises after it
    return {
        "train_records": train_records, "validation_records": validation_records, "epochs": epochs,
        "learning_rate": learning_rate, "seed": seed, "network": network_spec(net), **training,
        "stopped": history.stopped,
        "train_accuracy": train, "validation_accuracy": validation,
        "train_loss": [e.train_loss for e in history.epochs],
        "validation_loss": losses,
        "first_epoch_train_100": next((i + 1 for i, a in enumerate(train) if a == 1.0), None),
        "best_validation_accuracy": None if best is None else validation[best],
        "best_validation_epoch": None if best is None else best + 1,
        "best_validation_loss": None if lowest is None else losses[lowest],
        "best_validation_loss_epoch": None if lowest is None else lowest + 1,
        "final_validation_accuracy": validation[-1] if validation else None,
    }


def _show_epoch(bar: tqdm, record: EpochRecord) -> None:
    """One more epoch on the bar, with that epoch's accuracies and validation loss beside it."""
    bar.update()
    bar.set_postfix(train=f"{record.train_accuracy:.3f}", val=f"{record.validation_accuracy:.3f}",
                    val_loss=f"{record.validation_loss:.3f}")
