"""ConvNet model files: save and load round trips, atomic saving, and every kind of damaged or hostile
file refused with a one-line ModelFileError naming it."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest
from helpers import NON_DEFAULT, images

from scratchcnn import ConvNet
from scratchcnn.errors import ModelFileError

# ---- save and load --------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, NON_DEFAULT], ids=["default", "nondefault"])
def test_save_load_round_trip(tmp_path, kwargs):
    net = ConvNet(**kwargs, seed=3)
    if net.bias:
        net.b[...] = np.random.default_rng(0).normal(size=10)
    net.dataset = "mnist"
    path = net.save(tmp_path / "model.npz")
    assert path == tmp_path / "model.npz"
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # atomic: no temporary file left behind

    loaded = ConvNet.load(path)
    assert loaded.config == net.config
    assert loaded.dataset == "mnist"
    assert set(loaded.parameters()) == set(net.parameters())
    for name, value in net.parameters().items():
        got = loaded.parameters()[name]
        assert got.dtype == value.dtype and got.shape == value.shape
        assert got.tobytes() == value.tobytes()
    X = images(np.random.default_rng(1), 6, net.input_shape)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))

    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {*net.parameters(), "header"}
        header = json.loads(str(npz["header"]))
        for name in net.parameters():
            np.testing.assert_array_equal(npz[name], net.parameters()[name])
    assert header["format"] == "scratchcnn.ConvNet"
    assert header["config"] == net.config


def test_save_overwrites_and_string_path(tmp_path):
    first, second = ConvNet(seed=1), ConvNet(seed=2)
    path = str(tmp_path / "m.npz")
    first.save(path)
    second.save(path)
    assert ConvNet.load(path).f.tobytes() == second.f.tobytes()
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_save_failure_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    ConvNet(seed=1).save(path)
    before = path.read_bytes()

    def broken_savez(fh, **arrays):
        fh.write(b"PK half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        ConvNet(seed=2).save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_save_creates_parent_directories(tmp_path):
    path = ConvNet().save(tmp_path / "a" / "b" / "m.npz")
    assert ConvNet.load(path).config == ConvNet().config


# ---- damaged and hostile files, written by hand ---------------------------------------------------


def good_header(**config_changes) -> dict:
    net = ConvNet()
    header = net.header()
    header["config"].update(config_changes)
    return header


def write_npz(path, header, /, **arrays) -> None:
    """Write an .npz by hand: the arrays, plus a header array holding ``header`` (str → as is, dict → JSON)."""
    if header is not None:
        assert "header" not in arrays
        arrays["header"] = np.array(header if isinstance(header, str) else json.dumps(header))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def default_arrays() -> dict[str, np.ndarray]:
    net = ConvNet()
    return {"f": net.f, "W": net.W}


def assert_refused(path, *needles):
    with pytest.raises(ModelFileError) as info:
        ConvNet.load(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def test_hand_written_good_file_loads(tmp_path):
    """The control for the refusals below: write_npz with the right header and arrays is accepted."""
    path = tmp_path / "m.npz"
    write_npz(path, good_header(), **default_arrays())
    assert ConvNet.load(path).f.tobytes() == ConvNet().f.tobytes()


def test_load_missing_file(tmp_path):
    assert_refused(tmp_path / "nope.npz", "no such model file")


def test_load_directory(tmp_path):
    assert_refused(tmp_path, "directory")


def test_load_single_npy_file(tmp_path):
    path = tmp_path / "m.npy"
    np.save(path, ConvNet().f)
    assert_refused(path, "not a scratchcnn model file")


@pytest.mark.parametrize(
    "content", [b"", b"hello, this is not a zip file\n" * 10, b"PK\x03\x04garbage", b"\x93NUMPY"], ids=repr
)
def test_load_garbage(tmp_path, content):
    path = tmp_path / "garbage.npz"
    path.write_bytes(content)
    assert_refused(path, "not a scratchcnn model file")


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.99])
def test_load_truncated(tmp_path, fraction):
    good = ConvNet().save(tmp_path / "good.npz").read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(good[: int(len(good) * fraction)])
    assert_refused(path, "not a scratchcnn model file")


def test_load_corrupted_byte_in_array(tmp_path):
    path = ConvNet().save(tmp_path / "m.npz")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # inside W's data: the zip CRC no longer matches
    path.write_bytes(bytes(raw))
    assert_refused(path, "not a scratchcnn model file")


def test_load_npz_without_header(tmp_path):
    path = tmp_path / "m.npz"
    write_npz(path, None, **default_arrays())
    assert_refused(path, "no scratchcnn header")


@pytest.mark.parametrize(
    "header",
    [np.array([1, 2, 3]), np.array(b"{}"), np.array(["{}", "{}"]), np.array(3.0)],
    ids=["ints", "bytes", "two-strings", "float"],
)
def test_load_header_of_wrong_kind(tmp_path, header):
    path = tmp_path / "m.npz"
    write_npz(path, None, header=header, **default_arrays())
    assert_refused(path, "no scratchcnn header")


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        ("not json {", "not valid JSON"),
        ("[1, 2]", "not a scratchcnn.ConvNet file"),
        ({"format": "something.Else", "format_version": 1, "config": {}}, "not a scratchcnn.ConvNet file"),
        ({"format_version": 1, "config": {}}, "not a scratchcnn.ConvNet file"),
        ({"format": "scratchcnn.ConvNet", "format_version": 2, "config": {}}, "version 2"),
        ({"format": "scratchcnn.ConvNet", "config": {}}, "version None"),
        ({"format": "scratchcnn.ConvNet", "format_version": 1}, "has no config"),
        ({"format": "scratchcnn.ConvNet", "format_version": 1, "config": [3]}, "has no config"),
    ],
    ids=["json", "list", "format", "no-format", "version", "no-version", "no-config", "config-list"],
)
def test_load_header_wrong_format(tmp_path, header, needle):
    path = tmp_path / "m.npz"
    write_npz(path, header, **default_arrays())
    assert_refused(path, needle)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"pool": "median"}, "bad configuration in header"),
        ({"filters": 0}, "bad configuration in header"),
        ({"unknown_option": 1}, "bad configuration in header"),
        ({"seed": 5}, "bad configuration in header"),
    ],
)
def test_load_header_bad_config(tmp_path, changes, needle):
    path = tmp_path / "m.npz"
    write_npz(path, good_header(**changes), **default_arrays())
    assert_refused(path, needle)


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        ({"filters": 4}, ["array f", "(3, 3, 3)", "(4, 3, 3)"]),
        ({"kernel_size": 5}, ["array f", "(3, 5, 5)"]),
        ({"input_shape": [26, 28]}, ["array W", "(10, 3, 13, 14)"]),
        ({"dtype": "float64"}, ["float32", "float64"]),
    ],
)
def test_load_header_disagrees_with_arrays(tmp_path, changes, needles):
    path = tmp_path / "m.npz"
    write_npz(path, good_header(**changes), **default_arrays())
    assert_refused(path, *needles)


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("name", ["f", "W"])
def test_load_array_not_finite(tmp_path, name, value):
    arrays = default_arrays()
    arrays[name] = arrays[name].copy()
    arrays[name].flat[3] = value
    path = tmp_path / "m.npz"
    write_npz(path, good_header(), **arrays)
    assert_refused(path, f"array {name}", "NaN or infinite")


UNPICKLED = []


def _record_unpickling(tag):
    UNPICKLED.append(tag)
    return tag


class Booby:
    """Records it if anyone unpickles it: load must never run pickled code."""

    def __reduce__(self):
        return (_record_unpickling, ("ran",))


def test_load_refuses_pickled_object_array(tmp_path):
    arrays = default_arrays()
    arrays["f"] = np.array([Booby()] * 27, dtype=object).reshape(3, 3, 3)
    path = tmp_path / "m.npz"
    write_npz(path, good_header(), **arrays)
    message = assert_refused(path, "not a scratchcnn model file")
    assert "pickle" in message
    assert UNPICKLED == []


def test_load_refuses_pickled_header(tmp_path):
    path = tmp_path / "m.npz"
    write_npz(path, None, header=np.array(Booby(), dtype=object), **default_arrays())
    assert_refused(path, "pickle")
    assert UNPICKLED == []


@pytest.mark.parametrize(
    ("arrays", "header_changes"),
    [
        ({"extra": np.zeros(3, np.float32)}, {}),
        ({"b": np.zeros(10, np.float32)}, {}),
        ({"W": None}, {}),
        ({"f": None}, {}),
        ({}, {"bias": True}),
    ],
    ids=["extra", "unexpected-b", "missing-W", "missing-f", "missing-b"],
)
def test_load_extra_or_missing_arrays(tmp_path, arrays, header_changes):
    base = default_arrays()
    for name, value in arrays.items():
        if value is None:
            del base[name]
        else:
            base[name] = value
    path = tmp_path / "m.npz"
    write_npz(path, good_header(**header_changes), **base)
    assert_refused(path, "holds arrays", "header needs")


def _zip_with_raw_members(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_load_zip_whose_header_is_not_npy(tmp_path):
    """Once a bug: np.load hands back bytes for a member that is not .npy, and load raised AttributeError."""
    path = tmp_path / "m.npz"
    _zip_with_raw_members(path, {"header": b"hello", "f.npy": _npy_bytes(ConvNet().f)})
    assert_refused(path, "header")


def test_load_zip_whose_array_is_not_npy(tmp_path):
    net = ConvNet()
    path = tmp_path / "m.npz"
    _zip_with_raw_members(
        path,
        {
            "header.npy": _npy_bytes(np.array(json.dumps(net.header()))),
            "f.npy": b"garbage",
            "W.npy": _npy_bytes(net.W),
        },
    )
    assert_refused(path, "'f'")


def test_loaded_parameters_are_writable_and_trainable(tmp_path):
    net = ConvNet(bias=True)
    loaded = ConvNet.load(net.save(tmp_path / "m.npz"))
    for value in loaded.parameters().values():
        assert value.flags.writeable
        value -= 0.01  # an in-place SGD step must work
    assert not np.array_equal(loaded.f, net.f)
