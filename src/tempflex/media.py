"""Media input: images from files or arrays, and video files decoded with PyAV and sampled in time.

``load_video(path, fps=1.0, max_frames=64)`` decodes a file (any container FFmpeg reads) and keeps one frame
per ``1 / fps`` seconds, the authors' sampling (1 fps, at most 64 frames in training; pass ``max_frames=128``
for the paper's test setting); ``num_frames=N`` instead keeps N frames spread evenly. ``start`` / ``end`` (in
seconds) cut a segment. When more frames than ``max_frames`` would be kept, ``max_frames`` evenly spaced ones
are. Each kept frame carries its presentation time, which the processor writes as ``<t=...s>``.

PyAV is the ``video`` extra (``pip install 'tempflex[video]'``); it ships its own FFmpeg. A file that cannot
be read raises ``ValueError`` naming it, so a batch job can fail that one sample and go on.

    >>> clip = load_video("clip.mp4", fps=2.0)                                  # doctest: +SKIP
    >>> clip.frames.shape, clip.timestamps[:3]                                  # doctest: +SKIP
    ((20, 480, 640, 3), [0.0, 0.5, 1.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["VideoClip", "load_image", "load_video", "sample_times"]


@dataclass
class VideoClip:
    """Sampled frames ``[F, H, W, 3]`` uint8 RGB and their presentation times in seconds."""

    frames: np.ndarray
    timestamps: list[float]


def load_image(image: Any) -> np.ndarray:
    """A PIL image, a path or an ``[H, W, 3|4]`` uint8 array -> ``[H, W, 3]`` uint8 RGB."""
    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as opened:
                return np.asarray(opened.convert("RGB"))
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read image {str(image)!r}: {error}") from error
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[-1] in (3, 4):
        return image[..., :3].astype(np.uint8, copy=False)
    raise ValueError(f"unsupported image input of type {type(image).__name__}; pass a PIL image, a path or HWC uint8")


def sample_times(
    duration: float,
    *,
    fps: float | None = 1.0,
    num_frames: int | None = None,
    max_frames: int | None = 64,
    start: float = 0.0,
) -> list[float]:
    """Target times (seconds) to sample in ``[start, start + duration)``: every ``1 / fps`` s, or ``num_frames``
    at the centres of equal slices; then at most ``max_frames`` of them, evenly spaced.

    >>> sample_times(3.0, fps=2.0)
    [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    >>> sample_times(10.0, num_frames=4, fps=None)
    [1.25, 3.75, 6.25, 8.75]
    """
    if (fps is None) == (num_frames is None):
        raise ValueError("give exactly one of fps and num_frames")
    if duration <= 0:
        return [start]
    if num_frames is not None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        times = [start + (k + 0.5) * duration / num_frames for k in range(num_frames)]
    else:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        times = [start + k / fps for k in range(max(1, math.ceil(duration * fps - 1e-9)))]
    if max_frames is not None and len(times) > max_frames:
        picks = np.linspace(0, len(times) - 1, max_frames).round().astype(int)
        times = [times[i] for i in picks]
    return times


def _stream_span(container: Any, stream: Any) -> tuple[float, float]:
    """(first presentation time, duration) in seconds from the stream's metadata, else the container's."""
    first = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    if stream.duration is not None and stream.time_base is not None:
        return first, float(stream.duration * stream.time_base)
    if container.duration is not None:
        return first, container.duration / 1_000_000  # AV_TIME_BASE
    raise ValueError("the file states no duration")


def load_video(
    path: str | Path,
    *,
    fps: float | None = 1.0,
    num_frames: int | None = None,
    max_frames: int | None = 64,
    start: float | None = None,
    end: float | None = None,
) -> VideoClip:
    """Decode ``path`` and keep, for each ``sample_times`` target, the first frame shown at or after it."""
    try:
        import av
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("decoding video files needs PyAV: pip install 'tempflex[video]'") from error
    if fps is not None and num_frames is not None:
        raise ValueError("give fps or num_frames, not both")
    if fps is None and num_frames is None:
        fps = 1.0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            stream = container.streams.video[0]
            first, length = _stream_span(container, stream)
            segment_start = max(first, start) if start is not None else first
            segment_end = first + length if end is None else min(end, first + length)
            targets = sample_times(
                segment_end - segment_start, fps=fps, num_frames=num_frames, max_frames=max_frames, start=segment_start
            )
            kept, times, previous = [], [], None
            for frame in container.decode(stream):  # one pass; only the kept frames are converted to RGB
                time = float(frame.time if frame.time is not None else 0.0)
                while len(kept) < len(targets) and time >= targets[len(kept)] - 1e-6:
                    kept.append(frame.to_ndarray(format="rgb24"))
                    times.append(time)
                if len(kept) == len(targets):
                    break
                previous = frame
            if not kept and previous is not None:  # the container's duration promised more than it holds
                kept, times = [previous.to_ndarray(format="rgb24")], [float(previous.time or 0.0)]
            if not kept:
                raise ValueError("no decodable frame")
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise ValueError(f"cannot read video {str(path)!r}: {error}") from error
    return VideoClip(frames=np.stack(kept), timestamps=times)
