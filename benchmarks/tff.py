"""Temporal Fiber Fusion: the memory scan's accuracy and the module's speed against two alternatives.

Command (CPU, about 2-3 minutes on 2 cores)::

    python benchmarks/tff.py
    python benchmarks/tff.py --device cuda --dtype bfloat16   # on a GPU

Prints five tables:

1. relative error (max |m - m_ref| / max |m_ref|) against a float64 sequential loop, in float32, gates
   uniform in [1e-4, 1 - 1e-4], for F in {8, 64, 512}: our scan as the TFF calls it (one step per frame, or
   chunks for long narrow clips), ours forced to chunks of 8, a float32 per-frame loop through autograd, and the
   cumprod/cumsum formula (which is not the recurrence: its "error" shows how far it is from eq. 2);
2. the memory scan alone, fwd+bwd, the same four;
3. forward + backward time of a 4-layer TFF at (B=1, F=64, P=64, D=1152) (the paper's width), ours against
   the same module whose memory path is (benchmark-only) replaced by the cumprod/cumsum formula, the cost class
   of the authors' code, and by a per-frame Python loop; ratios measured in the same run. Goal: ours <= 1.1x
   the cumprod/cumsum formula;
4. the periodic path alone in its two forms (one matrix per frame group, or K weighted copies of x) for 4 to
   64 rows per frame, and the form ``cheaper_form`` picks;
5. the TFF's matrix-product rate against a 2048^2 matmul in the same run, fp32 (goal 80%) and bf16 (goal 50%),
   with the rate of the layer's products alone and their share of the time (CPU).

The cumprod/cumsum formula here is ``cumprod(a) * cumsum((1 - a) * x)`` over frames: two parallel prefix ops
like the authors' memory path, written for this benchmark to match its cost, not its exact expression.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch

from tempflex.fusion import TemporalFiberFusionLayer, complementary_sigmoid, gated_memory_scan
from tempflex.periodic import cheaper_form, frame_groups, periodic_cosines, periodic_projection
from timing import timed


def loop_scan(alpha: torch.Tensor, x: torch.Tensor, one_minus_alpha: torch.Tensor | None = None) -> torch.Tensor:
    """The recurrence one frame at a time (frames on dim -2); unbind keeps its backward linear in F."""
    one_minus_alpha = 1 - alpha if one_minus_alpha is None else one_minus_alpha
    state = torch.zeros_like(x[..., 0, :])
    states = []
    for gate, keep, value in zip(alpha.unbind(-2), one_minus_alpha.unbind(-2), x.unbind(-2), strict=True):
        state = gate * state + keep * value
        states.append(state)
    return torch.stack(states, dim=-2)


def cumprod_cumsum(alpha: torch.Tensor, x: torch.Tensor, one_minus_alpha: torch.Tensor | None = None) -> torch.Tensor:
    """Two parallel prefix ops, the cost class of the authors' memory path; not eq. 2."""
    one_minus_alpha = 1 - alpha if one_minus_alpha is None else one_minus_alpha
    return torch.cumprod(alpha, dim=-2) * torch.cumsum(one_minus_alpha * x, dim=-2)


SCANS = {
    "ours": gated_memory_scan,  # one fused step per frame at these widths (SEQUENTIAL_WIDTH)
    "ours, chunks of 8": functools.partial(gated_memory_scan, chunk_size=8),
    "per-frame loop": loop_scan,
    "cumprod/cumsum": cumprod_cumsum,
}


class BenchmarkLayer(TemporalFiberFusionLayer):
    """A TFF layer whose memory path runs another scan (benchmark-only)."""

    def __init__(self, dim: int, scan, **kwargs) -> None:
        super().__init__(dim, **kwargs)
        self.scan = scan

    def memory_view(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames, patches, dim = x.shape
        alpha, one_minus_alpha = complementary_sigmoid(self.gate_proj(x).float())  # each [B, F, P, D]
        memory = self.scan(
            alpha.reshape(batch, frames, patches * dim),  # [B, F, P*D]
            x.float().reshape(batch, frames, patches * dim),  # [B, F, P*D]
            one_minus_alpha=one_minus_alpha.reshape(batch, frames, patches * dim),  # [B, F, P*D]
        )
        return memory.reshape(batch, frames, patches, dim).to(x.dtype)  # [B, F, P, D]


def scan_error_table(frames_list: list[int], channels: int) -> None:
    print(f"Memory scan: relative error vs a float64 loop (float32, [4, F, {channels}], gates in [1e-4, 1-1e-4])")
    print(f"{'F':>5} " + "".join(f"{name:>22}" for name in SCANS))
    for frames in frames_list:
        generator = torch.Generator().manual_seed(frames)
        alpha = torch.empty(4, frames, channels).uniform_(1e-4, 1 - 1e-4, generator=generator)
        x = torch.randn(4, frames, channels, generator=generator)
        reference = loop_scan(alpha.double(), x.double())
        errors = []
        for scan in SCANS.values():
            value = scan(alpha, x).double()
            errors.append(((value - reference).abs().max() / reference.abs().max()).item())
        print(f"{frames:>5} " + "".join(f"{e:>22.2e}" for e in errors))


def forward_backward(module, x: torch.Tensor) -> None:
    """One training-like step of ``module(x)`` (a module or a function of one tensor): mean-square loss, backward."""
    if isinstance(module, torch.nn.Module):
        module.zero_grad(set_to_none=True)
    module(x.detach().requires_grad_(True)).float().square().mean().backward()


def time_modules(modules: dict, x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds of ``forward_backward`` of each module, the repeats interleaved (A, B, C, A, B, C, ...) so
    that a slow spell of a shared machine hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in modules}
    for module in modules.values():
        forward_backward(module, x)  # warm-up
    for _ in range(repeats):
        for name, module in modules.items():
            times[name].append(timed(lambda module=module: forward_backward(module, x), x.device))
    return {name: statistics.median(values) for name, values in times.items()}


def scan_time_table(args: argparse.Namespace, channels: int = 8192) -> None:
    device = torch.device(args.device)
    print(f"\nMemory scan alone, fwd+bwd, [1, F, {channels}] float32 on {args.device}, median of {args.repeats}")
    print(f"{'F':>5} " + "".join(f"{name:>22}" for name in SCANS))
    for frames in (64, 512):
        x = torch.randn(1, frames, channels, device=device)
        logits = torch.randn(1, frames, channels, device=device)
        runs = {}
        for name, scan in SCANS.items():

            def run(inputs: torch.Tensor, scan=scan, logits=logits) -> torch.Tensor:
                return scan(torch.sigmoid(logits), inputs, one_minus_alpha=torch.sigmoid(-logits))

            runs[name] = run
        row = list(time_modules(runs, x, args.repeats).values())
        print(f"{frames:>5} " + "".join(f"{1000 * t:>19.1f} ms" for t in row))


def module_time_table(args: argparse.Namespace) -> None:
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    shape = (1, args.frames, args.patches, args.dim)
    x = torch.randn(shape, device=device, dtype=dtype)
    print(
        f"\n{args.layers}-layer TFF forward+backward, x = {list(shape)} {args.dtype} on {args.device}, "
        f"median of {args.repeats}"
    )
    modules = {}
    for name, scan in SCANS.items():
        torch.manual_seed(0)
        layers = [
            BenchmarkLayer(args.dim, scan, kernel_hidden=args.dim, ffn_hidden=2 * args.dim) for _ in range(args.layers)
        ]
        modules[name] = torch.nn.Sequential(*layers).to(device=device, dtype=dtype)
        for layer in layers:  # non-zero output scale so that every path is on the backward graph
            torch.nn.init.ones_(layer.norm.weight)
    results = time_modules(modules, x, args.repeats)
    base = results["cumprod/cumsum"]
    print(f"{'memory path':<24}{'seconds':>10}{'vs cumprod/cumsum':>20}")
    for name, seconds in results.items():
        print(f"{name:<24}{seconds:>10.3f}{seconds / base:>19.2f}x")
    probe = layers[0]
    grouped, stacked = (layer_matmul_flops(probe, *shape[:3], form=form) / 1e9 for form in ("grouped", "stacked"))
    chosen = periodic_form(probe, *shape[:3])[0]
    print(f"matmul GFLOP per layer (fwd): {grouped:.2f} with the periodic path grouped, {stacked:.2f} with eq. (3) "
          f"as written (stacked: K weighted copies of x); ours at this shape: {chosen}")  # fmt: skip
    ratio = results["ours"] / base
    print(f"goal: ours <= 1.1x cumprod/cumsum -> {ratio:.2f}x {'(met)' if ratio <= 1.1 else '(NOT met)'}")


def forms_table(args: argparse.Namespace, rows_list: tuple[int, ...] = (4, 16, 24, 32, 64)) -> None:
    """The periodic path alone in both forms, fwd+bwd, and the form ``cheaper_form`` picks."""
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    frequencies = (1, 2, 4, 8, 16)
    cosines = periodic_cosines(args.frames, frequencies)
    groups = frame_groups(cosines)
    matrices = sum(len(members) for members in groups)
    groups = tuple(members.to(device) for members in groups)
    cosines = cosines.to(device=device, dtype=dtype)
    weight = torch.randn(args.dim, len(frequencies) * args.dim, device=device, dtype=dtype, requires_grad=True)
    print(f"\nPeriodic path alone, fwd+bwd, F = {args.frames} ({matrices} distinct matrices), D = {args.dim}, "
          f"{args.dtype} on {args.device}, median of {args.repeats}")  # fmt: skip
    print(f"{'rows/frame':>10}{'grouped':>11}{'stacked':>11}{'stacked/grouped':>17}{'chosen':>9}")
    for rows in rows_list:
        x = torch.randn(args.frames, rows, args.dim, device=device, dtype=dtype)
        runs = {}
        for form in ("grouped", "stacked"):

            def run(inputs: torch.Tensor, form=form) -> torch.Tensor:
                weight.grad = None
                return periodic_projection(inputs, weight, cosines, groups, form=form)

            runs[form] = run
        times = time_modules(runs, x, args.repeats)
        chosen = cheaper_form(args.frames, rows, len(frequencies), args.dim, matrices)
        print(f"{rows:>10}{1000 * times['grouped']:>8.1f} ms{1000 * times['stacked']:>8.1f} ms"
              f"{times['stacked'] / times['grouped']:>16.2f}x{chosen:>9}")  # fmt: skip


def periodic_form(layer: TemporalFiberFusionLayer, batch: int, frames: int, patches: int) -> tuple[str, int]:
    """The form ``cheaper_form`` picks for this layer's periodic path at this shape, and its distinct matrices."""
    matrices = sum(len(members) for members in frame_groups(periodic_cosines(frames, layer.frequencies)))
    return cheaper_form(frames, batch * patches, len(layer.frequencies), layer.dim, matrices), matrices


def layer_matmul_flops(
    layer: TemporalFiberFusionLayer, batch: int, frames: int, patches: int, form: str | None = None
) -> int:
    """Multiply-add FLOPs (2 per MAC) of one layer's matrix products, forward only, as the module computes them
    (``form``: the periodic path's form, by default the one ``cheaper_form`` picks)."""
    dim, positions, count = layer.dim, batch * frames * patches, len(layer.frequencies)
    kernel_hidden, ffn_hidden = layer.kernel_mlp[0].out_features, layer.ffn_in.out_features
    macs = batch * patches * (dim * kernel_hidden + kernel_hidden * 3 * dim)  # local kernel MLP on fiber means
    macs += positions * dim * dim  # memory gate projection
    chosen, matrices = periodic_form(layer, batch, frames, patches)
    if (form or chosen) == "grouped":
        macs += matrices * count * dim * dim + positions * dim * dim  # build M per frame group, apply it
    else:
        macs += positions * count * dim * dim  # K weighted copies through [W_1 | ... | W_K]
    macs += batch * patches * dim * len(layer.paths)  # fusion gate
    macs += positions * (dim * ffn_hidden + ffn_hidden * 2 * dim)  # FFN
    return 2 * macs


def rates_side_by_side(module: torch.nn.Module, x: torch.Tensor, repeats: int, size: int = 2048) -> tuple[float, float]:
    """Median seconds of one fwd+bwd of ``module(x)`` and of one ``size^2`` matmul in ``x``'s dtype (the machine's
    practical peak), each TFF step followed by 5 matmuls, so that both sample the same spells of a shared machine."""
    a, b = (torch.randn(size, size, device=x.device, dtype=x.dtype) for _ in range(2))
    forward_backward(module, x)  # warm-up
    a @ b
    module_times, matmul_times = [], []
    for _ in range(repeats):
        module_times.append(timed(lambda: forward_backward(module, x), x.device))
        matmul_times += [timed(lambda: a @ b, x.device) for _ in range(5)]
    return statistics.median(module_times), 2 * size**3 / statistics.median(matmul_times)


MATRIX_PRODUCTS = {"aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm"}


def time_in_products(module: torch.nn.Module, x: torch.Tensor, steps: int = 3) -> tuple[float, float]:
    """Seconds that ``steps`` fwd+bwd spend inside matrix-product kernels (CPU profiler, self time), and their wall
    time, measured together so that the share is of the same steps."""
    from torch.profiler import profile

    forward_backward(module, x)  # warm-up outside the profile
    with profile() as prof:
        start = time.perf_counter()
        for _ in range(steps):
            forward_backward(module, x)
        wall = time.perf_counter() - start
    in_products = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in MATRIX_PRODUCTS) / 1e6
    return in_products, wall


def rate_table(args: argparse.Namespace) -> None:
    """Our TFF's matrix-product rate (fwd+bwd = 3x the forward FLOPs) against a large matmul, per dtype.

    On CPU two more columns, from 3 profiled steps: the rate of the layer's matrix products alone (their own kernel
    time), the ceiling that fusing every elementwise pass would reach, and their share of those steps' time.
    """
    device = torch.device(args.device)
    shape = (1, args.frames, args.patches, args.dim)
    print(f"\nMatrix-product rate, {args.layers}-layer TFF fwd+bwd at x = {list(shape)} on {args.device}, "
          f"median of {args.repeats}")  # fmt: skip
    print(f"{'dtype':<10}{'GFLOP/layer':>12}{'TFF GFLOP/s':>13}{'matmul GFLOP/s':>16}{'share':>8}{'goal':>7}"
          f"{'products alone':>16}{'time in products':>18}")  # fmt: skip
    for dtype_name, goal in (("float32", 0.8), ("bfloat16", 0.5)):
        dtype = getattr(torch, dtype_name)
        torch.manual_seed(0)
        layers = [TemporalFiberFusionLayer(args.dim, kernel_hidden=args.dim, ffn_hidden=2 * args.dim)
                  for _ in range(args.layers)]  # fmt: skip
        for layer in layers:
            torch.nn.init.ones_(layer.norm.weight)
        module = torch.nn.Sequential(*layers).to(device=device, dtype=dtype)
        flops = layer_matmul_flops(layers[0], *shape[:3])
        x = torch.randn(shape, device=device, dtype=dtype)
        seconds, peak = rates_side_by_side(module, x, args.repeats)
        achieved = 3 * flops * args.layers / seconds
        alone = "-".rjust(16) + "-".rjust(18)
        if device.type == "cpu":
            steps = 3
            in_products, wall = time_in_products(module, x, steps)
            alone = f"{steps * 3 * flops * args.layers / in_products / peak:>16.0%}{in_products / wall:>18.0%}"
        print(f"{dtype_name:<10}{flops / 1e9:>12.2f}{achieved / 1e9:>13.1f}{peak / 1e9:>16.1f}"
              f"{achieved / peak:>8.0%}{goal:>7.0%}{alone}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--patches", type=int, default=64)
    parser.add_argument("--dim", type=int, default=1152)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-errors", action="store_true", help="no accuracy and scan-alone tables")
    parser.add_argument("--only", choices=["module", "forms", "rate"], help="print this one timing table")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")
    if args.device.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name()}")
    if not (args.skip_errors or args.only):
        scan_error_table([8, 64, 512], channels=256)
        scan_time_table(args)
    for name, table in (("module", module_time_table), ("forms", forms_table), ("rate", rate_table)):
        if args.only in (None, name):
            table(args)


if __name__ == "__main__":
    main()
