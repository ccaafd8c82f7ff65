"""A VLMEvalKit model class for TempFlex checkpoints, so ``run.py`` of VLMEvalKit can evaluate them.

VLMEvalKit is not on PyPI: clone it, install it (``pip install -e .``), then register the model in
``vlmeval/config.py``::

    from functools import partial
    from tempflex.evaluation.vlmevalkit import TempFlexVLMEval
    supported_VLM["TempFlex-Qwen3-4B"] = partial(TempFlexVLMEval, model_path="runs/stage4")

and run ``python run.py --data Video-MME MMStar --model TempFlex-Qwen3-4B``. The class follows VLMEvalKit's
documented ``BaseModel`` interface (``vlmeval/vlm/base.py``) without importing it: ``generate(message,
dataset)`` takes a string, a list of strings, or the interleaved ``[{"type": "image"|"video"|"text", "value":
...}]`` message and calls ``generate_inner(message, dataset)``; ``INTERLEAVE = True`` (images and text in
their order), ``VIDEO_LLM = True`` (video datasets pass the video file, and set ``nframe`` / ``fps`` on the
model; default: the paper's 128 frames), ``use_custom_prompt`` is False (the dataset builds the prompt).
It is tested against that interface, not against an installed VLMEvalKit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["TempFlexVLMEval", "message_to_content"]

_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def _as_dicts(message: Any) -> list[dict[str, Any]]:
    """VLMEvalKit's accepted message forms -> ``[{"type", "value"}]`` (as its ``preproc_content``)."""
    if isinstance(message, str):
        message = [message]
    if isinstance(message, dict):
        message = [message]
    parts = []
    for entry in message:
        if isinstance(entry, dict):
            if "type" not in entry or "value" not in entry:
                raise ValueError(f"message part {entry!r} needs 'type' and 'value'")
            parts.append(entry)
        elif isinstance(entry, str):
            suffix = Path(entry).suffix.lower() if len(entry) < 4096 else ""
            kind = "video" if suffix in _VIDEO_SUFFIXES else "image" if suffix in _IMAGE_SUFFIXES else "text"
            parts.append({"type": kind, "value": entry})
        else:
            raise ValueError(f"message part {entry!r} is neither a string nor a dict")
    return parts


def message_to_content(message: Any, *, nframe: int = 128, fps: float = -1) -> list[dict[str, Any]]:
    """A VLMEvalKit message -> the chat content parts ``TempFlexProcessor`` takes.

    >>> message_to_content([{"type": "video", "value": "v.mp4"}, {"type": "text", "value": "What happens?"}])
    [{'type': 'video', 'video': 'v.mp4', 'nframes': 128, 'max_frames': 128}, {'type': 'text', 'text': 'What happens?'}]
    """
    content = []
    for part in _as_dicts(message):
        kind, value = part["type"], part["value"]
        if kind == "text":
            content.append({"type": "text", "text": str(value)})
        elif kind == "image":
            content.append({"type": "image", "image": value})
        elif kind == "video":
            sampling = (
                {"fps": float(fps), "max_frames": nframe} if fps > 0 else {"nframes": nframe, "max_frames": nframe}
            )
            content.append({"type": "video", "video": value, **sampling})
        else:
            raise ValueError(f"message part type {kind!r}: TempFlex takes text, image and video")
    return content


class TempFlexVLMEval:
    """VLMEvalKit model: ``TempFlexVLMEval(model_path="runs/stage4").generate(message, dataset)`` -> reply."""

    INTERLEAVE = True
    VIDEO_LLM = True
    allowed_types = ("text", "image", "video")
    is_api = False

    def __init__(
        self,
        model_path: str = "tiny",
        nframe: int = 128,
        fps: float = -1,
        max_new_tokens: int = 64,
        device: str = "auto",
        dtype: str | None = None,
    ):
        from tempflex.loading import load, parse_dtype

        self.model, self.processor = load(model_path, device=device, dtype=parse_dtype(dtype))
        self.model.eval()
        self.nframe, self.fps, self.max_new_tokens = nframe, fps, max_new_tokens

    def use_custom_prompt(self, dataset: str | None) -> bool:
        """The datasets' own prompts are used (as in the paper's VLMEvalKit runs)."""
        return False

    def build_prompt(self, line: Any, dataset: str | None = None) -> list[dict[str, Any]]:
        """Not used: ``use_custom_prompt`` is False for every dataset."""
        raise NotImplementedError("TempFlexVLMEval uses the datasets' prompts")

    def set_dump_image(self, dump_image_func: Any) -> None:
        """Kept for VLMEvalKit's inference loop, which hands every model its image dumper."""
        self.dump_image_func = dump_image_func

    def generate(self, message: Any, dataset: str | None = None) -> str:
        """VLMEvalKit's entry point: normalise the message, then ``generate_inner``."""
        return self.generate_inner(_as_dicts(message), dataset)

    def generate_inner(self, message: list[dict[str, Any]], dataset: str | None = None) -> str:
        """The greedy reply to one interleaved message."""
        from tempflex.evaluation.items import Item
        from tempflex.evaluation.runner import generate_reply

        content = message_to_content(message, nframe=self.nframe, fps=self.fps)
        item = Item(id="vlmevalkit", content=content, answer="", metric="exact")
        return generate_reply(self.model, self.processor, item, max_new_tokens=self.max_new_tokens).strip()
