"""The README's layout and command-line reference come from the code (tools/readme.py writes them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_generated_sections_match_the_code() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "readme.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_readme_shows_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme


def test_readme_first_toml_block_is_a_small_study_that_runs_as_is(tmp_path: Path, data_dir: Path) -> None:
    """README, "Studies": its first ```toml block is a complete spec of at most 12 points, run as shown."""
    import json
    import re
    import tomllib

    from scratchcnn.train.sweep_spec import sweep_from_dict

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^```toml\n(.*?)^```", readme, re.S | re.M)
    assert block, "README has no ```toml block"
    plan = sweep_from_dict(tomllib.loads(block.group(1)))
    assert 1 < len(plan.points) <= 12
    spec = tmp_path / "study.toml"
    spec.write_text(block.group(1), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "scratchcnn", "sweep", str(spec), "--out", str(tmp_path / "study"),
                             "--data-dir", str(data_dir), "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["points"] == len(plan.points) and summary["ok"] == len(plan.points)
    lines = (tmp_path / "study" / "sweep.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["key"] for line in lines) == sorted(p.key for p in plan.points)
