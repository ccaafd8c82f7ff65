"""Build a TempFlex model from released components: a SigLIP2-naflex checkpoint and a Qwen3 / Gemma3 LLM.

``assemble(vision, language)`` (also ``TempFlexForConditionalGeneration.from_components``) takes a local path
or hub id of each and returns ``(model, processor)``:

- vision: a full ``Siglip2Model`` checkpoint (e.g. ``google/siglip2-so400m-patch16-naflex``) or a
  ``Siglip2VisionModel`` one; its vision tower is kept, its text tower and pooling head dropped;
- language: a ``Qwen3ForCausalLM`` checkpoint (e.g. ``Qwen/Qwen3-4B``), or Gemma3: the public
  ``google/gemma-3-4b-it`` is a multimodal ``Gemma3ForConditionalGeneration``, from which only the text model
  and its (tied) LM head are loaded, through transformers' public ``key_mapping``, with no weight left
  random (``Gemma3ForCausalLM.from_pretrained`` alone would silently leave them all random);
- the processor comes from the LLM's tokenizer with the chat format of the LLM's ``model_type`` (``qwen3`` or
  ``gemma3``/``gemma3_text``); tokens the format needs and the tokenizer lacks are added (Gemma3's
  ``<video_soft_token>``, within the embedding matrix's spare rows);
- TFF and the merger are initialised fresh (TFF is the identity at init).

Gemma3 attends causally over image tokens here (its multimodal model attends bidirectionally within an image);
the official TempFlex code is causal too.

Command (with real checkpoints downloaded)::

    model, processor = assemble("google/siglip2-so400m-patch16-naflex", "Qwen/Qwen3-4B", dtype=torch.bfloat16)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, Gemma3ForCausalLM, Siglip2VisionModel

from tempflex.configuration import TempFlexConfig
from tempflex.modeling import TempFlexForConditionalGeneration
from tempflex.processing import TempFlexProcessor, placeholder_token_ids

__all__ = ["CHAT_FORMAT_OF_MODEL_TYPE", "assemble", "load_language_model", "load_vision_tower"]

CHAT_FORMAT_OF_MODEL_TYPE = {"qwen3": "qwen3", "gemma3": "gemma3", "gemma3_text": "gemma3"}
"""The chat format for each supported LLM ``model_type`` (from the checkpoint's config.json)."""

# Text-model keys of a Gemma3ForConditionalGeneration checkpoint -> Gemma3ForCausalLM keys.
GEMMA3_TEXT_KEY_MAPPING = {
    r"^language_model\.model\.": "model.",  # hub layout and what transformers 5.x saves
    r"^model\.language_model\.": "model.",  # transformers 5.x in-memory layout
    r"^language_model\.lm_head\.": "lm_head.",
}


class _Gemma3TextFromMultimodal(Gemma3ForCausalLM):
    """Gemma3ForCausalLM that reads the text half of a multimodal checkpoint without reporting the rest."""

    _keys_to_ignore_on_load_unexpected = (r"vision_tower\.", r"multi_modal_projector\.")


def load_vision_tower(path: str | Path, **kwargs: Any) -> Siglip2VisionModel:
    """The SigLIP2 vision tower (no pooling head) of a full ``Siglip2Model`` or vision-only checkpoint."""
    return Siglip2VisionModel.from_pretrained(path, vision_use_head=False, **kwargs)


def load_language_model(path: str | Path, **kwargs: Any) -> torch.nn.Module:
    """A causal LM from a Qwen3 / Gemma3 text checkpoint, or the text half of a multimodal Gemma3 one."""
    config = AutoConfig.from_pretrained(path)
    if config.model_type not in CHAT_FORMAT_OF_MODEL_TYPE:
        raise ValueError(
            f"{path}: LLM model_type {config.model_type!r} is not supported; "
            f"expected one of {sorted(CHAT_FORMAT_OF_MODEL_TYPE)}"
        )
    if config.model_type == "gemma3":
        return _Gemma3TextFromMultimodal.from_pretrained(
            path, config=config.get_text_config(), key_mapping=GEMMA3_TEXT_KEY_MAPPING, **kwargs
        )
    return AutoModelForCausalLM.from_pretrained(path, config=config, **kwargs)


def assemble(
    vision: str | Path,
    language: str | Path,
    *,
    tokenizer: str | Path | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str = "sdpa",
    **config_overrides: Any,
) -> tuple[TempFlexForConditionalGeneration, TempFlexProcessor]:
    """``(model, processor)`` from a SigLIP2 checkpoint and an LLM checkpoint (paths or hub ids).

    ``tokenizer`` defaults to the LLM's; ``attn_implementation`` is the LLM's (``"sdpa"``, ``"eager"``,
    ``"flash_attention_2"``; the vision tower stays on sdpa); ``config_overrides`` set ``TempFlexConfig`` fields
    (budgets, TFF).
    """
    load_kwargs = {"dtype": dtype} if dtype is not None else {}
    vision_model = load_vision_tower(vision, **load_kwargs)
    language_model = load_language_model(language, **load_kwargs)
    chat_format = CHAT_FORMAT_OF_MODEL_TYPE[language_model.config.model_type]  # gemma3_text for a multimodal Gemma3
    text_tokenizer = AutoTokenizer.from_pretrained(tokenizer or language)

    token_ids = placeholder_token_ids(text_tokenizer, chat_format)
    vocab_rows = language_model.get_input_embeddings().weight.shape[0]
    if max(token_ids.values()) >= vocab_rows:
        raise ValueError(f"placeholder ids {token_ids} do not fit the LLM's {vocab_rows} embedding rows")
    config = TempFlexConfig(
        vision_config=vision_model.config,
        text_config=language_model.config,
        **{**config_overrides, **token_ids},
    )
    processor = TempFlexProcessor.for_model(config, text_tokenizer, chat_format=chat_format)
    model = TempFlexForConditionalGeneration(config, vision_model=vision_model, language_model=language_model)
    # building the composite config resets the sub-configs' attention choice: set it again
    model.language_model.set_attn_implementation(attn_implementation)
    model.vision_tower.encoder_model.set_attn_implementation("sdpa")
    if dtype is not None:
        model = model.to(dtype)
    return model, processor
