"""Write the README's generated sections from the code itself, so that they cannot drift:

- the layout (between <!-- layout:start/end -->): the layers of the import-linter contract in
  pyproject.toml, top to bottom, each module with the first line of its docstring;
- the command-line reference (between <!-- cli-reference:start/end -->): the commands' own --help.

Usage: python tools/readme.py          # rewrite those sections of README.md
       python tools/readme.py --check  # exit 1 if README.md is out of date (the tests do this)
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import os
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PACKAGE = ROOT / "src" / "scratchcnn"
WIDTH = "100"  # argparse wraps help to $COLUMNS: fix it so the text is the same on every terminal


def help_text(argv: list[str]) -> str:
    from scratchcnn.cli import build_parser

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return out.getvalue().rstrip()


def cli_reference() -> str:
    """``scratchcnn --help``, then each command's --help, as code blocks."""
    os.environ["COLUMNS"] = WIDTH
    from scratchcnn.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices  # argparse keeps them here
    parts = ["", "```text", "$ scratchcnn --help", help_text([]), "```"]
    for name in commands:
        parts += ["", f"#### scratchcnn {name}", "", "```text", f"$ scratchcnn {name} --help",
                  help_text([name]), "```"]
    return "\n".join([*parts, ""])


def summary(path: Path) -> str:
    """The first line of a module's docstring (a package's: of its __init__.py)."""
    source = path / "__init__.py" if path.is_dir() else path
    doc = ast.get_docstring(ast.parse(source.read_text(encoding="utf-8"))) or ""
    return " ".join(doc.split("\n\n")[0].split()).replace("``", "`")


def layout() -> str:
    """The layers of the import contract, top to bottom, with their modules and what each holds."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = next(c for c in contracts["contracts"] if c["type"] == "layers")["layers"]
    lines = ["", "Top to bottom; each layer imports only from the layers below it (`lint-imports` checks "
             "this in CI, contracts in `pyproject.toml`).", ""]
    for layer in layers:
        for name in (part.strip() for part in layer.split("|")):
            path = PACKAGE.joinpath(*name.split(".")[1:])
            path = path if path.is_dir() else path.with_suffix(".py")
            shown = f"{path.relative_to(PACKAGE.parent)}{'/' if path.is_dir() else ''}"
            lines.append(f"- `{shown}`: {summary(path)}")
            if path.is_dir():
                lines += [f"  - `{module.name}`: {summary(module)}" for module in sorted(path.glob("*.py"))
                          if module.name != "__init__.py"]
                for data in sorted(path.iterdir()):
                    if data.is_dir() and data.name != "__pycache__":
                        files = ", ".join(f"`{f.name}`" for f in sorted(data.iterdir()))
                        lines.append(f"  - `{data.name}/`: package data: {files}")
    return "\n".join([*lines, ""])


SECTIONS = {"layout": layout, "cli-reference": cli_reference}


def updated(readme: str) -> str:
    for name, make in SECTIONS.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        before, rest = readme.split(start, 1)
        _old, after = rest.split(end, 1)
        readme = before + start + make() + end + after
    return readme


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if README.md is stale")
    args = parser.parse_args()
    readme = README.read_text(encoding="utf-8")
    new = updated(readme)
    if args.check:
        if new != readme:
            print("README.md's generated sections are out of date: run python tools/readme.py (make docs)",
                  file=sys.stderr)
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
