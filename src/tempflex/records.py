"""LLaVA-format records -> chat messages, and the option letters of multiple-choice questions.

One core module that training data, the evaluation readers and the probe share. A record::

    {"id": "v1", "video": "clips/v1.mp4", "video_options": {"fps": 8},
     "conversations": [{"from": "human", "value": "<video>\\nWhat moves?"}, {"from": "gpt", "value": "A ball."}]}

``to_messages(record, media_root)`` gives ``[{"role": "user", "content": [{"type": "video", "video":
"media_root/clips/v1.mp4", "fps": 8}, {"type": "text", "text": "What moves?"}]}, {"role": "assistant", ...}]``:
media parts in the order of their ``<image>`` / ``<video>`` tags (untagged media go before the first question, as
LLaVA does; a record with videos, no images and only ``<image>`` tags, one per video, is LLaVA-NeXT's way of
writing a video: each tag stands for the next video), roles ``human`` -> user, ``gpt`` -> assistant, ``system`` ->
system, and a ValueError naming the record for a tag without a file, a file without a tag, an unknown speaker, or
a malformed turn.

>>> to_messages({"id": "q", "conversations": [{"from": "human", "value": "Hi"}]}, Path("."))
[{'role': 'user', 'content': [{'type': 'text', 'text': 'Hi'}]}]
>>> LETTERS[:4]
'ABCD'
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["LETTERS", "ROLES", "to_messages"]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""Option letters of multiple-choice questions, in order (the probe, the benchmarks, answer extraction)."""

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
"""LLaVA speaker names -> chat roles."""
_TAG = re.compile(r"<(image|video)>\n?")


def to_messages(record: dict, media_root: Path) -> list[dict]:
    """A LLaVA record -> chat messages with image / video parts in the order of their tags."""
    images = record.get("image") or []
    images = [images] if isinstance(images, str) else list(images)
    videos = [record["video"]] if record.get("video") else []
    if not isinstance(record, dict):
        raise ValueError(f"a record must be an object, got {type(record).__name__}")
    turns = record.get("conversations") or []
    if not turns or not isinstance(turns, list):
        raise ValueError(f"record {record.get('id')!r} has no conversations")
    for number, turn in enumerate(turns):
        if not isinstance(turn, dict) or "from" not in turn or not isinstance(turn.get("value"), str):
            raise ValueError(f"record {record.get('id')!r}: turn {number} needs 'from' and a string 'value'")
    tags = [kind for turn in turns for kind in _TAG.findall(turn["value"])]
    text_tags = len(tags)
    # LLaVA-NeXT / LLaVA-Video data (what the paper trains on) marks a record's video with an <image> tag: with
    # videos, no image files and no <video> tag, each <image> tag stands for the next video.
    image_means_video = bool(videos) and not images and "video" not in tags and tags.count("image") == len(videos)
    media = [("image", media_root / p) for p in images] + [("video", media_root / p) for p in videos]
    if text_tags == 0 and media:  # LLaVA puts untagged media before the first question
        first = next(i for i, turn in enumerate(turns) if turn["from"] in ("human", "user"))
        tags = "".join(f"<{kind}>\n" for kind, _ in media)
        turns = [*turns[:first], {**turns[first], "value": tags + turns[first]["value"]}, *turns[first + 1 :]]
    queues = {
        "image": [str(p) for kind, p in media if kind == "image"],
        "video": [str(p) for kind, p in media if kind == "video"],
    }
    messages = []
    for turn in turns:
        role = ROLES.get(turn["from"])
        if role is None:
            raise ValueError(f"record {record.get('id')!r}: unknown speaker {turn['from']!r}")
        parts, position = [], 0
        for match in _TAG.finditer(turn["value"]):
            if match.start() > position:
                parts.append({"type": "text", "text": turn["value"][position : match.start()]})
            kind = "video" if image_means_video else match.group(1)
            if not queues[kind]:
                raise ValueError(f"record {record.get('id')!r}: more <{kind}> tags than {kind} files")
            part = {"type": kind, kind: queues[kind].pop(0)}
            if kind == "video":
                part.update(record.get("video_options") or {})
            parts.append(part)
            position = match.end()
        if position < len(turn["value"]):
            parts.append({"type": "text", "text": turn["value"][position:]})
        messages.append({"role": role, "content": parts})
    leftover = [kind for kind, queue in queues.items() if queue]
    if leftover:
        raise ValueError(f"record {record.get('id')!r}: more {leftover[0]} files than <{leftover[0]}> tags")
    return messages
