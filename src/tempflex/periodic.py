"""TFF's periodic path (paper eq. 3) as one matrix per distinct frame: ``P_f = M_f x_f``, ``M_f = sum_w c_{f,w} W_w``.

The cosines ``c_{f,w} = cos(2 pi w f / F)`` depend on the frame only, so eq. (3)'s sum of ``K`` projections is one
``D x D`` matrix per frame. Frames ``f`` and ``F - f`` have the same cosines for every integer frequency
(``cos(2 pi w (F - f) / F) = cos(2 pi w f / F)``), so a clip of ``F`` frames needs only ``F // 2 + 1`` distinct
matrices, and each is applied to the rows of all the frames that share it in one product: half the matrices to
build and twice the rows per product (the products are what bound the speed on a CPU at 64 patches a frame).

``periodic_cosines(frames, frequencies)`` gives the table and ``frame_groups`` the frames that share a row, both
on the host in exact integer arithmetic (``(w f) mod F`` folded to ``min(s, F - s)``, so equal rows are equal to
the bit). ``periodic_projection`` applies it as one autograd Function that builds the matrices a few at a time
and again in the backward, so they never take more memory than one copy of ``x`` (or two matrices, if more).
Building a matrix streams all ``K`` weights, so with few rows per frame (under about 12-16) eq. (3) as written,
``K`` cosine-weighted copies of x through ``[W_1 | ... | W_K]``, is faster: ``cheaper_form`` picks one of the two
forms from (F, rows, K, D, groups).

Example (``python -c``)::

    >>> cosines = periodic_cosines(8, (1, 2, 4))
    >>> [group.tolist() for group in frame_groups(cosines)]  # frames 0 and 4 alone, then 3 pairs
    [[[0], [4]], [[1, 7], [2, 6], [3, 5]]]

No transformers import here: plain ints and tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["cheaper_form", "frame_groups", "periodic_cosines", "periodic_projection", "periodic_table"]


def periodic_cosines(frames: int, frequencies: Sequence[int]) -> torch.Tensor:
    """``cos(2 pi w f / F)`` for every frame ``f`` and frequency ``w``: ``[F, K]`` float64 on the host.

    ``(w f) mod F`` in exact integers, folded to ``min(s, F - s)`` (the same cosine), so that frames whose
    cosines are equal in exact arithmetic get bit-equal rows (``frame_groups`` relies on it).
    """
    steps = (torch.arange(frames)[:, None] * torch.tensor([int(w) for w in frequencies])[None, :]) % frames  # [F, K]
    steps = torch.minimum(steps, frames - steps)  # cos(2 pi (F - s) / F) = cos(2 pi s / F)
    return torch.cos(2 * math.pi * steps.double() / frames)


def frame_groups(cosines: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The frames whose cosine rows are equal, as one ``[n, s]`` index tensor per group size ``s`` (ascending).

    ``cosines: [F, K]`` on the host. Row ``i`` of the size-``s`` tensor lists the ``s`` frames of one group in
    ascending order; the groups of a size are ordered by their first frame.
    """
    _, group_of_frame = torch.unique(cosines, dim=0, return_inverse=True)  # [F]
    members: dict[int, list[int]] = {}
    for frame, group in enumerate(group_of_frame.tolist()):
        members.setdefault(group, []).append(frame)
    by_size: dict[int, list[list[int]]] = {}
    for frames in sorted(members.values()):
        by_size.setdefault(len(frames), []).append(frames)
    return tuple(torch.tensor(by_size[size], dtype=torch.long) for size in sorted(by_size))


def periodic_table(
    frames: int, frequencies: Sequence[int], device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``(cosines [F, K], frame_groups)`` on ``device``, cosines in ``dtype``: what ``periodic_projection`` takes.

    Built on the host in exact integers (no device-to-host sync), then one copy each; a TFF stack builds it once
    per forward for all its layers (~0.5 ms on a CPU at F = 64).
    """
    cosines = periodic_cosines(frames, frequencies)  # [F, K] float64
    groups = tuple(members.to(device) for members in frame_groups(cosines))
    return cosines.to(device=device, dtype=dtype), groups


BUILD_COST = 20
"""What one multiply-add of building a matrix costs, in multiply-adds of a matmul. Building only streams the ``K``
weights (memory-bound, and once per chunk of groups), so it is far dearer than its FLOPs: fitted to the measured
crossover, at about 12-16 rows per frame for D = 256 to 1152 and F = 16 to 64 (``benchmarks/tff.py``, forms table)."""

MATRIX_OVERHEAD = 2_000_000
"""The fixed cost of each matrix's share of a chunk (the dispatch of its index, build, product and scatter, forward
and backward), in matmul multiply-adds: what moves the crossover to about 80 rows per frame at D = 64."""


def cheaper_form(frames: int, rows: int, count: int, dim: int, matrices: int) -> str:
    """``"grouped"`` (one ``dim x dim`` matrix per frame group) or ``"stacked"`` (``count`` weighted copies of x
    through ``[W_1 | ... | W_K]``), whichever the cost model says is cheaper for ``frames`` frames of ``rows`` rows
    and ``matrices`` distinct cosine rows.

    In multiply-adds: grouped ``(frames * rows + BUILD_COST * matrices * count) * dim^2 + MATRIX_OVERHEAD *
    matrices``, stacked ``frames * rows * count * dim^2``. Both forms hold at most a bounded multiple of x (one copy
    of x in matrices, or ``count`` copies), so memory does not decide. Fitted on 2 CPU threads; not measured on a
    GPU.

        >>> cheaper_form(64, 64, 5, 1152, 33), cheaper_form(64, 4, 5, 1152, 33), cheaper_form(16, 32, 5, 64, 9)
        ('grouped', 'stacked', 'stacked')
    """
    square = dim * dim
    grouped = (frames * rows + BUILD_COST * matrices * count) * square + MATRIX_OVERHEAD * matrices
    return "grouped" if grouped < frames * rows * count * square else "stacked"


def _matrices_per_chunk(frames: int, rows: int, dim: int, device: torch.device) -> int:
    """How many matrices to build at once: together at most one copy of x; on a CPU one per thread, and at least 2.

    Measured on 2 threads, F = 64, D = 1152, fwd+bwd: 2 matrices a chunk took 142 / 186 / 307 ms at 32 / 64 / 128 rows
    a frame, against 221 / 203 / 385 ms for the one-copy-of-x budget (1 / 3 / 7 matrices): a batched product splits
    its batch over the threads, so a batch of 3 on 2 threads leaves one idle half the time, and each chunk
    streams all K weights once, so a chunk of 1 streams them most often.
    """
    one_copy_of_x = (frames * rows) // dim
    if device.type == "cpu":
        return max(2, min(torch.get_num_threads(), one_copy_of_x))
    return max(1, one_copy_of_x)


class _PeriodicProjection(torch.autograd.Function):
    """``out_f = x_f M_f^T`` with ``M_f = sum_k c_{f,k} W_k``, one matrix per frame group; never saves a matrix."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        cosines: torch.Tensor,
        groups: tuple[torch.Tensor, ...],
    ) -> torch.Tensor:
        frames, rows, dim = x.shape
        count, dim_out = cosines.shape[1], weight.shape[0]
        # [D_out, K*D_in] -> [K, D_in*D_out]: one copy, so that each chunk's M^T is a plain matmul, no permute
        transposed = weight.view(dim_out, count, dim).permute(1, 2, 0).reshape(count, dim * dim_out)
        out = x.new_empty(frames, rows, dim_out)  # [F, R, D_out]
        per_chunk = _matrices_per_chunk(frames, rows, dim, x.device)
        for members in groups:  # [n, s]: n groups of s frames
            size = members.shape[1]
            starts = range(0, members.shape[0], per_chunk)
            for start in starts:
                chunk = members[start : start + starts.step]  # [c, s]
                matrices = (cosines[chunk[:, 0]] @ transposed).view(-1, dim, dim_out)  # [c, D_in, D_out]
                shared_rows = x.index_select(0, chunk.flatten()).view(-1, size * rows, dim)  # [c, s*R, D_in]
                products = torch.bmm(shared_rows, matrices)  # [c, s*R, D_out]
                out.index_copy_(0, chunk.flatten(), products.view(-1, rows, dim_out))  # back to frame order
        ctx.groups = groups
        ctx.save_for_backward(x, weight, cosines)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        with torch.autocast(grad_out.device.type, enabled=False):  # as in the forward (periodic_projection)
            return _PeriodicProjection._backward(ctx, grad_out)

    @staticmethod
    def _backward(
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        x, weight, cosines = ctx.saved_tensors
        frames, rows, dim = x.shape
        count, dim_out = cosines.shape[1], weight.shape[0]
        grad_out = grad_out.to(x.dtype).contiguous()
        by_frequency = weight.view(dim_out, count, dim).transpose(0, 1).reshape(count, dim_out * dim)  # [K, Do*Di]
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        accumulate = torch.promote_types(weight.dtype, torch.float32)  # chunks summed in float32 at least
        wanted = ctx.needs_input_grad[1]
        grad_by_frequency = torch.zeros(count, dim_out * dim, dtype=accumulate, device=x.device) if wanted else None
        per_chunk = _matrices_per_chunk(frames, rows, dim, x.device)
        for members in ctx.groups:  # [n, s]
            size = members.shape[1]
            starts = range(0, members.shape[0], per_chunk)
            for start in starts:
                chunk = members[start : start + starts.step]  # [c, s]
                chunk_cosines = cosines[chunk[:, 0]]  # [c, K]
                grad_rows = grad_out.index_select(0, chunk.flatten()).view(-1, size * rows, dim_out)  # [c, s*R, Do]
                if grad_x is not None:  # dL/dx_f = dL/dout_f M_f
                    matrices = (chunk_cosines @ by_frequency).view(-1, dim_out, dim)  # [c, D_out, D_in]
                    products = torch.bmm(grad_rows, matrices)  # [c, s*R, D_in]
                    grad_x.index_copy_(0, chunk.flatten(), products.view(-1, rows, dim))
                if grad_by_frequency is not None:  # dL/dW_k = sum_f c_{f,k} dL/dout_f^T x_f
                    shared_rows = x.index_select(0, chunk.flatten()).view(-1, size * rows, dim)  # [c, s*R, D_in]
                    outer = torch.bmm(grad_rows.transpose(1, 2), shared_rows)  # [c, D_out, D_in]
                    grad_by_frequency.addmm_(chunk_cosines.T.to(accumulate), outer.flatten(1).to(accumulate))
        grad_weight = None
        if grad_by_frequency is not None:  # [K, D_out, D_in] -> [D_out, K*D_in], the layout of the weight
            grad_weight = grad_by_frequency.view(count, dim_out, dim).transpose(0, 1).reshape(dim_out, count * dim)
            grad_weight = grad_weight.to(weight.dtype)
        return grad_x, grad_weight, None, None


def periodic_projection(
    x: torch.Tensor,
    weight: torch.Tensor,
    cosines: torch.Tensor,
    groups: tuple[torch.Tensor, ...] | None = None,
    *,
    form: str | None = None,
) -> torch.Tensor:
    """``out[f] = x[f] @ (sum_k cosines[f, k] * W_k).T`` for frame-major ``x: [F, R, D_in]``, the stacked
    ``weight = [W_1 | ... | W_K]: [D_out, K * D_in]`` (an ``nn.Linear(K * D_in, D_out)`` weight) and
    ``cosines: [F, K]`` (a constant: no gradient) -> ``[F, R, D_out]``.

    ``form="grouped"``: frames with equal cosine rows share one matrix, applied to all their rows in one product,
    built a chunk of groups at a time (at most one copy of ``x``, or two matrices) and again in the backward
    instead of being saved, so the memory is that of ``x`` whatever ``D``. ``form="stacked"``: eq. (3) as written, ``K``
    weighted copies of ``x`` through one matmul. ``None`` (default): ``cheaper_form`` chooses. ``groups`` is
    ``frame_groups`` of the cosines (on x's device), computed here from a host copy when not given; pass it to
    avoid that copy from a GPU. Exact either way: the tests compare both forms with eq. (3) written out in float64,
    values and gradients.
    """
    count = cosines.shape[-1] if cosines.dim() == 2 else 0
    fits = x.dim() == 3 and weight.dim() == 2 and cosines.dim() == 2 and cosines.shape[0] == x.shape[0]
    if not fits or weight.shape[1] != count * x.shape[2]:
        raise ValueError(
            f"periodic_projection needs x [F, R, D_in], weight [D_out, K*D_in], cosines [F, K]; got "
            f"{tuple(x.shape)}, {tuple(weight.shape)}, {tuple(cosines.shape)}"
        )
    if form not in (None, "grouped", "stacked"):
        raise ValueError(f"form must be 'grouped', 'stacked' or None (choose), got {form!r}")
    if groups is None:
        groups = tuple(members.to(x.device) for members in frame_groups(cosines.detach().cpu()))
    if form is None:
        form = cheaper_form(x.shape[0], x.shape[1], count, x.shape[2], sum(len(members) for members in groups))
    if form == "stacked":  # eq. (3) as written: K cosine-weighted copies of x through [W_1 | ... | W_K]
        weighted = x.unsqueeze(-2) * cosines.to(x.dtype)[:, None, :, None]  # [F, R, K, D_in]
        return F.linear(weighted.flatten(-2), weight)  # [F, R, D_out]
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):  # the dtype autocast gives a matmul; the Function runs without it
        compute_dtype = torch.get_autocast_dtype(device_type)
        x, weight = x.to(compute_dtype), weight.to(compute_dtype)
    with torch.autocast(device_type, enabled=False):
        return _PeriodicProjection.apply(x.contiguous(), weight.contiguous(), cosines.to(x.dtype).contiguous(), groups)
