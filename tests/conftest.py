"""Shared fixtures: where the real data lives, and small fake datasets built on the fly."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import LocalServer

from scratchcnn.cli import main
from scratchcnn.data import FILES, write_idx

ROOT = Path(__file__).resolve().parents[1]
# Tests never download: this reaches the CLI subprocesses too. Download tests serve files on 127.0.0.1.
os.environ["SCRATCHCNN_OFFLINE"] = "1"
# The datasets' array cache (data/arrays_cache.py) in a folder of this session's, shared by its tests and
# their subprocesses and removed at the end: the user's ~/.cache is not the tests' to fill.
os.environ["SCRATCHCNN_CACHE"] = tempfile.mkdtemp(prefix="scratchcnn-test-cache-")
atexit.register(shutil.rmtree, os.environ["SCRATCHCNN_CACHE"], ignore_errors=True)


def shared_data_dir() -> Path | None:
    """$SCRATCHCNN_DATA, else ../shared/data beside the project, if it holds MNIST."""
    for candidate in (os.environ.get("SCRATCHCNN_DATA"), ROOT.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "mnist").is_dir():
            return Path(candidate).resolve()
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data directory. Skips without it on a user's machine; in CI its absence is a failure."""
    found = shared_data_dir()
    if found is None:
        skip_or_fail("real MNIST not found: set SCRATCHCNN_DATA or put the data in ../shared/data")
    return found


def skip_or_fail(message: str) -> None:
    """Skip a test that needs something this machine lacks; in CI, which installs everything, fail."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def make_fake_dataset(root: Path, name: str = "mnist", n_train: int = 40, n_test: int = 20,
                      shape: tuple[int, int] = (28, 28), seed: int = 0, gz: bool = True) -> Path:
    """Write a small random dataset as root/name/<four IDX files>; returns root."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for role, stem in FILES.items():
        write_idx(root / name / (stem + (".gz" if gz else "")), arrays[role])
    return root


@pytest.fixture(autouse=True)
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real mirror: the built-in ones are emptied (tests serve their own on 127.0.0.1)."""
    from scratchcnn.data import download

    monkeypatch.setattr(download, "MIRRORS", {name: () for name in download.MIRRORS})
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)


def run_main(argv: list[Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """main(argv) in process: (exit status, stdout, stderr); argparse's SystemExit gives its code."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


def last_json(stdout: str) -> dict[str, Any]:
    """The JSON object on the last line of stdout, parsed strictly (no NaN or Infinity)."""
    def refuse(constant: str) -> None:
        raise ValueError(f"not standard JSON: {constant}")

    value = json.loads(stdout.splitlines()[-1], parse_constant=refuse)
    assert isinstance(value, dict)
    return value


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $SCRATCHCNN_DATA, $HOME in tmp_path (no ~/.cache/scratchcnn), cwd = tmp_path."""
    monkeypatch.delenv("SCRATCHCNN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    """A fake 28×28 MNIST: 40 training records (36 after a 10 % split) and 20 test records."""
    return make_fake_dataset(tmp_path / "fake")


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A local HTTP server on 127.0.0.1, running for the test: serve files with server.serve(prefix, files),
    make paths misbehave with server.rules (see helpers.FaultyHandler), check server.requests."""
    srv = LocalServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)
