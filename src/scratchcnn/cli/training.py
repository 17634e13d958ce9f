"""``scratchcnn train`` and ``scratchcnn evaluate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from scratchcnn.checkpoint import CHECKPOINT_NAME
from scratchcnn.cli.options import (
    EXIT_INTERRUPTED,
    add_data_options,
    add_json_option,
    default_run_dir,
    natural_int,
    positive_float,
    positive_int,
    show_progress,
    validation_size,
)
from scratchcnn.data import CLASS_NAMES, load_dataset
from scratchcnn.errors import ConfigError, ScratchCNNError
from scratchcnn.figures import FIGURE_NAMES, plot_accuracy, plot_confusion, save_figure
from scratchcnn.layers import ACTIVATIONS, POOLS
from scratchcnn.model import ConvNet
from scratchcnn.runs import TRAIN_DEFAULTS, train_run
from scratchcnn.train import BATCH_SIZE, ENGINES, EPOCHS, LEARNING_RATE, VALIDATION_SIZE, confusion_matrix


def add_commands(commands: Any) -> None:
    add_train_command(commands)
    add_evaluate_command(commands)


def add_train_command(commands: Any) -> None:
    parser = commands.add_parser(
        "train", help="train a network by SGD, evaluate it on the test set, save it",
        description="Train the network by stochastic gradient descent, report train/validation accuracy per "
        "epoch, evaluate on the test set, and write model.npz, history.json and history.csv into --out. "
        "A checkpoint is written after every epoch: after a crash or Ctrl-C, --resume DIR continues the run "
        "exactly where it stopped.",
    )
    add_data_options(parser, "mnist")
    sgd = parser.add_argument_group("stochastic gradient descent")
    sgd.add_argument("--learning-rate", "--lr", type=positive_float, metavar="ETA",
                     help=f"step size η in θ ← θ − η ∂L/∂θ (default: {LEARNING_RATE}; 0.005 for digits)")
    sgd.add_argument("--epochs", type=positive_int, metavar="N", help=f"number of epochs (default: {EPOCHS})")
    sgd.add_argument("--batch-size", type=positive_int, metavar="N",
                     help=f"records per update; 1 is the write-up's one-record-at-a-time SGD (default: {BATCH_SIZE})")
    sgd.add_argument("--epoch-size", type=positive_int, metavar="N",
                     help="records per epoch, drawn in turn from the shuffled training set (default: all of it)")
    sgd.add_argument("--train-size", type=positive_int, metavar="N",
                     help="use only the first N training records (default: all)")
    sgd.add_argument("--validation-size", type=validation_size, metavar="SIZE",
                     help="records held out of the training set for validation: a fraction like 0.1 or a "
                     f"count like 1000; 0 for none (default: {VALIDATION_SIZE})")
    sgd.add_argument("--seed", type=natural_int, help="random seed: same seed, same model, bit for bit (default: 0)")
    net = parser.add_argument_group("network")
    net.add_argument("--filters", type=positive_int, metavar="K", help="number of convolution filters (default: 3)")
    net.add_argument("--kernel-size", type=positive_int, metavar="k", help="filter size k×k (default: 3)")
    net.add_argument("--pool", choices=POOLS, help="2×2 pooling after the convolution (default: decimate)")
    net.add_argument("--activation", choices=ACTIVATIONS, help="applied after the convolution (default: none)")
    net.add_argument("--bias", action="store_true", default=None, help="add a bias b to the dense layer: A = W Z + b")
    net.add_argument("--dtype", choices=("float32", "float64"), help="floating-point precision (default: float32)")
    net.add_argument("--engine", choices=ENGINES, help="SGD engine: numba (compiled, fast), numpy (the readable "
                     "reference, same results to float precision), auto: numba when installed (default: auto)")
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: runs/<timestamp>)")
    out.add_argument("--resume", type=Path, metavar="DIR",
                     help="continue the run in DIR from its checkpoint, with its saved options")
    add_json_option(out)
    parser.set_defaults(run=run_train)


def add_evaluate_command(commands: Any) -> None:
    parser = commands.add_parser(
        "evaluate", help="test accuracy, per-class accuracy and confusion matrix of a saved model",
        description="Evaluate a saved model on a dataset's test set.",
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help="a model.npz written by scratchcnn train")
    add_data_options(parser, "the one the model was trained on")
    add_json_option(parser)
    parser.set_defaults(run=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    given = {key: getattr(args, key) for key in TRAIN_DEFAULTS if getattr(args, key) is not None}
    if args.resume and args.out and args.out.resolve() != args.resume.resolve():
        raise ConfigError("--resume DIR writes into DIR: drop --out or give the same folder")
    out = args.resume or args.out or default_run_dir()
    say = (lambda _: None) if args.json else tqdm.write
    try:
        summary = train_run(given, out, data_dir=args.data_dir, download=args.download,
                            resume=args.resume is not None,
                            progress=show_progress(args), say=say)
    except KeyboardInterrupt:
        if (out / CHECKPOINT_NAME).exists():
            print(f"scratchcnn: interrupted; the last finished epoch is saved in {out / CHECKPOINT_NAME}. "
                  f"Continue with: scratchcnn train --resume {out}", file=sys.stderr)
        else:
            print("scratchcnn: interrupted before the first epoch ended; nothing saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    if summary["stopped"]:
        print(f"scratchcnn: warning: {summary['stopped']}", file=sys.stderr)
    names = CLASS_NAMES[summary["options"]["dataset"]]
    save_figure(plot_accuracy(summary["history"]), out / f"{FIGURE_NAMES['accuracy']}.png")
    save_figure(plot_confusion(np.array(summary["confusion_matrix"]), names), out / f"{FIGURE_NAMES['confusion']}.png")
    if args.json:
        print(json.dumps(summary))
    else:
        data_name = summary["options"]["dataset"]
        print(f"test accuracy {summary['test_accuracy']:.4f} on the {data_name} test set")
        print(f"wrote {out / 'model.npz'}, history.json, history.csv and the accuracy and confusion figures")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    net = ConvNet.load(args.model)
    name = args.dataset or net.dataset or "mnist"
    data = load_dataset(name, args.data_dir, download=args.download, progress=show_progress(args))
    if data.test_images.shape[1:] != net.input_shape:
        raise ScratchCNNError(
            f"{args.model} takes {net.input_shape} images but {name} has {data.test_images.shape[1:]}"
        )
    y_true = data.test_labels.astype(np.int64)
    y_pred = net.predict(data.test_images)
    matrix = confusion_matrix(y_true, y_pred, net.classes)
    per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    result = {
        "model": str(args.model), "dataset": name, "test_images": len(y_true),
        "test_accuracy": float((y_true == y_pred).mean()),
        "per_class_accuracy": [float(a) for a in per_class],
        "confusion_matrix": matrix.tolist(),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"test accuracy {result['test_accuracy']:.4f} on {len(y_true)} {name} test images")
    print("per-class accuracy: " + "  ".join(f"{c}:{a:.3f}" for c, a in enumerate(per_class)))
    print("confusion matrix (rows: true class, columns: predicted):")
    print("      " + "".join(f"{c:>6}" for c in range(net.classes)))
    for c, row in enumerate(matrix):
        print(f"{c:>6}" + "".join(f"{v:>6}" for v in row))
    return 0
