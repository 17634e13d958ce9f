"""``scratchcnn sweep SPEC``: a study of any of train's options, on local processes or a Dask cluster."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from scratchcnn.cli.options import (
    EXIT_INTERRUPTED,
    add_data_options,
    add_json_option,
    natural_int,
    positive_int,
    show_progress,
)
from scratchcnn.options import SWEEP_RETRIES

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
EXAMPLE = """\
example spec (study.toml): 12 points, 3 learning rates x 2 networks x 2 seeds
  epochs = 2
  train_size = 2000
  validation_size = 500
  seeds = 2
  [grid]
  learning_rate = [0.001, 0.003, 0.01]
  arch = ["seed", "wide"]

  scratchcnn sweep study.toml                      # into runs/study/, one process per core
  scratchcnn sweep study.toml --final              # then train the best on train+validation and test it once
  scratchcnn sweep study.toml --scheduler tcp://10.0.0.5:8786   # on a Dask cluster

A [random] table draws configurations instead: draws = 8, learning_rate = { log_uniform = [1e-4, 0.1] },
batch_size = [1, 8, 32] (a list: one of its values). See README, "Studies"."""


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "sweep", help="a study: train every point of a grid or random draws of train's options, in parallel",
        description="Train one network per point of SPEC (a TOML file: train's options fixed, in a [grid] and/or "
        "drawn in a [random] table, each configuration with `seeds` seeds) and compare them on validation "
        "records; the test set is used once, for the best configuration, with --final. Each finished point is "
        "added to DIR/sweep.jsonl as it finishes: run the same command again to continue after a crash or "
        "Ctrl-C (only the missing points run). Writes summary.csv (mean and std over seeds per "
        "configuration), best.json and the figures into DIR.\n\n" + EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", type=Path, metavar="SPEC", help="the study, a TOML file (see above)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="the sweep's folder (default: runs/<SPEC's name>)")
    parser.add_argument("--jobs", type=positive_int, metavar="N",
                        help="local worker processes (default: one per core, one BLAS thread each)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=os.environ.get(SCHEDULER_ENV) or None,
                        help=f"run the points on the Dask cluster whose scheduler is at ADDRESS, e.g. "
                        f"tcp://10.0.0.5:8786 (default: ${SCHEDULER_ENV} if set, else local processes; "
                        "needs pip install 'scratchcnn[cluster]')")
    parser.add_argument("--retries", type=natural_int, default=SWEEP_RETRIES, metavar="N",
                        help="runs more of a point whose worker died, before it is recorded as failed "
                        f"(default: {SWEEP_RETRIES})")
    parser.add_argument("--restart", action="store_true", help="forget DIR's finished points and run them all")
    parser.add_argument("--final", action="store_true", help="train the best configuration on training + "
                        "validation records and test it once (DIR/final/, a run folder)")
    add_data_options(parser, dataset=False)  # cluster workers read the folder the client found, by its path
    add_json_option(parser)
    parser.set_defaults(run=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    from scratchcnn.train.sweep_spec import read_spec
    from scratchcnn.train.sweeps import sweep

    plan = read_spec(args.spec)  # a bad spec: one line, before anything runs
    out = args.out or Path("runs") / args.spec.stem
    try:
        result = sweep(plan, out, data_dir=args.data_dir, download=args.download, jobs=args.jobs,
                       scheduler=args.scheduler, retries=args.retries, restart=args.restart, final=args.final,
                       progress=show_progress(args), warn=_warn)
    except KeyboardInterrupt:
        print(f"scratchcnn: interrupted; the finished points are kept in {out / 'sweep.jsonl'}. Continue with: "
              f"scratchcnn sweep {args.spec} --out {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    _draw(out, result)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
        print(f"wrote {out / 'sweep.jsonl'}, summary.csv, best.json and the figures")
    return 0


def _warn(message: str) -> None:
    print(f"scratchcnn: warning: {message}", file=sys.stderr)


def _draw(out: Path, result: dict[str, Any]) -> None:
    from scratchcnn.train.sweep_store import SweepFolder
    from scratchcnn.viz.sweep_figures import sweep_figures

    sweep_figures(SweepFolder(out).read(), result, out)


def print_table(result: dict[str, Any], top: int = 10) -> None:
    """The configurations, best first by the sweep's metric: what varies, mean ± std over seeds."""
    from scratchcnn.train.sweep_summary import varying

    rows, metric = result["configurations"], result["metric"]
    shown = varying(rows) or sorted({name for row in rows for name in row["configuration"]})[:3]
    sign = -1 if metric.endswith("accuracy") else 1
    ranked = sorted(rows, key=lambda r: (r[f"{metric}_mean"] is None, sign * (r[f"{metric}_mean"] or 0)))
    print(f"{result['points']} points: {result['ok']} ok, {result['diverged']} diverged, {result['failed']} failed; "
          f"{len(rows)} configurations, by {metric.replace('_', ' ')} (mean ± std over seeds)")
    print("  ".join([*(f"{name:>14}" for name in shown), f"{metric.replace('_', ' '):>22}", "s/epoch"]))
    for row in ranked[:top]:
        mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
        value = "diverged" if mean is None else f"{mean:.4f} ± {std:.4f}"
        seconds = row["seconds_per_epoch_mean"]
        print("  ".join([*(f"{row['configuration'].get(name, '-')!s:>14}" for name in shown), f"{value:>22}",
                         "-" if seconds is None else f"{seconds:7.2f}"]))
    if len(ranked) > top:
        print(f"... and {len(ranked) - top} more in summary.csv")
    final = result.get("final")
    if final:
        print(f"best configuration trained on training + validation records: test accuracy "
              f"{final['test_accuracy']:.4f} ({final['model']})")
