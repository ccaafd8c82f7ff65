"""Media input: images, and videos sampled in time, robust to bad files.

- ``load_image(source)``: path, bytes, data URI, PIL or array -> ``[H, W, 3]`` uint8 RGB (``images``).
- ``load_video(source, fps=..., num_frames=..., max_frames=64, ...)`` -> ``VideoClip`` (``video``).
- ``sample_times`` / ``select_frames``: which instants and which frames (``sampling``).
- ``MediaError``: every unreadable input, naming the source and the cause.

Video decoding needs PyAV (``pip install 'tempflex[video]'``); decord is an optional second backend.
"""

from tempflex.media.errors import MediaError
from tempflex.media.images import load_image
from tempflex.media.sampling import sample_times, select_frames
from tempflex.media.video import VideoClip, VideoMetadata, available_backends, load_video

__all__ = [
    "MediaError",
    "VideoClip",
    "VideoMetadata",
    "available_backends",
    "load_image",
    "load_video",
    "sample_times",
    "select_frames",
]
