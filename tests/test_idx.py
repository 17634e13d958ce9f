"""scratchcnn.data.idx: the IDX writer's exact bytes, round trips (by example and by property), gzip
recognised by content, and write_idx's refusals and atomic replacement."""

from __future__ import annotations

import gzip
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import DTYPES, GZIP_MAGIC, idx_bytes, same_array, write_bytes
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchcnn.data import read_idx, write_idx
from scratchcnn.errors import DataError

# ---- IDX: the exact format ---------------------------------------------------------------------


def test_write_idx_produces_the_documented_bytes(tmp_path):
    path = write_idx(tmp_path / "a", np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8))
    assert path == tmp_path / "a"
    assert path.read_bytes() == b"\0\0\x08\x02" + b"\0\0\0\x02" + b"\0\0\0\x03" + bytes([1, 2, 3, 4, 5, 6])


def test_write_idx_values_are_big_endian(tmp_path):
    path = write_idx(tmp_path / "a", np.array([1, -2], dtype=np.int16))
    assert path.read_bytes() == b"\0\0\x0b\x01\0\0\0\x02" + b"\x00\x01\xff\xfe"
    path = write_idx(tmp_path / "b", np.array([1.0], dtype=np.float32))
    assert path.read_bytes() == b"\0\0\x0d\x01\0\0\0\x01" + b"\x3f\x80\x00\x00"


def test_read_idx_parses_a_hand_built_file(tmp_path):
    expected = np.arange(-12, 12, dtype=np.int32).reshape(2, 3, 4) * 1000
    path = write_bytes(tmp_path / "x", idx_bytes(expected))
    got = read_idx(path)
    assert same_array(got, expected)
    assert got.dtype.isnative
    got[0, 0, 0] = 7  # a writeable array of its own, not a view of a read-only buffer


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 2), (0,), (3, 0, 2)], ids=str)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path, dtype, shape, suffix):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        array = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    else:
        array = (rng.standard_normal(shape) * 1e3).astype(dtype)
    path = write_idx(tmp_path / f"a{suffix}", array)
    assert (path.read_bytes()[:2] == GZIP_MAGIC) == (suffix == ".gz")
    got = read_idx(path)
    assert same_array(got, array)
    assert got.dtype.isnative


def test_round_trip_keeps_extremes_and_special_floats(tmp_path):
    specials = [np.nan, np.inf, -np.inf, -0.0]
    floats = [np.array([*specials, t(f.smallest_subnormal), t(f.max), t(f.min)], dtype=t)
              for t, f in ((np.float64, np.finfo(np.float64)), (np.float32, np.finfo(np.float32)))]
    ints = np.array([np.iinfo(np.int32).min, -1, 0, np.iinfo(np.int32).max], dtype=np.int32)
    for array in (*floats, ints):
        for name in ("plain", "comp.gz"):
            assert same_array(read_idx(write_idx(tmp_path / name, array)), array)


def test_write_idx_accepts_any_byte_order_and_non_contiguous_input(tmp_path):
    array = np.arange(12, dtype=">i4").reshape(3, 4)
    assert same_array(read_idx(write_idx(tmp_path / "big", array)), array.astype(np.int32))
    array = np.arange(12, dtype="<f8").reshape(3, 4).T  # Fortran-ordered view
    assert same_array(read_idx(write_idx(tmp_path / "t", array)), np.ascontiguousarray(array))


def test_read_idx_accepts_str_paths(tmp_path):
    array = np.arange(6, dtype=np.uint8)
    write_idx(str(tmp_path / "s.gz"), array)
    assert same_array(read_idx(str(tmp_path / "s.gz")), array)


def test_gzip_output_is_deterministic(tmp_path, monkeypatch):
    array = np.arange(100, dtype=np.int16)
    first = write_idx(tmp_path / "a.gz", array).read_bytes()
    monkeypatch.setattr(time, "time", lambda: 1e9)  # a timestamp in the gzip header would now differ
    assert write_idx(tmp_path / "b.gz", array).read_bytes() == first
    assert gzip.decompress(first) == idx_bytes(array)


@settings(max_examples=100, deadline=None)
@given(
    array=hnp.arrays(
        dtype=st.sampled_from(DTYPES),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4),
    ),
    gz=st.booleans(),
)
def test_round_trip_property(array, gz):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_idx(Path(tmp) / ("a.gz" if gz else "a"), array)
        content = path.read_bytes()
        assert (gzip.decompress(content) if gz else content) == idx_bytes(array)
        assert same_array(read_idx(path), array)


# ---- IDX: gzip recognised by content -----------------------------------------------------------


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    plain = write_bytes(tmp_path / "plain.gz", idx_bytes(array))  # a .gz name on plain bytes
    packed = write_bytes(tmp_path / "packed.idx", gzip.compress(idx_bytes(array)))  # gzip without .gz
    assert same_array(read_idx(plain), array)
    assert same_array(read_idx(packed), array)


def test_multi_member_gzip_is_read_whole(tmp_path):
    content = idx_bytes(np.arange(10, dtype=np.uint8))
    path = write_bytes(tmp_path / "m", gzip.compress(content[:11]) + gzip.compress(content[11:]))
    assert same_array(read_idx(path), np.arange(10, dtype=np.uint8))


# ---- write_idx: refusals and atomicity ---------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.zeros(3, dtype=np.complex128),
        np.zeros(3, dtype=bool),
        np.zeros(3, dtype=np.int64),
        np.zeros(3, dtype=np.uint16),
        np.zeros(3, dtype=np.uint32),
        np.zeros(3, dtype=np.float16),
        np.array(["a", "b"]),
        np.array([object(), None]),
        [1, 2, 3],  # a list becomes int64
    ],
    ids=["complex128", "bool", "int64", "uint16", "uint32", "float16", "str", "object", "list"],
)
def test_write_idx_refuses_unsupported_dtypes(tmp_path, array):
    with pytest.raises(DataError, match="dtype"):
        write_idx(tmp_path / "x.gz", array)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "array",
    [np.uint8(3), np.array(3.0), np.broadcast_to(np.uint8(0), (2**32,))],
    ids=["scalar", "0-d array", "dimension 2**32"],
)
def test_write_idx_refuses_unstorable_shapes(tmp_path, array):
    with pytest.raises(DataError, match="shape"):
        write_idx(tmp_path / "x", array)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["x", "x.gz"])
def test_write_idx_is_atomic_and_leaves_no_temporary_files(tmp_path, name):
    target = tmp_path / "deep" / "er" / name  # parent directories are created
    write_idx(target, np.zeros(3, dtype=np.uint8))
    write_idx(target, np.ones((2, 2), dtype=np.float64))  # replaces the existing file
    assert sorted(p.name for p in target.parent.iterdir()) == [name]
    assert same_array(read_idx(target), np.ones((2, 2)))


def test_write_idx_failure_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = write_idx(tmp_path / "x", np.arange(4, dtype=np.uint8))

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        write_idx(target, np.zeros(100, dtype=np.uint8))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["x"]
    assert same_array(read_idx(target), np.arange(4, dtype=np.uint8))
