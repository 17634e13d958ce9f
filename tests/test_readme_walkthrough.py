"""The README's walkthrough runs as written, so that the documentation cannot drift from the code.

Shell: every command of the fenced ``sh`` blocks in "Quick start", "Set up on a fresh machine" and
"Data" runs, in the order shown, in one fresh temporary folder laid out as on this machine:

    TMP/main/          the project as a newcomer has it: Makefile, pyproject.toml and a .venv (below)
    TMP/shared/data    → the shared data (so the README's ``../shared/data`` means what it says)
    TMP/home           $HOME: no ~/.cache/scratchcnn to fall back on

with ``SCRATCHCNN_DATA`` at the shared data, ``SCRATCHCNN_OFFLINE=1`` (never download), and a $PATH with
no ``scratchcnn`` on it, so that a bare ``scratchcnn`` runs only after the README has said how.
Each command runs in a fresh ``bash -c`` preceded by the ``source``/``export``/``cd`` commands shown
before it (a shell session, one command at a time so that a failure names its command). Treatment:

- ``make demo`` runs as written. TMP/main/.venv is this interpreter's venv seen through symlinks (its
  bin/ and pyvenv.cfg) with fresh install stamps, so the Makefile finds it installed: no second venv,
  no pip. A dry run (``make -n``) first checks that no ``pip install`` would run.
- ``make test`` is only dry-run (``make -n test``): running it would recurse into this very suite.
  The dry run must show pytest run with the venv's Python and no install.
- every other command runs as written; ``my-digit.png``, the user's own picture, is made beforehand
  from an MNIST test image (dark ink on light paper, four times MNIST's size, as a scan would be).

Python: every fenced ``python`` block of the README runs in a fresh interpreter in its own such folder
(cwd TMP/main); the user's pictures it names (``my-*.png``) are made as above.

A block the README marks ``<!-- illustrative -->`` on the line before it is not run; the list of them
is checked explicitly (test_illustrative_blocks_are_the_known_ones), so nothing is skipped silently.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHELL_SECTIONS = ("Quick start", "Set up on a fresh machine", "Data")
ILLUSTRATIVE = "<!-- illustrative -->"
KNOWN_ILLUSTRATIVE: set[tuple[str, str]] = set()  # (section, language) of each block marked illustrative
SESSION = ("source", ".", "export", "cd")  # commands whose effect carries to the next ones
USER_PICTURE = re.compile(r"\bmy-[\w-]*\.png\b")  # the user's own pictures, made by the test
TIMEOUT = 300  # seconds per command: a hang fails rather than blocks


@dataclass(frozen=True)
class Block:
    section: str  # the heading the block sits under
    language: str  # the fence's info string: sh, python, text, ...
    line: int  # 1-based line of the opening fence
    text: str
    illustrative: bool


def readme_blocks(readme: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, each with its section and its illustrative mark."""
    blocks, section, fence, body, previous = [], "", None, [], ""
    for number, line in enumerate(readme.splitlines(), 1):
        if fence is None and line.startswith("#"):
            section = line.lstrip("#").strip()
        elif fence is None and line.startswith("```"):
            fence = (line[3:].strip(), number, previous.strip() == ILLUSTRATIVE)
            body = []
        elif fence is not None and line.startswith("```"):
            blocks.append(Block(section, fence[0], fence[1], "\n".join(body), fence[2]))
            fence = None
        elif fence is not None:
            body.append(line)
        if line.strip():
            previous = line
    return blocks


def words(command: str) -> list[str]:
    """A command's words as the shell splits them, its trailing comment dropped."""
    return shlex.split(command, comments=True)


def shell_commands(blocks: list[Block]) -> list[str]:
    """The walkthrough's shell commands in order, as written: one per line, continuations joined."""
    commands: list[str] = []
    for block in blocks:
        if block.section in SHELL_SECTIONS and block.language in ("sh", "bash", "shell") and not block.illustrative:
            for line in block.text.replace("\\\n", " ").splitlines():
                if words(line):
                    commands.append(line.strip())
    return commands


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
PYTHON_BLOCKS = [b for b in BLOCKS if b.language == "python" and not b.illustrative]


def venv_of_this_interpreter() -> Path:
    prefix = Path(sys.prefix)
    if not (prefix / "bin" / "scratchcnn").exists() or not (prefix / "pyvenv.cfg").exists():
        skip_or_fail(f"not run from the project's venv ({prefix} has no bin/scratchcnn)")
    return prefix


def newcomer_folder(tmp: Path, data: Path) -> Path:
    """TMP/main (the project with an installed .venv), TMP/shared/data and TMP/home; returns TMP/main."""
    project, venv = tmp / "main", venv_of_this_interpreter()
    (project / ".venv").mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    for name in ("bin", "pyvenv.cfg"):
        (project / ".venv" / name).symlink_to(venv / name)
    for stamp in (".installed", ".installed-test"):  # newer than pyproject.toml: make sees it installed
        (project / ".venv" / stamp).touch()
    (tmp / "shared").mkdir()
    (tmp / "shared" / "data").symlink_to(data)
    (tmp / "home").mkdir()
    return project


def newcomer_env(tmp: Path, data: Path) -> dict[str, str]:
    """No scratchcnn on $PATH and no active venv; offline; $HOME in TMP; the shared data."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    path = [d for d in env.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "scratchcnn").exists()]
    env.update(PATH=os.pathsep.join(path), HOME=str(tmp / "home"), SCRATCHCNN_DATA=str(data),
               SCRATCHCNN_OFFLINE="1", MPLBACKEND="Agg")
    return env


def my_digit(data: Path, path: Path) -> None:
    """A user's picture of a digit: MNIST test image 0 (a 7), dark on light, 112×112 pixels."""
    from PIL import Image

    from scratchcnn.data import load_dataset

    image = 255 - load_dataset("mnist", data, download=False).test_images[0]
    Image.fromarray(np.kron(image, np.ones((4, 4), dtype=np.uint8))).save(path)


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def failure(command: str, done: subprocess.CompletedProcess[str]) -> str:
    return f"`{command}` exited {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"


def dry_run(command: str, project: Path, env: dict[str, str]) -> str:
    """What a `make` command would run; it must not install anything (that would touch the shared venv)."""
    done = run(command.replace("make ", "make -n ", 1), project, env)
    assert done.returncode == 0, failure(f"{command} (dry run)", done)
    assert "pip" not in done.stdout, f"`{command}` would install:\n{done.stdout}"
    return done.stdout


def test_the_walkthrough_has_commands() -> None:
    commands = [words(command) for command in shell_commands(BLOCKS)]
    assert ["make", "demo"] in commands and ["make", "test"] in commands, commands
    assert PYTHON_BLOCKS, "no python block found in the README"


def test_no_runnable_block_spells_out_the_venv_path() -> None:
    """One way to run scratchcnn throughout: the activated venv (the README says how, once)."""
    for block in BLOCKS:
        if block.language in ("sh", "bash", "shell"):
            assert ".venv/bin/scratchcnn" not in block.text, f"README line {block.line}: {block.text}"


def test_illustrative_blocks_are_the_known_ones() -> None:
    marked = {(b.section, b.language) for b in BLOCKS if b.illustrative}
    assert marked == KNOWN_ILLUSTRATIVE, f"blocks marked {ILLUSTRATIVE} (not run): {sorted(marked)}"


def test_shell_walkthrough_runs_as_written(tmp_path: Path, data_dir: Path) -> None:
    project, env = newcomer_folder(tmp_path, data_dir), newcomer_env(tmp_path, data_dir)
    my_digit(data_dir, project / "my-digit.png")
    session: list[str] = []  # source/export/cd commands so far, replayed before each command
    for command in shell_commands(BLOCKS):
        argv = [w for w in words(command) if "=" not in w.split("/")[0]]  # without VAR=value prefixes
        if argv[0] == "make":
            plan = dry_run(command, project, env)
            if argv[1:] == ["test"]:  # running it would recurse into this suite: check what it would run
                assert ".venv/bin/python -m pytest" in plan, plan
                continue
        done = run("\n".join(["set -e", *session, command]), project, env)  # lines: comments end there
        assert done.returncode == 0, failure(command, done)
        if argv[0] in SESSION:
            session.append(command)
    assert (project / "runs" / "demo" / "report.html").is_file()
    assert (project / "runs" / "demo" / "figures").is_dir()


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[f"line-{b.line}" for b in PYTHON_BLOCKS])
def test_python_snippet_runs(block: Block, tmp_path: Path, data_dir: Path) -> None:
    project, env = newcomer_folder(tmp_path, data_dir), newcomer_env(tmp_path, data_dir)
    for name in set(USER_PICTURE.findall(block.text)):
        my_digit(data_dir, project / name)
    done = subprocess.run([sys.executable, "-c", block.text], cwd=project, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, failure(f"python block at README line {block.line}", done)
