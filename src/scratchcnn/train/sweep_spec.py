"""A sweep's specification: a TOML file naming the options of ``scratchcnn train`` to vary, read into points.

    dataset = "mnist"          # any option train accepts, the same for every point
    epochs = 2
    seeds = 2                  # each configuration trained with seeds 0 and 1 (or seeds = [0, 7])

    [grid]                     # every combination of these values
    learning_rate = [0.001, 0.003, 0.01]
    arch = ["seed", "wide"]

    [random]                   # and/or configurations drawn at random
    draws = 8                  # how many
    seed = 0                   # the draws' own seed: the same file, the same points
    learning_rate = { log_uniform = [0.0001, 0.1] }
    batch_size = [1, 8, 32]    # a list: one of its values

A point is one configuration with one seed: the options ``train`` would be given (a dict, as
``options.resolve`` takes). Every point is checked here, before any runs: a bad spec is one line naming
the key (ConfigError).
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from scratchcnn.errors import ConfigError
from scratchcnn.options import RunOptions, resolve

OPTIONS = tuple(f.name for f in fields(RunOptions))
NOT_SWEPT = ("seed", "engine")  # seeds are `seeds`; the engine is the machine's, not the study's
METRICS = ("validation_accuracy", "validation_loss")  # what picks the best configuration
SPEC_KEYS = ("seeds", "metric", "grid", "random")
DISTRIBUTIONS = ("log_uniform", "uniform")


@dataclass(frozen=True)
class Point:
    """One run of a sweep: ``options`` as train takes them (seed included); ``key`` names it in sweep.jsonl."""

    options: dict[str, Any]

    @property
    def key(self) -> str:
        return point_key(self.options)

    @property
    def configuration(self) -> dict[str, Any]:
        """The options without the seed: what the seeds repeat."""
        return {name: value for name, value in self.options.items() if name != "seed"}


@dataclass(frozen=True)
class Sweep:
    """A read spec: its points in order (configurations in the file's order, each with every seed)."""

    points: tuple[Point, ...]
    metric: str
    source: str  # the spec file's name, for messages

    @property
    def datasets(self) -> list[str]:
        return sorted({point.options.get("dataset", RunOptions.dataset) for point in self.points})


def point_key(options: dict[str, Any]) -> str:
    """A short stable name of a point's options: 16 hex digits of the SHA-256 of their canonical JSON."""
    text = json.dumps(options, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_spec(path: str | Path) -> Sweep:
    """The sweep in TOML file ``path``; ConfigError (one line, naming the key) for anything wrong in it."""
    path = Path(path)
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such spec file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the spec ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    return sweep_from_dict(spec, path.name)


def sweep_from_dict(spec: dict[str, Any], source: str = "spec") -> Sweep:
    """The sweep a spec (as read from TOML) describes; ConfigError naming the key for anything wrong."""
    def fail(message: str) -> ConfigError:
        return ConfigError(f"{source}: {message}")

    fixed = {key: value for key, value in spec.items() if key not in SPEC_KEYS}
    _check_names(fixed, "", fail)
    grid = _table(spec, "grid", fail)
    random = dict(_table(spec, "random", fail))
    _check_names(grid, "[grid] ", fail)
    for name, values in grid.items():
        if not isinstance(values, list):
            raise fail(f"[grid] {name} must be a list of values, got {values!r}")
        if not values:
            raise fail(f"[grid] {name} is empty: give at least one value")
        repeated = next((a for i, a in enumerate(values) if any(a == b for b in values[:i])), None)
        if repeated is not None:
            raise fail(f"[grid] {name} lists {repeated!r} twice: each value once")
    _check_names({name: how for name, how in random.items() if name not in ("draws", "seed")}, "[random] ", fail)
    draws = _draws(random, fail)
    overlap = sorted(set(grid) & set(random) | (set(fixed) & (set(grid) | set(random))))
    if overlap:
        raise fail(f"{overlap[0]} is given twice (fixed, [grid] or [random]): give it in one place")
    metric = spec.get("metric", METRICS[0])
    if metric not in METRICS:
        raise fail(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    seeds = _seeds(spec.get("seeds", 1), fail)
    configurations = [{**fixed, **combo, **drawn} for combo in _combinations(grid)
                      for drawn in _drawn(random, draws, fail)]
    points = tuple(Point({**configuration, "seed": seed}) for configuration in configurations for seed in seeds)
    for point in points:
        try:
            resolve(point.options)
        except ConfigError as error:
            shown = ", ".join(f"{name}={value!r}" for name, value in point.configuration.items()
                              if name in grid or name in random) or "every point"
            raise fail(f"{error} (in the point {shown})") from None
    return Sweep(points=points, metric=metric, source=source)


def _table(spec: dict[str, Any], name: str, fail: Any) -> dict[str, Any]:
    table = spec.get(name, {})
    if not isinstance(table, dict):
        raise fail(f"{name} must be a table ([{name}]), got {table!r}")
    return table


def _check_names(table: dict[str, Any], where: str, fail: Any) -> None:
    for name in table:
        if name in NOT_SWEPT:
            hint = "use seeds = N or seeds = [..] at the top" if name == "seed" else "give it as --engine"
            raise fail(f"{where}{name} cannot be set in a spec: {hint}")
        if name not in OPTIONS:
            close = difflib.get_close_matches(name, OPTIONS + SPEC_KEYS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; options: {', '.join(OPTIONS)}"
            raise fail(f"{where}{name} is not an option of scratchcnn train{hint}")


def _seeds(value: Any, fail: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise fail(f"seeds must be at least 1, got {value}")
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                 for s in value):
        if len(set(value)) != len(value):
            raise fail(f"seeds lists a seed twice: {value}")
        return value
    raise fail(f"seeds must be a count (seeds = 3) or a list of seeds ≥ 0 (seeds = [0, 7]), got {value!r}")


def _combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))]


def _draws(random: dict[str, Any], fail: Any) -> int:
    """Pops ``draws`` and ``seed`` (kept for _drawn) from [random]; 0 draws without a [random] table."""
    if not random:
        return 0
    draws = random.pop("draws", None)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise fail(f"[random] draws must be a count ≥ 1 (how many configurations to draw), got {draws!r}")
    seed = random.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise fail(f"[random] seed must be a whole number ≥ 0, got {seed!r}")
    random["seed"] = seed
    if len(random) == 1:
        raise fail("[random] names no option to draw: add e.g. learning_rate = { log_uniform = [1e-4, 0.1] }")
    return draws


def _drawn(random: dict[str, Any], draws: int, fail: Any) -> list[dict[str, Any]]:
    """``draws`` different configurations of the [random] options (one empty one without [random]).

    A configuration drawn again is drawn anew (lists are few values: repeats are likely), so the study
    has ``draws`` configurations, or says how many its lists allow.
    """
    if not draws:
        return [{}]
    rng = np.random.default_rng(random["seed"])
    ranges = {name: how for name, how in random.items() if name != "seed"}
    drawn: list[dict[str, Any]] = []
    for _ in range(100 * draws):
        configuration = {name: _draw(rng, name, how, fail) for name, how in ranges.items()}
        if configuration not in drawn:
            drawn.append(configuration)
            if len(drawn) == draws:
                return drawn
    raise fail(f"[random] draws = {draws}, but its options give only {len(drawn)} different configurations")


def _draw(rng: np.random.Generator, name: str, how: Any, fail: Any) -> Any:
    if isinstance(how, list):
        if not how:
            raise fail(f"[random] {name} is empty: give at least one value")
        return how[int(rng.integers(len(how)))]
    if not isinstance(how, dict) or len(how) != 1 or next(iter(how)) not in DISTRIBUTIONS:
        raise fail(f"[random] {name} must be a list of values or {{ log_uniform = [LOW, HIGH] }} or "
                   f"{{ uniform = [LOW, HIGH] }}, got {how!r}")
    kind, bounds = next(iter(how.items()))
    ok = isinstance(bounds, list) and len(bounds) == 2 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
    if not ok or not bounds[0] < bounds[1] or (kind == "log_uniform" and bounds[0] <= 0):
        raise fail(f"[random] {name} {kind} needs [LOW, HIGH] with LOW < HIGH"
                   f"{' and LOW > 0' if kind == 'log_uniform' else ''}, got {bounds!r}")
    low, high = (math.log(b) for b in bounds) if kind == "log_uniform" else bounds
    value = float(rng.uniform(low, high))
    value = float(f"{math.exp(value) if kind == 'log_uniform' else value:.4g}")  # readable in tables and plots
    return min(max(value, bounds[0]), bounds[1])  # rounding must not step outside (momentum 0.99999 → 1.0)
