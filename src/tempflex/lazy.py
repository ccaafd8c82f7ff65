"""Public names of a package that import their defining module on first use (PEP 562).

A package's ``__init__`` declares ``{name: module}`` and takes its ``__getattr__`` / ``__dir__`` from here, so
that importing the package (or any light submodule of it, such as ``tempflex.media``) does not import torch or
transformers. Example::

    __getattr__, __dir__ = lazy_exports(__name__, {"train": "tempflex.train.run"})

``from package import name`` and ``package.name`` then import ``tempflex.train.run`` the first time only.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, public: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose names in ``public`` live in the given modules."""

    def module_getattr(name: str) -> Any:
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(public[name]), name)
        vars(sys.modules[package])[name] = value  # later lookups find it without calling __getattr__
        return value

    def module_dir() -> list[str]:
        return sorted({*vars(sys.modules[package]), *public})

    return module_getattr, module_dir
