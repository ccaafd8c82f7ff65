"""The option-logit scorer: the option letter with the highest next-token logit after the prompt.

``predict_letters(model, processor, records, media_root)`` renders each LLaVA-format record's first (question) turn
as a user turn with the generation prompt; the model reads it once, and among the tokens of the option letters
(``A``, ``B``, ...; ``len(record["options"])`` of them) the one with the highest logit at the last position is the
prediction: no sampling, no parsing of free text, and the same rule for every model variant. ``tempflex eval
--rule logits`` and the probe (``tempflex.probe.evaluate``, ``tempflex demo``) score with it.

Records are scored in right-padded batches (``batch_size``); a causal LM's logits at a row's last real token do not
depend on the padding after it, so batching changes no prediction (tested against one-by-one scoring). ``cache`` (a
dict) keeps the processed prompts for scoring several models on the same records.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from tempflex.batching import pad_right
from tempflex.records import LETTERS, to_messages

__all__ = ["predict_letters", "predict_letters_many"]


def _letter_ids(tokenizer: Any, count: int) -> list[int]:
    ids = []
    for letter in LETTERS[:count]:
        encoded = tokenizer.encode(letter, add_special_tokens=False)
        if len(encoded) != 1:
            raise ValueError(f"option letter {letter!r} is not a single token for this tokenizer: {encoded}")
        ids.append(encoded[0])
    return ids


def _prompt_inputs(processor: Any, record: dict, media_root: Path) -> dict:
    messages = to_messages(record, media_root)[:1]  # the question only
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    return dict(inputs)


def predict_letters(
    model: Any,
    processor: Any,
    records: list[dict],
    media_root: str | Path,
    *,
    batch_size: int = 32,
    cache: dict | None = None,
) -> list[str]:
    """The option letter the model scores highest for each record, in order."""
    scored = predict_letters_many({"model": model}, processor, records, media_root, batch_size=batch_size, cache=cache)
    return scored["model"]


@torch.no_grad()
def predict_letters_many(
    models: Mapping[str, Any],
    processor: Any,
    records: list[dict],
    media_root: str | Path,
    *,
    batch_size: int = 32,
    cache: dict | None = None,
) -> dict[str, list[str]]:
    """``predict_letters`` for several models sharing one processor: each batch is decoded and processed once,
    then read by every model (``tempflex demo`` scores its five TFF variants per seed this way)."""
    for model in models.values():
        model.eval()
    letter_ids = {count: _letter_ids(processor.tokenizer, count) for count in {len(r["options"]) for r in records}}
    predictions: dict[str, list[str]] = {name: [] for name in models}
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        samples = []
        for record in chunk:
            key = (str(record["id"]), str(media_root))
            if cache is not None and key in cache:
                samples.append(cache[key])
                continue
            sample = _prompt_inputs(processor, record, Path(media_root))
            if cache is not None:
                cache[key] = sample
            samples.append(sample)
        padded = pad_right(samples, processor.tokenizer.pad_token_id)
        for name, model in models.items():
            batch = {k: v.to(model.device) for k, v in padded.items()}
            logits = model(**batch).logits  # [B, L, V]
            last = batch["attention_mask"].sum(dim=1) - 1  # [B], each row's last real token
            final = logits[torch.arange(len(chunk), device=logits.device), last]  # [B, V]
            for record, row in zip(chunk, final, strict=True):
                predictions[name].append(LETTERS[int(row[letter_ids[len(record["options"])]].argmax())])
    return predictions
