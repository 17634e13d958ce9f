"""scratchcnn.data.idx on damaged and hostile input: every bad IDX or gzip file raises a DataError naming
it, quickly and without running out of memory; then fuzzing (hypothesis, every truncation and byte flip)."""

from __future__ import annotations

import gzip
import math
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import BIG_ENDIAN, DTYPES, GZIP_MAGIC, idx_bytes, idx_header, raises_naming, write_bytes
from hypothesis import currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchcnn.data import idx, read_idx
from scratchcnn.errors import DataError, ScratchCNNError

# ---- IDX: bad input ----------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope"
    with raises_naming(path, "no such file"):
        read_idx(path)


def test_missing_parent_directory(tmp_path):
    path = tmp_path / "nodir" / "nope"
    with raises_naming(path):
        read_idx(path)


def test_directory_instead_of_file(tmp_path):
    with raises_naming(tmp_path, "directory"):
        read_idx(tmp_path)


def test_path_through_a_regular_file(tmp_path):
    path = write_bytes(tmp_path / "file", b"x") / "child"
    with raises_naming(path):
        read_idx(path)


VALID = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))  # 4 + 8 header bytes, 12 data bytes

BAD_FILES = {
    "empty": (b"", "empty|truncated"),
    "two bytes": (b"\0\0", "empty|truncated"),
    "wrong magic 0x01": (b"\x01" + VALID[1:], "not an IDX file"),
    "wrong second byte": (b"\0\x01" + VALID[2:], "not an IDX file"),
    "unknown type code 0x0a": (VALID[:2] + b"\x0a" + VALID[3:], "not an IDX file"),
    "unknown type code 0xff": (VALID[:2] + b"\xff" + VALID[3:], "not an IDX file"),
    "ndim 0": (b"\0\0\x08\x00", "no dimensions"),
    "ndim 0 with data": (b"\0\0\x08\x00" + b"\x05" * 8, "no dimensions"),
    "truncated header": (VALID[:9], "truncated"),
    "truncated header, 255 dims": (b"\0\0\x08\xff" + b"\0\0\0\x01" * 10, "truncated"),
    "truncated data": (VALID[:-1], "truncated"),
    "no data at all": (VALID[:12], "truncated"),
    "truncated float64 data": (idx_bytes(np.zeros(3))[:-3], "truncated"),
    "extra trailing data": (VALID + b"\0", "more data"),
    "extra trailing data, float32": (idx_bytes(np.zeros(3, dtype=np.float32)) + b"\0\0\0\0", "more data"),
    "dims disagree with size (bigger)": (idx_header(0x08, (4, 4)) + VALID[12:], "truncated|corrupt"),
    "dims disagree with size (smaller)": (idx_header(0x08, (2, 4)) + VALID[12:], "more data"),
    "huge shape": (idx_header(0x08, (4_000_000_000, 28, 28)) + bytes(100), "truncated|corrupt"),
    "huge shape, float64, 4 dims": (idx_header(0x0E, (2**32 - 1,) * 4), "truncated|corrupt"),
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("content, pattern", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_idx_files_raise_data_error_naming_the_file(tmp_path, content, pattern, gz):
    path = write_bytes(tmp_path / "bad-file", gzip.compress(content) if gz else content)
    start = time.perf_counter()
    with raises_naming(path, pattern):
        read_idx(path)
    assert time.perf_counter() - start < 1.0


def test_huge_gzip_bound_is_fixed_by_compressed_size(tmp_path):
    """A .gz file whose header asks for more than deflate could have expanded it to is refused upfront."""
    content = idx_header(0x08, (60_000, 28, 28)) + bytes(1000)
    path = write_bytes(tmp_path / "small.gz", gzip.compress(content))
    assert path.stat().st_size * idx.MAX_GZIP_RATIO < 60_000 * 28 * 28
    with raises_naming(path, "can hold at most", "truncated or corrupt"):
        read_idx(path)


GOOD_GZ = gzip.compress(VALID, mtime=0)

BAD_GZIP = {
    "magic then garbage": GZIP_MAGIC + b"garbage that is not a gzip stream",
    "magic only": GZIP_MAGIC,
    "valid gzip header then garbage deflate data": GOOD_GZ[:10] + b"\xff" * 40,
    "truncated stream": GOOD_GZ[: len(GOOD_GZ) // 2],
    "missing trailer": GOOD_GZ[:-8],
    "bad crc": GOOD_GZ[:-8] + bytes(b ^ 0xFF for b in GOOD_GZ[-8:-4]) + GOOD_GZ[-4:],
    "bad length": GOOD_GZ[:-4] + struct.pack("<I", len(VALID) + 1),
    "trailing garbage after member": GOOD_GZ + b"garbage",
    "trailing truncated member": GOOD_GZ + GZIP_MAGIC + b"\x08",
}


@pytest.mark.parametrize("content", BAD_GZIP.values(), ids=BAD_GZIP.keys())
def test_corrupt_gzip_raises_data_error_naming_the_file(tmp_path, content):
    path = write_bytes(tmp_path / "bad.gz", content)
    with raises_naming(path, "gzip|truncated|corrupt"):
        read_idx(path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses RLIMIT_AS, Linux only")
def test_gzip_claiming_more_than_memory_raises_data_error(tmp_path):
    """A 1.5 MB incompressible .gz file whose header claims 1.5 GB must be refused as truncated.

    Run in a child whose address space is capped (at what it already uses plus 512 MB), so the outcome
    does not depend on this machine's memory: anything that tries to hold the claimed size fails.
    """
    payload = np.random.default_rng(0).bytes(1_500_000)
    claimed = 1_500_000_000
    path = write_bytes(tmp_path / "bomb.gz", gzip.compress(idx_header(0x08, (claimed,)) + payload, compresslevel=1))
    assert claimed <= path.stat().st_size * idx.MAX_GZIP_RATIO - 8  # passes the upfront size check
    child = textwrap.dedent(f"""
        import resource, sys
        from scratchcnn.data import read_idx
        from scratchcnn.errors import DataError
        pages = int(open("/proc/self/statm").read().split()[0])
        limit = pages * resource.getpagesize() + 512 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        try:
            read_idx({str(path)!r})
        except DataError as error:
            print("DataError", error)
        except BaseException as error:
            print(type(error).__name__, error)
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert result.stdout.startswith("DataError"), result.stdout + result.stderr
    assert "truncated" in result.stdout


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("shape", [(0, 2**32 - 1, 2**32 - 1), (2**32 - 1, 2**32 - 1, 0)], ids=["0 first", "0 last"])
def test_empty_but_unrepresentable_shape(tmp_path, shape, gz):
    """Found by test_fuzz_mutated_valid_files: the declared array is empty (0 bytes, matching the file),
    but NumPy cannot make an array of that shape, so read_idx must refuse it with DataError."""
    content = idx_header(0x08, shape)
    path = write_bytes(tmp_path / "empty", gzip.compress(content) if gz else content)
    with raises_naming(path):
        read_idx(path)


def test_empty_shapes_numpy_can_hold_are_read(tmp_path):
    for code, shape in [(0x0E, (0,)), (0x0E, (5, 0)), (0x08, (0, 2**31, 2**31)), (0x0E, (2**32 - 1, 0, 7))]:
        path = write_bytes(tmp_path / "empty", idx_header(code, shape))
        array = read_idx(path)
        assert array.shape == shape and array.size == 0 and array.dtype == np.dtype(BIG_ENDIAN[code]).newbyteorder("=")


def test_data_error_is_a_value_error_and_a_scratchcnn_error():
    assert issubclass(DataError, ValueError)
    assert issubclass(DataError, ScratchCNNError)


# ---- IDX: fuzzing ------------------------------------------------------------------------------


def check_read(raw: bytes) -> None:
    """read_idx on raw either raises DataError naming the file, or returns exactly what the bytes hold."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_bytes(Path(tmp) / "fuzz", raw)
        try:
            array = read_idx(path)
        except DataError as error:
            assert str(path) in str(error)
            if currently_in_test_context():
                event("DataError")  # --hypothesis-show-statistics shows how often each branch is taken
            return
    if currently_in_test_context():
        event("parsed")
    # It parsed: check it against an independent decoding of the same bytes.
    content = gzip.decompress(raw) if raw[:2] == GZIP_MAGIC else raw
    code, ndim = content[2], content[3]
    shape = struct.unpack(f">{ndim}I", content[4 : 4 + 4 * ndim])
    dtype = np.dtype(BIG_ENDIAN[code])
    assert content[:2] == b"\0\0" and ndim >= 1
    assert array.shape == shape
    assert array.size == math.prod(shape)
    assert len(content) == 4 + 4 * ndim + array.size * dtype.itemsize
    assert array.dtype == dtype.newbyteorder("=")
    assert array.tobytes() == np.frombuffer(content[4 + 4 * ndim :], dtype=dtype).astype(array.dtype).tobytes()


small_arrays = hnp.arrays(
    dtype=st.sampled_from(DTYPES), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)
)


@st.composite
def valid_then_mutated(draw) -> bytes:
    """A valid small IDX file (plain or gzip), then up to 4 mutations: flips, truncation, insertion, deletion."""
    raw = idx_bytes(draw(small_arrays))
    if draw(st.booleans()):
        raw = gzip.compress(raw, mtime=0)
    raw = bytearray(raw)
    for op, where, value in draw(
        st.lists(st.tuples(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]),
                           st.integers(0, 2**16), st.integers(0, 255)), max_size=4)
    ):
        i = where % (len(raw) + 1)
        if op == "truncate":
            del raw[i:]
        elif op == "insert":
            raw[i:i] = bytes([value])
        elif i < len(raw):
            if op == "flip":
                raw[i] ^= 1 << (value % 8)
            elif op == "set":
                raw[i] = value
            else:
                del raw[i]
    return bytes(raw)


headers = st.builds(
    lambda code, dims, rest: bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + rest,
    st.sampled_from([*BIG_ENDIAN, 0x00, 0x0A]),
    st.lists(st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)), max_size=4),
    st.binary(max_size=200),
)


@settings(max_examples=1000, deadline=None)
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        headers,
        headers.map(gzip.compress),
        st.binary(max_size=100).map(lambda tail: GZIP_MAGIC + tail),
    )
)
def test_fuzz_arbitrary_bytes(raw):
    check_read(raw)


@settings(max_examples=1000, deadline=None)
@given(raw=valid_then_mutated())
def test_fuzz_mutated_valid_files(raw):
    check_read(raw)


def test_fuzz_every_truncation_and_every_byte_flip_of_a_small_file():
    for raw in (VALID, GOOD_GZ):
        for end in range(len(raw)):
            check_read(raw[:end])
        for i in range(len(raw)):
            check_read(raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1 :])
