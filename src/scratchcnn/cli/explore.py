"""``scratchcnn explore``: one self-contained HTML page to draw a digit and watch the network work on it."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path
from typing import Any

from scratchcnn.cli.options import natural_int
from scratchcnn.options import LAB_RECORDS
from scratchcnn.train.rundir import RunDir


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "explore", help="one HTML page: draw a digit, see X, f_k, Y_k, Z_k and P live",
        description="Write one self-contained HTML page for a trained model: a canvas to draw on (mouse or touch), "
        "a picker of test images, and, live as you draw, the input, the kernels f_k, the convolved images Y_k, the "
        "pooled images Z_k (for a deeper network, those of every convolution) and the class probabilities; hovering "
        "over Y_k shows the sum that produced the pixel. It "
        "also shows the training curves (from history.json beside the model) and the test accuracy. The network "
        "runs in the page's JavaScript with the model's own parameters; the file links to nothing and opens "
        "from disk, offline. Test images are read from disk, never downloaded: without them the page has no "
        "picker.\n\nexample: scratchcnn explore runs/demo/model.npz --open",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help="a model.npz written by scratchcnn train")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help=f"where to write (default: MODEL's folder/{RunDir.EXPLORER})")
    parser.add_argument("--open", action="store_true", help="open the page in the web browser when written")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="where the test set is (as for train)")
    parser.add_argument("--lab-records", type=natural_int, default=LAB_RECORDS, metavar="N",
                        help=f"training records embedded for the page's Train panel, which goes on training the "
                        f"model in the browser (default: {LAB_RECORDS}, ~1 kB each for MNIST; 0: no Train panel)")
    parser.set_defaults(run=run_explore)


def run_explore(args: argparse.Namespace) -> int:
    from scratchcnn.viz.explorer import write_explorer  # (here: `--help` stays quick, see cli/__init__)

    result = write_explorer(args.model, args.out, data_dir=args.data_dir, lab_records=args.lab_records)
    for note in result.notes:
        print(f"scratchcnn: note: {note}", file=sys.stderr)
    print(f"wrote {result.path}")
    if args.open and not open_in_browser(result.path):  # the page is written: a note, not an error
        print(f"scratchcnn: note: no web browser found to open the page; open {result.path.resolve()} yourself",
              file=sys.stderr)
    return 0


def open_in_browser(path: Path) -> bool:
    """Whether a browser took the page: webbrowser.open says False (or raises) when none is found."""
    try:
        return webbrowser.open(path.resolve().as_uri())
    except webbrowser.Error:
        return False
