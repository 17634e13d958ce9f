"""Pictures of a sweep (``scratchcnn sweep``), drawn with matplotlib from sweep_summary's rows: the metric
against the learning rate, accuracy against time per epoch, and the curves of the best configurations.

A row is one configuration: each metric's mean and std over its seeds that finished. A configuration with
a diverged or failed point gets a red x below the values; labels name only the options the sweep varies.
The same rows give the same bytes (figure_bytes drops the Software metadata).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, PercentFormatter

from scratchcnn.files import write_atomically
from scratchcnn.train.sweep_summary import pareto_front, summarise, varying
from scratchcnn.viz.figures import figures_bytes, integer_ticks, new_figure, series

FIGURE_FILES = {"metric": "sweep-metric.png", "time": "sweep-time.png", "curves": "sweep-curves.png"}
TITLES = {"metric": "The metric per configuration", "time": "Accuracy against time per epoch",
          "curves": "Validation accuracy after each epoch"}
DEFAULT_METRIC = "validation_accuracy"
SYMBOLS = {"learning_rate": "η"}  # short names in labels
Row = dict[str, Any]


def label(row: Row, names: Sequence[str]) -> str:
    """The row's values of ``names``, e.g. "η=0.01, arch=wide"; "all points" when there are none."""
    text = ", ".join(f"{SYMBOLS.get(name, name)}={value_text(row['configuration'].get(name))}" for name in names)
    return text or "all points"


def value_text(value: Any) -> str:
    """An option's value as labels show it (None: the option was left at its default)."""
    if value is None:
        return "default"
    return f"{value:g}" if isinstance(value, float) else str(value)


def ranked(rows: Sequence[Row], metric: str) -> list[Row]:
    """The rows with a mean ``metric``, best first (highest accuracy, lowest loss); ties keep their order."""
    sign = -1 if metric.endswith("accuracy") else 1
    return sorted((row for row in rows if row[f"{metric}_mean"] is not None), key=lambda r: sign * r[f"{metric}_mean"])


def timed_rows(rows: Sequence[Row]) -> list[Row]:
    """The rows with a mean validation accuracy and a mean time per epoch above 0 (a log axis has no 0)."""
    return [row for row in rows if row["validation_accuracy_mean"] is not None
            and (row["seconds_per_epoch_mean"] or 0) > 0]


def front_rows(rows: Sequence[Row]) -> list[Row]:
    """The Pareto front of (seconds per epoch, validation accuracy), fastest first: the rows no other row
    beats by being faster and at least as accurate. Rows outside timed_rows have no place on it."""
    timed = timed_rows(rows)
    pairs = [(row["seconds_per_epoch_mean"], row["validation_accuracy_mean"]) for row in timed]
    return [timed[i] for i in pareto_front(pairs)]


def _metric_axis(ax: Any, metric: str, what: str = "mean ± std over seeds") -> None:
    ax.set_ylabel(f"{metric.replace('_', ' ')} ({what})")
    if metric.endswith("accuracy"):
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
    ax.grid(alpha=0.3)
    entries = len(ax.get_legend_handles_labels()[0])  # beyond a few, a legend inside would hide points
    if entries:
        ax.legend(fontsize=8, **({"loc": "center left", "bbox_to_anchor": (1.01, 0.5)} if entries > 4 else {}))


def _log_x(ax: Any, at: Sequence[float] | None = None) -> None:
    """A log x axis labelled in plain numbers (0.02, not 2×10⁻²): at ``at``, else at 1×, (2×, 5×,) 10ⁿ,
    whichever first gives three ticks (every n×10ⁿ in a narrow range)."""
    ax.set_xscale("log")
    low, high = ax.get_xlim()
    ticks = list(at or [])
    for subs in () if at else ((1,), (1, 2, 5), range(1, 10)):
        decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        ticks = [m * 10.0 ** e for e in decades for m in subs if low <= m * 10.0 ** e <= high]
        if len(ticks) >= 3:
            break
    ax.set_xticks(ticks, [f"{tick:g}" for tick in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(low, high)


def note_figure(title: str, text: str) -> Figure:
    """A figure holding only a centred note: what a sweep with nothing to draw gets."""
    fig = new_figure(7.2, 3.6)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=12, wrap=True)
    fig.suptitle(title)
    return fig


def plot_metric_vs_rate(rows: Sequence[Row], metric: str) -> Figure:
    """Mean ``metric`` (± std over seeds) against the learning rate (log axis), a line per value of the other
    varying options; without a varying learning rate, against the first varying option as categories."""
    names = varying(rows)
    x_name, x, ticks = _x_axis(rows, names)
    others = [name for name in names if name != x_name]
    fig = new_figure(8.4, 4.8)
    ax = fig.add_subplot()
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(label(row, others), []).append(i)
    on_rate = x_name == "learning_rate"
    for n, (name, members) in enumerate(groups.items()):
        for i in members:  # categories: the groups side by side, not on top of each other
            x[i] += 0.0 if on_rate else 0.12 * (n - (len(groups) - 1) / 2)
        done = sorted((i for i in members if rows[i][f"{metric}_mean"] is not None), key=lambda i: x[i])
        if done:
            ax.errorbar([x[i] for i in done], [rows[i][f"{metric}_mean"] for i in done],
                        yerr=[rows[i][f"{metric}_std"] for i in done], fmt="o-" if on_rate else "o", capsize=3,
                        color=f"C{n % 10}", label=name if others else metric.replace("_", " "))
    for row in ranked(rows, metric)[:1]:
        ax.plot(x[rows.index(row)], row[f"{metric}_mean"], "*", color="gold", markeredgecolor="black",
                markersize=16, zorder=5, label=f"best: {label(row, names)}")
    _mark_lost(ax, rows, x)
    if on_rate:
        _log_x(ax, sorted(set(x)) if len(set(x)) <= 8 else None)
        ax.set_xlabel("learning rate η (log scale)")
    else:
        ax.set_xticks(range(len(ticks)), ticks)
        ax.set_xlabel(x_name or "the one configuration")
    _metric_axis(ax, metric)
    fig.suptitle(f"{metric.replace('_', ' ').capitalize()} per {(x_name or 'sweep').replace('_', ' ')}"
                 f" ({'higher' if metric.endswith('accuracy') else 'lower'} is better)")
    return fig


def _x_axis(rows: Sequence[Row], names: Sequence[str]) -> tuple[str | None, list[float], list[str]]:
    """(the option on the x axis, each row's x, category labels): the learning rate when it varies and every
    configuration gives it, else the first varying option as categories 0, 1, ... in order of appearance."""
    rates = [row["configuration"].get("learning_rate") for row in rows]
    if "learning_rate" in names and all(isinstance(rate, (int, float)) for rate in rates):
        return "learning_rate", [float(rate) for rate in rates], []
    x_name = names[0] if names else None
    values = [json.dumps(row["configuration"].get(x_name)) for row in rows]
    categories = list(dict.fromkeys(values))
    labels = [value_text(json.loads(value)) for value in categories] if x_name else ["all points"]
    return x_name, [float(categories.index(value)) for value in values], labels


def _mark_lost(ax: Any, rows: Sequence[Row], x: Sequence[float]) -> None:
    """A red x in a shaded strip below the values for each configuration with a diverged or failed point."""
    lost = [i for i, row in enumerate(rows) if row["diverged"] or row["failed"]]
    if not lost:
        return
    low, high = ax.get_ylim() if ax.has_data() else (0.0, 1.0)
    bottom = low - 0.15 * (high - low)
    ax.set_yticks([t for t in ax.get_yticks() if low <= t <= high])  # no metric ticks in the strip
    ax.set_ylim(bottom, high)
    ax.axhspan(bottom, low - 0.03 * (high - low), color="red", alpha=0.07, linewidth=0)
    ax.plot([x[i] for i in lost], np.full(len(lost), (bottom + low) / 2 - 0.015 * (high - low)), "x", color="red",
            markersize=10, markeredgewidth=2.5, label="a seed diverged or failed")


def plot_accuracy_vs_time(rows: Sequence[Row]) -> Figure:
    """Mean validation accuracy against mean seconds per epoch (log axis), a dot per configuration; the Pareto
    front (faster and at least as accurate) as a line, the most accurate configuration starred and labelled."""
    names, timed, front = varying(rows), timed_rows(rows), front_rows(rows)
    seconds, accuracy = "seconds_per_epoch_mean", "validation_accuracy_mean"
    fig = new_figure(8.4, 4.8)
    ax = fig.add_subplot()
    if timed:
        ax.errorbar([r[seconds] for r in timed], [r[accuracy] for r in timed], fmt="o", color="C0", ecolor="0.7",
                    yerr=[r["validation_accuracy_std"] for r in timed], capsize=2, label="a configuration "
                    "(error bar: std over seeds)")
        ax.plot([r[seconds] for r in front], [r[accuracy] for r in front], "o-", drawstyle="steps-post", color="C3",
                linewidth=2, label="Pareto front: none is both faster and at least as accurate")
        best = ranked(timed, "validation_accuracy")[0]
        for row in front:
            if row is not best:  # the best is named in the legend
                ax.annotate(label(row, names), (row[seconds], row[accuracy]), xytext=(5, -12),
                            textcoords="offset points", fontsize=8, color="C3")
        ax.plot(best[seconds], best[accuracy], "*", color="gold", markeredgecolor="black", markersize=16, zorder=5,
                label=f"best: {label(best, names)} ({best[accuracy]:.1%})")
        _log_x(ax)
    else:
        ax.text(0.5, 0.5, "no configuration finished", transform=ax.transAxes, ha="center")
    ax.set_xlabel("seconds per epoch (mean over seeds, log scale)")
    _metric_axis(ax, "validation_accuracy", "mean over seeds")
    fig.suptitle("Validation accuracy against training time per epoch")
    return fig


def plot_top_curves(rows: Sequence[Row], metric: str, top: int = 5) -> Figure:
    """Validation accuracy after each epoch (mean over seeds) of the ``top`` best configurations by ``metric``."""
    names = varying(rows)
    chosen = [row for row in ranked(rows, metric) if any(v is not None for v in row["curve_mean"])][:top]
    fig = new_figure(8.4, 4.8)
    ax = fig.add_subplot()
    for n, row in enumerate(chosen):
        curve = series(row["curve_mean"])
        ax.plot(np.arange(1, len(curve) + 1), curve, marker="o", color=f"C{n % 10}", linewidth=2.5 if n == 0 else 1.5,
                label=f"{n + 1}. {label(row, names)}")
    if not chosen:
        ax.text(0.5, 0.5, "no configuration finished", transform=ax.transAxes, ha="center")
    ax.set_xlabel("epoch")
    integer_ticks(ax, y=False)
    _metric_axis(ax, "validation_accuracy", "mean over seeds")
    fig.suptitle(f"Validation accuracy after each epoch: the {len(chosen)} best configurations by "
                 f"{metric.replace('_', ' ')}")
    return fig


def sweep_figure_set(rows: Sequence[Row], metric: str = DEFAULT_METRIC) -> dict[str, Figure]:
    """The three figures by FIGURE_FILES key; each a centred note when no point finished."""
    if not any(row["ok"] for row in rows):
        points, diverged, failed = (sum(row[key] for row in rows) for key in ("points", "diverged", "failed"))
        why = f"No point finished: of {points}, {diverged} diverged and {failed} failed." if points \
            else "No point has finished yet."
        return {key: note_figure(TITLES[key], why) for key in FIGURE_FILES}
    return {"metric": plot_metric_vs_rate(rows, metric), "time": plot_accuracy_vs_time(rows),
            "curves": plot_top_curves(rows, metric)}


def sweep_figure_bytes(rows: Sequence[Row], metric: str = DEFAULT_METRIC) -> dict[str, bytes]:
    """The three figures as PNG bytes by key, rendered in parallel where the machine can (figures_bytes)."""
    return figures_bytes(sweep_figure_set(rows, metric), "png")


def sweep_figures(records: Sequence[dict[str, Any]], result: dict[str, Any], out_dir: str | os.PathLike
                  ) -> dict[str, Path]:
    """Write the three figures as out_dir/<FIGURE_FILES[key]>; their paths by key.

    ``result``: the sweep's summary (its ``configurations`` rows and ``metric``); without rows, they are
    summarised from ``records`` (sweep.jsonl's points).
    """
    rows = result.get("configurations")
    drawn = sweep_figure_bytes(summarise(records) if rows is None else rows, result.get("metric") or DEFAULT_METRIC)
    return {key: write_atomically(Path(out_dir) / FIGURE_FILES[key], lambda fh, data=data: fh.write(data))
            for key, data in drawn.items()}
