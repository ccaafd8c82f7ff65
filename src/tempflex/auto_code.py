"""Saved TempFlex folders name the installed ``tempflex`` package as their code, for loads without ``import tempflex``.

transformers knows ``model_type: "tempflex"`` only once ``import tempflex`` has registered it; before that, its
Auto classes fail with a misleading "update Transformers" message. So ``TempFlexConfig.save_pretrained`` writes
``auto_map`` into ``config.json`` and a two-line ``tempflex_auto.py`` beside it that imports the installed package
(it holds no model code). Then, in a fresh process::

    AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True)   # imports tempflex, loads
    AutoProcessor.from_pretrained(folder, trust_remote_code=True)

and without ``trust_remote_code`` transformers says the folder needs its code run, instead of blaming its own
version. Once ``tempflex`` is imported the registered classes are used and ``auto_map`` is ignored.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["AUTO_MAP", "SHIM_MODULE", "write_shim"]

SHIM_MODULE = "tempflex_auto"
"""The module written beside ``config.json``."""

AUTO_MAP = {
    "AutoConfig": f"{SHIM_MODULE}.TempFlexConfig",
    "AutoModel": f"{SHIM_MODULE}.TempFlexForConditionalGeneration",
    "AutoModelForImageTextToText": f"{SHIM_MODULE}.TempFlexForConditionalGeneration",
    "AutoProcessor": f"{SHIM_MODULE}.TempFlexProcessor",
}
"""``config.json``'s ``auto_map``: each Auto class -> the shim's name for the installed class."""

_SHIM_SOURCE = '''"""A TempFlex model folder: its code is the installed tempflex package (pip install tempflex)."""

from tempflex import TempFlexConfig, TempFlexForConditionalGeneration, TempFlexProcessor

__all__ = ["TempFlexConfig", "TempFlexForConditionalGeneration", "TempFlexProcessor"]
'''


def write_shim(folder: str | Path) -> Path:
    """Write ``tempflex_auto.py`` into ``folder``; returns its path."""
    path = Path(folder) / f"{SHIM_MODULE}.py"
    path.write_text(_SHIM_SOURCE)
    return path
