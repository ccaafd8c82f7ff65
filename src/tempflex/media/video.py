"""``load_video``: a video file, a folder of frames or a list of frames -> sampled frames + their times.

``load_video(path, fps=1.0, max_frames=64)`` keeps one frame per second, at most 64 (evenly spaced when there
are more), as the authors sampled for training; ``max_frames=128`` is the paper's test setting and
``num_frames=N`` keeps N frames spread evenly. ``start`` / ``end`` (seconds) cut a segment.

Backends (both follow ``sampling.select_frames``, so they return the same frames). ``backend="auto"`` takes
PyAV: measured (``benchmarks/README.md``) as fast as decord's ``get_batch`` on a 30-s clip, faster on a
10-minute 1080p one (8.0 s against 12.4 s for 64 frames) and lighter (653 MB peak against 1002 MB):

- ``"pyav"`` (the ``video`` extra, ships FFmpeg): decodes forward and converts only the kept frames to RGB;
  when the next target lies more than ``SEEK_GAP`` seconds ahead it seeks to the keyframe before it instead of
  decoding the gap, so a 10-minute clip sampled to 64 frames decodes a few seconds around each target and
  holds only the 64 kept frames in memory. Display rotation (phone videos) is applied. A file whose header
  claims a longer duration than it holds is sampled again over what it really holds.
- ``"decord"`` (optional): reads the frame index, then ``get_batch`` of the selected indices. A rotated video
  is read with PyAV instead (decord 0.6 fails on display rotation).

Every failure (missing or empty file, not a video, audio only, truncated, undecodable, over ``timeout``
seconds, default 600: a guard against hangs, not a speed limit) raises ``MediaError`` naming the file, so a
batch job fails that one sample. Cost: each kept frame costs decoding from the keyframe before it; on 2 CPU
cores 64 frames from a 10-minute 1080p clip with 10-s keyframe spacing take about 8 s (``benchmarks/README.md``).

Example::

    clip = load_video("clip.mp4", fps=2.0)     # a 10-s 640x360 clip at 30 fps
    clip.frames.shape, clip.timestamps[:3]      # -> (20, 360, 640, 3), [0.0, 0.5, 1.0]; clip.metadata.fps == 30.0
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tempflex.media.errors import MediaError
from tempflex.media.images import decode_data_uri, load_image
from tempflex.media.sampling import sample_times, select_frames

__all__ = ["SEEK_GAP", "VideoClip", "VideoMetadata", "available_backends", "load_video"]

SEEK_GAP = 4.0
"""Seconds ahead of the decoder beyond which PyAV seeks instead of decoding through."""

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


@dataclass
class VideoMetadata:
    """What the file says about itself (``num_frames`` is None when unknown)."""

    duration: float
    fps: float | None
    width: int
    height: int
    num_frames: int | None
    backend: str


@dataclass
class VideoClip:
    """Sampled frames ``[F, H, W, 3]`` uint8 RGB, each frame's presentation time (s), and the metadata."""

    frames: np.ndarray
    timestamps: list[float]
    metadata: VideoMetadata


def available_backends() -> list[str]:
    """Installed backends, the preferred first (``"auto"`` takes the first)."""
    return [name for name, module in (("pyav", "av"), ("decord", "decord")) if importlib.util.find_spec(module)]


@dataclass
class _Plan:
    fps: float | None
    num_frames: int | None
    max_frames: int | None
    min_frames: int
    start: float | None
    end: float | None

    def targets(self, first: float, last: float) -> list[float]:
        """Target times within ``[first, last)`` cut to ``[start, end)``."""
        begin = first if self.start is None else max(first, self.start)
        stop = last if self.end is None else min(last, self.end)
        if stop <= begin and self.start is not None and self.start >= last:
            raise MediaError(f"start={self.start}s is past the end of the video ({last:.3f}s)")
        return sample_times(
            stop - begin,
            fps=self.fps,
            num_frames=self.num_frames,
            max_frames=self.max_frames,
            min_frames=self.min_frames,
            start=begin,
        )


def _rotate(frame: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display rotation (degrees counter-clockwise, as FFmpeg's display matrix states it)."""
    turns = (round(rotation / 90) % 4) if rotation else 0
    return np.ascontiguousarray(np.rot90(frame, k=turns)) if turns else frame


def _stream_span(container: Any, stream: Any) -> tuple[float, float]:
    """(first presentation time, end time) in seconds from the stream's metadata, else the container's."""
    first = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    if stream.duration is not None and stream.time_base is not None:
        return first, first + float(stream.duration * stream.time_base)
    if container.duration is not None:
        return first, first + container.duration / 1_000_000  # AV_TIME_BASE
    return first, float("inf")


def _decode_pyav(path: Path, targets: list[float], deadline: float) -> tuple[np.ndarray, list[float], float]:
    """The frame on screen at each target (``sampling.select_frames``'s rule), decoding forward and seeking
    over long gaps; only kept frames are converted to RGB, straight into one preallocated ``[F, H, W, 3]``
    array. Returns the frames, their times and the time of the last frame decoded."""
    import av

    kept: np.ndarray | None = None
    times: list[float] = []
    previous, index = None, 0  # the last decoded frame (on screen until the next one)
    sought_for = -1  # the target index of the last seek: never seek twice for one target

    def keep_until(limit: float) -> None:
        nonlocal index, kept
        picture = None
        while index < len(targets) and targets[index] < limit - 1e-6:
            if picture is None:
                picture = _rotate(previous.to_ndarray(format="rgb24"), previous.rotation)
                if kept is None:
                    kept = np.empty((len(targets), *picture.shape), np.uint8)
            kept[index] = picture
            times.append(float(previous.time))
            index += 1

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = container.decode(stream)
        while index < len(targets):
            position = float(previous.time) if previous is not None else float("-inf")
            if previous is not None and targets[index] - position > SEEK_GAP and sought_for != index:
                sought_for = index
                try:  # land on the keyframe before the target, then decode forward
                    container.seek(int(targets[index] / stream.time_base), stream=stream, backward=True)
                    frames = container.decode(stream)
                    previous = None
                except av.error.FFmpegError:
                    pass  # unseekable: keep decoding forward
            advanced = False
            for frame in frames:
                if time.monotonic() > deadline:
                    raise TimeoutError
                if frame.time is None:
                    continue
                if previous is not None:
                    keep_until(float(frame.time))
                previous, advanced = frame, True
                if index < len(targets) and targets[index] - float(frame.time) > SEEK_GAP and sought_for != index:
                    break  # far from the next target: seek (once per target, so a far keyframe cannot loop)
                if index == len(targets):
                    break
            if not advanced:  # end of stream: the last frame stays on screen
                if previous is not None:
                    keep_until(float("inf"))
                break
    final = float(previous.time) if previous is not None else float("-inf")
    return (kept[:index] if kept is not None else np.empty((0, 0, 0, 3), np.uint8)), times, final


def _read_pyav(path: Path, plan: _Plan, deadline: float) -> VideoClip:
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise MediaError("no video stream (an audio-only file?)")
        stream = container.streams.video[0]
        first, last = _stream_span(container, stream)
        rate = float(stream.average_rate) if stream.average_rate else None
        width, height = stream.codec_context.width, stream.codec_context.height
        num_frames = stream.frames or None
    targets = plan.targets(first, last if last != float("inf") else first + 3600.0)
    kept, times, final = _decode_pyav(path, targets, deadline)
    if not len(kept):
        raise MediaError("no decodable frame")
    interval = 1.0 / rate if rate else 0.0
    if targets and final + 2 * interval + 1e-3 < targets[-1]:  # the file ends long before its header says
        last = final + interval
        kept, times, _ = _decode_pyav(path, plan.targets(first, last), deadline)
    height, width = kept.shape[1:3]  # after rotation
    metadata = VideoMetadata(last - first, rate, width, height, num_frames, "pyav")
    return VideoClip(kept, times, metadata)


def _pyav_rotation(path: Path) -> int:
    """Display rotation of the first frame, read with PyAV (0 when PyAV is missing)."""
    if importlib.util.find_spec("av") is None:
        return 0
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise MediaError("no video stream (an audio-only file?)")
        for frame in container.decode(video=0):
            return frame.rotation
    return 0


def _read_decord(path: Path, plan: _Plan, deadline: float) -> VideoClip:
    rotation = _pyav_rotation(path)
    if rotation:  # decord 0.6 fails on rotated videos (its frame buffer keeps the unrotated size)
        return _read_pyav(path, plan, deadline)
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=0)
    count = len(reader)
    if count == 0:
        raise MediaError("no decodable frame")
    spans = reader.get_frame_timestamp(list(range(count)))  # [count, 2]: start and end of each frame
    frame_times = [round(float(t), 6) for t in spans[:, 0]]
    targets = plan.targets(frame_times[0], float(spans[-1, 1]))
    indices = select_frames(frame_times, targets)
    frames = None
    for begin in range(0, len(indices), 8):  # in chunks of 8, copied into one array
        chunk = reader.get_batch(indices[begin : begin + 8]).asnumpy()[..., :3]
        if frames is None:
            frames = np.empty((len(indices), *chunk.shape[1:]), np.uint8)
        frames[begin : begin + len(chunk)] = chunk
        if time.monotonic() > deadline:
            raise TimeoutError
    rate = float(reader.get_avg_fps()) or None
    height, width = frames.shape[1:3]
    metadata = VideoMetadata(float(spans[-1, 1] - spans[0, 0]), rate, width, height, count, "decord")
    return VideoClip(frames, [frame_times[i] for i in indices], metadata)


def _frames_clip(frames: list[Any], plan: _Plan) -> VideoClip:
    """Given frames, ``1 / fps`` s apart (fps default 1): sampled by the same rules as a file; only the
    frames kept are decoded."""
    if not frames:
        raise MediaError("a video needs at least one frame")
    rate = plan.fps or 1.0
    frame_times = [i / rate for i in range(len(frames))]
    picks = select_frames(frame_times, plan.targets(0.0, len(frames) / rate))
    decoded = {index: load_image(frames[index]) for index in sorted(set(picks))}
    if len({frame.shape for frame in decoded.values()}) != 1:
        raise MediaError(f"video frames differ in size: {sorted({f.shape[:2] for f in decoded.values()})}")
    height, width = next(iter(decoded.values())).shape[:2]
    metadata = VideoMetadata(len(frames) / rate, rate, width, height, len(frames), "frames")
    return VideoClip(np.stack([decoded[i] for i in picks]), [frame_times[i] for i in picks], metadata)


def load_video(
    source: str | Path | bytes | list | np.ndarray,
    *,
    fps: float | None = None,
    num_frames: int | None = None,
    max_frames: int | None = 64,
    min_frames: int = 1,
    start: float | None = None,
    end: float | None = None,
    backend: str = "auto",
    timeout: float = 600.0,
) -> VideoClip:
    """Sample a video (file, bytes, base64 data URI, folder of frame images, list of frames or ``[F, H, W, C]``
    array); see the module docstring."""
    if fps is not None and num_frames is not None:
        raise ValueError("give fps or num_frames, not both")
    if start is not None and end is not None and end <= start:
        raise ValueError(f"end={end}s must be after start={start}s")
    plan = _Plan(
        fps if fps is not None or num_frames is not None else 1.0, num_frames, max_frames, min_frames, start, end
    )
    if isinstance(source, np.ndarray):
        return _frames_clip(list(source), plan)
    if isinstance(source, (list, tuple)):
        return _frames_clip(list(source), plan)
    if isinstance(source, (bytes, bytearray)) or (isinstance(source, str) and source.startswith("data:")):
        with tempfile.TemporaryDirectory() as folder:  # decoders want a seekable file: spill the bytes
            path = Path(folder) / "video"
            path.write_bytes(bytes(source) if isinstance(source, (bytes, bytearray)) else decode_data_uri(source))
            try:
                return load_video(path, fps=fps, num_frames=num_frames, max_frames=max_frames, min_frames=min_frames,
                                  start=start, end=end, backend=backend, timeout=timeout)  # fmt: skip
            except MediaError as error:  # name the source the caller gave, not the temporary file
                given = (
                    f"<{len(source)} bytes>" if isinstance(source, (bytes, bytearray)) else repr(source[:40] + "...")
                )
                raise MediaError(str(error).replace(repr(str(path)), given)) from error
    path = Path(source)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not images:
            raise MediaError(f"video folder {str(path)!r} holds no frame images")
        return _frames_clip(images, plan)
    if not path.is_file():
        raise MediaError(f"video {str(path)!r}: no such file")
    if path.stat().st_size == 0:
        raise MediaError(f"video {str(path)!r}: the file is empty")
    installed = available_backends()
    chosen = installed[0] if backend == "auto" and installed else backend
    if chosen not in ("pyav", "decord"):
        raise ValueError(f"unknown video backend {backend!r}; choose 'auto', 'pyav' or 'decord'")
    if chosen not in installed:
        extra = "pip install 'tempflex[video]'" if chosen == "pyav" else "pip install decord"
        raise ImportError(f"the {chosen} video backend is not installed: {extra}")
    reader = _read_pyav if chosen == "pyav" else _read_decord
    deadline = time.monotonic() + timeout
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(reader, path, plan, deadline).result(timeout=timeout + 1.0)
    except MediaError as error:
        raise MediaError(f"video {str(path)!r}: {error}") from error
    except (TimeoutError, concurrent.futures.TimeoutError) as error:
        raise MediaError(f"video {str(path)!r}: decoding took longer than timeout={timeout}s") from error
    except Exception as error:  # FFmpeg / decord errors of every kind: name the file and the cause
        raise MediaError(f"cannot read video {str(path)!r}: {type(error).__name__}: {error}") from error
    finally:
        pool.shutdown(wait=False)
