"""A sweep's spec (train/sweep_spec.py): a TOML file read into points, in a stable order with stable keys,
and every mistake in it refused before anything runs, as one line naming the key.

The specs are written as TOML into tmp_path and read with read_spec, as ``scratchcnn sweep`` reads them;
one check runs the command itself, as a subprocess, for its exit status and its one line on stderr.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from scratchcnn.errors import ConfigError
from scratchcnn.train.sweep_spec import Sweep, point_key, read_spec

GRID = """\
epochs = 2
train_size = 200
seeds = 2
[grid]
learning_rate = [0.001, 0.003, 0.01]
arch = ["seed", "wide"]
"""

RANDOM = """\
epochs = 1
[random]
draws = 6
seed = {seed}
learning_rate = {{ log_uniform = [0.0001, 0.1] }}
batch_size = [1, 8, 32]
"""


def spec_file(folder: Path, text: str, name: str = "study.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def read(folder: Path, text: str) -> Sweep:
    return read_spec(spec_file(folder, text))


def options_of(sweep: Sweep) -> list[dict[str, Any]]:
    return [point.options for point in sweep.points]


def refusal(folder: Path, text: str) -> str:
    """The message of the ConfigError reading ``text`` raises; it must be one line."""
    with pytest.raises(ConfigError) as caught:
        read(folder, text)
    message = str(caught.value)
    assert message and "\n" not in message, f"not one line: {message!r}"
    return message


# ---- points: order, counts, seeds, fixed options -----------------------------------------------------------


def test_grid_expands_in_file_order_with_seeds_innermost(tmp_path: Path) -> None:
    sweep = read(tmp_path, GRID)
    swept = [(o["learning_rate"], o["arch"], o["seed"]) for o in options_of(sweep)]
    assert swept == [(rate, arch, seed) for rate in (0.001, 0.003, 0.01) for arch in ("seed", "wide")
                     for seed in (0, 1)]
    assert len(sweep.points) == 12
    assert sweep.metric == "validation_accuracy"  # the default
    assert sweep.source == "study.toml"


def test_fixed_options_reach_every_point(tmp_path: Path) -> None:
    sweep = read(tmp_path, GRID)
    assert all(o["epochs"] == 2 and o["train_size"] == 200 for o in options_of(sweep))
    assert {p.configuration["epochs"] for p in sweep.points} == {2}
    assert all("seed" not in p.configuration for p in sweep.points)


def test_seeds_given_as_a_list_are_used_as_given(tmp_path: Path) -> None:
    sweep = read(tmp_path, "seeds = [0, 7]\n[grid]\nlearning_rate = [0.01, 0.1]\n")
    assert [(o["learning_rate"], o["seed"]) for o in options_of(sweep)] == [(0.01, 0), (0.01, 7), (0.1, 0), (0.1, 7)]


def test_a_spec_without_grid_is_one_configuration_with_seed_zero(tmp_path: Path) -> None:
    assert options_of(read(tmp_path, "epochs = 3\n")) == [{"epochs": 3, "seed": 0}]


def test_metric_can_be_the_validation_loss(tmp_path: Path) -> None:
    assert read(tmp_path, 'metric = "validation_loss"\n').metric == "validation_loss"


def test_datasets_lists_each_dataset_once(tmp_path: Path) -> None:
    sweep = read(tmp_path, '[grid]\ndataset = ["fashion-mnist", "mnist"]\nepochs = [1, 2]\n')
    assert sweep.datasets == ["fashion-mnist", "mnist"]
    assert read(tmp_path, "epochs = 1\n").datasets == ["mnist"]  # train's default


# ---- [random] --------------------------------------------------------------------------------------------


def test_random_draws_are_the_same_for_the_same_seed(tmp_path: Path) -> None:
    first = options_of(read(tmp_path, RANDOM.format(seed=3)))
    again = options_of(read(tmp_path, RANDOM.format(seed=3)))
    assert len(first) == 6
    assert first == again


def test_random_draws_differ_for_another_seed(tmp_path: Path) -> None:
    assert options_of(read(tmp_path, RANDOM.format(seed=3))) != options_of(read(tmp_path, RANDOM.format(seed=4)))


def test_log_uniform_draws_lie_inside_their_bounds_and_spread_over_decades(tmp_path: Path) -> None:
    text = "[random]\ndraws = 40\nlearning_rate = { log_uniform = [0.0001, 0.1] }\n"
    rates = [o["learning_rate"] for o in options_of(read(tmp_path, text))]
    assert len(rates) == 40
    assert all(0.0001 <= rate <= 0.1 for rate in rates)
    assert min(rates) < 0.001 and max(rates) > 0.01  # log-uniform: every decade gets some; uniform would not


def test_log_uniform_draws_stay_inside_bounds_of_more_than_four_significant_digits(tmp_path: Path) -> None:
    text = "[random]\ndraws = 1\nlearning_rate = { log_uniform = [0.00012345, 0.00012346] }\n"
    (rate,) = [o["learning_rate"] for o in options_of(read(tmp_path, text))]
    assert 0.00012345 <= rate <= 0.00012346


def test_a_list_in_random_draws_only_its_values(tmp_path: Path) -> None:
    sweep = read(tmp_path, RANDOM.format(seed=0))
    sizes = [o["batch_size"] for o in options_of(sweep)]
    assert set(sizes) <= {1, 8, 32}
    assert len(set(sizes)) > 1  # 6 draws of 3 values: seed 0 does not draw one value six times


def test_grid_and_random_combine_with_seeds_innermost(tmp_path: Path) -> None:
    text = "seeds = 2\n[grid]\narch = [\"seed\", \"wide\"]\n[random]\ndraws = 3\n" \
           "learning_rate = { log_uniform = [0.0001, 0.1] }\n"
    points = options_of(read(tmp_path, text))
    assert len(points) == 2 * 3 * 2
    assert [o["arch"] for o in points] == ["seed"] * 6 + ["wide"] * 6
    assert [o["seed"] for o in points] == [0, 1] * 6
    rates = [o["learning_rate"] for o in points]
    assert rates[:6] == rates[6:]  # the same draws for every grid combination


# ---- keys -------------------------------------------------------------------------------------------------


def test_point_keys_are_unique_and_the_same_on_every_read(tmp_path: Path) -> None:
    keys = [p.key for p in read(tmp_path, GRID).points]
    assert len(set(keys)) == len(keys) == 12
    assert keys == [p.key for p in read(tmp_path, GRID).points]
    assert all(len(key) == 16 and int(key, 16) >= 0 for key in keys)


def test_point_key_ignores_the_order_of_options() -> None:
    assert point_key({"learning_rate": 0.01, "seed": 0}) == point_key({"seed": 0, "learning_rate": 0.01})
    assert point_key({"learning_rate": 0.01, "seed": 0}) != point_key({"learning_rate": 0.01, "seed": 1})


def test_point_key_is_pinned() -> None:
    """Existing sweep.jsonl files are resumed by key: a change of format would rerun every point."""
    options = {"seed": 1, "learning_rate": 0.01, "arch": "wide"}
    canonical = json.dumps(options, sort_keys=True, separators=(",", ":"))
    assert canonical == '{"arch":"wide","learning_rate":0.01,"seed":1}'
    assert point_key(options) == hashlib.sha256(canonical.encode()).hexdigest()[:16] == "57ea88b138d4fd37"


# ---- refusals: one line naming the key --------------------------------------------------------------------


REFUSALS = {  # id: (spec, what its one line must say)
    "typo-did-you-mean": ("learnig_rate = 0.01\n", ["learnig_rate", "did you mean learning_rate"]),
    "grid-typo-did-you-mean": ("[grid]\nlearnig_rate = [0.01]\n",
                               ["[grid] learnig_rate", "did you mean learning_rate"]),
    "unknown-option": ("colour = 3\n", ["colour", "not an option"]),
    "seed-fixed": ("seed = 3\n", ["seed cannot be set", "seeds"]),
    "engine-fixed": ('engine = "numpy"\n', ["engine cannot be set", "--engine"]),
    "seed-in-grid": ("[grid]\nseed = [0, 1]\n", ["[grid] seed cannot be set"]),
    "engine-in-grid": ('[grid]\nengine = ["numpy"]\n', ["[grid] engine cannot be set"]),
    "empty-grid-list": ("[grid]\nlearning_rate = []\n", ["learning_rate", "empty"]),
    "grid-value-not-list": ("[grid]\nlearning_rate = 0.01\n", ["learning_rate", "must be a list"]),
    "grid-not-table": ("grid = 3\n", ["grid", "table"]),
    "negative-rate": ("[grid]\nlearning_rate = [-1]\n", ["learning_rate", "-1"]),
    "zero-batch": ("[grid]\nbatch_size = [0]\n", ["batch_size"]),
    "unknown-arch": ('[grid]\narch = ["nope"]\n', ["arch", "nope"]),
    "unknown-optimiser": ('[grid]\noptimiser = ["sgdd"]\n', ["optimiser", "sgdd"]),
    "unknown-optimiser-in-second-combination": ('[grid]\nlearning_rate = [0.01, 0.1]\noptimiser = ["sgd", "sgdd"]\n',
                                                ["optimiser", "sgdd"]),
    "fixed-zero-batch": ("batch_size = 0\n", ["batch_size"]),
    "fixed-and-grid": ("learning_rate = 0.1\n[grid]\nlearning_rate = [0.01]\n", ["learning_rate", "twice"]),
    "seeds-zero": ("seeds = 0\n", ["seeds"]),
    "seeds-empty": ("seeds = []\n", ["seeds"]),
    "seeds-repeated": ("seeds = [1, 1]\n", ["seeds", "twice"]),
    "seeds-text": ('seeds = "x"\n', ["seeds", "'x'"]),
    "seeds-negative": ("seeds = [-1]\n", ["seeds"]),
    "seeds-bool": ("seeds = true\n", ["seeds"]),
    "bad-metric": ('metric = "accuracy"\n', ["metric", "validation_accuracy"]),
    "random-without-draws": ("[random]\nlearning_rate = { log_uniform = [0.0001, 0.1] }\n", ["[random] draws"]),
    "random-zero-draws": ("[random]\ndraws = 0\nlearning_rate = { log_uniform = [0.0001, 0.1] }\n",
                          ["[random] draws"]),
    "random-without-options": ("[random]\ndraws = 2\n", ["[random]", "no option"]),
    "random-negative-seed": ("[random]\ndraws = 2\nseed = -1\nlearning_rate = [0.1, 0.2]\n", ["[random] seed"]),
}


@pytest.mark.parametrize(("text", "expected"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_bad_spec_is_one_line_naming_the_key(tmp_path: Path, text: str, expected: list[str]) -> None:
    message = refusal(tmp_path, text)
    assert message.startswith("study.toml: ")
    for words in expected:
        assert words in message


@pytest.mark.parametrize("bounds", ["[0, 0.1]", "[-1, 0.1]", "[0.1, 0.01]", "[0.1, 0.1]", "[0.1]", '["a", "b"]'])
def test_bad_log_uniform_bounds_are_refused_naming_the_option(tmp_path: Path, bounds: str) -> None:
    message = refusal(tmp_path, f"[random]\ndraws = 2\nlearning_rate = {{ log_uniform = {bounds} }}\n")
    assert "[random] learning_rate log_uniform" in message


def test_an_option_both_in_grid_and_random_is_refused(tmp_path: Path) -> None:
    text = "[grid]\nlearning_rate = [0.01]\n[random]\ndraws = 2\nlearning_rate = { log_uniform = [0.0001, 0.1] }\n"
    message = refusal(tmp_path, text)
    assert "learning_rate" in message and "twice" in message


def test_two_identical_points_are_refused_naming_the_option(tmp_path: Path) -> None:
    message = refusal(tmp_path, "[grid]\nlearning_rate = [0.01, 0.01]\n")
    assert "twice" in message
    assert "learning_rate" in message  # which list repeats a value
    assert "twice" in refusal(tmp_path, "[grid]\nlearning_rate = [1, 1.0]\n")  # equal values, written apart


def test_random_draws_of_few_values_are_drawn_anew_until_distinct(tmp_path: Path) -> None:
    spec = tmp_path / "study.toml"
    spec.write_text("[random]\ndraws = 3\nbatch_size = [1, 8, 32]\n")
    assert sorted(p.options["batch_size"] for p in read_spec(spec).points) == [1, 8, 32]
    assert "only 3 different" in refusal(tmp_path, "[random]\ndraws = 4\nbatch_size = [1, 8, 32]\n")


def test_invalid_toml_is_refused_naming_the_file(tmp_path: Path) -> None:
    message = refusal(tmp_path, "learning_rate = = 0.1\n")
    assert "study.toml" in message and "TOML" in message


def test_a_missing_spec_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.toml: no such spec file"):
        read_spec(tmp_path / "absent.toml")


@pytest.mark.parametrize(("text", "key"), [("learnig_rate = 0.01\n", "learnig_rate"),
                                           ('[grid]\narch = ["nope"]\n', "arch")], ids=["typo", "bad-arch"])
def test_sweep_command_refuses_a_bad_spec_in_one_line_and_writes_nothing(tmp_path: Path, text: str,
                                                                         key: str) -> None:
    spec = spec_file(tmp_path, text, "bad.toml")
    out = tmp_path / "o"
    done = subprocess.run([sys.executable, "-m", "scratchcnn", "sweep", str(spec), "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("scratchcnn: error: bad.toml: ") and key in lines[0]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]  # no runs/ either
