"""A sweep's folder: ``sweep.jsonl``, one finished point a line, appended as each point finishes.

A line is written with one ``write`` to a file opened for appending, then flushed to disk (fsync): a
crash leaves every earlier line whole and at worst the last one torn. A torn or unreadable last line is
cut off with a warning when the file is read, and its point runs again. The other files of the folder
(summary.csv, the figures, final/) are written from these lines and can always be written again.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from scratchcnn.errors import DataError, WriteError

RESULTS = "sweep.jsonl"
SUMMARY = "summary.csv"
BEST = "best.json"
FINAL = "final"  # the best configuration trained on training + validation and tested once: a run folder


class SweepFolder:
    """The folder DIR of ``scratchcnn sweep SPEC --out DIR``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.results = self.path / RESULTS
        self.summary = self.path / SUMMARY
        self.best = self.path / BEST
        self.final = self.path / FINAL

    def figure(self, name: str) -> Path:
        return self.path / f"{name}.png"

    def read(self, warn: Any = lambda message: None) -> list[dict[str, Any]]:
        """The finished points' records, in the order they finished (an absent file: none).

        A last line that is torn (no newline at its end) or not a JSON object is cut off the file, and
        ``warn`` is told; a bad line before the last is damage no crash makes: DataError.
        """
        try:
            data = self.results.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as error:
            raise DataError(f"cannot read {self.results}: {error.strerror or error}") from None
        lines = data.split(b"\n")
        records = []
        for number, line in enumerate(lines[:-1], start=1):
            record = _parse(line)
            if record is None:
                if number == len(lines) - 1 and not lines[-1]:  # the last whole line: a torn write's end
                    self._cut(len(data) - len(line) - 1, warn, number)
                    return records
                raise DataError(f"{self.results}: line {number} is not a point's record; the file is damaged "
                                f"(move it away to start the sweep over)")
            records.append(record)
        if lines[-1]:  # no newline after the last line: torn while written
            self._cut(len(data) - len(lines[-1]), warn, len(lines))
        return records

    def _cut(self, size: int, warn: Any, number: int) -> None:
        warn(f"{self.results}: line {number} was torn (the sweep was stopped while writing it); "
             "ignored, and its point runs again")
        try:
            os.truncate(self.results, size)
        except OSError as error:
            raise WriteError(f"cannot repair {self.results}: {error.strerror or error}") from None

    def append(self, record: dict[str, Any]) -> None:
        """Add one finished point's record as one line, on disk before this returns (NaN and ±inf as null)."""
        line = (json.dumps(_finite(record), separators=(",", ":"), allow_nan=False) + "\n").encode()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                written = os.write(fd, line)
                if written != len(line):  # a full disk part-way: leave no half line behind
                    os.ftruncate(fd, os.fstat(fd).st_size - written)
                    raise OSError(28, "No space left on device")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as error:
            raise WriteError(f"cannot write {self.results}: {error.strerror or error} (the points before this "
                             "one are kept)") from None

    def restart(self) -> None:
        """Start over (``--restart``): the finished points and the summary of them go (the figures and
        final/ are written anew when the sweep ends)."""
        for path in (self.results, self.summary, self.best):
            path.unlink(missing_ok=True)


def _finite(value: Any) -> Any:
    """value with every NaN or infinite float replaced by None: strict JSON, which any reader takes."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("key"), str) else None
