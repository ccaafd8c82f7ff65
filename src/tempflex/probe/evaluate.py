"""Score a model on probe records: the option letter with the highest next-token logit after the prompt.

``evaluate(model, processor, records, media_root)`` returns accuracy per task (and ``"all"``) with counts.
Each record is rendered as a user turn with the generation prompt; the model reads it once, and among the
tokens of the option letters (``A``, ``B``, ...) the one with the highest logit at the last position is the
prediction: no sampling, no parsing of free text, and the same rule for every model variant.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from tempflex.probe.tasks import LETTERS
from tempflex.train.data import to_messages

__all__ = ["evaluate", "predict_letter"]


def _letter_ids(tokenizer: Any, count: int) -> list[int]:
    ids = []
    for letter in LETTERS[:count]:
        encoded = tokenizer.encode(letter, add_special_tokens=False)
        if len(encoded) != 1:
            raise ValueError(f"option letter {letter!r} is not a single token for this tokenizer: {encoded}")
        ids.append(encoded[0])
    return ids


@torch.no_grad()
def predict_letter(model: Any, processor: Any, record: dict, media_root: Path) -> str:
    """The option letter the model scores highest for one probe record."""
    messages = to_messages(record, media_root)[:1]  # the question only
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    inputs = {k: v.to(model.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    logits = model(**inputs, logits_to_keep=1).logits[0, -1]  # [V]
    letter_ids = _letter_ids(processor.tokenizer, len(record["options"]))
    return LETTERS[int(logits[letter_ids].argmax())]


def evaluate(model: Any, processor: Any, records: list[dict], media_root: str | Path) -> dict[str, dict[str, float]]:
    """``{task: {"accuracy": ..., "count": ...}}`` over the records, plus ``"all"``."""
    model.eval()
    hits: dict[str, list[bool]] = defaultdict(list)
    for record in records:
        correct = predict_letter(model, processor, record, Path(media_root)) == record["answer"]
        hits[record["task"]].append(correct)
        hits["all"].append(correct)
    return {task: {"accuracy": sum(v) / len(v), "count": len(v)} for task, v in sorted(hits.items())}
