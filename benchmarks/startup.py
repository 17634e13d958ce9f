"""Our commands as whole processes: wall time and peak memory, as a Markdown table for the README.

Usage: python benchmarks/startup.py [--runs 5] [--data-dir DIR] [--only SUBSTRING] [--skip-torch] [--json]

A benchmark, not a test: it asserts nothing. Each row runs its command as a child process, one at a time:
once to warm the caches, then --runs timed runs (3 when the warm-up took over 60 s). Wall time runs from
just before the process is started until os.wait4 has reaped it; peak RSS is that child's ru_maxrss from
wait4. Linux counts a parent's own peak into its child's ru_maxrss (the child's exec starts from the
parent's memory), so this script imports nothing big itself and makes its pictures in a child; it prints
that floor (what a child running `true` reports). Children get PYTHONUNBUFFERED=1, so a line reaches
the pipe when printed, as in a terminal, and NUMBA_CACHE_DIR and SCRATCHCNN_CACHE in the temporary folder:
warmed by the warm-up run, and empty and fresh for the first-`make demo` row.

The PyTorch anchor (run as `python benchmarks/startup.py --torch-anchor DATA_DIR`) trains the write-up's
network as `scratchcnn train --learning-rate 0.003 --epochs 3` trains ours, without importing scratchcnn.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ACCURACY = re.compile(r"test accuracy (\d+\.\d+)")
PYTHON_WARNING = re.compile(r"\b\w*Warning\b")
SLOW_SECONDS, SLOW_RUNS = 60.0, 3  # a warm-up slower than SLOW_SECONDS: at most SLOW_RUNS timed runs


class SetupError(Exception):
    """The benchmark cannot start: reported as one line, exit status 2."""


@dataclass
class Sample:
    seconds: float  # wall time, start to exit (summed over a row's processes)
    rss_mb: float  # peak RSS (the largest of a row's processes)
    status: int  # exit status (the first non-zero one of a row's processes)
    stdout: str
    stderr: str
    accuracy_line_s: float | None = None  # start until the "test accuracy" line appeared on stdout


@dataclass
class Row:
    name: str
    commands: Callable[[], list[list[str]]]  # the processes of one run, run one after the other
    note: Callable[[list[Sample]], str] = lambda samples: ""
    warm_up: bool = True
    fresh_caches: bool = False  # empty NUMBA_CACHE_DIR and SCRATCHCNN_CACHE for every run
    single: bool = False  # one run whatever --runs says


def run_process(argv: list[str], env: dict[str, str]) -> Sample:
    """Run argv as a child, read its stdout line by line (timestamping the accuracy line), reap it with wait4."""
    with tempfile.TemporaryFile() as stderr:
        began = time.perf_counter()
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, env=env, text=True, errors="replace")
        lines, accuracy_at = [], None
        for line in child.stdout:
            if accuracy_at is None and "test accuracy" in line:
                accuracy_at = time.perf_counter() - began
            lines.append(line)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        child.stdout.close()
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
    return Sample(seconds, usage.ru_maxrss / 1024, child.returncode, "".join(lines), errors, accuracy_at)


def run_row_once(row: Row, env: dict[str, str], folder: Path) -> Sample:
    if row.fresh_caches:
        caches = Path(tempfile.mkdtemp(dir=folder, prefix="empty-caches-"))
        env = dict(env, NUMBA_CACHE_DIR=str(caches / "numba"), SCRATCHCNN_CACHE=str(caches / "scratchcnn"))
    parts = [run_process(argv, env) for argv in row.commands()]
    return Sample(seconds=sum(p.seconds for p in parts), rss_mb=max(p.rss_mb for p in parts),
                  status=next((p.status for p in parts if p.status), 0), stdout="".join(p.stdout for p in parts),
                  stderr="".join(p.stderr for p in parts),
                  accuracy_line_s=next((p.accuracy_line_s for p in parts if p.accuracy_line_s), None))


def measure(row: Row, runs: int, env: dict[str, str], folder: Path) -> dict:
    """One row of the table: median, min and max of wall time (s) and peak RSS (MB) over the timed runs."""
    warm = run_row_once(row, env, folder) if row.warm_up else None
    if row.single:
        runs = 1
    elif warm is not None and warm.seconds > SLOW_SECONDS:
        runs = min(runs, SLOW_RUNS)
    print(f"  {row.name}: {runs} run(s)", file=sys.stderr, flush=True)
    samples = [run_row_once(row, env, folder) for _ in range(runs)]
    seconds, rss = [s.seconds for s in samples], [s.rss_mb for s in samples]
    notes = [row.note(samples), failure_note(samples), "one run, no warm-up" if row.single else "",
             f"{runs} runs (over {SLOW_SECONDS:.0f} s each)" if warm and warm.seconds > SLOW_SECONDS else ""]
    return {"command": row.name, "runs": runs, "seconds": seconds, "median_s": statistics.median(seconds),
            "min_s": min(seconds), "max_s": max(seconds), "rss_mb": rss, "rss_mb_median": statistics.median(rss),
            "rss_mb_min": min(rss), "rss_mb_max": max(rss), "statuses": [s.status for s in samples],
            "note": "; ".join(n for n in notes if n), "last_stderr": samples[-1].stderr[-2000:]}


def failure_note(samples: list[Sample]) -> str:
    """The exit status and last line of stderr of the first failed run, if any."""
    failed = next((s for s in samples if s.status), None)
    last = (failed.stderr.strip().splitlines() or ["(no stderr)"])[-1] if failed else ""
    last = re.sub(r"\S*scratchcnn-startup-\w+/", "", last)  # the temporary folder's name says nothing
    last = last if len(last) <= 120 else last[:119] + "…"
    return f"exit {failed.status}: {last}" if failed else ""


def accuracies(samples: list[Sample]) -> str:
    found = sorted({m.group(1) for s in samples for m in ACCURACY.finditer(s.stdout)})
    return " ".join(found) or "none printed"


def accuracy_note(samples: list[Sample]) -> str:
    return f"test accuracy {accuracies(samples)} (target ≥ 0.90)"


def accuracy_line_note(samples: list[Sample]) -> str:
    times = [s.accuracy_line_s for s in samples if s.accuracy_line_s is not None]
    when = f"{statistics.median(times):.2f} s" if times else "never"
    return f'"test accuracy" line at {when} (median); test accuracy {accuracies(samples)}'


def prediction_note(samples: list[Sample]) -> str:
    found = sorted({m.group(1) for s in samples for m in re.finditer(r": (\d) ", s.stdout)})
    return f"predicted {' '.join(found) or 'nothing'}"


def huge_picture_note(samples: list[Sample]) -> str:
    """The target: answered in ≤ 1.5 s and ≤ 300 MB, or refused at once with one line; never a Python warning."""
    statuses = sorted({s.status for s in samples})
    lines = max(len(s.stderr.strip().splitlines()) for s in samples)
    warned = any(PYTHON_WARNING.search(s.stderr) for s in samples)
    fast = statistics.median(s.seconds for s in samples) <= 1.5
    answered = statuses == [0] and fast and max(s.rss_mb for s in samples) <= 300
    refused = 0 not in statuses and lines == 1 and fast
    verdict = "target met" if (answered or refused) and not warned else "target missed"
    outcome = f"answered ({prediction_note(samples)})" if 0 in statuses else "refused"
    more = "more than one line" if lines > 1 else f"{lines} line(s)"
    return f"{outcome}, stderr {more}{', Python warning text' if warned else ''}: {verdict}"


def cli_command() -> list[str]:
    """The scratchcnn script beside this Python (the virtualenv's), else python -m scratchcnn."""
    script = shutil.which("scratchcnn", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "scratchcnn"]


def build_rows(tmp: Path, data: Path, skip_torch: bool) -> list[Row]:
    cli = cli_command()
    run, pictures, counter = tmp / "run", tmp / "pictures", itertools.count()
    model, data_dir = str(run / "model.npz"), ["--data-dir", str(data)]

    def fresh(stem: str) -> str:
        return str(tmp / f"{next(counter)}-{stem}")

    def same(*argv: str) -> Callable[[], list[list[str]]]:
        return lambda: [list(argv)]

    def train(*flags: str) -> Callable[[], list[list[str]]]:
        return lambda: [[*cli, "train", *flags, *data_dir, "--out", fresh("train")]]

    def first_demo() -> list[list[str]]:
        demo = fresh("demo")  # as `make demo`: the data found through $SCRATCHCNN_DATA
        return [[*cli, "train", "--out", demo], [*cli, "report", demo]]

    rows = [
        Row("`scratchcnn --help`", same(*cli, "--help")),
        Row("`scratchcnn train --help`", same(*cli, "train", "--help")),
        Row("`train --epochs 1`", train("--epochs", "1"), accuracy_line_note),
        Row("`train --learning-rate 0.003 --epochs 3`", train("--learning-rate", "0.003", "--epochs", "3"),
            accuracy_note),
        Row("`train` (defaults)", train()),
        Row("`train --arch wide --epochs 1`", train("--arch", "wide", "--epochs", "1")),
        Row("`train --arch lenet --epochs 1`", train("--arch", "lenet", "--epochs", "1")),
        Row("`evaluate MODEL`", same(*cli, "evaluate", model, *data_dir)),
        Row("`explore MODEL --out x.html`", lambda: [[*cli, "explore", model, *data_dir, "--out", fresh("x.html")]]),
        Row("`predict MODEL photo.jpg` (4000×3000 JPEG)", same(*cli, "predict", model, str(pictures / "photo.jpg")),
            prediction_note),
        Row("`predict MODEL huge.png` (12 000×12 000 PNG)", same(*cli, "predict", model, str(pictures / "huge.png")),
            huge_picture_note),
        Row("`report RUN`", same(*cli, "report", str(run), *data_dir)),
        Row("first `make demo`: `train` + `report`, empty caches", first_demo, warm_up=False, fresh_caches=True,
            single=True),
        Row('`python -c "import numpy"`', same(sys.executable, "-c", "import numpy")),
    ]
    if not skip_torch:
        rows += [Row('`python -c "import torch"`', same(sys.executable, "-c", "import torch")),
                 Row("PyTorch: the same network and recipe as `train --learning-rate 0.003 --epochs 3`",
                     same(sys.executable, __file__, "--torch-anchor", str(data)), accuracy_note)]
    return rows


def set_up(rows: list[Row], tmp: Path, env: dict[str, str], data: Path) -> None:
    """Train the model that evaluate, explore, predict and report use; draw predict's pictures."""
    steps = []
    if any(word in row.name for row in rows for word in ("MODEL", "RUN")):
        steps.append([*cli_command(), "train", "--epochs", "1", "--out", str(tmp / "run"), "--data-dir", str(data)])
    if any("predict" in row.name for row in rows):
        steps.append([sys.executable, __file__, "--make-pictures", str(tmp / "pictures")])
    for argv in steps:
        done = run_process(argv, env)
        if done.status:
            raise SetupError(f"set-up failed ({' '.join(argv[-4:])}): {failure_note([done])}")


def make_pictures(folder: Path) -> None:
    """photo.jpg: a 4000×3000 photo of a dark 7 on light, slightly noisy paper; huge.png: 12 000² white, a 7."""
    from PIL import Image, ImageDraw

    def draw_seven(picture: Image.Image, cx: int, cy: int, size: int, ink: int) -> None:
        top, bottom = cy - size * 3 // 5, cy + size * 3 // 5
        points = [(cx - size // 2, top), (cx + size // 2, top), (cx - size // 10, bottom)]
        ImageDraw.Draw(picture).line(points, fill=ink, width=size // 6, joint="curve")

    folder.mkdir(parents=True)
    paper = Image.effect_noise((4000, 3000), 10).point(lambda v: min(255, v + 95))  # Gaussian, mean ~223
    draw_seven(paper, 2000, 1500, 1200, ink=50)
    tinted = Image.merge("RGB", (paper, paper.point(lambda v: max(0, v - 6)), paper.point(lambda v: max(0, v - 14))))
    tinted.save(folder / "photo.jpg", quality=90)
    huge = Image.new("L", (12_000, 12_000), 255)
    draw_seven(huge, 6000, 6000, 1500, ink=20)
    huge.save(folder / "huge.png")


def torch_anchor(data_dir: Path) -> None:
    """The write-up's network in PyTorch: conv 3@3×3 (cross-correlation, zero padding bottom/right only, no
    bias), decimation Z = Y[:, :, ::2, ::2], dense 10×588 without bias, softmax cross-entropy; plain SGD one
    record at a time, η 0.003, 3 epochs over the first 9 000 training records, each epoch in an order from a
    seeded shuffle; prints the test accuracy on the 10 000 test images."""
    import gzip
    import struct

    import numpy as np
    import torch

    torch.set_num_threads(1)  # a one-record step is too small to share: two threads took twice as long here
    functional = torch.nn.functional
    folder = data_dir / "mnist" if (data_dir / "mnist").is_dir() else data_dir

    def idx(name: str) -> np.ndarray:
        with gzip.open(folder / name, "rb") as fh:
            raw = fh.read()
        dims = raw[3]
        shape = struct.unpack(f">{dims}I", raw[4 : 4 + 4 * dims])
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)

    def pixels(images: np.ndarray) -> torch.Tensor:  # (N, 28, 28) uint8 -> (N, 1, 28, 28) in [0, 1]
        return torch.from_numpy(images.astype(np.float32) / 255)[:, None]

    train_x, train_y = pixels(idx("train-images-idx3-ubyte.gz")[:9000]), idx("train-labels-idx1-ubyte.gz")[:9000]
    torch.manual_seed(0)
    f = ((torch.rand(3, 1, 3, 3) * 2 - 1) / 3).requires_grad_()  # uniform ±1/√fan_in
    W = ((torch.rand(10, 588) * 2 - 1) / 588**0.5).requires_grad_()

    def scores(x: torch.Tensor) -> torch.Tensor:  # (N, 1, 28, 28) -> (N, 10)
        Y = functional.conv2d(functional.pad(x, (0, 2, 0, 2)), f)  # (N, 3, 28, 28)
        return Y[:, :, ::2, ::2].flatten(1) @ W.T

    optimiser = torch.optim.SGD([f, W], lr=0.003)
    labels, order = torch.from_numpy(train_y.astype(np.int64)), np.random.default_rng(0)
    for _ in range(3):
        for i in order.permutation(len(train_y)).tolist():
            loss = functional.cross_entropy(scores(train_x[i : i + 1]), labels[i : i + 1])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        predicted = scores(pixels(idx("t10k-images-idx3-ubyte.gz"))).argmax(1).numpy()
    print(f"test accuracy {(predicted == idx('t10k-labels-idx1-ubyte.gz')).mean():.4f}")


def find_data(given: str | None) -> Path:
    """--data-dir, else the first of $SCRATCHCNN_DATA and ../shared/data (from the repository's root) that exists."""
    candidates = [given] if given else [os.environ.get("SCRATCHCNN_DATA"), str(REPO.parent / "shared" / "data")]
    for candidate in filter(None, candidates):
        if Path(candidate).expanduser().is_dir():
            return Path(candidate).expanduser().resolve()
    raise SetupError(f"no data folder: pass --data-dir DIR or set SCRATCHCNN_DATA (looked in {candidates})")


def machine() -> dict[str, str]:
    """CPU model, cores, versions (read from the installed metadata, not imported: this process stays small)."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    cpu = models[0] if models else platform.processor() or platform.machine()

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {"cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version(),
            "numpy": version("numpy"), "torch": version("torch"),
            "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def table(results: list[dict], floor_mb: float) -> str:
    """The Markdown table; an RSS at the floor (this script's own peak) reads "≤ floor": the child's may be less."""
    def rss(mb: float) -> str:
        return f"≤ {floor_mb:.0f}" if mb <= floor_mb + 1 else f"{mb:.0f}"

    lines = ["| command | median s | min–max s | peak RSS MB | note |", "| --- | ---: | ---: | ---: | --- |"]
    lines += [f"| {r['command']} | {r['median_s']:.2f} | {r['min_s']:.2f}–{r['max_s']:.2f} | {rss(r['rss_mb_median'])} "
              f"| {r['note']} |" for r in results]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per row (default: 5)")
    parser.add_argument("--data-dir", help="the data folder (default: $SCRATCHCNN_DATA, else ../shared/data)")
    parser.add_argument("--only", help="run only the rows whose command contains this (case-insensitive)")
    parser.add_argument("--skip-torch", action="store_true", help="leave out the PyTorch rows")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--torch-anchor", metavar="DATA_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--make-pictures", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_anchor:
        return torch_anchor(Path(args.torch_anchor))
    if args.make_pictures:
        return make_pictures(Path(args.make_pictures))
    try:
        data = find_data(args.data_dir)
        with tempfile.TemporaryDirectory(prefix="scratchcnn-startup-") as name:
            tmp = Path(name)
            env = dict(os.environ, PYTHONUNBUFFERED="1", SCRATCHCNN_DATA=str(data),
                       NUMBA_CACHE_DIR=str(tmp / "numba-cache"), SCRATCHCNN_CACHE=str(tmp / "scratchcnn-cache"))
            rows = [row for row in build_rows(tmp, data, args.skip_torch)
                    if not args.only or args.only.lower() in row.name.lower()]
            if not rows:
                raise SetupError(f"no row's command contains {args.only!r}")
            about = machine()
            if not args.json:
                print(f"{about['cpu']}, {about['cores']} cores, load average {about['load_average']}; Python "
                      f"{about['python']}, NumPy {about['numpy']}, torch {about['torch']}; data {data}; median of "
                      f"{args.runs} runs after a warm-up\n", flush=True)
            set_up(rows, tmp, env, data)
            results = [measure(row, args.runs, env, tmp) for row in rows]
            floor_mb = run_process(["true"], env).rss_mb  # this script's own peak, now that it is largest
    except SetupError as error:
        print(f"startup.py: {error}", file=sys.stderr)
        sys.exit(2)
    if args.json:
        print(json.dumps({"machine": about, "data": str(data), "runs": args.runs, "rss_floor_mb": floor_mb,
                          "load_average_at_end": os.getloadavg(), "rows": results}))
    else:
        print(table(results, floor_mb))
        print(f"\nRSS floor {floor_mb:.0f} MB: what a child running `true` reports (Linux counts this script's own "
              f"peak into each child's); load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
