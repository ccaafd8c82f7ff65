"""Which instants of a video to keep, and which decoded frame shows each: pure functions, no decoding.

``sample_times`` plans target times: one every ``1 / fps`` seconds (default 1 fps, the authors' rate), or
``num_frames`` at the centres of equal slices; then at least ``min_frames`` (more targets, evenly spaced) and
at most ``max_frames`` (an even subset). ``select_frames`` maps targets to frame indices: the frame on screen
at each target, i.e. the last one presented at or before it (right for variable frame rates too; the rule
every backend shares, so all give the same frames).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["even_subset", "sample_times", "select_frames"]

_EPS = 1e-6


def sample_times(
    duration: float,
    *,
    fps: float | None = 1.0,
    num_frames: int | None = None,
    max_frames: int | None = 64,
    min_frames: int = 1,
    start: float = 0.0,
) -> list[float]:
    """Target times in ``[start, start + duration)``.

    >>> sample_times(3.0, fps=2.0)
    [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    >>> sample_times(10.0, fps=None, num_frames=4)
    [1.25, 3.75, 6.25, 8.75]
    >>> len(sample_times(3600.0)), sample_times(2.0, min_frames=4)
    (64, [0.25, 0.75, 1.25, 1.75])
    """
    if (fps is None) == (num_frames is None):
        raise ValueError("give exactly one of fps and num_frames")
    if min_frames < 1 or (max_frames is not None and max_frames < min_frames):
        raise ValueError(f"need 1 <= min_frames <= max_frames, got min_frames={min_frames}, max_frames={max_frames}")
    duration = max(duration, 0.0)
    if num_frames is not None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        count = num_frames
    else:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        count = max(1, math.ceil(duration * fps - _EPS))
    if count < min_frames:
        count, num_frames = min_frames, min_frames
    if num_frames is not None:
        times = [start + (k + 0.5) * duration / count for k in range(count)]
    else:
        times = [start + k / fps for k in range(count)]
    if max_frames is not None and len(times) > max_frames:
        times = [times[i] for i in even_subset(len(times), max_frames)]
    return times


def even_subset(count: int, keep: int) -> list[int]:
    """``keep`` indices spread evenly over ``range(count)``, first and last included.

    >>> even_subset(10, 4)
    [0, 3, 6, 9]
    """
    return np.linspace(0, count - 1, keep).round().astype(int).tolist()


def select_frames(frame_times: Sequence[float], targets: Sequence[float]) -> list[int]:
    """Index of the frame on screen at each target: the last with presentation time <= target (else the first).

    >>> select_frames([0.0, 0.1, 0.2, 0.3], [0.0, 0.15, 5.0])
    [0, 1, 3]
    """
    if not frame_times:
        raise ValueError("no frames to select from")
    return [max(bisect.bisect_right(frame_times, target + _EPS) - 1, 0) for target in targets]
