"""``scratchcnn tune`` and ``scratchcnn overtrain``: the write-up's two experiments."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from scratchcnn import options
from scratchcnn.cli.options import (
    add_data_options,
    add_json_option,
    add_option_flags,
    default_run_dir,
    option_field,
    positive_float,
    positive_int,
    show_progress,
    validation_size,
)
from scratchcnn.files import write_text_atomically
from scratchcnn.options import NetworkOptions, RunOptions
from scratchcnn.train.rundir import RunDir

DATASET = RunOptions.dataset
NETWORK_FLAGS = tuple(f.name for f in fields(NetworkOptions))  # as train has them: --arch, --layers, --filters...
# The training flags a preset has defaults for (lenet: momentum, 4 a batch); the rest have each experiment's own.
TRAINING_FLAGS = ("batch_size", "optimiser", "momentum", "weight_decay", "schedule")


def add_commands(commands: Any) -> None:
    add_tune_command(commands)
    add_overtrain_command(commands)


def learning_rates(text: str) -> list[float]:
    """A comma-separated list of positive learning rates, e.g. 0.001,0.003,0.01."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")
    try:
        return [positive_float(part) for part in parts]
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{error} in the list {text!r}") from None


def add_network_options(parser: argparse.ArgumentParser) -> None:
    """The network's flags and the optimiser's, as train has them: None unless given, so that a preset's own
    defaults apply (``resolve_network``)."""
    network = parser.add_argument_group("network")
    add_option_flags(network, ("arch",))
    layers = option_field("layers").metadata
    # Not argparse's check (usage, then the error): a bad spec is one line naming the layer, as bad shapes are.
    network.add_argument("--layers", metavar=layers["metavar"], help=layers["help"])
    add_option_flags(network, [name for name in NETWORK_FLAGS if name not in ("arch", "layers")])
    add_option_flags(parser.add_argument_group("training"), TRAINING_FLAGS, aliases={"optimiser": ("--optimizer",)})


def resolve_network(args: argparse.Namespace) -> RunOptions:
    """The options given for the network and its training, a preset's defaults for the rest (lenet: momentum, 4 a
    batch); ConfigError for flags that contradict (--arch with --layers, --filters with --arch lenet...)."""
    given = {name: getattr(args, name) for name in (*NETWORK_FLAGS, *TRAINING_FLAGS) if getattr(args, name) is not None}
    run = options.resolve(given)
    if run.layers is not None:
        from scratchcnn.nn.spec import parse  # (imports in the run functions: `--help` stays quick, cli/__init__)

        parse(run.layers)  # a malformed layer before the data is loaded; whether the shapes fit, once it is
    return run


def add_tune_command(commands: Any) -> None:
    rates = ",".join(f"{r:g}" for r in options.LEARNING_RATES)
    parser = commands.add_parser(
        "tune", help="pick the learning rate by validation accuracy",
        description="Train a fresh network per learning rate (same seed, same sample of the training set) and "
        "compare their validation accuracy after each epoch. Writes tuning.json, tuning.csv and tuning.png "
        "into --out. The best rate has the highest final validation accuracy (ties: the smaller rate); rates "
        "whose loss blows up are reported as diverged. Rates run in parallel, one process per core. The network "
        "is the write-up's unless --arch or --layers says otherwise; a preset trains with its own optimiser and "
        "batch size (see --help of train).\n\n"
        "example: scratchcnn tune --learning-rates 0.001,0.01,0.1 --epochs 3\n"
        "         scratchcnn tune --arch lenet --learning-rates 0.0003,0.001,0.003",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_options(parser)
    parser.add_argument("--learning-rates", type=learning_rates, default=list(options.LEARNING_RATES),
                        metavar="R1,R2,...", help=f"the rates to compare (default: {rates})")
    parser.add_argument("--epochs", type=positive_int, default=options.TUNE_EPOCHS,
                        help=f"epochs per rate (default: {options.TUNE_EPOCHS})")
    add_option_flags(parser, ("epoch_size",), with_defaults=True)
    parser.add_argument("--train-size", type=positive_int, default=options.TUNE_TRAIN_SIZE, metavar="N",
                        help=f"the sample: the first N training records (default: {options.TUNE_TRAIN_SIZE})")
    parser.add_argument("--validation-size", type=validation_size, default=options.TUNE_VALIDATION_SIZE,
                        metavar="SIZE", help="records of the sample held out for validation, a count or a "
                        f"fraction (default: {options.TUNE_VALIDATION_SIZE})")
    add_option_flags(parser, ("seed",), with_defaults=True)
    parser.add_argument("--jobs", type=positive_int, metavar="N", help="parallel processes (default: one per core)")
    parser.add_argument("--out", metavar="DIR", type=Path, help="output folder (default: runs/<timestamp>)")
    add_json_option(parser)
    add_network_options(parser)
    parser.set_defaults(run=run_tune)


def add_overtrain_command(commands: Any) -> None:
    parser = commands.add_parser(
        "overtrain", help="the write-up's overtraining experiment: 100 records, 1000 epochs",
        description="Train on a fixed random sample of --train-records records, one record per step (or "
        "--batch-size), for "
        "--epochs epochs, and measure accuracy on those records and on --validation-records other records "
        "after every epoch. Training accuracy soon reaches 100 % while validation accuracy stalls far below: "
        "the network memorises its few records. Writes overtraining.json and overtraining.png into --out. "
        "The network is the write-up's unless --arch or --layers says otherwise; a preset trains with its own "
        "optimiser, batch size and learning rate (see --help of train).\n\n"
        "example: scratchcnn overtrain --epochs 300\n"
        "         scratchcnn overtrain --arch lenet --epochs 100",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_options(parser)
    parser.add_argument("--train-records", type=positive_int, default=options.OVERTRAIN_RECORDS, metavar="N",
                        help=f"size of the training sample (default: {options.OVERTRAIN_RECORDS})")
    parser.add_argument("--validation-records", type=positive_int, default=options.OVERTRAIN_VALIDATION,
                        metavar="N", help=f"validation records (default: {options.OVERTRAIN_VALIDATION})")
    parser.add_argument("--epochs", type=positive_int, default=options.OVERTRAIN_EPOCHS,
                        help=f"epochs (default: {options.OVERTRAIN_EPOCHS})")
    presets = "; ".join(f"{values['learning_rate']:g} for --arch {arch}" for arch, values in
                        options.ARCH_DEFAULTS.items() if "learning_rate" in values)
    parser.add_argument("--learning-rate", "--lr", type=positive_float, metavar="ETA",
                        help=f"step size (default: {options.OVERTRAIN_LEARNING_RATE:g}; {presets})")
    add_option_flags(parser, ("seed",), with_defaults=True)
    parser.add_argument("--out", metavar="DIR", type=Path, help="output folder (default: runs/<timestamp>)")
    add_json_option(parser)
    add_network_options(parser)
    parser.set_defaults(run=run_overtrain)


def run_tune(args: argparse.Namespace) -> int:
    from scratchcnn.data.datasets import load_dataset
    from scratchcnn.train import experiments
    from scratchcnn.viz.experiment_figures import plot_tuning
    from scratchcnn.viz.figures import save_figure

    run = resolve_network(args)
    data = load_dataset(args.dataset or DATASET, args.data_dir, download=args.download, progress=show_progress(args))
    result = experiments.tune(
        data.train_images, data.train_labels, learning_rates=args.learning_rates, epochs=args.epochs,
        epoch_size=args.epoch_size, batch_size=run.batch_size, train_size=args.train_size,
        validation_size=args.validation_size, seed=args.seed, network=run.network, optimiser=run.optimiser,
        momentum=run.momentum, weight_decay=run.weight_decay, schedule=run.schedule, jobs=args.jobs,
        progress=show_progress(args),
    )
    result["dataset"] = data.name
    out = args.out or default_run_dir()
    write_text_atomically(out / RunDir.TUNING, json.dumps(result, indent=2) + "\n")
    write_text_atomically(out / "tuning.csv", experiments.tuning_csv(result))
    save_figure(plot_tuning(result), out / "tuning.png")
    if args.json:
        print(json.dumps({key: result[key] for key in
                          ("learning_rates", "validation_accuracy", "diverged", "best_learning_rate")}))
        return 0
    print(f"{'learning rate':>13}  final validation accuracy")
    for rate, final in zip(result["learning_rates"], result["validation_accuracy"], strict=True):
        mark = "  <- best" if rate == result["best_learning_rate"] else ""
        print(f"{rate:>13g}  {'diverged' if final is None else f'{final:.4f}'}{mark}")
    print(f"wrote {out / 'tuning.csv'}, tuning.json, tuning.png")
    return 0


def run_overtrain(args: argparse.Namespace) -> int:
    from scratchcnn.data.datasets import load_dataset
    from scratchcnn.train import experiments
    from scratchcnn.viz.experiment_figures import plot_overtraining
    from scratchcnn.viz.figures import save_figure

    run = resolve_network(args)
    data = load_dataset(args.dataset or DATASET, args.data_dir, download=args.download, progress=show_progress(args))
    result = experiments.overtrain(
        data.train_images, data.train_labels, train_records=args.train_records,
        validation_records=args.validation_records, epochs=args.epochs,
        learning_rate=args.learning_rate or options.overtrain_learning_rate(run.network), seed=args.seed,
        network=run.network, batch_size=run.batch_size, optimiser=run.optimiser, momentum=run.momentum,
        weight_decay=run.weight_decay, schedule=run.schedule, progress=show_progress(args),
    )
    result["dataset"] = data.name
    out = args.out or default_run_dir()
    write_text_atomically(out / RunDir.OVERTRAINING, json.dumps(result, indent=2) + "\n")
    save_figure(plot_overtraining(result), out / "overtraining.png")
    if result["stopped"]:
        print(f"scratchcnn: warning: {result['stopped']}", file=sys.stderr)
    if args.json:
        keys = ("train_accuracy", "validation_accuracy", "first_epoch_train_100", "best_validation_accuracy",
                "best_validation_epoch", "final_validation_accuracy", "best_validation_loss",
                "best_validation_loss_epoch", "stopped")
        print(json.dumps({key: result[key] for key in keys}))
        return 0
    if result["train_accuracy"]:
        first = result["first_epoch_train_100"]
        print(f"training accuracy on the {args.train_records} records: "
              + (f"100 % from epoch {first}" if first else f"{max(result['train_accuracy']):.1%} at best"))
        print(f"validation accuracy on {args.validation_records} other records: best "
              f"{result['best_validation_accuracy']:.4f} (epoch {result['best_validation_epoch']}), final "
              f"{result['final_validation_accuracy']:.4f}")
        print(f"validation loss: lowest {result['best_validation_loss']:.4f} (epoch "
              f"{result['best_validation_loss_epoch']}), final {result['validation_loss'][-1]:.4f}")
    print(f"wrote {out / 'overtraining.json'}, overtraining.png")
    return 0
