"""A sweep's folder (train/sweep_store.py) and its summary (train/sweep_summary.py).

sweep.jsonl holds one finished point a line: what is appended reads back; a crash's torn last line is cut
off with one warning; damage before the last line is a DataError; a folder that cannot be written is a
WriteError. The summary is checked on hand-made records: means and standard deviations over seeds,
diverged and failed points counted and left out, the best configuration, summary.csv, what varies and
the Pareto front of time against accuracy.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scratchcnn.errors import DataError, WriteError
from scratchcnn.train.sweep_spec import point_key
from scratchcnn.train.sweep_store import SweepFolder
from scratchcnn.train.sweep_summary import (
    METRIC_COLUMNS,
    best_row,
    pareto_front,
    summarise,
    summary_csv,
    varying,
)


def record(seed: int = 0, status: str = "ok", accuracy: float | None = 0.9, loss: float | None = 0.3,
           curve: tuple[float, ...] = (0.5, 0.9), **configuration: Any) -> dict[str, Any]:
    """A point's record as sweep_run writes it (the fields the summary reads)."""
    options = {"epochs": 2, **configuration, "seed": seed}
    return {"key": point_key(options), "options": options, "status": status,
            "validation_accuracy": accuracy, "validation_loss": loss,
            "train_accuracy": None if accuracy is None else min(1.0, accuracy + 0.05),
            "seconds_per_epoch": 2.0, "epochs": [{"validation_accuracy": a} for a in curve]}


def line(rec: dict[str, Any]) -> bytes:
    return (json.dumps(rec) + "\n").encode()


class Warnings(list):
    """A ``warn`` that keeps what it is told."""

    def __call__(self, message: str) -> None:
        self.append(message)


@pytest.fixture
def folder(tmp_path: Path) -> SweepFolder:
    return SweepFolder(tmp_path / "sweep")


# ---- sweep.jsonl ------------------------------------------------------------------------------------------


def test_appended_records_read_back_in_order(folder: SweepFolder) -> None:
    records = [record(seed=s, learning_rate=0.01) for s in range(3)]
    records[1]["note"] = {"nested": [1, None, "é"]}
    for rec in records:
        folder.append(rec)
    warnings = Warnings()
    assert folder.read(warnings) == records
    assert warnings == []
    assert folder.results.read_bytes().count(b"\n") == 3  # one line per record, each ended


def test_append_makes_the_folder(tmp_path: Path) -> None:
    folder = SweepFolder(tmp_path / "a" / "b")
    folder.append(record())
    assert folder.results == tmp_path / "a" / "b" / "sweep.jsonl"
    assert len(folder.read()) == 1


def test_a_folder_without_sweep_jsonl_has_no_records(folder: SweepFolder) -> None:
    assert folder.read() == []
    assert not folder.path.exists()


TORN = {  # what a crash leaves after two whole records: id → the last bytes
    "no-newline": b'{"key": "0123", "options": {"seed"',
    "whole-record-no-newline": line(record(seed=9))[:-1],
    "not-json": b"\x00\x00\x00garbage\n",
    "json-not-a-record": b"[1, 2, 3]\n",
    "record-without-key": b'{"options": {}}\n',
}


@pytest.mark.parametrize("tail", TORN.values(), ids=TORN.keys())
def test_a_torn_last_line_is_cut_off_with_one_warning(folder: SweepFolder, tail: bytes) -> None:
    records = [record(seed=0), record(seed=1)]
    for rec in records:
        folder.append(rec)
    whole = folder.results.read_bytes()
    folder.results.write_bytes(whole + tail)
    warnings = Warnings()
    assert folder.read(warnings) == records
    assert len(warnings) == 1
    assert "sweep.jsonl" in warnings[0] and "line 3" in warnings[0]
    assert folder.results.read_bytes() == whole  # cut off the file, not only skipped
    again = Warnings()
    assert folder.read(again) == records and again == []
    folder.append(record(seed=2))  # the next point starts on a line of its own
    assert [r["options"]["seed"] for r in folder.read()] == [0, 1, 2]


def test_a_torn_only_line_leaves_an_empty_file(folder: SweepFolder) -> None:
    folder.path.mkdir()
    folder.results.write_bytes(b'{"key": "01')
    warnings = Warnings()
    assert folder.read(warnings) == []
    assert len(warnings) == 1 and "line 1" in warnings[0]
    assert folder.results.read_bytes() == b""


@pytest.mark.parametrize("damage", [b"garbage\n", b"\n", b'{"no": "key"}\n'], ids=["garbage", "blank", "no-key"])
def test_a_damaged_line_before_the_last_is_a_data_error(folder: SweepFolder, damage: bytes) -> None:
    folder.path.mkdir()
    content = line(record(seed=0)) + damage + line(record(seed=1))
    folder.results.write_bytes(content)
    warnings = Warnings()
    with pytest.raises(DataError, match=r"line 2") as caught:
        folder.read(warnings)
    assert "sweep.jsonl" in str(caught.value) and "\n" not in str(caught.value)
    assert folder.results.read_bytes() == content  # damage nobody's crash made is not repaired silently
    assert warnings == []


def test_restart_removes_the_results_and_what_was_made_from_them(folder: SweepFolder) -> None:
    folder.append(record())
    folder.summary.write_text("a,b\n")
    folder.best.write_text("{}")
    folder.restart()
    assert not folder.results.exists() and not folder.summary.exists() and not folder.best.exists()
    assert folder.read() == []
    folder.restart()  # nothing left to remove: no error
    SweepFolder(folder.path / "never-made").restart()


def test_append_where_the_folder_cannot_be_made_is_a_write_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    folder = SweepFolder(blocker / "sweep")  # fails for root too: no folder can be made inside a file
    with pytest.raises(WriteError) as caught:
        folder.append(record())
    message = str(caught.value)
    assert str(folder.results) in message and "\n" not in message
    assert blocker.read_text() == "not a folder"


# ---- summary ----------------------------------------------------------------------------------------------


def study() -> list[dict[str, Any]]:
    """Three configurations: two ok seeds; one ok, one diverged, one failed; all failed."""
    return [
        record(seed=0, accuracy=0.8, loss=0.5, curve=(0.5, 0.8), learning_rate=0.01),
        record(seed=0, accuracy=0.6, loss=0.9, curve=(0.4, 0.6), learning_rate=0.1),
        record(seed=1, accuracy=0.9, loss=0.3, curve=(0.7, 0.9), learning_rate=0.01),
        record(seed=1, status="diverged", accuracy=0.99, loss=0.01, curve=(0.99,), learning_rate=0.1),
        record(seed=2, status="failed", accuracy=None, loss=None, curve=(), learning_rate=0.1),
        record(seed=0, status="failed", accuracy=None, loss=None, curve=(), learning_rate=1.0),
    ]


def row_of(rows: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    (row,) = [row for row in rows if row["configuration"]["learning_rate"] == rate]
    return row


def test_summarise_gives_one_row_per_configuration_in_order_of_first_point() -> None:
    rows = summarise(study())
    assert [row["configuration"]["learning_rate"] for row in rows] == [0.01, 0.1, 1.0]
    assert all("seed" not in row["configuration"] for row in rows)
    assert [row["seeds"] for row in rows] == [[0, 1], [0, 1, 2], [0]]


def test_summarise_means_and_stds_over_the_ok_seeds() -> None:
    row = row_of(summarise(study()), 0.01)
    assert (row["points"], row["ok"], row["diverged"], row["failed"]) == (2, 2, 0, 0)
    assert row["validation_accuracy_mean"] == pytest.approx(0.85)
    assert row["validation_accuracy_std"] == pytest.approx(0.05)  # over the seeds, ddof 0
    assert row["validation_loss_mean"] == pytest.approx(0.4)
    assert row["validation_loss_std"] == pytest.approx(0.1)
    assert row["train_accuracy_mean"] == pytest.approx(0.9)
    assert row["seconds_per_epoch_mean"] == pytest.approx(2.0) and row["seconds_per_epoch_std"] == 0.0
    assert row["curve_mean"] == pytest.approx([0.6, 0.85])


def test_summarise_counts_diverged_and_failed_and_leaves_them_out_of_the_means() -> None:
    row = row_of(summarise(study()), 0.1)
    assert (row["points"], row["ok"], row["diverged"], row["failed"]) == (3, 1, 1, 1)
    assert row["validation_accuracy_mean"] == pytest.approx(0.6)  # not the diverged point's 0.99
    assert row["validation_accuracy_std"] == 0.0
    assert row["validation_loss_mean"] == pytest.approx(0.9)
    assert row["curve_mean"] == pytest.approx([0.4, 0.6])
    nothing = row_of(summarise(study()), 1.0)
    assert (nothing["ok"], nothing["failed"]) == (0, 1)
    assert all(nothing[f"{name}_{stat}"] is None for name in METRIC_COLUMNS for stat in ("mean", "std"))
    assert nothing["curve_mean"] == []


def test_mean_curve_of_seeds_with_different_lengths() -> None:
    records = [record(seed=0, curve=(0.2, 0.4, 0.6)), record(seed=1, curve=(0.4,))]  # seed 1 stopped early
    (row,) = summarise(records)
    assert row["curve_mean"] == pytest.approx([0.3, 0.4, 0.6])


def test_best_row_by_accuracy_is_the_highest_and_by_loss_the_lowest() -> None:
    rows = summarise(study())
    assert best_row(rows, "validation_accuracy")["configuration"]["learning_rate"] == 0.01
    assert best_row(rows, "validation_loss")["configuration"]["learning_rate"] == 0.01
    rows = summarise([record(accuracy=0.7, loss=0.2, learning_rate=0.1),
                      record(accuracy=0.9, loss=0.5, learning_rate=0.01)])
    assert best_row(rows, "validation_accuracy")["configuration"]["learning_rate"] == 0.01
    assert best_row(rows, "validation_loss")["configuration"]["learning_rate"] == 0.1


def test_best_row_ties_go_to_the_first() -> None:
    rows = summarise([record(accuracy=0.9, loss=0.3, learning_rate=rate) for rate in (0.1, 0.01, 0.001)])
    assert best_row(rows, "validation_accuracy")["configuration"]["learning_rate"] == 0.1
    assert best_row(rows, "validation_loss")["configuration"]["learning_rate"] == 0.1


def test_best_row_without_any_ok_point_is_none() -> None:
    rows = summarise([record(status="failed", accuracy=None, loss=None, curve=(), learning_rate=0.1)])
    assert best_row(rows, "validation_accuracy") is None
    assert best_row([], "validation_loss") is None


def test_summary_csv_has_the_options_counts_and_metrics_one_row_per_configuration() -> None:
    rows = summarise(study())
    table = list(csv.reader(io.StringIO(summary_csv(rows))))
    metrics = [f"{name}_{stat}" for name in METRIC_COLUMNS for stat in ("mean", "std")]
    assert table[0] == ["epochs", "learning_rate", "seeds", "ok", "diverged", "failed", *metrics]
    assert len(table) == 1 + 3
    first = dict(zip(table[0], table[1], strict=True))
    assert (first["learning_rate"], first["seeds"], first["ok"]) == ("0.01", "2", "2")
    assert float(first["validation_accuracy_mean"]) == pytest.approx(0.85)
    last = dict(zip(table[0], table[3], strict=True))
    assert (last["learning_rate"], last["failed"], last["validation_accuracy_mean"]) == ("1.0", "1", "")


def test_summary_csv_leaves_an_option_a_configuration_lacks_empty() -> None:
    rows = summarise([record(learning_rate=0.1), record(learning_rate=0.1, arch="wide")])
    table = list(csv.reader(io.StringIO(summary_csv(rows))))
    assert table[0][:3] == ["epochs", "learning_rate", "arch"]
    assert [r[2] for r in table[1:]] == ["", "wide"]


def test_varying_names_the_options_that_differ() -> None:
    rows = summarise([record(learning_rate=0.1, arch="seed"), record(learning_rate=0.01, arch="seed"),
                      record(learning_rate=0.01, arch="seed", batch_size=8)])
    assert varying(rows) == ["learning_rate", "batch_size"]  # epochs and arch are the same everywhere
    assert varying(rows[:1]) == []


def test_pareto_front_of_a_hand_made_set() -> None:
    points = [(1.0, 0.5), (2.0, 0.9), (3.0, 0.8), (0.5, 0.4), (2.0, 0.7), (4.0, 0.95), (1.0, 0.5)]
    # 2 is slower and less accurate than 1; 4 as fast as 1 and less accurate; 6 repeats 0
    assert sorted(pareto_front(points)) == [0, 1, 3, 5]
    assert pareto_front([]) == []
    assert pareto_front([(3.0, 0.1)]) == [0]


def test_pareto_front_matches_its_definition_on_random_points() -> None:
    rng = np.random.default_rng(0)
    points = [(float(s), float(a)) for s, a in zip(rng.uniform(1, 10, 200), rng.uniform(0, 1, 200), strict=True)]
    beaten = {i for i, (s, a) in enumerate(points)
              if any(t <= s and b >= a for j, (t, b) in enumerate(points) if j != i)}
    assert sorted(pareto_front(points)) == sorted(set(range(len(points))) - beaten)
