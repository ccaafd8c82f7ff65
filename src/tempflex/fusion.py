"""Temporal Fiber Fusion (TFF), the paper's section 3.2, equations (1)-(5).

Input and output are frame-patch features ``x: [B, F, P, D]`` (batch, frames, patches per frame, channels).
For a fixed patch p the slice ``x[:, :, p]`` is a *temporal fiber*. Each layer computes, per fiber:

- local path (eq. 1): a two-layer MLP maps the fiber mean to a depth-wise kernel ``k_p in R^{3 x D}``, applied
  as a circular 3-tap convolution over frames: ``L_f = k_{-1} * x_{f-1} + k_0 * x_f + k_{+1} * x_{f+1}``
  (indices mod F);
- memory path (eq. 2): ``m_f = a_f * m_{f-1} + (1 - a_f) * x_f`` with ``m_{-1} = 0`` and
  ``a_f = sigmoid(W_a x_f)``, computed exactly (``gated_memory_scan``). The authors' code uses a non-causal
  cumprod/cumsum formula that is not this recurrence; we follow the paper;
- periodic path (eq. 3): ``P_f = sum_w cos(2 pi w f / F) W_w x_f`` over the frequencies (default
  {1, 2, 4, 8, 16}) with learned ``W_w`` (the authors' code has none), applied as one D x D matrix per frame,
  built chunk by chunk and again in the backward (``periodic_projection``);
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

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

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

DEFAULT_SCAN_CHUNK = 8
"""Frames per chunk of ``gated_memory_scan`` (``benchmarks/tff.py`` measures the choice)."""


def _sequential_scan(gates: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``m_t = gates_t * m_{t-1} + inputs_t`` (``m_{-1} = 0``), frames on dim -2, one step per frame."""
    # unbind, not indexing: the backward of one unbind is one stack, while each index's backward would
    # allocate and fill a full-size zero gradient (quadratic in F).
    gate_steps, input_steps = gates.unbind(-2), inputs.unbind(-2)
    state = input_steps[0]
    states = [state]
    for gate, step_input in zip(gate_steps[1:], input_steps[1:], strict=True):
        state = gate * state + step_input
        states.append(state)
    return torch.stack(states, dim=-2)


def _linear_recurrence(gates: torch.Tensor, inputs: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Chunked parallel scan of ``m_t = gates_t * m_{t-1} + inputs_t``; frames on dim -2.

    The frames are cut into ``n`` chunks of ``chunk_size``. All chunks run their local recurrence (zero
    start) side by side, ``chunk_size`` steps; the states entering each chunk come from the same recurrence over
    the ``n`` chunk ends (recursively); a last elementwise pass adds ``cumprod(gates) * state_in``. Only
    products of at most ``chunk_size`` gates and sums of same-sign terms appear, so there is no log of a gate,
    no division and no cancellation: gates of exactly 0 or 1 are handled like any other.
    """
    frames = inputs.shape[-2]
    if frames <= chunk_size:
        return _sequential_scan(gates, inputs)
    num_chunks = math.ceil(frames / chunk_size)
    pad = num_chunks * chunk_size - frames
    if pad:  # trailing frames with gate 1 and input 0 leave the state unchanged and are dropped below
        gates = F.pad(gates, (0, 0, 0, pad), value=1.0)
        inputs = F.pad(inputs, (0, 0, 0, pad))
    gate_chunks = gates.unflatten(-2, (num_chunks, chunk_size))  # [..., n, C, D]
    input_chunks = inputs.unflatten(-2, (num_chunks, chunk_size))  # [..., n, C, D]
    local = _sequential_scan(gate_chunks, input_chunks)  # [..., n, C, D], each chunk from a zero state
    decay = torch.cumprod(gate_chunks, dim=-2)  # [..., n, C, D], product of gates since the chunk start
    chunk_end = _linear_recurrence(decay[..., -1, :], local[..., -1, :], chunk_size)  # [..., n, D]
    state_in = F.pad(chunk_end[..., :-1, :], (0, 0, 1, 0))  # [..., n, D], zero before the first chunk
    states = local + decay * state_in.unsqueeze(-2)  # [..., n, C, D]
    return states.flatten(-3, -2)[..., :frames, :]  # [..., F, D]


def gated_memory_scan(
    alpha: torch.Tensor,
    x: torch.Tensor,
    *,
    one_minus_alpha: torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """The memory path's recurrence ``m_f = alpha_f * m_{f-1} + (1 - alpha_f) * x_f``, ``m_{-1} = 0``.

    ``alpha`` and ``x`` are ``[..., F, D]`` with frames on dim -2. Computed exactly (no approximation of the
    recurrence) by a chunked parallel scan: ``chunk_size`` frames per chunk (default 8, the fastest measured on
    CPU for F from 64 to 512), applied recursively to the chunk ends, so a 512-frame clip takes 3 levels of 8
    sequential steps instead of 512 steps. Differentiable in both inputs.

    ``one_minus_alpha`` may be given when it is known more precisely than ``1 - alpha`` (e.g.
    ``sigmoid(-z)`` for ``alpha = sigmoid(z)``, which keeps the digits of gates within 1e-7 of 1).

    Measured: relative error <= 1e-6 against a float64 sequential loop in float32 at F = 512 (``benchmarks/tff.py``).
    """
    if alpha.shape != x.shape:
        raise ValueError(f"alpha {tuple(alpha.shape)} and x {tuple(x.shape)} must have the same shape [..., F, D]")
    if x.dim() < 2 or x.shape[-2] == 0:
        raise ValueError(f"x must be [..., F, D] with at least one frame, got shape {tuple(x.shape)}")
    if one_minus_alpha is None:
        one_minus_alpha = 1.0 - alpha
    chunk = DEFAULT_SCAN_CHUNK if chunk_size is None else chunk_size
    if chunk < 2:
        raise ValueError(f"chunk_size must be >= 2, got {chunk_size}")
    return _linear_recurrence(alpha, one_minus_alpha * x, chunk)


class _ComplementarySigmoid(torch.autograd.Function):
    """``(sigmoid(z), sigmoid(-z))`` with the backward written from both outputs (see ``complementary_sigmoid``)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate, complement = torch.sigmoid(logits), torch.sigmoid(-logits)
        ctx.save_for_backward(gate, complement)
        return gate, complement

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_gate: torch.Tensor | None, grad_complement: torch.Tensor | None
    ) -> torch.Tensor:
        gate, complement = ctx.saved_tensors
        if grad_gate is None:
            grad_gate = torch.zeros_like(gate)
        if grad_complement is None:
            grad_complement = torch.zeros_like(complement)
        return (grad_gate - grad_complement) * gate * complement


def complementary_sigmoid(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, 1 - a)`` for ``a = sigmoid(logits)``, both to full relative precision, with an exact gradient.

    ``1 - a`` is computed as ``sigmoid(-logits)`` (no cancellation for gates near 1), and the gradient w.r.t. the
    logits is ``(g_a - g_{1-a}) * a * (1 - a)`` from the two accurate outputs. Autograd through
    ``sigmoid(-logits)`` alone would form ``s * (1 - s)`` from ``s = sigmoid(-logits)`` close to 1, which in
    float32 is off by up to ~10% per element for logits below about -8 (gates near 0): measured 1e-4 normwise
    against float64, against ~1e-7 this way (``tests/test_fusion.py``).
    """
    return _ComplementarySigmoid.apply(logits)


def _frame_chunks(frames: int, rows: int, dim: int) -> range:
    """Starts of the frame chunks whose ``D x D`` matrices together hold at most one ``[F, rows, D]`` copy of x."""
    per_chunk = max(1, min(frames, (frames * rows) // dim))
    return range(0, frames, per_chunk)


class _PeriodicProjection(torch.autograd.Function):
    """``out_f = x_f M_f^T`` with ``M_f = sum_k c_{f,k} W_k``; saves x, W and c, never the matrices."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, weight: torch.Tensor, cosines: torch.Tensor
    ) -> torch.Tensor:
        frames, rows, dim = x.shape
        count, dim_out = cosines.shape[1], weight.shape[0]
        # [D_out, K*D_in] -> [K, D_in*D_out]: one copy, so that each chunk's M_f^T is a plain matmul, no permute
        transposed = weight.view(dim_out, count, dim).permute(1, 2, 0).reshape(count, dim * dim_out)
        out = x.new_empty(frames, rows, dim_out)  # [F, R, D_out]
        starts = _frame_chunks(frames, rows, dim)
        for start in starts:
            stop = min(frames, start + starts.step)
            matrices = (cosines[start:stop] @ transposed).view(stop - start, dim, dim_out)  # [f, D_in, D_out]
            torch.bmm(x[start:stop], matrices, out=out[start:stop])  # [f, R, D_out]
        ctx.save_for_backward(x, weight, cosines)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        with torch.autocast(grad_out.device.type, enabled=False):  # as in the forward (periodic_projection)
            return _PeriodicProjection._backward(ctx, grad_out)

    @staticmethod
    def _backward(
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        x, weight, cosines = ctx.saved_tensors
        frames, rows, dim = x.shape
        count, dim_out = cosines.shape[1], weight.shape[0]
        grad_out = grad_out.to(x.dtype).contiguous()
        by_frequency = weight.view(dim_out, count, dim).transpose(0, 1).reshape(count, dim_out * dim)  # [K, Do*Di]
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        accumulate = torch.promote_types(weight.dtype, torch.float32)  # chunks summed in float32 at least
        wanted = ctx.needs_input_grad[1]
        grad_by_frequency = torch.zeros(count, dim_out * dim, dtype=accumulate, device=x.device) if wanted else None
        starts = _frame_chunks(frames, rows, dim)
        for start in starts:
            stop = min(frames, start + starts.step)
            if grad_x is not None:  # dL/dx_f = dL/dout_f M_f
                matrices = (cosines[start:stop] @ by_frequency).view(stop - start, dim_out, dim)  # [f, D_out, D_in]
                torch.bmm(grad_out[start:stop], matrices, out=grad_x[start:stop])  # [f, R, D_in]
            if grad_by_frequency is not None:  # dL/dW_k = sum_f c_{f,k} dL/dout_f^T x_f
                outer = torch.bmm(grad_out[start:stop].transpose(1, 2), x[start:stop])  # [f, D_out, D_in]
                grad_by_frequency += cosines[start:stop].T @ outer.flatten(1)  # [K, D_out*D_in]
        grad_weight = None
        if grad_by_frequency is not None:  # [K, D_out, D_in] -> [D_out, K*D_in], the layout of the weight
            grad_weight = grad_by_frequency.view(count, dim_out, dim).transpose(0, 1).reshape(dim_out, count * dim)
            grad_weight = grad_weight.to(weight.dtype)
        return grad_x, grad_weight, None


def periodic_projection(x: torch.Tensor, weight: torch.Tensor, cosines: torch.Tensor) -> torch.Tensor:
    """``out[f] = x[f] @ (sum_k cosines[f, k] * W_k).T`` for frame-major ``x: [F, R, D_in]``, the stacked
    ``weight = [W_1 | ... | W_K]: [D_out, K * D_in]`` (an ``nn.Linear(K * D_in, D_out)`` weight) and
    ``cosines: [F, K]`` (a constant: no gradient) -> ``[F, R, D_out]``.

    The per-frame matrices are built a chunk of frames at a time (at most one copy of ``x`` in total) and built
    again in the backward instead of being saved, so the memory is that of ``x`` whatever ``D``. Exact: the
    tests compare it with eq. (3) written out in float64, values and gradients.
    """
    count = cosines.shape[-1] if cosines.dim() == 2 else 0
    fits = x.dim() == 3 and weight.dim() == 2 and cosines.dim() == 2 and cosines.shape[0] == x.shape[0]
    if not fits or weight.shape[1] != count * x.shape[2]:
        raise ValueError(
            f"periodic_projection needs x [F, R, D_in], weight [D_out, K*D_in], cosines [F, K]; got "
            f"{tuple(x.shape)}, {tuple(weight.shape)}, {tuple(cosines.shape)}"
        )
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):  # the dtype autocast gives a matmul; the Function runs without it
        compute_dtype = torch.get_autocast_dtype(device_type)
        x, weight = x.to(compute_dtype), weight.to(compute_dtype)
    with torch.autocast(device_type, enabled=False):
        return _PeriodicProjection.apply(x.contiguous(), weight.contiguous(), cosines.to(x.dtype).contiguous())


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

    def periodic_cosines(self, frames: int, like: torch.Tensor) -> torch.Tensor:
        """``cos(2 pi w f / F)`` for every frame and frequency, ``[F, K]`` in ``like``'s dtype and device."""
        # (w * f) mod F in exact integers on the host, cos in float64 there (a tiny [F, K] table; MPS has no
        # float64): no device-to-host sync, then one copy to the device.
        steps = (torch.arange(frames)[:, None] * torch.tensor(self.frequencies)[None, :]) % frames  # [F, K]
        return torch.cos(2 * math.pi * steps.double() / frames).to(device=like.device, dtype=like.dtype)

    def periodic_view(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. (3): ``P_f = sum_w cos(2 pi w f / F) W_w x_f``, as one ``D x D`` matrix per frame (exact).

        The cosines depend on the frame only, so ``P_f = M_f x_f`` with ``M_f = sum_w cos(2 pi w f / F) W_w``:
        ``N D^2 + F K D^2`` work over the ``N = B F P`` positions, against ``N K D^2`` for ``[W_w1 | ... | W_wK]``
        applied to ``K`` cosine-weighted copies of ``x`` (a fifth at K = 5; 33% fewer FLOPs for a whole layer at the
        paper's width and 64 patches per frame). ``periodic_projection`` builds the matrices a few frames at a time
        and again in the backward, so they never take more memory than one copy of ``x``.
        """
        batch, frames, patches, dim = x.shape
        by_frame = x.transpose(0, 1).reshape(frames, batch * patches, dim)  # [F, B*P, D_in]
        weight = self.periodic_proj.weight.to(x.dtype)  # [D_out, K*D_in]
        periodic = periodic_projection(by_frame, weight, self.periodic_cosines(frames, x))  # [F, B*P, D_out]
        return periodic.view(frames, batch, patches, dim).transpose(0, 1)  # [B, F, P, D]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, F, P, D] -> [B, F, P, D]``."""
        fiber_mean = x.mean(dim=1)  # [B, P, D]
        views = []
        for path in self.paths:
            if path == "local":
                views.append(self.local_view(x, fiber_mean))
            elif path == "memory":
                views.append(self.memory_view(x))
            else:
                views.append(self.periodic_view(x))
        if len(views) == 1:
            fused = views[0]
        else:
            weights = torch.softmax(self.fusion_gate(fiber_mean), dim=-1)  # [B, P, paths]
            weights = weights.unsqueeze(1).unsqueeze(-1)  # [B, 1, P, paths, 1]
            fused = (torch.stack(views, dim=-2) * weights).sum(dim=-2)  # [B, F, P, D]
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
        for layer in self.layers:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        return x
