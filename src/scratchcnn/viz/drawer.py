"""Drawing in a second process while the first one works: ``scratchcnn train`` forks it at the start, so
that matplotlib is imported (~0.75 s) on the other core while Numba starts and the network trains; the
figures are then drawn there as soon as the run's results are sent.

Only where a process can fork (Linux) and has two CPUs; elsewhere, and whenever the second process fails,
the figures are drawn in the caller as before (so that a real error, e.g. a full disk, is raised there).
Importing this module imports no matplotlib: the child does that.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

from scratchcnn.cpus import usable_cpus


def forked_workers(jobs: int) -> int:
    """How many forked processes are worth starting for ``jobs`` pieces of drawing: one per CPU this process
    may use, at most one per job; 0 where a process cannot fork (not Linux) or has one CPU."""
    if not hasattr(os, "sched_getaffinity") or "fork" not in multiprocessing.get_all_start_methods():
        return 0  # Linux only: elsewhere fork() is missing or unsafe under a GUI's threads
    workers = min(usable_cpus(), jobs)
    return workers if workers >= 2 else 0


class Drawer:
    """``Drawer(draw)``, a context manager; ``drawer(*args)`` runs ``draw(*args)``, in the second process
    if there is one (its matplotlib already imported), and returns when the figures are written."""

    def __init__(self, draw: Callable[..., None]) -> None:
        self.draw = draw
        self.process: Any = None
        if forked_workers(2):  # this process goes on working: the other CPU draws
            context = multiprocessing.get_context("fork")
            self.connection, theirs = context.Pipe()
            sys.stdout.flush()  # a forked child would write out a copy of what is still buffered
            sys.stderr.flush()
            # Not a daemon: a daemon may not fork, and draw may (figures_bytes). It ends when the pipe closes.
            self.process = context.Process(target=_serve, args=(theirs, self.connection, draw))
            self.process.start()
            theirs.close()

    def __call__(self, *args: Any) -> None:
        if self.process is not None:
            try:
                self.connection.send(args)
                if self.connection.recv():  # True: drawn
                    return
            except (EOFError, OSError):  # the second process is gone: draw here
                pass
            finally:
                self.close()
        self.draw(*args)  # also when the second process failed: any error is raised here, as it would be

    def close(self) -> None:
        if self.process is not None:
            self.connection.close()
            self.process.join(timeout=5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
            self.process = None

    def __enter__(self) -> Drawer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _serve(connection: Connection, first_end: Connection, draw: Callable[..., None]) -> None:
    """The second process: import matplotlib now, then draw what is sent (once), and say whether it did.

    It closes its copy of the first process's end of the pipe, so that the first one ending in any way
    (even SIGKILL) ends this one too: recv() then sees the pipe closed.
    """
    first_end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the first process's to handle
    import scratchcnn.viz.figures  # noqa: F401  (the point of this process: imported while the other trains)

    try:
        args = connection.recv()
    except (EOFError, OSError):  # the first process closed the pipe without sending: nothing to draw
        return
    try:
        draw(*args)
        drawn = True
    except Exception:  # the first process draws again, and raises it there
        drawn = False
    with contextlib.suppress(OSError):  # the first process is gone: nobody to tell
        connection.send(drawn)
