"""Where a sweep's points run: local worker processes, or the workers of a Dask cluster.

Both offer ``submit(point)``, ``pending()`` and ``next()`` → (point, (outcome, value)), outcome "done"
(value: the record), "error" (a line: the point cannot run) or "lost" (its worker died; sweep_run.py
decides whether to run it again). Each worker process loads a dataset once, whatever number of points it
runs, and does its arithmetic on one BLAS thread: the processes are the parallelism.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import signal
from collections import deque
from multiprocessing.connection import Connection, wait
from types import TracebackType
from typing import Any

from scratchcnn.cpus import usable_cpus
from scratchcnn.errors import ConfigError
from scratchcnn.train.sweep_run import Runner, run_point, work
from scratchcnn.train.sweep_spec import Point

Outcome = tuple[Point, tuple[str, Any]]


class Backend:
    def __enter__(self) -> Backend:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        pass


class InThisProcess(Backend):
    """The points one after the other in this process: ``tune --jobs 1`` (a crash here is the caller's)."""

    def __init__(self, directories: dict[str, str], runner: Runner = run_point) -> None:
        self.directories, self.runner = directories, runner
        self.queue: deque[Point] = deque()

    def submit(self, point: Point) -> None:
        self.queue.append(point)

    def pending(self) -> int:
        return len(self.queue)

    def next(self) -> Outcome:
        point = self.queue.popleft()
        return point, work(point.options, self.directories, self.runner)


class LocalProcesses(Backend):
    """``jobs`` worker processes on this machine (forked where the system can), each running one point at a
    time. A worker that dies is replaced; its point comes back as "lost". A worker whose client dies (even
    by SIGKILL) sees its pipe close and ends."""

    def __init__(self, jobs: int, directories: dict[str, str], runner: Runner = run_point) -> None:
        methods = multiprocessing.get_all_start_methods()
        self.context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.jobs, self.directories, self.runner = jobs, directories, runner
        self.queue: deque[Point] = deque()
        self.workers: dict[Connection, tuple[Any, Point | None]] = {}  # our end → (process, its point)

    def _start_worker(self) -> None:
        mine, theirs = self.context.Pipe()
        inherited = [*self.workers, mine] if self.context.get_start_method() == "fork" else []
        process = self.context.Process(target=_serve, args=(theirs, inherited, self.directories, self.runner),
                                       daemon=True)
        process.start()
        theirs.close()
        self.workers[mine] = (process, None)

    def submit(self, point: Point) -> None:
        self.queue.append(point)
        self._hand_out()

    def _hand_out(self) -> None:
        while len(self.workers) < self.jobs and len(self.workers) < self.pending():
            self._start_worker()
        for connection, (process, point) in list(self.workers.items()):
            if point is None and self.queue:
                point = self.queue.popleft()
                self.workers[connection] = (process, point)
                with contextlib.suppress(OSError):  # died idle: its sentinel says so in next()
                    connection.send(point.options)

    def pending(self) -> int:
        return len(self.queue) + sum(point is not None for _, point in self.workers.values())

    def next(self) -> Outcome:
        busy = {c: p for c, (p, point) in self.workers.items() if point is not None}
        while True:
            ready = wait(list(busy) + [p.sentinel for p in busy.values()])
            for connection, process in busy.items():
                if connection in ready:
                    try:
                        outcome = connection.recv()
                    except (EOFError, OSError):
                        outcome = None
                    if outcome is not None:
                        point = self.workers[connection][1]
                        self.workers[connection] = (process, None)
                        self._hand_out()
                        return point, outcome
                if connection in ready or process.sentinel in ready:
                    return self._lost(connection, process)

    def _lost(self, connection: Connection, process: Any) -> Outcome:
        point = self.workers.pop(connection)[1]
        connection.close()
        process.join(timeout=1)
        code = process.exitcode
        why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        self._hand_out()
        return point, ("lost", f"the worker process (pid {process.pid}) ended: {why}")

    def close(self) -> None:
        for connection, (process, _) in self.workers.items():
            connection.close()  # an idle worker ends on the closed pipe; a busy one is stopped
            process.join(timeout=0.5)
            if process.is_alive():
                process.kill()
                process.join()
        self.workers.clear()


def _serve(connection: Connection, inherited: list[Connection], directories: dict[str, str], runner: Runner) -> None:
    """A worker: run points as they come until the client closes the pipe (or dies)."""
    for other in inherited:  # the client's ends of every pipe, copied by fork: closed, so that EOF can come
        other.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the client's to handle
    _ready_for_points()
    while True:
        try:
            options = connection.recv()
            outcome = work(options, directories, runner)
            connection.send(outcome)
        except (EOFError, OSError):  # the client closed the pipe (stopped, or died): nobody to answer
            return


class DaskCluster(Backend):
    """The workers of the Dask cluster at ``address`` (tcp://HOST:8786), through dask.distributed."""

    def __init__(self, address: str, directories: dict[str, str], runner: Runner = run_point,
                 timeout: float = 10) -> None:
        try:
            from distributed import Client, as_completed
        except ImportError:
            raise ConfigError("--scheduler needs Dask: pip install 'scratchcnn[cluster]'") from None
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as error:
            raise ConfigError(f"cannot reach the Dask scheduler at {address}: {error}") from None
        self.client.register_plugin(_worker_plugin(), name="scratchcnn-sweep")  # also on workers started later
        self.directories, self.runner = directories, runner
        self.completed = as_completed(loop=self.client.loop)
        self.futures: dict[str, tuple[Any, Point]] = {}
        self.count = 0

    def submit(self, point: Point) -> None:
        self.count += 1
        future = self.client.submit(work, point.options, self.directories, self.runner, pure=False,
                                    key=f"scratchcnn-point-{point.key}-{self.count}")
        self.futures[future.key] = (future, point)
        self.completed.add(future)

    def pending(self) -> int:
        return len(self.futures)

    def next(self) -> Outcome:
        future = next(self.completed)
        point = self.futures.pop(future.key)[1]
        if future.status == "finished":
            return point, future.result()
        return point, ("lost", f"{type(future.exception()).__name__}: {future.exception()}")

    def close(self) -> None:
        if self.futures:
            self.client.cancel([future for future, _ in self.futures.values()])
        self.client.close()


def _worker_plugin() -> Any:
    """A Dask worker plugin that readies each worker process for points (made here: Dask is optional)."""
    from distributed import WorkerPlugin

    class ReadyForPoints(WorkerPlugin):
        def setup(self, worker: Any) -> None:
            _ready_for_points()

    return ReadyForPoints()


def _ready_for_points() -> None:
    """A worker process: one thread for BLAS and for scoring (the processes are the parallelism), and freed
    memory kept for reuse.

    Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_ set, which makes glibc map every large array
    afresh: scoring a point's 9 000 records then took ~4× as long (page faults on each new array). A
    point's arrays are the same sizes every epoch, so this process keeps what it frees instead.
    """
    from threadpoolctl import threadpool_limits

    from scratchcnn.nn.inputs import set_scoring_threads

    threadpool_limits(1)
    set_scoring_threads(1)
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: its defaults stand
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt's parameter numbers (malloc.h)
    libc.mallopt(m_mmap_threshold, 32 << 20)  # arrays up to 32 MB from the heap, reused once freed
    libc.mallopt(m_trim_threshold, 256 << 20)


def local_jobs(jobs: int | None, points: int) -> int:
    """Worker processes for ``points`` points: ``jobs``, else one per CPU this process may use."""
    return max(1, min(jobs or usable_cpus(), points))
