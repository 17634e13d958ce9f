"""What kind of file this is, from its first bytes: for messages that name what a user gave by mistake.

Also the one home of the IDX format's type codes and of gzip's magic bytes, which the IDX reader uses.
"""

from __future__ import annotations

import codecs
import gzip
import zlib
from pathlib import Path

IMAGE_KINDS = {"a PNG image", "a JPEG image", "a GIF image", "a BMP image"}
MAGIC = {  # leading bytes of common files someone might pass by mistake
    b"\x89PNG\r\n\x1a\n": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF87a": "a GIF image",
    b"GIF89a": "a GIF image", b"%PDF-": "a PDF document",
}
# The IDX format's element type codes and their big-endian NumPy dtypes (data/idx.py reads and writes them).
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"
SNIFF = 512  # bytes read to tell what a file is


def what_it_is(path: Path) -> str | None:
    """"a JSON file", "a PNG image", ... for a file that is plainly not an .npz; None when unsure (a damaged one)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF)
    except OSError:
        return None
    if not head:
        return "an empty file"
    for magic, kind in MAGIC.items():
        if head.startswith(magic):
            return kind
    if head.startswith(b"BM") and len(head) >= 18 and int.from_bytes(head[14:18], "little") in (12, 40, 56, 108, 124):
        return "a BMP image"  # the size of its info header, so that a text starting "BM" is not taken for one
    if head.startswith(GZIP_MAGIC):
        return "a gzipped IDX file (a dataset's images or labels)" if _is_idx(_gunzip_head(path)) else "a gzip file"
    if _is_idx(head):
        return "an IDX file (a dataset's images or labels)"
    text = _as_text(head)
    if text is None:
        return None
    if path.suffix.lower() == ".json" or text.lstrip("\ufeff \t\r\n")[:1] in ("{", "["):
        return "a JSON file"
    return "a text file"


def _is_idx(head: bytes) -> bool:
    """An IDX header: two zero bytes, an element type code, then 1 to 4 dimensions."""
    return len(head) >= 4 and head[:2] == b"\0\0" and head[2] in IDX_TYPES and 1 <= head[3] <= 4


def _gunzip_head(path: Path) -> bytes:
    """The first bytes of a gzip file's content (empty if it does not inflate)."""
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(4)
    except (OSError, EOFError, zlib.error):
        return b""


def _as_text(head: bytes) -> str | None:
    """The bytes as UTF-8 text (a character cut at the end is fine), None if binary: control bytes (a zip's
    "PK\\3\\4" among them) other than tab, newline, carriage return and form feed."""
    if any(byte < 0x20 and byte not in b"\t\n\r\f" for byte in head):
        return None
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
