"""``scratchcnn gradcheck``: the hand-derived gradients against central finite differences."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scratchcnn import options
from scratchcnn.cli.options import (
    add_data_options,
    add_json_option,
    add_option_flags,
    check_layers,
    option_field,
    positive_float,
    positive_int,
)
from scratchcnn.errors import ConfigError
from scratchcnn.options import (
    DTYPES,
    GRADCHECK_RECORDS,
    GRADCHECK_SAMPLES,
    GRADCHECK_TOLERANCE,
    SEED_FAMILY,
    RunOptions,
)

if TYPE_CHECKING:  # imported in the functions that use them: `--help` stays quick (see cli/__init__)
    from scratchcnn.nn.gradcheck import GradcheckResult
    from scratchcnn.nn.network import Network

EXIT_FAILED = 1

DESCRIPTION = """\
Check the hand-derived gradients. For each parameter tensor θ, the network's own ∂L/∂θ (loss_and_gradients,
what the NumPy trainer steps with; the compiled engines are tested equal to it) is compared, entry by entry,
with central finite differences of the loss itself:
∂L/∂θ_e ≈ (L(θ + ε e) − L(θ − ε e)) / 2ε, the network's own parameter entry moved by ±ε (1e-6) and put
back exactly. A tensor passes when max |analytic − numeric| / (its largest gradient) is at most the
tolerance (1e-6 in float64: finite differences are good to ~1e-8 there, a derivation mistake is off by
far more). Entries whose ±ε step crosses a kink of ReLU or max pooling (L has no derivative there) are
counted, not compared. A fresh network's biases are drawn from ±0.1 first (at 0 a ReLU after a biased
convolution sits on its kink on blank pixels). The check runs in float64; a float32 MODEL is cast
exactly. Tensors of more than --samples entries are checked on a random sample of them.

exit status: 0 every tensor passes, 1 some tensor fails, 2 bad input.

examples:
  scratchcnn gradcheck                          # the write-up's network
  scratchcnn gradcheck --arch lenet --inputs    # and ∂L/∂X, the gradient with respect to the pixels
  scratchcnn gradcheck --layers conv:4x3:same,relu,pool:avg,flatten,dense:16,relu,dense
  scratchcnn gradcheck runs/demo/model.npz --json
"""


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "gradcheck", help="check the hand-derived gradients against finite differences",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", nargs="?", type=Path, metavar="MODEL",
                        help="a model.npz to check at its trained parameters (default: a fresh network)")
    network = parser.add_argument_group("network (a fresh one)")
    add_option_flags(network, ("arch",))
    layers = option_field("layers").metadata
    network.add_argument("--layers", metavar=layers["metavar"], help=layers["help"])  # one-line errors, as train
    add_option_flags(network, SEED_FAMILY)
    network.add_argument("--dtype", choices=DTYPES, default="float64",
                         help="float64 only (the default): in float32 the loss is good to ~1e-7, too coarse for "
                         "finite differences")
    add_option_flags(network, ("seed",), with_defaults=True)
    check = parser.add_argument_group("the check")
    check.add_argument("--records", type=positive_int, default=GRADCHECK_RECORDS, metavar="N",
                       help="training records (drawn with --seed) the loss is averaged over "
                       f"(default: {GRADCHECK_RECORDS})")
    check.add_argument("--inputs", action="store_true", help="also check ∂L/∂X, the gradient for the pixels")
    check.add_argument("--samples", type=positive_int, default=GRADCHECK_SAMPLES, metavar="N",
                       help=f"entries checked per tensor: all of a smaller one, else N drawn with --seed "
                       f"(default: {GRADCHECK_SAMPLES})")
    check.add_argument("--tolerance", type=positive_float, metavar="TOL",
                       help=f"the largest relative error that passes (default: {GRADCHECK_TOLERANCE:g})")
    add_data_options(parser)
    add_json_option(parser)
    parser.set_defaults(run=run_gradcheck)


def run_gradcheck(args: argparse.Namespace) -> int:
    import numpy as np  # (imports in the run functions: `--help` must not wait for NumPy, see cli/__init__)

    from scratchcnn.data.datasets import load_dataset
    from scratchcnn.nn.gradcheck import gradcheck

    if args.dtype != "float64":
        raise ConfigError(f"--dtype {args.dtype}: a gradient check runs in float64 (in float32 the loss is good "
                          "to ~1e-7, too coarse for finite differences)")
    given = {name: getattr(args, name) for name in ("arch", "layers", *SEED_FAMILY) if getattr(args, name) is not None}
    net, notes = _loaded(args.model, given) if args.model is not None else (None, [])
    check_layers(given)
    dataset = args.dataset or (net.dataset if net is not None else None) or RunOptions.dataset
    data = load_dataset(dataset, _data_dir(args), download=args.download,
                        image_shape=net.input_shape if net is not None else None)
    if net is None:
        net, notes = _fresh(given, data.train_images.shape[1:], args.seed)
    if args.records > len(data.train_images):
        raise ConfigError(f"--records {args.records}: the {dataset} training set has {len(data.train_images)}")
    rng = np.random.default_rng(args.seed)
    chosen = np.sort(rng.choice(len(data.train_images), args.records, replace=False))
    started = time.perf_counter()
    result = gradcheck(net, data.train_images[chosen], data.train_labels[chosen].astype(np.int64),
                       inputs=args.inputs, tolerance=args.tolerance, samples=args.samples, seed=args.seed)
    seconds = time.perf_counter() - started
    if args.json:
        from scratchcnn.nn.network import network_spec

        print(json.dumps({"network": network_spec(net), "model": None if args.model is None else str(args.model),
                          "dataset": dataset, "seconds": round(seconds, 3), "notes": notes} | result.to_json()))
    else:
        for note in notes:
            print(f"scratchcnn: note: {note}", file=sys.stderr)
        _print_table(net, dataset, result, seconds)
    return 0 if result.passed else EXIT_FAILED


def _data_dir(args: argparse.Namespace) -> Path | None:
    """--data-dir, else for a MODEL the data its run was trained from (as evaluate finds it)."""
    if args.model is None:
        return args.data_dir
    from scratchcnn.train.rundir import RunDir

    return RunDir.of_model(args.model).data_dir(args.data_dir)


def _loaded(path: Path, given: dict[str, Any]) -> tuple[Network, list[str]]:
    """MODEL at its trained parameters, in float64 (a float32 model cast exactly)."""
    from scratchcnn.nn.gradcheck import float64_copy
    from scratchcnn.nn.network import load_model

    if given:
        flag = "--" + next(iter(given)).replace("_", "-")
        raise ConfigError(f"{flag} shapes a fresh network; MODEL has its own (give one or the other)")
    net = load_model(path)
    if net.dtype == "float64":
        return net, []
    return float64_copy(net), [f"{path} is {net.dtype}: checked in float64, its parameters cast exactly"]


def _fresh(given: dict[str, Any], input_shape: tuple[int, int], seed: int) -> tuple[Network, list[str]]:
    """The network of --arch/--layers (or the write-up's) in float64, its biases drawn from ±0.1."""
    from scratchcnn.nn.gradcheck import spread_biases
    from scratchcnn.nn.network import build_network

    run = options.resolve(given | {"dtype": "float64"})
    net = build_network(run.network, input_shape=input_shape, seed=seed)
    has_biases = any(name == "b" or name.endswith(".b") for name in net.parameters())
    spread_biases(net, seed)
    return net, ["biases drawn from ±0.1 (a fresh network's 0 puts ReLUs on their kink)"] if has_biases else []


def _print_table(net: Network, dataset: str, result: GradcheckResult, seconds: float) -> None:
    from scratchcnn.nn.network import network_spec

    print(f"{network_spec(net)} in float64 on {result.records} {dataset} training records: L = {result.loss:.6f}, "
          f"ε = {result.epsilon:g} ({seconds:.1f} s)")
    print(f"{'tensor':<8} {'shape':<16} {'checked':>8} {'kinks':>6} {'max rel error':>14} {'max abs error':>14}")
    for row in result.tensors:
        shape = "×".join(map(str, row.shape))
        verdict = "pass" if row.passed else "FAIL" + ("  (every entry at a kink)" if row.checked == 0 else "")
        print(f"{row.name:<8} {shape:<16} {row.checked:>8} {row.kinks:>6} {row.max_relative_error:>14.1e} "
              f"{row.max_abs_error:>14.1e}  {verdict}")
    count = len(result.tensors)
    if result.passed:
        print(f"all {count} tensors pass (tolerance {result.tolerance:g})")
    else:
        print(f"{len(result.failed)} of {count} tensors FAIL (tolerance {result.tolerance:g}): "
              f"{', '.join(result.failed)}")
