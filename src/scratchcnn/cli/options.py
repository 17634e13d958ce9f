"""What the commands share: argument types that refuse bad values, flags derived from the options
dataclasses (scratchcnn.options), the data options, exit codes."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import Field, fields
from pathlib import Path
from typing import Any

from scratchcnn import options
from scratchcnn.errors import ConfigError
from scratchcnn.options import DATASETS, RunOptions

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3  # training diverged: the run kept its last good epoch, or saved nothing
EXIT_INTERRUPTED = 130


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type for whole numbers ≥ minimum (the check is the options' own)."""
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        try:
            return options.whole_number("value", value, minimum)
        except ConfigError:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}") from None
    return convert


positive_int, natural_int = whole_number(1), whole_number(0)


def _finite(text: str, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
    return value


def positive_float(text: str) -> float:
    value = _finite(text, "a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def validation_size(text: str) -> float | int:
    """A fraction in [0, 1) like 0.1, or a whole number of records like 1000."""
    value = _finite(text, "a fraction like 0.1 or a count like 1000")
    if value >= 1 and not value.is_integer():
        raise argparse.ArgumentTypeError(f"a count of records must be a whole number, got {text}")
    try:
        return options.validation_size(int(value) if value >= 1 else value)
    except ConfigError:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1) or a count of records, got {text}") from None


def fraction(text: str) -> float:
    try:
        return options.fraction("value", _finite(text, "a number in [0, 1)"))
    except ConfigError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text}") from None


def nonnegative(text: str) -> float:
    try:
        return options.nonnegative("value", _finite(text, "a number ≥ 0"))
    except ConfigError:
        raise argparse.ArgumentTypeError(f"must be a number ≥ 0, got {text}") from None


def check_layers(given: dict[str, Any]) -> None:
    """Refuse a --layers spec that does not parse, in one line naming the layer, before any data is loaded."""
    if given.get("layers") is not None:
        from scratchcnn.nn.spec import parse  # the layer grammar's one home

        try:
            parse(given["layers"])
        except ConfigError as error:
            raise ConfigError(f"--layers: {error}") from None


PARSERS = {"count": positive_int, "natural": natural_int, "rate": positive_float, "size": validation_size,
           "fraction": fraction, "nonnegative": nonnegative, "text": str}


def option_field(name: str) -> Field:
    return next(f for f in fields(RunOptions) if f.name == name)


def add_option_flags(group: argparse._ActionsContainer, names: Iterable[str], *, with_defaults: bool = False,
                     aliases: dict[str, tuple[str, ...]] | None = None) -> None:
    """One flag per option, --name-with-dashes, its help and default read from scratchcnn.options.

    with_defaults False: the flag's value is None unless given (train resolves defaults per dataset and
    checks a resumed run's flags against its checkpoint). True: argparse fills in the default.
    """
    for name in names:
        f = option_field(name)
        meta = f.metadata
        shown = f"(default: {options.default_text(name)})" if "(default:" not in meta["help"] else ""
        kwargs: dict[str, Any] = {"help": f"{meta['help']} {shown}".strip(), "dest": name}
        if meta["kind"] == "flag":
            kwargs.update(action="store_true", default=f.default if with_defaults else None)
        else:
            kwargs.update(metavar=meta["metavar"], default=f.default if with_defaults else None)
            if meta["kind"] == "choice":
                kwargs["choices"] = options.CHOICES[name]
            else:
                kwargs["type"] = PARSERS[meta["kind"]]
        group.add_argument("--" + name.replace("_", "-"), *(aliases or {}).get(name, ()), **kwargs)


def add_data_options(parser: argparse.ArgumentParser, dataset_default: str | None = None, *,
                     dataset: bool = True) -> None:
    """--dataset, --data-dir, --no-download. dataset_default: what the help says when --dataset is left out;
    ``dataset`` False: no --dataset (the command's input names its datasets, e.g. a sweep's spec)."""
    group = parser.add_argument_group("data")
    if dataset:
        group.add_argument("--dataset", choices=DATASETS,
                           help=f"which dataset (default: {dataset_default or options.default_text('dataset')})")
    group.add_argument("--data-dir", metavar="DIR", type=Path,
                       help="folder holding DIR/<dataset>/ with the four IDX files (also: $SCRATCHCNN_DATA)")
    group.add_argument("--no-download", dest="download", action="store_false",
                       help="never download: fail if the dataset is not on disk")


def add_json_option(parser: argparse._ActionsContainer) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only for a person at a terminal, never in --json mode."""
    return not getattr(args, "json", False) and sys.stderr.isatty()


def default_run_dir() -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = Path("runs") / stamp, 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{stamp}-{n}"
    return path
