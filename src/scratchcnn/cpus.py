"""How many CPUs this process may use: what every pool of threads or processes in scratchcnn is sized by."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. under taskset or a container's limit), at least 1."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
