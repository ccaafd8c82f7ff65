"""Batched greedy replies that stop at stop strings, and continuation log-likelihoods: what the harnesses call.

``generate_replies(model, processor, conversations, max_new_tokens=16, stop=("\\n",))`` renders each conversation
with a generation prompt, left-pads them into one batch (a visual clip's tokens stay in its own row), and decodes
greedily until every row has ended its turn (the model's ``generation_config.eos_token_id``), met a stop string
(transformers' ``stop_strings``: the row stops as soon as the string is produced, so a long reply is not generated
and then cut), or reached ``max_new_tokens``. The text is cut before the first stop string. Greedy batched replies
equal one-at-a-time replies (tested).

``continuation_nll(model, processor, conversation, continuation)`` is ``(-log p(continuation | prompt), greedy)``
for the assistant's reply starting with ``continuation``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["continuation_nll", "generate_replies"]


def _inputs(processor: Any, conversations: list[list[dict]], device: torch.device) -> dict[str, Any]:
    inputs = processor.apply_chat_template(
        conversations,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"padding": True, "padding_side": "left"},
    )
    return {key: value.to(device) if hasattr(value, "to") else value for key, value in inputs.items()}


@torch.no_grad()
def generate_replies(
    model: Any,
    processor: Any,
    conversations: Sequence[list[dict]],
    *,
    max_new_tokens: int = 16,
    stop: Sequence[str] = (),
) -> list[str]:
    """Greedy replies to ``conversations`` (one batch), each cut before its first ``stop`` string."""
    inputs = _inputs(processor, list(conversations), model.device)
    stop = [s for s in stop if s]
    settings: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False}
    if stop:
        settings.update(stop_strings=stop, tokenizer=processor.tokenizer)
    output = model.generate(**inputs, **settings)
    new_tokens = output[:, inputs["input_ids"].shape[1] :]  # [B, new]
    replies = processor.batch_decode(new_tokens, skip_special_tokens=True)
    cut = []
    for reply in replies:
        ends = [reply.index(s) for s in stop if s in reply]
        cut.append(reply[: min(ends)] if ends else reply)
    return cut


@torch.no_grad()
def continuation_nll(model: Any, processor: Any, conversation: list[dict], continuation: str) -> tuple[float, bool]:
    """``(-log p(continuation | conversation + generation prompt), whether greedy decoding produces it)``."""
    inputs = _inputs(processor, [conversation], model.device)
    target = processor.tokenizer.encode(continuation, add_special_tokens=False)
    if not target:
        return 0.0, True
    prompt_length = inputs["input_ids"].shape[1]
    target_ids = torch.tensor([target], device=model.device)  # [1, T]
    ids = torch.cat([inputs["input_ids"], target_ids], dim=1)  # [1, L + T]
    inputs = {**inputs, "input_ids": ids, "attention_mask": torch.ones_like(ids)}
    logits = model(**inputs).logits[0, prompt_length - 1 : -1].float()  # [T, V]: the predictors of the targets
    log_probs = torch.log_softmax(logits, dim=-1)
    total = float(log_probs.gather(1, target_ids[0, :, None]).sum())
    return -total, bool((logits.argmax(dim=-1) == target_ids[0]).all())
