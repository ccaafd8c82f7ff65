"""Frames -> 3x3 stitched grids (the paper's appendix, Figure 6) -> JPEG data URIs.

Frames fill each grid left to right, top to bottom (cells 1, 2, 3 / 4, 5, 6 / 7, 8, 9); the next grid takes the
next nine; white cells pad the last one ("any white images within the stitched images are meaningless"). Every
cell is ``cell_width`` pixels wide and as high as the video's aspect ratio gives (at least 8 px).

Example::

    frames = np.zeros((11, 360, 640, 3), np.uint8)     # 11 s of video at 1 fps
    grids = stitch_grids(frames, cell_width=320)
    len(grids), grids[0].size                          # -> 2, (960, 540): two 3x3 grids of 320x180 cells
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

__all__ = ["GRID_SIDE", "grid_data_uris", "stitch_grids"]

GRID_SIDE = 3
"""Cells per row and per column of a stitched image (3x3 = 9 frames)."""


def stitch_grids(frames: np.ndarray, *, cell_width: int = 320) -> list[Image.Image]:
    """``[F, H, W, 3]`` uint8 frames -> ``ceil(F / 9)`` RGB images of 3x3 cells, white-padded.

    >>> grids = stitch_grids(np.zeros((10, 20, 40, 3), np.uint8), cell_width=40)
    >>> [g.size for g in grids], grids[1].getpixel((0, 0)), grids[1].getpixel((45, 0))
    ([(120, 60), (120, 60)], (0, 0, 0), (255, 255, 255))
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"expected frames [F, H, W, 3] with F >= 1, got shape {tuple(frames.shape)}")
    if cell_width < 8:
        raise ValueError(f"cell_width must be >= 8 pixels, got {cell_width}")
    height, width = frames.shape[1:3]
    cell_height = max(8, round(cell_width * height / width))
    per_grid = GRID_SIDE * GRID_SIDE
    grids = []
    for begin in range(0, len(frames), per_grid):
        canvas = Image.new("RGB", (cell_width * GRID_SIDE, cell_height * GRID_SIDE), (255, 255, 255))
        for slot, frame in enumerate(frames[begin : begin + per_grid]):
            row, col = divmod(slot, GRID_SIDE)  # row-major: left to right, then top to bottom
            cell = Image.fromarray(frame).resize((cell_width, cell_height), Image.Resampling.BILINEAR)
            canvas.paste(cell, (col * cell_width, row * cell_height))
        grids.append(canvas)
    return grids


def grid_data_uris(grids: list[Image.Image], *, quality: int = 85) -> list[str]:
    """Each grid as a ``data:image/jpeg;base64,...`` URI (what OpenAI-compatible endpoints take as image_url).

    >>> grid_data_uris([Image.new("RGB", (9, 9))])[0][:23]
    'data:image/jpeg;base64,'
    """
    uris = []
    for grid in grids:
        buffer = io.BytesIO()
        grid.save(buffer, format="JPEG", quality=quality)
        uris.append("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"))
    return uris
