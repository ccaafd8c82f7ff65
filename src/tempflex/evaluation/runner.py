"""Run one benchmark: generate a reply per item, append it to a resumable predictions file, score, report.

Command::

    tempflex eval --model runs/stage4 --benchmark videomme --data ~/data/Video-MME --output eval/videomme

writes into ``--output``:

- ``predictions.jsonl``: one line per finished item, ``{"id", "reply", "choice", "score"}`` (or ``"error"``
  for an item whose media or record failed: it scores 0 and the run goes on), written and flushed as each
  item ends. A rerun with the same ``--output`` skips every id already there and computes only the rest;
  a half-written last line (a killed run) is dropped.
- ``results.json``: the scores (percent; overall, per group, MLVU's mean over tasks), the item count, the
  failures, and how the numbers were made: the exact command, seed, frames, generation settings, and the
  versions of tempflex, torch, transformers and Python.
- ``results.md``: the same scores as a markdown table.

Multiple choice is scored as the harnesses do it: greedy generation of a short reply, then
``extract_choice``. For the probe, ``rule="logits"`` instead takes the option letter with the highest
next-token logit (``evaluation.option_logits``, the probe's rule).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tempflex.evaluation.benchmarks import BENCHMARKS, score_item
from tempflex.evaluation.generation import generate_replies
from tempflex.evaluation.items import Item, summarise
from tempflex.evaluation.option_logits import predict_letters

__all__ = ["format_results", "generate_chat_reply", "generate_reply", "read_predictions", "run_benchmark"]


def read_predictions(path: Path) -> dict[str, dict[str, Any]]:
    """Finished items by id; a truncated last line (an interrupted write) is cut off the file."""
    if not path.exists():
        return {}
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
        path.write_bytes(raw)
    done = {}
    for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if line.strip():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not JSON ({error}); delete the line to go on") from error
            done[str(entry["id"])] = entry
    return done


@torch.no_grad()
def generate_reply(model: Any, processor: Any, item: Item, *, max_new_tokens: int = 16) -> str:
    """The model's greedy reply to one item's user turn."""
    return generate_chat_reply(
        model, processor, [{"role": "user", "content": item.content}], max_new_tokens=max_new_tokens
    )


@torch.no_grad()
def generate_chat_reply(model: Any, processor: Any, messages: list[dict[str, Any]], *, max_new_tokens: int = 16) -> str:
    """The model's greedy reply after a whole chat: ``[{"role": "system" | "user" | "assistant", "content": ...}]``
    (content as ``Item.content``, or a string), ending with a user turn."""
    return generate_replies(model, processor, [messages], max_new_tokens=max_new_tokens)[0]


def _logit_letter(model: Any, processor: Any, item: Item) -> str:
    if item.record is None:
        raise ValueError(f"item {item.id}: the logits rule needs the probe's records")
    return predict_letters(model, processor, [item.record], Path(), batch_size=1)[0]  # media paths are absolute


def _versions() -> dict[str, str]:
    import transformers

    import tempflex

    return {
        "tempflex": getattr(tempflex, "__version__", "unknown"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run_benchmark(
    model: Any,
    processor: Any,
    benchmark: str,
    data: str | Path,
    output: str | Path,
    *,
    frames: int | None = None,
    limit: int | None = None,
    max_new_tokens: int | None = None,
    rule: str = "generate",
    command: str = "",
    seed: int = 0,
    on_item: Callable[[str], None] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``benchmark`` (a ``BENCHMARKS`` name); returns the results (also written)."""
    from tqdm import tqdm

    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {sorted(BENCHMARKS)}")
    if rule not in ("generate", "logits") or (rule == "logits" and benchmark != "probe"):
        raise ValueError(f"rule {rule!r}: 'generate' for every benchmark, 'logits' for the probe only")
    spec = BENCHMARKS[benchmark]
    tokens = max_new_tokens or spec.max_new_tokens
    items = spec.load(Path(data), frames)
    if limit is not None:
        items = items[:limit]
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{data}: item ids repeat; the predictions file needs unique ids")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    predictions_path = out / "predictions.jsonl"
    done = read_predictions(predictions_path)
    started = time.time()
    model.eval()
    todo = [item for item in items if item.id not in done]
    with predictions_path.open("a", encoding="utf-8") as handle:
        for item in tqdm(todo, desc=benchmark, disable=not progress, initial=len(items) - len(todo), total=len(items)):
            try:
                if rule == "logits":
                    reply = _logit_letter(model, processor, item)
                else:
                    reply = generate_reply(model, processor, item, max_new_tokens=tokens)
                score, choice = score_item(item, reply)
                entry = {"id": item.id, "reply": reply, "choice": choice, "score": score}
            except (ValueError, OSError) as error:  # MediaError is a ValueError: this item fails, not the run
                entry = {"id": item.id, "error": f"{type(error).__name__}: {error}", "score": 0.0}
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
            handle.flush()
            done[item.id] = entry
            if on_item is not None:
                on_item(item.id)
    scores = {item.id: float(done[item.id]["score"]) for item in items}
    metrics = summarise(items, scores)
    if spec.macro and f"by_{spec.macro}" in metrics:
        values = list(metrics[f"by_{spec.macro}"].values())
        metrics[f"macro_{spec.macro}"] = round(sum(values) / len(values), 2)
    failures = [{"id": item.id, "error": done[item.id]["error"]} for item in items if "error" in done[item.id]]
    results = {
        "benchmark": benchmark,
        "description": spec.description,
        "data": str(data),
        "metrics": metrics,
        "items": len(items),
        "failures": failures,
        "settings": {
            "frames": frames,
            "limit": limit,
            "rule": rule,
            "max_new_tokens": tokens,
            "do_sample": False,
            "seed": seed,
        },
        "command": command,
        "versions": _versions(),
        "seconds": round(time.time() - started, 1),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "results.md").write_text(format_results(results), encoding="utf-8")
    return results


def format_results(results: dict[str, Any]) -> str:
    """A markdown table of one run's scores, with the command that made them."""
    metrics = results["metrics"]
    lines = [
        f"# {results['benchmark']}: {metrics['overall']:.2f}",
        "",
        f"{results['description']}; {metrics['count']} questions, {len(results['failures'])} failed.",
        "",
        "| group | value | score |",
        "|---|---|---:|",
        f"| overall | | {metrics['overall']:.2f} |",
    ]
    for key, value in metrics.items():
        if key.startswith("macro_"):
            lines.append(f"| mean over {key[6:]} | | {value:.2f} |")
        elif key.startswith("by_"):
            lines += [f"| {key[3:]} | {name} | {score:.2f} |" for name, score in value.items()]
    lines += ["", f"Command: `{results['command']}`", f"Versions: {json.dumps(results['versions'])}", ""]
    return "\n".join(lines)
