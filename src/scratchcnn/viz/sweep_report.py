"""``scratchcnn report DIR`` on a sweep's folder: one self-contained HTML page about the sweep.

The counts, the configurations best first, the best one (and its test accuracy when ``--final`` tested it)
and the sweep's three figures as PNG data: URIs, in the run report's style (report.py). The folder is
only read: a torn last line of sweep.jsonl (a sweep still running, or stopped while writing) is left out
here and repaired by the sweep when it runs again.
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any

from scratchcnn._version import __version__
from scratchcnn.errors import DataError
from scratchcnn.files import write_text_atomically
from scratchcnn.train.rundir import RunDir
from scratchcnn.train.sweep_spec import METRICS
from scratchcnn.train.sweep_store import BEST, RESULTS
from scratchcnn.train.sweep_summary import summarise, varying
from scratchcnn.viz.html import STYLE, figure_html, fmt, pct, table
from scratchcnn.viz.sweep_figures import DEFAULT_METRIC, ranked, sweep_figure_bytes

CAPTIONS = {
    "metric": "The mean {metric} of each configuration against its learning rate (or, when the rate does not "
              "vary, the first option that does), one colour per value of the other varying options; error bars: "
              "the standard deviation over the seeds. A red x below the values: a seed diverged or failed.",
    "time": "Mean validation accuracy against mean seconds per epoch, a dot per configuration. The red line is "
            "the Pareto front: the configurations that no other beats by being both faster and at least as "
            "accurate. The star is the most accurate.",
    "curves": "Validation accuracy after each epoch (mean over seeds) of the best configurations by {metric}.",
}


def is_sweep_folder(path: str | os.PathLike) -> bool:
    """A folder written by ``scratchcnn sweep``: it holds sweep.jsonl, and no model.npz (a run's)."""
    return (Path(path) / RESULTS).is_file() and not (Path(path) / RunDir.MODEL).exists()


def read_records(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """(sweep.jsonl's records, whether a torn or unreadable last line was left out); a bad earlier line:
    DataError (damage no crash makes)."""
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from None
    records, torn = [], False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("options"), dict) and "status" in record:
            records.append(record)
        elif any(later.strip() for later in lines[number:]):
            raise DataError(f"{path}: line {number} is not a point's record; the file is damaged")
        else:
            torn = True
    return records, torn


def read_best(path: Path) -> tuple[str, dict[str, Any] | None]:
    """(the sweep's metric, its final test result or None) from best.json; no file: the default metric."""
    try:
        best = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DEFAULT_METRIC, None
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    metric = best.get("metric", DEFAULT_METRIC) if isinstance(best, dict) else None
    if metric not in METRICS:
        raise DataError(f"{path}: metric must be one of {', '.join(METRICS)}, got {metric!r}")
    final = best.get("final")
    return metric, final if isinstance(final, dict) and "test_accuracy" in final else None


def write_sweep_report(folder: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the sweep folder's page (default FOLDER/report.html), atomically; returns its path."""
    folder = Path(folder)
    if not is_sweep_folder(folder):
        raise DataError(f"{folder}: not a sweep's folder (no {RESULTS}, or it holds a run's {RunDir.MODEL})")
    records, torn = read_records(folder / RESULTS)
    metric, final = read_best(folder / BEST)
    try:
        rows = summarise(records)
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{folder / RESULTS}: not a sweep's records ({error!r})") from None
    figures = sweep_figure_bytes(rows, metric)
    words = metric.replace("_", " ")
    body = [
        f"<h1>scratchcnn sweep: {escape(folder.resolve().name)}</h1>",
        f"<p>{escape(_counts(records, rows, words))}</p>",
        f'<p class="note">The last line of {RESULTS} is torn (the sweep is running, or was stopped while '
        "writing it); that point is left out.</p>" if torn else "",
        "<h2>Configurations, best first</h2>", _configurations_table(rows, metric),
        _fixed_options(rows),
        "<h2>The best configuration</h2>", _best_section(ranked(rows, metric)[:1], final, words),
        "<h2>Figures</h2>",
        *(figure_html(png, CAPTIONS[key].format(metric=words)) for key, png in figures.items()),
        f"<p><small>Written by scratchcnn {escape(__version__)}.</small></p>",
    ]
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>scratchcnn sweep: {escape(folder.resolve().name)}</title>\n<style>{STYLE}</style>\n"
            "</head>\n<body>\n" + "\n".join(part for part in body if part) + "\n</body>\n</html>\n")
    return write_text_atomically(Path(out) if out is not None else folder / RunDir.REPORT, page)


def _counts(records: list[dict[str, Any]], rows: list[dict[str, Any]], metric_words: str) -> str:
    statuses = [record["status"] for record in records]
    better = "higher" if metric_words.endswith("accuracy") else "lower"
    return (f"{len(records)} points ({len(rows)} configurations × their seeds): {statuses.count('ok')} finished, "
            f"{statuses.count('diverged')} diverged, {statuses.count('failed')} failed. Each point trained one "
            "network and was scored on validation records only; a configuration's numbers are the mean ± standard "
            f"deviation over its seeds that finished. The configurations are compared by {metric_words} "
            f"({better} is better).")


def _mean_std(row: dict[str, Any], name: str) -> str:
    mean, std = row[f"{name}_mean"], row[f"{name}_std"]
    if mean is None:
        return "–"
    return f"{pct(mean)} ± {pct(std)}" if name.endswith("accuracy") else f"{mean:.4f} ± {std:.4f}"


def _shown_options(rows: list[dict[str, Any]]) -> list[str]:
    """The varying options; with only one configuration, its options (a table needs a column to name it)."""
    return varying(rows) or list(dict.fromkeys(name for row in rows for name in row["configuration"]))


def _configurations_table(rows: list[dict[str, Any]], metric: str) -> str:
    """Ranked by the metric (the best highlighted), then those with no finished seed."""
    names = _shown_options(rows)
    scored = ranked(rows, metric)
    ordered = scored + [row for row in rows if row not in scored]
    other = next(name for name in METRICS if name != metric)
    header = ["rank", *names, f"{metric.replace('_', ' ')} (mean ± std)", f"{other.replace('_', ' ')} (mean ± std)",
              "seconds per epoch", "seeds", "finished", "diverged", "failed"]
    cells = [[str(n + 1) if n < len(scored) else "–", *(fmt(row["configuration"].get(name)) for name in names),
              _mean_std(row, metric), _mean_std(row, other), fmt(row["seconds_per_epoch_mean"], ".3f"),
              ", ".join(map(str, row["seeds"])), str(row["ok"]), str(row["diverged"]), str(row["failed"])]
             for n, row in enumerate(ordered)]
    return table(header, cells, numeric_from=1 + len(names), best=0 if scored else None)


def _fixed_options(rows: list[dict[str, Any]]) -> str:
    """The options every configuration shares, in one line (what the table leaves out)."""
    shown = set(_shown_options(rows))
    fixed = {name: value for name, value in (rows[0]["configuration"] if rows else {}).items() if name not in shown}
    if not fixed:
        return ""
    return f"<p>The same for every point: {escape(', '.join(f'{k} = {fmt(v)}' for k, v in fixed.items()))}.</p>"


def _best_section(best: list[dict[str, Any]], final: dict[str, Any] | None, metric_words: str) -> str:
    if not best:
        return '<p class="note">No configuration has a finished point.</p>'
    row = best[0]
    options = [[name, fmt(value)] for name, value in row["configuration"].items()]
    scores = [[name.replace("_", " "), _mean_std(row, name)]
              for name in ("validation_accuracy", "validation_loss", "train_accuracy")]
    parts = [f"<p>Best by {escape(metric_words)}, over the seeds {escape(', '.join(map(str, row['seeds'])))}:</p>",
             table(["option", "value"], options, numeric_from=2), table(["", "mean ± std over seeds"], scores)]
    trained = (final or {}).get("options") or {}
    if final and all(trained.get(k) == v for k, v in row["configuration"].items() if k != "validation_size"):
        loss, model = fmt(final.get("test_loss"), ".4f"), str(final.get("model", "–"))
        parts.append(f"<p>Trained once more on the training and validation records and tested once: test accuracy "
                     f"<b>{escape(pct(final['test_accuracy']))}</b>, test loss {escape(loss)} (model: "
                     f"{escape(model)}).</p>")
    else:
        parts.append('<p class="note">Not tested: <code>scratchcnn sweep SPEC --out DIR --final</code> trains it on '
                     "the training and validation records and tests it once on the test set.</p>")
    return "\n".join(parts)
