"""A run folder: the one owner of a training run's files on disk, used by one process at a time.

    DIR/checkpoint.npz   after every epoch (resume from it)
    DIR/model.npz        the trained network        } written when
    DIR/history.json     the run's summary          } the run ends
    DIR/history.csv      one row per epoch          }
    DIR/07-accuracy.png, DIR/08-confusion.png       the training figures
    DIR/.lock            held (flock) by the process using the folder

The lock is an advisory ``flock`` that the operating system drops when its process ends, however it
ends, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scratchcnn.errors import ScratchCNNError, first_line
from scratchcnn.files import write_text_atomically

TRAINING_FIGURES = {"accuracy": "07-accuracy", "confusion": "08-confusion"}  # key → file stem


class RunDirError(ScratchCNNError):
    """A run folder is busy, already holds a run, or holds a file scratchcnn did not write."""


class RunDir:
    """The files of one training run in ``path``."""

    MODEL = "model.npz"
    CHECKPOINT = "checkpoint.npz"
    SUMMARY = "history.json"
    HISTORY_CSV = "history.csv"
    LOCK = ".lock"
    REPORT = "report.html"  # written by scratchcnn report
    EXPLORER = "explorer.html"  # written by scratchcnn explore
    TUNING = "tuning.json"  # written by scratchcnn tune
    OVERTRAINING = "overtraining.json"  # written by scratchcnn overtrain

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.model, self.checkpoint = self.path / self.MODEL, self.path / self.CHECKPOINT
        self.summary, self.history_csv = self.path / self.SUMMARY, self.path / self.HISTORY_CSV

    @classmethod
    def of_model(cls, model: str | os.PathLike) -> RunDir:
        """The run folder a model file sits in."""
        return cls(Path(model).parent)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def figure(self, key: str, fmt: str = "png") -> Path:
        """Where train writes its figure ``key`` ("accuracy" or "confusion")."""
        return self.path / f"{TRAINING_FIGURES[key]}.{fmt}"

    def outputs(self) -> list[Path]:
        """Every file a finished run leaves, checkpoint first."""
        return [self.checkpoint, self.model, self.summary, self.history_csv,
                *(self.figure(key) for key in TRAINING_FIGURES)]

    def derived(self) -> list[Path]:
        """Pages made from a run (they describe it, so they go with it)."""
        return [self.path / self.REPORT, self.path / self.EXPLORER]

    def existing(self) -> list[str]:
        """The names of this folder's run files that exist: empty when it holds no run."""
        return [path.name for path in self.outputs() if path.exists()]

    def refuse_existing(self) -> None:
        """RunDirError, saying the two ways on, when the folder already holds a run."""
        found = self.existing()
        if found:
            raise RunDirError(f"{self.path} already holds a run ({', '.join(found)}): continue it with "
                              f"--resume {self.path}, or replace it with --overwrite")

    def remove_outputs(self, keep_checkpoint: bool = True) -> None:
        """Delete the previous run's files and pages (for --overwrite, once the new run has something to
        show; the checkpoint is then about to be replaced atomically, so it is kept until that moment)."""
        for path in [*self.outputs()[1 if keep_checkpoint else 0:], *self.derived()]:
            path.unlink(missing_ok=True)

    # ---- one process at a time ----------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[RunDir]:
        """Hold the folder's lock for the duration; RunDirError naming the holder's pid if another has it.

        Creates the folder; a folder created here that is left holding nothing but the lock (the run
        failed before writing anything) is removed again.
        """
        created = not self.path.exists()
        lock_path = self.path / self.LOCK
        fd = self._acquire(lock_path)
        try:
            yield self
        finally:
            lock_path.unlink(missing_ok=True)  # before the flock goes: see _acquire
            if created:  # a run that failed before writing anything leaves no empty folder behind
                with contextlib.suppress(OSError):
                    self.path.rmdir()
            os.close(fd)

    def _acquire(self, lock_path: Path) -> int:
        """Open and flock the lock file; its descriptor. The file (and an empty folder made for it) is
        removed on release, so a lock won on a file that has just been removed is retried on a new one."""
        while True:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except (FileNotFoundError, FileExistsError):  # the folder went away under us: try again
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise RunDirError(f"{self.path} is in use by another scratchcnn process (pid {holder}); wait for "
                                  "it to finish or choose another folder") from None
            try:
                same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode("ascii"))
                return fd
            os.close(fd)

    # ---- the summary: history.json --------------------------------------------------------------

    def write_summary(self, summary: dict[str, Any], history_csv: str) -> None:
        write_text_atomically(self.summary, json.dumps(summary, indent=2) + "\n")
        write_text_atomically(self.history_csv, history_csv)

    def read_summary(self) -> dict[str, Any] | None:
        """history.json checked, or None when the folder has none; RunDirError naming it when damaged."""
        summary = self.read_json(self.SUMMARY)
        problem = summary_problem(summary) if summary is not None else None
        if problem:
            raise RunDirError(f"{self.summary}: not a history.json written by scratchcnn train ({problem})")
        return summary

    def data_dir(self, given: str | os.PathLike | None = None) -> Path | None:
        """Where to look for the run's dataset: ``given`` (a --data-dir) if any, else the data directory the
        run was trained from (history.json records it) while it still exists, else None (the usual search).

        So every command on a run or its model finds the data train used, with no flag or variable again.
        """
        if given is not None:
            return Path(given)
        try:
            summary = self.read_summary()
        except RunDirError:
            return None
        recorded = (summary or {}).get("data", {})
        directory = Path(recorded["directory"]) if isinstance(recorded, dict) and "directory" in recorded else None
        return directory.parent if directory is not None and directory.is_dir() else None

    def read_json(self, name: str) -> dict[str, Any] | None:
        """The JSON object in the folder's file ``name``; None if there is none; RunDirError if unreadable."""
        path = self.path / name
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise RunDirError(f"{path}: cannot be read as JSON ({first_line(error)})") from None
        if not isinstance(value, dict):
            raise RunDirError(f"{path}: expected a JSON object, found {type(value).__name__}")
        return value


def _holder(fd: int) -> str:
    """The pid the lock's holder wrote, waiting briefly for a holder that has only just won the lock."""
    for _ in range(50):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text:
            return text
        time.sleep(0.01)
    return "unknown"


EPOCH_NUMBERS = ("train_accuracy", "train_loss", "validation_accuracy", "validation_loss", "seconds")


def summary_problem(summary: Any) -> str | None:
    """What is wrong with a parsed history.json, or None when it is one train writes."""
    history = summary.get("history")
    if not isinstance(history, list):
        return "no per-epoch 'history' list"
    for n, epoch in enumerate(history, 1):
        if not isinstance(epoch, dict) or not _is_count(epoch.get("epoch")):
            return f"history entry {n} has no epoch number"
        wrong = [key for key in EPOCH_NUMBERS if not _is_number(epoch.get(key), optional=True)]
        if wrong:
            return f"history entry {n}: {wrong[0]} is {epoch.get(wrong[0])!r}, not a number"
    if not isinstance(summary.get("options", {}), dict):
        return "'options' is not an object"
    if not _is_number(summary.get("test_accuracy"), optional=True):
        return f"test_accuracy is {summary.get('test_accuracy')!r}, not a number"
    matrix = summary.get("confusion_matrix")
    if matrix is not None and not (isinstance(matrix, list) and all(
            isinstance(row, list) and len(row) == len(matrix) and all(_is_count(v) for v in row) for row in matrix)):
        return "confusion_matrix is not a square table of counts"
    return None


def _is_number(value: Any, optional: bool = False) -> bool:
    if value is None:
        return optional
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
