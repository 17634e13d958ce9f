"""Names a package offers, imported on first use: ``import scratchcnn`` (and ``scratchcnn --help``) stays quick.

A package's ``__init__`` says where each name lives; Python calls the module's ``__getattr__`` (PEP 562) for a
name not yet there, which imports its home module and keeps the name. NumPy, Numba and matplotlib are thus
imported by the first command or call that needs them, not by ``import scratchcnn``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def exports(package: str, homes: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(__getattr__, __dir__) for ``package`` offering each name of ``homes`` from its home module."""

    def attribute(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(homes[name]), name)
        setattr(sys.modules[package], name, value)  # the next look-up finds it without coming here
        return value

    def names() -> list[str]:
        return sorted({*vars(sys.modules[package]), *homes})

    return attribute, names
