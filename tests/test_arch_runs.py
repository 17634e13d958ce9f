"""Deeper networks through the command line and the run folder: --arch and --layers, the optimiser
flags, model files of either kind, checkpoints with the optimiser's state, and bad specs refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run_main
from helpers import one_line_error

from scratchcnn import ConvNet
from scratchcnn.errors import ConfigError, ModelFileError
from scratchcnn.nn.network import as_stack, build_network, from_spec, load_model, network_spec
from scratchcnn.nn.stack import Stack
from scratchcnn.options import ARCH_DEFAULTS, NetworkOptions, resolve
from scratchcnn.train import fit
from scratchcnn.train.checkpoint import load_checkpoint, save_checkpoint

SMALL = ["--epochs", 2, "--validation-size", 4]


def train(capsys: pytest.CaptureFixture[str], data: Path, out: Path, *flags: Any) -> tuple[int, dict[str, Any], str]:
    status, stdout, err = run_main(["train", "--data-dir", data, "--out", out, "--json", *flags], capsys)
    return status, (json.loads(stdout.strip().splitlines()[-1]) if status == 0 else {}), err


def arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files if name != "header"}


def test_lenet_trains_into_a_run_folder_and_its_model_file_loads(fake: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    status, summary, err = train(capsys, fake, tmp_path / "run", "--arch", "lenet", *SMALL)
    assert status == 0, err
    assert summary["options"]["arch"] == "lenet"
    assert summary["options"]["optimiser"] == ARCH_DEFAULTS["lenet"]["optimiser"]
    net = load_model(tmp_path / "run" / "model.npz")
    assert isinstance(net, Stack) and net.spec() == from_spec("lenet").spec()
    assert net.dataset == "mnist"
    status, out, err = run_main(["evaluate", tmp_path / "run" / "model.npz", "--data-dir", fake, "--json"], capsys)
    assert status == 0, err
    assert json.loads(out)["test_accuracy"] == pytest.approx(summary["test_accuracy"])


def test_a_layers_spec_of_the_write_ups_shape_is_the_default_network_bit_for_bit(
        fake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train(capsys, fake, tmp_path / "default", *SMALL)[0] == 0
    status, _, err = train(capsys, fake, tmp_path / "spec", "--layers", "conv:3x3-b,pool:decimate,flatten,dense-b",
                           *SMALL)
    assert status == 0, err
    default, spec = arrays(tmp_path / "default" / "model.npz"), arrays(tmp_path / "spec" / "model.npz")
    assert set(default) == set(spec) == {"f", "W"}
    for name in default:
        assert default[name].tobytes() == spec[name].tobytes()


def test_wide_is_the_seed_family_with_its_own_defaults() -> None:
    options = resolve({"arch": "wide"})
    net = build_network(options.network, seed=0)
    assert isinstance(net, ConvNet)
    assert (net.filters, net.kernel_size, net.pool, net.activation, net.bias) == (32, 5, "max", "relu", True)
    assert options.learning_rate == ARCH_DEFAULTS["wide"]["learning_rate"]
    assert network_spec(net) == "conv:32x5-b,relu,pool:max,flatten,dense"
    assert resolve({"arch": "wide", "filters": 8}).filters == 8  # the seed family's flags still apply


@pytest.mark.parametrize("flags, fragments", [
    (["--layers", "conv:0x3,flatten,dense"], ["--layers", "layer 1 of 3", "conv:0x3"]),
    (["--layers", "flatten,dense:5,conv:3x3,dense"], ["layer 3 of 4", "conv:3x3", "flat vector"]),
    (["--layers", "conv:3x3"], ["last layer must be dense", "conv:3x3"]),
    (["--layers", "conv:2x3,dense"], ["layer 2 of 2", "dense", "flatten"]),
    (["--layers", "conv:2x3,pool:max,pool:max,pool:max,pool:max,pool:max,flatten,dense"],
     ["layer 6 of 8", "pool:max", "1×1"]),
    (["--layers", "conv:2x3,maxpool,flatten,dense"], ["layer 2 of 4", "unknown layer", "maxpool"]),
    (["--layers", "conv:2x29:valid,flatten,dense"], ["layer 1 of 3", "does not fit"]),
    (["--layers", "flatten,dense:5"], ["10 outputs"]),
    (["--arch", "lenet", "--filters", "8"], ["--filters", "--arch lenet"]),
    (["--arch", "lenet", "--layers", "flatten,dense"], ["--arch or --layers"]),
    (["--arch", "deep"], ["--arch", "deep"]),
    (["--optimiser", "adagrad"], ["adagrad"]),
    (["--momentum", "1.5"], ["--momentum", "[0, 1)"]),
    (["--weight-decay", "-1"], ["--weight-decay"]),
])
def test_a_bad_network_is_refused_with_one_line_naming_what(flags: list[str], fragments: list[str], fake: Path,
                                                            tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = train(capsys, fake, tmp_path / "run", *flags, *SMALL)
    assert status == 2
    if "usage:" in err:  # argparse's own refusal: usage line, then the error line
        lines = err.strip().splitlines()
        assert "Traceback" not in err and all(f in lines[-1] for f in fragments), err
    else:
        one_line_error(status, err, *fragments)
    assert not (tmp_path / "run" / "model.npz").exists()


@pytest.mark.parametrize("optimiser", ["momentum", "nesterov", "adam"])
@pytest.mark.parametrize("arch", ["seed", "lenet"])
def test_fit_resumed_with_the_optimisers_state_ends_as_the_uninterrupted_run(optimiser: str, arch: str,
                                                                             tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    X = rng.integers(0, 256, (26, 28, 28), dtype=np.uint8)
    y = np.arange(26) % 10
    options = {"optimiser": optimiser, "learning_rate": 0.01, "batch_size": 4, "epochs": 3, "validation_size": 6,
               "weight_decay": 1e-3, "schedule": "cosine", "seed": 3, "engine": "numpy"}
    net = from_spec(arch, seed=1, dtype="float64")
    fit(net, X, y, **options,
        save_state=lambda s: save_checkpoint(tmp_path / f"ck-{s.epoch}.npz", net, s, {}))
    resumed, state, _ = load_checkpoint(tmp_path / "ck-1.npz")
    assert state.optimiser is not None and state.optimiser["buffers"]  # the moments travel with the checkpoint
    fit(resumed, X, y, **options, resume=state)
    for name, value in net.parameters().items():
        assert resumed.parameters()[name].tobytes() == value.tobytes(), name


def test_resuming_with_the_optimisers_state_lost_would_differ(tmp_path: Path) -> None:
    """The check above could fail: without the buffers, Adam restarts its averages and the run differs."""
    rng = np.random.default_rng(5)
    X, y = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), np.arange(20) % 10
    options = {"optimiser": "adam", "learning_rate": 0.01, "batch_size": 4, "epochs": 2, "validation_size": 4}
    net = from_spec("seed", seed=1)
    fit(net, X, y, **options, save_state=lambda s: save_checkpoint(tmp_path / f"ck-{s.epoch}.npz", net, s, {}))
    resumed, state, _ = load_checkpoint(tmp_path / "ck-1.npz")
    state.optimiser = None
    fit(resumed, X, y, **options, resume=state)
    assert resumed.W.tobytes() != net.W.tobytes()


def test_a_lenet_run_killed_after_an_epoch_resumes_to_the_same_model(fake: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--arch", "lenet", "--validation-size", 4, "--epochs", 3]
    assert train(capsys, fake, tmp_path / "whole", *flags)[0] == 0
    assert train(capsys, fake, tmp_path / "part", *flags[:-1], 1)[0] == 0
    status, _, err = run_main(["train", "--resume", tmp_path / "part", "--epochs", 3, "--data-dir", fake], capsys)
    assert status == 0, err
    whole, part = arrays(tmp_path / "whole" / "model.npz"), arrays(tmp_path / "part" / "model.npz")
    assert {name: a.tobytes() for name, a in whole.items()} == {name: a.tobytes() for name, a in part.items()}


def test_a_stack_model_file_round_trips_and_damage_is_refused_in_one_line(tmp_path: Path) -> None:
    net = from_spec("conv:4x3:same,relu,pool:avg,conv:3x3:valid-b,pool:max,flatten,dense:7,relu,dense", seed=2)
    net.dataset = "fashion-mnist"
    path = net.save(tmp_path / "m.npz")
    again = load_model(path)
    assert again.spec() == net.spec() and again.dataset == "fashion-mnist"
    X = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    assert np.array_equal(again.predict_proba(X), net.predict_proba(X))
    header = net.header()
    for change, fragment in [({"format_version": 9}, "version 9"), ({"format": "other"}, "not a scratchcnn model"),
                             ({"config": dict(header["config"], layers=[{"type": "conv3d"}])}, "conv3d")]:
        bad = tmp_path / "bad.npz"
        np.savez(bad, header=np.array(json.dumps(header | change)),
                 **{name: value for name, value in net.parameters().items()})
        with pytest.raises(ModelFileError, match=fragment) as caught:
            load_model(bad)
        assert "\n" not in str(caught.value)


def test_old_seed_model_files_still_load_as_convnets(tmp_path: Path) -> None:
    net = ConvNet(seed=4)
    loaded = load_model(net.save(tmp_path / "old.npz"))
    assert isinstance(loaded, ConvNet) and loaded.W.tobytes() == net.W.tobytes()
    blank = np.zeros((1, 28, 28))
    assert np.array_equal(as_stack(loaded).predict_proba(blank), net.predict_proba(blank))


def test_network_options_refuse_an_empty_spec() -> None:
    with pytest.raises(ConfigError, match="layers"):
        NetworkOptions(layers=" ")


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_a_diverging_stack_stops_and_keeps_its_last_good_parameters(engine: str) -> None:
    rng = np.random.default_rng(1)
    X, y = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8), np.arange(40) % 10
    net = from_spec("lenet", seed=0)
    before = {name: value.copy() for name, value in net.parameters().items()}
    history = fit(net, X, y, optimiser="sgd", learning_rate=1e30, batch_size=4, epochs=3, validation_size=0,
                  engine=engine)
    assert history.stopped is not None and "epoch 1" in history.stopped and not history.epochs
    for name, value in net.parameters().items():
        assert value.tobytes() == before[name].tobytes(), name
