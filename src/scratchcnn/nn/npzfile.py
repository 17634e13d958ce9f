"""The file format of models and checkpoints: an .npz archive of arrays plus a JSON header.

The header is a 0-d string array named "header": {"format", "format_version", ...}. Reading never
unpickles anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from scratchcnn._version import __version__
from scratchcnn.errors import ModelFileError, first_line
from scratchcnn.files import write_atomically


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], header: dict[str, Any], what: str) -> Path:
    """Write arrays and the JSON header to one .npz, atomically: a crash never leaves half a file."""
    members = dict(arrays, header=np.array(json.dumps(header)))
    return write_atomically(Path(path), lambda fh: np.savez(fh, **members), what=what)


def read_npz(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    """All arrays of an .npz file, never unpickling anything; ModelFileError if it is not one."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with loaded as npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a directory, not a {what} file") from None
    except Exception as error:  # any failure to parse means the file is not ours: say so in one line
        raise ModelFileError(f"{path}: not a scratchcnn {what} file ({first_line(error)})") from None
    not_arrays = [name for name, value in arrays.items() if not isinstance(value, np.ndarray)]
    if not_arrays:  # np.load hands back raw bytes for a zip member that is not an .npy
        raise ModelFileError(f"{path}: member {not_arrays[0]!r} is not a NumPy array")
    return arrays


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
