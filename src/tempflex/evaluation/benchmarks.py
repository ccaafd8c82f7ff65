"""The benchmark table: name -> reader, metric and what the paper reports for it.

``BENCHMARKS[name].load(data_path, frames)`` returns the items; ``score_item`` scores one reply.
See ``video_benchmarks`` and ``image_benchmarks`` for each benchmark's file layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from tempflex.evaluation.answers import extract_choice
from tempflex.evaluation.image_benchmarks import load_docvqa, load_textvqa, load_tsv_mcq
from tempflex.evaluation.items import Item
from tempflex.evaluation.metrics import anls, exact_match, vqa_accuracy
from tempflex.evaluation.video_benchmarks import load_mlvu, load_probe, load_tempcompass, load_videomme

__all__ = ["BENCHMARKS", "Benchmark", "score_item"]


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its reader, a one-line description, and the group whose mean is also reported."""

    name: str
    load: Callable[[Path, int | None], list[Item]]
    description: str
    macro: str | None = None  # e.g. "task": also report the unweighted mean over tasks (MLVU's M-Avg)
    max_new_tokens: int = 16


BENCHMARKS = {
    b.name: b
    for b in (
        Benchmark("videomme", load_videomme, "Video-MME without subtitles, by duration (short/medium/long)"),
        Benchmark("videomme-sub", partial(load_videomme, subtitles=True), "Video-MME with subtitles"),
        Benchmark("tempcompass", load_tempcompass, "TempCompass multi-choice, by temporal dimension"),
        Benchmark("mlvu", load_mlvu, "MLVU dev, the seven multiple-choice tasks; M-Avg", macro="task"),
        Benchmark("mmbench", partial(load_tsv_mcq, circular=True), "MMBench TSV with CircularEval"),
        Benchmark("mmstar", load_tsv_mcq, "MMStar TSV"),
        Benchmark("ai2d", load_tsv_mcq, "AI2D TSV (test)"),
        Benchmark("textvqa", load_textvqa, "TextVQA val, VQA accuracy over 10 answers", max_new_tokens=32),
        Benchmark("docvqa", load_docvqa, "DocVQA val, ANLS (threshold 0.5)", max_new_tokens=32),
        Benchmark("probe", load_probe, "the built-in temporal probe (tempflex probe generate)"),
    )
}


def score_item(item: Item, reply: str | None) -> tuple[float, str | None]:
    """``(score in [0, 1], the extracted letter or None)`` for one reply; a failed item (``None``) scores 0."""
    if reply is None:
        return 0.0, None
    if item.metric == "choice":
        letter = extract_choice(reply, item.options)
        return float(letter == item.answer), letter
    answers = [item.answer] if isinstance(item.answer, str) else list(item.answer)
    scorer = {"vqa": vqa_accuracy, "anls": anls, "exact": exact_match}[item.metric]
    return scorer(reply.strip(), answers), None
