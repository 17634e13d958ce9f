"""Checkpoints and ``train --resume``: what a checkpoint holds, that resuming it (after SIGKILL, Ctrl-C, a
failed write or with more epochs) ends bit for bit where an uninterrupted run ends, which flags a resume
refuses, the NaN guard's last good checkpoint, and that damaged checkpoint files are refused in one line.

Real subprocesses (``python -m scratchcnn``) on real MNIST for killing and interrupting; in-process
``main(argv)`` and ``fit`` on a fake dataset where that is faster.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_fake_dataset, run_main
from helpers import one_line_error

from scratchcnn import ModelFileError
from scratchcnn.files import write_atomically
from scratchcnn.nn import npzfile
from scratchcnn.nn.model import ConvNet
from scratchcnn.train import TrainState, fit, runs
from scratchcnn.train.checkpoint import load_checkpoint, save_checkpoint
from scratchcnn.train.rundir import RunDir

# The real-data run every resumed run is compared with: 2700 training records after the 10 % split,
# batch size 1, so ≈0.1 s an epoch and ≈1.2 s a run (of which ≈0.5 s start-up and loading MNIST).
REAL = ("--train-size", 3000, "--epochs", 6, "--batch-size", 1)
REAL_EPOCHS, REAL_RECORDS = 6, 2700
CHECKPOINT_NAME = RunDir.CHECKPOINT
OUTPUTS = ("model.npz", "history.json", "history.csv", CHECKPOINT_NAME)
NO_SECONDS = ("epoch", "records", "train_accuracy", "train_loss", "validation_accuracy", "validation_loss")


# ---- helpers -----------------------------------------------------------------------------------


def env_for(cwd: Path, data: Path | None, unbuffered: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SCRATCHCNN_DATA"}
    env["HOME"] = str(cwd)
    if data is not None:
        env["SCRATCHCNN_DATA"] = str(data)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def cli(*args: Any, cwd: Path, data: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m scratchcnn ARGS`` in cwd to completion, with $HOME = cwd and $SCRATCHCNN_DATA = data."""
    return subprocess.run([sys.executable, "-m", "scratchcnn", *map(str, args)], cwd=cwd, env=env_for(cwd, data),
                          capture_output=True, text=True, timeout=120, check=False)


def start(*args: Any, cwd: Path, data: Path | None = None, unbuffered: bool = False) -> subprocess.Popen[str]:
    """Start ``python -m scratchcnn ARGS`` in the background (to be killed or interrupted)."""
    return subprocess.Popen([sys.executable, "-m", "scratchcnn", *map(str, args)], cwd=cwd,
                            env=env_for(cwd, data, unbuffered), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def temp_files(folder: Path) -> set[str]:
    """Leftovers of write_atomically: hidden files ending in .tmp."""
    return {p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")}


def assert_bitwise_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        assert a[name].tobytes() == b[name].tobytes(), f"array {name} differs"


def without_seconds(summary: dict[str, Any]) -> dict[str, Any]:
    """history.json minus its timings (seconds_per_epoch, compile_seconds, each epoch's seconds) and the model path."""
    rest = {k: v for k, v in summary.items() if k not in ("seconds_per_epoch", "compile_seconds", "model")}
    rest["history"] = [{k: v for k, v in e.items() if k != "seconds"} for e in summary["history"]]
    return rest


def records_without_seconds(records: list[Any]) -> list[tuple]:
    return [tuple(getattr(e, k) for k in NO_SECONDS) for e in records]


def csv_without_seconds(path: Path) -> list[list[str]]:
    rows = [line.split(",") for line in path.read_text().splitlines()]
    column = rows[0].index("seconds")
    return [row[:column] + row[column + 1:] for row in rows]


def assert_same_state(a: tuple[ConvNet, TrainState, dict], b: tuple[ConvNet, TrainState, dict],
                      same_options: bool = True) -> None:
    """Two loaded checkpoints hold the same parameters and training state (timings aside)."""
    (net_a, state_a, options_a), (net_b, state_b, options_b) = a, b
    assert_bitwise_equal(net_a.parameters(), net_b.parameters())
    assert net_a.header() == net_b.header()
    assert (state_a.epoch, state_a.step, state_a.position) == (state_b.epoch, state_b.step, state_b.position)
    assert state_a.rng_state == state_b.rng_state
    assert state_a.order.dtype == state_b.order.dtype and np.array_equal(state_a.order, state_b.order)
    assert records_without_seconds(state_a.history.epochs) == records_without_seconds(state_b.history.epochs)
    assert state_a.history.stopped == state_b.history.stopped
    if same_options:
        assert options_a == options_b


def assert_same_run(run: Path, reference: Path) -> None:
    """The run in ``run`` ended exactly as ``reference``: model, history (timings aside) and checkpoint."""
    assert_bitwise_equal(load_arrays(run / "model.npz"), load_arrays(reference / "model.npz"))
    summary = json.loads((run / "history.json").read_text())
    expected = json.loads((reference / "history.json").read_text())
    assert without_seconds(summary) == without_seconds(expected)
    assert summary["test_accuracy"] == expected["test_accuracy"] and summary["test_loss"] == expected["test_loss"]
    assert csv_without_seconds(run / "history.csv") == csv_without_seconds(reference / "history.csv")
    assert_same_state(load_checkpoint(run / CHECKPOINT_NAME), load_checkpoint(reference / CHECKPOINT_NAME))


def wait_for_checkpoint(proc: subprocess.Popen[str], run: Path, epoch: int = 1, timeout: float = 60) -> None:
    """Poll until run/checkpoint.npz exists and holds at least ``epoch`` epochs."""
    deadline = time.monotonic() + timeout
    path = run / CHECKPOINT_NAME
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended (status {proc.returncode}) before checkpoint {epoch}: {proc.stderr.read()}")
        if path.exists() and load_checkpoint(path)[1].epoch >= epoch:  # atomic: never half a file
            return
        time.sleep(0.002)
    proc.kill()
    pytest.fail(f"no checkpoint {epoch} after {timeout} s")


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    """An uninterrupted real-MNIST run with the REAL options, in cwd/run."""
    cwd = tmp_path_factory.mktemp("reference")
    proc = cli("train", *REAL, "--out", "run", cwd=cwd, data=data_dir)
    assert proc.returncode == 0, proc.stderr
    run = cwd / "run"
    history = json.loads((run / "history.json").read_text())["history"]
    return {"run": run, "epoch_seconds": max(e["seconds"] for e in history)}


# ---- what a checkpoint holds -------------------------------------------------------------------


def test_real_run_checkpoint_holds_the_final_state(reference: dict[str, Any]) -> None:
    run = reference["run"]
    assert {p.name for p in run.iterdir()} >= set(OUTPUTS) and temp_files(run) == set()
    net, state, options = load_checkpoint(run / CHECKPOINT_NAME)
    summary = json.loads((run / "history.json").read_text())
    assert state.epoch == REAL_EPOCHS
    assert state.step == REAL_EPOCHS * REAL_RECORDS  # batch size 1: one update per record
    assert len(state.history.epochs) == REAL_EPOCHS and state.history.stopped is None
    assert [vars(e) for e in state.history.epochs] == summary["history"]  # the very same records, seconds too
    assert options["training"] == summary["options"]
    model = load_arrays(run / "model.npz")
    assert_bitwise_equal({k: v for k, v in model.items() if k != "header"}, net.parameters())
    assert json.loads(str(model["header"])) == net.header()
    assert sorted(state.order.tolist()) == list(range(REAL_RECORDS))
    assert state.position == REAL_RECORDS  # six whole passes over the training records


@pytest.mark.parametrize(("epochs", "batch_size", "epoch_size"),
                         [(3, 1, None), (3, 5, None), (4, 4, 13), (2, 50, None)])
def test_checkpoint_after_a_run_holds_the_final_state(epochs: int, batch_size: int, epoch_size: int | None,
                                                      fake: Path, isolated: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--data-dir", fake, "--epochs", epochs, "--batch-size", batch_size, "--out", "run"]
    if epoch_size:
        argv += ["--epoch-size", epoch_size]
    status, _out, err = run_main(argv, capsys)
    assert status == 0, err
    run = isolated / "run"
    assert {p.name for p in run.iterdir()} >= set(OUTPUTS) and temp_files(run) == set()
    net, state, options = load_checkpoint(run / CHECKPOINT_NAME)
    per_epoch = epoch_size or 36
    assert state.epoch == epochs
    assert state.step == epochs * math.ceil(per_epoch / batch_size)
    assert len(state.history.epochs) == epochs
    assert [e.records for e in state.history.epochs] == [per_epoch * k for k in range(1, epochs + 1)]
    summary = json.loads((run / "history.json").read_text())
    assert [vars(e) for e in state.history.epochs] == summary["history"]
    assert options["training"] == summary["options"]
    data = runs.load_dataset("mnist", fake, download=False)
    assert options["data_fingerprint"] == runs.data_fingerprint(data.train_images, data.train_labels)
    assert sorted(state.order.tolist()) == list(range(36))
    assert state.position == (epochs * per_epoch - 1) % 36 + 1
    model = ConvNet.load(run / "model.npz")
    assert_bitwise_equal(model.parameters(), net.parameters())
    assert model.header() == net.header()


def test_the_checkpoint_after_epoch_k_is_the_state_of_a_run_stopped_after_k(
        fake: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """An on-epoch hook keeps a copy of every checkpoint of a 4-epoch run; each equals the final
    checkpoint of a separate run of k epochs (same seed), and the last one is what stays on disk."""
    kept = isolated / "kept"
    kept.mkdir()
    real_save = runs.save_checkpoint

    def save_and_keep(path: Path, net: ConvNet, state: TrainState, options: dict[str, Any]) -> Path:
        written = real_save(path, net, state, options)
        shutil.copyfile(written, kept / f"epoch-{state.epoch}.npz")
        return written

    monkeypatch.setattr(runs, "save_checkpoint", save_and_keep)
    common = ["--data-dir", fake, "--batch-size", 3, "--epoch-size", 10, "--seed", 7]
    status, _out, err = run_main(["train", *common, "--epochs", 4, "--out", "long"], capsys)
    assert status == 0, err
    assert sorted(p.name for p in kept.iterdir()) == [f"epoch-{k}.npz" for k in range(1, 5)]
    assert (kept / "epoch-4.npz").read_bytes() == (isolated / "long" / CHECKPOINT_NAME).read_bytes()
    monkeypatch.setattr(runs, "save_checkpoint", real_save)
    for k in range(1, 4):
        status, _out, err = run_main(["train", *common, "--epochs", k, "--out", f"short-{k}"], capsys)
        assert status == 0, err
        during = load_checkpoint(kept / f"epoch-{k}.npz")
        stopped = load_checkpoint(isolated / f"short-{k}" / CHECKPOINT_NAME)
        assert during[1].epoch == stopped[1].epoch == k
        assert during[1].step == k * 4  # ceil(10 / 3) updates an epoch
        assert_same_state(during, stopped, same_options=False)
        assert {**during[2]["training"], "epochs": k} == stopped[2]["training"]  # only --epochs differs


@pytest.mark.parametrize("setting", [
    {"batch_size": 3, "epoch_size": 7, "net": {}},
    {"batch_size": 1, "epoch_size": None, "net": {"bias": True, "dtype": "float64", "pool": "max"}},
    {"batch_size": 8, "epoch_size": 50, "net": {"activation": "relu", "filters": 2}},
], ids=["small-epochs", "bias-float64-max", "relu-epochs-over-a-pass"])
def test_fit_resumed_from_every_checkpoint_ends_as_the_uninterrupted_run(setting: dict[str, Any],
                                                                         tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, (30, 12, 12), dtype=np.uint8)
    y = np.arange(30) % 10
    options = {"batch_size": setting["batch_size"], "epoch_size": setting["epoch_size"], "learning_rate": 0.05,
               "validation_size": 5, "seed": 11, "epochs": 5}

    def new_net() -> ConvNet:
        return ConvNet(input_shape=(12, 12), seed=2, **setting["net"])

    net = new_net()
    history = fit(net, X, y, **options,
                  save_state=lambda s: save_checkpoint(tmp_path / f"ck-{s.epoch}.npz", net, s, {"note": "fit"}))
    assert history.stopped is None and len(history.epochs) == 5
    for k in range(1, 5):
        resumed, state, saved = load_checkpoint(tmp_path / f"ck-{k}.npz")
        assert saved == {"note": "fit"} and state.epoch == k
        resumed_history = fit(resumed, X, y, **options, resume=state)
        assert records_without_seconds(resumed_history.epochs) == records_without_seconds(history.epochs)
        assert_bitwise_equal(resumed.parameters(), net.parameters())
    final = load_checkpoint(tmp_path / "ck-5.npz")
    assert_bitwise_equal(final[0].parameters(), net.parameters())


# ---- SIGKILL at a random moment, then --resume ---------------------------------------------------


@pytest.mark.parametrize("moment", ["before-the-first-checkpoint", "in-epoch-2", "later", "killed-twice"])
def test_a_run_killed_at_a_random_moment_and_resumed_ends_as_the_uninterrupted_run(
        moment: str, reference: dict[str, Any], data_dir: Path, tmp_path: Path) -> None:
    chance = random.Random()
    epoch_seconds = reference["epoch_seconds"]
    run = tmp_path / "run"
    leftovers: set[str] = set()

    def kill_at_random(proc: subprocess.Popen[str], after_epoch: int) -> str:
        wait_for_checkpoint(proc, run, after_epoch)
        delay = chance.uniform(0, 0.9 * epoch_seconds)
        time.sleep(delay)
        return kill(proc, f"{delay:.3f} s after checkpoint {after_epoch}")

    def kill(proc: subprocess.Popen[str], when: str) -> str:
        proc.send_signal(signal.SIGKILL)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, (
            f"the run ended by itself (status {proc.returncode}) before the kill {when}: make it longer. {err}")
        assert not (run / "model.npz").exists(), f"killed {when}, yet the run had finished"
        # A kill in the middle of a write may leave that write's temporary file, never a half real file.
        new = temp_files(run) if run.exists() else set()
        assert all(any(name.startswith(f".{output}.") for output in OUTPUTS) for name in new), new
        leftovers.update(new)
        return when

    proc = start("train", *REAL, "--out", "run", cwd=tmp_path, data=data_dir)
    if moment == "before-the-first-checkpoint":
        time.sleep(chance.uniform(0, 0.15))  # still importing numpy or reading MNIST
        when = kill(proc, "at start-up")
        assert not (run / CHECKPOINT_NAME).exists(), "the kill came after the first checkpoint"
        refused = cli("train", "--resume", "run", cwd=tmp_path, data=data_dir)
        one_line_error(refused.returncode, refused.stderr, str(Path("run") / CHECKPOINT_NAME), "no such checkpoint")
        assert not (run / "model.npz").exists()
        fresh = cli("train", *REAL, "--out", "run", cwd=tmp_path, data=data_dir)  # starting afresh works
        assert fresh.returncode == 0, fresh.stderr
    else:
        after = {"in-epoch-2": 1, "later": chance.randint(2, 4), "killed-twice": 1}[moment]
        when = kill_at_random(proc, after)
        net, state, _ = load_checkpoint(run / CHECKPOINT_NAME)  # the last finished epoch, intact
        assert after <= state.epoch < REAL_EPOCHS, when
        assert state.step == state.epoch * REAL_RECORDS
        assert all(np.isfinite(p).all() for p in net.parameters().values())
        if moment == "killed-twice":  # kill the resumed run too, one epoch further on
            proc = start("train", "--resume", "run", cwd=tmp_path, data=data_dir)
            when += "; then " + kill_at_random(proc, state.epoch + 1)
            assert load_checkpoint(run / CHECKPOINT_NAME)[1].epoch > state.epoch
        resumed = cli("train", "--resume", "run", cwd=tmp_path, data=data_dir)
        assert resumed.returncode == 0, f"{when}: {resumed.stderr}"
        assert "Traceback" not in resumed.stderr
    assert_same_run(run, reference["run"])
    assert json.loads((run / "history.json").read_text())["model"] == str(Path("run") / "model.npz")
    assert temp_files(run) <= leftovers, when  # the resumed run left none of its own


# ---- Ctrl-C ------------------------------------------------------------------------------------


def test_ctrl_c_saves_says_how_to_resume_and_resuming_ends_as_the_uninterrupted_run(
        reference: dict[str, Any], data_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = start("train", *REAL, "--out", "run", cwd=tmp_path, data=data_dir)
    wait_for_checkpoint(proc, run, 1)
    time.sleep(random.uniform(0, 0.9 * reference["epoch_seconds"]))
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("scratchcnn: interrupted")
    assert "--resume" in lines[0] and str(Path("run")) in lines[0]
    assert not (run / "model.npz").exists()
    assert temp_files(run) == set()  # an interrupted write cleans up after itself
    _net, state, _ = load_checkpoint(run / CHECKPOINT_NAME)
    assert 1 <= state.epoch < REAL_EPOCHS
    resumed = cli("train", "--resume", "run", cwd=tmp_path, data=data_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run, reference["run"])
    assert temp_files(run) == set()


def test_ctrl_c_before_the_first_epoch_ends_says_nothing_was_saved(data_dir: Path, tmp_path: Path) -> None:
    # One long epoch (≈1 s): the interrupt comes as soon as training has started.
    proc = start("train", "--train-size", 20000, "--epochs", 1, "--out", "run", cwd=tmp_path, data=data_dir,
                 unbuffered=True)
    assert proc.stdout is not None
    first_line = proc.stdout.readline()  # "training ConvNet(...) on mnist ...": data loaded, fit starting
    assert first_line.startswith("training "), first_line
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "nothing saved" in lines[0], err
    assert not (tmp_path / "run").exists(), "the folder this run created, left empty, is removed"


# ---- --resume with more epochs, and flags that contradict the checkpoint -------------------------


def test_resume_with_more_epochs_equals_an_uninterrupted_longer_run(reference: dict[str, Any], data_dir: Path,
                                                                     tmp_path: Path) -> None:
    short = cli("train", *REAL, "--epochs", 3, "--out", "run", cwd=tmp_path, data=data_dir)  # last --epochs wins
    assert short.returncode == 0, short.stderr
    first = json.loads((tmp_path / "run" / "history.json").read_text())
    expected = json.loads((reference["run"] / "history.json").read_text())
    assert without_seconds(first)["history"] == without_seconds(expected)["history"][:3]
    longer = cli("train", "--resume", "run", "--epochs", REAL_EPOCHS, cwd=tmp_path, data=data_dir)
    assert longer.returncode == 0, longer.stderr
    assert_same_run(tmp_path / "run", reference["run"])
    assert temp_files(tmp_path / "run") == set()


FLAGS_AGAINST_THE_CHECKPOINT = [
    (["--lr", "0.01"], "--learning-rate"),
    (["--learning-rate", "0.0004"], "--learning-rate"),
    (["--batch-size", "2"], "--batch-size"),
    (["--filters", "4"], "--filters"),
    (["--seed", "1"], "--seed"),
    (["--dataset", "fashion-mnist"], "--dataset"),
    (["--pool", "max"], "--pool"),
    (["--kernel-size", "5"], "--kernel-size"),
    (["--activation", "relu"], "--activation"),
    (["--bias"], "--bias"),
    (["--dtype", "float64"], "--dtype"),
    (["--epoch-size", "5"], "--epoch-size"),
    (["--train-size", "30"], "--train-size"),
    (["--validation-size", "0.2"], "--validation-size"),
    (["--epochs", "1"], "--epochs"),  # fewer epochs than already trained
]


@pytest.fixture
def fake_run(fake: Path, isolated: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A finished 2-epoch run on the fake data in isolated/run (batch size 4)."""
    status, _out, err = run_main(["train", "--data-dir", fake, "--epochs", 2, "--batch-size", 4, "--out", "run"],
                                 capsys)
    assert status == 0, err
    return isolated / "run"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(("flags", "named"), FLAGS_AGAINST_THE_CHECKPOINT, ids=lambda v: " ".join(v) if
                         isinstance(v, list) else None)
def test_resume_refuses_a_flag_that_contradicts_the_checkpoint(flags: list[str], named: str, fake_run: Path,
                                                               fake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(fake_run)
    status, _out, err = run_main(["train", "--resume", fake_run, "--data-dir", fake, *flags], capsys)
    line = one_line_error(status, err, named, "checkpoint")
    assert line.count("\n") == 0
    assert snapshot(fake_run) == before  # nothing touched


def test_a_contradicting_flag_in_a_real_process(fake_run: Path, fake: Path) -> None:
    proc = cli("train", "--resume", fake_run, "--data-dir", fake, "--lr", 0.01, cwd=fake_run.parent)
    one_line_error(proc.returncode, proc.stderr, "--learning-rate")
    assert proc.stdout == ""


def test_resume_accepts_flags_that_agree_with_the_checkpoint(fake_run: Path, fake: Path, isolated: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    status, _out, err = run_main(["train", "--data-dir", fake, "--epochs", 3, "--batch-size", 4, "--out", "straight"],
                                 capsys)
    assert status == 0, err
    agreeing = ["--batch-size", 4, "--lr", 0.0005, "--seed", 0, "--dataset", "mnist", "--validation-size", 0.1,
                "--filters", 3, "--pool", "decimate", "--dtype", "float32", "--epochs", 3]
    status, _out, err = run_main(["train", "--resume", "run", "--data-dir", fake, *agreeing], capsys)
    assert status == 0, err
    assert_same_run(fake_run, isolated / "straight")


def test_resuming_a_finished_run_again_changes_nothing(fake_run: Path, fake: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    before = {name: load_arrays(fake_run / name) for name in ("model.npz", CHECKPOINT_NAME)}
    summary = json.loads((fake_run / "history.json").read_text())
    status, _out, err = run_main(["train", "--resume", "run", "--data-dir", fake], capsys)
    assert status == 0, err
    for name, arrays in before.items():
        assert_bitwise_equal(load_arrays(fake_run / name), arrays)
    assert without_seconds(json.loads((fake_run / "history.json").read_text())) == without_seconds(summary)
    assert temp_files(fake_run) == set()


def test_resume_refuses_another_out(fake_run: Path, fake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _out, err = run_main(["train", "--resume", fake_run, "--out", "elsewhere", "--data-dir", fake], capsys)
    one_line_error(status, err, "--resume", "--out")
    assert not (fake_run.parent / "elsewhere").exists()


def test_resume_accepts_the_same_out_spelled_another_way(fake_run: Path, fake: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    status, _out, err = run_main(["train", "--resume", "run", "--out", fake_run.resolve(), "--data-dir", fake,
                                  "--epochs", 3], capsys)
    assert status == 0, err
    assert load_checkpoint(fake_run / CHECKPOINT_NAME)[1].epoch == 3


@pytest.mark.parametrize("folder", ["empty", "missing"])
def test_resume_without_a_checkpoint(folder: str, fake: Path, isolated: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    if folder == "empty":
        (isolated / folder).mkdir()
    status, _out, err = run_main(["train", "--resume", folder, "--data-dir", fake], capsys)
    one_line_error(status, err, str(Path(folder) / CHECKPOINT_NAME), "no such checkpoint")
    assert not (isolated / folder / "model.npz").exists()


def test_resume_on_different_training_data_is_refused(fake_run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    other = make_fake_dataset(tmp_path / "other", seed=1)  # same sizes and labels, other pixels
    before = snapshot(fake_run)
    status, _out, err = run_main(["train", "--resume", fake_run, "--data-dir", other, "--epochs", 3], capsys)
    one_line_error(status, err, "differs", "checkpoint")
    assert snapshot(fake_run) == before


def test_resume_on_the_same_data_in_another_folder_is_fine(fake_run: Path, fake: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(fake, copy)
    status, _out, err = run_main(["train", "--resume", fake_run, "--data-dir", copy, "--epochs", 3], capsys)
    assert status == 0, err


# ---- the NaN / infinity guard ------------------------------------------------------------------


def test_a_run_that_diverges_later_keeps_its_last_good_checkpoint_and_model(
        fake: Path, isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Learning rate 0.3, 5 records an epoch on the fake data: epochs 1-4 are fine, epoch 5 overflows."""
    common = ["--data-dir", fake, "--lr", 0.3, "--epoch-size", 5, "--validation-size", 0]
    status, _out, err = run_main(["train", *common, "--epochs", 10, "--out", "run"], capsys)
    assert status == 3, err  # diverged: its own exit status, with the last good epoch kept
    assert "Traceback" not in err
    warnings = err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("scratchcnn: warning: "), err
    assert "epoch 5" in warnings[0] and "learning rate 0.3 is too high" in warnings[0]
    run = isolated / "run"
    summary = json.loads((run / "history.json").read_text())
    assert summary["epochs"] == 4 and "epoch 5" in summary["stopped"]
    net, state, _ = load_checkpoint(run / CHECKPOINT_NAME)
    assert state.epoch == 4 and len(state.history.epochs) == 4
    assert state.step == 4 * 5
    model = ConvNet.load(run / "model.npz")
    assert_bitwise_equal(model.parameters(), net.parameters())
    assert all(np.isfinite(p).all() for p in net.parameters().values())
    assert all(math.isfinite(e.train_loss) for e in state.history.epochs)
    assert temp_files(run) == set()
    # The same as a run that was asked for 4 epochs only.
    status, _out, err = run_main(["train", *common, "--epochs", 4, "--out", "four"], capsys)
    assert status == 0 and err == "", err
    assert_same_state(load_checkpoint(run / CHECKPOINT_NAME), load_checkpoint(isolated / "four" / CHECKPOINT_NAME),
                      same_options=False)
    assert_bitwise_equal(load_arrays(run / "model.npz"), load_arrays(isolated / "four" / "model.npz"))


# ---- atomic writes -----------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["disk-full", "ctrl-c"])
def test_a_checkpoint_write_that_fails_midway_leaves_the_previous_one(
        failure: str, fake: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The second checkpoint's write dies after half a file: checkpoint 1 stays, whole; no temporary file."""
    calls: list[Path] = []

    def failing_second_write(path: Path, write: Any, what: str | None = None) -> Path:
        calls.append(Path(path))
        if len(calls) != 2:
            return write_atomically(path, write, what)

        def half_then_fail(fh: io.BufferedWriter) -> None:
            buffer = io.BytesIO()
            write(buffer)
            fh.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            if failure == "ctrl-c":
                raise KeyboardInterrupt
            raise OSError(errno.ENOSPC, "No space left on device")

        return write_atomically(path, half_then_fail, what)

    monkeypatch.setattr(npzfile, "write_atomically", failing_second_write)
    common = ["--data-dir", fake, "--batch-size", 4, "--epoch-size", 10]
    status, _out, err = run_main(["train", *common, "--epochs", 3, "--out", "run"], capsys)
    run = isolated / "run"
    if failure == "disk-full":
        one_line_error(status, err, f"cannot write {Path('run') / CHECKPOINT_NAME}: No space left on device "
                       "(the previous checkpoint is intact)")
    else:
        assert status == 130 and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1 and "--resume" in err, err
    assert temp_files(run) == set()
    assert {p.name for p in run.iterdir()} == {CHECKPOINT_NAME}
    assert load_checkpoint(run / CHECKPOINT_NAME)[1].epoch == 1
    monkeypatch.setattr(npzfile, "write_atomically", write_atomically)
    status, _out, err = run_main(["train", "--resume", "run", "--data-dir", fake], capsys)
    assert status == 0, err
    status, _out, err = run_main(["train", *common, "--epochs", 3, "--out", "straight"], capsys)
    assert status == 0, err
    assert_same_run(run, isolated / "straight")


def test_written_files_get_the_usual_permissions(fake: Path, isolated: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    old = os.umask(0o022)
    try:
        status, _out, err = run_main(["train", "--data-dir", fake, "--epochs", 1, "--out", "run"], capsys)
        plain = isolated / "plain"
        plain.write_bytes(b"")  # what open() gives under the same umask
    finally:
        os.umask(old)
    assert status == 0, err
    expected = plain.stat().st_mode & 0o777
    assert expected == 0o644
    assert {name: (isolated / "run" / name).stat().st_mode & 0o777 for name in OUTPUTS} == dict.fromkeys(OUTPUTS,
                                                                                                         expected)


# ---- damaged checkpoint files: ModelFileError, and one line with exit status 2 ------------------


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real checkpoint (fake data, with a bias, mid-pass): its bytes, arrays and header."""
    root = tmp_path_factory.mktemp("good")
    fake = make_fake_dataset(root / "fake")
    runs.train_run({"epochs": 2, "batch_size": 4, "epoch_size": 13, "bias": True}, root / "run", data_dir=fake,
                   download=False)
    path = root / "run" / CHECKPOINT_NAME
    arrays = load_arrays(path)
    return {"fake": fake, "bytes": path.read_bytes(), "arrays": arrays, "header": json.loads(str(arrays["header"]))}


def _rng(**change: Any) -> Any:
    def damage(arrays: dict[str, np.ndarray], header: dict[str, Any]) -> None:
        header["rng_state"]["state"].update(change)
    return damage


def _set(key: str, value: Any) -> Any:
    def damage(arrays: dict[str, np.ndarray], header: dict[str, Any]) -> None:
        header[key] = value
    return damage


def _array(name: str, value: Any) -> Any:
    def damage(arrays: dict[str, np.ndarray], header: dict[str, Any]) -> None:
        arrays[name] = value(arrays[name]) if callable(value) else value
    return damage


def _drop(name: str) -> Any:
    def damage(arrays: dict[str, np.ndarray], header: dict[str, Any]) -> None:
        del arrays[name]
    return damage


def _duplicate_first(order: np.ndarray) -> np.ndarray:
    order = order.copy()
    order[0] = order[1]
    return order


def _nan_in(W: np.ndarray) -> np.ndarray:
    W = W.copy()
    W.flat[5] = np.nan
    return W


# Each takes the good checkpoint's arrays and parsed header, and damages them in place.
DAMAGED = {
    "pickled-object-array-W": _array("W", np.array([{"pickled": True}], dtype=object)),
    "pickled-object-array-order": _array("order", lambda o: o.astype(object)),
    "pickled-header": _array("header", lambda h: np.array({"format": "scratchcnn.Checkpoint"}, dtype=object)),
    "unknown-extra-array": _array("extra", np.zeros(3)),
    "missing-parameter-W": _drop("W"),
    "missing-header": _drop("header"),
    "missing-order": _drop("order"),
    "W-wrong-shape": _array("W", lambda W: W[:, :, :-1]),
    "f-wrong-dtype": _array("f", lambda f: f.astype(np.float64)),
    "b-wrong-dtype": _array("b", lambda b: b.astype(np.float16)),
    "b-wrong-shape": _array("b", lambda b: b[:5]),
    "W-holds-nan": _array("W", _nan_in),
    "header-as-bytes": _array("header", lambda h: np.array(str(h).encode())),
    "header-not-json": _array("header", np.array("{'format': 'scratchcnn.Checkpoint',")),
    "header-json-list": _array("header", np.array("[1, 2, 3]")),
    "wrong-format": _set("format", "scratchcnn.ConvNet"),
    "format-version-2": _set("format_version", 2),
    "model-header-wrong-format": lambda a, h: h["model"].update(format="something.else"),
    "model-header-more-filters": lambda a, h: h["model"]["config"].update(filters=4),
    "no-rng-state": lambda a, h: h.pop("rng_state"),
    "rng-state-a-list": _set("rng_state", [1, 2, 3]),
    "rng-state-other-generator": lambda a, h: h["rng_state"].update(bit_generator="MT19937"),
    "rng-state-without-state": lambda a, h: h["rng_state"].pop("state"),
    "rng-state-string": _rng(state="not a number"),
    "rng-state-none-inc": _rng(inc=None),
    "rng-state-negative": _rng(state=-1),
    "rng-state-too-large": _rng(state=2**200),
    "order-with-a-duplicate": _array("order", _duplicate_first),
    "order-shifted-by-one": _array("order", lambda o: o + 1),
    "order-float": _array("order", lambda o: o.astype(np.float64)),
    "order-2d": _array("order", lambda o: o.reshape(6, 6)),
    "position-past-the-end": _set("position", 37),
    "position-negative": _set("position", -1),
    "position-missing": lambda a, h: h.pop("position"),
    "epoch-ahead-of-history": lambda a, h: h.update(epoch=h["epoch"] + 1),
    "epoch-behind-history": lambda a, h: h.update(epoch=h["epoch"] - 1),
    "epoch-not-a-number": _set("epoch", "two"),
    "step-missing": lambda a, h: h.pop("step"),
    "history-not-an-object": _set("history", [1, 2]),
    "history-record-missing-a-field": lambda a, h: h["history"]["epochs"][0].pop("train_loss"),
    "history-record-unknown-field": lambda a, h: h["history"]["epochs"][0].update(bogus=1),
    "history-record-not-an-object": lambda a, h: h["history"]["epochs"].__setitem__(0, [1, 2]),
    "options-not-an-object": _set("options", "fast"),
    # load_checkpoint stores and returns the caller's options as given: resuming checks these, not loading.
    "options-without-training": lambda a, h: h["options"].pop("training"),
    "options-without-fingerprint": lambda a, h: h["options"].pop("data_fingerprint"),
    "training-options-a-list": lambda a, h: h["options"].update(training=[1]),
    "training-options-without-dataset": lambda a, h: h["options"]["training"].pop("dataset"),
    "history-seconds-not-a-number":
        lambda a, h: h["history"]["epochs"][0].update(seconds="abc"),
}
ONLY_RESUME_FAILS = {"options-without-training", "options-without-fingerprint", "training-options-a-list",
                     "training-options-without-dataset"}


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _flip_middle_byte(good: bytes) -> bytes:
    data = bytearray(good)
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


# Each takes the good checkpoint's bytes and returns the bytes of a damaged file.
RAW = {
    "truncated-half": lambda good: good[: len(good) // 2],
    "truncated-by-one-byte": lambda good: good[:-1],
    "truncated-to-the-header": lambda good: good[:30],
    "one-byte-flipped": _flip_middle_byte,
    "garbage": lambda good: np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes(),
    "text": lambda good: b"this is not a checkpoint\n",
    "empty": lambda good: b"",
    "a-single-npy-array": lambda good: _npy(np.arange(10)),
    "zip-member-not-npy": lambda good: _zip({"header.npy": b"\x93NUMPY garbage", "W.npy": b"nonsense"}),
    "zip-member-not-an-array": lambda good: _zip({"notes.txt": b"hello", "header.npy": _npy(np.array("{}"))}),
    "empty-zip": lambda good: _zip({}),
}


def write_damaged(good: dict[str, Any], damage: Any, path: Path) -> None:
    arrays = {name: value.copy() for name, value in good["arrays"].items()}
    header = json.loads(json.dumps(good["header"]))
    original = arrays["header"]
    damage(arrays, header)
    if arrays.get("header") is original:  # the header array was not itself replaced: write the parsed one back
        arrays["header"] = np.array(json.dumps(header))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def test_the_good_checkpoint_loads_and_resumes(good_checkpoint: dict[str, Any], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The control for the damaged files below: rewritten unchanged, it loads and resumes."""
    path = tmp_path / "run" / CHECKPOINT_NAME
    write_damaged(good_checkpoint, lambda a, h: None, path)
    _net, state, _ = load_checkpoint(path)
    assert state.epoch == 2 and 0 < state.position < 36
    status, _out, err = run_main(["train", "--resume", path.parent, "--data-dir", good_checkpoint["fake"]], capsys)
    assert status == 0, err


@pytest.mark.parametrize("damage", [v for k, v in DAMAGED.items() if k not in ONLY_RESUME_FAILS],
                         ids=[k for k in DAMAGED if k not in ONLY_RESUME_FAILS])
def test_load_checkpoint_refuses_a_damaged_file(damage: Any, good_checkpoint: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT_NAME
    write_damaged(good_checkpoint, damage, path)
    with pytest.raises(ModelFileError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message


@pytest.mark.parametrize("damage", list(DAMAGED.values()), ids=list(DAMAGED))
def test_resume_refuses_a_damaged_checkpoint_in_one_line(damage: Any, good_checkpoint: dict[str, Any],
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    write_damaged(good_checkpoint, damage, run / CHECKPOINT_NAME)
    before = snapshot(run)
    status, _out, err = run_main(["train", "--resume", run, "--data-dir", good_checkpoint["fake"]], capsys)
    one_line_error(status, err)
    assert snapshot(run) == before


@pytest.mark.parametrize("make", list(RAW.values()), ids=list(RAW))
def test_a_file_that_is_not_a_checkpoint_is_refused(make: Any, good_checkpoint: dict[str, Any], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    path = run / CHECKPOINT_NAME
    path.write_bytes(make(good_checkpoint["bytes"]))
    with pytest.raises(ModelFileError) as caught:
        load_checkpoint(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)
    status, _out, err = run_main(["train", "--resume", run, "--data-dir", good_checkpoint["fake"]], capsys)
    one_line_error(status, err, str(path))
    assert {p.name for p in run.iterdir()} == {CHECKPOINT_NAME}


def test_a_folder_named_checkpoint_npz_is_refused(good_checkpoint: dict[str, Any], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run" / CHECKPOINT_NAME).mkdir(parents=True)
    with pytest.raises(ModelFileError, match="directory"):
        load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    status, _out, err = run_main(["train", "--resume", tmp_path / "run", "--data-dir", good_checkpoint["fake"]], capsys)
    one_line_error(status, err, "directory")


@pytest.mark.parametrize("case", ["garbage", "pickled-object-array-W", "rng-state-string", "order-with-a-duplicate"])
def test_damaged_checkpoints_in_a_real_process(case: str, good_checkpoint: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "run" / CHECKPOINT_NAME
    if case in RAW:
        path.parent.mkdir()
        path.write_bytes(RAW[case](good_checkpoint["bytes"]))
    else:
        write_damaged(good_checkpoint, DAMAGED[case], path)
    proc = cli("train", "--resume", "run", "--data-dir", good_checkpoint["fake"], cwd=tmp_path)
    one_line_error(proc.returncode, proc.stderr, str(Path("run") / CHECKPOINT_NAME))
    assert proc.stdout == ""
