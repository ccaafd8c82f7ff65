"""Export done videos as LLaVA conversation JSONL, the format ``tempflex.train.data`` reads.

Per done video: one caption sample (``CAPTION_PROMPT`` -> the caption) and one sample per question-answer pair,
each with ``<video>`` before the human text. Extra keys (``task``, ``dimension``, ``vqa_type``, ``source``,
``video_id``) ride along; the training loader ignores them. Records come in video-id order, so two stores with the
same results export byte-identical files. Video paths are absolute, or relative to ``media_root`` when given
(the training mixture's ``media_root``).

Example::

    tempflex synth export --store synth.db --format llava --out synth.jsonl
    # -> wrote 1100 samples (100 captions, 1000 VQA) from 100 videos to synth.jsonl
    # {"id": "3f2a...-caption", "video": "/data/v1.mp4", "conversations": [{"from": "human",
    #   "value": "<video>\\nDescribe this video in detail."}, {"from": "gpt", "value": "A man ..."}], ...}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tempflex.synth.store import Store

__all__ = ["CAPTION_PROMPT", "export_llava", "llava_records", "resolve_version"]

CAPTION_PROMPT = "Describe this video in detail."
"""The human turn of a caption sample."""


def resolve_version(store: Store, prompt_version: str | None) -> str:
    """The prompt version to read: the one given, else the store's only one (an error names the choices)."""
    versions = store.versions()
    if prompt_version is not None:
        if prompt_version not in versions:
            raise ValueError(f"prompt version {prompt_version!r} is not in {store.path}; it holds {versions}")
        return prompt_version
    if len(versions) != 1:
        raise ValueError(f"{store.path} holds {len(versions)} prompt versions {versions}: give --prompt-version")
    return versions[0]


def _sample(sample_id: str, video: str, question: str, answer: str, **extra: object) -> dict:
    conversations = [{"from": "human", "value": f"<video>\n{question}"}, {"from": "gpt", "value": answer}]
    return {"id": sample_id, "video": video, "conversations": conversations, **extra}


def llava_records(store: Store, prompt_version: str, *, media_root: str | Path | None = None) -> list[dict]:
    """LLaVA samples of every done video of one prompt version (see the module docstring)."""
    records = []
    for row in sorted(store.rows(prompt_version, ("done",)), key=lambda r: r.video_id):
        video = os.path.relpath(row.source, media_root) if media_root is not None else row.source
        source = str(row.metadata.get("source", "unknown"))
        result = row.result or {}
        common = {"video_id": row.video_id, "source": source}
        records.append(_sample(f"{row.video_id}-caption", video, CAPTION_PROMPT, result["caption"],
                               task="caption", **common))  # fmt: skip
        for vqa_type in (1, 2):
            for index, pair in enumerate(result[f"vqa_type{vqa_type}"]):
                records.append(_sample(f"{row.video_id}-vqa{vqa_type}-{index}", video, pair["question"],
                                       pair["answer"], task="vqa", vqa_type=vqa_type, dimension=pair["dimension"],
                                       **common))  # fmt: skip
    return records


def export_llava(
    store: Store, out: str | Path, *, prompt_version: str | None = None, media_root: str | Path | None = None
) -> dict[str, int]:
    """Write the JSONL (atomically: a temporary file renamed); returns counts of videos, captions and VQA."""
    version = resolve_version(store, prompt_version)
    records = llava_records(store, version, media_root=media_root)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with open(partial, "w") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    partial.replace(out)
    captions = sum(1 for r in records if r["task"] == "caption")
    return {"videos": captions, "captions": captions, "vqa": len(records) - captions}
