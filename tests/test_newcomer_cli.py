"""A newcomer's slips get a hint, not a puzzle: a mistyped flag or command, the wrong file for a command,
and ``explore --open`` on a machine without a browser (issue 11, items 7, 8 and 14)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_main
from helpers import idx_bytes, one_line_error

from scratchcnn import ConvNet

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(17)  # what a PNG starts with: enough to be told apart
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(20)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run folder as scratchcnn train leaves it, as far as these tests look: model.npz and history.json."""
    folder = tmp_path / "runs" / "demo"
    ConvNet().save(folder / "model.npz")
    (folder / "history.json").write_text(json.dumps({"history": [], "test_accuracy": 0.5}))
    return folder


# ---- 7: a mistyped flag or command ---------------------------------------------------------------------

@pytest.mark.parametrize("typed", [["--learnig-rate", "0.01"], ["--learnig-rate=0.01"]])
def test_a_mistyped_flag_gets_the_commands_usage_and_the_closest_flag(typed: list[str], capsys) -> None:
    status, out, err = run_main(["train", *typed], capsys)
    assert status == 2 and out == ""
    assert err.startswith("usage: scratchcnn train ")  # argparse's own usage line, of the command
    last = err.strip().splitlines()[-1]
    assert last.startswith("scratchcnn train: error: unrecognized arguments: --learnig-rate")
    assert last.endswith("(did you mean --learning-rate?)")


def test_each_mistyped_flag_gets_its_own_suggestion(capsys) -> None:
    status, _out, err = run_main(["evaluate", "m.npz", "--jsn", "--data-dri", "x"], capsys)
    assert status == 2 and err.startswith("usage: scratchcnn evaluate ")
    assert "(did you mean --json, --data-dir?)" in err


def test_an_argument_nothing_resembles_gets_no_guess(capsys) -> None:
    status, _out, err = run_main(["evaluate", "m.npz", "--zzzzzz"], capsys)
    assert status == 2 and err.startswith("usage: scratchcnn evaluate ")
    assert err.strip().endswith("error: unrecognized arguments: --zzzzzz")


def test_a_mistyped_command_gets_the_closest_command(capsys) -> None:
    status, out, err = run_main(["trian", "--epochs", "1"], capsys)
    assert status == 2 and out == ""
    usage, message = err.strip().splitlines()[0], err.strip().splitlines()[-1]
    assert usage.startswith("usage: scratchcnn ")
    assert message.startswith("scratchcnn: error: unknown command 'trian': did you mean 'train'?")
    assert "evaluate" in message  # the list of commands is still there
    status, _out, err = run_main(["xyzzy"], capsys)  # nothing like a command: argparse's message, no guess
    assert status == 2 and "invalid choice: 'xyzzy'" in err and "did you mean" not in err


# ---- 8: the wrong file for the command -----------------------------------------------------------------

def test_evaluate_a_json_file_says_it_is_json_and_what_evaluate_takes(run: Path, capsys) -> None:
    status, _out, err = run_main(["evaluate", run / "history.json"], capsys)
    line = one_line_error(status, err, f"{run / 'history.json'}: a JSON file, not a scratchcnn model file")
    assert line.endswith("evaluate takes a model.npz written by scratchcnn train")
    assert "zip" not in line and "pickle" not in line


def test_predict_with_image_and_model_swapped_says_model_comes_first(run: Path, tmp_path: Path, capsys) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(PNG)
    status, _out, err = run_main(["predict", photo, run / "model.npz"], capsys)
    line = one_line_error(status, err, f"{photo}: a PNG image, not a scratchcnn model file")
    assert line.endswith("(MODEL comes first: scratchcnn predict MODEL IMAGE...)")


KINDS = {
    "an empty file": b"",
    "a text file": b"some notes\nabout digits\n",
    "a JSON file": b'  {"epochs": 3}',  # told by its content: the name does not say .json
    "a PNG image": PNG,
    "a JPEG image": JPEG,
    "a GIF image": b"GIF89a" + bytes(20),
    "a BMP image": b"BM" + bytes(12) + (40).to_bytes(4, "little") + bytes(20),
    "an IDX file": idx_bytes(np.arange(5, dtype=np.uint8)),
    "a gzipped IDX file": gzip.compress(idx_bytes(np.arange(5, dtype=np.uint8))),
    "a gzip file": gzip.compress(b"anything"),
}


@pytest.mark.parametrize(("kind", "content"), KINDS.items(), ids=list(KINDS))
def test_a_file_of_another_kind_is_named(kind: str, content: bytes, tmp_path: Path, capsys) -> None:
    path = tmp_path / "given.npz"
    path.write_bytes(content)
    status, _out, err = run_main(["explore", path], capsys)
    line = one_line_error(status, err, f"{path}: {kind}", "not a scratchcnn model file")
    assert line.endswith("explore takes a model.npz written by scratchcnn train")


def test_a_run_folder_for_a_model_suggests_its_model_npz(run: Path, capsys) -> None:
    status, _out, err = run_main(["evaluate", run], capsys)
    line = one_line_error(status, err, f"{run}: a directory, not a scratchcnn model file")
    assert line.endswith(f"did you mean {run / 'model.npz'}?")


def test_a_folder_without_a_model_says_what_evaluate_takes(tmp_path: Path, capsys) -> None:
    status, _out, err = run_main(["evaluate", tmp_path], capsys)
    line = one_line_error(status, err, f"{tmp_path}: a directory, not a scratchcnn model file")
    assert line.endswith("evaluate takes a model.npz written by scratchcnn train")


def test_the_library_says_what_a_model_is(tmp_path: Path) -> None:
    """ConvNet.load, outside the command line, still names the kind and what a model is."""
    path = tmp_path / "history.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match=r"a JSON file, not a scratchcnn model file: a model is the model\.npz"):
        ConvNet.load(path)


def test_a_damaged_model_file_keeps_its_reason(run: Path, tmp_path: Path, capsys) -> None:
    """A truncated .npz is not 'another kind of file': it keeps the reason it does not parse."""
    status, _out, err = run_main(["evaluate", run / "history.json"], capsys)  # the control: one that is
    one_line_error(status, err, "a JSON file, not a scratchcnn model file")
    path = tmp_path / "model.npz"
    path.write_bytes((run / "model.npz").read_bytes()[:100])
    status, _out, err = run_main(["evaluate", path], capsys)
    line = one_line_error(status, err, f"{path}: not a scratchcnn model file (")
    assert "text" not in line and "evaluate takes" not in line
    path.write_bytes(b"\x01\x02 a few bytes\n")  # a control byte: binary, of no kind known
    status, _out, err = run_main(["evaluate", path], capsys)
    one_line_error(status, err, f"{path}: not a scratchcnn model file (File is not a zip file)")


def test_report_given_the_model_file_suggests_the_run_folder(run: Path, capsys) -> None:
    status, _out, err = run_main(["report", run / "model.npz"], capsys)
    one_line_error(status, err, f"{run / 'model.npz'}: that is a model file; report takes a run folder such as {run}")


def test_report_given_another_file_says_so(tmp_path: Path, capsys) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    status, _out, err = run_main(["report", path], capsys)
    one_line_error(status, err, f"{path}: that is a file; report takes a run folder")


# ---- 14: explore --open without a browser --------------------------------------------------------------

def test_explore_open_without_a_browser_says_where_the_page_is(run: Path, tmp_path: Path, capsys,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("scratchcnn.data.datasets.search_dirs", lambda data_dir=None: [tmp_path / "nothing"])
    asked: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: asked.append(url) or False)
    status, out, err = run_main(["explore", run / "model.npz", "--open"], capsys)
    page = run / "explorer.html"
    assert status == 0 and page.is_file() and f"wrote {page}" in out
    assert asked == [page.resolve().as_uri()]
    assert f"scratchcnn: note: no web browser found to open the page; open {page.resolve()} yourself" in err
    assert "error" not in err
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: True)  # with a browser: no note
    status, _out, err = run_main(["explore", run / "model.npz", "--open"], capsys)
    assert status == 0 and "no web browser" not in err
