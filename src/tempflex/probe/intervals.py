"""95% intervals over training seeds, and the demo's call between two variants.

    >>> low, high = interval([0.50, 0.52, 0.48])
    >>> round(high - low, 3)  # 2 x t(0.975, 2 df) x s / sqrt(3) = 2 x 4.303 x 0.02 / 1.732
    0.099
    >>> call(interval([0.95, 0.97, 0.96]), interval([0.50, 0.52, 0.48]))
    'ahead'

The interval is Student's t interval of the mean over seeds, ``mean ± t(0.975, n-1) s / sqrt(n)`` with ``s`` the
sample standard deviation: each seed trains its own model and is scored on the same held-out clips, so the seed is
the unit that varies and the clips' sampling noise enters through it. With 3 seeds t is 4.30: a half-width of at
most ``DECISIVE_HALF_WIDTH`` (0.08) needs a seed-to-seed standard deviation of at most 0.032.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = ["DECISIVE_HALF_WIDTH", "call", "interval", "t_quantile"]

DECISIVE_HALF_WIDTH = 0.08
"""Largest half-width at which overlapping intervals are called a tie (wider: the data cannot tell)."""

# Student's t, 97.5th percentile, by degrees of freedom (standard tables); 1.96 beyond 30.
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile(degrees_of_freedom: int) -> float:
    """Student's t at 0.975 (two-sided 95%) for ``degrees_of_freedom`` >= 1."""
    if degrees_of_freedom < 1:
        raise ValueError(f"need at least 1 degree of freedom (2 seeds), got {degrees_of_freedom}")
    return _T_975[degrees_of_freedom - 1] if degrees_of_freedom <= len(_T_975) else 1.96


def interval(values: Sequence[float]) -> tuple[float, float]:
    """The 95% t interval ``(low, high)`` of the mean of ``values`` (one per seed); needs two or more."""
    if len(values) < 2:
        raise ValueError(f"an interval needs at least 2 seeds, got {len(values)}")
    half = t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    mean = statistics.fmean(values)
    return mean - half, mean + half


def call(first: tuple[float, float], second: tuple[float, float], decisive: float = DECISIVE_HALF_WIDTH) -> str:
    """``"ahead"`` / ``"behind"`` when ``first``'s interval lies wholly above / below ``second``'s; overlapping
    intervals are ``"tied"`` when both half-widths are at most ``decisive``, else ``"undecided"``."""
    if first[0] > second[1]:
        return "ahead"
    if first[1] < second[0]:
        return "behind"
    widest = max(first[1] - first[0], second[1] - second[0]) / 2
    return "tied" if widest <= decisive else "undecided"
