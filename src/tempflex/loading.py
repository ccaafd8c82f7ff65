"""``tempflex.load``: the one place that hands out a ``(model, processor)`` pair.

Train, eval, serve, chat, the demo and both harness adapters load through it. A spec is one of:

- a preset name (``"tiny"``, ``"qwen3-4b"``: random weights; ``tiny`` with its in-process tokenizer,
  ``qwen3-4b`` with the real Qwen3 tokenizer rebuilt offline);
- a saved TempFlex folder (``save_pretrained`` of a model and its processor) or a hub id of one;
- a ``(vision, language)`` pair of checkpoints (paths or hub ids): ``tempflex.assembly.assemble``.

``dtype`` loads every component the way ``from_pretrained`` does (bf16 weights, float32 rotary buffers), never
by casting the whole model. ``device="auto"`` picks CUDA when present, else the CPU; ``None`` leaves the model
where it was built (the CPU). ``attn_implementation`` is the LLM's (``"sdpa"``, ``"eager"``,
``"flash_attention_2"``). Every model leaves with ``generation_config.eos_token_id`` holding the chat format's end
of turn and the tokenizer's EOS (``assembly.set_end_of_turn``), so ``generate`` ends a turn in every caller.

Command::

    >>> import tempflex
    >>> model, processor = tempflex.load("tiny")
    >>> processor.tokenizer.convert_ids_to_tokens(model.generation_config.eos_token_id)  # its EOS is the end of turn
    ['<|im_end|>']
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from tempflex.assembly import assemble, set_end_of_turn
from tempflex.configuration import PRESETS, TempFlexConfig
from tempflex.modeling import TempFlexForConditionalGeneration
from tempflex.processing import TempFlexProcessor

__all__ = ["DTYPES", "load", "load_from_args", "parse_dtype", "resolve_device"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""The ``--dtype`` names the commands take."""

Spec = str | Path | tuple[str | Path, str | Path]


def resolve_device(device: str | torch.device | None) -> torch.device | None:
    """``"auto"`` -> CUDA when available, else CPU; ``None`` stays ``None``; anything else -> ``torch.device``.

    >>> resolve_device("cpu"), resolve_device(None)
    (device(type='cpu'), None)
    """
    if device is None:
        return None
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def parse_dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    """``"bfloat16"`` (or ``"bf16"``, ``"fp32"``, a ``torch.dtype``) -> the dtype; ``None``/``"auto"`` -> ``None``.

    >>> parse_dtype("bf16"), parse_dtype(None)
    (torch.bfloat16, None)
    """
    if name is None or isinstance(name, torch.dtype):
        return name
    aliases = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "auto": None}
    key = aliases.get(name, name)
    if key is None:
        return None
    if key not in DTYPES:
        raise ValueError(f"dtype {name!r} is not one of {sorted(DTYPES)} (or bf16, fp16, fp32, auto)")
    return DTYPES[key]


def load_from_args(args: argparse.Namespace) -> tuple[TempFlexForConditionalGeneration, TempFlexProcessor]:
    """``load(args.model, device=args.device, dtype=args.dtype)`` for a command's parsed arguments."""
    return load(args.model, device=args.device, dtype=parse_dtype(args.dtype))


def _preset(
    name: str, dtype: torch.dtype | None, attn_implementation: str | None, overrides: dict[str, Any]
) -> tuple[TempFlexForConditionalGeneration, TempFlexProcessor]:
    from tempflex.tokenization import build_qwen3_tokenizer, build_tiny_tokenizer

    tokenizers = {"tiny": build_tiny_tokenizer, "qwen3-4b": build_qwen3_tokenizer}
    if name not in tokenizers:
        raise ValueError(f"preset {name!r} has no offline tokenizer: load a (vision, language) pair, then save it")
    config = TempFlexConfig.from_preset(name, **overrides)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = TempFlexForConditionalGeneration._from_config(config, dtype=dtype, **extra)
    return model, TempFlexProcessor.for_model(config, tokenizers[name]())


def _saved(
    folder: str | Path, dtype: torch.dtype | None, attn_implementation: str | None, overrides: dict[str, Any]
) -> tuple[TempFlexForConditionalGeneration, TempFlexProcessor]:
    from transformers import AutoProcessor

    kwargs: dict[str, Any] = dict(overrides)  # TempFlexConfig fields, and distributed_config (see load)
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = TempFlexForConditionalGeneration.from_pretrained(folder, **kwargs)
    return model, AutoProcessor.from_pretrained(folder)


def load(
    spec: Spec,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
    distributed_config: Any = None,
    **config_overrides: Any,
) -> tuple[TempFlexForConditionalGeneration, TempFlexProcessor]:
    """``(model, processor)`` for a preset name, a saved folder (or hub id), or a ``(vision, language)`` pair.

    ``config_overrides`` set ``TempFlexConfig`` fields (budgets, TFF paths, ``max_frames_to_llm``). Raises
    ``ValueError`` naming the spec when it is none of these. ``distributed_config``: transformers'
    ``DistributedConfig``, for a saved folder only (FSDP2 sharding while loading; see ``train.engines``).
    """
    if distributed_config is not None:
        if isinstance(spec, (tuple, list)) or str(spec) in PRESETS:
            raise ValueError(f"distributed_config needs a saved folder to shard while loading, got {spec!r}")
        config_overrides = {**config_overrides, "distributed_config": distributed_config}
    if isinstance(spec, (tuple, list)):
        if len(spec) != 2:
            raise ValueError(f"a (vision, language) pair has two checkpoints, got {len(spec)}: {spec!r}")
        vision, language = spec
        model, processor = assemble(
            vision, language, dtype=dtype, attn_implementation=attn_implementation or "sdpa", **config_overrides
        )
    elif str(spec) in PRESETS:
        model, processor = _preset(str(spec), dtype, attn_implementation, config_overrides)
    elif Path(spec).is_dir() or _looks_like_hub_id(str(spec)):
        model, processor = _saved(spec, dtype, attn_implementation, config_overrides)
    else:
        raise ValueError(
            f"model {str(spec)!r} is neither a folder, a hub id (owner/name) nor a preset ({sorted(PRESETS)})"
        )
    set_end_of_turn(model, processor)
    target = resolve_device(device)
    if target is not None:
        model.to(target)  # a device move keeps every dtype as loaded
    return model, processor


def _looks_like_hub_id(spec: str) -> bool:
    """``owner/name`` that is not a local path (hub ids have exactly one slash and no leading dot or slash)."""
    return spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and not Path(spec).exists()
