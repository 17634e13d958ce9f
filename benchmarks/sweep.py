"""A sweep's wall time on each backend, and what each adds per point beyond the training itself.

Usage: python benchmarks/sweep.py [--data-dir DIR] [--epochs 5] [--seeds 4] [--backends loop,local,dask]

The study: the seed network at 8 learning rates × 3 batch sizes × --seeds seeds (96 points by default), --epochs
epochs each on the shared MNIST. Backends: "loop" (every point one after the other in this process),
"local" (one worker process per core, as `scratchcnn sweep` runs by default), "dask" (a dask.distributed
LocalCluster on 127.0.0.1, one single-threaded worker process per core). Overhead per point: the backend's
wall time × its workers, less the seconds the points spent in run_point (load, build, train, score),
divided by the points: hand-out, pickling, result transport, the client's writes. A benchmark: it
asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from scratchcnn.options import LEARNING_RATES
from scratchcnn.train.sweep_backends import DaskCluster, InThisProcess, LocalProcesses, local_jobs
from scratchcnn.train.sweep_run import run_sweep
from scratchcnn.train.sweep_spec import sweep_from_dict
from scratchcnn.train.sweep_store import SweepFolder
from scratchcnn.train.sweeps import data_directories

BATCH_SIZES = (1, 8, 32)


def backend_for(name: str, directories: dict[str, str], stack: Any) -> tuple[Any, int]:
    if name == "loop":
        return InThisProcess(directories), 1
    jobs = local_jobs(None, 10**6)
    if name == "local":
        return LocalProcesses(jobs, directories), jobs
    from distributed import LocalCluster

    cluster = stack.enter_context(LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                               host="127.0.0.1", dashboard_address=None))
    return DaskCluster(cluster.scheduler_address, directories), jobs


def measure(name: str, plan: Any, directories: dict[str, str]) -> dict[str, float]:
    from contextlib import ExitStack

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        backend, workers = backend_for(name, directories, stack)
        folder = SweepFolder(Path(tmp) / "sweep")
        with backend:
            start = time.perf_counter()
            records = run_sweep(plan, folder, backend)
            wall = time.perf_counter() - start
    inside = sum(record["seconds"] for record in records)
    return {"wall": wall, "workers": workers, "inside": inside,
            "overhead_ms": 1000 * (wall * workers - inside) / len(records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("SCRATCHCNN_DATA"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--backends", default="loop,local,dask")
    args = parser.parse_args()
    plan = sweep_from_dict({"epochs": args.epochs, "seeds": args.seeds,
                            "grid": {"learning_rate": list(LEARNING_RATES), "batch_size": list(BATCH_SIZES)}},
                           "benchmark")
    directories = data_directories(plan, args.data_dir, download=False)
    print(f"{len(plan.points)} points: the seed network, {len(LEARNING_RATES)} rates × {len(BATCH_SIZES)} batch "
          f"sizes × {args.seeds} seeds, {args.epochs} epochs each; {os.cpu_count()} CPUs")
    print("| backend | workers | wall s | Σ in points s | speed-up vs loop | overhead per point ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    loop_wall = None
    for name in args.backends.split(","):
        m = measure(name, plan, directories)
        loop_wall = m["wall"] if name == "loop" else loop_wall
        speed = f"{loop_wall / m['wall']:.2f}×" if loop_wall else "—"
        print(f"| {name} | {m['workers']} | {m['wall']:.1f} | {m['inside']:.1f} | {speed} | {m['overhead_ms']:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
