"""Token accounting: (height, width, frames, budget) -> resized size -> LLM token counts.

Pure Python, no torch: the processor, the model and the CLI all call these functions, so the number of
placeholders in the text and the number of visual features always agree.

TempFlex encodes an image at (close to) native resolution with a patch-16 SigLIP2-naflex encoder and merges
each 2x2 block of patches into one LLM token, so one LLM token covers a 32x32-pixel cell. ``fit_image``
chooses the cell grid:

1. each side is rounded to the nearest multiple of 32 px (a tie goes down: 720 px -> 22 cells);
2. if the grid holds more than ``max_tokens`` cells, the image is scaled down by
   ``s = sqrt(h * w / (max_tokens * 32**2))`` and each side floored to a multiple of 32 px;
3. if it holds fewer than ``min_tokens`` cells, it is scaled up by ``s = sqrt(min_tokens * 32**2 / (h * w))`` and
   each side rounded up;
4. no side is ever smaller than 32 px. An aspect ratio above ``max_aspect_ratio`` (default 200, as Qwen2-VL) is
   rejected with a ValueError naming the size, since no grid within the budget could keep it.

Example (the paper's Figure 3, right)::

    >>> num_image_tokens(768, 768), num_image_tokens(1448, 1448), num_image_tokens(720, 1280)
    (576, 2025, 880)
    >>> baseline_image_tokens(1152, 1152, "tiled"), baseline_image_tokens(1152, 1152, "fixed")
    (7290, 729)

Command: ``tempflex tokens --height 720 --width 1280`` prints the three strategies side by side.
"""

from __future__ import annotations

import math
from typing import Literal

__all__ = [
    "baseline_image_tokens",
    "fit_image",
    "fit_video",
    "frame_groups",
    "frames_to_llm",
    "num_image_tokens",
    "num_video_tokens",
    "tiled_grid",
]

# Guards against float round-off when a scaled side lands exactly on a multiple of 32 px.
_EPS = 1e-9


def _check_size(height: int, width: int) -> None:
    if not (isinstance(height, int) and isinstance(width, int)) or height <= 0 or width <= 0:
        raise ValueError(f"image size {height}x{width} (height x width) must be two positive integers")


def fit_image(
    height: int,
    width: int,
    *,
    max_tokens: int = 2048,
    min_tokens: int = 4,
    patch_size: int = 16,
    merge_size: int = 2,
    max_aspect_ratio: float = 200.0,
) -> tuple[int, int]:
    """Size ``(resized_height, resized_width)`` in pixels at which an image is encoded.

    Both sides are positive multiples of ``patch_size * merge_size`` (32 px) and the LLM token count
    ``(rh // 32) * (rw // 32)`` lies in ``[min_tokens, max_tokens]``; the rule is in the module docstring.

    >>> fit_image(720, 1280)
    (704, 1280)
    >>> fit_image(32, 32)
    (64, 64)
    """
    _check_size(height, width)
    if not 1 <= min_tokens <= max_tokens:
        raise ValueError(f"need 1 <= min_tokens <= max_tokens, got min_tokens={min_tokens}, max_tokens={max_tokens}")
    aspect = max(height, width) / min(height, width)
    if aspect > max_aspect_ratio:
        raise ValueError(
            f"image of {height}x{width} (height x width) has aspect ratio {aspect:.0f}:1, above "
            f"max_aspect_ratio={max_aspect_ratio:g}; crop or pad it before encoding"
        )
    unit = patch_size * merge_size
    # Nearest multiple of `unit`, ties going down; never below one cell.
    rows = max(1, (height + unit // 2 - 1) // unit)
    cols = max(1, (width + unit // 2 - 1) // unit)
    if rows * cols > max_tokens:
        scale = math.sqrt(height * width / (max_tokens * unit * unit))
        rows = max(1, math.floor(height / scale / unit + _EPS))
        cols = max(1, math.floor(width / scale / unit + _EPS))
    elif rows * cols < min_tokens:
        scale = math.sqrt(min_tokens * unit * unit / (height * width))
        rows = max(1, math.ceil(height * scale / unit - _EPS))
        cols = max(1, math.ceil(width * scale / unit - _EPS))
    # A side clamped to one cell (or rounding up for min_tokens) can overshoot: shrink the longer side.
    while rows * cols > max_tokens:
        if rows >= cols:
            rows = max(1, max_tokens // cols)
        else:
            cols = max(1, max_tokens // rows)
    if rows * cols < min_tokens:  # a narrow budget (min_tokens close to max_tokens) that flooring missed
        rows, cols = _closest_grid(height, width, min_tokens, max_tokens)
    return rows * unit, cols * unit


def _closest_grid(height: int, width: int, min_tokens: int, max_tokens: int) -> tuple[int, int]:
    """The grid with ``min_tokens <= rows * cols <= max_tokens`` closest in aspect to the image, then largest."""
    best, best_key = (1, min_tokens), None
    for rows in range(1, max_tokens + 1):
        lowest, highest = math.ceil(min_tokens / rows), max_tokens // rows
        if lowest > highest:
            continue
        cols = min(max(round(rows * width / height), lowest), highest)
        key = (abs(math.log(cols * height / (rows * width))), -rows * cols)
        if best_key is None or key < best_key:
            best, best_key = (rows, cols), key
    return best


def num_image_tokens(
    height: int,
    width: int,
    *,
    max_tokens: int = 2048,
    min_tokens: int = 4,
    patch_size: int = 16,
    merge_size: int = 2,
    max_aspect_ratio: float = 200.0,
) -> int:
    """LLM tokens for one image (no separator tokens): ``(rh / 32) * (rw / 32)`` of ``fit_image``.

    >>> num_image_tokens(1152, 1152)
    1296
    """
    resized_height, resized_width = fit_image(
        height,
        width,
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        patch_size=patch_size,
        merge_size=merge_size,
        max_aspect_ratio=max_aspect_ratio,
    )
    unit = patch_size * merge_size
    return (resized_height // unit) * (resized_width // unit)


def frames_to_llm(num_frames: int, max_frames_to_llm: int | None) -> int:
    """Frames the LLM sees after the model's time pooling: ``min(F, max_frames_to_llm)`` (``None``: all)."""
    return num_frames if max_frames_to_llm is None else min(num_frames, max_frames_to_llm)


def num_video_tokens(
    num_frames: int,
    height: int,
    width: int,
    *,
    max_tokens_per_frame: int = 256,
    max_frames_to_llm: int | None = 32,
    min_tokens: int = 4,
    patch_size: int = 16,
    merge_size: int = 2,
    max_aspect_ratio: float = 200.0,
) -> int:
    """LLM tokens for a clip of ``num_frames`` frames (no separator or timestamp tokens).

    Every frame is resized with ``fit_image(max_tokens=max_tokens_per_frame)``. TFF sees all frames; the model
    then average-pools time to at most ``max_frames_to_llm`` frames (``None``: no pooling), so the LLM gets
    ``min(num_frames, max_frames_to_llm)`` frames' worth of tokens.

    >>> num_video_tokens(64, 720, 1280)  # 32 frames x (12 x 21) cells of a 384x672 frame
    8064
    """
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got num_frames={num_frames!r}")
    if max_frames_to_llm is not None and max_frames_to_llm < 1:
        raise ValueError(f"max_frames_to_llm must be >= 1 or None, got {max_frames_to_llm}")
    per_frame = num_image_tokens(
        height,
        width,
        max_tokens=max_tokens_per_frame,
        min_tokens=min_tokens,
        patch_size=patch_size,
        merge_size=merge_size,
        max_aspect_ratio=max_aspect_ratio,
    )
    return frames_to_llm(num_frames, max_frames_to_llm) * per_frame


def fit_video(
    num_frames: int,
    height: int,
    width: int,
    *,
    max_video_tokens: int | None,
    max_tokens_per_frame: int = 256,
    min_tokens_per_frame: int = 16,
    max_frames_to_llm: int | None = 32,
    min_tokens: int = 4,
    patch_size: int = 16,
    merge_size: int = 2,
) -> tuple[int, int]:
    """``(frames to keep, per-frame token budget)`` so that a video's LLM tokens fit ``max_video_tokens``.

    Decisions, in order: (1) all frames at ``max_tokens_per_frame`` if that fits; (2) else a lower per-frame
    budget, ``max_video_tokens // min(F, max_frames_to_llm)``, down to ``min_tokens_per_frame`` (resolution goes
    before time: temporal coverage is what TFF needs); (3) else fewer frames, evenly spaced, at
    ``min_tokens_per_frame``; a video always keeps at least one frame, so a budget below one frame's floor is
    exceeded by that frame. ``max_video_tokens=None``: no total budget.

    >>> fit_video(64, 720, 1280, max_video_tokens=4096)  # 32 LLM frames x 128 tokens
    (64, 128)
    >>> fit_video(64, 720, 1280, max_video_tokens=256)   # the 16-token floor (15 cells): 17 frames
    (17, 16)
    """

    def tokens(budget: int) -> int:
        return num_image_tokens(
            height, width, max_tokens=budget, min_tokens=min(min_tokens, budget), patch_size=patch_size,
            merge_size=merge_size,
        )  # fmt: skip

    if max_video_tokens is None:
        return num_frames, max_tokens_per_frame
    pooled = frames_to_llm(num_frames, max_frames_to_llm)
    if pooled * tokens(max_tokens_per_frame) <= max_video_tokens:
        return num_frames, max_tokens_per_frame
    budget = max(min_tokens_per_frame, max_video_tokens // pooled)
    if pooled * tokens(budget) <= max_video_tokens:
        return num_frames, budget
    floor = tokens(min_tokens_per_frame)
    return min(num_frames, max(1, max_video_tokens // floor)), min_tokens_per_frame


def frame_groups(num_frames: int, max_frames_to_llm: int | None = 32) -> list[tuple[int, int]]:
    """``[start, end)`` frame windows that the model averages into each LLM frame (time pooling).

    The windows of ``torch.nn.functional.adaptive_avg_pool1d`` (start ``floor(i*F/T)``, end ``ceil((i+1)*F/T)``
    for ``T = min(F, max_frames_to_llm)``): 64 frames -> 32 pairs; 50 frames -> 32 windows of 2 or 3 frames,
    some overlapping by one. The processor writes each window's timestamp before its tokens.

    >>> frame_groups(4, 2), frame_groups(3, 2)
    ([(0, 2), (2, 4)], [(0, 2), (1, 3)])
    """
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got num_frames={num_frames!r}")
    groups = frames_to_llm(num_frames, max_frames_to_llm)
    return [((i * num_frames) // groups, -((-(i + 1) * num_frames) // groups)) for i in range(groups)]


def tiled_grid(height: int, width: int, *, tile_size: int = 384, max_tiles: int = 9) -> tuple[int, int]:
    """``(rows, cols)`` of ``tile_size`` tiles that LLaVA-NeXT "anyres" picks for an image.

    The rule is LLaVA-NeXT's ``select_best_resolution`` over every grid with ``rows * cols <= max_tiles``
    (``anyres_max_9``): scale the image to fit the grid's canvas keeping its aspect, keep the grid that
    preserves the most original pixels (``min(scaled area, original area)``), and break ties by the least
    wasted canvas. A 1152x1152 image takes 3x3 tiles; 1280x720 takes 2x4 (the paper's Table 6 "~4032"
    counts 576-token views with a different grid and is not reproduced).

    >>> tiled_grid(1152, 1152), tiled_grid(720, 1280)
    ((3, 3), (2, 4))
    """
    _check_size(height, width)
    best, best_key = (1, 1), None
    for rows in range(1, max_tiles + 1):
        for cols in range(1, max_tiles // rows + 1):
            canvas_h, canvas_w = rows * tile_size, cols * tile_size
            scale = min(canvas_w / width, canvas_h / height)
            kept = min(int(width * scale) * int(height * scale), width * height)
            wasted = canvas_h * canvas_w - kept
            key = (kept, -wasted)
            if best_key is None or key > best_key:
                best, best_key = (rows, cols), key
    return best


def baseline_image_tokens(
    height: int,
    width: int,
    strategy: Literal["fixed", "tiled"],
    *,
    tile_size: int = 384,
    encoder_patch_size: int = 14,
    max_tiles: int = 9,
) -> int:
    """Visual tokens of the two baselines of the paper's Figure 3 for one image.

    ``"fixed"``: one ``tile_size`` view of a patch-14 encoder, ``(384 // 14) ** 2 = 729`` tokens whatever the
    input. ``"tiled"``: the ``tiled_grid`` tiles plus one global view, 729 tokens each (1152x1152 -> 7290).
    """
    _check_size(height, width)
    tokens_per_view = (tile_size // encoder_patch_size) ** 2
    if strategy == "fixed":
        return tokens_per_view
    if strategy == "tiled":
        rows, cols = tiled_grid(height, width, tile_size=tile_size, max_tiles=max_tiles)
        return (rows * cols + 1) * tokens_per_view
    raise ValueError(f"unknown strategy {strategy!r}; expected 'fixed' or 'tiled'")
