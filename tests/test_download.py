"""Tests for scratchcnn.data.download against a real HTTP server on 127.0.0.1 that each test starts.

No test reaches the internet: the built-in mirror lists are emptied (or pointed at the local server)
and every URL opened is checked to be on 127.0.0.1. The server is conftest's ``server`` fixture
(helpers.LocalServer); its mirror URLs here have no trailing slash, which download adds.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import time
from pathlib import Path

import pytest
from helpers import closed_port, entries_for, listing, only_localhost

from scratchcnn.data import download
from scratchcnn.data.download import (
    DownloadError,
    FileResult,
    download_dataset,
    mirror_list,
    verify_file,
)
from scratchcnn.errors import DataError

NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
LABELS = "train-labels-idx1-ubyte.gz"


def idx_gz(seed: int, name: str) -> bytes:
    """A small, valid, gzip-compressed IDX file: 6 images of 28×28 or 6 labels."""
    if "images" in name:
        body = struct.pack(">BBBB3I", 0, 0, 0x08, 3, 6, 28, 28) + bytes((seed + i) % 256 for i in range(6 * 784))
    else:
        body = struct.pack(">BBBBI", 0, 0, 0x08, 1, 6) + bytes((seed + i) % 10 for i in range(6))
    return gzip.compress(body, mtime=0)


def make_files(seed: int = 0) -> dict[str, bytes]:
    return {name: idx_gz(seed + k, name) for k, name in enumerate(NAMES)}


FILES = make_files()
TABLE = {"mnist": entries_for(FILES)}


@pytest.fixture(autouse=True)
def local_only(monkeypatch, tmp_path):
    """No built-in mirrors, no proxies, no $SCRATCHCNN_MIRROR, and any URL opened must be on 127.0.0.1."""
    monkeypatch.setattr(download, "MIRRORS", {})
    monkeypatch.setattr(download, "DEFAULT_DIR", tmp_path / "default-cache")
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", download.MIRROR_ENV):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    only_localhost(monkeypatch)


def test_download_verifies_and_places_every_file(server, tmp_path):
    base = server.serve("a", FILES)
    results = download_dataset("mnist", tmp_path, mirrors=[base], table=TABLE)
    assert [r.path for r in results] == [tmp_path / "mnist" / name for name in NAMES]
    for result, entry in zip(results, TABLE["mnist"], strict=True):
        assert isinstance(result, FileResult)
        assert result.verified and result.source == f"{base}/{entry.name}"
        assert result.sha256 == entry.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
        assert result.path.read_bytes() == FILES[entry.name]
    assert listing(tmp_path / "mnist") == sorted(NAMES)  # no temporary files left over


def test_second_call_reuses_the_cache_without_any_request(server, tmp_path):
    base = server.serve("a", FILES)
    download_dataset("mnist", tmp_path, mirrors=[base], table=TABLE)
    before = len(server.requests)
    results = download_dataset("mnist", tmp_path, mirrors=[base], table=TABLE)
    assert len(server.requests) == before == 4
    assert [r.source for r in results] == ["cache"] * 4 and all(r.verified for r in results)


def test_tampered_file_is_rejected_naming_both_digests_and_nothing_is_left(server, tmp_path):
    base = server.serve("a", FILES)
    server.rules[f"/a/{LABELS}"] = "tamper"
    tampered = FILES[LABELS][:-1] + bytes([FILES[LABELS][-1] ^ 0xFF])
    with pytest.raises(DownloadError) as caught:
        download_dataset("mnist", tmp_path, mirrors=[base], table=TABLE)
    message = str(caught.value)
    assert LABELS in message and "\n" not in message
    assert hashlib.sha256(FILES[LABELS]).hexdigest() in message
    assert hashlib.sha256(tampered).hexdigest() in message
    assert listing(tmp_path / "mnist") == sorted(set(NAMES) - {LABELS})  # neither final nor temporary file


def test_oversized_response_is_cut_off_and_rejected(server, tmp_path):
    base = server.serve("a", FILES)
    server.rules[f"/a/{LABELS}"] = "oversize"
    with pytest.raises(DownloadError, match="more than the expected"):
        download_dataset("mnist", tmp_path, mirrors=[base], table=TABLE)
    assert LABELS not in listing(tmp_path / "mnist")


def test_truncated_transfer_is_retried_then_the_next_mirror_is_used(server, tmp_path):
    first, second = server.serve("a", FILES), server.serve("b", FILES)
    server.rules[f"/a/{LABELS}"] = "truncate"
    results = download_dataset("mnist", tmp_path, mirrors=[first, second], table=TABLE)
    assert server.requests.count(f"/a/{LABELS}") == 2  # one retry on the same mirror
    assert {r.path.name: r.source for r in results}[LABELS] == f"{second}/{LABELS}"
    assert (tmp_path / "mnist" / LABELS).read_bytes() == FILES[LABELS]
    assert listing(tmp_path / "mnist") == sorted(NAMES)


def test_truncated_transfer_everywhere_leaves_nothing_partial(server, tmp_path):
    base = server.serve("a", FILES)
    server.rules[f"/a/{LABELS}"] = "truncate"
    with pytest.raises(DownloadError, match=f"{LABELS}.*cut short|{LABELS}.*size is"):
        download_dataset("mnist", tmp_path, mirrors=[base], table=TABLE)
    assert LABELS not in listing(tmp_path / "mnist")
    assert not [n for n in listing(tmp_path / "mnist") if n.startswith(".")]


def test_404_on_the_first_mirror_falls_through_to_the_second(server, tmp_path):
    first, second = server.url("empty"), server.serve("b", FILES)
    results = download_dataset("mnist", tmp_path, mirrors=[first, second], table=TABLE)
    assert [r.source for r in results] == [f"{second}/{name}" for name in NAMES]
    assert server.requests.count(f"/empty/{LABELS}") == 1  # a 404 is not retried


def test_a_5xx_is_retried_once_on_the_same_mirror(server, tmp_path):
    base = server.serve("a", FILES)
    server.rules[f"/a/{LABELS}"] = ["500"]
    results = download_dataset("mnist", tmp_path, mirrors=[base], table=TABLE)
    assert server.requests.count(f"/a/{LABELS}") == 2
    assert {r.path.name: r.source for r in results}[LABELS] == f"{base}/{LABELS}"


def test_env_mirror_goes_before_the_built_in_ones(server, tmp_path, monkeypatch):
    builtin, env = server.serve("builtin", FILES), server.serve("env", FILES)
    monkeypatch.setattr(download, "MIRRORS", {"mnist": (builtin + "/",)})
    monkeypatch.setenv(download.MIRROR_ENV, env)
    results = download_dataset("mnist", tmp_path, table=TABLE)
    assert [r.source for r in results] == [f"{env}/{name}" for name in NAMES]
    assert not [p for p in server.requests if p.startswith("/builtin/")]


def test_mirror_list_order_and_normalisation(monkeypatch):
    monkeypatch.setattr(download, "MIRRORS", {"mnist": ("http://127.0.0.1:1/builtin/",)})
    monkeypatch.setenv(download.MIRROR_ENV, " http://127.0.0.1:1/e1, http://127.0.0.1:1/e2\nhttp://127.0.0.1:1/arg/ ")
    assert mirror_list("mnist", ["http://127.0.0.1:1/arg", "http://127.0.0.1:1/{name}"]) == [
        "http://127.0.0.1:1/arg/", "http://127.0.0.1:1/mnist/", "http://127.0.0.1:1/e1/",
        "http://127.0.0.1:1/e2/", "http://127.0.0.1:1/builtin/"]
    with pytest.raises(DownloadError, match="'nonsense/' is not a URL"):
        mirror_list("mnist", ["nonsense"])


def test_unreachable_mirror_says_no_network(tmp_path):
    port = closed_port()
    with pytest.raises(DownloadError) as caught:
        download_dataset("mnist", tmp_path, mirrors=[f"http://127.0.0.1:{port}/"], table=TABLE, timeout=2)
    message = str(caught.value)
    assert message.startswith("no network")
    assert f"put the four files in {tmp_path / 'mnist'}/" in message and "--data-dir" not in message
    assert "refused" in message.lower()
    assert isinstance(caught.value, DataError)
    assert not (tmp_path / "mnist").exists()  # the folder it created for nothing is gone again


def test_hanging_server_times_out_quickly(server, tmp_path):
    hang, good = server.serve("hang", FILES), server.serve("good", FILES)
    for name in NAMES:
        server.rules[f"/hang/{name}"] = "hang"
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"no network.*timed out"):
        download_dataset("mnist", tmp_path, mirrors=[hang], table=TABLE, timeout=0.3)
    results = download_dataset("mnist", tmp_path / "2", mirrors=[hang, good], table=TABLE, timeout=0.3, retries=0)
    assert [r.source for r in results] == [f"{good}/{name}" for name in NAMES]
    assert time.monotonic() - start < 8


def test_corrupted_cached_file_is_replaced_by_a_verified_download(server, tmp_path):
    base = server.serve("a", FILES)
    download_dataset("mnist", tmp_path, mirrors=[base], table=TABLE)
    (tmp_path / "mnist" / LABELS).write_bytes(b"not the labels")
    results = download_dataset("mnist", tmp_path, mirrors=[base], table=TABLE)
    assert {r.path.name: r.source for r in results} == {
        name: f"{base}/{name}" if name == LABELS else "cache" for name in NAMES}
    assert (tmp_path / "mnist" / LABELS).read_bytes() == FILES[LABELS]


def test_interrupt_mid_transfer_removes_the_temporary_file(server, tmp_path, monkeypatch):
    base = server.serve("a", FILES)

    class Interrupting:
        def update(self, n: int) -> None:
            raise KeyboardInterrupt

        def close(self) -> None:
            pass

    monkeypatch.setattr(download, "_progress_bar", lambda total, name: Interrupting())
    with pytest.raises(KeyboardInterrupt):
        download_dataset("mnist", tmp_path, mirrors=[base], table=TABLE, progress=True)
    assert not (tmp_path / "mnist").exists()  # no partial file, and no folder it created for nothing


def test_progress_bar_reports_bytes(server, tmp_path, capsys):
    base = server.serve("a", FILES)
    download_dataset("mnist", tmp_path, mirrors=[base], table=TABLE, progress=True)
    assert "B" in capsys.readouterr().err


def test_all_downloads_both_datasets_and_default_dir(server, tmp_path):
    table = {"mnist": TABLE["mnist"], "fashion-mnist": entries_for(make_files(seed=100))}
    server.serve("mnist", FILES)
    server.serve("fashion-mnist", make_files(seed=100))
    results = download_dataset("all", mirrors=[server.url("{name}")], table=table)
    assert len(results) == 8
    for name in table:
        assert listing(download.DEFAULT_DIR / name) == sorted(NAMES)


def test_unknown_dataset():
    with pytest.raises(DownloadError, match="unknown dataset 'digits'"):
        download_dataset("digits")


# ---- the real table, checked with the genuine published files in ../shared/data ----------------

def genuine_files(data_dir: Path) -> dict[str, Path]:
    return {
        "t10k-images-idx3-ubyte.gz": data_dir / "mnist" / "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz": data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz",
        "train-labels-idx1-ubyte.gz": data_dir / "published" / "mnist-train-labels-idx1-ubyte.gz",
    }


def test_table_matches_the_genuine_files(data_dir):
    entries = {entry.name: entry for entry in download.TABLE["mnist"]}
    for name, path in genuine_files(data_dir).items():
        body = path.read_bytes()
        entry = entries[name]
        assert (len(body), hashlib.md5(body).hexdigest(), hashlib.sha256(body).hexdigest()) == (
            entry.size, entry.md5, entry.sha256)
        assert verify_file(path, entry) == (True, entry.sha256, entry.md5)
    assert all(len(e.md5) == 32 and len(e.sha256) == 64 for es in download.TABLE.values() for e in es)


def test_genuine_files_download_with_the_real_table(server, tmp_path, data_dir, monkeypatch):
    base = server.serve("real", {name: path.read_bytes() for name, path in genuine_files(data_dir).items()})
    monkeypatch.setattr(download, "MIRRORS", {"mnist": (base + "/",)})
    # The shared folder has no published 60 000-image training file: that one must fail (404), alone.
    with pytest.raises(DownloadError) as caught:
        download_dataset("mnist", tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(caught.value) and "404" in str(caught.value)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        assert (tmp_path / "mnist" / name).read_bytes() == genuine_files(data_dir)[name].read_bytes()
    assert listing(tmp_path / "mnist") == sorted(genuine_files(data_dir))
