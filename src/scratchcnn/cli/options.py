"""What the commands share: argument types that refuse bad values, the data options, exit codes."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scratchcnn.data import DATASETS

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def natural_int(text: str) -> int:
    return whole_number(text, 0)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def validation_size(text: str) -> float | int:
    """A fraction in [0, 1) like 0.1, or a whole number of records like 1000."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.1 or a count like 1000, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1) or a count of records, got {text}")
    if value < 1:
        return value  # a fraction of the training records
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"a count of records must be a whole number, got {text}")
    return int(value)


def add_data_options(parser: argparse.ArgumentParser, dataset_default: str) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", choices=DATASETS, help=f"which dataset (default: {dataset_default})")
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
