"""Wall-clock timing shared by the benchmark scripts: one call, or the median of repeats, synchronised on a GPU.

Used as ``from timing import median_seconds, timed`` by scripts run as ``python benchmarks/<script>.py`` (their
folder is then first on ``sys.path``)::

    >>> import torch
    >>> median_seconds(lambda: torch.ones(8).sum(), 3, torch.device("cpu")) >= 0
    True
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def timed(run: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call of ``run()``; on a GPU, from a synchronised start to a synchronised end."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def median_seconds(run: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median seconds of ``repeats`` calls of ``run()`` after one warm-up call."""
    run()  # warm-up
    return statistics.median(timed(run, device) for _ in range(repeats))
