"""The second process that draws train's figures (viz/drawer.py): the same files as drawing in-process,
errors raised in the caller as before, and no process left behind."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from scratchcnn.viz.drawer import Drawer


def write_two(folder: Path, text: str) -> None:
    """A stand-in for write_training_figures: what it writes, and in which process."""
    (folder / "a.txt").write_text(text)
    (folder / "who.txt").write_text(multiprocessing.current_process().name)


def refuse(folder: Path, text: str) -> None:
    raise OSError(28, "No space left on device", str(folder / "a.txt"))


def test_draws_in_a_second_process_and_waits_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork() here (not Linux): the figures are drawn in-process, as the one-CPU test checks")
    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0, 1}, raising=False)  # whatever this machine has
    with Drawer(write_two) as drawer:
        child = drawer.process
        assert child is not None
        drawer(tmp_path, "figures")
        assert not child.is_alive()  # it has finished writing when the call returns
    assert (tmp_path / "a.txt").read_text() == "figures"
    assert (tmp_path / "who.txt").read_text() != multiprocessing.current_process().name


def test_an_error_is_raised_by_the_caller_as_before(tmp_path: Path) -> None:
    with Drawer(refuse) as drawer, pytest.raises(OSError, match="No space left on device"):
        drawer(tmp_path, "figures")
    assert drawer.process is None


def test_nothing_is_left_running_when_nothing_was_drawn() -> None:
    """train failing before its figures (a bad dataset, Ctrl-C) leaves no process waiting."""
    with pytest.raises(RuntimeError), Drawer(write_two) as drawer:
        child = drawer.process
        raise RuntimeError("the run failed")
    assert drawer.process is None and (child is None or not child.is_alive())


def test_one_cpu_draws_in_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0}, raising=False)
    with Drawer(write_two) as drawer:
        assert drawer.process is None
        drawer(tmp_path, "figures")
    assert (tmp_path / "who.txt").read_text() == multiprocessing.current_process().name


def test_a_killed_train_leaves_no_drawer_behind(tmp_path: Path) -> None:
    """SIGKILL gives the first process no time to clean up: the second one sees the pipe close and ends,
    so that whoever reads the killed process's output is not kept waiting (the resume tests read it)."""
    code = ("import os, signal\nfrom scratchcnn.viz.drawer import Drawer\n"
            "drawer = Drawer(print)\nprint(drawer.process and drawer.process.pid, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    # run() returns once the pipes close: the second process, which shares them, has ended as well (else:
    # TimeoutExpired); it was started (a pid, not None) on a machine that can fork
    assert proc.returncode == -signal.SIGKILL and proc.stdout.split()
