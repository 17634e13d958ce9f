"""``scratchcnn sweep`` end to end and under faults, on real MNIST: a Dask cluster gives the numbers local
processes give (and ``scratchcnn train`` gives); a worker killed mid-point is run again (or recorded as
failed); a client killed, interrupted or stopped mid-write continues where it was, each point once.

Real subprocesses (``python -m scratchcnn``) and a real ``distributed.LocalCluster`` on 127.0.0.1.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import skip_or_fail

from scratchcnn.train.sweep_run import run_point
from scratchcnn.train.sweep_spec import point_key, read_spec
from scratchcnn.train.sweeps import sweep

NO_SECONDS = ("epoch", "records", "train_accuracy", "train_loss", "validation_accuracy", "validation_loss")
# 12 points (3 learning rates x 2 networks x 2 seeds), ~0.1 s each once a worker has compiled its kernels.
STUDY = """epochs = 1\ntrain_size = 1000\nvalidation_size = 200\nseeds = 2
[grid]\nlearning_rate = [0.001, 0.003, 0.01]\narch = ["seed", "wide"]\n"""
SMALL = """epochs = 1\ntrain_size = 600\nvalidation_size = 200\nseeds = 2
[grid]\nlearning_rate = [0.001, 0.01]\n"""  # 4 points
# 8 points of ~0.8 s each (wide, 1 500 records): time to stop a sweep part-way.
SLOW = """arch = "wide"\nepochs = 1\ntrain_size = 1500\nvalidation_size = 200\nseeds = 4
[grid]\nlearning_rate = [0.003, 0.01]\n"""

# What killing_runner reads: the point to kill the first time (then write the marker file), the point to kill always.
KILL_ONCE, KILL_ALWAYS = "SCRATCHCNN_TEST_KILL_ONCE", "SCRATCHCNN_TEST_KILL_ALWAYS"
KILL_MARKER = "SCRATCHCNN_TEST_MARKER"


def killing_runner(options: dict[str, Any], directories: dict[str, str]) -> dict[str, Any]:
    """run_point, except that the worker given the point named by $KILL_ONCE (the first time only) or
    $KILL_ALWAYS kills its own process with SIGKILL, as the kernel's OOM killer would."""
    key = point_key(options)
    if key == os.environ.get(KILL_ALWAYS) or (key == os.environ.get(KILL_ONCE) and first_time()):
        os.kill(os.getpid(), signal.SIGKILL)
    return run_point(options, directories)


def first_time() -> bool:
    """True for the first process to get here: it creates $KILL_MARKER, holding its pid."""
    try:
        fd = os.open(os.environ[KILL_MARKER], os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


# ---- helpers -----------------------------------------------------------------------------------


def spec_file(folder: Path, text: str, name: str = "study.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def command(spec: Path, out: Path, data: Path, *more: Any) -> list[str]:
    return [sys.executable, "-m", "scratchcnn", "sweep", str(spec), "--out", str(out), "--data-dir", str(data),
            *map(str, more)]


def env_for(cwd: Path) -> dict[str, str]:
    """The test's environment, with $HOME = cwd (no ~/.cache) and no $SCRATCHCNN_DATA."""
    return {**{k: v for k, v in os.environ.items() if k != "SCRATCHCNN_DATA"}, "HOME": str(cwd)}


def cli(args: list[Any], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(map(str, args)), cwd=cwd, env=env_for(cwd), capture_output=True, text=True,
                          timeout=timeout, check=False)


def start(args: list[str], cwd: Path, **popen: Any) -> subprocess.Popen[bytes]:
    """In the background; stdout and stderr to files (a pipe would stay open as long as an orphaned worker)."""
    with open(cwd / "stdout.txt", "wb") as out, open(cwd / "stderr.txt", "wb") as err:
        return subprocess.Popen(args, cwd=cwd, env=env_for(cwd), stdout=out, stderr=err, **popen)


def records(out: Path) -> list[dict[str, Any]]:
    """The whole lines of out/sweep.jsonl, parsed (a line being written when its writer died is left out)."""
    return [json.loads(line) for line in (out / "sweep.jsonl").read_text().splitlines(keepends=True)
            if line.endswith("\n")]


def assert_each_point_once(spec: Path, found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every point of the spec is recorded exactly once; its records by key."""
    keys = [record["key"] for record in found]
    assert sorted(keys) == sorted(point.key for point in read_spec(spec).points)
    return {record["key"]: record for record in found}


def curves(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [{name: epoch[name] for name in NO_SECONDS} for epoch in record["epochs"]]


def wait_until(condition: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, f"the sweep ended (status {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (read from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while we looked
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whatever reaps it here)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cluster_module(name: str) -> Any:
    """Dask's modules (the cluster extra): on a machine without them the test skips; in CI it fails."""
    try:
        return importlib.import_module(name)
    except ImportError:
        skip_or_fail(f"{name} is not installed: pip install -e '.[test]' (it includes the cluster extra)")


@contextmanager
def local_cluster() -> Iterator[str]:
    """A two-worker Dask cluster of processes on 127.0.0.1, for the test's duration: its scheduler's address."""
    distributed = cluster_module("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


# ---- the same numbers on every backend --------------------------------------------------------


def test_dask_local_and_train_give_the_same_numbers(tmp_path: Path, data_dir: Path) -> None:
    spec = spec_file(tmp_path, STUDY)
    with local_cluster() as address:
        on_dask = cli(command(spec, tmp_path / "dask", data_dir, "--scheduler", address, "--json"), tmp_path)
    assert on_dask.returncode == 0, on_dask.stderr
    local = cli(command(spec, tmp_path / "local", data_dir, "--jobs", 2, "--json"), tmp_path)
    assert local.returncode == 0, local.stderr
    assert json.loads(on_dask.stdout.splitlines()[-1])["ok"] == json.loads(local.stdout.splitlines()[-1])["ok"] == 12
    by_dask = assert_each_point_once(spec, records(tmp_path / "dask"))
    by_local = assert_each_point_once(spec, records(tmp_path / "local"))
    assert {key: curves(r) for key, r in by_dask.items()} == {key: curves(r) for key, r in by_local.items()}
    points = read_spec(spec).points
    for point in (points[1], points[10]):  # seed η=0.001 seed 1; wide η=0.01 seed 0
        options = point.options
        trained = cli([sys.executable, "-m", "scratchcnn", "train", "--epochs", 1, "--data-dir", data_dir,
                       "--train-size", options["train_size"], "--validation-size", options["validation_size"],
                       "--learning-rate", options["learning_rate"], "--arch", options["arch"],
                       "--seed", options["seed"], "--out", tmp_path / f"train-{point.key}"], tmp_path)
        assert trained.returncode == 0, trained.stderr
        history = json.loads((tmp_path / f"train-{point.key}" / "history.json").read_text())["history"]
        assert [{name: epoch[name] for name in NO_SECONDS} for epoch in history] == curves(by_dask[point.key])


# ---- workers killed ---------------------------------------------------------------------------


def test_a_killed_local_worker_reruns_its_point_or_records_it_failed(tmp_path: Path, data_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_file(tmp_path, SMALL)
    once, always = (point.key for point in read_spec(spec).points[1:3])
    monkeypatch.setenv(KILL_ONCE, once)
    monkeypatch.setenv(KILL_ALWAYS, always)
    monkeypatch.setenv(KILL_MARKER, str(tmp_path / "killed-once"))
    warnings: list[str] = []
    result = sweep(spec, tmp_path / "out", data_dir=data_dir, jobs=2, retries=2, runner=killing_runner,
                   warn=warnings.append)
    by_key = assert_each_point_once(spec, records(tmp_path / "out"))
    assert (tmp_path / "killed-once").exists()
    assert by_key[once]["status"] == "ok" and by_key[once]["attempts"] == 2
    assert by_key[always]["status"] == "failed" and by_key[always]["attempts"] == 3  # retries + 1
    assert f"signal {signal.SIGKILL.value}" in by_key[always]["error"]
    others = [r for key, r in by_key.items() if key not in (once, always)]
    assert [(r["status"], r["attempts"]) for r in others] == [("ok", 1), ("ok", 1)]
    assert (result["ok"], result["failed"]) == (3, 1)
    assert sum(once in w for w in warnings) == 1 and sum(always in w for w in warnings) == 2, warnings
    assert all(f"killed by signal {signal.SIGKILL.value}" in w for w in warnings), warnings


def test_a_killed_dask_worker_is_replaced_and_its_point_runs_again(tmp_path: Path, data_dir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cloudpickle = cluster_module("cloudpickle")
    spec = spec_file(tmp_path, SMALL)
    target = read_spec(spec).points[1].key
    monkeypatch.setenv(KILL_ONCE, target)  # set before the cluster starts: its worker processes inherit it
    monkeypatch.setenv(KILL_MARKER, str(tmp_path / "killed-once"))
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this file
    try:
        with local_cluster() as address:
            result = sweep(spec, tmp_path / "out", data_dir=data_dir, scheduler=address, runner=killing_runner)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    by_key = assert_each_point_once(spec, records(tmp_path / "out"))
    killed_pid = int((tmp_path / "killed-once").read_text())
    assert by_key[target]["status"] == "ok" and by_key[target]["pid"] != killed_pid
    assert result["ok"] == 4


# ---- the client killed, torn, interrupted ---------------------------------------------------------


def test_a_killed_client_leaves_no_worker_and_continues_where_it_was(tmp_path: Path, data_dir: Path) -> None:
    spec, out = spec_file(tmp_path, SLOW), tmp_path / "out"
    proc = start(command(spec, out, data_dir, "--jobs", 1, "--json"), tmp_path)
    try:
        wait_until(lambda: line_count(out / "sweep.jsonl") >= 2, 90, "two finished points", proc)
        workers = children(proc.pid)
        proc.kill()
        proc.wait(timeout=10)
    finally:
        proc.kill()
    before = records(out)
    assert 2 <= len(before) < 8 and {r["pid"] for r in before} <= workers  # killed mid-sweep; we watched its worker
    wait_until(lambda: not any(map(running, workers)), 10, "end of the orphaned worker")
    rerun = cli(command(spec, out, data_dir, "--jobs", 1, "--json"), tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    by_key = assert_each_point_once(spec, records(out))
    assert [by_key[r["key"]] for r in before] == before  # not run again: the same records, pid and all
    assert all(r["pid"] not in workers for key, r in by_key.items() if key not in {b["key"] for b in before})


def test_a_torn_last_line_is_cut_off_with_a_warning_and_its_point_runs_again(tmp_path: Path, data_dir: Path) -> None:
    spec, out = spec_file(tmp_path, SMALL), tmp_path / "out"
    first = cli(command(spec, out, data_dir, "--jobs", 2, "--json"), tmp_path)
    assert first.returncode == 0, first.stderr
    lines = (out / "sweep.jsonl").read_bytes().splitlines(keepends=True)
    torn = json.loads(lines[-1])
    (out / "sweep.jsonl").write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    again = cli(command(spec, out, data_dir, "--jobs", 2, "--json"), tmp_path)
    assert again.returncode == 0, again.stderr
    warnings = [line for line in again.stderr.splitlines() if "torn" in line]
    assert len(warnings) == 1 and warnings[0].startswith("scratchcnn: warning: "), again.stderr
    data = (out / "sweep.jsonl").read_bytes()
    assert data.endswith(b"\n")
    by_key = assert_each_point_once(spec, [json.loads(line) for line in data.splitlines()])
    assert by_key[torn["key"]]["pid"] != torn["pid"]  # ran again, in a new worker
    assert [json.loads(line) for line in lines[:-1]] == records(out)[:-1]


def test_ctrl_c_stops_the_sweep_with_one_line_saying_how_to_continue(tmp_path: Path, data_dir: Path) -> None:
    spec, out = spec_file(tmp_path, SLOW), tmp_path / "out"
    proc = start(command(spec, out, data_dir, "--jobs", 1, "--json"), tmp_path, start_new_session=True)
    try:
        wait_until(lambda: line_count(out / "sweep.jsonl") >= 1, 90, "a finished point", proc)
        workers = children(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C at a terminal: to the client and its workers
        status = proc.wait(timeout=30)
    finally:
        proc.kill()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert status == 130, stderr
    assert f"Continue with: scratchcnn sweep {spec} --out {out}" in stderr
    assert len(records(out)) < 8
    wait_until(lambda: not any(map(running, workers)), 10, "end of the workers")
    rerun = cli(command(spec, out, data_dir, "--jobs", 1, "--json"), tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert_each_point_once(spec, records(out))
    # Last, so that a failure here says only this: nothing but the one line, from the client or its workers.
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr


# ---- bad input with a cluster named -----------------------------------------------------------


def test_a_bad_spec_is_reported_before_the_scheduler_is_tried(tmp_path: Path, data_dir: Path) -> None:
    bad = spec_file(tmp_path, "epochs = 1\n[grid]\nlearnin_rate = [0.01]\n", "bad.toml")
    proc = cli(command(bad, tmp_path / "out", data_dir, "--scheduler", "tcp://127.0.0.1:1"), tmp_path, timeout=30)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "scratchcnn: error: bad.toml: [grid] learnin_rate is not an option of scratchcnn train "
        "(did you mean learning_rate?)"]
    assert not (tmp_path / "out").exists()


def test_an_unreachable_scheduler_is_one_line(tmp_path: Path, data_dir: Path) -> None:
    spec = spec_file(tmp_path, SMALL)
    began = time.monotonic()
    proc = cli(command(spec, tmp_path / "out", data_dir, "--scheduler", "tcp://127.0.0.1:1"), tmp_path, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scratchcnn: error: cannot reach the Dask scheduler at "
                                                   "tcp://127.0.0.1:1"), proc.stderr
    assert time.monotonic() - began < 30  # the client's 10 s connect timeout, plus start-up
