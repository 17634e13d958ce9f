"""Model and checkpoint files are checked against their own header before any array data is decompressed.

A zip bomb (a small .npz whose member declares gigabytes: deflated zeros, or a zip directory that just
claims it) must be refused from the zip directory and the .npy headers alone, in bounded memory and in
one line. The files are built by hand (a few lines of zip format below): zipfile can neither take an
already deflated stream nor write a directory entry whose size is a lie.
"""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from scratchcnn import ConvNet
from scratchcnn.errors import ModelFileError
from scratchcnn.nn.npzfile import MAX_ELEMENTS
from scratchcnn.train import History, TrainState
from scratchcnn.train.checkpoint import load_checkpoint, save_checkpoint
from scratchcnn.train.rundir import RunDir

PEAK_MB = 200  # a refusing process's peak resident memory: ≈80 MB is Python, NumPy and scratchcnn themselves
W_SHAPE = (10, 3, 14, 14)  # the default network's dense weights
GB = 10**9

# ---- building files by hand ---------------------------------------------------------------------


class Member(NamedTuple):
    """A zip member as written: name, raw deflate stream, CRC-32, and the uncompressed size its entries declare."""

    name: str
    deflated: bytes
    crc: int
    size: int


def deflate(content: bytes, zeros: int = 0, chunk: int = 8 << 20, crc: bool = True) -> tuple[bytes, int, int]:
    """(raw deflate stream, CRC-32, length) of ``content`` followed by ``zeros`` zero bytes, made cheaply.

    After a full flush the compressor starts afresh, so every chunk of zeros deflates to the same block:
    deflate one and repeat it. 2.4 GB of zeros deflate to ≈2.4 MB in ≈1 s, the CRC's time; with crc=False
    the CRC is 0, wrong: for a file that must be refused long before anything checks it.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = [compressor.compress(content) + compressor.flush(zlib.Z_FULL_FLUSH)]
    checksum = zlib.crc32(content)
    count, rest = divmod(zeros, chunk)
    if count:
        zero_chunk = bytes(chunk)
        block = compressor.compress(zero_chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
        stream.append(block * count)
        for _ in range(count if crc else 0):
            checksum = zlib.crc32(zero_chunk, checksum)
    stream.append(compressor.compress(bytes(rest)) + compressor.flush())
    return b"".join(stream), zlib.crc32(bytes(rest), checksum) if crc else 0, len(content) + zeros


def member(name: str, content: bytes, zeros: int = 0, declared: int | None = None, chunk: int = 8 << 20,
           crc: bool = True) -> Member:
    """``content`` + ``zeros`` zero bytes, deflated; its entries declare ``declared`` bytes (default: the truth)."""
    deflated, checksum, size = deflate(content, zeros, chunk, crc)
    return Member(name, deflated, checksum, size if declared is None else declared)


def write_zip(path: Path, members: list[Member]) -> Path:
    """A zip archive of deflated members, each declaring the size it says; from 4 GiB in a zip64 extra field."""
    body, directory = bytearray(), bytearray()
    for m in members:
        name, zip64 = m.name.encode(), m.size >= 0xFFFFFFFF
        size32, version = (0xFFFFFFFF, 45) if zip64 else (m.size, 20)
        local_extra = struct.pack("<HHQQ", 1, 16, m.size, len(m.deflated)) if zip64 else b""
        central_extra = struct.pack("<HHQ", 1, 8, m.size) if zip64 else b""  # only the field marked 0xFFFFFFFF
        offset = len(body)
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", version, 0, zipfile.ZIP_DEFLATED, 0, 0x21, m.crc,
                            0xFFFFFFFF if zip64 else len(m.deflated), size32, len(name), len(local_extra))
        body += name + local_extra + m.deflated
        directory += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", version, version, 0, zipfile.ZIP_DEFLATED, 0, 0x21,
                                 m.crc, len(m.deflated), size32, len(name), len(central_extra), 0, 0, 0, 0, offset)
        directory += name + central_extra
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), len(body), 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(body + directory + end))
    return path


def npy_header(dtype: str, shape: tuple[int, ...], version: tuple[int, int] = (1, 0)) -> bytes:
    """The .npy header alone, declaring ``dtype`` and ``shape``, as np.save would write it."""
    buffer = io.BytesIO()
    fields = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    writer = {(1, 0): np.lib.format.write_array_header_1_0, (2, 0): np.lib.format.write_array_header_2_0}[version]
    writer(buffer, fields)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def members_of(path: Path) -> dict[str, Member]:
    """The members of a genuine .npz, re-deflated: {array name: Member}, to swap one for a bomb."""
    with zipfile.ZipFile(path) as archive:
        return {name.removesuffix(".npy"): member(name, archive.read(name)) for name in archive.namelist()}


def model_members(**config: object) -> dict[str, Member]:
    """The members of the default network's file, its header's config changed by ``config``."""
    net = ConvNet()
    header = net.header()
    header["config"].update(config)
    return {"header": member("header.npy", npy_bytes(np.array(json.dumps(header)))),
            "f": member("f.npy", npy_bytes(net.f)), "W": member("W.npy", npy_bytes(net.W))}


def bomb(name: str, dtype: str, shape: tuple[int, ...], zeros: int = 0, declared: int | None = None) -> Member:
    """A member whose .npy header declares ``shape``, followed by ``zeros`` zeros; entries declare ``declared``."""
    header = npy_header(dtype, shape)
    return member(f"{name}.npy", header, zeros, declared)


def full_size(dtype: str, shape: tuple[int, ...]) -> int:
    """What a member declaring ``shape`` honestly unpacks to: its .npy header and data."""
    return len(npy_header(dtype, shape)) + np.dtype(dtype).itemsize * int(np.prod(shape, dtype=object))


# ---- refusing, and measuring the process that refuses ------------------------------------------


def refused(load, path: Path, *needles: str) -> str:
    """``load(path)`` raises a one-line ModelFileError naming the file and holding every needle."""
    with pytest.raises(ModelFileError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


# Runs the command and prints its peak RSS (KB) and exit status. A fresh, small process does the fork:
# Linux counts the pages a child shares with its parent between fork and exec in the child's peak, so
# forking from a pytest process that has grown large would measure pytest, not scratchcnn.
MEASURE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
_pid, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_measured(*args: object, cwd: Path) -> tuple[int, str, int]:
    """Run ``python -m scratchcnn ARGS`` with no dataset and no downloads: (status, stderr, peak RSS in MB)."""
    env = dict(os.environ, HOME=str(cwd), SCRATCHCNN_DATA=str(cwd / "no-data"))
    done = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "scratchcnn", *map(str, args)],
                          cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    peak_kb, status = (int(word) for word in done.stdout.split())
    return status, done.stderr, peak_kb // 1024  # ru_maxrss is in KB on Linux


def refused_in_a_process(*args: object, cwd: Path, needles: tuple[str, ...]) -> None:
    """Exit status 2, one stderr line 'scratchcnn: error: ...' holding the needles, peak memory < PEAK_MB."""
    status, stderr, peak_mb = run_measured(*args, "--no-download", cwd=cwd)
    lines = stderr.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("scratchcnn: error: "), stderr
    assert peak_mb < PEAK_MB, f"peak memory {peak_mb} MB refusing: {lines[0]}"
    for needle in needles:
        assert needle in lines[0], lines[0]


needs_wait4 = pytest.mark.skipif(not hasattr(os, "wait4"), reason="measures the child's memory with os.wait4")


# ---- genuine files still load -------------------------------------------------------------------


def test_a_hand_built_model_of_deflated_zeros_loads(tmp_path: Path) -> None:
    """The control for the bombs below: the hand-built zip, with W deflated zeros of the right size, is valid."""
    members = model_members()
    members["W"] = member("W.npy", npy_header("<f4", W_SHAPE), 4 * int(np.prod(W_SHAPE)), chunk=4096)
    net = ConvNet.load(write_zip(tmp_path / "m.npz", list(members.values())))
    assert net.W.shape == W_SHAPE and not net.W.any()
    assert net.f.tobytes() == ConvNet().f.tobytes()


@pytest.mark.parametrize("config", [{}, {"bias": True, "dtype": "float64", "filters": 5, "input_shape": (9, 12)}])
def test_a_genuine_model_loads_unchanged(tmp_path: Path, config: dict) -> None:
    net = ConvNet(**config, seed=4)
    if net.bias:
        net.b[...] = np.arange(10)
    loaded = ConvNet.load(net.save(tmp_path / "model.npz"))
    assert loaded.config == net.config
    for name, value in net.parameters().items():
        assert loaded.parameters()[name].dtype == value.dtype
        assert loaded.parameters()[name].tobytes() == value.tobytes()


def test_a_model_saved_in_fortran_order_loads(tmp_path: Path) -> None:
    """np.save writes fortran_order True for an F-ordered array: the reader accepts it and lays it out so."""
    net = ConvNet(seed=1)
    net.W = np.asfortranarray(net.W)
    assert not net.W.flags.c_contiguous
    loaded = ConvNet.load(net.save(tmp_path / "model.npz"))
    np.testing.assert_array_equal(loaded.W, net.W)


def genuine_checkpoint(path: Path, records: int = 7) -> tuple[ConvNet, TrainState]:
    net = ConvNet(bias=True, seed=2)
    rng = np.random.default_rng(5)
    state = TrainState(0, 0, rng.bit_generator.state, rng.permutation(records), 3, History())
    save_checkpoint(path, net, state, {"note": "test"})
    return net, state


def test_a_genuine_checkpoint_loads_unchanged(tmp_path: Path) -> None:
    net, state = genuine_checkpoint(tmp_path / "checkpoint.npz")
    loaded, loaded_state, options = load_checkpoint(tmp_path / "checkpoint.npz")
    assert options == {"note": "test"}
    assert loaded_state.order.tobytes() == state.order.tobytes() and loaded_state.position == 3
    assert loaded_state.rng_state == state.rng_state
    for name, value in net.parameters().items():
        assert loaded.parameters()[name].tobytes() == value.tobytes()


# ---- a member that declares gigabytes ------------------------------------------------------------

W_50GB = (12_500_000_000,)  # float32: 50 GB
NPY_HEADER_4GB = b"\x93NUMPY\x02\x00" + struct.pack("<L", 0xFFFFFFF0)  # a 2.0 .npy header declaring itself 4 GB long


@pytest.mark.parametrize(
    ("W", "needles"),
    [
        (lambda: bomb("W", "<f4", W_50GB, zeros=4096, declared=full_size("<f4", W_50GB)),
         ["array W declares float32 (12500000000,)", "its header needs float32 (10, 3, 14, 14)"]),
        (lambda: bomb("W", "<f4", W_50GB, zeros=4096),  # the directory tells the truth: 4 KB
         ["array W declares float32 (12500000000,)", "its header needs float32 (10, 3, 14, 14)"]),
        (lambda: bomb("W", "<f4", W_SHAPE, zeros=4096, declared=50 * GB),  # the .npy header tells the truth
         ["member W.npy unpacks to 50,000,000,000 bytes", "its .npy header declares 23,648"]),
        (lambda: member("W.npy", NPY_HEADER_4GB, 4096), ["not a scratchcnn model file", "EOF"]),
    ],
    ids=["npy-header-and-zip-directory", "npy-header-only", "zip-directory-only", "npy-header-length"],
)
def test_a_member_declaring_gigabytes_is_refused_from_its_headers(tmp_path: Path, W, needles: list[str]) -> None:
    members = model_members()
    members["W"] = W()
    path = write_zip(tmp_path / "model.npz", list(members.values()))
    assert path.stat().st_size < 10_000
    refused(ConvNet.load, path, *needles)


@needs_wait4
def test_scratchcnn_evaluate_refuses_50_gb_in_one_line_and_little_memory(tmp_path: Path) -> None:
    members = model_members()
    members["W"] = bomb("W", "<f4", W_50GB, zeros=4096, declared=full_size("<f4", W_50GB))
    write_zip(tmp_path / "run" / "model.npz", list(members.values()))
    refused_in_a_process("evaluate", Path("run", "model.npz"), cwd=tmp_path,
                         needles=(str(Path("run", "model.npz")), "array W declares float32 (12500000000,)"))


@needs_wait4
def test_scratchcnn_evaluate_refuses_a_4_gb_npy_header_without_reading_it(tmp_path: Path) -> None:
    """numpy reads the header length a 2.0 .npy header declares before checking it: it must get a prefix alone."""
    members = model_members()
    members["W"] = member("W.npy", NPY_HEADER_4GB, zeros=2**32, crc=False)
    write_zip(tmp_path / "model.npz", list(members.values()))
    refused_in_a_process("evaluate", "model.npz", cwd=tmp_path, needles=("model.npz", "EOF"))


@pytest.fixture(scope="module")
def deflated_zeros_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file from the issue: 2.4 MB, W.npy 600 000 000 float32 of genuinely deflated zeros (2.4 GB)."""
    members = model_members()
    members["W"] = bomb("W", "<f4", (600_000_000,), zeros=2_400_000_000)
    return write_zip(tmp_path_factory.mktemp("issue") / "model.npz", list(members.values()))


def test_the_deflated_zeros_file_of_the_issue_is_genuine(deflated_zeros_model: Path) -> None:
    """Its zip directory honestly says 2.4 GB: the reader must refuse it without believing it."""
    assert deflated_zeros_model.stat().st_size < 3_000_000
    with zipfile.ZipFile(deflated_zeros_model) as archive:
        assert archive.getinfo("W.npy").file_size == full_size("<f4", (600_000_000,))
        with archive.open("W.npy") as stream:
            assert np.lib.format.read_magic(stream) == (1, 0)
            assert np.lib.format.read_array_header_1_0(stream)[0] == (600_000_000,)
            assert not any(stream.read(1 << 20))


def test_the_deflated_zeros_file_of_the_issue_is_refused(deflated_zeros_model: Path) -> None:
    refused(ConvNet.load, deflated_zeros_model,
            "array W declares float32 (600000000,), its header needs float32 (10, 3, 14, 14)")


@needs_wait4
def test_scratchcnn_evaluate_refuses_the_issue_file_in_little_memory(deflated_zeros_model: Path,
                                                                      tmp_path: Path) -> None:
    refused_in_a_process("evaluate", deflated_zeros_model, cwd=tmp_path,
                         needles=(str(deflated_zeros_model), "array W declares float32 (600000000,)"))


# ---- a checkpoint's order, whose length the header does not give --------------------------------


def checkpoint_with_order(path: Path, order: Member) -> Path:
    genuine_checkpoint(path)
    members = members_of(path)
    members["order"] = order
    return write_zip(path, list(members.values()))


@functools.cache
def order_of_deflated_zeros() -> Member:
    """200 000 000 records (more than MAX_ELEMENTS) of genuinely deflated zeros: 1.6 GB in 1.6 MB."""
    return bomb("order", "<i8", (2 * MAX_ELEMENTS,), zeros=16 * MAX_ELEMENTS)


ORDER_BOMBS = {
    "deflated-zeros": order_of_deflated_zeros,
    "50-GB-declared": lambda: bomb("order", "<i8", (6_250_000_000,), zeros=4096,
                                   declared=full_size("<i8", (6_250_000_000,))),
    "directory-disagrees": lambda: bomb("order", "<i8", (7,), zeros=56, declared=50 * GB),
}


@pytest.mark.parametrize("order", list(ORDER_BOMBS.values()), ids=list(ORDER_BOMBS))
def test_a_checkpoint_order_declaring_gigabytes_is_refused(tmp_path: Path, order) -> None:
    path = checkpoint_with_order(tmp_path / "checkpoint.npz", order())
    refused(load_checkpoint, path, "order")


@needs_wait4
def test_train_resume_refuses_an_order_of_deflated_zeros_in_little_memory(tmp_path: Path) -> None:
    path = checkpoint_with_order(tmp_path / "run" / RunDir.CHECKPOINT, order_of_deflated_zeros())
    assert path.stat().st_size < 3_000_000
    refused_in_a_process("train", "--resume", "run", cwd=tmp_path,
                         needles=("array order declares int64 (200000000,)", "more than 100,000,000 elements"))


# ---- a header declaring an absurd network ----------------------------------------------------------

ABSURD = [{"filters": 10**9}, {"kernel_size": 10**5}, {"classes": 10**9}, {"input_shape": [10**6, 10**6]},
          {"filters": 10**5, "input_shape": [10**5, 10**5], "bias": True, "dtype": "float64"}]


@pytest.mark.parametrize("config", ABSURD, ids=[",".join(c) for c in ABSURD])
def test_a_header_declaring_an_absurd_network_is_refused_before_building_it(tmp_path: Path, config: dict) -> None:
    path = write_zip(tmp_path / "model.npz", list(model_members(**config).values()))
    refused(ConvNet.load, path, "header declares a network of", "more than the 100,000,000")


def test_a_checkpoint_declaring_an_absurd_network_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.npz"
    genuine_checkpoint(path)
    members = members_of(path)
    with np.load(path) as npz:
        header = json.loads(str(npz["header"]))
    header["model"]["config"]["filters"] = 10**9
    members["header"] = member("header.npy", npy_bytes(np.array(json.dumps(header))))
    refused(load_checkpoint, write_zip(path, list(members.values())), "header declares a network of")


@needs_wait4
def test_scratchcnn_evaluate_refuses_an_absurd_network_in_little_memory(tmp_path: Path) -> None:
    members = model_members(filters=10**9)
    members["f"] = bomb("f", "<f4", (10**9, 3, 3), zeros=4096, declared=full_size("<f4", (10**9, 3, 3)))
    members["W"] = bomb("W", "<f4", (10, 10**9, 14, 14), zeros=4096,
                        declared=full_size("<f4", (10, 10**9, 14, 14)))
    write_zip(tmp_path / "model.npz", list(members.values()))
    refused_in_a_process("evaluate", "model.npz", cwd=tmp_path,
                         needles=("model.npz", f"header declares a network of {9 * 10**9 + 196 * 10**10:,} parameters"))


# ---- the header member itself ----------------------------------------------------------------------


def test_a_header_member_declaring_gigabytes_is_refused(tmp_path: Path) -> None:
    members = model_members()
    members["header"] = bomb("header", "<U1", (GB,), zeros=4096, declared=full_size("<U1", (GB,)))
    path = write_zip(tmp_path / "model.npz", list(members.values()))
    refused(ConvNet.load, path, "member header.npy unpacks to 4,000,000,128 bytes")


def test_a_member_twice_is_refused(tmp_path: Path) -> None:
    members = list(model_members().values())
    path = write_zip(tmp_path / "model.npz", [*members, member("W", npy_bytes(ConvNet().W))])
    refused(ConvNet.load, path, "holds array W twice")
