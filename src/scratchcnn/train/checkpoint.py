"""Checkpoints: a training run saved after each epoch, so that a crash loses at most one epoch.

A checkpoint is one .npz written atomically: the parameters (f, W, b), the record order of the
current pass, the optimiser's buffers (momentum's velocity, Adam's averages: "optimiser.<buffer>.<parameter>"),
and a JSON header holding the model's own header, the training options, the epoch, the number of SGD
steps, the optimiser's settings and step count, the random generator's state and the history so far.
Resuming from it reproduces the uninterrupted run bit for bit.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from scratchcnn.errors import ModelFileError
from scratchcnn.nn import network
from scratchcnn.nn.network import Network
from scratchcnn.nn.npzfile import Expected, read_json_header, read_npz, write_npz
from scratchcnn.options import whole_number
from scratchcnn.train.sgd import EpochRecord, History, TrainState

CHECKPOINT_FORMAT = "scratchcnn.Checkpoint"
CHECKPOINT_VERSION = 1


OPTIMISER = "optimiser."  # the prefix of the optimiser's buffers among the arrays


def save_checkpoint(path: str | os.PathLike, net: Network, state: TrainState, options: dict[str, Any]) -> Path:
    """Write net, state and the run's options (JSON-able) to ``path`` atomically."""
    optimiser = dict(state.optimiser or {})
    buffers = optimiser.pop("buffers", {})
    header = {
        "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
        "model": net.header(), "options": options,
        "epoch": state.epoch, "step": state.step, "position": state.position,
        "rng_state": state.rng_state,
        "history": {"epochs": [asdict(e) for e in state.history.epochs], "stopped": state.history.stopped},
        "optimiser": dict(optimiser, buffers=sorted(buffers)) if state.optimiser is not None else None,
    }
    arrays = dict(net.parameters(), order=state.order) | {OPTIMISER + key: b for key, b in buffers.items()}
    return write_npz(path, arrays, header, "checkpoint")


def load_checkpoint(path: str | os.PathLike) -> tuple[Network, TrainState, dict[str, Any]]:
    """Read a checkpoint: (network, training state, options). ModelFileError for anything amiss."""
    where = str(path)
    arrays = read_npz(path, "checkpoint", lambda raw: _expected_arrays(raw, where))
    header = read_json_header(arrays.pop("header", None), where, CHECKPOINT_FORMAT, CHECKPOINT_VERSION,
                              ("model", "options", "history", "rng_state"))
    order = arrays.pop("order", None)
    buffers = {key.removeprefix(OPTIMISER): arrays.pop(key) for key in list(arrays) if key.startswith(OPTIMISER)}
    arrays["header"] = np.array(json.dumps(header["model"]))
    net = network.from_arrays(arrays, where)
    try:
        history = History([_epoch_record(e) for e in header["history"]["epochs"]], header["history"]["stopped"])
        epoch, step, position = (whole_number(key, header[key]) for key in ("epoch", "step", "position"))
        optimiser = header.get("optimiser")  # absent from checkpoints older than the optimisers: plain SGD
        optimiser = None if optimiser is None else dict(optimiser, buffers=buffers)
        state = TrainState(epoch, step, header["rng_state"], order, position, history, optimiser)
        np.random.default_rng().bit_generator.state = state.rng_state  # refuses a malformed state
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise ModelFileError(f"{where}: damaged training state in header ({type(error).__name__}: {error})") from None
    options = header["options"]  # the caller's own record: save_checkpoint stores it as given
    if order is None or order.ndim != 1 or order.dtype.kind not in "iu":
        raise ModelFileError(f"{where}: no valid record order")
    if not np.array_equal(np.sort(order), np.arange(len(order))) or not 0 <= state.position <= len(order):
        raise ModelFileError(f"{where}: record order is not a permutation of the training records")
    if state.epoch != len(history.epochs):
        raise ModelFileError(f"{where}: epoch {state.epoch} disagrees with its {len(history.epochs)}-epoch history")
    return net, state, options


def _expected_arrays(raw_header: np.ndarray | None, where: str) -> dict[str, Expected]:
    """{name: (dtype, shape)} a checkpoint's header promises: the model's parameters, and order (n,) int64.

    The number n of training records is not in the header: read_npz caps it.
    """
    header = read_json_header(raw_header, where, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, ("model",))
    model = network.expected_arrays(np.array(json.dumps(header["model"])), where)
    buffers = (header.get("optimiser") or {}).get("buffers", [])
    if not isinstance(buffers, list) or not all(isinstance(key, str) for key in buffers):
        raise ModelFileError(f"{where}: damaged optimiser state in header")
    expected = dict(model, order=(np.dtype(np.int64), (None,)))  # rng.permutation's dtype
    for key in buffers:  # "<buffer>.<parameter>": shaped like its parameter
        parameter = key.partition(".")[2]
        if parameter not in model:
            raise ModelFileError(f"{where}: optimiser buffer {key!r} is for no parameter of the model")
        expected[OPTIMISER + key] = model[parameter]
    return expected


def _epoch_record(fields: Any) -> EpochRecord:
    """An EpochRecord from JSON, refusing values of the wrong kind (they would break reports later)."""
    record = EpochRecord(**fields)
    for name, value in vars(record).items():
        optional = name.startswith("validation_")
        if not (optional and value is None) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise TypeError(f"history field {name} is {value!r}, not a number")
    return record
