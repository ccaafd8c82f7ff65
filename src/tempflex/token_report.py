"""Human-facing reports of the token budget: the side-by-side table and the paper's Figure 3 (right).

Command: ``tempflex tokens --height 1152 --width 1152`` prints::

    image 1152x1152 (height x width)
    strategy    resized (h x w)  visual tokens
    fixed             384 x 384            729
    tiled         3x3 tiles + 1           7290
    tempflex        1152 x 1152           1296
    tempflex uses 82.2% fewer tokens than tiled and 77.8% more than fixed

Command: ``tempflex tokens --plot tokens.png`` writes the tokens-vs-resolution curves (needs matplotlib, the
``plot`` extra).
"""

from __future__ import annotations

from pathlib import Path

from tempflex.token_budget import baseline_image_tokens, fit_image, num_image_tokens, tiled_grid

__all__ = ["format_token_table", "plot_token_curves", "token_curves"]


def _compare(ours: int, theirs: int, name: str) -> str:
    change = 100.0 * (1.0 - ours / theirs)
    return f"{abs(change):.1f}% {'fewer' if change >= 0 else 'more'} tokens than {name}"


def format_token_table(height: int, width: int, *, max_tokens: int = 2048) -> str:
    """The three encoding strategies for one image, side by side, with TempFlex's reduction in %."""
    resized_height, resized_width = fit_image(height, width, max_tokens=max_tokens)
    ours = num_image_tokens(height, width, max_tokens=max_tokens)
    fixed = baseline_image_tokens(height, width, "fixed")
    tiled = baseline_image_tokens(height, width, "tiled")
    rows, cols = tiled_grid(height, width)
    lines = [
        f"image {height}x{width} (height x width)",
        f"{'strategy':<10}{'resized (h x w)':>17}{'visual tokens':>15}",
        f"{'fixed':<10}{'384 x 384':>17}{fixed:>15}",
        f"{'tiled':<10}{f'{rows}x{cols} tiles + 1':>17}{tiled:>15}",
        f"{'tempflex':<10}{f'{resized_height} x {resized_width}':>17}{ours:>15}",
        f"tempflex uses {_compare(ours, tiled, 'tiled')} and {_compare(ours, fixed, 'fixed').replace(' tokens', '')}",
    ]
    return "\n".join(lines)


def token_curves(sides: list[int], *, max_tokens: int = 2048) -> dict[str, list[int]]:
    """Visual tokens of a square image of each side length, per strategy (the data behind the plot)."""
    return {
        "fixed (384 px, patch 14)": [baseline_image_tokens(s, s, "fixed") for s in sides],
        "tiled (384-px tiles + global)": [baseline_image_tokens(s, s, "tiled") for s in sides],
        "TempFlex (native, 2x2 merge)": [num_image_tokens(s, s, max_tokens=max_tokens) for s in sides],
    }


def plot_token_curves(path: str | Path, *, max_side: int = 2048, max_tokens: int = 2048) -> Path:
    """Draw tokens vs input resolution for the three strategies (paper Figure 3, right) into ``path``."""
    try:  # a Figure without pyplot: no global backend switch, no figure registry (safe in notebooks)
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'tempflex[plot]'") from error
    sides = list(range(32, max_side + 1, 32))
    curves = token_curves(sides, max_tokens=max_tokens)
    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    for label, tokens in curves.items():
        axes.plot(sides, tokens, label=label, linewidth=2)
    for side in (32, 768, 1152, 1448):
        ours = num_image_tokens(side, side, max_tokens=max_tokens)
        axes.annotate(f"{ours}", (side, ours), textcoords="offset points", xytext=(0, 8), ha="center")
    axes.annotate("7290", (1152, 7290), textcoords="offset points", xytext=(0, 8), ha="center")
    axes.set_xlabel("input resolution (side of a square image, px)")
    axes.set_ylabel("visual tokens to the LLM")
    axes.set_title("Visual tokens vs resolution")
    axes.set_ylim(top=max(max(t) for t in curves.values()) * 1.12)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    return out
