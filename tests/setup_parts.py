"""The parts ``scripts/setup`` installs, and the one way a test may skip one: the user left it out on purpose.

``TEMPFLEX_SKIP=browser,deepspeed,lmms-eval`` (read by ``scripts/setup`` too) names the parts left out; a test of
such a part skips and says so (``pytest -ra`` lists the reasons). A part missing without being named fails its
tests with the command that installs it.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

SKIP_VARIABLE = "TEMPFLEX_SKIP"


def left_out(part: str) -> bool:
    """Whether the user left ``part`` out of the set-up on purpose."""
    return part in {name.strip() for name in os.environ.get(SKIP_VARIABLE, "").split(",")}


def missing(part: str, what: str) -> NoReturn:
    """Skip (``part`` left out on purpose) or fail (the set-up should have installed ``what``)."""
    if left_out(part):
        reason = f"{part} left out on purpose ({SKIP_VARIABLE}={os.environ[SKIP_VARIABLE]})"
        pytest.skip(reason, allow_module_level=True)  # also from a module-level require (a whole test file)
    pytest.fail(f"{what} is not installed: run `bash scripts/setup`, or set {SKIP_VARIABLE}={part} to leave it out")


def require(module: str, part: str) -> ModuleType:
    """``module`` imported, or the skip / failure of ``missing``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        missing(part, f"{module} ({part})")
