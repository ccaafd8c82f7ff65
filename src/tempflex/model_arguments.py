"""The ``--device`` / ``--dtype`` options shared by the commands that load a model (argparse only, no torch).

Command::

    tempflex eval --help   # lists --device (default auto) and --dtype (default: as saved), in well under a second
"""

from __future__ import annotations

import argparse

__all__ = ["add_model_arguments"]


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` (default ``auto``: CUDA when present) and ``--dtype`` (default: as saved) of a command."""
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default auto: CUDA when present)")
    parser.add_argument("--dtype", help="bfloat16, float16 or float32 (default: as the checkpoint was saved)")
