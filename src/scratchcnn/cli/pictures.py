"""``scratchcnn figures`` and ``scratchcnn report``: what the network sees, and one page about a run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from scratchcnn.cli.options import add_data_options, add_json_option, natural_int, show_progress
from scratchcnn.errors import ConfigError
from scratchcnn.options import FIGURE_FORMATS, RunOptions
from scratchcnn.train.rundir import RunDir


def add_commands(commands: Any) -> None:
    add_figures_command(commands)
    add_report_command(commands)


def add_figures_command(commands: Any) -> None:
    parser = commands.add_parser(
        "figures", help="draw what a trained network sees: record, kernels, convolved and pooled images, W",
        description="Draw the write-up's pictures for a trained model: a test record as an image and as a 3-D "
        "surface, the kernels as images and surfaces, the convolved images Y_k and pooled images Z_k of that "
        "record, the training history (from history.json beside the model), the confusion matrix on the test "
        "set, and the dense weights W per class and filter. One file each. A deeper network also gets the "
        "filters and maps of each further convolution (03-kernels-2.png, 05-convolved-2.png, ...); a picture "
        "its shape has no place for is left out with a note.\n\n"
        "example: scratchcnn figures runs/demo/model.npz --image-index 0 --format svg",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help="a model.npz written by scratchcnn train")
    add_data_options(parser, "the one the model was trained on")
    parser.add_argument("--image-index", type=natural_int, default=0, metavar="I",
                        help="which test record to draw (default: %(default)s, a '7' in MNIST)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: MODEL's folder/figures)")
    parser.add_argument("--format", choices=FIGURE_FORMATS, default=FIGURE_FORMATS[0],
                        help="file format (default: %(default)s)")
    add_json_option(parser)
    parser.set_defaults(run=run_figures)


def add_report_command(commands: Any) -> None:
    parser = commands.add_parser(
        "report", help="one self-contained HTML page about a training run or a sweep",
        description="Write RUN_DIR/report.html: the configuration, the accuracy table, every figure (embedded), "
        "the tuning and overtraining results when RUN_DIR holds them, and the equations. Given a sweep's folder "
        "(the DIR of scratchcnn sweep: sweep.jsonl, no model.npz): the counts, the configurations best first, "
        "the best one and the sweep's figures. The file needs no network to view: no external scripts, styles "
        "or fonts.\n\n"
        "Against a baseline: given --baseline BASE_RUN, or when RUN_DIR/baseline/ holds a run (train it there with "
        "scratchcnn train --arch softmax --out RUN_DIR/baseline), the page also shows both runs side by side: test "
        "accuracy, accuracy on each class, both confusion matrices, and what the network bought over the "
        "baseline in one sentence. Both must be runs on the same dataset.\n\n"
        "example: scratchcnn report runs/demo      scratchcnn report runs/study\n"
        "         scratchcnn report runs/lenet --baseline runs/softmax",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a folder written by scratchcnn train or sweep")
    parser.add_argument("--out", type=Path, metavar="FILE", help=f"where to write (default: RUN_DIR/{RunDir.REPORT})")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="where the test set is (as for train)")
    parser.add_argument("--baseline", type=Path, metavar="BASE_RUN",
                        help="a run folder to compare with, e.g. one of --arch softmax (default: RUN_DIR/baseline "
                        "when it holds a run)")
    add_json_option(parser)
    parser.set_defaults(run=run_report)


def run_figures(args: argparse.Namespace) -> int:
    import numpy as np  # (imports in the run functions: `--help` stays quick, see cli/__init__)

    from scratchcnn.data.datasets import CLASS_NAMES, load_dataset
    from scratchcnn.nn.metrics import confusion_matrix
    from scratchcnn.nn.network import load_model
    from scratchcnn.viz.figures import figure_stem, model_figures
    from scratchcnn.viz.stack_figures import left_out

    net = load_model(args.model)
    name = args.dataset or net.dataset or RunOptions.dataset
    run = RunDir.of_model(args.model)
    data = load_dataset(name, run.data_dir(args.data_dir), download=args.download, progress=show_progress(args),
                        image_shape=net.input_shape)
    if args.image_index >= len(data.test_images):
        raise ConfigError(f"--image-index {args.image_index}: the {name} test set has {len(data.test_images)} images")
    summary = run.read_summary()
    history = summary["history"] if summary is not None else None
    y_true = data.test_labels.astype(np.int64)
    matrix = confusion_matrix(y_true, net.predict(data.test_images), net.classes)
    names = CLASS_NAMES[name]
    label = names[int(y_true[args.image_index])]
    out = args.out or args.model.parent / "figures"
    paths = model_figures(net, data.test_images[args.image_index], label, history, matrix, names, out, args.format)
    skipped = {figure_stem(key): why for key, why in left_out(net).items()}
    for stem, why in skipped.items():
        print(f"scratchcnn: note: no {stem}: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps({"figures": {key: str(path) for key, path in paths.items()}, "left_out": skipped}))
    else:
        for path in paths.values():
            print(path)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from scratchcnn.viz.report import write_report

    path = write_report(args.run_dir, args.out, data_dir=args.data_dir, baseline=args.baseline)
    print(json.dumps({"report": str(path)}) if args.json else f"wrote {path}")
    return 0
