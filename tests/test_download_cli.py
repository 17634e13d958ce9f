"""Automatic download through load_dataset, and the ``scratchcnn download`` command.

Nothing here touches the internet: every mirror is http://127.0.0.1:<port>/<prefix>/ (with a trailing
slash, server.serve(..., slash=True)) served by conftest's ``server`` fixture, started by the test; the
built-in mirrors are emptied by conftest, every URL opened in-process is checked to be on 127.0.0.1, and
the one real subprocess gets proxies pointing at a closed local port so that its built-in mirrors cannot
be reached either. The download table is replaced by one describing small fake IDX files, except where
the genuine published files from ../shared/data are served.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import closed_port, entries_for, listing, only_localhost

from scratchcnn import cli
from scratchcnn.data import datasets as data
from scratchcnn.data import download, load_dataset, read_idx, write_idx
from scratchcnn.data.download import FileEntry
from scratchcnn.errors import DataError

NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
TRAIN_IMAGES, LABELS = NAMES[0], NAMES[1]
GENUINE = ("train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
N_TRAIN, N_TEST = 30, 10


# ---- a small valid dataset, written with write_idx, and its checksum table -----------------------


def build_files(folder: Path, seed: int) -> dict[str, bytes]:
    """30 train / 10 test images of 28×28 uint8 with labels, as .gz IDX files in folder; their bytes."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(N_TRAIN) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": ((np.arange(N_TEST) + seed) % 10).astype(np.uint8),
    }
    return {name: write_idx(folder / name, array).read_bytes() for name, array in arrays.items()}


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """Fake files for both datasets, by dataset then file name."""
    root = tmp_path_factory.mktemp("served")
    return {"mnist": build_files(root / "mnist", 1), "fashion-mnist": build_files(root / "fashion-mnist", 2)}


@pytest.fixture
def table(fake, monkeypatch) -> dict[str, tuple[FileEntry, ...]]:
    """download.TABLE replaced by the fake files' sizes and digests."""
    fake_table = {name: entries_for(files) for name, files in fake.items()}
    monkeypatch.setattr(download, "TABLE", fake_table)
    return fake_table


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path) -> Path:
    """Cache, system folder and HOME under tmp_path; no proxies, no $SCRATCHCNN_DATA/MIRROR; 127.0.0.1 only."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    cache = home / ".cache" / "scratchcnn"
    monkeypatch.setattr(download, "DEFAULT_DIR", cache)
    monkeypatch.setattr(data, "CACHE_DIR", cache)
    monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "system")
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "SCRATCHCNN_DATA", download.MIRROR_ENV):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    only_localhost(monkeypatch)
    return cache


@pytest.fixture
def online(monkeypatch) -> None:
    """Allow load_dataset to download: conftest sets $SCRATCHCNN_OFFLINE for the whole session."""
    monkeypatch.delenv(data.OFFLINE_ENV, raising=False)


def assert_arrays(dataset, files: dict[str, bytes], tmp_path: Path) -> None:
    """The loaded arrays equal those the served files hold."""
    for name, body in files.items():
        (tmp_path / "check").mkdir(exist_ok=True)
        (tmp_path / "check" / name).write_bytes(body)
    assert dataset.train_images.shape == (N_TRAIN, 28, 28) and dataset.train_images.dtype == np.uint8
    assert dataset.test_images.shape == (N_TEST, 28, 28) and dataset.test_labels.shape == (N_TEST,)
    for attr, name in zip(("train_images", "train_labels", "test_images", "test_labels"), NAMES, strict=True):
        np.testing.assert_array_equal(getattr(dataset, attr), read_idx(tmp_path / "check" / name))


# ---- load_dataset: automatic download -----------------------------------------------------------


def test_load_dataset_downloads_into_the_cache_then_reuses_it(server, fake, table, isolated, online,
                                                              monkeypatch, tmp_path, capsys):
    base = server.serve("m", fake["mnist"], slash=True)
    monkeypatch.setitem(download.MIRRORS, "mnist", (base,))
    dataset = load_dataset("mnist")
    assert dataset.directory == isolated / "mnist"
    assert listing(isolated / "mnist") == sorted(NAMES)  # no temporary files left over
    for name in NAMES:
        assert (isolated / "mnist" / name).read_bytes() == fake["mnist"][name]
    assert sorted(server.requests) == sorted(f"/m/{name}" for name in NAMES)
    assert_arrays(dataset, fake["mnist"], tmp_path)
    assert capsys.readouterr().err == ""  # progress=False: download writes nothing on stderr

    again = load_dataset("mnist")
    assert len(server.requests) == 4  # the second call is served from the cache, no request
    np.testing.assert_array_equal(again.train_images, dataset.train_images)


def test_load_dataset_with_data_dir_downloads_into_it(server, fake, table, isolated, online, monkeypatch,
                                                      tmp_path):
    base = server.serve("m", fake["mnist"], slash=True)
    monkeypatch.setitem(download.MIRRORS, "mnist", (base,))
    target = tmp_path / "mydata"
    dataset = load_dataset("mnist", target)
    assert dataset.directory == target / "mnist"
    assert listing(target / "mnist") == sorted(NAMES)
    assert not isolated.exists()  # nothing went into the cache
    assert_arrays(dataset, fake["mnist"], tmp_path)
    load_dataset("mnist", target)
    assert len(server.requests) == 4


def test_load_dataset_download_false_names_files_and_places_and_requests_nothing(server, fake, table,
                                                                                 isolated, online,
                                                                                 monkeypatch, tmp_path):
    monkeypatch.setitem(download.MIRRORS, "mnist", (server.serve("m", fake["mnist"], slash=True),))
    with pytest.raises(DataError) as caught:
        load_dataset("mnist", tmp_path / "mydata", download=False)
    message = str(caught.value)
    assert "\n" not in message
    for name in NAMES:
        assert name in message
    assert str(tmp_path / "mydata" / "mnist") in message
    for place in (isolated, tmp_path / "system"):  # an explicit data_dir is the only place looked in
        assert str(place) not in message
    assert server.requests == []
    assert not (tmp_path / "mydata").exists() and not isolated.exists()


def test_offline_environment_is_the_same_as_download_false(server, fake, table, isolated, monkeypatch,
                                                          tmp_path):
    monkeypatch.setenv(data.OFFLINE_ENV, "1")
    monkeypatch.setitem(download.MIRRORS, "mnist", (server.serve("m", fake["mnist"], slash=True),))
    with pytest.raises(DataError) as offline:
        load_dataset("mnist", tmp_path / "mydata")
    with pytest.raises(DataError) as no_download:
        load_dataset("mnist", tmp_path / "mydata", download=False)
    assert str(offline.value) == str(no_download.value)
    assert all(name in str(offline.value) for name in NAMES)
    assert server.requests == []
    assert not (tmp_path / "mydata").exists() and not isolated.exists()


def test_load_dataset_rejects_a_tampered_file_leaving_nothing_partial(server, fake, table, isolated, online,
                                                                      monkeypatch, tmp_path):
    base = server.serve("m", fake["mnist"], slash=True)
    server.rules[f"/m/{LABELS}"] = "tamper"
    monkeypatch.setitem(download.MIRRORS, "mnist", (base,))
    body = fake["mnist"][LABELS]
    tampered = body[:-1] + bytes([body[-1] ^ 0xFF])
    with pytest.raises(DataError) as caught:
        load_dataset("mnist")
    message = str(caught.value)
    assert "\n" not in message
    assert LABELS in message and "downloading failed" in message
    assert hashlib.sha256(body).hexdigest() in message and hashlib.sha256(tampered).hexdigest() in message
    assert hashlib.md5(body).hexdigest() in message
    # The three good files are in place and verified; the tampered one and any temporary file are not.
    assert listing(isolated / "mnist") == sorted(set(NAMES) - {LABELS})
    for name in set(NAMES) - {LABELS}:
        assert (isolated / "mnist" / name).read_bytes() == fake["mnist"][name]


# ---- scratchcnn download, in-process --------------------------------------------------------------


def run_cli(capsys, *args: object) -> tuple[int, str, str]:
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_download_json_first_from_the_mirror_then_from_the_cache(server, fake, table, tmp_path, capsys):
    base = server.serve("m", fake["mnist"], slash=True)
    status, out, err = run_cli(capsys, "download", "--mirror", base, "--data-dir", tmp_path / "d", "--json")
    assert (status, err) == (0, "")
    result = json.loads(out.strip().splitlines()[-1])
    assert result["dataset"] == "mnist"
    assert len(result["files"]) == 4
    for item, name in zip(result["files"], NAMES, strict=True):
        assert set(item) >= {"path", "sha256", "verified", "source"}
        assert item["path"] == str(tmp_path / "d" / "mnist" / name)
        assert item["sha256"] == hashlib.sha256(fake["mnist"][name]).hexdigest()
        assert item["sha256"] == hashlib.sha256(Path(item["path"]).read_bytes()).hexdigest()
        assert item["verified"] is True
        assert item["source"] == base + name
    assert listing(tmp_path / "d" / "mnist") == sorted(NAMES)

    status, out, err = run_cli(capsys, "download", "--mirror", base, "--data-dir", tmp_path / "d", "--json")
    assert (status, err) == (0, "")
    again = json.loads(out.strip().splitlines()[-1])
    assert [f["source"] for f in again["files"]] == ["cache"] * 4
    assert [f["sha256"] for f in again["files"]] == [f["sha256"] for f in result["files"]]
    assert len(server.requests) == 4


def test_cli_download_text_output_into_the_default_folder(server, fake, table, isolated, capsys):
    base = server.serve("m", fake["mnist"], slash=True)
    status, out, err = run_cli(capsys, "download", "--mirror", base)
    assert (status, err) == (0, "")
    lines = out.strip().splitlines()
    assert lines == [f"{isolated / 'mnist' / name}  verified  from {base}{name}" for name in NAMES]
    assert listing(isolated / "mnist") == sorted(NAMES)


def test_cli_second_mirror_is_used_when_the_first_404s(server, fake, table, tmp_path, capsys):
    empty, good = server.url("empty", slash=True), server.serve("good", fake["mnist"], slash=True)
    status, out, err = run_cli(capsys, "download", "--mirror", empty, "--mirror", good,
                               "--data-dir", tmp_path, "--json")
    assert (status, err) == (0, "")
    files = json.loads(out.strip().splitlines()[-1])["files"]
    assert [f["source"] for f in files] == [good + name for name in NAMES]
    assert sorted(p for p in server.requests if p.startswith("/empty/")) == sorted(f"/empty/{n}" for n in NAMES)
    assert listing(tmp_path / "mnist") == sorted(NAMES)


def test_cli_honours_the_mirror_environment_variable(server, fake, table, tmp_path, monkeypatch, capsys):
    base = server.serve("env", fake["mnist"], slash=True)
    monkeypatch.setenv(download.MIRROR_ENV, base)
    status, out, err = run_cli(capsys, "download", "--data-dir", tmp_path, "--json")
    assert (status, err) == (0, "")
    assert [f["source"] for f in json.loads(out.strip().splitlines()[-1])["files"]] == [base + n for n in NAMES]


def test_cli_offline_says_no_network_and_names_the_folder(table, tmp_path, capsys):
    url = f"http://127.0.0.1:{closed_port()}/"
    status, out, err = run_cli(capsys, "download", "--mirror", url, "--data-dir", tmp_path)
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.endswith("\n")
    assert err.startswith("scratchcnn: error: ")
    assert "no network" in err and str(tmp_path / "mnist") in err
    assert "Traceback" not in err
    assert not (tmp_path / "mnist").exists()


def test_cli_rejects_a_mirror_that_is_not_a_url(table, tmp_path, capsys):
    status, out, err = run_cli(capsys, "download", "--mirror", "nonsense", "--data-dir", tmp_path)
    assert status == 2 and out == "" and len(err.splitlines()) == 1
    assert "'nonsense/' is not a URL" in err and "Traceback" not in err


def test_cli_tampered_file_fails_with_one_line(server, fake, table, tmp_path, capsys):
    base = server.serve("m", fake["mnist"], slash=True)
    server.rules[f"/m/{LABELS}"] = "tamper"
    status, out, err = run_cli(capsys, "download", "--mirror", base, "--data-dir", tmp_path)
    assert status == 2 and out == "" and len(err.splitlines()) == 1
    assert LABELS in err and "SHA-256 is" in err and "Traceback" not in err
    assert listing(tmp_path / "mnist") == sorted(set(NAMES) - {LABELS})


def test_cli_download_all_fills_both_datasets(server, fake, table, tmp_path, capsys):
    server.serve("mnist", fake["mnist"])
    server.serve("fashion-mnist", fake["fashion-mnist"])
    pattern = f"http://127.0.0.1:{server.server_address[1]}/{{name}}/"
    status, out, err = run_cli(capsys, "download", "--dataset", "all", "--mirror", pattern,
                               "--data-dir", tmp_path, "--json")
    assert (status, err) == (0, "")
    result = json.loads(out.strip().splitlines()[-1])
    assert result["dataset"] == "all" and len(result["files"]) == 8
    for name in ("mnist", "fashion-mnist"):
        assert listing(tmp_path / name) == sorted(NAMES)
        for file in NAMES:
            assert (tmp_path / name / file).read_bytes() == fake[name][file]
    assert {f["source"] for f in result["files"]} == {server.url(d, slash=True) + n for d in fake for n in NAMES}


# ---- train with and without downloading -----------------------------------------------------------


def test_train_no_download_with_a_missing_dataset_fails_without_a_request(server, fake, table, online,
                                                                          monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(download.MIRROR_ENV, server.serve("m", fake["mnist"], slash=True))
    status, out, err = run_cli(capsys, "train", "--no-download", "--epochs", "1", "--train-size", "20",
                               "--validation-size", "0", "--out", tmp_path / "run")
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "dataset mnist not found" in err and TRAIN_IMAGES in err
    assert server.requests == []
    assert not (tmp_path / "run").exists()


def test_train_downloads_from_the_mirror_then_trains(server, fake, table, isolated, online, monkeypatch,
                                                     tmp_path, capsys):
    monkeypatch.setenv(download.MIRROR_ENV, server.serve("m", fake["mnist"], slash=True))
    status, out, err = run_cli(capsys, "train", "--epochs", "1", "--train-size", "20",
                               "--validation-size", "0", "--out", tmp_path / "run", "--json")
    assert status == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert 0 <= summary["test_accuracy"] <= 1
    assert (tmp_path / "run" / "model.npz").is_file()
    assert listing(isolated / "mnist") == sorted(NAMES)
    assert sorted(server.requests) == sorted(f"/m/{name}" for name in NAMES)


# ---- progress -----------------------------------------------------------------------------------


def test_download_without_progress_writes_nothing_on_stderr(server, fake, table, tmp_path, capsys):
    base = server.serve("m", fake["mnist"], slash=True)
    results = download.download_dataset("mnist", tmp_path, mirrors=[base], progress=False)
    assert len(results) == 4
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


# ---- a real subprocess with the real table and the genuine published files -----------------------


def test_subprocess_download_places_the_genuine_files_and_fails_only_on_train_images(server, data_dir,
                                                                                     tmp_path):
    sources = {
        "t10k-images-idx3-ubyte.gz": data_dir / "mnist" / "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz": data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz",
        "train-labels-idx1-ubyte.gz": data_dir / "published" / "mnist-train-labels-idx1-ubyte.gz",
    }
    served = {name: path.read_bytes() for name, path in sources.items()}
    base = server.serve("real", served, slash=True)
    # The subprocess keeps the built-in mirrors: proxies on a closed local port stop it reaching them.
    proxy = f"http://127.0.0.1:{closed_port()}"
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "scratchcnn_data",
                                "scratchcnn_mirror")}
    env.update(HOME=str(tmp_path / "home"), http_proxy=proxy, https_proxy=proxy, HTTP_PROXY=proxy,
               HTTPS_PROXY=proxy, no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost")
    proc = subprocess.run([sys.executable, "-m", "scratchcnn", "download", "--mirror", base,
                           "--data-dir", str(tmp_path / "d")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("scratchcnn: error: ") and TRAIN_IMAGES in proc.stderr
    assert f"{base}{TRAIN_IMAGES}: HTTP 404" in proc.stderr
    assert not any(name in proc.stderr for name in GENUINE)  # the only failure is train-images
    folder = tmp_path / "d" / "mnist"
    assert listing(folder) == sorted(GENUINE)  # placed; no temporary or partial file
    real = {entry.name: entry for entry in download.TABLE["mnist"]}
    for name in GENUINE:
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert digest == hashlib.sha256(served[name]).hexdigest() == real[name].sha256
        assert download.verify_file(folder / name, real[name])[0]
    assert set(server.requests) == {f"/real/{name}" for name in NAMES}
