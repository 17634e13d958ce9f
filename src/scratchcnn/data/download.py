"""Downloading MNIST and Fashion-MNIST from public mirrors, checked against the published checksums.

Each file is streamed into a temporary file beside its final name, hashed on the way, and renamed
into place only once its size and digests match: the final name only ever holds verified bytes.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from scratchcnn.errors import DataError
from scratchcnn.files import file_mode

DEFAULT_DIR = Path("~/.cache/scratchcnn")
MIRROR_ENV = "SCRATCHCNN_MIRROR"
CHUNK = 64 * 1024


class DownloadError(DataError):
    """A dataset file could not be fetched, or what was fetched does not match its checksums.

    ``problem`` is what failed, without the advice after it (load_dataset gives its own); ``results``
    the files that were in place when it failed.
    """

    def __init__(self, problem: str, remedy: str = "") -> None:
        super().__init__(f"{problem}; {remedy}" if remedy else problem)
        self.problem = problem
        self.results: list[FileResult] = []


@dataclass(frozen=True)
class FileEntry:
    """One published file: its name, size in bytes and digests (None where not published)."""

    name: str
    size: int | None
    md5: str | None
    sha256: str | None = None


@dataclass(frozen=True)
class FileResult:
    """A file in place: its SHA-256, whether digests were checked, and "cache" or the URL it came from."""

    path: Path
    sha256: str
    verified: bool
    source: str


# The published files, their sizes and digests, are data: checksums.json beside this module.
# MNIST: MD5s and sizes as published by yann.lecun.com (and in torchvision's MNIST.resources).
# SHA-256 of t10k-images, t10k-labels and train-labels computed here from the genuine files in
# ../shared/data (whose size and MD5 equal the published ones); all four SHA-256 and sizes agree with
# tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt, the only source for train-images'.
# Fashion-MNIST: MD5s from zalandoresearch/fashion-mnist README.md ("Get the Data"), which gives sizes
# only roughly ("26 MBytes"); exact sizes and SHA-256 from tensorflow_datasets/url_checksums/
# fashion_mnist.txt. Not checked locally: ../shared/data/fashion-mnist is Debian's re-gzipped copy.
TABLE: dict[str, tuple[FileEntry, ...]] = {
    name: tuple(FileEntry(**entry) for entry in entries)
    for name, entries in json.loads(resources.files("scratchcnn.data").joinpath("checksums.json").read_text()).items()
}

# Tried in this order after the user's mirrors. yann.lecun.com last: it has refused downloads at times.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
}


class _AttemptError(Exception):
    """One attempt at one URL failed. ``answered``: a server replied; ``retry``: worth trying again."""

    def __init__(self, reason: str, *, answered: bool, retry: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.answered, self.retry = reason, answered, retry


def _hash_file(path: Path) -> tuple[int, str, str]:
    """Size, SHA-256 and MD5 of a file, read in chunks."""
    sha256, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return size, sha256.hexdigest(), md5.hexdigest()


def _mismatches(entry: FileEntry, size: int, sha256: str, md5: str) -> list[str]:
    """What disagrees with the table, each as "what is X, expected Y"; empty when all agree."""
    found = []
    if entry.size is not None and size != entry.size:
        found.append(f"size is {size} bytes, expected {entry.size}")
    if entry.sha256 is not None and sha256 != entry.sha256.lower():
        found.append(f"SHA-256 is {sha256}, expected {entry.sha256.lower()}")
    if entry.md5 is not None and md5 != entry.md5.lower():
        found.append(f"MD5 is {md5}, expected {entry.md5.lower()}")
    return found


def verify_file(path: str | os.PathLike, entry: FileEntry) -> tuple[bool, str, str]:
    """(ok, sha256, md5) of the file at path; ok when its size and every known digest match ``entry``."""
    size, sha256, md5 = _hash_file(Path(path))
    return not _mismatches(entry, size, sha256, md5), sha256, md5


def mirror_list(name: str, mirrors: Iterable[str] | None = None) -> list[str]:
    """Base URLs to try for a dataset: ``mirrors``, then $SCRATCHCNN_MIRROR, then the built-in ones.

    $SCRATCHCNN_MIRROR holds URLs separated by whitespace or commas. "{name}" in a URL is replaced by
    the dataset's name, so one setting can serve both datasets. Each URL ends in "/"; repeats are dropped.
    Raises DownloadError for a user's mirror that is not an http(s), ftp or file URL.
    """
    user = [*(mirrors or ()), *re.split(r"[\s,]+", os.environ.get(MIRROR_ENV, "").strip())]
    result: list[str] = []
    for url in [*user, *MIRRORS.get(name, ())]:
        url = url.strip().replace("{name}", name)
        url = url if not url or url.endswith("/") else url + "/"
        if url and urllib.parse.urlsplit(url).scheme not in ("http", "https", "ftp", "file"):
            raise DownloadError(f"mirror {url!r} is not a URL: give a base like https://host/path/")
        if url and url not in result:
            result.append(url)
    return result


def _progress_bar(total: int | None, name: str):
    """A byte-counting tqdm bar on stderr, imported only when wanted (the CLI asks only on a terminal)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024, leave=False)


def _fetch(url: str, entry: FileEntry, dest: Path, timeout: float, progress: bool) -> str:
    """Stream url into a temporary file beside dest, verify it, rename it to dest; return its SHA-256.

    Raises _AttemptError for anything the network or the server did; OSError only for local faults.
    """
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as error:
        error.close()
        raise _AttemptError(f"HTTP {error.code} {error.reason}", answered=True, retry=error.code >= 500) from None
    except ValueError as error:  # a malformed URL: a mistake, not a network outage
        raise _AttemptError(f"{error}", answered=True) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        # Nothing answered (refused, unresolvable, timed out before any reply): worth one more try.
        reason = getattr(error, "reason", None) or error
        reason = getattr(reason, "strerror", None) or reason or type(error).__name__  # no "[Errno -2]"
        raise _AttemptError(f"{reason}", answered=False, retry=True) from None
    with response:
        declared = response.headers.get("Content-Length", "")
        declared = int(declared) if declared.isdigit() else None
        sha256, md5, count = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        fd, tmp = tempfile.mkstemp(prefix=f".{entry.name}.", suffix=".part", dir=dest.parent)
        bar = None
        try:
            os.fchmod(fd, file_mode())  # mkstemp makes 0600: others sharing a lab's cache could not read it
            with os.fdopen(fd, "wb") as fh:
                if progress:
                    bar = _progress_bar(entry.size or declared, entry.name)
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except (OSError, http.client.HTTPException) as error:
                        reason = f"connection lost after {count} bytes ({error or type(error).__name__})"
                        raise _AttemptError(reason, answered=True, retry=True) from None
                    if not chunk:
                        break
                    count += len(chunk)
                    if entry.size is not None and count > entry.size:  # stop early: it cannot be the file
                        raise _AttemptError(f"more than the expected {entry.size} bytes", answered=True)
                    sha256.update(chunk)
                    md5.update(chunk)
                    fh.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                fh.flush()
                os.fsync(fh.fileno())  # the bytes are on disk before the rename makes them visible
            if declared is not None and count != declared:
                raise _AttemptError(f"transfer cut short: {count} of {declared} bytes", answered=True, retry=True)
            wrong = _mismatches(entry, count, sha256.hexdigest(), md5.hexdigest())
            if wrong:
                raise _AttemptError("; ".join(wrong), answered=True)
            os.replace(tmp, dest)
        finally:  # any failure, KeyboardInterrupt included, leaves no partial file behind
            if bar is not None:
                bar.close()
            Path(tmp).unlink(missing_ok=True)
    return sha256.hexdigest()


def _count_word(n: int) -> str:
    return {1: "one", 2: "two", 3: "three", 4: "four"}.get(n, str(n))


def _download_file(entry: FileEntry, directory: Path, mirrors: Sequence[str], *, progress: bool,
                   timeout: float, retries: int) -> tuple[FileResult | None, list[tuple[str, str]], bool]:
    """Fetch one file, trying mirrors in order.

    Returns (result or None, (mirror, why it failed) for each mirror that failed, whether anything answered).
    """
    dest, reasons, answered = directory / entry.name, [], False
    verified = entry.md5 is not None or entry.sha256 is not None
    for base in mirrors:
        url = base + entry.name
        for _attempt in range(1 + max(retries, 0)):
            try:
                sha256 = _fetch(url, entry, dest, timeout, progress)
                return FileResult(dest, sha256, verified, url), reasons, True
            except _AttemptError as failure:
                answered = answered or failure.answered
                reason = failure.reason
                if not failure.retry:
                    break
        reasons.append((base, reason))
    return None, reasons, answered


def _mirrors_failed(reasons: Sequence[tuple[str, str]], name: str) -> str:
    """Each mirror tried and why it failed, mirrors failing alike grouped: "URL, URL: why; URL: why".

    The built-in mirrors, when all fail alike, are "the built-in mirrors": the user's are always named.
    """
    builtin = set(MIRRORS.get(name, ()))
    groups: dict[str, list[str]] = {}
    for base, reason in reasons:
        groups.setdefault(reason, []).append(base)
    parts = []
    for reason, bases in groups.items():
        named = [base for base in bases if base not in builtin]
        if len(builtin) > 1 and builtin <= set(bases):
            named.append("the built-in mirrors")
        else:
            named += [base for base in bases if base in builtin]
        parts.append(f"{', '.join(named)}: {reason}")
    return "; ".join(parts)


def names_the_dataset(base: Path, name: str) -> bool:
    """Whether a data directory given as base may be the dataset's own folder (data/mnist, not data)."""
    return base.name.lower() == name and not (base / name).is_dir()


def _dataset_folder(base: Path, name: str, entries: Sequence[FileEntry]) -> Path:
    """base/name, or base itself when it is the dataset's folder already (named so, holding its files)."""
    if names_the_dataset(base, name) and any((base / entry.name).is_file() for entry in entries):
        return base
    return base / name


def _created_by_mkdir(directory: Path) -> list[Path]:
    """The folders directory.mkdir(parents=True) would create, deepest first."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing


def _remove_if_empty(folders: Sequence[Path]) -> None:
    """Remove the folders a failed download created and left empty, deepest first (stop at one in use)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def download_dataset(name: str, data_dir: str | os.PathLike | None = None, *,
                     mirrors: Iterable[str] | None = None, progress: bool = False, timeout: float = 30.0,
                     retries: int = 1, table: Mapping[str, Sequence[FileEntry]] | None = None) -> list[FileResult]:
    """Make sure (data_dir or ~/.cache/scratchcnn)/<name>/ holds the dataset's verified files.

    A file already there is kept if it verifies ("cache"); otherwise it is downloaded from the first
    mirror that delivers the right bytes (see mirror_list) and only then replaces the old one. A file
    there that fails verification is left alone when no mirror delivers. name "all": every dataset.
    ``table`` replaces the built-in checksum table. Raises DownloadError with one line to act on.
    """
    table = TABLE if table is None else table
    if name == "all":
        done: list[FileResult] = []
        for each in table:
            try:
                done += download_dataset(each, data_dir, mirrors=mirrors, progress=progress, timeout=timeout,
                                         retries=retries, table=table)
            except DownloadError as error:
                error.results = done + error.results  # what is in place: the earlier datasets' files too
                raise
        return done
    if name not in table:
        raise DownloadError(f"unknown dataset {name!r}; choose one of {', '.join([*table, 'all'])}")
    entries = table[name]
    directory = _dataset_folder(Path(data_dir or DEFAULT_DIR).expanduser(), name, entries)
    urls = mirror_list(name, mirrors)
    results: list[FileResult] = []
    created = _created_by_mkdir(directory)
    try:
        _fill(name, directory, entries, urls, results, progress=progress, timeout=timeout, retries=retries)
    except BaseException as error:
        _remove_if_empty(created)  # a failed download leaves no empty <name>/ folder behind
        if isinstance(error, DownloadError):
            error.results = results
        raise
    return results


def _fill(name: str, directory: Path, entries: Sequence[FileEntry], urls: Sequence[str],
          results: list[FileResult], *, progress: bool, timeout: float, retries: int) -> None:
    """download_dataset's work: append each file put in place to results; raise DownloadError if any is not."""
    failures = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for entry in entries:
            path = directory / entry.name
            if path.is_file():
                ok, sha256, _md5 = verify_file(path, entry)
                if ok:
                    results.append(FileResult(path, sha256, entry.md5 is not None or entry.sha256 is not None,
                                              "cache"))
                    continue
            if not urls:
                raise DownloadError(f"{entry.name}: no mirror to download from",
                                    f"set {MIRROR_ENV} or put the files in {directory}/")
            result, reasons, answered = _download_file(entry, directory, urls, progress=progress,
                                                       timeout=timeout, retries=retries)
            if result is not None:
                results.append(result)
            elif not answered:  # nothing answered: the other files would only time out the same way
                raise DownloadError(f"no network ({_mirrors_failed(reasons, name)})",
                                    f"put the {_count_word(len(entries))} files in {directory}/ yourself")
            else:
                failures.append(f"{entry.name}: " + " | ".join(f"{base}{entry.name}: {why}" for base, why in reasons))
    except OSError as error:  # local trouble: permissions, a full disk
        raise DownloadError(f"cannot write into {directory}: {error.strerror or error}") from None
    if failures:
        raise DownloadError(f"download of {name} into {directory} failed: " + "; ".join(failures))
