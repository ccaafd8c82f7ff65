"""An lmms-eval model for TempFlex checkpoints, registered through lmms-eval's plugin entry point.

Installing tempflex adds the entry point ``tempflex`` in the group ``lmms_eval.models`` (``lmms_eval_entry``),
so with both packages installed, lmms-eval's unmodified CLI finds it::

    python -m lmms_eval --model tempflex --model_args pretrained=runs/stage4,max_num_frames=128,dtype=bfloat16 \\
        --tasks videomme,mmstar --batch_size 4 --device cuda --output_path logs/ --log_samples

Model args (``--model_args``): ``pretrained`` (anything ``tempflex.load`` takes: a saved folder, a hub id, a
preset), ``max_num_frames`` (frames per video, default the paper's 128; ``nframes`` is an alias), ``fps`` (sample
videos at this rate instead, still capped at ``max_num_frames``), ``max_pixels`` (per frame), ``max_new_tokens``
(default 64, when a task gives none), ``device`` / ``dtype`` (``tempflex.loading``; device default ``auto``:
CUDA when present). lmms-eval's own ``--batch_size``, ``--max_batch_size`` and ``--device`` arrive as the same
arguments: ``batch_size`` requests are generated together (left-padded, greedy; batched replies equal
one-at-a-time ones), ``max_batch_size`` caps it.

``generate_until``: greedy replies; the task's ``until`` strings stop a row as soon as it produces one (and are
cut from the text), the chat format's end of turn ends it too. A request whose media fail (a corrupt video)
gets an empty reply and a logged error; the other requests go on.

``loglikelihood``: returns ``(-log p(continuation | prompt), greedy)``, the continuation's total negative
log-likelihood. lmms-eval's evaluator picks the ``multiple_choice`` answer with ``np.argmin`` over these values
("we return the actual loss", ``lmms_eval/api/task.py`` ``process_results``; upstream issue
EvolvingLMMs-Lab/lmms-eval#370), so the option we find most likely wins. Under ``output_type: loglikelihood``
the continuation arrives as the task's ``doc_to_target`` function and is applied to the document. lmms-eval 0.7.3's
``perplexity`` aggregation computes ``exp(-mean(value))``, which assumes log-likelihoods: with the loss convention
every lmms-eval model follows, it reports 1/perplexity for every model (a 0.7.3 bug; ``acc``, the greedy flag, is
right). Ours is right for the loss convention (``exp(mean)`` gives the perplexity per document).

Multi-round generation is not supported. This module imports lmms-eval (not a tempflex dependency: its
requirements pull a CUDA torch, torchvision and timm; install them minus those, then ``pip install --no-deps
lmms-eval==0.7.3``, as the README says). Tested through ``python -m lmms_eval`` on local tasks.
"""

from __future__ import annotations

import logging
from typing import Any

from lmms_eval.api.model import lmms

from tempflex.evaluation.generation import continuation_nll, generate_replies
from tempflex.media import MediaError

__all__ = ["TempFlexLmms"]

logger = logging.getLogger(__name__)

_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


class TempFlexLmms(lmms):
    """lmms-eval simple model over anything ``tempflex.load`` takes (``pretrained=``)."""

    is_simple = True

    def __init__(
        self,
        pretrained: str = "tiny",
        max_num_frames: int = 128,
        fps: float | None = None,
        max_pixels: int | None = None,
        max_new_tokens: int = 64,
        device: str | None = "auto",
        dtype: str | None = None,
        batch_size: int | str = 1,
        max_batch_size: int | None = None,
        nframes: int | None = None,
        **kwargs: Any,
    ) -> None:
        from tempflex.loading import load, parse_dtype

        super().__init__()
        if kwargs:
            raise ValueError(f"TempFlexLmms: unknown model_args {sorted(kwargs)}")
        if str(batch_size).startswith("auto"):
            raise ValueError("TempFlexLmms: batch_size 'auto' is not supported; give a number")
        self.model, self.processor = load(str(pretrained), device=device or "auto", dtype=parse_dtype(dtype))
        self.model.eval()
        self.max_num_frames = int(nframes if nframes is not None else max_num_frames)
        self.fps = float(fps) if fps is not None else None
        self.max_pixels = int(max_pixels) if max_pixels is not None else None
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size_per_gpu = int(batch_size)
        if max_batch_size is not None:
            self.batch_size_per_gpu = min(self.batch_size_per_gpu, int(max_batch_size))

    def _video_part(self, path: str) -> dict[str, Any]:
        part: dict[str, Any] = {"type": "video", "video": path, "max_frames": self.max_num_frames}
        if self.fps is not None:
            part["fps"] = self.fps
        else:
            part["nframes"] = self.max_num_frames
        if self.max_pixels is not None:
            part["max_pixels"] = self.max_pixels
        return part

    def _conversation(self, context: str, visuals: list[Any] | None) -> list[dict[str, Any]]:
        parts = []
        for visual in visuals or []:
            if isinstance(visual, str) and visual.lower().endswith(_VIDEO_SUFFIXES):
                parts.append(self._video_part(visual))
            else:
                parts.append({"type": "image", "image": visual})
        parts.append({"type": "text", "text": context.replace("<image>", "").strip()})
        return [{"role": "user", "content": parts}]

    def _doc(self, task: str, split: str, doc_id: Any) -> Any:
        return self.task_dict[task][split][doc_id]

    def _visuals(self, doc_to_visual: Any, doc_id: Any, task: str, split: str) -> list[Any]:
        visuals = doc_to_visual(self._doc(task, split, doc_id)) if doc_to_visual else []
        return [v for v in (visuals or []) if v is not None]

    def _one_by_one(self, batch: list[tuple[list[dict], dict]]) -> list[str]:
        replies = []
        for conversation, settings in batch:
            try:
                replies.extend(generate_replies(self.model, self.processor, [conversation], **settings))
            except (MediaError, ValueError) as error:
                logger.error("tempflex: request failed, empty reply: %s", error)
                replies.append("")
        return replies

    def generate_until(self, requests: list[Any]) -> list[str]:
        """Greedy replies, one per request, in batches of ``batch_size`` with the same generation settings."""
        prepared = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            until = gen_kwargs.get("until") or []
            until = (until,) if isinstance(until, str) else tuple(until)
            settings = {"max_new_tokens": int(gen_kwargs.get("max_new_tokens", self.max_new_tokens)), "stop": until}
            try:
                conversation = self._conversation(context, self._visuals(doc_to_visual, doc_id, task, split))
            except (MediaError, ValueError, OSError) as error:
                logger.error("tempflex: request %s/%s failed, empty reply: %s", task, doc_id, error)
                conversation = None
            prepared.append((conversation, settings))
        replies: list[str] = [""] * len(prepared)
        pending = [i for i, (conversation, _) in enumerate(prepared) if conversation is not None]
        while pending:
            first = prepared[pending[0]][1]
            batch = [i for i in pending if prepared[i][1] == first][: self.batch_size_per_gpu]
            try:
                texts = generate_replies(self.model, self.processor, [prepared[i][0] for i in batch], **first)
            except (MediaError, ValueError):  # one bad item: the others still get their replies
                texts = self._one_by_one([prepared[i] for i in batch])
            for i, text in zip(batch, texts, strict=True):
                replies[i] = text
            done = set(batch)
            pending = [i for i in pending if i not in done]
        return replies

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        """``(-log p(continuation | prompt), greedy?)`` per request (the loss convention lmms-eval's argmin uses)."""
        results = []
        for request in requests:
            context, continuation, doc_to_visual, doc_id, task, split = request.args
            if callable(continuation):  # output_type: loglikelihood passes the task's doc_to_target
                continuation = continuation(self._doc(task, split, doc_id))
            conversation = self._conversation(context, self._visuals(doc_to_visual, doc_id, task, split))
            results.append(continuation_nll(self.model, self.processor, conversation, str(continuation)))
        return results

    def generate_until_multi_round(self, requests: list[Any]) -> list[str]:
        """Not supported: TempFlex's adapter answers single-round tasks."""
        raise NotImplementedError("TempFlexLmms does not support multi-round generation")
