"""scratchcnn.data.arrays_cache: IDX arrays served from an on-disk cache keyed by the source's SHA-256,
memory-mapped copy-on-write, each entry checked against the CRC-32 in its name; and load_dataset using it.

Every test points $SCRATCHCNN_CACHE at a tmp folder; ``calls`` records each time the source is decoded."""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import DTYPES, same_array

from scratchcnn.data import FILES, arrays_cache, load_dataset, read_idx, write_idx
from scratchcnn.data.arrays_cache import read_idx_cached
from scratchcnn.errors import DataError


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder (not created yet), named by $SCRATCHCNN_CACHE."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(arrays_cache.CACHE_ENV, str(folder))
    return folder


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths read_idx decodes on the cache's behalf, one per call."""
    seen: list[Path] = []
    real = arrays_cache.read_idx

    def counting(path):
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(arrays_cache, "read_idx", counting)
    return seen


def random_array(seed: int = 0, shape: tuple[int, ...] = (50, 7, 6), dtype: type = np.uint8) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 100).astype(dtype)


def only_entry(cache: Path) -> Path:
    """The cache's one file (no other entry, no temporary file left behind)."""
    files = list(cache.iterdir())
    assert len(files) == 1, files
    return files[0]


def assert_entry_holds(entry: Path, array: np.ndarray) -> None:
    """The entry loads as array, and the CRC-32 in its name is that of its contents."""
    stored = np.load(entry)
    assert same_array(stored, array)
    assert entry.name.split(".")[1] == f"{arrays_cache.array_checksum(stored):08x}"


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: t.__name__)
def test_a_second_read_is_served_from_the_cache(tmp_path, cache, calls, dtype, gz):
    array = random_array(dtype=dtype)
    path = write_idx(tmp_path / ("source.gz" if gz else "source"), array)
    first = read_idx_cached(path)
    second = read_idx_cached(path)
    assert len(calls) == 1  # the second read decoded nothing
    assert same_array(first, array) and same_array(second, array)
    assert same_array(second, read_idx(path))
    assert type(second) is np.ndarray  # a plain array, though mapped
    assert_entry_holds(only_entry(cache), array)


def test_a_changed_source_is_never_served_stale(tmp_path, cache, calls):
    path = tmp_path / "source.gz"
    old, new = random_array(seed=1), random_array(seed=2)
    write_idx(path, old)
    assert same_array(read_idx_cached(path), old)
    write_idx(path, new)  # same name, same size, other values
    assert same_array(read_idx_cached(path), new)
    assert len(calls) == 2
    write_idx(path, old)  # the old bytes again: their entry is still good
    assert same_array(read_idx_cached(path), old)
    assert len(calls) == 2


def test_a_source_changing_while_it_is_read_is_not_cached_under_its_old_digest(tmp_path, cache, monkeypatch):
    path = tmp_path / "source.gz"
    old, new = random_array(seed=1), random_array(seed=2)
    write_idx(path, old)
    real = arrays_cache.read_idx

    def replaced_first(source):  # the source is replaced between hashing and decoding
        write_idx(source, new)
        return real(source)

    monkeypatch.setattr(arrays_cache, "read_idx", replaced_first)
    assert same_array(read_idx_cached(path), new)
    monkeypatch.setattr(arrays_cache, "read_idx", real)
    write_idx(path, old)
    assert same_array(read_idx_cached(path), old)


def truncate(entry: Path) -> None:
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])


def flip_last_byte(entry: Path) -> None:  # the last byte is in the data part, after the .npy header
    content = bytearray(entry.read_bytes())
    content[-1] ^= 0x01
    entry.write_bytes(bytes(content))


def empty(entry: Path) -> None:
    entry.write_bytes(b"")


@pytest.mark.parametrize("damage", [truncate, flip_last_byte, empty], ids=lambda f: f.__name__)
def test_a_damaged_entry_is_detected_and_rebuilt(tmp_path, cache, calls, damage):
    array = random_array()
    path = write_idx(tmp_path / "source.gz", array)
    read_idx_cached(path)
    entry = only_entry(cache)
    damage(entry)
    assert same_array(read_idx_cached(path), array)
    assert len(calls) == 2  # rebuilt from the source
    assert_entry_holds(only_entry(cache), array)
    assert same_array(read_idx_cached(path), array)
    assert len(calls) == 2  # and good again: served from the cache


def build_after_a_barrier(path: Path, barrier, expected: bytes) -> None:
    """In a child process: read_idx_cached, where each decode waits until both processes have decoded."""
    real = arrays_cache.read_idx

    def read_then_wait(source):
        array = real(source)
        barrier.wait(timeout=30)  # neither writes its entry before both have found none and decoded
        return array

    arrays_cache.read_idx = read_then_wait
    sys.exit(0 if read_idx_cached(path).tobytes() == expected else 3)


def test_two_processes_building_at_once_both_get_correct_data(tmp_path, cache):
    array = random_array(shape=(2000, 28, 28))  # 1.5 MB: the two writes overlap
    path = write_idx(tmp_path / "source.gz", array)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    children = [context.Process(target=build_after_a_barrier, args=(path, barrier, array.tobytes()))
                for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [child.exitcode for child in children] == [0, 0]  # 1 would be a broken barrier: they did not overlap
    assert_entry_holds(only_entry(cache), array)


def test_a_read_only_cache_folder_falls_back_to_the_source_silently(tmp_path, cache, calls, monkeypatch, capsys,
                                                                    recwarn):
    array = random_array()
    path = write_idx(tmp_path / "source.gz", array)
    cache.mkdir()
    cache.chmod(0o555)
    try:
        if os.access(cache, os.W_OK):  # root ignores the mode: make writing fail as it would for anyone else
            def refuse(*_args, **_kwargs):
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(arrays_cache, "write_atomically", refuse)
        assert same_array(read_idx_cached(path), array)
        assert same_array(read_idx_cached(path), array)
        assert list(cache.iterdir()) == []
    finally:
        cache.chmod(0o755)
    assert len(calls) == 2  # no cache: each read decodes the source
    assert capsys.readouterr() == ("", "") and len(recwarn) == 0


def test_a_cache_folder_that_cannot_be_created_falls_back_to_the_source(tmp_path, monkeypatch, capsys, recwarn):
    (tmp_path / "a-file").write_bytes(b"")
    monkeypatch.setenv(arrays_cache.CACHE_ENV, str(tmp_path / "a-file" / "cache"))  # fails even for root
    array = random_array()
    assert same_array(read_idx_cached(write_idx(tmp_path / "source.gz", array)), array)
    assert capsys.readouterr() == ("", "") and len(recwarn) == 0


def test_returned_arrays_can_be_written_without_changing_the_cache(tmp_path, cache, calls):
    array = random_array()
    path = write_idx(tmp_path / "source.gz", array)
    built = read_idx_cached(path)
    entry = only_entry(cache)
    stored = entry.read_bytes()
    mapped = read_idx_cached(path)
    for result in (built, mapped):
        result[...] = 7
        assert (result == 7).all()
    assert entry.read_bytes() == stored
    assert same_array(read_idx_cached(path), array)
    assert len(calls) == 1


def test_a_bad_source_raises_read_idx_s_own_error(tmp_path, cache):
    not_idx = tmp_path / "notes.txt"
    not_idx.write_bytes(b"these are not the images you are looking for")
    for path in (not_idx, tmp_path / "missing.gz", tmp_path):
        with pytest.raises(DataError) as plain:
            read_idx(path)
        with pytest.raises(DataError) as cached:
            read_idx_cached(path)
        assert str(cached.value) == str(plain.value)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_the_default_cache_folder_is_under_home_read_at_each_call(tmp_path, monkeypatch):
    monkeypatch.delenv(arrays_cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    array = random_array()
    read_idx_cached(write_idx(tmp_path / "source.gz", array))
    assert_entry_holds(only_entry(tmp_path / "home" / ".cache" / "scratchcnn" / "arrays"), array)


def test_load_dataset_mnist_equals_the_files_built_then_cached(data_dir, cache, calls):
    expected = {role: read_idx(data_dir / "mnist" / f"{stem}.gz") for role, stem in FILES.items()}
    for decoded in (4, 4):  # first build (4 files decoded), then from the cache (none more)
        dataset = load_dataset("mnist", data_dir, download=False)
        assert len(calls) == decoded
        for role in FILES:
            assert same_array(getattr(dataset, role), expected[role]), role
    assert len(list(cache.iterdir())) == 4
