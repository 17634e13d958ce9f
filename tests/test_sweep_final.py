"""``scratchcnn sweep --final``: the best configuration, chosen on validation records, trained on training +
validation records and tested once; a rerun reads it back instead of training again."""

from __future__ import annotations

import json
from pathlib import Path

from scratchcnn.train.sweeps import sweep

SPEC = """\
epochs = 1
train_size = 1000
validation_size = 200
seeds = 2

[grid]
learning_rate = [0.0001, 0.003]
"""


def test_final_trains_the_best_configuration_on_all_its_records_and_tests_it_once(tmp_path: Path,
                                                                                   data_dir: Path) -> None:
    spec = tmp_path / "study.toml"
    spec.write_text(SPEC)
    result = sweep(spec, tmp_path / "s", data_dir=data_dir, jobs=2, final=True)
    rows = {row["configuration"]["learning_rate"]: row for row in result["configurations"]}
    assert result["best"]["configuration"]["learning_rate"] == 0.003  # 0.0001 learns little in one epoch
    assert rows[0.003]["validation_accuracy_mean"] > rows[0.0001]["validation_accuracy_mean"]
    final = result["final"]
    history = json.loads((tmp_path / "s" / "final" / "history.json").read_text())
    assert final["test_accuracy"] == history["test_accuracy"] > 0.5
    assert history["options"]["validation_size"] == 0 and history["options"]["learning_rate"] == 0.003
    assert history["options"]["train_size"] == 1000 and history["options"]["seed"] == 0
    assert (tmp_path / "s" / "final" / "model.npz").exists()
    assert json.loads((tmp_path / "s" / "best.json").read_text())["final"] == final

    model = tmp_path / "s" / "final" / "model.npz"
    before = model.stat().st_mtime_ns
    again = sweep(spec, tmp_path / "s", data_dir=data_dir, jobs=2, final=True)  # nothing left to run or train
    assert again["final"] == final and model.stat().st_mtime_ns == before
    assert len((tmp_path / "s" / "sweep.jsonl").read_text().splitlines()) == 4
