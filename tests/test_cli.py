"""The command line end to end: real subprocesses (``python -m scratchcnn``) for exit statuses and
what reaches stdout/stderr, in-process ``main(argv)`` calls where that is faster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import last_json, make_fake_dataset, run_main, skip_or_fail

from scratchcnn import ConvNet

SUMMARY_KEYS = {"test_accuracy", "validation_accuracy", "train_accuracy", "epochs", "seconds_per_epoch", "model"}
NO_SECONDS = ("epoch", "records", "train_accuracy", "train_loss", "validation_accuracy", "validation_loss")


# ---- helpers -----------------------------------------------------------------------------------


def cli(*args: Any, cwd: Path, data: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m scratchcnn ARGS`` in cwd, with $HOME = cwd (no ~/.cache) and $SCRATCHCNN_DATA = data."""
    env = {k: v for k, v in os.environ.items() if k != "SCRATCHCNN_DATA"}
    env["HOME"] = str(cwd)
    if data is not None:
        env["SCRATCHCNN_DATA"] = str(data)
    return subprocess.run([sys.executable, "-m", "scratchcnn", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("scratchcnn: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def history_without_seconds(summary: dict[str, Any]) -> list[tuple]:
    return [tuple(e[k] for k in NO_SECONDS) for e in summary["history"]]


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


# ---- a real run on MNIST, shared by several tests ----------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    cwd = tmp_path_factory.mktemp("real")
    proc = cli("train", "--train-size", 2000, "--epochs", 2, "--lr", 0.001, "--out", "run", "--json",
               cwd=cwd, data=data_dir)
    return {"proc": proc, "cwd": cwd, "out": cwd / "run"}


def test_train_on_real_mnist_prints_a_json_summary_and_writes_files(real_run: dict[str, Any]) -> None:
    proc, out = real_run["proc"], real_run["out"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress bar, no warnings when stderr is not a terminal
    assert len(proc.stdout.splitlines()) == 1
    summary = last_json(proc.stdout)
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["epochs"] == 2
    assert summary["model"] == str(Path("run") / "model.npz")
    assert summary["stopped"] is None
    assert 0.5 < summary["test_accuracy"] <= 1
    assert 0 <= summary["train_accuracy"] <= 1 and 0 <= summary["validation_accuracy"] <= 1
    assert summary["seconds_per_epoch"] > 0
    assert [e["records"] for e in summary["history"]] == [1800, 3600]
    assert summary["validation_accuracy"] == summary["history"][-1]["validation_accuracy"]
    assert summary["train_accuracy"] == summary["history"][-1]["train_accuracy"]
    assert summary["options"]["train_size"] == 2000 and summary["options"]["learning_rate"] == 0.001

    for name in ("model.npz", "history.json", "history.csv"):
        assert (out / name).is_file(), name
    assert json.loads((out / "history.json").read_text()) == summary
    csv_lines = (out / "history.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,records,train_accuracy")
    assert len(csv_lines) == 3
    net = ConvNet.load(out / "model.npz")
    assert net.dataset == "mnist" and net.input_shape == (28, 28)


def test_evaluate_agrees_with_train(real_run: dict[str, Any], data_dir: Path) -> None:
    summary = last_json(real_run["proc"].stdout)
    proc = cli("evaluate", real_run["out"] / "model.npz", "--json", cwd=real_run["cwd"], data=data_dir)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result = last_json(proc.stdout)
    assert result["test_accuracy"] == summary["test_accuracy"]
    assert result["dataset"] == "mnist" and result["test_images"] == 10000
    matrix = np.array(result["confusion_matrix"])
    assert matrix.shape == (10, 10)
    assert matrix.sum() == 10000
    assert (matrix >= 0).all()
    assert np.trace(matrix) / 10000 == pytest.approx(result["test_accuracy"], abs=1e-12)
    per_class = result["per_class_accuracy"]
    assert len(per_class) == 10
    assert per_class == pytest.approx(list(matrix.diagonal() / matrix.sum(axis=1)))


def test_evaluate_human_output(real_run: dict[str, Any], data_dir: Path, isolated: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(["evaluate", real_run["out"] / "model.npz", "--data-dir", data_dir], capsys)
    assert status == 0, err
    assert "test accuracy" in out
    assert "confusion matrix" in out
    assert "per-class accuracy" in out
    assert len(out.splitlines()) == 3 + 1 + 10


def test_same_seed_same_model_and_history(real_run: dict[str, Any], data_dir: Path, isolated: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    first = last_json(real_run["proc"].stdout)
    status, out, err = run_main(["train", "--data-dir", data_dir, "--train-size", 2000, "--epochs", 2,
                                 "--lr", 0.001, "--out", "again", "--json"], capsys)
    assert status == 0, err
    again = last_json(out)
    assert history_without_seconds(again) == history_without_seconds(first)
    assert again["test_accuracy"] == first["test_accuracy"]
    a, b = load_arrays(real_run["out"] / "model.npz"), load_arrays(isolated / "again" / "model.npz")
    assert a.keys() == b.keys() == {"f", "W", "header"}
    for name in ("f", "W"):
        assert np.array_equal(a[name], b[name]), name

    status, out, err = run_main(["train", "--data-dir", data_dir, "--train-size", 2000, "--epochs", 2,
                                 "--lr", 0.001, "--out", "other", "--json", "--seed", 1], capsys)
    assert status == 0, err
    assert history_without_seconds(last_json(out)) != history_without_seconds(first)
    assert not np.array_equal(load_arrays(isolated / "other" / "model.npz")["W"], a["W"])


# ---- output --------------------------------------------------------------------------------------


def test_human_output_and_no_progress_bar_off_a_terminal(fake: Path, tmp_path: Path) -> None:
    proc = cli("train", "--data-dir", fake, "--epochs", 2, "--out", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout
    assert "mnist" in proc.stdout.splitlines()[-2]
    assert "train acc" in proc.stdout  # the per-epoch table
    assert proc.stderr == ""
    assert "%|" not in proc.stdout
    lines = proc.stdout.splitlines()
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[-1])
    assert (tmp_path / "run" / "model.npz").is_file()


def test_progress_bar_on_a_terminal(fake: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The counterpart of the test above: the bar does appear when stderr is a terminal."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    status, out, err = run_main(["train", "--data-dir", fake, "--epochs", 2, "--out", "run"], capsys)
    assert status == 0, err
    assert "%|" in err
    assert "test accuracy" in out


def test_json_output_is_one_line_even_with_progress(fake: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    status, out, err = run_main(["train", "--data-dir", fake, "--epochs", 2, "--out", "run", "--json"], capsys)
    assert status == 0, err
    assert len(out.splitlines()) == 1
    assert last_json(out).keys() >= SUMMARY_KEYS
    assert "%|" not in err


def test_default_output_folder(fake: Path, isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(2):
        status, _out, err = run_main(["train", "--data-dir", fake, "--epochs", 1, "--json"], capsys)
        assert status == 0, err
    runs = sorted((isolated / "runs").iterdir())
    assert len(runs) == 2  # a second run in the same second gets its own folder
    for run in runs:
        assert (run / "model.npz").is_file() and (run / "history.json").is_file()


def test_data_dir_wins_over_the_environment(fake: Path, data_dir: Path, isolated: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SCRATCHCNN_DATA", str(data_dir))
    status, out, err = run_main(["train", "--data-dir", fake, "--epochs", 1, "--out", "run", "--json"], capsys)
    assert status == 0, err
    assert last_json(out)["history"][0]["records"] == 36  # the fake 40 records, 4 held out


# ---- options -----------------------------------------------------------------------------------


@pytest.fixture
def small_model(tmp_path: Path, isolated: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A model with every network option changed, trained on fake 8×8 images."""
    fake8 = make_fake_dataset(tmp_path / "fake8", shape=(8, 8))
    status, _out, err = run_main(["train", "--data-dir", fake8, "--epochs", 2, "--filters", 4, "--kernel-size", 5,
                                  "--pool", "max", "--activation", "relu", "--bias", "--dtype", "float64",
                                  "--batch-size", 3, "--out", "small", "--json"], capsys)
    assert status == 0, err
    return tmp_path / "small" / "model.npz"


def test_network_options_reach_the_saved_model(small_model: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    net = ConvNet.load(small_model)
    assert net.config == {"filters": 4, "kernel_size": 5, "pool": "max", "activation": "relu", "bias": True,
                          "input_shape": [8, 8], "dtype": "float64", "classes": 10}
    assert net.f.shape == (4, 5, 5) and net.W.shape == (10, 4, 4, 4) and net.b.shape == (10,)
    assert net.W.dtype == np.float64
    assert net.dataset == "mnist"
    summary = json.loads((small_model.parent / "history.json").read_text())
    assert summary["options"]["batch_size"] == 3 and summary["options"]["pool"] == "max"

    status, out, err = run_main(["evaluate", small_model, "--data-dir", tmp_path / "fake8", "--json"], capsys)
    assert status == 0, err
    assert np.array(last_json(out)["confusion_matrix"]).sum() == 20


def test_evaluate_rejects_images_of_another_size(small_model: Path, tmp_path: Path, data_dir: Path) -> None:
    # --data-dir wins over the 8×8 data the run remembers
    proc = cli("evaluate", small_model, "--data-dir", data_dir, "--json", cwd=tmp_path, data=data_dir)
    assert_one_line_error(proc, "(8, 8)", "(28, 28)")
    assert proc.stdout == ""


def test_fashion_mnist(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not (data_dir / "fashion-mnist").is_dir():
        skip_or_fail(f"no fashion-mnist in {data_dir}")
    proc = cli("train", "--dataset", "fashion-mnist", "--train-size", 1000, "--epochs", 1, "--out", "run", "--json",
               cwd=tmp_path, data=data_dir)
    assert proc.returncode == 0, proc.stderr
    summary = last_json(proc.stdout)
    assert summary["options"]["dataset"] == "fashion-mnist"
    assert summary["history"][0]["records"] == 900
    assert 0.3 < summary["test_accuracy"] <= 1
    assert ConvNet.load(tmp_path / "run" / "model.npz").dataset == "fashion-mnist"
    # evaluate picks the dataset the model was trained on
    status, out, err = run_main(["evaluate", tmp_path / "run" / "model.npz", "--data-dir", data_dir, "--json"],
                                capsys)
    assert status == 0, err
    result = last_json(out)
    assert result["dataset"] == "fashion-mnist"
    assert result["test_accuracy"] == summary["test_accuracy"]


# ---- divergence --------------------------------------------------------------------------------


def test_diverging_run_saves_nothing_and_exits_3(fake: Path, tmp_path: Path) -> None:
    """Not one good epoch: no model of the initial parameters (see also test_newcomer_runs.py)."""
    proc = cli("train", "--data-dir", fake, "--epochs", 3, "--lr", 1e9, "--out", "run", "--json", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "learning rate 1e+09" in lines[0], proc.stderr
    assert last_json(proc.stdout)["model"] is None
    assert not (tmp_path / "run").exists()


def test_json_summary_stays_standard_json_when_training_blows_up(fake: Path, tmp_path: Path) -> None:
    proc = cli("train", "--data-dir", fake, "--epochs", 8, "--epoch-size", 5, "--lr", 1000, "--dtype", "float64",
               "--validation-size", 0, "--out", "run", "--json", cwd=tmp_path)
    assert proc.returncode in (0, 3), proc.stderr
    last_json(proc.stdout)  # once: "train_loss": NaN in the history


# ---- errors: one line on stderr, exit status 2 -------------------------------------------------


def test_missing_dataset(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cli("train", "--data-dir", empty, "--epochs", 1, "--out", "run", cwd=tmp_path)
    line = assert_one_line_error(proc, "mnist", "not found", str(empty / "mnist"), "--dataset digits")
    assert "train-images-idx3-ubyte" in line
    assert not (tmp_path / "run").exists()


def test_missing_dataset_names_the_missing_files(fake: Path, tmp_path: Path) -> None:
    assert cli("train", "--data-dir", fake, "--epochs", 1, "--out", "run", cwd=tmp_path).returncode == 0
    make_fake_dataset(tmp_path / "partial")
    (tmp_path / "partial" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    proc = cli("evaluate", "run/model.npz", "--data-dir", tmp_path / "partial", cwd=tmp_path)
    assert_one_line_error(proc, "missing t10k-labels-idx1-ubyte")


@pytest.mark.parametrize("gz", [True, False])
def test_corrupt_idx_file(tmp_path: Path, gz: bool) -> None:
    root = make_fake_dataset(tmp_path / "data", gz=gz)
    path = root / "mnist" / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    proc = cli("train", "--data-dir", root, "--epochs", 1, "--out", "run", cwd=tmp_path)
    assert_one_line_error(proc, str(path), "truncated")


def test_idx_file_with_bad_magic(tmp_path: Path) -> None:
    root = make_fake_dataset(tmp_path / "data", gz=False)
    path = root / "mnist" / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"garbage, not an IDX file at all")
    proc = cli("train", "--data-dir", root, "--epochs", 1, "--out", "run", cwd=tmp_path)
    assert_one_line_error(proc, str(path), "not an IDX file")


def test_evaluate_a_missing_model(tmp_path: Path) -> None:
    proc = cli("evaluate", "nowhere/model.npz", cwd=tmp_path)
    assert_one_line_error(proc, "nowhere/model.npz", "no such model file")


@pytest.mark.parametrize("content", [b"", b"this is not a model\n", b"PK\x03\x04 truncated zip"])
def test_evaluate_a_garbage_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "model.npz").write_bytes(content)
    proc = cli("evaluate", "model.npz", cwd=tmp_path)
    assert_one_line_error(proc, "model.npz", "not a scratchcnn model file")


def test_evaluate_a_folder(tmp_path: Path) -> None:
    proc = cli("evaluate", ".", cwd=tmp_path)
    assert_one_line_error(proc)


def test_out_that_cannot_be_written(fake: Path, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("in the way\n")
    proc = cli("train", "--data-dir", fake, "--epochs", 1, "--out", "a-file/run", "--json", cwd=tmp_path)
    assert_one_line_error(proc, "a-file")
    assert (tmp_path / "a-file").read_text() == "in the way\n"


def test_negative_seed_is_a_usage_error(fake: Path, tmp_path: Path) -> None:
    proc = cli("train", "--data-dir", fake, "--epochs", 1, "--seed", -1, "--out", "run", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [
    ["train", "--epochs", "0"],
    ["train", "--epochs", "1.5"],
    ["train", "--lr", "-1"],
    ["train", "--lr", "0"],
    ["train", "--lr", "abc"],
    ["train", "--lr", "nan"],
    ["train", "--lr", "inf"],
    ["train", "--batch-size", "0"],
    ["train", "--epoch-size", "0"],
    ["train", "--train-size", "-3"],
    ["train", "--validation-size", "1.5"],
    ["train", "--validation-size", "-0.1"],
    ["train", "--validation-size", "many"],
    ["train", "--pool", "median"],
    ["train", "--activation", "tanh"],
    ["train", "--dtype", "float16"],
    ["train", "--dataset", "cifar"],
    ["train", "--no-such-flag"],
    ["evaluate"],
    ["frobnicate"],
    [],
], ids=lambda argv: " ".join(argv) or "no-command")
def test_bad_flags_are_usage_errors(argv: list[str], isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_main(argv, capsys)
    assert status == 2
    assert out == ""
    assert "error" in err
    assert "Traceback" not in err
    assert not (isolated / "runs").exists()


def test_bad_flag_in_a_real_process(tmp_path: Path) -> None:
    proc = cli("train", "--epochs", "0", cwd=tmp_path)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr and "error" in proc.stderr and "--epochs" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("argv", [
    ["--train-size", "10", "--validation-size", "10"],
    ["--train-size", "10", "--validation-size", "0.95"],
])
def test_options_that_leave_no_training_records(argv: list[str], fake: Path, isolated: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    status, _out, err = run_main(["train", "--data-dir", fake, "--epochs", 1, "--out", "run", *argv], capsys)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scratchcnn: error: ")
    assert "validation_size" in lines[0]


# ---- help ----------------------------------------------------------------------------------------


def test_top_level_help(tmp_path: Path) -> None:
    proc = cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for text in ("train", "evaluate", "--data-dir", "--batch-size", "SCRATCHCNN_DATA"):
        assert text in proc.stdout, text
    assert proc.stderr == ""


@pytest.mark.parametrize(("command", "flags"), [
    ("train", ["--learning-rate", "--lr", "--batch-size", "--data-dir", "--epochs", "--epoch-size", "--train-size",
               "--validation-size", "--seed", "--filters", "--kernel-size", "--pool", "--activation", "--bias",
               "--dtype", "--dataset", "--out", "--json"]),
    ("evaluate", ["MODEL", "--data-dir", "--dataset", "--json"]),
])
def test_command_help(command: str, flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _err = run_main([command, "--help"], capsys)
    assert status == 0
    for flag in flags:
        assert flag in out, flag


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import scratchcnn

    status, out, _err = run_main(["--version"], capsys)
    assert status == 0
    assert out.strip() == f"scratchcnn {scratchcnn.__version__}"
