"""Temporal Fiber Fusion against a float64 reference written straight from the paper's equations (1)-(5)."""

import copy
import functools
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import tempflex.fusion as fusion
import tempflex.periodic as periodic
from tempflex.fusion import PATHS, TemporalFiberFusion, gated_memory_scan


def loop_scan(alpha: torch.Tensor, x: torch.Tensor, one_minus_alpha: torch.Tensor | None = None) -> torch.Tensor:
    """m_f = a_f m_{f-1} + (1 - a_f) x_f, m_{-1} = 0, one frame at a time (frames on dim -2)."""
    one_minus_alpha = 1 - alpha if one_minus_alpha is None else one_minus_alpha
    state = torch.zeros_like(x[..., 0, :])
    out = []
    for f in range(x.shape[-2]):
        state = alpha[..., f, :] * state + one_minus_alpha[..., f, :] * x[..., f, :]
        out.append(state)
    return torch.stack(out, dim=-2)


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return ((value.double() - reference).abs().max() / reference.abs().max()).item()


@pytest.mark.parametrize("frames", [1, 2, 3, 7, 64, 100, 512])
@pytest.mark.parametrize("chunk_size", [None, 1, 2, 5, 16])
def test_scan_matches_float64_loop(frames, chunk_size):
    generator = torch.Generator().manual_seed(frames)
    alpha = torch.empty(3, frames, 8).uniform_(1e-4, 1 - 1e-4, generator=generator)
    x = torch.randn(3, frames, 8, generator=generator)
    reference = loop_scan(alpha.double(), x.double())
    assert relative_error(gated_memory_scan(alpha, x, chunk_size=chunk_size), reference) <= 1e-5


def test_scan_is_stable_for_gates_within_1e_6_of_0_and_1():
    generator = torch.Generator().manual_seed(0)
    frames = 512
    near_one = 1 - torch.rand(2, frames, 16, generator=generator) * 1e-6
    near_zero = torch.rand(2, frames, 16, generator=generator) * 1e-6
    pick = torch.rand(2, frames, 16, generator=generator) < 0.5
    alpha = torch.where(pick, near_one, near_zero)
    x = torch.randn(2, frames, 16, generator=generator)
    reference = loop_scan(alpha.double(), x.double())
    result = gated_memory_scan(alpha, x)
    assert torch.isfinite(result).all()
    assert relative_error(result, reference) <= 1e-5


def test_scan_with_logit_gates_keeps_the_digits_near_one():
    """Gates sigmoid(z) with z up to 20 (1 - a ~ 2e-9): passing sigmoid(-z) keeps the memory path exact."""
    generator = torch.Generator().manual_seed(1)
    logits = torch.empty(1, 256, 32).uniform_(14, 20, generator=generator)
    x = torch.randn(1, 256, 32, generator=generator)
    reference = loop_scan(torch.sigmoid(logits.double()), x.double(), torch.sigmoid(-logits.double()))
    result = gated_memory_scan(torch.sigmoid(logits), x, one_minus_alpha=torch.sigmoid(-logits))
    assert relative_error(result, reference) <= 1e-5


def test_scan_exact_zero_and_one_gates_and_zero_inputs_have_finite_gradients():
    alpha = torch.tensor([[1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 1.0, 0.25, 0.0]]).T.expand(9, 4).clone()
    x = torch.randn(9, 4)
    x[::3] = 0.0
    alpha.requires_grad_(True)
    x.requires_grad_(True)
    result = gated_memory_scan(alpha, x, chunk_size=2)
    assert torch.allclose(result, loop_scan(alpha, x), atol=1e-6)
    result.pow(2).sum().backward()
    assert torch.isfinite(alpha.grad).all() and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("chunk_size", [None, 1])
@pytest.mark.parametrize("frames", [5, 64, 300])
def test_scan_gradients_match_the_loop(frames, chunk_size):
    generator = torch.Generator().manual_seed(frames)
    alpha = torch.empty(2, frames, 6, dtype=torch.float64).uniform_(1e-3, 1 - 1e-3, generator=generator)
    x = torch.randn(2, frames, 6, dtype=torch.float64, generator=generator)
    weight = torch.randn(2, frames, 6, dtype=torch.float64, generator=generator)
    grads = []
    for scan in (functools.partial(gated_memory_scan, chunk_size=chunk_size), loop_scan):
        a, v = alpha.clone().requires_grad_(True), x.clone().requires_grad_(True)
        (scan(a, v) * weight).sum().backward()
        grads.append((a.grad, v.grad))
    for ours, reference in zip(*grads, strict=True):
        assert torch.allclose(ours, reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 4])
def test_scan_backward_is_the_adjoint_recurrence_under_gradcheck(chunk_size):
    """19 frames one step each, or in chunks of 4 (two levels and a padded tail); gates of exactly 0 and 1 too."""
    generator = torch.Generator().manual_seed(19)
    alpha = torch.rand(2, 19, 3, dtype=torch.float64, generator=generator)
    alpha[:, 3], alpha[:, 10] = 0.0, 1.0
    x = torch.randn(2, 19, 3, dtype=torch.float64, generator=generator)
    scan = functools.partial(gated_memory_scan, chunk_size=chunk_size)
    assert torch.autograd.gradcheck(scan, (alpha.requires_grad_(True), x.requires_grad_(True)))


def normwise_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return ((value.double() - reference).norm() / reference.norm()).item()


def memory_path_and_grads(logits, x, weight, gates):
    """The memory path's output and its gradients w.r.t. the logits and x, gates from ``gates(logits)``."""
    z, v = logits.clone().requires_grad_(True), x.clone().requires_grad_(True)
    alpha, one_minus_alpha = gates(z)
    out = gated_memory_scan(alpha, v, one_minus_alpha=one_minus_alpha)
    (out * weight).sum().backward()
    return out.detach(), z.grad, v.grad


@pytest.mark.parametrize("frames", [1, 7, 64, 512])
def test_memory_path_gradients_are_exact_for_saturated_gate_logits(frames):
    """Logits in [-30, 30] (gates from 1e-13 to 1 - 1e-13): forward and both gradients <= 1e-5 normwise."""
    generator = torch.Generator().manual_seed(frames)
    logits = torch.empty(2, frames, 24).uniform_(-30, 30, generator=generator)
    x, weight = torch.randn(2, 2, frames, 24, generator=generator)
    reference = memory_path_and_grads(
        logits.double(), x.double(), weight.double(), lambda z: (torch.sigmoid(z), torch.sigmoid(-z))
    )
    ours = memory_path_and_grads(logits, x, weight, fusion.complementary_sigmoid)
    for value, exact in zip(ours, reference, strict=True):
        assert normwise_error(value, exact) <= 1e-5


def test_autograd_through_sigmoid_of_minus_z_alone_loses_the_logit_gradient_of_closed_gates():
    """Why ``complementary_sigmoid`` exists: the plain float32 chain is off by >1e-5 on gates near 0."""
    generator = torch.Generator().manual_seed(3)
    logits = torch.empty(2, 64, 24).uniform_(-18, -8, generator=generator)
    x, weight = torch.randn(2, 2, 64, 24, generator=generator)
    exact = memory_path_and_grads(
        logits.double(), x.double(), weight.double(), lambda z: (torch.sigmoid(z), torch.sigmoid(-z))
    )[1]
    plain = memory_path_and_grads(logits, x, weight, lambda z: (torch.sigmoid(z), torch.sigmoid(-z)))[1]
    ours = memory_path_and_grads(logits, x, weight, fusion.complementary_sigmoid)[1]
    assert normwise_error(plain, exact) > 1e-5 >= normwise_error(ours, exact)


def saturated_layer(frames: int) -> tuple[fusion.TemporalFiberFusionLayer, torch.Tensor, torch.Tensor]:
    """A random layer whose memory gates saturate (logits over about [-30, 30]), an input and an output weight."""
    layer = fusion.TemporalFiberFusionLayer(16, kernel_hidden=12, ffn_hidden=20, scan_chunk_size=4)
    randomise(layer, seed=frames)
    with torch.no_grad():
        layer.gate_proj.weight.mul_(8.0)
    x = torch.randn(2, frames, 3, 16, generator=torch.Generator().manual_seed(11))
    weight = torch.randn(2, frames, 3, 16, generator=torch.Generator().manual_seed(12))
    assert (x @ layer.gate_proj.weight.detach().T).abs().max() > 20  # the gates really saturate
    return layer, x, weight


def errors_against_float64(layer, x, weight, dtype) -> dict[str, float]:
    """Normwise error of the output and of every gradient (input, each parameter) of ``layer`` run in ``dtype``,
    against the same layer and input converted exactly to float64 (so only the arithmetic differs)."""
    layer, x = layer.to(dtype), x.to(dtype)  # the inputs as the dtype holds them: the reference starts from these
    results = []
    for run_dtype in (dtype, torch.float64):
        twin = copy.deepcopy(layer).to(run_dtype)
        inputs = x.to(run_dtype).clone().requires_grad_(True)
        output = twin(inputs)
        (output.double() * weight.double()).sum().backward()
        grads = {f"grad {name}": parameter.grad for name, parameter in twin.named_parameters()}
        results.append({"output": output.detach(), "grad x": inputs.grad, **grads})
    ours, reference = results
    return {name: normwise_error(value, reference[name]) for name, value in ours.items()}


@pytest.mark.parametrize("frames", [1, 16, 130])
def test_every_gradient_of_a_layer_with_saturated_gates_matches_float64(frames):
    """float32: output, input and every parameter's gradient <= 1e-5 normwise against float64."""
    errors = errors_against_float64(*saturated_layer(frames), torch.float32)
    assert max(errors.values()) <= 1e-5, errors


BF16_UNIT_ROUNDOFF = 2.0**-8
"""bfloat16 keeps 8 significant bits: rounding one value errs by at most 2^-8 of it."""


@pytest.mark.parametrize("frames", [1, 16, 130, 512])
def test_bf16_layer_errs_at_bf16_rounding_level(frames):
    """bf16 inputs and weights: output and every gradient within 4 bf16 roundings (4 * 2^-8 ~ 1.6%) normwise of
    float64 arithmetic on the same bf16 values (measured: at most 2.7 roundings; the output norm in bf16 gave its
    scale and shift gradients 9.6 at 130 frames, hence its float32)."""
    errors = errors_against_float64(*saturated_layer(frames), torch.bfloat16)
    assert max(errors.values()) <= 4 * BF16_UNIT_ROUNDOFF, errors


def test_scan_rejects_mismatched_shapes_and_chunks_under_one_frame():
    with pytest.raises(ValueError, match="same shape"):
        gated_memory_scan(torch.rand(4, 3), torch.rand(5, 3))
    with pytest.raises(ValueError, match=r"chunk_size must be >= 1 \(1: one step per frame\), got 0"):
        gated_memory_scan(torch.rand(4, 3), torch.rand(4, 3), chunk_size=0)


# ---- the module against the equations ------------------------------------------------------------------


def reference_layer(layer: fusion.TemporalFiberFusionLayer, x: torch.Tensor) -> torch.Tensor:
    """One TFF layer in float64, written from equations (1)-(5) with explicit loops over frames."""
    p = {name: t.detach().double() for name, t in layer.named_parameters()}
    x = x.double()
    _, frames, _, dim = x.shape
    mean = x.mean(dim=1)  # fiber mean, [B, P, D]
    views = []
    if "local" in layer.paths:
        hidden = F.gelu(mean @ p["kernel_mlp.0.weight"].T + p["kernel_mlp.0.bias"])
        kernel = hidden @ p["kernel_mlp.2.weight"].T + p["kernel_mlp.2.bias"]  # [B, P, 3D]
        k_prev, k_mid, k_next = kernel[..., :dim], kernel[..., dim : 2 * dim], kernel[..., 2 * dim :]
        local = torch.stack(
            [
                k_prev * x[:, (f - 1) % frames] + k_mid * x[:, f] + k_next * x[:, (f + 1) % frames]
                for f in range(frames)
            ],
            dim=1,
        )
        views.append(local)
    if "memory" in layer.paths:
        alpha = torch.sigmoid(x @ p["gate_proj.weight"].T)
        views.append(loop_scan(alpha.transpose(1, 2), x.transpose(1, 2)).transpose(1, 2))
    if "periodic" in layer.paths:
        omegas = list(layer.frequencies)
        blocks = p["periodic_proj.weight"].split(dim, dim=1)  # W_w for each frequency
        periodic = torch.stack(
            [
                sum(
                    math.cos(2 * math.pi * w * f / frames) * (x[:, f] @ W.T)
                    for w, W in zip(omegas, blocks, strict=True)
                )
                for f in range(frames)
            ],
            dim=1,
        )
        views.append(periodic)
    if len(views) > 1:
        beta = torch.softmax(mean @ p["fusion_gate.weight"].T, dim=-1)  # [B, P, paths]
        y = sum(beta[:, None, :, i, None] * view for i, view in enumerate(views))
    else:
        y = views[0]
    y = y + p["context_scale"] * y.mean(dim=2, keepdim=True)
    ffn = F.glu(F.gelu(y @ p["ffn_in.weight"].T + p["ffn_in.bias"]) @ p["ffn_out.weight"].T + p["ffn_out.bias"])
    normed = F.layer_norm(y + ffn, (dim,), p["norm.weight"], p["norm.bias"], layer.norm.eps)
    return x + normed


def randomise(module: torch.nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)


ALL_SUBSETS = [subset for r in range(1, 4) for subset in itertools.combinations(PATHS, r)]


@pytest.mark.parametrize("paths", ALL_SUBSETS, ids=lambda s: "+".join(s))
@pytest.mark.parametrize("frames", [1, 3, 9])
def test_layer_matches_the_equations(paths, frames):
    tff = TemporalFiberFusion(12, num_layers=2, kernel_hidden=10, ffn_hidden=14, paths=paths, scan_chunk_size=2)
    randomise(tff, seed=frames)
    x = torch.randn(2, frames, 5, 12, generator=torch.Generator().manual_seed(7))
    reference = x.double()
    for layer in tff.layers:
        reference = reference_layer(layer, reference)
    assert torch.allclose(tff.double()(x.double()), reference, rtol=1e-10, atol=1e-10)
    assert relative_error(tff.float()(x), reference) <= 1e-4


@pytest.mark.parametrize("paths", ALL_SUBSETS, ids=lambda s: "+".join(s))
def test_switching_a_path_off_removes_its_parameters(paths):
    names = {name.split(".", 2)[2].split(".")[0] for name, _ in TemporalFiberFusion(8, paths=paths).named_parameters()}
    owners = {"local": "kernel_mlp", "memory": "gate_proj", "periodic": "periodic_proj"}
    for path, owner in owners.items():
        assert (owner in names) == (path in paths)
    assert ("fusion_gate" in names) == (len(paths) > 1)


def test_no_path_is_a_no_op():
    tff = TemporalFiberFusion(8, paths=())
    x = torch.randn(1, 4, 3, 8)
    assert list(tff.parameters()) == [] and torch.equal(tff(x), x)


def test_bad_paths_and_shapes_are_rejected():
    with pytest.raises(ValueError, match="paths"):
        TemporalFiberFusion(8, paths=("local", "optical_flow"))
    with pytest.raises(ValueError, match=r"\[B, F, P, 8\]"):
        TemporalFiberFusion(8)(torch.randn(4, 3, 8))


@pytest.mark.parametrize(("frames", "patches"), [(1, 1), (1, 7), (16, 4), (33, 3)])
def test_identity_at_init(frames, patches):
    tff = TemporalFiberFusion(16, num_layers=4)
    x = torch.randn(2, frames, patches, 16)
    assert torch.equal(tff(x), x)


def test_gradient_reaches_every_parameter_after_one_step():
    torch.manual_seed(0)
    tff = TemporalFiberFusion(16, num_layers=2, kernel_hidden=16, ffn_hidden=32)
    x, target = torch.randn(2, 6, 5, 16), torch.randn(2, 6, 5, 16)
    optimiser = torch.optim.AdamW(tff.parameters(), lr=1e-2)
    F.mse_loss(tff(x), target).backward()
    # at init only the output LayerNorms (and nothing behind them) see gradient: their scale is zero
    assert {name.split(".", 2)[2] for name, p in tff.named_parameters() if p.grad.abs().sum() > 0} == {
        "norm.weight",
        "norm.bias",
    }
    optimiser.step()
    optimiser.zero_grad()
    F.mse_loss(tff(x), target).backward()
    missing = [name for name, p in tff.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_bf16_runs_the_memory_path_in_float32():
    tff = TemporalFiberFusion(16, num_layers=1)
    randomise(tff)
    x = torch.randn(1, 8, 4, 16)
    full = tff(x)
    half = tff.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16
    assert relative_error(half.float(), full.double()) < 5e-2


@pytest.mark.parametrize("batch, patches", [(2, 5), (1, 1), (3, 8)], ids=["10 rows", "1 row", "24 rows"])
def test_periodic_path_matches_equation_3_in_every_form(batch, patches):
    # D = 12, 7 frames (0 alone, 3 pairs): K weighted copies at 1 and 10 rows a frame, groups at 24
    layer = fusion.TemporalFiberFusionLayer(12, kernel_hidden=4, ffn_hidden=4, paths=("periodic",))
    randomise(layer, seed=3)
    x = torch.randn(batch, 7, patches, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    blocks = layer.periodic_proj.weight.detach().double().split(12, dim=1)  # W_w for each frequency
    pairs = list(zip(layer.frequencies, blocks, strict=True))
    terms = [[math.cos(2 * math.pi * w * f / 7) * (x[:, f] @ W.T) for w, W in pairs] for f in range(7)]
    expected = torch.stack([sum(frame_terms) for frame_terms in terms], dim=1)
    assert torch.allclose(layer.double().periodic_view(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("form", ["grouped", "stacked"])
@pytest.mark.parametrize("rows", [1, 4, 40])
def test_periodic_projection_gradients_pass_gradcheck(rows, form):
    """The grouped backward rebuilds the matrices per chunk (7 pairs: several chunks of at most one per thread)
    and sums W's gradient over them."""
    generator = torch.Generator().manual_seed(rows)
    x = torch.randn(16, rows, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    weights = torch.randn(5, 3 * 6, dtype=torch.float64, generator=generator, requires_grad=True)
    cosines = periodic.periodic_cosines(16, (1, 2, 3))  # frames f and 16 - f share their rows
    project = functools.partial(periodic.periodic_projection, cosines=cosines, form=form)
    assert torch.autograd.gradcheck(project, (x, weights))


@pytest.mark.parametrize("form", ["grouped", "stacked"])
@pytest.mark.parametrize("frames", [1, 2, 7, 8, 16])
def test_both_periodic_forms_equal_equation_3_in_float64(frames, form):
    generator = torch.Generator().manual_seed(frames)
    frequencies = (1, 2, 4, 8, 16)
    x = torch.randn(frames, 3, 6, dtype=torch.float64, generator=generator)
    weight = torch.randn(5, 5 * 6, dtype=torch.float64, generator=generator)
    blocks = weight.split(6, dim=1)  # W_w for each frequency
    pairs = list(zip(frequencies, blocks, strict=True))
    expected = torch.stack(
        [sum(math.cos(2 * math.pi * w * f / frames) * (x[f] @ W.T) for w, W in pairs) for f in range(frames)]
    )
    cosines = periodic.periodic_cosines(frames, frequencies)
    assert torch.allclose(periodic.periodic_projection(x, weight, cosines, form=form), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "frames, groups",
    [
        (1, [[[0]]]),
        (2, [[[0], [1]]]),
        (7, [[[0]], [[1, 6], [2, 5], [3, 4]]]),
        (8, [[[0], [4]], [[1, 7], [2, 6], [3, 5]]]),
    ],
)
def test_frames_f_and_minus_f_share_their_cosines_to_the_bit(frames, groups):
    cosines = periodic.periodic_cosines(frames, (1, 2, 4, 8, 16))
    exact = [[math.cos(2 * math.pi * w * f / frames) for w in (1, 2, 4, 8, 16)] for f in range(frames)]
    # 1e-13: cos of 2 pi w f / F itself loses ~1e-14 to argument reduction at w f = 96 (ours reduces exactly first)
    assert torch.allclose(cosines, torch.tensor(exact, dtype=torch.float64), rtol=0, atol=1e-13)
    assert [members.tolist() for members in periodic.frame_groups(cosines)] == groups
    for f in range(1, frames):
        assert torch.equal(cosines[f], cosines[frames - f])


def test_frame_groups_gather_every_equal_row():
    """w = 4 on 8 frames: cos(pi f) takes two values, so frames split by parity into groups of 4."""
    groups = periodic.frame_groups(periodic.periodic_cosines(8, (4,)))
    assert [members.tolist() for members in groups] == [[[0, 2, 4, 6], [1, 3, 5, 7]]]


@pytest.mark.parametrize(
    "frames, rows, dim, form",
    [(64, 64, 1152, "grouped"), (64, 16, 1152, "grouped"), (64, 8, 1152, "stacked"), (64, 1, 1152, "stacked"),
     (8, 576, 1152, "grouped"), (1, 576, 1152, "grouped"), (1, 1, 1152, "stacked"), (16, 32, 64, "stacked"),
     (16, 128, 64, "grouped")],
)  # fmt: skip
def test_cheaper_form_switches_near_12_rows_per_frame_and_later_at_tiny_widths(frames, rows, dim, form):
    groups = periodic.frame_groups(periodic.periodic_cosines(frames, (1, 2, 4, 8, 16)))
    assert periodic.cheaper_form(frames, rows, 5, dim, sum(len(members) for members in groups)) == form


@pytest.mark.parametrize("form", ["grouped", "stacked"])
def test_periodic_projection_runs_under_bf16_autocast_like_a_matmul(form):
    """Under autocast the products run in bf16, as a matmul would; gradients reach the fp32 weights."""
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(6, 6, 16, generator=generator, requires_grad=True)
    weight = torch.randn(16, 5 * 16, generator=generator, requires_grad=True)
    cosines = periodic.periodic_cosines(6, (1, 2, 4, 8, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = periodic.periodic_projection(x, weight, cosines, form=form)
        out.float().square().sum().backward()
    assert out.dtype == torch.bfloat16 and weight.grad.dtype == torch.float32
    assert torch.isfinite(x.grad).all() and torch.isfinite(weight.grad).all()
    exact = periodic.periodic_projection(x.detach().double(), weight.detach().double(), cosines, form="stacked")
    assert relative_error(out.float(), exact) < 2e-2


def test_periodic_projection_names_mismatched_shapes():
    with pytest.raises(ValueError, match=r"cosines \[F, K\]; got \(4, 2, 8\), \(8, 24\), \(4, 2\)"):
        fusion.periodic_projection(torch.rand(4, 2, 8), torch.rand(8, 24), torch.rand(4, 2))
    with pytest.raises(ValueError, match="form must be 'grouped', 'stacked' or None"):
        fusion.periodic_projection(torch.rand(4, 2, 8), torch.rand(8, 16), torch.rand(4, 2), form="per-frame")
