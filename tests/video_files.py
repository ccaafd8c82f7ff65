"""Real video files for the tests, encoded with PyAV; each frame carries its index as 16 black/white blocks."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BLOCK = 16  # one bit per 16x16 block, 8 blocks a row, 2 rows: indices up to 65535


def painted_frame(index: int, height: int = 64, width: int = 128) -> np.ndarray:
    frame = np.full((height, width, 3), 96, np.uint8)
    for bit in range(16):
        row, col = divmod(bit, 8)
        value = 255 if (index >> bit) & 1 else 0
        frame[row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK] = value
    return frame


def frame_index(frame: np.ndarray) -> int:
    """Read back the index painted by ``painted_frame`` (robust to lossy coding)."""
    index = 0
    for bit in range(16):
        row, col = divmod(bit, 8)
        block = frame[row * BLOCK + 4 : (row + 1) * BLOCK - 4, col * BLOCK + 4 : (col + 1) * BLOCK - 4]
        index |= int(block.mean() > 128) << bit
    return index


def encode_video(
    path: Path,
    num_frames: int,
    fps: int = 10,
    *,
    codec: str = "mpeg4",
    size: tuple[int, int] = (64, 128),
    times_ms: list[int] | None = None,
    rotation: int | None = None,
    keyframe_every: int | None = None,
) -> Path:
    """Frames 0..num_frames-1 at ``fps`` (or at ``times_ms`` for a variable frame rate)."""
    height, width = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
        if times_ms is not None:
            stream.time_base = Fraction(1, 1000)
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if keyframe_every is not None:
            stream.codec_context.gop_size = keyframe_every
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(painted_frame(index, height, width), format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[index], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def encode_audio(path: Path, seconds: float = 1.0) -> Path:
    """An audio-only WAV file."""
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = np.zeros((1, int(8000 * seconds)), np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def claim_duration(path: Path, seconds: int) -> None:
    """Rewrite an mp4's header durations (mvhd, tkhd, mdhd) to claim ``seconds``, keeping the frames."""
    data = bytearray(path.read_bytes())
    movie_scale = struct.unpack(">I", data[data.find(b"mvhd") + 16 : data.find(b"mvhd") + 20])[0]
    for box, scale_offset, duration_offset in ((b"mvhd", 16, 20), (b"mdhd", 16, 20), (b"tkhd", None, 24)):
        at = data.find(box)
        scale = (
            movie_scale
            if scale_offset is None
            else struct.unpack(">I", data[at + scale_offset : at + scale_offset + 4])[0]
        )
        data[at + duration_offset : at + duration_offset + 4] = struct.pack(">I", scale * seconds)
    path.write_bytes(bytes(data))
