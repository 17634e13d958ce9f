"""`scratchcnn --help` and every command's --help answer without importing the heavy libraries: building the
parser imports no NumPy, Numba, matplotlib, Pillow, joblib or tqdm (cli/__init__). Timings are the benchmark's
(benchmarks/startup.py); this holds the property that makes them short, and the package's lazy names."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scratchcnn.cli import build_parser

HEAVY = ("numpy", "numba", "matplotlib", "PIL", "joblib", "tqdm", "sklearn", "torch")
COMMANDS = list(build_parser().commands.choices)


def imported_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter has imported after running code."""
    probe = f"import sys, json\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_imports_nothing_heavy(command: str | None) -> None:
    argv = [command, "--help"] if command else ["--help"]
    code = f"from scratchcnn.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert imported_after(code) == []


def test_the_package_names_are_imported_on_first_use() -> None:
    assert imported_after("import scratchcnn, scratchcnn.data, scratchcnn.nn, scratchcnn.train") == []
    assert "numpy" in imported_after("from scratchcnn import ConvNet")


def test_the_lazy_names_are_the_real_ones() -> None:
    import scratchcnn
    import scratchcnn.data
    from scratchcnn.data.datasets import load_dataset
    from scratchcnn.nn.model import ConvNet

    assert scratchcnn.ConvNet is ConvNet and scratchcnn.data.load_dataset is load_dataset
    assert set(scratchcnn.__all__) <= set(dir(scratchcnn))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        scratchcnn.nothing  # noqa: B018
