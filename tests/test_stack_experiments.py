"""The tune and overtrain experiments on deeper networks: --arch, --layers and the optimiser's flags, through
the library and the command line (real MNIST, tiny samples), and bad networks refused in one line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import last_json, run_main
from helpers import one_line_error

from scratchcnn import options
from scratchcnn.data import load_dataset
from scratchcnn.nn.network import from_spec
from scratchcnn.options import ARCH_DEFAULTS, NETWORK, NetworkOptions
from scratchcnn.train import experiments

LENET = from_spec("lenet").spec()  # with every width written out, as the results record it
TINY_TUNE = ["--learning-rates", "0.001,0.01", "--epochs", 1, "--train-size", 120, "--validation-size", 40,
             "--jobs", 1]
TINY_OVERTRAIN = ["--epochs", 2, "--train-records", 20, "--validation-records", 30]


@pytest.fixture(scope="module")
def mnist(data_dir: Path) -> Any:
    return load_dataset("mnist", data_dir, download=False)


def command(capsys: pytest.CaptureFixture[str], name: str, data_dir: Path, out: Path, *flags: Any
            ) -> tuple[int, str, str]:
    return run_main([name, "--data-dir", data_dir, "--out", out, *flags], capsys)


# ---- the commands with --arch lenet --------------------------------------------------------------


def test_tune_lenet_writes_its_outputs_and_trains_with_lenets_optimiser(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = command(capsys, "tune", data_dir, tmp_path / "t", "--arch", "lenet", *TINY_TUNE, "--json")
    assert status == 0, err
    assert {p.name for p in (tmp_path / "t").iterdir()} == {"tuning.json", "tuning.csv", "tuning.png"}
    saved = json.loads((tmp_path / "t" / "tuning.json").read_text())
    assert saved["network"] == LENET
    lenet = ARCH_DEFAULTS["lenet"]
    assert (saved["optimiser"], saved["batch_size"], saved["schedule"]) == (
        lenet["optimiser"], lenet["batch_size"], lenet["schedule"])
    assert saved["learning_rates"] == [0.001, 0.01] and [len(c) for c in saved["curves"]] == [1, 1]
    assert all(0 <= a <= 1 for a in saved["validation_accuracy"])
    assert last_json(out)["best_learning_rate"] == saved["best_learning_rate"] in (0.001, 0.01)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "t" / "tuning.csv").read_text())))
    assert [float(row["learning_rate"]) for row in rows] == [0.001, 0.01]


def test_overtrain_lenet_writes_its_outputs_with_lenets_defaults(
        data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = command(capsys, "overtrain", data_dir, tmp_path / "o", "--arch", "lenet", *TINY_OVERTRAIN)
    assert status == 0, err
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"overtraining.json", "overtraining.png"}
    assert "20 records" in out
    saved = json.loads((tmp_path / "o" / "overtraining.json").read_text())
    lenet = ARCH_DEFAULTS["lenet"]
    assert saved["network"] == LENET
    assert (saved["learning_rate"], saved["optimiser"], saved["batch_size"], saved["schedule"]) == (
        lenet["learning_rate"], lenet["optimiser"], lenet["batch_size"], lenet["schedule"])
    assert len(saved["train_accuracy"]) == len(saved["validation_accuracy"]) == 2
    assert saved["stopped"] is None


def test_the_optimiser_flags_reach_the_experiments(data_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--optimiser", "nesterov", "--momentum", 0.5, "--weight-decay", 0.001, "--schedule", "step",
             "--batch-size", 4]
    status, _, err = command(capsys, "tune", data_dir, tmp_path / "t", *TINY_TUNE, *flags)
    assert status == 0, err
    status, _, err = command(capsys, "overtrain", data_dir, tmp_path / "o", *TINY_OVERTRAIN, *flags,
                             "--learning-rate", 0.02, "--layers", "conv:2x3:same,relu,pool:max,flatten,dense")
    assert status == 0, err
    for name in ("t/tuning.json", "o/overtraining.json"):
        saved = json.loads((tmp_path / name).read_text())
        assert (saved["optimiser"], saved["momentum"], saved["weight_decay"], saved["schedule"], saved["batch_size"]
                ) == ("nesterov", 0.5, 0.001, "step", 4), name
    overtrained = json.loads((tmp_path / "o" / "overtraining.json").read_text())
    assert overtrained["network"] == "conv:2x3:same,relu,pool:max,flatten,dense:10"
    assert overtrained["learning_rate"] == 0.02


# ---- bad networks: exit 2 and one line ---------------------------------------------------------


@pytest.mark.parametrize("name", ["tune", "overtrain"])
@pytest.mark.parametrize(("flags", "fragments"), [
    (["--layers", "conv:0x3"], ["layer 1 of 1", "'conv:0x3'"]),
    (["--layers", "conv:2x3,maxpool,flatten,dense"], ["layer 2 of 4", "'maxpool'"]),
    (["--layers", "conv:2x29:valid,flatten,dense"], ["layer 1 of 3", "'conv:2x29:valid'", "does not fit"]),
    (["--layers", "flatten,dense:5"], ["'dense:5'", "10 outputs"]),
    (["--arch", "lenet", "--filters", "8"], ["--filters", "--arch lenet"]),
    (["--arch", "lenet", "--layers", "flatten,dense"], ["--arch or --layers"]),
], ids=lambda value: " ".join(value) if isinstance(value, list) and "--" in value[0] else None)
def test_a_bad_network_is_one_line_and_writes_nothing(name: str, flags: list[str], fragments: list[str],
                                                      data_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = command(capsys, name, data_dir, tmp_path / "out", *flags)
    one_line_error(status, err, *fragments)
    assert out == ""
    assert not (tmp_path / "out").exists()


# ---- the library -------------------------------------------------------------------------------


def test_overtrain_on_a_spec_of_the_write_ups_shape_is_the_default_run(mnist: Any) -> None:
    sizes = {"train_records": 20, "validation_records": 30, "epochs": 3}
    default = experiments.overtrain(mnist.train_images, mnist.train_labels, **sizes)
    spec = experiments.overtrain(mnist.train_images, mnist.train_labels, **sizes,
                                 network=NetworkOptions(layers="conv:3x3-b,pool:decimate,flatten,dense-b"))
    assert spec == default
    assert default["network"] == "conv:3x3-b,pool:decimate,flatten,dense-b"


def test_tune_builds_the_network_it_is_given(mnist: Any) -> None:
    small = {"epochs": 1, "train_size": 60, "validation_size": 20, "jobs": 1, "learning_rates": [0.01]}
    spec = "conv:2x3:same,relu,pool:avg,flatten,dense:8,relu,dense"
    result = experiments.tune(mnist.train_images, mnist.train_labels, network=NetworkOptions(layers=spec),
                              batch_size=5, optimiser="adam", **small)
    assert result["network"] == "conv:2x3:same,relu,pool:avg,flatten,dense:8,relu,dense:10"
    assert result["optimiser"] == "adam" and result["batch_size"] == 5
    assert result["validation_accuracy"][0] is not None and len(result["curves"][0]) == 1


@pytest.mark.parametrize(("network", "rate"), [
    (NETWORK, experiments.OVERTRAIN_LEARNING_RATE),
    (NetworkOptions(arch="wide"), ARCH_DEFAULTS["wide"]["learning_rate"]),
    (NetworkOptions(arch="lenet"), ARCH_DEFAULTS["lenet"]["learning_rate"]),
    (NetworkOptions(layers="conv:2x3,flatten,dense"), experiments.OVERTRAIN_LEARNING_RATE),
])
def test_overtrain_learning_rate_per_network(network: NetworkOptions, rate: float) -> None:
    assert options.overtrain_learning_rate(network) == rate


def test_lenet_learns_something_when_overtrained(mnist: Any) -> None:
    result = experiments.overtrain(mnist.train_images, mnist.train_labels, train_records=64, validation_records=64,
                                   epochs=6, network=NetworkOptions(arch="lenet"), batch_size=16, optimiser="adam",
                                   learning_rate=0.003)
    assert result["train_loss"][-1] < result["train_loss"][0]
    assert max(result["train_accuracy"]) > 0.6  # measured: 0.84 after 6 epochs (loss 2.08 → 0.53)
    assert np.isfinite(result["validation_loss"]).all()
