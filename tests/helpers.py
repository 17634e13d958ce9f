"""Helpers shared by several test files (conftest.py keeps the fixtures and the CLI helpers).

Import them as ``from helpers import ...``: pytest puts tests/ on sys.path, as it does for conftest.
"""

from __future__ import annotations

import hashlib
import re
import socket
import struct
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from scratchcnn import ConvNet
from scratchcnn.data.download import FileEntry
from scratchcnn.errors import DataError

# ---- ConvNet: small networks and images (test_gradients, test_forward, test_model_api, test_model_files) --

POOLS = ("decimate", "max", "avg")
ACTIVATIONS = ("none", "relu")
KERNEL_SIZES = (1, 2, 3, 5)
NON_DEFAULT = {
    "filters": 4, "kernel_size": 5, "pool": "max", "activation": "relu", "bias": True,
    "input_shape": (12, 11), "dtype": "float64",
}


def images(rng: np.random.Generator, n: int, shape: tuple[int, int], sparse: bool = False) -> np.ndarray:
    """Float images in [0, 1]; ``sparse`` zeroes about half the pixels, as in MNIST."""
    X = rng.random((n, *shape))
    if sparse:
        X *= rng.random((n, *shape)) > 0.5
    return X


def small_net(pool: str, activation: str, bias: bool, k: int, shape: tuple[int, int], seed: int = 1) -> ConvNet:
    """A float64 two-filter network with O(1) parameters: filter 0 is positive (alive under ReLU),
    filter 1 has mixed signs (negative for k = 1) so that ReLU clips some positions and not others."""
    net = ConvNet(
        filters=2, kernel_size=k, pool=pool, activation=activation, bias=bias,
        input_shape=shape, dtype="float64", seed=seed,
    )
    rng = np.random.default_rng(100 + seed)
    f = rng.uniform(-1, 1, (2, k, k))
    f[0] = np.abs(f[0]) + 0.1
    if k == 1:
        f[1] = -np.abs(f[1]) - 0.1
    net.f[...] = f
    net.W[...] = rng.normal(0, 0.7, net.W.shape)
    if bias:
        net.b[...] = rng.normal(0, 0.5, 10)
    return net


# ---- IDX files built by hand (test_idx, test_idx_damaged, test_datasets) -------------------------------

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
TYPE_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}
BIG_ENDIAN = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"


def idx_header(code: int, shape: tuple[int, ...]) -> bytes:
    """An IDX header built by hand from the format's definition, independent of write_idx."""
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def idx_bytes(array: np.ndarray) -> bytes:
    """A complete plain IDX file for array, built by hand."""
    code = TYPE_CODES[array.dtype.type]
    return idx_header(code, array.shape) + array.astype(BIG_ENDIAN[code]).tobytes()


def write_bytes(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shape, dtype and bit pattern (so NaN payloads and -0.0 count)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def raises_naming(path: Path, *patterns: str):
    """pytest.raises(DataError) whose message names path (and matches every pattern, case-insensitive)."""
    lookaheads = [re.escape(str(path)), *patterns]
    return pytest.raises(DataError, match="(?si)^" + "".join(f"(?=.*(?:{p}))" for p in lookaheads))


# ---- a local HTTP server on 127.0.0.1 (the `server` fixture in conftest; test_download, test_download_cli) --


class FaultyHandler(BaseHTTPRequestHandler):
    """Serves server.files by path. server.rules[path] makes one path misbehave: a string applies to every
    request, a list to one request each, in turn (then the path behaves). The rules:

    "404", "500"  answer with that status;           "tamper"    flip the last byte of the body;
    "oversize"    send the body three times;           "truncate"  promise the whole body, send half, hang up;
    "hang"        accept the connection and never answer (until the fixture ends).
    """

    def do_GET(self) -> None:
        server = self.server
        server.requests.append(self.path)
        rule = server.rules.get(self.path)
        if isinstance(rule, list):
            rule = rule.pop(0) if rule else None
        body = server.files.get(self.path)
        if rule == "hang":
            server.release.wait(10)
            return
        if rule in ("404", "500") or body is None:
            self.send_error(int(rule or 404))
            return
        if rule == "tamper":
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        if rule == "oversize":
            body = body * 3
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if rule == "truncate":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class LocalServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 (a free port) that records every path requested in .requests."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FaultyHandler)
        self.files: dict[str, bytes] = {}
        self.rules: dict[str, str | list[str]] = {}
        self.requests: list[str] = []
        self.release = threading.Event()  # set when the fixture ends: "hang" handlers return

    def url(self, prefix: str, slash: bool = False) -> str:
        """http://127.0.0.1:<port>/<prefix>, with a trailing slash only if asked (download adds one)."""
        return f"http://127.0.0.1:{self.server_address[1]}/{prefix}" + ("/" if slash else "")

    def serve(self, prefix: str, files: dict[str, bytes], slash: bool = False) -> str:
        """Serve files (by name) under /<prefix>/; returns url(prefix, slash)."""
        for name, body in files.items():
            self.files[f"/{prefix}/{name}"] = body
        return self.url(prefix, slash)


def closed_port() -> int:
    """A 127.0.0.1 port nobody listens on any more."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def entries_for(files: dict[str, bytes]) -> tuple[FileEntry, ...]:
    """A download table's entries (size, MD5, SHA-256) for files, by name."""
    return tuple(FileEntry(name, len(body), hashlib.md5(body).hexdigest(), hashlib.sha256(body).hexdigest())
                 for name, body in files.items())


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def only_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make urllib.request.urlopen fail the test for any URL not on 127.0.0.1."""
    real_urlopen = urllib.request.urlopen

    def guarded(url, *args, **kwargs):
        host = urllib.parse.urlsplit(url if isinstance(url, str) else url.full_url).hostname
        assert host == "127.0.0.1", f"a test tried to reach {url}"
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)


def one_line_error(status: int, err: str, *fragments: str) -> str:
    """Exit status 2 and exactly one line on stderr, 'scratchcnn: error: ...', holding every fragment."""
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("scratchcnn: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
