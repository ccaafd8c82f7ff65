"""A tiny random SigLIP2 saved in the published dual-tower layout (``google/siglip2-*-naflex``), for assembly tests."""

from pathlib import Path

import torch
from transformers import Siglip2Config, Siglip2Model

SIGLIP2 = Siglip2Config(
    text_config=dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=64,
        bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ),
    vision_config=dict(
        hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_patches=16
    ),
)  # fmt: skip


def save_siglip2(path: Path, seed: int = 0) -> Path:
    """Save the full ``Siglip2Model`` (text tower, vision tower, head) with random weights to ``path``."""
    torch.manual_seed(seed)
    Siglip2Model(SIGLIP2).save_pretrained(path)
    return path
