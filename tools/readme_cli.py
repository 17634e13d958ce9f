"""Write the README's command-line reference from the commands' own --help, so the two cannot drift.

Usage: python tools/readme_cli.py          # rewrite the section of README.md between the markers
       python tools/readme_cli.py --check  # exit 1 if README.md is out of date (the tests do this)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"
WIDTH = "100"  # argparse wraps help to $COLUMNS: fix it so the text is the same on every terminal


def help_text(argv: list[str]) -> str:
    from scratchcnn.cli import build_parser

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return out.getvalue().rstrip()


def reference() -> str:
    """The section: ``scratchcnn --help``, then each command's --help, as code blocks."""
    os.environ["COLUMNS"] = WIDTH
    from scratchcnn.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices  # argparse keeps them here
    parts = [START, "", "```text", "$ scratchcnn --help", help_text([]), "```"]
    for name in commands:
        parts += ["", f"#### scratchcnn {name}", "", "```text", f"$ scratchcnn {name} --help",
                  help_text([name]), "```"]
    return "\n".join([*parts, "", END])


def updated(readme: str) -> str:
    before, rest = readme.split(START, 1)
    _old, after = rest.split(END, 1)
    return before + reference() + after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if README.md is stale")
    args = parser.parse_args()
    readme = README.read_text(encoding="utf-8")
    new = updated(readme)
    if args.check:
        if new != readme:
            print("README.md's command-line reference is out of date: run python tools/readme_cli.py",
                  file=sys.stderr)
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
