"""What every benchmark reader yields (``Item``) and how a list of scored items becomes a results table.

An ``Item`` is one question: its id (unique within the benchmark, the key of the resumable predictions file),
the user turn as chat ``content`` parts (image / video / text, as ``TempFlexProcessor`` takes them), the
ground truth, the metric, and ``groups`` (e.g. ``{"duration": "short"}``) for the per-group breakdown.
``circular`` ties the rotated copies of one MMBench question together: the question counts as solved only
when every copy is.

``summarise(items, scores)`` -> ``{"overall": ..., "count": ..., "by_<group>": {value: score}}`` with scores
in percent (ANLS and VQA accuracy too), as the papers report them.

>>> items = [Item("1", [], "A", "choice", groups={"task": "x"}), Item("2", [], "B", "choice", groups={"task": "y"})]
>>> summarise(items, {"1": 1.0, "2": 0.0})
{'overall': 50.0, 'count': 2, 'by_task': {'x': 100.0, 'y': 0.0}}
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MCQ_SUFFIX", "OPEN_SUFFIX", "Item", "format_options", "summarise"]

MCQ_SUFFIX = "Answer with the option's letter from the given choices directly."  # lmms-eval / LLaVA's wording
OPEN_SUFFIX = "Answer the question using a single word or phrase."


@dataclass
class Item:
    """One benchmark question (see the module docstring)."""

    id: str
    content: list[dict[str, Any]]
    answer: str | list[str]  # a letter for "choice", the human answers for "vqa" / "anls" / "exact"
    metric: str  # "choice", "vqa", "anls" or "exact"
    options: dict[str, str] = field(default_factory=dict)  # letter -> text, for "choice"
    groups: dict[str, str] = field(default_factory=dict)
    circular: str | None = None  # MMBench: the id shared by the rotated copies of one question
    record: dict[str, Any] | None = None  # the source record, where a scorer needs it (the probe's logits)


def format_options(options: dict[str, str]) -> str:
    """``A. red\\nB. blue`` from ``{"A": "red", "B": "blue"}``."""
    return "\n".join(f"{letter}. {text}" for letter, text in options.items())


def _percent(values: list[float]) -> float:
    return round(100.0 * sum(values) / len(values), 2) if values else 0.0


def summarise(items: list[Item], scores: dict[str, float]) -> dict[str, Any]:
    """Overall and per-group scores (percent) from per-item scores in [0, 1]; see the module docstring."""
    circular = any(item.circular is not None for item in items)
    if circular:  # one entry per question: solved only if every rotated copy is
        groups: dict[str, list[Item]] = defaultdict(list)
        for item in items:
            groups[item.circular or item.id].append(item)
        units = [(members[0], min(scores[m.id] for m in members)) for members in groups.values()]
    else:
        units = [(item, scores[item.id]) for item in items]
    result: dict[str, Any] = {"overall": _percent([s for _, s in units]), "count": len(units)}
    if circular:
        result["copies"] = len(items)
    keys = sorted({key for item, _ in units for key in item.groups})
    for key in keys:
        by_value: dict[str, list[float]] = defaultdict(list)
        for item, score in units:
            if key in item.groups:
                by_value[item.groups[key]].append(score)
        result[f"by_{key}"] = {value: _percent(v) for value, v in sorted(by_value.items())}
    return result
