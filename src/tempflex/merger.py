"""The patch merger: a true 2x2 pixel unshuffle on the patch grid, then a two-layer MLP projector.

``z' = MLP(Unshuffle(z))`` (paper section 3.1). Each LLM token gathers a 2x2 block of neighbouring patches,
so a 32x32-pixel cell of the image becomes one token of width ``4 * D`` before the projector.

The authors' code groups four *consecutive* patches of the raster order (a 1x4 strip that wraps across
rows); we follow the paper's pixel unshuffle on the (h, w) grid.

Example::

    >>> x = torch.arange(16.0).reshape(16, 1)  # a 4x4 grid of 1-channel patches, raster order
    >>> pixel_unshuffle_2x2(x, 4, 4)[0].tolist()  # the top-left 2x2 block: TL, TR, BL, BR
    [0.0, 1.0, 4.0, 5.0]

No transformers import here.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PatchMerger", "pixel_unshuffle_2x2"]


def pixel_unshuffle_2x2(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[..., h*w, D]`` raster-ordered patches -> ``[..., (h/2)*(w/2), 4D]``.

    Output tokens are the 2x2 blocks in raster order; the channels of a token are its patches in the order
    (top-left, top-right, bottom-left, bottom-right), each ``D`` wide. ``height`` and ``width`` are in
    patches and must be even.
    """
    if height % 2 or width % 2 or height < 2 or width < 2:
        raise ValueError(f"a 2x2 unshuffle needs an even patch grid, got {height}x{width} (height x width)")
    if x.dim() < 2 or x.shape[-2] != height * width:
        raise ValueError(
            f"features {tuple(x.shape)} do not hold a {height}x{width} grid ({height * width} patches on dim -2)"
        )
    *lead, _, dim = x.shape
    blocks = x.reshape(*lead, height // 2, 2, width // 2, 2, dim)  # [..., h/2, dy, w/2, dx, D]
    blocks = blocks.movedim(-4, -3)  # [..., h/2, w/2, dy, dx, D]
    return blocks.reshape(*lead, (height // 2) * (width // 2), 4 * dim)  # [..., h/2*w/2, 4D]


class PatchMerger(nn.Module):
    """LayerNorm over each patch, 2x2 unshuffle, then ``Linear(4D, 4D) -> GELU -> Linear(4D, E)``.

    ``forward(features: [..., h*w, D], height, width) -> [..., (h/2)*(w/2), E]`` with ``E = text_dim``, the
    language model's hidden size.
    """

    def __init__(self, vision_dim: int, text_dim: int, *, layer_norm_eps: float = 1e-6) -> None:
        super().__init__()
        merged = 4 * vision_dim
        self.norm = nn.LayerNorm(vision_dim, eps=layer_norm_eps)
        self.proj_in = nn.Linear(merged, merged)
        self.act = nn.GELU()
        self.proj_out = nn.Linear(merged, text_dim)

    def forward(self, features: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Merge and project one grid of patch features (any leading dims, e.g. frames)."""
        merged = pixel_unshuffle_2x2(self.norm(features), height, width)  # [..., h/2*w/2, 4D]
        return self.proj_out(self.act(self.proj_in(merged)))
