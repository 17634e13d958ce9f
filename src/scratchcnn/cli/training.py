"""``scratchcnn train`` and ``scratchcnn evaluate``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from scratchcnn.cli.options import (
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    add_data_options,
    add_json_option,
    add_option_flags,
    check_layers,
    default_run_dir,
    show_progress,
)
from scratchcnn.errors import ConfigError
from scratchcnn.options import NetworkOptions, RunOptions, TrainOptions
from scratchcnn.train.rundir import RunDir
from scratchcnn.viz.drawer import Drawer


def add_commands(commands: Any) -> None:
    add_train_command(commands)
    add_evaluate_command(commands)


def add_train_command(commands: Any) -> None:
    parser = commands.add_parser(
        "train", help="train a network by SGD, evaluate it on the test set, save it",
        description="Train the network by stochastic gradient descent, report train/validation accuracy per "
        "epoch, evaluate on the test set, and write model.npz, history.json and history.csv into --out. "
        "A checkpoint is written after every epoch: after a crash or Ctrl-C, --resume DIR continues the run "
        "exactly where it stopped. A folder that already holds a run is never overwritten unless you say "
        "--overwrite, and only one process uses a folder at a time.",
    )
    add_data_options(parser)
    add_option_flags(parser.add_argument_group("stochastic gradient descent"),
                     [f.name for f in fields(TrainOptions) if f.name != "engine"],
                     aliases={"learning_rate": ("--lr",), "optimiser": ("--optimizer",)})
    add_option_flags(parser.add_argument_group("network"), [*(f.name for f in fields(NetworkOptions)), "engine"])
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: runs/<timestamp>)")
    out.add_argument("--resume", type=Path, metavar="DIR",
                     help="continue the run in DIR from its checkpoint, with its saved options")
    out.add_argument("--overwrite", action="store_true",
                     help="replace the run already in --out (its files go once the new run's first epoch is saved)")
    add_json_option(out)
    parser.set_defaults(run=run_train)


def add_evaluate_command(commands: Any) -> None:
    parser = commands.add_parser(
        "evaluate", help="test accuracy, per-class accuracy and confusion matrix of a saved model",
        description="Evaluate a saved model on a dataset's test set.",
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help="a model.npz written by scratchcnn train")
    add_data_options(parser, "the one the model was trained on")
    parser.add_argument("--mistakes", type=Path, metavar="DIR",
                        help="also write DIR/mistakes.png, a gallery of the test set's most confident mistakes, "
                        "and DIR/mistakes.json (each one's index in the test set, true and predicted class, P)")
    add_json_option(parser)
    parser.set_defaults(run=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm  # (imports in the run functions: `--help` must not wait for NumPy, see cli/__init__)

    from scratchcnn.train.runs import train_run

    given = {f.name: getattr(args, f.name) for f in fields(RunOptions) if getattr(args, f.name) is not None}
    check_layers(given)
    if args.resume and args.out and args.out.resolve() != args.resume.resolve():
        raise ConfigError("--resume DIR writes into DIR: drop --out or give the same folder")
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run in DIR and --overwrite replaces it: give one of them")
    out = args.resume or args.out or default_run_dir()
    say = (lambda _: None) if args.json else tqdm.write
    checkpoint = RunDir(out).checkpoint
    before = _stamp(checkpoint)  # with --overwrite, the old run's: not this run's to resume
    def finish(run: RunDir, summary: dict[str, Any]) -> None:
        if not args.json:  # the answer first; the figures take a moment longer (matplotlib)
            print(f"test accuracy {summary['test_accuracy']:.4f} on the {summary['options']['dataset']} test set",
                  flush=True)
        drawer(run, summary)

    try:
        with Drawer(write_training_figures) as drawer:  # matplotlib starts on the other core meanwhile
            summary = train_run(given, out, data_dir=args.data_dir, download=args.download,
                                resume=args.resume is not None, overwrite=args.overwrite,
                                progress=show_progress(args), say=say, finish=finish)
    except KeyboardInterrupt:
        if args.overwrite and before is not None and _stamp(checkpoint) == before:
            print(f"scratchcnn: interrupted before the new run's first epoch ended; the run in {out} is as it "
                  "was", file=sys.stderr)
        elif checkpoint.exists():
            print(f"scratchcnn: interrupted; the last finished epoch is saved in {checkpoint}. "
                  f"Continue with: scratchcnn train --resume {out}", file=sys.stderr)
        else:
            print("scratchcnn: interrupted before the first epoch ended; nothing saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    if summary["stopped"]:
        print(f"scratchcnn: warning: {summary['stopped']}", file=sys.stderr)
    status = EXIT_DIVERGED if summary["stopped"] else 0
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"wrote {RunDir(out).model}, history.json, history.csv and the accuracy and confusion figures")
    return status


def _stamp(path: Path) -> tuple[int, int] | None:
    """(inode, mtime) of a file, None when absent: tells whether it was replaced."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def write_training_figures(run: RunDir, summary: dict[str, Any]) -> None:
    """The accuracy curves and the confusion matrix, into the run folder."""
    import numpy as np

    from scratchcnn.data.datasets import CLASS_NAMES
    from scratchcnn.files import write_atomically
    from scratchcnn.viz.figures import figures_bytes, plot_accuracy, plot_confusion

    names = CLASS_NAMES[summary["options"]["dataset"]]
    figures = {"accuracy": plot_accuracy(summary["history"]),
               "confusion": plot_confusion(np.array(summary["confusion_matrix"]), names)}
    for key, data in figures_bytes(figures).items():  # drawn side by side, one per CPU
        write_atomically(run.figure(key), lambda fh, data=data: fh.write(data))


def run_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from scratchcnn.data.datasets import load_dataset
    from scratchcnn.nn.metrics import confusion_matrix
    from scratchcnn.nn.network import load_model

    if args.mistakes is not None and args.mistakes.exists() and not args.mistakes.is_dir():
        raise ConfigError(f"--mistakes {args.mistakes}: that is a file; give a folder for mistakes.png and .json")
    net = load_model(args.model)
    name = args.dataset or net.dataset or RunOptions.dataset
    data = load_dataset(name, RunDir.of_model(args.model).data_dir(args.data_dir), download=args.download,
                        progress=show_progress(args), image_shape=net.input_shape)
    y_true = data.test_labels.astype(np.int64)
    scores = net.scores(net.check_images(data.test_images))  # what predict computes; --mistakes needs them too
    y_pred = scores.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, net.classes)
    per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    result = {
        "model": str(args.model), "dataset": name, "data": str(data.directory), "test_images": len(y_true),
        "test_accuracy": float((y_true == y_pred).mean()),
        "per_class_accuracy": [float(a) for a in per_class],
        "confusion_matrix": matrix.tolist(),
    }
    if args.mistakes is not None:
        result["mistakes"] = write_mistakes(args.mistakes, data.test_images, y_true, scores, name, str(args.model))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"test accuracy {result['test_accuracy']:.4f} on {len(y_true)} {name} test images ({data.directory})")
    print("per-class accuracy: " + "  ".join(f"{c}:{a:.3f}" for c, a in enumerate(per_class)))
    print("confusion matrix (rows: true class, columns: predicted):")
    print("      " + "".join(f"{c:>6}" for c in range(net.classes)))
    for c, row in enumerate(matrix):
        print(f"{c:>6}" + "".join(f"{v:>6}" for v in row))
    if args.mistakes is not None:
        print(f"wrote {result['mistakes']['png']} and {result['mistakes']['json']}: the "
              f"{len(result['mistakes']['indices'])} most confident of {int(len(y_true) - matrix.trace())} mistakes")
    return 0


def write_mistakes(out_dir: Path, images: Any, labels: Any, scores: Any, dataset: str, model: str
                   ) -> dict[str, Any]:
    """DIR/mistakes.png (the gallery) and DIR/mistakes.json of the most confident mistakes; returns their paths
    and the mistakes' indices in the test set. images (N, H, W), labels (N,), scores A: (N, C)."""
    from scratchcnn.data.datasets import CLASS_NAMES
    from scratchcnn.files import write_text_atomically
    from scratchcnn.viz.figures import save_figure
    from scratchcnn.viz.mistakes import mistakes_from_scores, plot_mistakes

    rows = mistakes_from_scores(scores, labels)
    wrong = int((scores.argmax(axis=1) != labels).sum())
    names = CLASS_NAMES.get(dataset, CLASS_NAMES["mnist"])
    png = save_figure(plot_mistakes(images, rows, names, wrong=wrong), out_dir / "mistakes.png")
    record = {"model": model, "dataset": dataset, "test_images": len(labels), "wrong": wrong,
              "mistakes": [row.as_json() for row in rows]}  # most confident first
    saved = write_text_atomically(out_dir / "mistakes.json", json.dumps(record, indent=1) + "\n")
    return {"png": str(png), "json": str(saved), "indices": [row.index for row in rows]}
