"""TFF's memory path (paper eq. 2): the gated recurrence ``m_f = a_f m_{f-1} + (1 - a_f) x_f``, exact, with its
gradient written as the adjoint recurrence, and the gate pair ``(a, 1 - a)`` with exact logit gradients.

``gated_memory_scan`` runs the recurrence one fused step per frame, or for long clips of narrow frames as a
chunked parallel scan (no log, no division: gates of exactly 0 or 1 are like any other). Its backward is the same
kind of recurrence run backwards in time, ``lambda_f = g_f + a_{f+1} lambda_{f+1}``, with ``dL/du_f = lambda_f``
and ``dL/da_f = lambda_f m_{f-1}``: one scan and one product, where autograd through the scan's steps would record
every step, stack and cumprod.

Example::

    >>> alpha, x = torch.full((1, 3, 1), 0.5), torch.ones(1, 3, 1)
    >>> gated_memory_scan(alpha, x).flatten().tolist()
    [0.5, 0.75, 0.875]

No transformers import here: plain tensors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["complementary_sigmoid", "gated_memory_scan"]

DEFAULT_SCAN_CHUNK = 8
"""Frames per chunk when ``gated_memory_scan`` chunks (``benchmarks/tff.py`` measures the choice)."""

SEQUENTIAL_WIDTH = 1024
"""Elements per frame from which one fused step per frame beats the chunked scan at any length (measured 0.55-0.86x
of its time at 1024 and 8192 elements for F = 16 to 512; below that the chunked scan wins past ~32 frames)."""


def _sequential_scan(gates: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``m_t = gates_t * m_{t-1} + inputs_t`` (``m_{-1} = 0``), frames on dim -2: one fused multiply-add per frame
    into a preallocated output. Not differentiable by itself: it runs inside ``_GatedRecurrence``."""
    states = torch.empty_like(inputs)
    gate_steps, input_steps, state_steps = gates.unbind(-2), inputs.unbind(-2), states.unbind(-2)
    state_steps[0].copy_(input_steps[0])
    for frame in range(1, len(state_steps)):
        torch.addcmul(input_steps[frame], gate_steps[frame], state_steps[frame - 1], out=state_steps[frame])
    return states


def _adjoint_scan(gates: torch.Tensor, grad_states: torch.Tensor) -> torch.Tensor:
    """``lambda_t = grad_t + gates_{t+1} lambda_{t+1}``, ``lambda_{F-1} = grad_{F-1}``, one step a frame, backwards."""
    adjoint = torch.empty_like(grad_states)
    gate_steps, grad_steps, adjoint_steps = gates.unbind(-2), grad_states.unbind(-2), adjoint.unbind(-2)
    adjoint_steps[-1].copy_(grad_steps[-1])
    for frame in range(len(adjoint_steps) - 2, -1, -1):
        torch.addcmul(grad_steps[frame], gate_steps[frame + 1], adjoint_steps[frame + 1], out=adjoint_steps[frame])
    return adjoint


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


class _GatedRecurrence(torch.autograd.Function):
    """``m_t = gates_t * m_{t-1} + inputs_t`` (frames on dim -2) with the adjoint recurrence as its backward;
    ``chunk_size`` 1 runs one step per frame, larger values the chunked scan."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, gates: torch.Tensor, inputs: torch.Tensor, chunk_size: int
    ) -> torch.Tensor:
        sequential = chunk_size == 1
        states = _sequential_scan(gates, inputs) if sequential else _linear_recurrence(gates, inputs, chunk_size)
        ctx.chunk_size = chunk_size
        ctx.save_for_backward(gates, states)
        return states

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_states: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, None]:
        gates, states = ctx.saved_tensors
        # lambda_t = g_t + gates_{t+1} lambda_{t+1}
        if ctx.chunk_size == 1:
            adjoint = _adjoint_scan(gates, grad_states)
        else:  # the forward recurrence in reversed time: step tau reads gates_{F - tau} (tau = 0: unused, 0 here)
            reversed_gates = F.pad(gates[..., 1:, :].flip(-2), (0, 0, 1, 0))  # [..., F, D]
            adjoint = _linear_recurrence(reversed_gates, grad_states.flip(-2), ctx.chunk_size).flip(-2)  # [..., F, D]
        grad_gates = torch.zeros_like(gates)  # dL/dgates_0 = 0: m_{-1} = 0
        torch.mul(adjoint[..., 1:, :], states[..., :-1, :], out=grad_gates[..., 1:, :])  # lambda_t m_{t-1}
        return grad_gates, adjoint, None


def gated_memory_scan(
    alpha: torch.Tensor,
    x: torch.Tensor,
    *,
    one_minus_alpha: torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """The memory path's recurrence ``m_f = alpha_f * m_{f-1} + (1 - alpha_f) * x_f``, ``m_{-1} = 0``.

    ``alpha`` and ``x`` are ``[..., F, D]`` with frames on dim -2. Computed exactly (no approximation of the
    recurrence), differentiable in both inputs, in one of two ways: ``chunk_size=1``, one fused multiply-add per
    frame; ``chunk_size >= 2``, a chunked parallel scan with that many frames per chunk, applied recursively to the
    chunk ends (a 512-frame clip takes 3 levels of 8 steps). ``None`` (default): one step per frame when a frame
    holds at least ``SEQUENTIAL_WIDTH`` elements or there are at most 32 frames (the TFF's case: P * D elements a
    frame), else chunks of ``DEFAULT_SCAN_CHUNK``; both measured on CPU in ``benchmarks/tff.py``.

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
    frames = x.shape[-2]
    if chunk_size is None:
        sequential = x.numel() // frames >= SEQUENTIAL_WIDTH or frames <= 32
        chunk_size = 1 if sequential else DEFAULT_SCAN_CHUNK
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 (1: one step per frame), got {chunk_size}")
    return _GatedRecurrence.apply(alpha, one_minus_alpha * x, chunk_size)


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
