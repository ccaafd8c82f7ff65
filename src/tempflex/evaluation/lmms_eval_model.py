"""An lmms-eval model for TempFlex checkpoints, registered through lmms-eval's plugin entry point.

Installing tempflex adds the entry point ``tempflex`` in the group ``lmms_eval.models`` (pyproject), whose
payload, ``manifest()``, names the simple model class below; lmms-eval (0.7) loads every manifest of that group
at start-up, so with both packages installed::

    python -m lmms_eval --model tempflex --model_args pretrained=runs/stage4,nframes=128 \\
        --tasks videomme,mmstar --batch_size 1 --output_path logs/

``TempFlexLmms`` implements lmms-eval's ``lmms`` interface: ``generate_until`` (greedy, cut at the task's
``until`` strings; visuals from the task's ``doc_to_visual``: PIL images, or video paths sampled at
``nframes``, default the paper's 128) and ``loglikelihood`` (the log-probability of a continuation after
the user turn, and whether greedy decoding would produce it). Multi-round generation is not supported.

This module imports lmms-eval, so it loads only where lmms-eval is installed (it is not a tempflex
dependency: its requirements pull a CUDA torch, torchvision and timm). Tested against lmms-eval 0.7.3
installed as: its requirements minus torch / torchvision / timm, then ``pip install --no-deps lmms-eval``.
"""

from __future__ import annotations

from typing import Any

import torch
from lmms_eval.api.model import lmms
from lmms_eval.models.registry_v2 import ModelManifest

from tempflex.evaluation.items import Item
from tempflex.evaluation.runner import generate_reply

__all__ = ["TempFlexLmms", "manifest"]

_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def manifest() -> ModelManifest:
    """The ``lmms_eval.models`` entry point's payload: model id ``tempflex``."""
    return ModelManifest(model_id="tempflex", simple_class_path="tempflex.evaluation.lmms_eval_model.TempFlexLmms")


class TempFlexLmms(lmms):
    """lmms-eval simple model over a TempFlex preset or saved folder (``pretrained=``)."""

    is_simple = True

    def __init__(
        self,
        pretrained: str = "tiny",
        nframes: int = 128,
        max_new_tokens: int = 64,
        device: str = "auto",
        dtype: str | None = None,
        **kwargs: Any,
    ):
        from tempflex.loading import load, parse_dtype

        super().__init__()
        if kwargs:
            raise ValueError(f"TempFlexLmms: unknown model_args {sorted(kwargs)}")
        self.model, self.processor = load(str(pretrained), device=device, dtype=parse_dtype(dtype))
        self.model.eval()
        self.nframes, self.max_new_tokens = int(nframes), int(max_new_tokens)

    def _content(self, context: str, visuals: list[Any] | None) -> list[dict[str, Any]]:
        parts = []
        for visual in visuals or []:
            if isinstance(visual, str) and visual.lower().endswith(_VIDEO_SUFFIXES):
                parts.append({"type": "video", "video": visual, "nframes": self.nframes, "max_frames": self.nframes})
            else:
                parts.append({"type": "image", "image": visual})
        parts.append({"type": "text", "text": context.replace("<image>", "").strip()})
        return parts

    def _visuals(self, doc_to_visual: Any, doc_id: Any, task: str, split: str) -> list[Any]:
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual else []
        return [v for v in (visuals or []) if v is not None]

    def generate_until(self, requests: list[Any]) -> list[str]:
        """Greedy replies, one per request, cut at the first ``until`` string."""
        replies = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            tokens = int(gen_kwargs.get("max_new_tokens", self.max_new_tokens))
            item = Item("lmms", self._content(context, self._visuals(doc_to_visual, doc_id, task, split)), "", "exact")
            reply = generate_reply(self.model, self.processor, item, max_new_tokens=tokens)
            for stop in until:
                if stop and stop in reply:
                    reply = reply[: reply.index(stop)]
            replies.append(reply)
        return replies

    @torch.no_grad()
    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        """``(log p(continuation | user turn), greedy?)`` per request."""
        results = []
        for request in requests:
            context, continuation, doc_to_visual, doc_id, task, split = request.args
            messages = [
                {"role": "user", "content": self._content(context, self._visuals(doc_to_visual, doc_id, task, split))}
            ]
            inputs = self.processor.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
            )
            target = self.processor.tokenizer.encode(continuation, add_special_tokens=False)
            prompt_length = inputs["input_ids"].shape[1]
            ids = torch.cat([inputs["input_ids"], torch.tensor([target])], dim=1)  # [1, L + T]
            inputs = {**inputs, "input_ids": ids, "attention_mask": torch.ones_like(ids)}
            inputs = {k: v.to(self.model.device) if hasattr(v, "to") else v for k, v in inputs.items()}
            logits = self.model(**inputs).logits[0, prompt_length - 1 : -1].float()  # [T, V]: the targets' predictors
            log_probs = torch.log_softmax(logits, dim=-1)
            target_ids = torch.tensor(target, device=log_probs.device)
            total = float(log_probs.gather(1, target_ids[:, None]).sum())
            results.append((total, bool((logits.argmax(dim=-1) == target_ids).all())))
        return results

    def generate_until_multi_round(self, requests: list[Any]) -> list[str]:
        """Not supported: TempFlex's adapter answers single-round tasks."""
        raise NotImplementedError("TempFlexLmms does not support multi-round generation")
