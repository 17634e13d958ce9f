"""Writing files so that a crash or a full disk never leaves a half-written one behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from scratchcnn.errors import WriteError


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object], what: str | None = None) -> Path:
    """Call write(file) on a temporary file beside ``path``, then rename it over ``path``.

    The rename is atomic on POSIX file systems: readers see the old file or the whole new one. A
    failure to write (a full disk, no permission) raises WriteError naming the file, and saying that
    the previous ``what`` (default: the file's name) is intact when there was one.
    """
    path = Path(path)
    existed = path.exists()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; give what open() would (0644 under umask 022)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as error:
        _remove(tmp)
        kept = f" (the previous {what or path.name} is intact)" if existed else ""
        raise WriteError(f"cannot write {path}: {error.strerror or error}{kept}") from None
    except BaseException:
        _remove(tmp)
        raise
    return path


def _remove(tmp: str | None) -> None:
    if tmp is not None:
        Path(tmp).unlink(missing_ok=True)


def write_text_atomically(path: str | os.PathLike, text: str, what: str | None = None) -> Path:
    """write_atomically for a UTF-8 text file."""
    return write_atomically(path, lambda fh: fh.write(text.encode("utf-8")), what)


def file_mode() -> int:
    """The permissions open() gives a new file: 0o666 less the umask (0o644 under umask 022)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask
