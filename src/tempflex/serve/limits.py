"""``ServerLimits``: what one request may cost, checked before the expensive work, each a ``tempflex serve`` flag.

Before any media is decoded (from headers only: PIL reads an image's size lazily, PyAV a video's stream header):

- ``max_images`` / ``max_videos`` per request (default 8 / 2);
- ``max_image_pixels``: source pixels of one image (default 16.8 M = 4096 x 4096; a 99-MP PNG is refused before
  it is decoded);
- ``max_frame_pixels``: source pixels of one video frame (default 8.3 M = 3840 x 2160);
- ``max_frames``: frames sampled from one video (default the processor's ``max_video_frames``, 64): a request's
  ``num_frames`` / ``max_frames`` above it is refused, and an ``fps`` request is capped at it;
- ``max_decoded_bytes``: the RGB bytes the request's media decode to at most (each image's pixels x 3, each video's
  frame pixels x 3 x its frame cap; default 1 GiB: 64 frames of 1080p are 398 MB, 64 of 4K 1.6 GB).

After tokenising (cheap next to generation, and bounded by the limits above and the body size):

- ``max_visual_tokens`` per request (default half the context);
- ``max_context``: prompt tokens + ``max_tokens`` (default the LLM's ``max_position_embeddings``).

Every refusal is a ``RequestError(400)`` naming the limit, the value asked and the flag that raises it.

    >>> limits = ServerLimits(max_frames=64)
    >>> limits.video_options({"fps": 30.0}, "video_url")
    {'fps': 30.0, 'max_frames': 64}
    >>> try:
    ...     limits.video_options({"nframes": 10**7}, "video_url")
    ... except RequestError as error:
    ...     print(error.message)
    video_url: 10000000 frames asked, above the limit of 64 (tempflex serve --max-frames)
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tempflex.serve.errors import RequestError

__all__ = ["ServerLimits"]


def _refuse(where: str, what: str, value: int, limit: int, flag: str) -> RequestError:
    return RequestError(
        400, f"{where}: {value} {what}, above the limit of {limit} (tempflex serve {flag})", param="messages",
        code="limit_exceeded",
    )  # fmt: skip


def _opened(source: str | bytes) -> Any:
    """A file object for bytes, a data URI or a path (paths are opened as files, never as URLs)."""
    if isinstance(source, (bytes, bytearray)):
        return io.BytesIO(source)
    if source.startswith("data:"):
        import base64

        return io.BytesIO(base64.b64decode(source.split(",", 1)[1]))
    return Path(source).open("rb")


@dataclass(frozen=True)
class ServerLimits:
    """Per-request limits (see the module docstring); ``for_model`` sizes the defaults from a model."""

    max_images: int = 8
    max_videos: int = 2
    max_image_pixels: int = 4096 * 4096
    max_frame_pixels: int = 3840 * 2160
    max_frames: int = 64
    max_decoded_bytes: int = 1 << 30
    max_visual_tokens: int = 16384
    max_context: int = 32768

    @classmethod
    def for_model(cls, model: Any, processor: Any, **overrides: Any) -> ServerLimits:
        """Defaults from the model: frames from the processor, context from the LLM, visual tokens half of it."""
        context = int(getattr(model.config.text_config, "max_position_embeddings", 0) or cls.max_context)
        values = {
            "max_frames": int(getattr(processor, "max_video_frames", None) or cls.max_frames),
            "max_context": context,
            "max_visual_tokens": context // 2,
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def video_options(self, options: dict[str, Any], where: str) -> dict[str, Any]:
        """A video part's sampling options within ``max_frames`` (refuse a larger count; cap an fps request)."""
        for key in ("nframes", "max_frames"):
            if key in options and options[key] > self.max_frames:
                raise _refuse(where, "frames asked", int(options[key]), self.max_frames, "--max-frames")
        if "nframes" not in options:
            options = {**options, "max_frames": min(int(options.get("max_frames") or self.max_frames), self.max_frames)}
        return options

    def check_conversation(self, conversation: list[dict]) -> list[dict]:
        """Count and size the media of a parsed conversation from their headers; returns it with capped options."""
        images = videos = decoded = 0
        checked = []
        for number, message in enumerate(conversation):
            content = message.get("content")
            if not isinstance(content, list):
                checked.append(message)
                continue
            parts = []
            for index, part in enumerate(content):
                where = f"messages[{number}].content[{index}]"
                if part.get("type") == "image":
                    images += 1
                    if images > self.max_images:
                        raise _refuse(where, "images in the request", images, self.max_images, "--max-images")
                    decoded += 3 * self._check_image(part["image"], where)
                elif part.get("type") == "video":
                    videos += 1
                    if videos > self.max_videos:
                        raise _refuse(where, "videos in the request", videos, self.max_videos, "--max-videos")
                    options = {k: v for k, v in part.items() if k not in ("type", "video")}
                    part = {"type": "video", "video": part["video"], **self.video_options(options, where)}
                    frames = part.get("nframes") or part.get("max_frames") or self.max_frames
                    decoded += 3 * frames * self._check_video(part["video"], where)
                if decoded > self.max_decoded_bytes:
                    raise _refuse(where, "bytes of decoded media", decoded, self.max_decoded_bytes, "--max-decoded-mb")
                parts.append(part)
            checked.append({**message, "content": parts})
        return checked

    def _check_image(self, source: str | bytes, where: str) -> int:
        """The image's pixels from its header (0 when unreadable here); refuse above ``max_image_pixels``."""
        from PIL import Image, UnidentifiedImageError

        try:
            with _opened(source) as handle, Image.open(handle) as image:  # reads the header only
                pixels = image.width * image.height
        except Image.DecompressionBombError as error:  # PIL's own check on the header's size: far over any limit
            claimed = re.search(r"\((\d+) pixels\)", str(error))
            pixels = int(claimed.group(1)) if claimed else self.max_image_pixels + 1
            raise _refuse(where, "image pixels", pixels, self.max_image_pixels, "--max-image-pixels") from error
        except (OSError, UnidentifiedImageError, ValueError):
            return 0  # not readable as an image here: the processor reports it with its own message
        if pixels > self.max_image_pixels:
            raise _refuse(where, "image pixels", pixels, self.max_image_pixels, "--max-image-pixels")
        return pixels

    def _check_video(self, source: str | bytes, where: str) -> int:
        """A frame's pixels from the stream header (0 when unreadable here); refuse above ``max_frame_pixels``."""
        try:
            import av
        except ImportError:  # pragma: no cover - the video extra is part of serve's test set-up
            return 0
        try:
            with _opened(source) as handle, av.open(handle) as container:  # the stream header, no frame decoded
                stream = container.streams.video[0]
                pixels = int(stream.codec_context.width) * int(stream.codec_context.height)
        except (OSError, IndexError, ValueError, av.FFmpegError):
            return 0  # not readable as a video here: the processor reports it with its own message
        if pixels > self.max_frame_pixels:
            raise _refuse(where, "frame pixels", pixels, self.max_frame_pixels, "--max-frame-pixels")
        return pixels

    def check_tokens(self, prompt_tokens: int, visual_tokens: int, max_tokens: int) -> None:
        """Visual tokens within ``max_visual_tokens`` and prompt + ``max_tokens`` within the context."""
        if visual_tokens > self.max_visual_tokens:
            raise RequestError(
                400, f"the media need {visual_tokens} visual tokens, above the {self.max_visual_tokens}-token limit "
                "(tempflex serve --max-visual-tokens); send fewer or smaller media, or fewer frames",
                param="messages", code="limit_exceeded",
            )  # fmt: skip
        if prompt_tokens + max_tokens > self.max_context:
            raise RequestError(
                400, f"the prompt has {prompt_tokens} tokens and max_tokens is {max_tokens}: "
                f"{prompt_tokens + max_tokens} is above the model's {self.max_context}-token context "
                "(tempflex serve --max-context)",
                param="max_tokens", code="context_length_exceeded",
            )  # fmt: skip
