"""Score a model on probe records: accuracy per task with the option-logit rule.

``evaluate(model, processor, records, media_root)`` returns ``{task: {"accuracy", "count"}}`` (and ``"all"``); the
prediction per record is ``tempflex.evaluation.option_logits.predict_letters`` (the option letter with the
highest next-token logit after the question).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from tempflex.evaluation.option_logits import predict_letters

__all__ = ["evaluate"]


def evaluate(
    model: Any,
    processor: Any,
    records: list[dict],
    media_root: str | Path,
    *,
    batch_size: int = 32,
    cache: dict | None = None,
) -> dict[str, dict[str, float]]:
    """``{task: {"accuracy": ..., "count": ...}}`` over the records, plus ``"all"``."""
    predictions = predict_letters(model, processor, records, media_root, batch_size=batch_size, cache=cache)
    hits: dict[str, list[bool]] = defaultdict(list)
    for record, letter in zip(records, predictions, strict=True):
        correct = letter == record["answer"]
        hits[record["task"]].append(correct)
        hits["all"].append(correct)
    return {task: {"accuracy": sum(v) / len(v), "count": len(v)} for task, v in sorted(hits.items())}
