"""The IDX file format of MNIST and Fashion-MNIST: reading and writing.

IDX: 2 zero bytes, a type code, the number of dimensions d, then d big-endian uint32 sizes, then the
values, big-endian, in C order. Files may be gzip-compressed (recognised by content, not by name).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from scratchcnn.errors import DataError
from scratchcnn.filekinds import GZIP_MAGIC, IDX_TYPES
from scratchcnn.files import write_atomically

MAX_GZIP_RATIO = 1032  # deflate cannot expand more than this: bounds what a .gz file can justify



def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or plain, into an array of its shape (native byte order).

    Raises DataError naming the file and the fault for anything that is not a complete IDX file;
    the header is checked against the file's size before any memory is allocated for the values.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as raw:
            compressed = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            if not compressed:
                return _read_idx_stream(raw, path, size, exact=True)
            with gzip.GzipFile(fileobj=raw) as fh:
                return _read_idx_stream(fh, path, size * MAX_GZIP_RATIO, exact=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an IDX file") from None
    except (gzip.BadGzipFile, zlib.error, EOFError) as error:
        raise DataError(f"{path}: corrupt or truncated gzip data ({str(error) or type(error).__name__})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None


def _read_idx_stream(fh: BinaryIO, path: Path, size_bound: int, exact: bool) -> np.ndarray:
    """Parse header and values; ``size_bound`` is the most bytes the file can hold (exact if plain)."""
    magic = fh.read(4)
    if len(magic) < 4:
        raise DataError(f"{path}: empty or truncated file (no IDX header)")
    if magic[:2] != b"\0\0" or magic[2] not in IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (magic number {magic.hex()})")
    ndim = magic[3]
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares no dimensions")
    dims_bytes = fh.read(4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", dims_bytes)
    dtype = np.dtype(IDX_TYPES[magic[2]])
    header_bytes = 4 + 4 * ndim
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if expected > size_bound - header_bytes:
        what = "is" if exact else "can hold at most"
        raise DataError(
            f"{path}: header declares shape {shape} ({expected} bytes of data) but the file {what} "
            f"{max(size_bound - header_bytes, 0)} bytes: truncated or corrupt"
        )
    data = _read_up_to(fh, expected)
    if len(data) < expected:
        raise DataError(f"{path}: truncated: {len(data)} of the {expected} data bytes its header declares")
    if fh.read(1):
        raise DataError(f"{path}: more data than its header shape {shape} declares")
    try:
        return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    except ValueError:  # e.g. a shape with a 0 whose other sizes overflow NumPy's index range
        raise DataError(f"{path}: header shape {shape} cannot be represented as an array") from None


def _read_up_to(fh: BinaryIO, count: int, chunk: int = 1 << 24) -> bytes:
    """Read at most count bytes in chunks, so memory grows with the data actually there, not the claim."""
    parts, total = [], 0
    while total < count:
        part = fh.read(min(chunk, count - total))
        if not part:
            break
        parts.append(part)
        total += len(part)
    return b"".join(parts)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an array as IDX, gzip-compressed when the name ends in .gz, atomically."""
    array = np.asarray(array)
    codes = {np.dtype(t).newbyteorder("="): code for code, t in IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"{path}: IDX cannot store dtype {array.dtype}; use one of {sorted(map(str, codes))}")
    if not 1 <= array.ndim <= 255 or max(array.shape) >= 2**32:
        raise DataError(f"{path}: IDX cannot store shape {array.shape}")
    body = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    body += np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()
    if str(path).endswith(".gz"):
        body = gzip.compress(body, mtime=0)  # mtime 0: the same array always gives the same bytes
    return write_atomically(path, lambda fh: fh.write(body))
