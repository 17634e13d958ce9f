"""Issue 11, a newcomer's path to the data: short messages that say the one thing to do, ``--data-dir``
meaning exactly that folder (or the dataset's folder itself), no empty folders left by a failed
download, ``download --json`` on failure, every mirror named, and downloaded files readable by others.

Nothing here touches the internet: mirrors are conftest's ``server`` on 127.0.0.1 or a closed port.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from conftest import last_json, make_fake_dataset, run_main
from helpers import closed_port, entries_for, listing, one_line_error, only_localhost

from scratchcnn.data import FILES, download, load_dataset
from scratchcnn.data import datasets as data
from scratchcnn.errors import DataError

NAMES = tuple(f"{stem}.gz" for stem in FILES.values())
LABELS = "train-labels-idx1-ubyte.gz"
TRAIN = ["train", "--epochs", "1", "--train-size", "20", "--validation-size", "0"]


@pytest.fixture
def here(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """conftest's isolated (HOME and cwd in tmp_path, no $SCRATCHCNN_DATA), no system folder, 127.0.0.1 only."""
    monkeypatch.setattr(data, "SYSTEM_DIR", isolated / "system")
    only_localhost(monkeypatch)
    return isolated


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """A small fake MNIST's four .gz files by name, with download.TABLE describing them."""
    folder = make_fake_dataset(tmp_path / "source") / "mnist"
    files = {name: (folder / name).read_bytes() for name in NAMES}
    monkeypatch.setattr(download, "TABLE", {"mnist": entries_for(files)})
    return files


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Allow load_dataset to download (conftest sets $SCRATCHCNN_OFFLINE for the session)."""
    monkeypatch.delenv(data.OFFLINE_ENV, raising=False)


def unreachable() -> str:
    return f"http://127.0.0.1:{closed_port()}/"


def length(line: str, here: Path) -> int:
    """The line's length with the test's temporary folder written as "~" (as a user's home would read)."""
    return len(line.replace(str(here), "~"))


# ---- 5. "no network" and "not found": one short line, then the one thing to do ------------------------


def test_download_no_network_says_where_to_put_the_files_not_to_pass_data_dir(here, served, capsys):
    status, out, err = run_main(["download", "--data-dir", here / "X", "--mirror", unreachable()], capsys)
    assert out == "", out
    line = one_line_error(status, err, "no network", f"put the four files in {here / 'X' / 'mnist'}/")
    assert "--data-dir" not in line  # it was just passed: telling the user to pass it is no help
    assert "last error" not in line and "[Errno" not in line
    assert length(line, here) < 160, line


def test_train_without_data_dir_and_no_network_gives_the_three_ways_out(here, served, online, monkeypatch,
                                                                          capsys):
    monkeypatch.setenv(download.MIRROR_ENV, unreachable())
    status, out, err = run_main([*TRAIN, "--out", here / "run"], capsys)
    assert out == "", out
    line = one_line_error(status, err, "no network", "SCRATCHCNN_DATA", "--dataset digits", "works offline")
    assert line.count("--data-dir") == 1, line
    assert length(line, here) < 260, line
    assert not (here / "run").exists()


def test_train_with_data_dir_and_no_network_says_put_the_files_there(here, served, online, monkeypatch, capsys):
    monkeypatch.setenv(download.MIRROR_ENV, unreachable())
    status, out, err = run_main([*TRAIN, "--data-dir", here / "d", "--out", here / "run"], capsys)
    assert out == "", out
    line = one_line_error(status, err, "no network", f"put the four files in {here / 'd' / 'mnist'}/",
                          "--dataset digits")
    assert "--data-dir" not in line and "SCRATCHCNN_DATA" not in line, line


def test_not_found_offline_is_short_and_offers_digits(here, capsys):
    status, out, err = run_main([*TRAIN, "--out", here / "run"], capsys)
    assert out == "", out
    line = one_line_error(status, err, "dataset mnist not found", *NAMES, "--dataset digits", "scikit-learn")
    assert line.count("--data-dir") == 1 and line.count("SCRATCHCNN_DATA") == 1, line
    assert str(here / ".cache" / "scratchcnn" / "mnist") in line  # where it looked stays, compactly
    assert length(line, here) < 360, line


# ---- 6. --data-dir: exactly that folder, or the dataset's folder itself; no empty folders left --------


def test_data_dir_may_be_the_dataset_folder_itself(here, fake, tmp_path):
    dataset = load_dataset("mnist", fake / "mnist")
    assert dataset.directory == fake / "mnist"
    assert dataset.train_images.shape == (40, 28, 28)
    assert not (fake / "mnist" / "mnist").exists()
    # Only a folder named for the dataset: Fashion-MNIST's files have the same names as MNIST's.
    make_fake_dataset(tmp_path / "d", name="fashion-mnist")
    with pytest.raises(DataError, match="dataset mnist not found"):
        load_dataset("mnist", tmp_path / "d" / "fashion-mnist")


def test_train_accepts_the_dataset_folder_as_data_dir(here, fake, capsys):
    status, out, err = run_main([*TRAIN, "--data-dir", fake / "mnist", "--out", here / "run", "--json"], capsys)
    assert status == 0, err
    assert last_json(out)["data"]["directory"] == str(fake / "mnist")


def test_explicit_data_dir_is_never_replaced_by_the_environment_or_the_cache(here, fake, monkeypatch, capsys):
    make_fake_dataset(here / ".cache" / "scratchcnn")
    monkeypatch.setenv("SCRATCHCNN_DATA", str(fake))
    (here / "empty").mkdir()
    with pytest.raises(DataError) as caught:
        load_dataset("mnist", here / "empty")
    message = str(caught.value)
    assert str(here / "empty" / "mnist") in message and str(fake) not in message and ".cache" not in message
    assert "--dataset digits" in message
    status, out, err = run_main([*TRAIN, "--data-dir", here / "empty", "--out", here / "run"], capsys)
    assert out == "", out
    one_line_error(status, err, f"{here / 'empty' / 'mnist'}")
    assert listing(here / "empty") == []


def test_explicit_data_dir_without_the_dataset_is_downloaded_into(here, fake, served, server, online,
                                                                  monkeypatch):
    monkeypatch.setenv("SCRATCHCNN_DATA", str(fake))  # holds MNIST: must not be used instead
    monkeypatch.setitem(download.MIRRORS, "mnist", (server.serve("m", served, slash=True),))
    dataset = load_dataset("mnist", here / "mine")
    assert dataset.directory == here / "mine" / "mnist"
    assert listing(here / "mine" / "mnist") == sorted(NAMES)


def test_failed_download_leaves_no_empty_folder(here, served, capsys):
    (here / "existing").mkdir()
    for target in (here / "new" / "deeper", here / "existing"):
        status, out, err = run_main(["download", "--data-dir", target, "--mirror", unreachable()], capsys)
        assert out == "", out
        one_line_error(status, err, "no network")
    assert not (here / "new").exists()
    assert listing(here / "existing") == []


def test_failed_automatic_download_leaves_no_empty_folder(here, served, server, online, monkeypatch):
    monkeypatch.setitem(download.MIRRORS, "mnist", (server.url("nothing", slash=True),))  # 404 for all
    with pytest.raises(DataError, match="HTTP 404"):
        load_dataset("mnist", here / "mine")
    with pytest.raises(DataError, match="HTTP 404"):
        load_dataset("mnist")
    assert not (here / "mine").exists() and not (here / ".cache").exists()


# ---- 10. download --json on failure, every mirror named, files readable by others ---------------------


def test_download_json_prints_the_error_object_on_failure(here, served, server, capsys):
    base = server.serve("m", served, slash=True)
    server.rules[f"/m/{LABELS}"] = "tamper"
    status, out, err = run_main(["download", "--data-dir", here, "--mirror", base, "--json"], capsys)
    line = one_line_error(status, err, LABELS, "SHA-256 is")
    result = last_json(out)
    assert result["dataset"] == "mnist"
    assert result["error"] == line.removeprefix("scratchcnn: error: ")
    assert sorted(Path(f["path"]).name for f in result["files"]) == sorted(set(NAMES) - {LABELS})
    assert listing(here / "mnist") == sorted(set(NAMES) - {LABELS})


def test_download_json_on_no_network(here, served, capsys):
    status, out, err = run_main(["download", "--data-dir", here, "--mirror", unreachable(), "--json"], capsys)
    line = one_line_error(status, err, "no network")
    assert last_json(out) == {"dataset": "mnist", "files": [], "error": line.removeprefix("scratchcnn: error: ")}


def test_every_unreachable_mirror_is_named_with_its_reason(here, served, capsys):
    first, second = unreachable(), f"http://127.0.0.1:{closed_port()}/lab/"
    status, out, err = run_main(["download", "--data-dir", here, "--mirror", first, "--mirror", second], capsys)
    assert out == "", out
    line = one_line_error(status, err, "no network", first, second)
    assert "refused" in line.lower()


@pytest.mark.parametrize("umask", [0o022, 0o002], ids=["umask022", "umask002"])
def test_downloaded_files_get_the_usual_permissions(here, served, server, umask):
    base = server.serve("m", served, slash=True)
    old = os.umask(umask)
    try:
        results = download.download_dataset("mnist", here / "lab", mirrors=[base])
    finally:
        os.umask(old)
    assert [r.source for r in results] == [base + name for name in NAMES]
    for name in NAMES:
        assert stat.S_IMODE((here / "lab" / "mnist" / name).stat().st_mode) == 0o666 & ~umask
