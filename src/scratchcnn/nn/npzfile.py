"""The file format of models and checkpoints: an .npz archive of arrays plus a JSON header.

The header is a 0-d string array named "header": {"format", "format_version", ...}. Reading never
unpickles anything, and checks every member against the header before it decompresses any array data:
a small file that declares a huge array (a zip bomb: gigabytes of deflated zeros) is refused from its
zip directory and .npy headers alone, without inflating or allocating what it declares.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy

from scratchcnn._version import __version__
from scratchcnn.errors import ModelFileError, ScratchCNNError, first_line
from scratchcnn.filekinds import IMAGE_KINDS, what_it_is
from scratchcnn.files import write_atomically

MAX_ELEMENTS = 10**8  # of one array, and parameters of one network: 400-800 MB, far above any real one
MAX_NPY_HEADER = 10_000  # bytes of one .npy header's text: numpy's own default limit
MAX_HEADER_BYTES = 16 * 2**20  # the JSON header member, stored as UTF-32: a checkpoint's grows ≈1 KB an epoch

Expected = tuple[np.dtype, tuple[int | None, ...]]
"""What a member must be: its dtype and shape; None for a length the header does not fix (≤ MAX_ELEMENTS)."""


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], header: dict[str, Any], what: str) -> Path:
    """Write arrays and the JSON header to one .npz, atomically: a crash never leaves half a file."""
    members = dict(arrays, header=np.array(json.dumps(header)))
    return write_atomically(Path(path), lambda fh: np.savez(fh, **members), what=what)


def read_npz(path: str | os.PathLike, what: str,
             expected: Callable[[np.ndarray | None], dict[str, Expected]]) -> dict[str, np.ndarray]:
    """All arrays of an .npz file, "header" included, once each agrees with what the header promises.

    ``expected`` takes the header array (None if there is none), checks it (ModelFileError if bad) and
    returns the other members' {name: (dtype, shape)}. The header (≤ MAX_HEADER_BYTES) is read first;
    every other member's size and .npy header are checked before any array data is decompressed.
    Nothing is ever unpickled. ModelFileError, one line naming the file, for anything amiss.
    """
    with _refusals(path, what):
        archive = _open_archive(path)
    with archive:
        with _refusals(path, what):
            members = _members(archive, path)
            header = _read_header(archive, members.pop("header"), path, what) if "header" in members else None
        needs = expected(header)  # outside _refusals: the caller's own errors are not "not our file"
        if set(members) != set(needs):
            raise ModelFileError(f"{path}: holds arrays {sorted(members)}, its header needs {sorted(needs)}")
        with _refusals(path, what):
            for name, info in members.items():  # every member checked before any is inflated
                _check_array(archive, info, name, needs[name], path, what)
            arrays = {name: _read_member(archive, info) for name, info in members.items()}
    return arrays if header is None else dict(arrays, header=header)


@contextmanager
def _refusals(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Turn any failure to parse the file into one line naming it: a file that does not parse is not ours."""
    try:
        yield
    except ScratchCNNError:
        raise
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise WrongFileError(path, what, "a directory", _inside(Path(path), what)) from None
    except Exception as error:  # zipfile, zlib and numpy raise many kinds for a damaged file
        kind = what_it_is(Path(path))  # a file of another kind says what it is rather than why zipfile choked
        if kind is not None:
            raise WrongFileError(path, what, kind) from None
        raise ModelFileError(f"{path}: not a scratchcnn {what} file ({first_line(error)})") from None


class WrongFileError(ModelFileError):
    """A file of another kind (JSON, an image, text, a folder, ...) given for a model or checkpoint.

    The message says what the file is and what was wanted; ``path``, ``kind``, ``what`` and ``suggestion``
    (a file inside the folder that probably was meant, or None) let the command line name its command.
    """

    def __init__(self, path: str | os.PathLike, what: str, kind: str, suggestion: Path | None = None) -> None:
        self.path, self.what, self.kind, self.suggestion = Path(path), what, kind, suggestion
        self.head = f"{path}: {kind}, not a scratchcnn {what} file"
        wanted = f"did you mean {suggestion}?" if suggestion else WANTED.get(what, f"a {what}.npz")
        super().__init__(f"{self.head}: {wanted}")

    @property
    def is_image(self) -> bool:
        return self.kind in IMAGE_KINDS


WANTED = {  # what a model or checkpoint is, for a user who gave something else
    "model": "a model is the model.npz that scratchcnn train writes",
    "checkpoint": "a checkpoint is the checkpoint.npz that scratchcnn train writes after every epoch",
}
def _inside(folder: Path, what: str) -> Path | None:
    """FOLDER/<what>.npz when it exists: a run folder holds model.npz and checkpoint.npz."""
    candidate = folder / f"{what}.npz"
    return candidate if candidate.is_file() else None


def _open_archive(path: str | os.PathLike) -> zipfile.ZipFile:
    """The file as a zip archive (reads only its directory); a lone .npy gets a clearer reason than "not a zip"."""
    with open(path, "rb") as fh:
        if fh.read(len(npy.MAGIC_PREFIX)) == npy.MAGIC_PREFIX:
            raise ValueError("a single .npy array, not an .npz archive")
    return zipfile.ZipFile(path)


def _members(archive: zipfile.ZipFile, path: str | os.PathLike) -> dict[str, zipfile.ZipInfo]:
    """{array name: zip entry}: np.savez names a member "<name>.npy", np.load takes it with or without .npy."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if name in members:  # which of the two would a reader take? Refuse rather than guess
            raise ModelFileError(f"{path}: holds array {name} twice")
        members[name] = info
    return members


def _read_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str | os.PathLike,
                 what: str) -> np.ndarray:
    """The header member as an array (any dtype and shape: the caller checks it), at most MAX_HEADER_BYTES."""
    if info.file_size > MAX_HEADER_BYTES:  # from the zip directory: nothing inflated yet
        raise ModelFileError(f"{path}: member {info.filename} unpacks to {info.file_size:,} bytes, "
                             f"more than a scratchcnn header's {MAX_HEADER_BYTES:,}")
    dtype, shape, npy_bytes = _declared(archive, info, "header", path, what)
    _check_size_agrees(info, npy_bytes, dtype, shape, path)
    return _read_member(archive, info)


def _check_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, needs: Expected,
                 path: str | os.PathLike, what: str) -> None:
    """Check one array member from its .npy header and the zip directory alone: none of its data is inflated.

    Its dtype and shape must be ``needs`` (a length left open at most MAX_ELEMENTS) and its uncompressed size
    in the zip directory exactly that .npy header plus the data: reading it then allocates only what the
    header promises, and zipfile, which stops at the directory's size, inflates no more.
    """
    dtype, shape, npy_bytes = _declared(archive, info, name, path, what)
    dtype_needed, shape_needed = needs
    fits = len(shape) == len(shape_needed) and all(n in (None, m) for n, m in zip(shape_needed, shape, strict=True))
    if dtype != dtype_needed or not fits:
        raise ModelFileError(f"{path}: array {name} declares {dtype} {shape}, its header needs "
                             f"{dtype_needed} {_shape_text(shape_needed)}")
    if math.prod(shape) > MAX_ELEMENTS:  # only a length the header leaves open (None) gets here so large
        raise ModelFileError(f"{path}: array {name} declares {dtype} {shape}, more than {MAX_ELEMENTS:,} elements")
    _check_size_agrees(info, npy_bytes, dtype, shape, path)


def _declared(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, path: str | os.PathLike,
              what: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, shape, bytes of the .npy header) a member declares, inflating at most its first ≈10 KB."""
    with archive.open(info) as member:  # zipfile inflates only what is read
        # The prefix alone: numpy reads whatever header length a 2.0 header declares (up to 4 GB) before checking it
        stream = io.BytesIO(member.read(len(npy.MAGIC_PREFIX) + 6 + MAX_NPY_HEADER))
    try:
        version = npy.read_magic(stream)
    except ValueError:  # not the .npy magic string, or too short for it
        raise ModelFileError(f"{path}: member {name!r} is not a NumPy array") from None
    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}  # what np.save writes
    if version not in readers:
        raise ModelFileError(f"{path}: member {info.filename} is .npy version {version[0]}.{version[1]}, "
                             "which scratchcnn does not read")
    # fortran_order needs no check: np.save writes True for F-ordered arrays, and read_array lays them out so
    shape, _fortran_order, dtype = readers[version](stream, max_header_size=MAX_NPY_HEADER)
    npy_bytes = stream.tell()
    if dtype.hasobject:  # its data would be a pickle, which can run any code: never loaded
        raise ModelFileError(f"{path}: not a scratchcnn {what} file (array {name} holds pickled Python objects, "
                             "which scratchcnn never loads)")
    return dtype, shape, npy_bytes


def _check_size_agrees(info: zipfile.ZipInfo, npy_bytes: int, dtype: np.dtype, shape: tuple[int, ...],
                       path: str | os.PathLike) -> None:
    """The zip directory's uncompressed size must be the .npy header plus exactly the declared data."""
    declared = npy_bytes + dtype.itemsize * math.prod(shape)
    if info.file_size != declared:
        raise ModelFileError(f"{path}: member {info.filename} unpacks to {info.file_size:,} bytes, "
                             f"its .npy header declares {declared:,}")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """Decompress and read a checked member; never unpickles (allow_pickle=False)."""
    with archive.open(info) as stream:
        array = npy.read_array(stream, allow_pickle=False, max_header_size=MAX_NPY_HEADER)
        if stream.read(1):  # cannot happen after the size check; reading to the end makes zipfile check the CRC
            raise ValueError(f"member {info.filename} holds more than its array")
    return array


def _shape_text(shape: tuple[int | None, ...]) -> str:
    """A shape as Python prints it, "n" standing for a length the header leaves open: (10, 3), (n,)."""
    dims = ["n" if n is None else str(n) for n in shape]
    return f"({', '.join(dims)}{',' if len(dims) == 1 else ''})"


def check_saved_arrays(arrays: dict[str, np.ndarray], expected: dict[str, Expected], where: str) -> None:
    """Refuse saved parameters that are not exactly the arrays the header promises, or hold NaN/infinity."""
    if set(arrays) != set(expected):
        raise ModelFileError(f"{where}: holds arrays {sorted(arrays)}, its header needs {sorted(expected)}")
    for name, value in arrays.items():
        dtype, shape = expected[name]
        if value.shape != tuple(shape) or value.dtype != dtype:
            raise ModelFileError(f"{where}: array {name} is {value.dtype} {value.shape}, its header needs "
                                 f"{dtype} {tuple(shape)}")
        if not np.isfinite(value).all():
            raise ModelFileError(f"{where}: array {name} holds NaN or infinite values")


def read_json_header(raw: np.ndarray | None, where: str, file_format: str, version: int,
                     sections: tuple[str, ...]) -> dict[str, Any]:
    """Parse the JSON header stored as a 0-d string array; check its format, version and sections."""
    if raw is None or raw.shape != () or raw.dtype.kind != "U":
        raise ModelFileError(f"{where}: no scratchcnn header (expected a {file_format} file)")
    try:
        header = json.loads(str(raw))
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{where}: header is not valid JSON ({error})") from None
    if not isinstance(header, dict) or header.get("format") != file_format:
        raise ModelFileError(f"{where}: not a {file_format} file")
    if header.get("format_version") != version:
        raise ModelFileError(
            f"{where}: file format version {header.get('format_version')} is not supported "
            f"(this scratchcnn {__version__} reads version {version})"
        )
    for key in sections:
        if not isinstance(header.get(key), dict):
            raise ModelFileError(f"{where}: header has no {key}")
    return header
