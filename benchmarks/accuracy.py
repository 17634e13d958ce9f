"""Test accuracy of the presets with their documented defaults (a benchmark, not a test: minutes to hours).

Usage: python benchmarks/accuracy.py [--runs seed:data,lenet:data-full,...] [--shared DIR] [--out DIR]

Each run is ``scratchcnn train --arch ARCH --data-dir DIR --dataset NAME --json`` in its own process;
prints a Markdown table: test accuracy, epochs, seconds per epoch, whole-process seconds and peak RSS
(from the OS, as /usr/bin/time -v reports it). ``data`` is the shared 10 000-record MNIST (9 000
training records after the validation split), ``data-full`` the complete MNIST; ``fashion`` the
complete Fashion-MNIST in the shared data folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FOLDERS = {"data": ("data", "mnist"), "data-full": ("data-full", "mnist"), "fashion": ("data", "fashion-mnist")}
DEFAULT_RUNS = "seed:data,wide:data,lenet:data,seed:data-full,lenet:data-full,seed:fashion,lenet:fashion"


def run(arch: str, where: str, shared: Path, out: Path) -> dict[str, object]:
    folder, dataset = FOLDERS[where]
    command = [sys.executable, "-m", "scratchcnn", "train", "--arch", arch, "--data-dir", str(shared / folder),
               "--dataset", dataset, "--out", str(out / f"{arch}-{where}"), "--json"]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, as /usr/bin/time -v reports it
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        stdout.seek(0), stderr.seek(0)
        out, err = stdout.read(), stderr.read()
    if proc.returncode != 0:
        return {"arch": arch, "data": where, "error": err.strip().splitlines()[-1:]}
    summary = json.loads(out.strip().splitlines()[-1])
    return {"arch": arch, "data": f"{dataset} ({folder})", "test_accuracy": summary["test_accuracy"],
            "epochs": summary["epochs"], "seconds_per_epoch": summary["seconds_per_epoch"],
            "seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024}  # KB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=DEFAULT_RUNS, help=f"ARCH:DATA,... (default: {DEFAULT_RUNS})")
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared",
                        help="the folder holding data/ and data-full/ (default: ../shared)")
    parser.add_argument("--out", type=Path, help="where the runs go (default: a temporary folder)")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print("| arch | data | test accuracy | epochs | s/epoch | whole run s | peak RSS MB |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        for item in args.runs.split(","):
            arch, where = item.split(":")
            r = run(arch, where, args.shared, out)
            if "error" in r:
                print(f"| {arch} | {where} | failed: {r['error']} | | | | |", flush=True)
                continue
            rss = f"{r['peak_rss_mb']:.0f}"
            print(f"| {r['arch']} | {r['data']} | {r['test_accuracy']:.4f} | {r['epochs']} | "
                  f"{r['seconds_per_epoch']:.2f} | {r['seconds']:.0f} | {rss} |", flush=True)


if __name__ == "__main__":
    main()
