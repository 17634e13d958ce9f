"""The command line: ``scratchcnn COMMAND``. Each command lives in a module of this package.

Bad input of any kind ends with one line on stderr and exit status 2; ``--json`` makes the last
line of stdout a single JSON object for scripts.
"""

from __future__ import annotations

import argparse
import sys

from scratchcnn import __version__
from scratchcnn.cli import datasets, experiments, explore, pictures, predict, training
from scratchcnn.cli.options import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from scratchcnn.errors import ScratchCNNError
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
found via --data-dir DIR, $SCRATCHCNN_DATA, ~/.cache/scratchcnn or /usr/share/datasets,
and downloaded into ~/.cache/scratchcnn when missing.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scratchcnn", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"scratchcnn {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module in (training, experiments, pictures, explore, predict, datasets):
        module.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ScratchCNNError as error:
        print(f"scratchcnn: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:  # e.g. an output folder that cannot be written
        where = f": {error.filename}" if error.filename else ""
        print(f"scratchcnn: error: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("scratchcnn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
