"""Temporal Fiber Fusion (TFF), the paper's section 3.2, equations (1)-(5).

Input and output are frame-patch features ``x: [B, F, P, D]`` (batch, frames, patches per frame, channels).
For a fixed patch p the slice ``x[:, :, p]`` is a *temporal fiber*. Each layer computes, per fiber:

- local path (eq. 1): a two-layer MLP maps the fiber mean to a depth-wise kernel ``k_p in R^{3 x D}``, applied
  as a circular 3-tap convolution over frames: ``L_f = k_{-1} * x_{f-1} + k_0 * x_f + k_{+1} * x_{f+1}``
  (indices mod F);
- memory path (eq. 2): ``m_f = a_f * m_{f-1} + (1 - a_f) * x_f`` with ``m_{-1} = 0`` and
  ``a_f = sigmoid(W_a x_f)``, computed exactly (``tempflex.scan.gated_memory_scan``, whose backward is the
  adjoint recurrence). The authors' code uses a non-causal cumprod/cumsum formula that is not this recurrence;
  we follow the paper;
- periodic path (eq. 3): ``P_f = sum_w cos(2 pi w f / F) W_w x_f`` over the frequencies (default
  {1, 2, 4, 8, 16}) with learned ``W_w`` (the authors' code has none), applied as one D x D matrix per group of
  frames with equal cosines (``f`` and ``F - f``), built chunk by chunk and again in the backward, or as the
  equation is written when there are few rows per frame (``tempflex.periodic``);
- fusion (eq. 4): ``y = sum_i beta_i * view_i`` with ``beta = softmax(W_beta mean_f x)`` per fiber, then the
  frame context ``c_f = mean_p y_{f,p}`` is broadcast back with a learnable scale: ``y += gamma * c_f``;
- residual refinement (eq. 5): ``z = x + LayerNorm(y + FFN(y))`` with ``FFN(z) = GLU(W_2 GELU(W_1 z))``.

Frames are indexed from 0, so ``cos(2 pi w f / F)`` is 1 on the first frame, and for an image (F = 1) every
path still runs: the local kernel taps all read the single frame, the memory path gives ``(1 - a) x`` and
every cosine is 1.

**Identity at initialisation.** The output LayerNorm's scale and shift start at zero, so each layer returns
``x`` exactly and a freshly built TFF can be inserted into a trained stage-2 model (the paper's stage 3)
without disturbing it. Its gradient is not zero: the LayerNorm's own parameters receive gradient at once,
and after the first optimiser step the scale is non-zero and gradient flows into every path. The context
scale ``gamma`` also starts at zero (the broadcast is learned in, not imposed).

Switching paths off (``paths=("memory", "periodic")`` etc.) reproduces the paper's Table 4 ablation: a
disabled path has no parameters and the softmax runs over the remaining ones; with ``paths=()`` the module is
a no-op.

Example::

    >>> tff = TemporalFiberFusion(64, num_layers=2)
    >>> x = torch.randn(1, 8, 16, 64)
    >>> torch.equal(tff(x), x)  # identity at init
    True

No transformers import here: the module takes plain ints and tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from tempflex.periodic import periodic_projection, periodic_table
from tempflex.scan import complementary_sigmoid, gated_memory_scan

__all__ = [
    "PATHS",
    "TemporalFiberFusion",
    "TemporalFiberFusionLayer",
    "check_paths",
    "complementary_sigmoid",
    "gated_memory_scan",
    "periodic_projection",
]

PATHS: tuple[str, ...] = ("local", "memory", "periodic")
"""The three temporal views, in the order their fusion weights are stored."""


def check_paths(paths: Sequence[str]) -> tuple[str, ...]:
    """The given TFF paths in canonical order; ValueError for unknown or repeated names."""
    unknown = [p for p in paths if p not in PATHS]
    if unknown or len(set(paths)) != len(paths):
        raise ValueError(f"paths must be distinct names from {PATHS}, got {tuple(paths)}")
    return tuple(p for p in PATHS if p in paths)  # canonical order


class TemporalFiberFusionLayer(nn.Module):
    """One TFF layer: the three fiber views, adaptive fusion, frame-context broadcast, residual refinement.

    ``forward(x: [B, F, P, D]) -> [B, F, P, D]``; see the module docstring for the equations.
    """

    def __init__(
        self,
        dim: int,
        *,
        kernel_hidden: int,
        ffn_hidden: int,
        frequencies: Sequence[int] = (1, 2, 4, 8, 16),
        paths: Sequence[str] = PATHS,
        layer_norm_eps: float = 1e-6,
        scan_chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.paths = check_paths(paths)
        self.scan_chunk_size = scan_chunk_size
        if "local" in self.paths:
            # phi_loc: fiber mean [D] -> depth-wise kernel [3, D] (taps f-1, f, f+1)
            self.kernel_mlp = nn.Sequential(nn.Linear(dim, kernel_hidden), nn.GELU(), nn.Linear(kernel_hidden, 3 * dim))
        if "memory" in self.paths:
            self.gate_proj = nn.Linear(dim, dim, bias=False)  # W_alpha
        if "periodic" in self.paths:
            if not frequencies:
                raise ValueError("the periodic path needs at least one frequency")
            self.frequencies = tuple(int(w) for w in frequencies)  # plain ints: no buffer to sync back from a GPU
            # [W_w1 | W_w2 | ... | W_wK]: one matmul over the cosine-weighted copies of x
            self.periodic_proj = nn.Linear(len(frequencies) * dim, dim, bias=False)
        if len(self.paths) > 1:
            self.fusion_gate = nn.Linear(dim, len(self.paths), bias=False)  # W_beta
        self.context_scale = nn.Parameter(torch.zeros(dim))  # gamma
        self.ffn_in = nn.Linear(dim, ffn_hidden)  # W_1
        self.ffn_out = nn.Linear(ffn_hidden, 2 * dim)  # W_2, halves split by the GLU
        self.norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        nn.init.zeros_(self.norm.weight)  # identity at init: the residual branch starts at exactly 0
        nn.init.zeros_(self.norm.bias)

    def local_view(self, x: torch.Tensor, fiber_mean: torch.Tensor) -> torch.Tensor:
        """Eq. (1): circular depth-wise 3-tap convolution over frames with a fiber-conditioned kernel."""
        kernel = self.kernel_mlp(fiber_mean).unflatten(-1, (3, self.dim))  # [B, P, 3, D]
        kernel = kernel.unsqueeze(1)  # [B, 1, P, 3, D]
        previous = x.roll(1, dims=1)  # previous[:, f] = x[:, f - 1 mod F]
        following = x.roll(-1, dims=1)  # following[:, f] = x[:, f + 1 mod F]
        return kernel[..., 0, :] * previous + kernel[..., 1, :] * x + kernel[..., 2, :] * following

    def memory_view(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. (2): the gated accumulator, exact, in float32 at least."""
        batch, frames, patches, dim = x.shape
        compute_dtype = torch.promote_types(x.dtype, torch.float32)
        logits = self.gate_proj(x).to(compute_dtype)  # [B, F, P, D]
        alpha, one_minus_alpha = complementary_sigmoid(logits)  # each [B, F, P, D]
        # The recurrence is elementwise per (patch, channel): fold P into the channel dim, frames stay on -2.
        memory = gated_memory_scan(
            alpha.reshape(batch, frames, patches * dim),  # [B, F, P*D]
            x.to(compute_dtype).reshape(batch, frames, patches * dim),  # [B, F, P*D]
            one_minus_alpha=one_minus_alpha.reshape(batch, frames, patches * dim),  # [B, F, P*D]
            chunk_size=self.scan_chunk_size,
        )
        return memory.reshape(batch, frames, patches, dim).to(x.dtype)  # [B, F, P, D]

    def periodic_view(
        self, x: torch.Tensor, table: tuple[torch.Tensor, tuple[torch.Tensor, ...]] | None = None
    ) -> torch.Tensor:
        """Eq. (3): ``P_f = sum_w cos(2 pi w f / F) W_w x_f``, exact, in the cheaper of two forms.

        The cosines depend on the frame only, so ``P_f = M_f x_f`` with ``M_f = sum_w cos(2 pi w f / F) W_w``,
        and frames ``f`` and ``F - f`` share ``M_f``: ``N D^2 + (F // 2 + 1) K D^2`` work over the ``N = B F P``
        positions, against ``N K D^2`` for ``[W_w1 | ... | W_wK]`` applied to ``K`` cosine-weighted copies of ``x``
        (a fifth at K = 5). Building a matrix streams every ``W_w``, so below about 12-16 rows (``B * P``) per
        frame at D = 256 to 1152, 80 at D = 64, the copies are faster; ``tempflex.periodic.cheaper_form`` chooses,
        and the grouped form never holds more matrices than one copy of ``x`` (or two). ``table``: this clip's
        ``periodic_table`` when the caller has it (the stack builds it once for all layers).
        """
        batch, frames, patches, dim = x.shape
        by_frame = x.transpose(0, 1).reshape(frames, batch * patches, dim)  # [F, B*P, D_in]
        weight = self.periodic_proj.weight.to(x.dtype)  # [D_out, K*D_in]
        cosines, groups = table or periodic_table(frames, self.frequencies, x.device, x.dtype)
        periodic = periodic_projection(by_frame, weight, cosines, groups)  # [F, B*P, D_out]
        return periodic.view(frames, batch, patches, dim).transpose(0, 1)  # [B, F, P, D]

    def forward(
        self, x: torch.Tensor, periodic: tuple[torch.Tensor, tuple[torch.Tensor, ...]] | None = None
    ) -> torch.Tensor:
        """``[B, F, P, D] -> [B, F, P, D]``; ``periodic``: the clip's ``periodic_table``, if already built."""
        fiber_mean = x.mean(dim=1)  # [B, P, D]
        views = []
        for path in self.paths:
            if path == "local":
                views.append(self.local_view(x, fiber_mean))
            elif path == "memory":
                views.append(self.memory_view(x))
            else:
                views.append(self.periodic_view(x, periodic))
        if len(views) == 1:
            fused = views[0]
        else:
            weights = torch.softmax(self.fusion_gate(fiber_mean), dim=-1)  # [B, P, paths]
            weights = weights.unsqueeze(1).unsqueeze(-1)  # [B, 1, P, paths, 1]
            # One multiply-add per view, no stacked copy: 4x faster fwd+bwd than stack-mul-sum (benchmarks/tff.py).
            fused = views[0] * weights[..., 0, :]  # [B, F, P, D]
            for index, view in enumerate(views[1:], start=1):
                fused = torch.addcmul(fused, view, weights[..., index, :])  # [B, F, P, D]
        context = fused.mean(dim=2, keepdim=True)  # [B, F, 1, D], c_f
        fused = fused + self.context_scale * context
        refined = F.glu(self.ffn_out(F.gelu(self.ffn_in(fused))), dim=-1)  # [B, F, P, D]
        # The output norm in float32 at least: its scale and shift gradients sum over every position, and in bf16
        # that sum errs by ~10 roundings at 800 positions (measured); float32 keeps them at 1-2 (tests/test_fusion.py).
        compute_dtype = torch.promote_types(x.dtype, torch.float32)
        normed = F.layer_norm(
            (fused + refined).to(compute_dtype), (self.dim,), self.norm.weight.to(compute_dtype),
            self.norm.bias.to(compute_dtype), self.norm.eps,
        )  # fmt: skip
        return x + normed.to(x.dtype)


class TemporalFiberFusion(nn.Module):
    """A stack of ``num_layers`` TFF layers over frame-patch features ``[B, F, P, D]``.

    Paper defaults (section 4.1): 4 layers, D = 1152, kernel-MLP hidden 1152 (``kernel_hidden`` defaults to
    ``dim``), FFN hidden 2304 (``ffn_hidden`` defaults to ``2 * dim``), frequencies {1, 2, 4, 8, 16}.

    Command: ``python benchmarks/tff.py`` prints the scan's error and the layer timing.
    """

    def __init__(
        self,
        dim: int,
        num_layers: int = 4,
        *,
        kernel_hidden: int | None = None,
        ffn_hidden: int | None = None,
        frequencies: Sequence[int] = (1, 2, 4, 8, 16),
        paths: Sequence[str] = PATHS,
        layer_norm_eps: float = 1e-6,
        scan_chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        if dim < 1 or num_layers < 0:
            raise ValueError(f"need dim >= 1 and num_layers >= 0, got dim={dim}, num_layers={num_layers}")
        self.dim = dim
        self.paths = check_paths(paths)
        self.gradient_checkpointing = False  # set by transformers' gradient_checkpointing_enable()
        depth = num_layers if self.paths else 0  # no path: a no-op with no parameters
        self.layers = nn.ModuleList(
            TemporalFiberFusionLayer(
                dim,
                kernel_hidden=kernel_hidden or dim,
                ffn_hidden=ffn_hidden or 2 * dim,
                frequencies=frequencies,
                paths=self.paths,
                layer_norm_eps=layer_norm_eps,
                scan_chunk_size=scan_chunk_size,
            )
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, F, P, D] -> [B, F, P, D]``; F = 1 for images."""
        if x.dim() != 4 or x.shape[-1] != self.dim:
            raise ValueError(f"TemporalFiberFusion expects [B, F, P, {self.dim}], got {tuple(x.shape)}")
        table = None
        if self.layers and "periodic" in self.paths:  # the same for every layer: built once per forward
            table = periodic_table(x.shape[1], self.layers[0].frequencies, x.device, x.dtype)
        for layer in self.layers:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, table, use_reentrant=False)
            else:
                x = layer(x, table)
        return x
