"""One source of every default: scratchcnn.options. Everything else reads its defaults from there."""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

from scratchcnn import ConvNet, options
from scratchcnn.cli import build_parser
from scratchcnn.errors import ConfigError
from scratchcnn.options import NETWORK, TRAINING, NetworkOptions, RunOptions, TrainOptions
from scratchcnn.sklearn import ConvNetClassifier
from scratchcnn.train import fit

SRC = Path(__file__).resolve().parents[1] / "src" / "scratchcnn"
OPTION_NAMES = {f.name for f in fields(RunOptions)}


def defaults_of(function: object) -> dict[str, object]:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_convnet_defaults_are_the_network_options() -> None:
    defaults = defaults_of(ConvNet.__init__)
    for f in fields(NetworkOptions):
        if f.name not in ("arch", "layers"):  # a ConvNet is the seed family; the preset and spec choose it
            assert defaults[f.name] == getattr(NETWORK, f.name), f.name
    assert defaults["seed"] == TRAINING.seed


def test_fit_defaults_are_the_training_options() -> None:
    defaults = defaults_of(fit)
    for f in fields(TrainOptions):
        assert defaults[f.name] == getattr(TRAINING, f.name), f.name


def test_estimator_shares_the_network_defaults_and_takes_keywords_only() -> None:
    parameters = inspect.signature(ConvNetClassifier.__init__).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for name, p in parameters.items() if name != "self")
    defaults = defaults_of(ConvNetClassifier.__init__)
    for name in ("filters", "kernel_size", "pool", "activation", "batch_size"):
        assert defaults[name] == getattr(RunOptions(), name), name
    with pytest.raises(TypeError):
        ConvNetClassifier(3)  # type: ignore[misc]


def test_train_help_shows_every_option_with_its_real_default() -> None:
    train = build_parser()._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    help_text = " ".join(train.format_help().split())
    for name in OPTION_NAMES:
        flag = "--" + name.replace("_", "-")
        assert flag in help_text, flag
        default = getattr(RunOptions(), name)
        if default is not None:
            shown = "off" if default is False else str(default)
            assert f"(default: {shown}" in help_text or f"(default: {options.default_text(name)})" in help_text, name
    # the per-preset and per-dataset defaults, from ARCH_DEFAULTS and DATASET_DEFAULTS
    assert (f"(default: 0.0005; {options.ARCH_DEFAULTS['wide']['learning_rate']} for --arch wide; "
            f"{options.ARCH_DEFAULTS['lenet']['learning_rate']} for --arch lenet; "
            f"{options.ARCH_DEFAULTS['softmax']['learning_rate']} for --arch softmax; 0.005 for digits)") in help_text


def test_per_dataset_defaults() -> None:
    assert options.run_defaults("digits").learning_rate == options.DATASET_DEFAULTS["digits"]["learning_rate"]
    assert options.run_defaults("mnist") == RunOptions()
    assert options.resolve({"dataset": "digits"}).learning_rate == options.DATASET_DEFAULTS["digits"]["learning_rate"]
    assert options.resolve({"dataset": "digits", "learning_rate": 0.1}).learning_rate == 0.1


def test_resume_refuses_every_contradicting_option_but_lets_epochs_grow() -> None:
    saved = RunOptions(epochs=5)
    assert options.resolve({"epochs": 9}, saved).epochs == 9
    assert options.resolve({"seed": 0}, saved) == saved  # agreeing is fine
    other = {"filters": 4, "kernel_size": 5, "pool": "max", "activation": "relu", "bias": True, "dtype": "float64",
             "learning_rate": 0.1, "epochs": 4, "batch_size": 2, "epoch_size": 7, "train_size": 9,
             "validation_size": 0.2, "seed": 3, "engine": "numpy", "dataset": "fashion-mnist", "arch": "wide",
             "layers": "flatten,dense", "optimiser": "adam", "momentum": 0.5, "weight_decay": 0.1,
             "schedule": "cosine"}
    assert set(other) == OPTION_NAMES, "a new option needs a case here"
    for name, value in other.items():
        with pytest.raises(ConfigError, match="--" + name.replace("_", "-")):
            options.resolve({name: value}, saved)


@pytest.mark.parametrize(("given", "fragment"), [
    ({"learning_rate": 0}, "learning_rate"), ({"learning_rate": float("nan")}, "learning_rate"),
    ({"epochs": 0}, "epochs"), ({"batch_size": 1.5}, "batch_size"), ({"seed": -1}, "seed"),
    ({"validation_size": 1.5}, "validation_size"), ({"validation_size": -2}, "validation_size"),
    ({"pool": "median"}, "pool"), ({"engine": "gpu"}, "engine"), ({"dataset": "cifar"}, "dataset"),
    ({"bias": "yes"}, "bias"), ({"train_size": 0}, "train_size"), ({"colour": 1}, "unknown options: colour"),
])
def test_bad_options_are_refused_with_their_name(given: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        options.resolve(given)


def test_options_are_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        RunOptions().epochs = 3  # type: ignore[misc]


# ---- no default is typed anywhere but in options.py ------------------------------------------------

DEFAULT_WORDS = {str(getattr(RunOptions(), name)) for name in OPTION_NAMES} | {"off"}


def source_files() -> list[Path]:
    return [path for path in SRC.rglob("*.py") if path.name != "options.py"]


def typed_parameter_defaults(source: str) -> list[str]:
    """Parameters named like an option whose default is a literal other than None."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = [*zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True),
                     *((a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None)]
            found += [f"{node.lineno} {node.name}({a.arg}={ast.unparse(d)})" for a, d in pairs
                      if a.arg in OPTION_NAMES and isinstance(d, ast.Constant) and d.value is not None]
    return found


def typed_help_defaults(source: str) -> list[str]:
    """Literal text "(default: X)" where X is a number or an option's default value."""
    pattern = re.compile(r"default: ([\w.]+)")
    return [match.group(0) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            for match in pattern.finditer(node.value)
            if match.group(1) in DEFAULT_WORDS or match.group(1)[0].isdigit()]


def test_no_option_default_is_typed_outside_options_py() -> None:
    """A parameter named like an option may default only to None or to a name (e.g. NETWORK.filters)."""
    assert [f"{path.name}: {found}" for path in source_files()
            for found in typed_parameter_defaults(path.read_text(encoding="utf-8"))] == []


def test_no_default_is_written_by_hand_in_help_text() -> None:
    """Help says "(default: …)" only through f-strings, %(default)s or for defaults no option has (e.g. "all")."""
    assert [f"{path.name}: {found}" for path in source_files()
            for found in typed_help_defaults(path.read_text(encoding="utf-8"))] == []


def test_the_scans_catch_a_typed_default() -> None:
    """The two scans above find what they look for, so that their passing means something."""
    source = ('def f(x, learning_rate=0.0005, *, filters=NETWORK.filters, seed=None, pool="max"):\n'
              '    return ("(default: 3)", "(default: decimate)", f"(default: {x})", "(default: all)")\n')
    assert typed_parameter_defaults(source) == ["1 f(learning_rate=0.0005)", "1 f(pool='max')"]
    assert typed_help_defaults(source) == ["default: 3", "default: decimate"]
