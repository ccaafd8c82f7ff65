"""Score a model on probe records: accuracy per task with the option-logit rule.

``evaluate(model, processor, records, media_root)`` returns ``{task: {"accuracy", "count"}}`` (and ``"all"``); the
prediction per record is ``tempflex.evaluation.option_logits.predict_letters`` (the option letter with the
highest next-token logit after the question).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tempflex.evaluation.option_logits import predict_letters_many

__all__ = ["accuracy_by_task", "evaluate", "evaluate_many"]


def accuracy_by_task(records: list[dict], predictions: list[str]) -> dict[str, dict[str, float]]:
    """``{task: {"accuracy": ..., "count": ...}}`` of predicted letters against the records' answers, plus ``"all"``."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for record, letter in zip(records, predictions, strict=True):
        correct = letter == record["answer"]
        hits[record["task"]].append(correct)
        hits["all"].append(correct)
    return {task: {"accuracy": sum(v) / len(v), "count": len(v)} for task, v in sorted(hits.items())}


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
    return evaluate_many({"model": model}, processor, records, media_root, batch_size=batch_size, cache=cache)["model"]


def evaluate_many(
    models: Mapping[str, Any],
    processor: Any,
    records: list[dict],
    media_root: str | Path,
    *,
    batch_size: int = 32,
    cache: dict | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """``evaluate`` for several models at once, each record decoded once: ``{name: {task: {...}}}``."""
    predictions = predict_letters_many(models, processor, records, media_root, batch_size=batch_size, cache=cache)
    return {name: accuracy_by_task(records, letters) for name, letters in predictions.items()}
