"""OpenAI chat-completion requests -> processor conversations and ``GenerationParams``; responses back.

Accepted (everything else is a 400 naming the field):

- ``messages``: ``system`` / ``user`` / ``assistant`` messages whose ``content`` is a string or a list of parts
  ``{"type": "text", "text"}``, ``{"type": "image_url", "image_url": {"url"}}`` and
  ``{"type": "video_url", "video_url": {"url"}}`` (a URL may also be given as a plain string);
- ``max_tokens`` (or ``max_completion_tokens``), ``temperature`` (0 = greedy), ``top_p``, ``stop`` (a string or up
  to 4), ``seed``, ``n`` (1 only), ``stream``, ``stream_options.include_usage``;
- ``mm_processor_kwargs`` as in vLLM, for every video of the request: ``fps``, ``num_frames``, ``max_frames``,
  ``max_pixels`` (per frame), ``video_start``, ``video_end`` (s), ``max_video_tokens``.

    >>> parse_params({"max_tokens": 5, "stop": "."}, max_tokens_limit=64)
    GenerationParams(max_tokens=5, temperature=1.0, top_p=1.0, stop=('.',), seed=None)
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from tempflex.serve.engine import Completion, GenerationParams, Prepared
from tempflex.serve.errors import RequestError
from tempflex.serve.media_policy import MediaPolicy

__all__ = ["VIDEO_KNOBS", "completion_body", "parse_conversation", "parse_params", "usage_body"]

VIDEO_KNOBS = {
    "fps": "fps",
    "num_frames": "nframes",
    "max_frames": "max_frames",
    "max_pixels": "max_pixels",
    "video_start": "video_start",
    "video_end": "video_end",
    "max_video_tokens": "max_video_tokens",
}
"""``mm_processor_kwargs`` keys -> the processor's video-part keys (``processing.VIDEO_OPTIONS``)."""

_ROLES = ("system", "user", "assistant")


def _number(body: dict, name: str, default: float, low: float, high: float, *, integer: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        return default
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        what = "an integer" if integer else "a number"
        raise RequestError(400, f"{name} must be {what} in [{low}, {high}], got {value!r}", param=name)
    return value


def parse_params(body: dict, *, max_tokens_limit: int) -> GenerationParams:
    """The sampling settings of a request body; ``RequestError(400)`` naming a bad field."""
    if body.get("n", 1) != 1:
        raise RequestError(400, f"n must be 1 (one choice per request), got {body.get('n')!r}", param="n")
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _number(body, name, min(256, max_tokens_limit), 1, max_tokens_limit, integer=True)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else (stop or [])
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) and s for s in stops):
        raise RequestError(400, f"stop must be a non-empty string or a list of up to 4, got {stop!r}", param="stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**64):
        raise RequestError(400, f"seed must be an integer in [-2**63, 2**64), got {seed!r}", param="seed")
    return GenerationParams(
        max_tokens=max_tokens,
        temperature=float(_number(body, "temperature", 1.0, 0.0, 2.0)),
        top_p=float(_number(body, "top_p", 1.0, 1e-6, 1.0)),
        stop=tuple(stops),
        seed=seed,
    )


def _video_options(body: dict) -> dict[str, Any]:
    knobs = body.get("mm_processor_kwargs") or {}
    if not isinstance(knobs, dict):
        raise RequestError(400, "mm_processor_kwargs must be an object", param="mm_processor_kwargs")
    unknown = sorted(set(knobs) - set(VIDEO_KNOBS))
    if unknown:
        raise RequestError(
            400, f"mm_processor_kwargs: unknown keys {unknown}; expected some of {sorted(VIDEO_KNOBS)}",
            param="mm_processor_kwargs",
        )  # fmt: skip
    options = {}
    for key, value in knobs.items():
        integer = key in ("num_frames", "max_frames", "max_pixels", "max_video_tokens")
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)) or value < 0:
            what = "a non-negative integer" if integer else "a non-negative number"
            raise RequestError(400, f"mm_processor_kwargs.{key} must be {what}, got {value!r}", param=key)
        options[VIDEO_KNOBS[key]] = value
    return options


def _url_of(part: dict, kind: str, where: str) -> str:
    value = part.get(kind)
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise RequestError(400, f"{where}: a {kind} part needs {{{kind!r}: {{'url': ...}}}}", param="messages")
    if "\x00" in url:
        raise RequestError(400, f"{where}: the {kind} URL contains a NUL byte", param="messages")
    return url


def parse_conversation(body: dict, policy: MediaPolicy) -> list[dict]:
    """``messages`` -> the processor's conversation, media resolved through ``policy`` (may fetch: run off-loop)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "messages must be a non-empty list", param="messages")
    video_options = _video_options(body)
    conversation = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            role = message.get("role") if isinstance(message, dict) else None
            raise RequestError(400, f"{where}: role must be one of {list(_ROLES)}, got {role!r}", param="messages")
        content = message.get("content")
        if isinstance(content, str):
            conversation.append({"role": message["role"], "content": content})
            continue
        if not isinstance(content, list):
            raise RequestError(400, f"{where}.content must be a string or a list of parts", param="messages")
        parts = []
        for number, part in enumerate(content):
            at = f"{where}.content[{number}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                parts.append({"type": "text", "text": part["text"]})
            elif kind in ("image_url", "video_url") and message["role"] != "user":
                raise RequestError(400, f"{at}: only user messages may carry images and videos", param="messages")
            elif kind == "image_url":
                parts.append({"type": "image", "image": policy.resolve(_url_of(part, kind, at), f"{at}.image_url")})
            elif kind == "video_url":
                source = policy.resolve(_url_of(part, kind, at), f"{at}.video_url")
                parts.append({"type": "video", "video": source, **video_options})
            else:
                raise RequestError(
                    400, f"{at}: unsupported part {kind!r}; use text, image_url or video_url", param="messages"
                )
        conversation.append({"role": message["role"], "content": parts})
    return conversation


def usage_body(prepared: Prepared, completion_tokens: int) -> dict[str, Any]:
    """OpenAI's ``usage`` plus the prompt's visual tokens (``visual_tokens``, and per kind in the details)."""
    return {
        "prompt_tokens": prepared.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prepared.prompt_tokens + completion_tokens,
        "visual_tokens": prepared.visual_tokens,
        "prompt_tokens_details": {"image_tokens": prepared.image_tokens, "video_tokens": prepared.video_tokens},
    }


def new_completion_id() -> str:
    """A fresh ``chatcmpl-...`` id."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def completion_body(model: str, prepared: Prepared, completion: Completion) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` response."""
    reason = "length" if completion.finish_reason == "length" else "stop"
    return {
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "finish_reason": reason,
                "logprobs": None,
            }
        ],
        "usage": usage_body(prepared, completion.completion_tokens),
    }


def chunk_body(chunk_id: str, model: str, delta: dict, finish_reason: str | None = None) -> dict[str, Any]:
    """One ``chat.completion.chunk`` of a stream."""
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
