"""``Engine``: one TempFlex model + processor -> prepared prompts and streamed completions.

Used by the HTTP server, the chat CLI and the latency benchmark::

    engine = Engine.load("tiny")
    prepared = engine.prepare([{"role": "user", "content": [{"type": "image", "image": "cat.png"},
                                                            {"type": "text", "text": "What is it?"}]}])
    result = engine.generate(prepared.inputs, GenerationParams(max_tokens=16), on_text=print)
    # prints the answer piece by piece; result.completion_tokens == 16 or fewer, result.finish_reason "length"/"stop"

``prepare`` counts the prompt's tokens and its visual placeholders (the numbers ``token_budget`` predicts).
``generate`` decodes with the model's ``generate`` and a KV cache: it stops on the end-of-turn token, on
``max_tokens``, on a ``stop`` string (cut from the text) or when ``cancelled()`` turns true, and never emits
visual placeholder tokens (they would break the next turn's placeholder count). ``temperature == 0`` is
greedy; a ``seed`` makes sampling repeatable without touching the process's random state for others
(``torch.random.fork_rng``). An ``Engine`` is not thread-safe: run one generation at a time (the server's
``GenerationQueue`` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

__all__ = ["Completion", "Engine", "GenerationParams", "Prepared"]


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings of one completion (OpenAI's names)."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass
class Prepared:
    """Model inputs of one prompt and its token counts."""

    inputs: dict[str, Any]
    prompt_tokens: int
    image_tokens: int
    video_tokens: int

    @property
    def visual_tokens(self) -> int:
        """Image plus video placeholder tokens of the prompt."""
        return self.image_tokens + self.video_tokens


@dataclass
class Completion:
    """The generated text, its new token ids, and why it ended (``"stop"``, ``"length"`` or ``"cancelled"``)."""

    text: str
    token_ids: list[int]
    finish_reason: str

    @property
    def completion_tokens(self) -> int:
        """Tokens the model generated (the end-of-turn token included when it stopped on it)."""
        return len(self.token_ids)


class _TextStreamer(BaseStreamer):
    """Receives generated ids, decodes them, cuts stop strings and hands new text to ``on_text``.

    Text that could still be the start of a stop string, or an unfinished UTF-8 character, is held back until
    the next token decides it.
    """

    def __init__(self, tokenizer: Any, stop: tuple[str, ...], on_text: Callable[[str], None] | None) -> None:
        self.tokenizer = tokenizer
        self.stop = stop
        self.on_text = on_text
        self.ids: list[int] = []
        self.sent = 0  # characters of the text already handed out
        self.text = ""
        self.stopped = False
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate first puts the prompt
            self._prompt_seen = True
            return
        if self.stopped:
            return
        self.ids.extend(int(v) for v in value.reshape(-1).tolist())
        self.text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        for stop in self.stop:
            at = self.text.find(stop)
            if at >= 0:
                self.text, self.stopped = self.text[:at], True
        self._emit(final=self.stopped)

    def end(self) -> None:
        self._emit(final=True)

    def _emit(self, *, final: bool) -> None:
        ready = len(self.text)
        if not final:
            if self.text.endswith("\ufffd"):  # an incomplete multi-byte character
                ready = len(self.text.rstrip("\ufffd"))
            for stop in self.stop:  # the longest tail that may still grow into a stop string
                for size in range(min(len(stop) - 1, ready), 0, -1):
                    if self.text[:ready].endswith(stop[:size]):
                        ready -= size
                        break
        if ready > self.sent:
            piece, self.sent = self.text[self.sent : ready], ready
            if self.on_text is not None:
                self.on_text(piece)


class _StopWhen(StoppingCriteria):
    def __init__(self, condition: Callable[[], bool]) -> None:
        self.condition = condition

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.condition(), dtype=torch.bool, device=input_ids.device)


class Engine:
    """A loaded model and processor, with the served model's ``name``."""

    def __init__(self, model: Any, processor: Any, name: str) -> None:
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.name = name
        config = model.config
        self.image_token_id = int(config.image_token_id)
        self.video_token_id = int(config.video_token_id)
        visual = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
        own = model.generation_config.suppress_tokens or []  # kept: passing suppress_tokens replaces the model's
        self.suppressed = sorted({int(getattr(config, name)) for name in visual} | {int(i) for i in own})
        # the end of turn and EOS (tempflex.load puts both in the generation config); either ends an answer
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.stop_ids = tuple(dict.fromkeys([*eos, self.tokenizer.eos_token_id]))

    @classmethod
    def load(
        cls, spec: str, name: str | None = None, *, device: str | None = "auto", dtype: str | None = None
    ) -> Engine:
        """A preset name (``tiny``) or a saved TempFlex folder (``tempflex.load``), served as ``name``.

        ``device="auto"`` computes on CUDA when present; ``dtype`` as in ``tempflex.loading.parse_dtype``.
        """
        from tempflex.loading import load, parse_dtype

        model, processor = load(spec, device=device, dtype=parse_dtype(dtype))
        return cls(model, processor, name or spec)

    def prepare(self, conversation: list[dict], **template_kwargs: Any) -> Prepared:
        """Chat messages (processor parts) -> model inputs with a generation prompt; ``MediaError`` on bad media."""
        inputs = self.processor.apply_chat_template(
            conversation,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            **template_kwargs,
        )
        ids = inputs["input_ids"]
        device = self.model.device
        return Prepared(
            inputs={key: value.to(device) if hasattr(value, "to") else value for key, value in inputs.items()},
            prompt_tokens=int(ids.shape[1]),
            image_tokens=int((ids == self.image_token_id).sum()),
            video_tokens=int((ids == self.video_token_id).sum()),
        )

    @torch.inference_mode()
    def generate(
        self,
        inputs: dict[str, Any],
        params: GenerationParams,
        *,
        on_text: Callable[[str], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        cache: Any = None,
    ) -> Completion:
        """Generate one completion for ``inputs`` (from ``prepare``, or ids continuing ``cache``)."""
        if cancelled is not None and cancelled():  # the client left while the request waited: no prefill at all
            return Completion(text="", token_ids=[], finish_reason="cancelled")
        streamer = _TextStreamer(self.tokenizer, tuple(params.stop), on_text)
        conditions = [lambda: streamer.stopped]
        if cancelled is not None:
            conditions.append(cancelled)
        settings: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "eos_token_id": list(self.stop_ids),
            "pad_token_id": self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.stop_ids[0],
            "suppress_tokens": self.suppressed,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_StopWhen(lambda: any(c() for c in conditions))]),
        }
        if params.temperature > 0:
            settings.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
        else:
            settings.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if cache is not None:
            settings["cache"] = cache
        prompt_length = int(inputs["input_ids"].shape[1])
        with torch.random.fork_rng(devices=[]):
            if params.seed is not None:
                torch.manual_seed(params.seed)
            sequences = self.model.generate(**inputs, **settings)
        new_ids = sequences[0, prompt_length:].tolist()
        if streamer.stopped:
            reason = "stop"
        elif cancelled is not None and cancelled():
            reason = "cancelled"
        elif new_ids and new_ids[-1] in self.stop_ids:
            reason = "stop"
        else:
            reason = "length"
        return Completion(text=streamer.text, token_ids=new_ids, finish_reason=reason)
