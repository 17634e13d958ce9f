"""Running a sweep's points: one point in a worker (``run_point``), and the loop that hands points out.

A point trains exactly as ``scratchcnn train`` with the same options trains (the same network, seed,
split and epochs: the same numbers), but is scored on its validation records only: the test set is kept
for the one configuration a sweep picks (``--final``). Points run on a backend (sweep_backends.py): local
processes, or the workers of a Dask cluster. The client alone writes sweep.jsonl, one line per point as
it finishes: a point is recorded once however often it ran.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from scratchcnn.data import load_dataset
from scratchcnn.data.datasets import Dataset
from scratchcnn.errors import ScratchCNNError, first_line
from scratchcnn.nn.network import build_network
from scratchcnn.options import SWEEP_RETRIES
from scratchcnn.train.runs import resolved
from scratchcnn.train.sgd import fit
from scratchcnn.train.sweep_spec import Point, Sweep, point_key
from scratchcnn.train.sweep_store import SweepFolder

Runner = Callable[[dict[str, Any], dict[str, str]], dict[str, Any]]

_DATA: dict[tuple[str, str], Dataset] = {}  # a worker's datasets, loaded once however many points it runs


def dataset(name: str, directory: str) -> Dataset:
    """The dataset, loaded once per process (a worker keeps it for all its points)."""
    if (name, directory) not in _DATA:
        _DATA[name, directory] = load_dataset(name, directory or None, download=False)
    return _DATA[name, directory]


def run_point(options: dict[str, Any], directories: dict[str, str]) -> dict[str, Any]:
    """Train one point; its record (without ``attempts``, which the client counts).

    ``directories``: each dataset's folder as the client found it (the workers read the same files).
    """
    start = time.perf_counter()
    run = resolved(options)  # as train resolves them
    data = dataset(run.dataset, directories.get(run.dataset, ""))
    net = build_network(run.network, input_shape=data.train_images.shape[1:], seed=run.seed)
    history = fit(net, data.train_images, data.train_labels, **asdict(run.training))
    last = history.epochs[-1] if history.epochs else None
    return {
        "key": point_key(options), "options": options,
        "status": "diverged" if history.stopped else "ok",
        "diverged_in_epoch": len(history.epochs) + 1 if history.stopped else None,
        "validation_accuracy": last and last.validation_accuracy,
        "validation_loss": last and last.validation_loss,
        "train_accuracy": last and last.train_accuracy,
        "epochs": [asdict(e) for e in history.epochs],
        "seconds_per_epoch": sum(e.seconds for e in history.epochs) / len(history.epochs) if last else None,
        "seconds": time.perf_counter() - start,
        "compile_seconds": history.compile_seconds,
        "engine": history.engine, "host": socket.gethostname(), "pid": os.getpid(),
    }


def work(options: dict[str, Any], directories: dict[str, str], runner: Runner = run_point) -> tuple[str, Any]:
    """What a worker runs: ("done", record), or ("error", one line) when the point cannot run (bad input)."""
    try:
        return "done", runner(options, directories)
    except ScratchCNNError as error:
        return "error", first_line(error)
    except (ArithmeticError, ValueError, MemoryError, OSError) as error:  # e.g. an unreadable data file
        return "error", f"{type(error).__name__}: {first_line(error)}"


def failed_record(point: Point, reason: str, attempts: int) -> dict[str, Any]:
    return {"key": point.key, "options": point.options, "status": "failed", "error": reason,
            "validation_accuracy": None, "validation_loss": None, "train_accuracy": None, "epochs": [],
            "attempts": attempts}


def run_sweep(sweep: Sweep, folder: SweepFolder | None, backend: Any, *, retries: int = SWEEP_RETRIES,
              on_record: Callable[[dict[str, Any]], None] = lambda record: None,
              warn: Callable[[str], None] = lambda message: None) -> list[dict[str, Any]]:
    """Run the points of ``sweep`` not yet in ``folder`` on ``backend``; every point's record, in spec order.

    A point whose worker dies is run again, up to ``retries`` more times, then recorded as failed with the
    reason; a point that cannot run (bad input) is recorded as failed at once. ``on_record`` sees each
    record as it is written (a progress bar). ``folder`` None: nothing is read or written (``tune``).
    """
    finished = {record["key"]: record for record in folder.read(warn)} if folder else {}
    todo = [point for point in sweep.points if point.key not in finished]
    attempts = dict.fromkeys((point.key for point in todo), 0)
    for point in todo:
        backend.submit(point)
        attempts[point.key] = 1
    while backend.pending():
        point, (outcome, value) = backend.next()
        if outcome == "lost" and attempts[point.key] <= retries:
            warn(f"point {point.key} lost its worker ({value}); running it again")
            attempts[point.key] += 1
            backend.submit(point)
            continue
        if outcome == "done":
            record = {**value, "attempts": attempts[point.key]}
        else:
            died = f"its worker died {attempts[point.key]} times; last: {value}" if outcome == "lost" else value
            record = failed_record(point, died, attempts[point.key])
        if folder:
            folder.append(record)
        finished[point.key] = record
        on_record(record)
    return [finished[point.key] for point in sweep.points]
