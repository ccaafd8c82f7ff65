"""``load_video``: a video file, a folder of frames or a list of frames -> sampled frames + their times.

``load_video(path, fps=1.0, max_frames=64)`` keeps one frame per second, at most 64 (evenly spaced when there
are more), as the authors sampled for training; ``max_frames=128`` is the paper's test setting and
``num_frames=N`` keeps N frames spread evenly. ``start`` / ``end`` (seconds) cut a segment. Times (``start``,
``end`` and the returned timestamps) count from the stream's first frame, not the container's clock: a stream
stamped from 600 s starts at 0.

Paths are always files, never FFmpeg protocols (``scene:1.mp4`` or ``concat:a.mp4|b.mp4`` is the file of that
name): PyAV reads through a Python file object, decord gets the absolute path.

Backends (both follow ``sampling.select_frames``, so they return the same frames). ``backend="auto"`` takes
PyAV: measured (``benchmarks/README.md``) as fast as decord's ``get_batch`` on a 30-s clip, faster on a
10-minute 1080p one (8.0 s against 12.4 s for 64 frames) and lighter (653 MB peak against 1002 MB):

- ``"pyav"`` (the ``video`` extra, ships FFmpeg): decodes forward and converts only the kept frames to RGB;
  when the next target lies more than ``SEEK_GAP`` seconds ahead it seeks to the keyframe before it instead of
  decoding the gap, so a 10-minute clip sampled to 64 frames decodes a few seconds around each target and
  holds only the 64 kept frames in memory. Display rotation (phone videos) is applied. A file whose header
  claims a longer or shorter duration than it holds is sampled again over what it really holds (the packets
  after the last target are read, not decoded, to find the real end). A packet that fails to decode is
  skipped (the frame before stays on screen) and counted in ``metadata.dropped_frames``.
- ``"decord"`` (optional): reads the frame index, then ``get_batch`` of the selected indices. A rotated video
  is read with PyAV instead (decord 0.6 fails on display rotation), and so is one decord cannot decode whole
  (decord fails the file on one corrupt packet).

Every failure (missing or empty file, not a video, audio only, truncated, nothing decodable, over ``timeout``
seconds, default 600: a guard against hangs, not a speed limit) raises ``MediaError`` naming the file, so a
batch job fails that one sample. Cost: each kept frame costs decoding from the keyframe before it; on 2 CPU
cores 64 frames from a 10-minute 1080p clip with 10-s keyframe spacing take about 8 s (``benchmarks/README.md``).

Example::

    clip = load_video("clip.mp4", fps=2.0)     # a 10-s 640x360 clip at 30 fps
    clip.frames.shape, clip.timestamps[:3]      # -> (20, 360, 640, 3), [0.0, 0.5, 1.0]; clip.metadata.fps == 30.0
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.util
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    """What the file says about itself (``num_frames`` is None when unknown), and what decoding lost.

    ``dropped_frames`` counts packets that failed to decode (a corrupt stretch): they are skipped and the frame
    on screen before them stays on screen, as FFmpeg's own player does; 0 for an intact file.
    """

    duration: float
    fps: float | None
    width: int
    height: int
    num_frames: int | None
    backend: str
    dropped_frames: int = 0


@dataclass
class VideoClip:
    """Sampled frames ``[F, H, W, 3]`` uint8 RGB, each frame's presentation time (s, from the stream's first
    frame), and the metadata."""

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
        """Target times within ``[first, last)`` (container time) cut to ``[first + start, first + end)``.

        ``start`` / ``end`` count from the stream's first frame, as a viewer's clock does: a stream stamped from
        600 s (a cut from a recording) with ``start=2`` starts 2 s into what is shown, not at 2 s of the
        recorder's clock. Returned times are in container time, as decoded frames are stamped.
        """
        begin = first if self.start is None else max(first, first + self.start)
        stop = last if self.end is None else min(last, first + self.end)
        if self.start is not None and begin >= last:
            raise MediaError(f"start={self.start}s is past the end of the video ({last - first:.3f}s)")
        return sample_times(
            stop - begin,
            fps=self.fps,
            num_frames=self.num_frames,
            max_frames=self.max_frames,
            min_frames=self.min_frames,
            start=begin,
        )

    def reaches_end(self, first: float, last: float) -> bool:
        """Whether the plan runs to the end of the video (no ``end`` before ``last``): then a header that
        understates the duration would cut it short."""
        return self.end is None or first + self.end > last


def _rotate(frame: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display rotation (degrees counter-clockwise, as FFmpeg's display matrix states it)."""
    turns = (round(rotation / 90) % 4) if rotation else 0
    return np.ascontiguousarray(np.rot90(frame, k=turns)) if turns else frame


@contextlib.contextmanager
def _open_pyav(path: Path) -> Iterator[Any]:
    """A PyAV container reading ``path`` through a Python file object.

    Rule: a path is always a file. Given a string, FFmpeg parses ``name:rest`` as a protocol, so a file named
    ``scene:1.mp4`` fails with "Protocol not found" and one named ``concat:a.mp4|b.mp4`` silently decodes
    other files; through a file object FFmpeg never sees the name.
    """
    import av

    with open(path, "rb") as file, av.open(file, "r") as container:
        yield container


def _decoder_path(path: Path) -> str:
    """The absolute path, for decoders that only take a string (decord): it starts with ``/``, which no
    FFmpeg protocol name does, so FFmpeg takes it as a plain file (decord reads a file object whole into
    memory, so it is given no file object)."""
    return os.path.abspath(path)


def _stream_span(container: Any, stream: Any) -> tuple[float | None, float | None]:
    """(first presentation time, duration) in seconds from the stream's metadata, else the container's; each
    None when the header does not say."""
    first = float(stream.start_time * stream.time_base) if stream.start_time is not None else None
    if stream.duration is not None and stream.time_base is not None:
        return first, float(stream.duration * stream.time_base)
    if container.duration is not None:
        return first, container.duration / 1_000_000  # AV_TIME_BASE
    return first, None


@dataclass
class _Packets:
    """What the demuxer handed over: the packets that failed to decode (by pts, else byte position: a packet
    decoded twice after a seek counts once) and the latest packet time seen (s; a threaded decoder takes
    packets ahead of the frames it returns, so this runs ahead of the last decoded frame)."""

    failed: set = field(default_factory=set)
    latest: float = float("-inf")

    def note(self, packet: Any) -> None:
        if packet.pts is not None and packet.time_base is not None:
            self.latest = max(self.latest, float(packet.pts * packet.time_base))


def _decoded(packets: Iterator[Any], seen: _Packets) -> Iterator[Any]:
    """The frames decoded from ``packets``; a packet that fails to decode is skipped and recorded in
    ``seen.failed``. A container that cannot be read further ends the stream there, keeping the frames before.

    Rule: decode what is decodable. One corrupt stretch must cost its own frames, not the file, as with the
    ``ffmpeg`` command line (which decodes 169-199 of 200 frames around 64 corrupt bytes). Not counted: frames
    the demuxer loses while resyncing (MKV) or that the decoder conceals without an error.
    """
    import av

    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError:  # the demuxer cannot go on: what decoded so far is the video
            return
        seen.note(packet)
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            seen.failed.add(packet.pts if packet.pts is not None else packet.pos)
            continue
        yield from frames


@dataclass
class _Decoded:
    """What one decoding pass found: the kept frames ``[F, H, W, 3]``, their container times, the time of the
    last frame decoded, the latest packet time seen (the real end when the tail was scanned, else None), and
    the packets that failed to decode."""

    frames: np.ndarray
    times: list[float]
    final: float
    tail: float | None
    failed: set


def _decode_pyav(path: Path, targets: list[float], deadline: float, *, scan_tail: bool) -> _Decoded:
    """The frame on screen at each target (``sampling.select_frames``'s rule, among the frames that decode),
    decoding forward and seeking over long gaps; only kept frames are converted to RGB, straight into one
    preallocated ``[F, H, W, 3]`` array. With ``scan_tail``, the packets after the last target are read
    (not decoded) to find where the stream really ends, for headers that understate the duration."""
    import av

    kept: np.ndarray | None = None
    times: list[float] = []
    seen = _Packets()
    previous, index = None, 0  # the last decoded frame (on screen until the next one)
    sought_for = -1  # the target index of the last seek: never seek twice for one target

    def keep_until(limit: float) -> None:
        nonlocal index, kept
        picture = None
        while index < len(targets) and targets[index] < limit - 1e-6:
            if picture is None:
                picture = _rotate(previous.to_ndarray(format="rgb24"), previous.rotation)
                if kept is None:
                    kept = np.empty((len(targets), *picture.shape), np.uint8)  # [F, H, W, 3]
            kept[index] = picture
            times.append(float(previous.time))
            index += 1

    with _open_pyav(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        packets = container.demux(stream)
        frames = _decoded(packets, seen)
        while index < len(targets):
            position = float(previous.time) if previous is not None else float("-inf")
            if previous is not None and targets[index] - position > SEEK_GAP and sought_for != index:
                sought_for = index
                try:  # land on the keyframe before the target, then decode forward
                    container.seek(int(targets[index] / stream.time_base), stream=stream, backward=True)
                    packets = container.demux(stream)
                    frames = _decoded(packets, seen)
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
        scanned = scan_tail and index == len(targets) and previous is not None
        if scanned:
            with contextlib.suppress(av.error.FFmpegError):  # an unreadable tail ends the scan
                for packet in packets:  # demux only: cheap, and the last target is near the end
                    if time.monotonic() > deadline:
                        raise TimeoutError
                    seen.note(packet)
    final = float(previous.time) if previous is not None else float("-inf")
    frames_kept = kept[:index] if kept is not None else np.empty((0, 0, 0, 3), np.uint8)
    return _Decoded(frames_kept, times, final, seen.latest if scanned else None, seen.failed)


def _read_pyav(path: Path, plan: _Plan, deadline: float) -> VideoClip:
    """Sample with PyAV: plan targets over the header's span, decode, then re-plan over what the file really
    holds when the header is wrong either way (frames stop long before its end, or run on past it: a VFR
    mp4 whose header says 6.1 s while frames run to 7.9 s)."""
    with _open_pyav(path) as container:
        if not container.streams.video:
            raise MediaError("no video stream (an audio-only file?)")
        stream = container.streams.video[0]
        first, duration = _stream_span(container, stream)
        rate = float(stream.average_rate) if stream.average_rate else None
        num_frames = stream.frames or None
        if first is None:  # no start time in the header: the first decoded frame's time is the origin
            frame = next((f for f in _decoded(container.demux(stream), _Packets()) if f.time is not None), None)
            first = float(frame.time) if frame is not None else 0.0
    last = first + (duration if duration is not None else 3600.0)  # no duration: plan an hour, then re-plan
    targets = plan.targets(first, last)
    decoded = _decode_pyav(path, targets, deadline, scan_tail=plan.reaches_end(first, last))
    failed = decoded.failed
    if not len(decoded.frames):
        raise MediaError(f"no decodable frame ({len(failed)} packets failed to decode)")
    interval = 1.0 / rate if rate else 0.0
    if decoded.tail is not None and decoded.tail > last - 1e-3:  # frames run on past the header's end
        last = decoded.tail + interval
        decoded = _decode_pyav(path, plan.targets(first, last), deadline, scan_tail=False)
    elif targets and decoded.final + 2 * interval + 1e-3 < targets[-1]:  # the file ends before its header says
        last = decoded.final + interval
        decoded = _decode_pyav(path, plan.targets(first, last), deadline, scan_tail=False)
    failed |= decoded.failed
    height, width = decoded.frames.shape[1:3]  # after rotation
    metadata = VideoMetadata(last - first, rate, width, height, num_frames, "pyav", dropped_frames=len(failed))
    return VideoClip(decoded.frames, [round(t - first, 6) for t in decoded.times], metadata)


def _pyav_rotation(path: Path) -> int:
    """Display rotation of the first decodable frame, read with PyAV (0 when PyAV is missing)."""
    if importlib.util.find_spec("av") is None:
        return 0
    with _open_pyav(path) as container:
        if not container.streams.video:
            raise MediaError("no video stream (an audio-only file?)")
        stream = container.streams.video[0]
        for frame in _decoded(container.demux(stream), _Packets()):
            return frame.rotation
    return 0


def _read_decord(path: Path, plan: _Plan, deadline: float) -> VideoClip:
    """Sample with decord: read the frame index, select, ``get_batch``. A rotated video, or one decord cannot
    decode whole (decord fails the file on one corrupt packet), is read with PyAV, which skips what is
    corrupt."""
    rotation = _pyav_rotation(path)
    if rotation:  # decord 0.6 fails on rotated videos (its frame buffer keeps the unrotated size)
        return _read_pyav(path, plan, deadline)
    import decord

    try:
        return _decord_clip(decord.VideoReader(_decoder_path(path), ctx=decord.cpu(0), num_threads=0), plan, deadline)
    except decord.DECORDError:
        if importlib.util.find_spec("av") is None:
            raise
        return _read_pyav(path, plan, deadline)


def _decord_clip(reader: Any, plan: _Plan, deadline: float) -> VideoClip:
    count = len(reader)
    if count == 0:
        raise MediaError("no decodable frame")
    spans = reader.get_frame_timestamp(list(range(count)))  # [count, 2]: start and end of each frame
    frame_times = [round(float(t), 6) for t in spans[:, 0]]
    first = frame_times[0]
    targets = plan.targets(first, float(spans[-1, 1]))
    indices = select_frames(frame_times, targets)
    frames = None
    for begin in range(0, len(indices), 8):  # in chunks of 8, copied into one array
        chunk = reader.get_batch(indices[begin : begin + 8]).asnumpy()[..., :3]  # [<=8, H, W, 3]
        if frames is None:
            frames = np.empty((len(indices), *chunk.shape[1:]), np.uint8)  # [F, H, W, 3]
        frames[begin : begin + len(chunk)] = chunk
        if time.monotonic() > deadline:
            raise TimeoutError
    rate = float(reader.get_avg_fps()) or None
    height, width = frames.shape[1:3]
    metadata = VideoMetadata(float(spans[-1, 1] - spans[0, 0]), rate, width, height, count, "decord")
    return VideoClip(frames, [round(frame_times[i] - first, 6) for i in indices], metadata)


def _frame_name(frames: list[Any], index: int) -> str:
    """How an error names one frame: its file when it is a path, else its place in the list (1-based)."""
    frame = frames[index]
    where = f"frame {index + 1} of {len(frames)}"
    return f"{where} ({Path(frame).name!r})" if isinstance(frame, (str, Path)) else where


def _frames_clip(frames: list[Any], plan: _Plan, source: str) -> VideoClip:
    """Given frames, ``1 / fps`` s apart (fps default 1): sampled by the same rules as a file; only the
    frames kept are decoded. Every error names ``source`` (the folder, or "a list of N frames") and the frame,
    so a batch job's log says which input to fix."""
    if not frames:
        raise MediaError(f"{source}: a video needs at least one frame")
    rate = plan.fps or 1.0
    frame_times = [i / rate for i in range(len(frames))]
    try:
        picks = select_frames(frame_times, plan.targets(0.0, len(frames) / rate))
    except MediaError as error:
        raise MediaError(f"{source}: {error}") from error
    decoded = {}
    for index in sorted(set(picks)):
        try:
            decoded[index] = load_image(frames[index])
        except MediaError as error:
            raise MediaError(f"{source}, {_frame_name(frames, index)}: {error}") from error
    sizes = {index: frame.shape[:2] for index, frame in decoded.items()}
    first = next(iter(sizes))
    odd = next((index for index, size in sizes.items() if size != sizes[first]), None)
    if odd is not None:
        raise MediaError(
            f"{source}: video frames differ in size: {_frame_name(frames, first)} is {sizes[first][0]}x"
            f"{sizes[first][1]}, {_frame_name(frames, odd)} is {sizes[odd][0]}x{sizes[odd][1]} (height x width)"
        )
    height, width = sizes[first]
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
    if isinstance(source, (np.ndarray, list, tuple)):
        kind = "an array" if isinstance(source, np.ndarray) else "a list"
        return _frames_clip(list(source), plan, f"video given as {kind} of {len(source)} frames")
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
        return _frames_clip(images, plan, f"video folder {str(path)!r}")
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
