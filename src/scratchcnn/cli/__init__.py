"""The command line: ``scratchcnn COMMAND``. Each command lives in a module of this package.

Bad input of any kind ends with one line on stderr and exit status 2; ``--json`` makes the last
line of stdout a single JSON object for scripts.

Building the parser imports no NumPy, Numba or matplotlib: a command module imports those in its run
functions, so that ``--help`` answers at once and a command loads only what it uses (benchmarks/startup.py;
tests/test_startup.py holds ``--help`` to that).
"""

from __future__ import annotations

import argparse
import difflib
import gc
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from scratchcnn import __version__
from scratchcnn.cli import datasets, experiments, explore, gradcheck, lab, pictures, predict, sweep, training
from scratchcnn.cli.options import EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED
from scratchcnn.errors import DivergedError, ScratchCNNError
from scratchcnn.options import NETWORK

DESCRIPTION = f"""\
A small convolutional network for handwritten digits, written from scratch in NumPy:
{NETWORK.filters} filters of {NETWORK.kernel_size}x{NETWORK.kernel_size} -> {NETWORK.pool} pooling -> a dense layer \
(one output per class)
-> softmax, trained by SGD with gradients derived by hand.

examples:
  scratchcnn train --out runs/first          # train the write-up's network on MNIST
  scratchcnn train --epochs 20 --batch-size 32 --lr 0.02
  scratchcnn evaluate runs/first/model.npz   # accuracy and confusion matrix
  scratchcnn download --dataset all          # fetch and verify MNIST and Fashion-MNIST

Data: DIR/<dataset>/ holding the four IDX files (train-images-idx3-ubyte.gz, ...),
found in --data-dir DIR when given (DIR may also be the dataset's own folder), else in
$SCRATCHCNN_DATA, ~/.cache/scratchcnn or /usr/share/datasets; downloaded when missing.

exit status: 0 done, 2 bad input (one line on stderr says what), 3 training diverged
(the loss became NaN or infinite: the last good epoch was kept, or nothing was saved), 130 interrupted.
"""


class Parser(argparse.ArgumentParser):
    """argparse that suggests: a mistyped command or option gets "did you mean ...?" under argparse's own usage.

    The top parser and, through ``parser_class``, every command's parser are Parsers; only the top one has
    ``commands`` (its subparsers action) and parses.
    """

    commands: Any = None  # argparse._SubParsersAction, whose class argparse does not make public
    argv: tuple[str, ...] = ()  # what parse_args was given: error() looks in it for the command typed

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        self.argv = tuple(sys.argv[1:] if args is None else args)
        parsed, extras = self.parse_known_args(self.argv, namespace)
        if extras:  # argparse would blame the top parser; the command's own parser knows its options
            command = self.commands.choices.get(getattr(parsed, "command", None)) if self.commands else None
            (command or self).unrecognized(extras)
        return parsed

    def unrecognized(self, extras: list[str]) -> NoReturn:
        """argparse's "unrecognized arguments" error, with the closest of this parser's options to each."""
        options = [option for action in self._actions for option in action.option_strings]
        close = [match for extra in extras if extra.startswith("-")
                 for match in difflib.get_close_matches(extra.split("=", 1)[0], options, n=1)]
        hint = f" (did you mean {', '.join(dict.fromkeys(close))}?)" if close else ""
        self.error(f"unrecognized arguments: {' '.join(extras)}{hint}")

    def error(self, message: str) -> NoReturn:
        typed = next((arg for arg in self.argv if not arg.startswith("-")), None)
        if self.commands is not None and typed is not None and typed not in self.commands.choices:
            close = difflib.get_close_matches(typed, list(self.commands.choices), n=1)
            if close:
                message = (f"unknown command {typed!r}: did you mean {close[0]!r}? "
                           f"(commands: {', '.join(self.commands.choices)})")
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="scratchcnn", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"scratchcnn {__version__}")
    parser.commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command", required=True,
                                            parser_class=Parser)
    for module in (training, experiments, sweep, pictures, explore, lab, predict, datasets, gradcheck):
        module.add_commands(parser.commands)
    return parser


def explain(error: ScratchCNNError, args: argparse.Namespace) -> str:
    """The error's line; a command's own MODEL argument that is some other file also says what the command takes."""
    from scratchcnn.nn.npzfile import WrongFileError

    if not isinstance(error, WrongFileError) or error.suggestion is not None or error.what != "model":
        return str(error)
    model = getattr(args, "model", None)
    if not isinstance(model, Path) or model != error.path:  # e.g. the model.npz inside report's RUN_DIR
        return str(error)
    if args.command == "predict" and error.is_image:  # the arguments swapped: predict IMAGE MODEL
        return f"{error.head} (MODEL comes first: scratchcnn predict MODEL IMAGE...)"
    return f"{error.head}: {args.command} takes a model.npz written by scratchcnn train"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DivergedError as error:
        print(f"scratchcnn: error: {error}", file=sys.stderr)
        if getattr(args, "json", False):  # scripts get a JSON answer even now
            print(json.dumps({"diverged_in_epoch": 1, "model": None, "error": str(error)}))
        return EXIT_DIVERGED
    except ScratchCNNError as error:
        print(f"scratchcnn: error: {explain(error, args)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:  # e.g. an output folder that cannot be written
        where = f": {error.filename}" if error.filename else ""
        print(f"scratchcnn: error: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("scratchcnn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def run() -> NoReturn:
    """The ``scratchcnn`` command and ``python -m scratchcnn``: main(), then exit with its status.

    Before exiting, the objects alive are frozen out of the garbage collector: the interpreter's shutdown
    would otherwise walk Numba's and matplotlib's ~10⁶ objects in collections (~0.5 s) that free nothing the
    operating system does not free anyway. Files are written and closed before main returns.
    """
    status = main()
    gc.freeze()
    sys.exit(status)
