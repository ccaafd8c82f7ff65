"""Build a TempFlex model from released components: a SigLIP2-naflex checkpoint and a Qwen3 / Gemma3 LLM.

``assemble(vision, language)`` takes a local path or hub id of each and returns ``(model, processor)``; most
users call it through ``tempflex.load((vision, language), dtype=...)``.

- vision: a full ``Siglip2Model`` checkpoint (e.g. ``google/siglip2-so400m-patch16-naflex``) or a
  ``Siglip2VisionModel`` one; its vision tower is kept, its text tower and pooling head dropped on purpose (so
  not reported as unexpected keys; any other stray key still is);
- language: a ``Qwen3ForCausalLM`` or ``Gemma3ForCausalLM`` checkpoint (e.g. ``Qwen/Qwen3-4B``,
  ``google/gemma-3-270m``, or a folder that ``tempflex.gguf.gguf_to_folder`` wrote), or the multimodal
  ``Gemma3ForConditionalGeneration`` of ``google/gemma-3-4b-it``, from which only the text model and its
  (tied) LM head are loaded, through transformers' public ``key_mapping``, with no weight left random
  (``Gemma3ForCausalLM.from_pretrained`` alone would silently leave them all random);
- the processor comes from the LLM's tokenizer with the chat format of the LLM's ``model_type`` (``qwen3`` or
  ``gemma3``/``gemma3_text``); tokens the format needs and the tokenizer lacks are added (Gemma3's
  ``<video_soft_token>``; Gemma 3 270M / 1B also lack ``<image_soft_token>``). When an added token's id does not
  fit the embedding, the embedding (and an untied head) grows to the next multiple of 64 rows, with one log
  line: the new rows are zero and input only (``config.generation_vocab_size``: the model gives their columns
  ``-inf`` logits), so every existing token's logit, log-probability and loss is the plain LLM's;
- dtype is the one ``from_pretrained`` gives each component (``dtype=torch.bfloat16``: bf16 weights, float32
  rotary frequencies and Gemma's float32 embedding scale, exactly as the plain LLM loads), so the assembled
  model's text logits equal the plain LLM's bit for bit; the new parts (TFF, merger) are cast to ``dtype``;
- ``generation_config`` is the LLM's, with the chat format's end of turn (``<|im_end|>`` / ``<end_of_turn>``)
  and the tokenizer's EOS as ``eos_token_id``;
- TFF and the merger are initialised fresh (TFF is the identity at init).

Gemma3 attends causally over image tokens here (its multimodal model attends bidirectionally within an image);
the official TempFlex code is causal too.

Command (with real checkpoints downloaded)::

    model, processor = assemble("google/siglip2-so400m-patch16-naflex", "Qwen/Qwen3-4B", dtype=torch.bfloat16)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, Gemma3ForCausalLM, Siglip2VisionModel

from tempflex.configuration import TempFlexConfig
from tempflex.modeling import TempFlexForConditionalGeneration
from tempflex.processing import TempFlexProcessor, placeholder_token_ids

__all__ = [
    "CHAT_FORMAT_OF_MODEL_TYPE",
    "EMBEDDING_ROW_MULTIPLE",
    "assemble",
    "grow_embeddings",
    "load_language_model",
    "load_vision_tower",
    "set_end_of_turn",
]

logger = logging.getLogger(__name__)

CHAT_FORMAT_OF_MODEL_TYPE = {"qwen3": "qwen3", "gemma3": "gemma3", "gemma3_text": "gemma3"}
"""The chat format for each supported LLM ``model_type`` (from the checkpoint's config.json)."""

EMBEDDING_ROW_MULTIPLE = 64
"""A grown embedding is rounded up to this many rows (tensor-core friendly; Gemma3-4B's 262208 is one)."""

# Text-model keys of a Gemma3ForConditionalGeneration checkpoint -> Gemma3ForCausalLM keys.
GEMMA3_TEXT_KEY_MAPPING = {
    r"^language_model\.model\.": "model.",  # hub layout and what transformers 5.x saves
    r"^model\.language_model\.": "model.",  # transformers 5.x in-memory layout
    r"^language_model\.lm_head\.": "lm_head.",
}


class _Gemma3TextFromMultimodal(Gemma3ForCausalLM):
    """Gemma3ForCausalLM that reads the text half of a multimodal checkpoint without reporting the rest."""

    _keys_to_ignore_on_load_unexpected = (r"vision_tower\.", r"multi_modal_projector\.")


class _Siglip2VisionTowerFromFull(Siglip2VisionModel):
    """Siglip2VisionModel that reads a full dual-tower or a vision-only checkpoint without reporting the parts
    TempFlex drops on purpose: the text tower, the contrastive scale and bias, and the pooling head."""

    _keys_to_ignore_on_load_unexpected = (
        r"^text_model\.",
        r"^logit_scale$",
        r"^logit_bias$",
        r"^(vision_model\.)?head\.",
    )


def load_vision_tower(path: str | Path, **kwargs: Any) -> Siglip2VisionModel:
    """The SigLIP2 vision tower (no pooling head) of a full ``Siglip2Model`` or vision-only checkpoint."""
    return _Siglip2VisionTowerFromFull.from_pretrained(path, vision_use_head=False, **kwargs)


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


def grow_embeddings(language_model: torch.nn.Module, token_ids: dict[str, int], tokenizer: Any) -> int | None:
    """Grow the LLM's embedding (and an untied head) so that every id in ``token_ids`` has a row.

    Rows are added up to the next multiple of ``EMBEDDING_ROW_MULTIPLE`` and zero-initialised. Returns the old
    row count (the model's ``generation_vocab_size``: from it on, logits are ``-inf``), or ``None`` when every
    id already fits and nothing changed.
    """
    rows = language_model.get_input_embeddings().weight.shape[0]
    needed = max(token_ids.values()) + 1
    if needed <= rows:
        return None
    new_rows = -(-needed // EMBEDDING_ROW_MULTIPLE) * EMBEDDING_ROW_MULTIPLE
    language_model.resize_token_embeddings(new_rows, mean_resizing=False)
    with torch.no_grad():
        language_model.get_input_embeddings().weight[rows:] = 0
        head = language_model.get_output_embeddings()
        if head is not None:  # tied: the same tensor, already zero; untied: its own new rows
            head.weight[rows:] = 0
            if getattr(head, "bias", None) is not None:
                head.bias[rows:] = 0
    new_tokens = tokenizer.convert_ids_to_tokens(sorted(i for i in token_ids.values() if i >= rows))
    logger.warning(
        "tempflex: grew the LLM's embedding from %d to %d rows for the placeholder tokens %s "
        "(input only: their logits are -inf)",
        rows,
        new_rows,
        new_tokens,
    )
    return rows


def set_end_of_turn(model: TempFlexForConditionalGeneration, processor: TempFlexProcessor) -> None:
    """Make ``model.generation_config`` stop at the chat format's end of turn and at the tokenizer's EOS.

    Keeps the EOS ids already there (e.g. Gemma's ``[1, 106]``) first, then adds the missing ones; sets
    ``pad_token_id`` from the tokenizer when the config has none. Idempotent.
    """
    tokenizer = processor.tokenizer
    generation = model.generation_config
    present = generation.eos_token_id
    present = [] if present is None else [present] if isinstance(present, int) else list(present)
    wanted = [tokenizer.convert_tokens_to_ids(processor.end_of_turn_token), tokenizer.eos_token_id]
    eos = list(dict.fromkeys(int(i) for i in [*present, *wanted] if i is not None))
    generation.eos_token_id = eos
    if generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]


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
    generation_vocab_size = grow_embeddings(language_model, token_ids, text_tokenizer)
    config = TempFlexConfig(
        vision_config=vision_model.config,
        text_config=language_model.config,
        **{**config_overrides, **token_ids, "generation_vocab_size": generation_vocab_size},
    )
    processor = TempFlexProcessor.for_model(config, text_tokenizer, chat_format=chat_format)
    model = TempFlexForConditionalGeneration(config, vision_model=vision_model, language_model=language_model)
    # building the composite config resets the sub-configs' attention choice: set it again
    model.language_model.set_attn_implementation(attn_implementation)
    model.vision_tower.encoder_model.set_attn_implementation("sdpa")
    model.generation_config = language_model.generation_config
    set_end_of_turn(model, processor)
    if dtype is not None:
        # Only the new parts: a whole-model .to(dtype) would also cast the LLM's float32 rotary frequencies
        # (and Gemma's embedding scale), which from_pretrained keeps in float32.
        model.temporal_fusion.to(dtype)
        model.merger.to(dtype)
        model.config.dtype = dtype
    return model, processor
