"""Run folders (train/rundir.py): a folder that holds a run is never trained into without --resume or
--overwrite; --overwrite keeps the old run until the new one has an epoch to show; one process uses a
folder at a time (an flock on DIR/.lock naming its holder's pid), and a killed holder leaves no stale lock;
history.json is checked when read; a real full disk is refused in one line naming the file.

Real processes (``python -m scratchcnn``, a child python holding a lock) where locks, SIGKILL, SIGSTOP and
Ctrl-C matter; in-process ``main(argv)`` and RunDir on the fake dataset where that is faster. Every run
uses the NumPy engine, which needs no compiling at start-up.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_fake_dataset, run_main, skip_or_fail
from helpers import one_line_error

from scratchcnn.cli.training import write_training_figures
from scratchcnn.nn import engine as engines
from scratchcnn.nn.model import ConvNet
from scratchcnn.train import runs
from scratchcnn.train.checkpoint import load_checkpoint
from scratchcnn.train.rundir import RunDir, RunDirError

# What a finished run leaves, in the order the refusal lists them (the list, not RunDir's).
RUN_FILES = ("checkpoint.npz", "model.npz", "history.json", "history.csv", "07-accuracy.png", "08-confusion.png")
LOCK = ".lock"
NUMPY = ("--engine", "numpy")
# ≈0.08 s an epoch of 360 records at batch size 1 on the fake data: long enough to catch a run between epochs.
SLOW_EPOCHS = ("--epoch-size", 360, "--batch-size", 1, *NUMPY)
# One epoch of 100 000 records (≈20 s): a run signalled as it starts is always inside its first epoch.
ENDLESS_EPOCH = ("--epoch-size", 100_000, "--batch-size", 1, "--epochs", 1, *NUMPY)
WAIT = 60  # seconds: the most any wait below may take before the test fails


# ---- helpers -----------------------------------------------------------------------------------


def env_for(cwd: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SCRATCHCNN_DATA"}
    env.update(HOME=str(cwd), SCRATCHCNN_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


def cli(*args: Any, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m scratchcnn ARGS`` in cwd to completion."""
    return subprocess.run([sys.executable, "-m", "scratchcnn", *map(str, args)], cwd=cwd, env=env_for(cwd),
                          capture_output=True, text=True, timeout=120, check=False)


def start(*args: Any, cwd: Path) -> subprocess.Popen[str]:
    """Start ``python -m scratchcnn ARGS`` in the background, stdout unbuffered."""
    return subprocess.Popen([sys.executable, "-m", "scratchcnn", *map(str, args)], cwd=cwd, env=env_for(cwd),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Wait for proc (resuming it if stopped); its stdout and stderr."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGCONT)
    return proc.communicate(timeout=120)


def cleanup(proc: subprocess.Popen[str]) -> None:
    """Kill proc if a failed test left it running (or stopped)."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=WAIT)


def read_line(proc: subprocess.Popen[str], timeout: float = WAIT) -> str:
    """proc's first line on stdout, waiting at most ``timeout`` seconds for it."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        pytest.fail(f"no line on stdout after {timeout} s")
    return proc.stdout.readline()


def refusal(folder: str, names: tuple[str, ...] | list[str] = RUN_FILES) -> str:
    """The line train gives for a folder that already holds a run (the issue's wording)."""
    return (f"scratchcnn: error: {folder} already holds a run ({', '.join(names)}): continue it with "
            f"--resume {folder}, or replace it with --overwrite")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in folder, hidden ones too, by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def lock_holder(folder: Path) -> str | None:
    """The text of folder/.lock (the holder's pid and a newline), or None when there is none."""
    try:
        return (folder / LOCK).read_text()
    except FileNotFoundError:
        return None


def wait_for_lock(proc: subprocess.Popen[str], folder: Path) -> None:
    """Poll until proc holds folder's lock (its pid is in folder/.lock)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended (status {proc.returncode}) before it was seen holding the lock: "
                        f"{proc.communicate(timeout=WAIT)[1]}")
        if lock_holder(folder) == f"{proc.pid}\n":
            return
        time.sleep(0.002)
    pytest.fail(f"{folder} not locked by pid {proc.pid} after {WAIT} s")


def wait_for_checkpoint(proc: subprocess.Popen[str], folder: Path, epoch: int = 1) -> None:
    """Poll until folder/checkpoint.npz holds at least ``epoch`` epochs (written atomically: never half a file)."""
    deadline = time.monotonic() + WAIT
    path = folder / "checkpoint.npz"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended (status {proc.returncode}) before checkpoint {epoch}: "
                        f"{proc.communicate(timeout=WAIT)[1]}")
        if path.exists() and load_checkpoint(path)[1].epoch >= epoch:
            return
        time.sleep(0.002)
    pytest.fail(f"no checkpoint {epoch} in {folder} after {WAIT} s")


def assert_one_consistent_run(folder: Path, **options: Any) -> dict[str, Any]:
    """folder holds every run file, all from one run: the model is the checkpoint's network, history.json
    holds the checkpoint's options and epochs, and those options include ``options``. No lock, no temp file."""
    names = {p.name for p in folder.iterdir()}
    assert names >= set(RUN_FILES), names
    assert not {name for name in names if name.startswith(".")}, f"lock or temporary files left: {names}"
    net, state, saved = load_checkpoint(folder / "checkpoint.npz")
    model = ConvNet.load(folder / "model.npz")
    assert model.parameters().keys() == net.parameters().keys()
    for name, value in model.parameters().items():
        assert value.tobytes() == net.parameters()[name].tobytes(), f"model.npz's {name} is not the checkpoint's"
    assert model.header() == net.header()
    summary = RunDir(folder).read_summary()
    assert summary is not None
    assert summary["options"] == saved["training"], "history.json and checkpoint.npz are from different runs"
    for key, value in options.items():
        assert summary["options"][key] == value, key
    assert summary["epochs"] == state.epoch == len(summary["history"])
    assert [vars(e) for e in state.history.epochs] == summary["history"]  # the very same records, seconds too
    assert len((folder / "history.csv").read_text().splitlines()) == state.epoch + 1
    return summary


# The child python that holds a folder's lock: prints its pid once it holds it, lets go when stdin closes.
HOLDER = """\
import os, sys
from scratchcnn.train.rundir import RunDir
with RunDir(sys.argv[1]).lock():
    print(os.getpid(), flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def held_by_another_process(folder: Path) -> Iterator[subprocess.Popen[str]]:
    """A child python holding folder's lock for the duration (unless the test ends it first:
    ``proc.communicate()`` closes its stdin, so it lets go and exits; ``proc.kill()`` kills it)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], cwd=folder.parent, env=env_for(folder.parent),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = read_line(proc)
        assert line.strip() == str(proc.pid), f"the holder did not start: {line!r} {proc.communicate(timeout=WAIT)}"
        yield proc
    finally:
        if proc.returncode is None:
            proc.communicate(timeout=WAIT)


def release(proc: subprocess.Popen[str]) -> None:
    """Let the child holder go: it leaves the ``with`` block and exits normally."""
    _out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def old_run_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 3-epoch run (seed 0, batch size 4) on the fake data, with its figures: copied, never used."""
    root = tmp_path_factory.mktemp("template")
    fake = make_fake_dataset(root / "fake")  # the same records as the `fake` fixture's
    runs.train_run({"epochs": 3, "batch_size": 4, "engine": "numpy"}, root / "run", data_dir=fake, download=False,
                   finish=write_training_figures)
    assert {p.name for p in (root / "run").iterdir()} == set(RUN_FILES)
    return root / "run"


@pytest.fixture
def old_run(old_run_template: Path, isolated: Path) -> Path:
    """A copy of the finished run in isolated/run (cwd is isolated)."""
    return Path(shutil.copytree(old_run_template, isolated / "run"))


# ---- a folder that holds a run is refused --------------------------------------------------------


def test_train_into_a_folder_holding_a_run_exits_2_and_changes_nothing(old_run: Path, fake: Path) -> None:
    before = snapshot(old_run)
    proc = cli("train", "--data-dir", fake, "--epochs", 1, *NUMPY, "--out", "run", cwd=old_run.parent)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [refusal("run")]
    assert proc.stdout == ""
    assert snapshot(old_run) == before  # model.npz and every other file byte-identical; no lock left


@pytest.mark.parametrize("name", RUN_FILES)
def test_any_one_run_file_makes_a_folder_a_run(name: str, fake: Path, isolated: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = isolated / "run"
    folder.mkdir()
    (folder / name).write_bytes(b"from an earlier run")
    (folder / "notes.txt").write_text("mine")
    before = snapshot(folder)
    status, _out, err = run_main(["train", "--data-dir", fake, "--epochs", 1, *NUMPY, "--out", "run"], capsys)
    assert status == 2, err
    assert err.strip().splitlines() == [refusal("run", [name])]
    assert snapshot(folder) == before


def test_a_folder_without_run_files_is_trained_into_and_its_other_files_kept(
        fake: Path, isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = isolated / "run"
    (folder / "figures").mkdir(parents=True)
    others = {"notes.txt": b"mine", "report.html": b"<p>old</p>", "tuning.json": b"{}"}
    for name, content in others.items():
        (folder / name).write_bytes(content)
    status, _out, err = run_main(["train", "--data-dir", fake, "--epochs", 2, *NUMPY, "--out", "run"], capsys)
    assert status == 0, err
    assert_one_consistent_run(folder, epochs=2)
    assert {name: (folder / name).read_bytes() for name in others} == others
    assert (folder / "figures").is_dir()


def test_resume_and_overwrite_together_are_refused(old_run: Path, fake: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(old_run)
    status, _out, err = run_main(["train", "--resume", "run", "--overwrite", "--data-dir", fake], capsys)
    one_line_error(status, err, "--resume", "--overwrite")
    assert snapshot(old_run) == before


# ---- --overwrite -------------------------------------------------------------------------------


def test_overwrite_replaces_the_run_once_its_first_epoch_is_saved(
        old_run: Path, fake: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The old files are all there while the new run trains its first epoch; as its first checkpoint is
    about to be written they are gone (the old checkpoint is about to be replaced); at the end the folder
    holds the new run only."""
    before = snapshot(old_run)
    seen: dict[str, dict[str, bytes]] = {}
    real_fit, real_save = runs.fit, runs.save_checkpoint

    def fit_watched(*args: Any, **kwargs: Any) -> Any:
        seen["training starts"] = snapshot(old_run)
        return real_fit(*args, **kwargs)

    def save_watched(*args: Any, **kwargs: Any) -> Any:
        seen.setdefault("first checkpoint", snapshot(old_run))
        return real_save(*args, **kwargs)

    monkeypatch.setattr(runs, "fit", fit_watched)
    monkeypatch.setattr(runs, "save_checkpoint", save_watched)
    status, _out, err = run_main(["train", "--data-dir", fake, "--epochs", 2, "--seed", 1, *NUMPY, "--out", "run",
                                  "--overwrite"], capsys)
    assert status == 0, err
    own_lock = {LOCK: f"{os.getpid()}\n".encode()}
    assert seen["training starts"] == {**before, **own_lock}
    assert seen["first checkpoint"] == {"checkpoint.npz": before["checkpoint.npz"], **own_lock}
    assert_one_consistent_run(old_run, seed=1, epochs=2, batch_size=1)


def test_overwrite_interrupted_in_its_first_epoch_leaves_the_old_run(
        old_run: Path, fake: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(old_run)

    def ctrl_c(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(engines, "sgd_epoch", ctrl_c)  # Ctrl-C in the middle of epoch 1
    status, _out, err = run_main(["train", "--data-dir", fake, "--epochs", 2, "--seed", 1, *NUMPY, "--out", "run",
                                  "--overwrite"], capsys)
    assert status == 130, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert snapshot(old_run) == before


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_overwrite_killed_or_interrupted_before_its_first_epoch_ends_leaves_the_old_run(
        how: str, old_run: Path, fake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(old_run)
    proc = start("train", "--data-dir", fake, *ENDLESS_EPOCH, "--seed", 1, "--out", "run", "--overwrite",
                 cwd=old_run.parent)
    try:
        line = read_line(proc)  # "training ConvNet(...)": the lock is held, epoch 1 is starting
        assert line.startswith("training "), line
        proc.send_signal(getattr(signal, how))
        _out, err = proc.communicate(timeout=WAIT)
    finally:
        cleanup(proc)
    after = snapshot(old_run)
    if how == "SIGINT":
        assert proc.returncode == 130, err
        assert len(err.strip().splitlines()) == 1 and err.startswith("scratchcnn: interrupted"), err
        assert "the run in run is as it was" in err, err  # not "continue with --resume": that is the old run
        assert after == before
    else:
        assert proc.returncode == -signal.SIGKILL, err
        assert after.pop(LOCK) == f"{proc.pid}\n".encode()  # the dead holder's lock file stays, its flock is gone
        assert after == before
        # The old run is still whole, and nothing stands in the way of using the folder.
        status, _out, err = run_main(["train", "--resume", "run", "--data-dir", fake], capsys)
        assert status == 0, err
        assert_one_consistent_run(old_run, seed=0, epochs=3)
        assert (old_run / "model.npz").read_bytes() == before["model.npz"]


def test_overwrite_whose_first_epoch_diverges_leaves_the_old_run(
        old_run: Path, fake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The new run stops in epoch 1 (NaN loss): it saves nothing (exit 3), so the old run stays whole; it
    must never end as the old run's checkpoint beside the new run's model and history."""
    before = snapshot(old_run)
    status, _out, err = run_main(["train", "--data-dir", fake, "--epochs", 2, "--lr", 1e6, *NUMPY, "--out", "run",
                                  "--overwrite"], capsys)
    assert status == 3, err
    assert "epoch 1" in err and "nothing was saved" in err
    assert snapshot(old_run) == before


# ---- one process at a time ---------------------------------------------------------------------


def test_a_second_process_on_a_folder_in_use_exits_2_at_start_naming_the_holder(
        fake: Path, isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The first train is stopped (SIGSTOP) while it holds the lock: a second train, a resume, an
    overwrite and a report are all refused at once, naming its pid; then it goes on and finishes alone."""
    folder = isolated / "busy-run"
    first = start("train", "--data-dir", fake, "--epochs", 3, "--batch-size", 4, "--seed", 1, *NUMPY,
                  "--out", "busy-run", cwd=isolated)
    try:
        wait_for_lock(first, folder)
        first.send_signal(signal.SIGSTOP)
        assert lock_holder(folder) == f"{first.pid}\n", "the first run ended before it could be stopped"
        before = snapshot(folder)
        second = cli("train", "--data-dir", fake, "--epochs", 2, "--seed", 2, *NUMPY, "--out", "busy-run",
                     cwd=isolated)
        one_line_error(second.returncode, second.stderr, "busy-run", f"pid {first.pid}")
        assert second.stdout == ""
        for argv in (["train", "--resume", "busy-run", "--data-dir", fake],
                     ["train", "--data-dir", fake, "--seed", 3, *NUMPY, "--out", "busy-run", "--overwrite"],
                     ["report", "busy-run"]):
            status, _out, err = run_main(argv, capsys)
            one_line_error(status, err, "busy-run", f"pid {first.pid}")
        assert snapshot(folder) == before
        _out, err = finish(first)
        assert first.returncode == 0, err
    finally:
        cleanup(first)
    assert_one_consistent_run(folder, seed=1, epochs=3, batch_size=4)


def test_two_trains_started_together_one_runs_and_the_other_exits_2(fake: Path, isolated: Path) -> None:
    folder = isolated / "shared-run"
    procs = [start("train", "--data-dir", fake, *SLOW_EPOCHS, "--epochs", 3, "--seed", seed, "--out", "shared-run",
                   cwd=isolated) for seed in (1, 2)]
    try:
        results = [finish(proc) for proc in procs]
    finally:
        for proc in procs:
            cleanup(proc)
    statuses = sorted(proc.returncode for proc in procs)
    assert statuses == [0, 2], [err for _out, err in results]
    winner = 0 if procs[0].returncode == 0 else 1
    line = one_line_error(2, results[1 - winner][1], "shared-run")
    # Refused at start while the winner holds the folder; or, had the winner finished first, by its run.
    assert f"(pid {procs[winner].pid})" in line or line == refusal("shared-run"), line
    assert results[1 - winner][0] == ""
    assert_one_consistent_run(folder, seed=1 + winner, epochs=3)


def test_sigkill_of_the_holder_mid_run_leaves_no_stale_lock_and_resume_finishes(
        fake: Path, isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = isolated / "run"
    proc = start("train", "--data-dir", fake, *SLOW_EPOCHS, "--epochs", 5, "--out", "run", cwd=isolated)
    try:
        wait_for_checkpoint(proc, folder, 1)
        proc.send_signal(signal.SIGSTOP)  # so that nothing moves between the check below and the kill
        assert not (folder / "model.npz").exists(), "the run finished before it could be killed: make it longer"
        proc.send_signal(signal.SIGKILL)
        _out, err = proc.communicate(timeout=WAIT)
    finally:
        cleanup(proc)
    assert proc.returncode == -signal.SIGKILL, err
    killed_at = load_checkpoint(folder / "checkpoint.npz")[1].epoch
    assert 1 <= killed_at <= 5  # killed after epoch k, before the model was written
    assert lock_holder(folder) == f"{proc.pid}\n"  # the lock file stays, naming a dead process: not a lock
    status, _out, err = run_main(["train", "--resume", "run", "--data-dir", fake], capsys)
    assert status == 0, err
    assert_one_consistent_run(folder, epochs=5, seed=0)
    assert lock_holder(folder) is None


def test_report_on_a_folder_in_use_exits_2(old_run: Path) -> None:
    before = snapshot(old_run)
    with held_by_another_process(old_run) as holder:
        proc = cli("report", "run", cwd=old_run.parent)
        one_line_error(proc.returncode, proc.stderr, "run", f"pid {holder.pid}")
        assert not (old_run / "report.html").exists()
        release(holder)
    assert snapshot(old_run) == before
    with RunDir(old_run).lock():  # free again
        pass


# ---- RunDir: the lock ----------------------------------------------------------------------------


def test_a_lock_held_by_another_process_is_refused_naming_its_pid(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with held_by_another_process(folder) as holder:
        assert lock_holder(folder) == f"{holder.pid}\n"
        with pytest.raises(RunDirError) as caught, RunDir(folder).lock():
            pytest.fail("locked a folder another process holds")
        message = str(caught.value)
        assert "\n" not in message
        assert str(folder) in message and f"pid {holder.pid}" in message, message
        assert lock_holder(folder) == f"{holder.pid}\n"  # the refused attempt left the holder's lock alone
        release(holder)
    assert snapshot(folder) == {"notes.txt": b"mine"}  # released: the lock file is gone
    with RunDir(folder).lock():
        assert lock_holder(folder) == f"{os.getpid()}\n"
    assert lock_holder(folder) is None


def test_the_lock_of_a_killed_holder_is_not_stale(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    with held_by_another_process(folder) as holder:
        holder.kill()
        holder.communicate(timeout=WAIT)
        assert lock_holder(folder) == f"{holder.pid}\n"  # left behind, but the flock died with the process
        with RunDir(folder).lock() as run:
            assert run.path == folder
            assert lock_holder(folder) == f"{os.getpid()}\n"
    assert lock_holder(folder) is None


def test_a_folder_is_locked_once_even_within_one_process(tmp_path: Path) -> None:
    with RunDir(tmp_path / "run").lock():
        with pytest.raises(RunDirError, match=rf"pid {os.getpid()}\b"), RunDir(tmp_path / "run").lock():
            pytest.fail("locked a folder twice")
        assert lock_holder(tmp_path / "run") == f"{os.getpid()}\n"
    assert not (tmp_path / "run").exists()


def test_the_lock_is_released_when_its_block_raises(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(KeyboardInterrupt), RunDir(folder).lock():
        (folder / "model.npz").write_bytes(b"x")
        raise KeyboardInterrupt
    assert snapshot(folder) == {"model.npz": b"x"}
    with RunDir(folder).lock():
        pass


@pytest.mark.parametrize("writes", [False, True], ids=["left-empty", "written-into"])
def test_a_folder_the_lock_created_is_removed_only_when_left_empty(writes: bool, tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with pytest.raises(RuntimeError), RunDir(folder).lock():
        assert folder.is_dir()
        if writes:
            (folder / "checkpoint.npz").write_bytes(b"x")
        raise RuntimeError("the run failed")
    if writes:
        assert snapshot(folder) == {"checkpoint.npz": b"x"}
    else:
        assert not folder.exists()


def test_an_existing_empty_folder_is_kept(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    with RunDir(folder).lock():
        pass
    assert folder.is_dir() and snapshot(folder) == {}


def test_a_folder_train_created_is_removed_when_the_run_fails_before_any_epoch(
        isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = make_fake_dataset(isolated / "bad")
    (bad / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"garbage")
    (isolated / "existing").mkdir()
    for folder in ("made-by-train", "existing"):
        status, _out, err = run_main(["train", "--data-dir", bad, *NUMPY, "--out", folder], capsys)
        one_line_error(status, err, "train-images-idx3-ubyte.gz")
    assert not (isolated / "made-by-train").exists()
    assert snapshot(isolated / "existing") == {}  # not train's to remove; no lock left


def _race(root: Path, barrier: Any, results: Any, folders: int, rounds: int) -> None:
    """One of four processes that, folder after folder (all four starting on each together), try to lock it
    ``rounds`` times, letting go at once; reports (its pid, refusal messages, OS errors)."""
    refusals, errors = [], []
    for n in range(folders):
        barrier.wait(timeout=WAIT)
        for _ in range(rounds):
            try:
                with RunDir(root / f"run-{n}").lock():
                    pass
            except RunDirError as error:
                refusals.append(str(error))
            except OSError as error:
                errors.append(f"{type(error).__name__}: {error}")
    results.put((os.getpid(), refusals, errors))


def race(root: Path, folders: int = 50, rounds: int = 3) -> tuple[set[int], list[str], list[str]]:
    """Four processes racing for the folders root/run-N: their pids, the refusals, the OS errors."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_race, args=(root, barrier, results, folders, rounds)) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        reports = [results.get(timeout=WAIT) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=WAIT)
    assert [worker.exitcode for worker in workers] == [0] * 4
    for n in range(folders):
        assert lock_holder(root / f"run-{n}") is None
    return ({pid for pid, _, _ in reports}, [m for _, refusals, _ in reports for m in refusals],
            [e for _, _, errors in reports for e in errors])


def test_processes_locking_at_the_same_instant_are_refused_naming_the_holder(tmp_path: Path) -> None:
    """Four processes lock the same existing folders at the same instant: every one refused is told the pid
    of the one holding the lock, even in the instant after that one took it."""
    for n in range(50):
        (tmp_path / f"run-{n}").mkdir()
    pids, refusals, errors = race(tmp_path)
    assert not errors, errors[:3]
    assert refusals, "no process was ever refused: the race never happened"
    named = {f"(pid {pid})" for pid in pids}
    wrong = [message for message in refusals if not any(pid in message for pid in named)]
    assert not wrong, f"{len(wrong)} of {len(refusals)} refusals do not name the holder's pid, e.g. {wrong[0]!r}"


def test_processes_racing_for_a_new_folder_get_the_lock_or_a_refusal_never_an_os_error(tmp_path: Path) -> None:
    """The same race for folders that do not exist yet. A lock that created its folder removes it again on
    release when nothing was written in it: that must never make another process's attempt fail with an
    OSError (the folder or its lock file gone under it), nor the release itself fail."""
    _pids, _refusals, errors = race(tmp_path)
    assert not errors, f"{len(errors)} attempts failed with an OSError, e.g. {sorted(set(errors))[:3]}"


# ---- RunDir: the run's files -----------------------------------------------------------------------


def test_existing_refuse_existing_and_remove_outputs(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert run.existing() == []
    run.refuse_existing()  # nothing to refuse
    for name in ("notes.txt", "tuning.json", "report.html", "explorer.html", *reversed(RUN_FILES)):
        (tmp_path / name).write_bytes(name.encode())
    assert run.existing() == list(RUN_FILES)
    with pytest.raises(RunDirError) as caught:
        run.refuse_existing()
    assert f"scratchcnn: error: {caught.value}" == refusal(str(tmp_path))
    run.remove_outputs()  # --overwrite: the checkpoint is about to be replaced, the rest go
    assert run.existing() == ["checkpoint.npz"]
    run.remove_outputs(keep_checkpoint=False)
    assert run.existing() == []
    # The pages made from the old run go with it; other files (notes, experiments) stay.
    assert snapshot(tmp_path) == {name: name.encode() for name in ("notes.txt", "tuning.json")}


def test_read_summary_of_a_folder_without_history_json_is_none(tmp_path: Path) -> None:
    assert RunDir(tmp_path).read_summary() is None
    assert RunDir(tmp_path / "missing").read_summary() is None


def test_read_summary_returns_what_train_wrote(old_run: Path) -> None:
    assert RunDir(old_run).read_summary() == json.loads((old_run / "history.json").read_text())


GOOD_EPOCH = {"epoch": 1, "records": 36, "train_accuracy": 0.5, "train_loss": 1.2, "validation_accuracy": None,
              "validation_loss": None, "seconds": 0.01}
# Each: the bytes of a damaged history.json.
DAMAGED_SUMMARIES = {
    "empty": b"",
    "not-json": b"{'history': []",
    "truncated": json.dumps({"history": [GOOD_EPOCH], "test_accuracy": 0.5}).encode()[:40],
    "not-utf-8": b'{"history": [], "note": "\xff\xfe"}',
    "a-list": b"[1, 2, 3]",
    "no-history": json.dumps({"test_accuracy": 0.5}).encode(),
    "history-an-object": json.dumps({"history": GOOD_EPOCH}).encode(),
    "epoch-without-number": json.dumps({"history": [{**GOOD_EPOCH, "epoch": None}]}).encode(),
    "epoch-number-true": json.dumps({"history": [{**GOOD_EPOCH, "epoch": True}]}).encode(),
    "epoch-number-negative": json.dumps({"history": [{**GOOD_EPOCH, "epoch": -1}]}).encode(),
    "epoch-a-list": json.dumps({"history": [[1, 0.5]]}).encode(),
    "train-loss-a-string": json.dumps({"history": [{**GOOD_EPOCH, "train_loss": "low"}]}).encode(),
    "options-a-list": json.dumps({"history": [GOOD_EPOCH], "options": ["--lr", 1]}).encode(),
    "test-accuracy-a-string": json.dumps({"history": [GOOD_EPOCH], "test_accuracy": "97%"}).encode(),
    "confusion-not-square": json.dumps({"history": [], "confusion_matrix": [[1, 2], [3]]}).encode(),
    "confusion-negative-count": json.dumps({"history": [], "confusion_matrix": [[1, -2], [3, 4]]}).encode(),
}


@pytest.mark.parametrize("content", list(DAMAGED_SUMMARIES.values()), ids=list(DAMAGED_SUMMARIES))
def test_read_summary_refuses_a_damaged_history_json_in_one_line(content: bytes, tmp_path: Path) -> None:
    (tmp_path / "history.json").write_bytes(content)
    with pytest.raises(RunDirError) as caught:
        RunDir(tmp_path).read_summary()
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'history.json'}: ") and "\n" not in message, message


def test_read_summary_refuses_a_folder_named_history_json(tmp_path: Path) -> None:
    (tmp_path / "history.json").mkdir()
    with pytest.raises(RunDirError) as caught:
        RunDir(tmp_path).read_summary()
    assert str(caught.value).startswith(str(tmp_path / "history.json")) and "\n" not in str(caught.value)


def test_report_on_a_damaged_history_json_exits_2_in_one_line(old_run: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    (old_run / "history.json").write_bytes(DAMAGED_SUMMARIES["train-loss-a-string"])
    status, _out, err = run_main(["report", "run"], capsys)
    one_line_error(status, err, str(Path("run") / "history.json"), "train_loss")
    assert not (old_run / "report.html").exists()


# ---- a real full disk ----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted at tmp_path/disk (needs root: CI runs as root)."""
    if os.geteuid() != 0:
        skip_or_fail("mounting a tmpfs needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                                 capture_output=True, text=True, timeout=WAIT, check=False)
    except FileNotFoundError:
        skip_or_fail("no mount command")
    if mounted.returncode != 0:
        skip_or_fail(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True, timeout=WAIT, check=True)


def test_a_full_disk_is_refused_naming_the_file_and_keeps_the_previous_checkpoint(
        small_disk: Path, fake: Path, isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The disk has room for the lock and the first checkpoint, not for a second copy beside it."""
    common = ["--data-dir", fake, "--batch-size", 4, "--epoch-size", 10, *NUMPY]
    status, _out, err = run_main(["train", *common, "--epochs", 2, "--out", "sizing"], capsys)
    assert status == 0, err
    page = os.statvfs(small_disk).f_frsize
    pages = -(-(isolated / "sizing" / "checkpoint.npz").stat().st_size // page)
    room = (1 + pages + pages // 2) * page  # the lock, one checkpoint, half another
    disk = os.statvfs(small_disk)
    (small_disk / "filler").write_bytes(b"\0" * (disk.f_bavail * disk.f_frsize - room))
    status, _out, err = run_main(["train", *common, "--epochs", 3, "--out", "disk/run"], capsys)
    assert err.strip().splitlines() == [
        f"scratchcnn: error: cannot write {Path('disk/run/checkpoint.npz')}: No space left on device "
        "(the previous checkpoint is intact)"], err
    assert status == 2
    run = small_disk / "run"
    assert {p.name for p in run.iterdir()} == {"checkpoint.npz"}  # no temporary file, no lock
    assert load_checkpoint(run / "checkpoint.npz")[1].epoch == 1
    (small_disk / "filler").unlink()
    status, _out, err = run_main(["train", "--resume", "disk/run", "--data-dir", fake], capsys)
    assert status == 0, err
    summary = assert_one_consistent_run(run, epochs=3)
    assert np.isfinite(summary["test_accuracy"])
