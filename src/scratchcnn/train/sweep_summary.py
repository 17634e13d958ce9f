"""A sweep's results per configuration: each metric's mean ± standard deviation over its seeds, and the best.

A configuration is a point without its seed. Diverged and failed points count as such and are left out
of the means (a diverged point has no final metric); a configuration with none left has no mean.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scratchcnn.train.sweep_spec import point_key

METRIC_COLUMNS = ("validation_accuracy", "validation_loss", "train_accuracy", "seconds_per_epoch")


def configuration_of(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record["options"].items() if name != "seed"}


def summarise(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per configuration, in the order of their first point: options, seeds, counts, mean and std."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(point_key(configuration_of(record)), []).append(record)
    rows = []
    for members in groups.values():
        good = [r for r in members if r["status"] == "ok"]
        row: dict[str, Any] = {
            "configuration": configuration_of(members[0]),
            "seeds": [r["options"].get("seed") for r in members],
            "points": len(members), "ok": len(good),
            "diverged": sum(r["status"] == "diverged" for r in members),
            "failed": sum(r["status"] == "failed" for r in members),
        }
        for name in METRIC_COLUMNS:
            values = [r[name] for r in good if r.get(name) is not None]
            row[f"{name}_mean"] = float(np.mean(values)) if values else None
            row[f"{name}_std"] = float(np.std(values)) if values else None  # over the seeds (ddof 0)
        row["curve_mean"] = _mean_curve(good)
        rows.append(row)
    return rows


def _mean_curve(records: Sequence[dict[str, Any]]) -> list[float | None]:
    """Validation accuracy after each epoch, averaged over the seeds (None where no seed has it)."""
    curves = [[e["validation_accuracy"] for e in r["epochs"]] for r in records]
    longest = max((len(c) for c in curves), default=0)
    means = []
    for epoch in range(longest):
        values = [c[epoch] for c in curves if epoch < len(c) and c[epoch] is not None]
        means.append(float(np.mean(values)) if values else None)
    return means


def best_row(rows: Sequence[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """The configuration with the best mean ``metric`` (highest accuracy, lowest loss); ties: the first."""
    scored = [row for row in rows if row[f"{metric}_mean"] is not None]
    if not scored:
        return None
    sign = -1 if metric.endswith("accuracy") else 1
    return min(scored, key=lambda row: sign * row[f"{metric}_mean"])


def summary_csv(rows: Sequence[dict[str, Any]]) -> str:
    """summary.csv: the swept options as columns, then counts, then mean and std of each metric."""
    names = list(dict.fromkeys(name for row in rows for name in row["configuration"]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    metrics = [f"{name}_{stat}" for name in METRIC_COLUMNS for stat in ("mean", "std")]
    writer.writerow([*names, "seeds", "ok", "diverged", "failed", *metrics])
    for row in rows:
        options = [_cell(row["configuration"].get(name)) for name in names]
        writer.writerow([*options, row["points"], row["ok"], row["diverged"], row["failed"],
                         *(_cell(row[m]) for m in metrics)])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def varying(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The options whose value differs between configurations (what the sweep studies)."""
    names = list(dict.fromkeys(name for row in rows for name in row["configuration"]))
    return [name for name in names if len({json.dumps(row["configuration"].get(name)) for row in rows}) > 1]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of (seconds, accuracy) pairs no other pair beats on both (faster and at least as accurate)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front
