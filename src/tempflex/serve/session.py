"""``ChatSession``: a multi-turn conversation whose images and clips are encoded once, not once per turn.

How: the session keeps the conversation's KV cache. Turn 1 runs the processor and the vision path as usual.
On turn 2 the conversation so far (prompt + generated answer) is already in the cache, so only the new text
is tokenised and prefilled: the ids passed to ``generate`` are the old ids plus the new turn's, with the
cache, and no pixels, so the vision tower, TFF and merger do not run at all. The new turn's text is found
by rendering the whole conversation with the chat template (placeholders unexpanded) and taking what
follows the text already in the cache; this needs the template to render earlier turns unchanged (TempFlex's
Qwen3 and Gemma3 templates do). If the rendering does not start with the cached text (e.g. a template
that rewrites past turns), or the new turn brings its own image or video, the session falls back to
encoding the whole conversation afresh, and ``last_turn_cached`` says which path ran.

Why this and not caching the features: reusing the prefix's KV cache also skips the LM prefill of the whole
history (the visual tokens are most of it), needs no new argument on the model, and is exactly what the
model computed on turn 1. The cost is memory: the cache holds every layer's keys and values of the
conversation (tiny preset: a few KB per token).

Example (tiny preset, random weights)::

    session = ChatSession(Engine.load("tiny"))
    session.ask("What happens?", video="clip.mp4").text      # encodes the clip
    session.ask("And then?").text; session.last_turn_cached  # -> True: the clip is not encoded again
"""

from __future__ import annotations

from typing import Any

from transformers import DynamicCache

from tempflex.serve.engine import Completion, Engine, GenerationParams

__all__ = ["ChatSession"]


class ChatSession:
    """One conversation with an ``Engine``; ``use_cache=False`` re-encodes everything each turn (for comparison)."""

    def __init__(self, engine: Engine, *, system: str | None = None, use_cache: bool = True, **video_options: Any):
        self.engine = engine
        self.use_cache = use_cache
        self.video_options = video_options
        self.messages: list[dict] = [{"role": "system", "content": system}] if system else []
        self.last_turn_cached = False
        self._cache: Any = None
        self._ids: Any = None  # every token in the cache plus the last generated one, [1, L]
        self._text = ""  # the chat-template rendering (placeholders unexpanded) of self._ids

    def _render(self, messages: list[dict], *, generation_prompt: bool) -> str:
        return self.engine.processor.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=False
        )

    def ask(
        self,
        text: str,
        *,
        image: Any = None,
        video: Any = None,
        params: GenerationParams | None = None,
        on_text: Any = None,
    ) -> Completion:
        """Add a user turn (text, optionally an image and/or a video) and generate the answer."""
        import torch

        params = params or GenerationParams()
        parts: list[dict] = []
        if image is not None:
            parts.append({"type": "image", "image": image})
        if video is not None:
            parts.append({"type": "video", "video": video, **self.video_options})
        parts.append({"type": "text", "text": text})
        messages = [*self.messages, {"role": "user", "content": parts}]
        rendered = self._render(messages, generation_prompt=True)
        reuse = (
            self.use_cache
            and self._cache is not None
            and image is None
            and video is None
            and rendered.startswith(self._text)
        )
        if reuse:
            new_ids = self.engine.tokenizer(rendered[len(self._text) :], add_special_tokens=False, return_tensors="pt")
            ids = torch.cat([self._ids, new_ids["input_ids"].to(self._ids.device)], dim=1)  # [1, L + new]
            inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            cache = self._cache
        else:
            inputs = self.engine.prepare(messages).inputs
            cache = DynamicCache(config=self.engine.model.config.text_config)
        result = self.engine.generate(inputs, params, on_text=on_text, cache=cache)
        self.last_turn_cached = reuse
        generated = torch.tensor([result.token_ids], dtype=inputs["input_ids"].dtype, device=inputs["input_ids"].device)
        self._ids = torch.cat([inputs["input_ids"], generated], dim=1)
        self._cache = cache
        tokenizer = self.engine.tokenizer
        self._text = rendered + tokenizer.decode(result.token_ids, skip_special_tokens=False)
        # the history keeps what the model produced, special tokens included (minus the end of turn), so that
        # the next rendering starts with self._text; a stop string cut the text, and then the cut text is kept
        ended = bool(result.token_ids) and result.token_ids[-1] in self.engine.stop_ids
        answer_ids = result.token_ids[:-1] if ended else result.token_ids
        answer = (
            result.text
            if result.finish_reason == "stop" and not ended
            else tokenizer.decode(answer_ids, skip_special_tokens=False)
        )
        self.messages = [*messages, {"role": "assistant", "content": answer}]
        return result
