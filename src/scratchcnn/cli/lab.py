"""``scratchcnn lab``: the explorer page with a Train panel, starting from a fresh network (or a model)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from scratchcnn import options
from scratchcnn.cli.experiments import NETWORK_FLAGS, TRAINING_FLAGS
from scratchcnn.cli.explore import open_in_browser
from scratchcnn.cli.options import add_data_options, add_option_flags, check_layers, positive_int
from scratchcnn.errors import ConfigError
from scratchcnn.options import LAB_RECORDS, LAB_VALIDATION

LAB_NAME = "lab.html"


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "lab", help="one HTML page that trains a network live in the browser",
        description="Write one self-contained HTML page that trains a network in the browser: the explorer (draw a "
        "digit, see X, f_k, Y_k, Z_k and P) with a Train panel. Stochastic gradient descent runs in the page's "
        "JavaScript with the same hand-derived gradients and optimisers as scratchcnn train, in a background "
        "worker, on a sample of the dataset embedded in the page: start, pause, step, reset, change the learning "
        "rate while it runs, watch the accuracy and loss curves, the kernels and the dense weights move, and save "
        "the trained model as a .npz that scratchcnn evaluate, predict, figures and explore read. Presets: the "
        "write-up (SGD, one record a step) and its overtraining experiment (100 records, training accuracy "
        "100 % while validation stays below). The network is the write-up's unless --arch, --layers or a MODEL "
        "to go on training says otherwise. The page links to nothing: it opens from disk, offline.\n\n"
        "examples: scratchcnn lab --open\n"
        "          scratchcnn lab --arch lenet --out lenet-lab.html\n"
        "          scratchcnn lab runs/demo/model.npz --lab-records 2000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", nargs="?", type=Path, metavar="MODEL",
                        help="a model.npz to go on training (default: a fresh network)")
    add_option_flags(parser.add_argument_group("network (a fresh one) and its training defaults"),
                     [*NETWORK_FLAGS, *TRAINING_FLAGS, "learning_rate", "seed"])
    add_data_options(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, metavar="FILE", help=f"the page to write (default: {LAB_NAME})")
    out.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    out.add_argument("--lab-records", type=positive_int, default=LAB_RECORDS, metavar="N",
                     help=f"training records embedded in the page (default: {LAB_RECORDS}, ~1 kB each for MNIST; "
                     f"the {LAB_VALIDATION} after them validate)")
    out.add_argument("--open", action="store_true", help="open the page in the web browser when written")
    parser.set_defaults(run=run_lab)


def run_lab(args: argparse.Namespace) -> int:
    from scratchcnn.data.datasets import load_dataset  # (here: `--help` stays quick, see cli/__init__)
    from scratchcnn.nn.network import build_network, load_model
    from scratchcnn.viz.explorer import write_lab

    path = args.out or Path(LAB_NAME)
    if path.exists() and not args.overwrite:
        raise ConfigError(f"{path} already exists: give another --out, or --overwrite to replace it")
    given = {name: getattr(args, name) for name in (*NETWORK_FLAGS, *TRAINING_FLAGS, "learning_rate", "seed")
             if getattr(args, name) is not None}
    net = None
    if args.model is not None:
        shaped = [name for name in NETWORK_FLAGS if name in given]
        if shaped:
            raise ConfigError(f"--{shaped[0].replace('_', '-')} shapes a fresh network; MODEL is trained already")
        net = load_model(args.model)
    check_layers(given)
    dataset = args.dataset or (net.dataset if net is not None else None) or options.RunOptions.dataset
    run = options.resolve({**given, "dataset": dataset})
    data = load_dataset(dataset, args.data_dir, download=args.download)
    if net is None:
        net = build_network(run.network, input_shape=data.train_images.shape[1:], seed=run.seed)
        net.dataset = data.name
    written = write_lab(net, data, run, path, args.lab_records, fresh=args.model is None)
    size = written.stat().st_size / 1e6
    print(f"wrote {written} ({size:.1f} MB: {args.lab_records} training records embedded)")
    if args.open and not open_in_browser(written):
        print(f"scratchcnn: note: no web browser found to open the page; open {written.resolve()} yourself",
              file=sys.stderr)
    return 0
