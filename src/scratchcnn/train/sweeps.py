"""``scratchcnn sweep``: run a study's points (sweep_spec.py) on a backend, then summarise and pick the best.

    from scratchcnn.train.sweeps import sweep
    result = sweep("study.toml", "runs/study")                  # local processes, one per core
    result = sweep("study.toml", "runs/study", scheduler="tcp://10.0.0.5:8786")   # a Dask cluster

Rerunning with the same folder runs only the points not yet in its sweep.jsonl. The best configuration
is chosen on validation records; with ``final`` it is trained once more on training + validation records
and tested, once, on the test set (a run folder: DIR/final/).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from scratchcnn.data import load_dataset
from scratchcnn.files import write_text_atomically
from scratchcnn.options import BUNDLED, SWEEP_RETRIES
from scratchcnn.train.runs import train_run
from scratchcnn.train.sweep_backends import DaskCluster, LocalProcesses, local_jobs
from scratchcnn.train.sweep_run import Runner, run_point, run_sweep
from scratchcnn.train.sweep_spec import Sweep, read_spec
from scratchcnn.train.sweep_store import SweepFolder
from scratchcnn.train.sweep_summary import best_row, summarise, summary_csv


def data_directories(sweep: Sweep, data_dir: str | os.PathLike | None, download: bool,
                     progress: bool = False) -> dict[str, str]:
    """Each dataset the sweep uses, found (or downloaded) once here: its folder, which workers read."""
    found = {}
    for name in sweep.datasets:
        data = load_dataset(name, data_dir, download=download, progress=progress)
        found[name] = "" if name in BUNDLED else str(Path(data.directory).resolve())
    return found


def sweep(spec: str | os.PathLike | Sweep, out: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
          download: bool = True, jobs: int | None = None, scheduler: str | None = None, retries: int = SWEEP_RETRIES,
          restart: bool = False, final: bool = False, progress: bool = False,
          warn: Callable[[str], None] = lambda message: None, runner: Runner = run_point) -> dict[str, Any]:
    """Run the sweep into folder ``out``; returns its summary (what ``sweep --json`` prints).

    ``jobs``: local worker processes (default: one per CPU); ``scheduler``: a Dask scheduler's address
    instead. ``retries``: how often a point whose worker died runs again before it is recorded as failed.
    ``restart``: forget the folder's finished points first. ``runner``: what trains a point (tests swap it).
    """
    plan = spec if isinstance(spec, Sweep) else read_spec(spec)
    folder = SweepFolder(out)
    if restart:
        folder.restart()
    directories = data_directories(plan, data_dir, download, progress)
    done = {record["key"] for record in folder.read(warn)}
    left = sum(point.key not in done for point in plan.points)
    if scheduler:
        backend: Any = DaskCluster(scheduler, directories, runner)
    else:
        backend = LocalProcesses(local_jobs(jobs, left), directories, runner)
    with backend, tqdm(total=len(plan.points), initial=len(plan.points) - left, unit="point", leave=False,
                       disable=not progress, dynamic_ncols=True) as bar:
        records = run_sweep(plan, folder, backend, retries=retries, on_record=lambda record: bar.update(),
                            warn=warn)
    return summarise_folder(plan, folder, records, final=final, data_dir=data_dir, download=download,
                            progress=progress)


def summarise_folder(plan: Sweep, folder: SweepFolder, records: list[dict[str, Any]], *, final: bool = False,
                     data_dir: str | os.PathLike | None = None, download: bool = True,
                     progress: bool = False) -> dict[str, Any]:
    """Write summary.csv and best.json from the records (and train the final run if asked); the summary."""
    rows = summarise(records)
    best = best_row(rows, plan.metric)
    result = {
        "spec": plan.source, "folder": str(folder.path), "metric": plan.metric, "points": len(records),
        "ok": sum(r["status"] == "ok" for r in records),
        "diverged": sum(r["status"] == "diverged" for r in records),
        "failed": sum(r["status"] == "failed" for r in records),
        "configurations": rows, "best": best, "final": None,
    }
    write_text_atomically(folder.summary, summary_csv(rows))
    if final and best is not None:
        result["final"] = final_run(best, folder, data_dir=data_dir, download=download, progress=progress)
    write_text_atomically(folder.best, json.dumps({key: result[key] for key in ("metric", "best", "final")},
                                                  indent=2) + "\n")
    return result


def final_run(best: dict[str, Any], folder: SweepFolder, *, data_dir: str | os.PathLike | None = None,
              download: bool = True, progress: bool = False) -> dict[str, Any]:
    """The best configuration trained on its training and validation records, then tested once (DIR/final/).

    Already there from an earlier call with the same configuration: read, not trained again.
    """
    given = {**best["configuration"], "validation_size": 0, "seed": best["seeds"][0]}
    summary_file = folder.final / "history.json"
    if summary_file.exists():
        summary = json.loads(summary_file.read_text())
        if summary.get("options", {}) | given == summary.get("options"):
            return _final_fields(summary)
    summary = train_run(given, folder.final, data_dir=data_dir, download=download, overwrite=True, progress=progress)
    return _final_fields(summary)


def _final_fields(summary: dict[str, Any]) -> dict[str, Any]:
    return {"test_accuracy": summary["test_accuracy"], "test_loss": summary["test_loss"],
            "model": summary["model"], "options": summary["options"]}
