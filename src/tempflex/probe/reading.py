"""The probe's image task: read a small digit in a large image, under three ways of feeding the encoder.

The paper's Figure 3 compares TempFlex's native-resolution encoding with a fixed resolution (everything resized
to the encoder's base size) and LLaVA-NeXT's tiles (+ one global view). Here, at the tiny preset's scale:

- ``native``: the whole 256x256 image at its own size (16x16 patches of 16 px, 64 LLM tokens);
- ``fixed``: resized to 64x64, the tiny encoder's base grid of 4x4 patches (4 tokens), as SigLIP's 384x384;
- ``tiled``: ``token_budget.tiled_grid`` tiles of 64x64 (a 256x256 image takes 3x3 of them, so it is first
  resized to 192x192) and the 64x64 global view, each encoded as its own image (10 x 4 = 40 tokens).

A digit of a 5x7 bitmap font, drawn 2x (10x14 px) in black at a random place on a noisy light background, is
the text to read; the question offers four digits (``DIGITS``, always in the same order). Resized to 64x64 the
glyph is 2.5x3.5 px: nearly gone.

Command (part of ``tempflex demo``)::

    >>> sample = make_reading_sample(3)
    >>> sample.image.shape, sample.options[ord(sample.answer) - ord("A")] == str(sample.digit)
    ((256, 256, 3), True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tempflex.records import LETTERS
from tempflex.token_budget import tiled_grid

__all__ = ["STRATEGIES", "ReadingSample", "generate_reading", "make_reading_sample", "strategy_views"]

STRATEGIES = ("native", "fixed", "tiled")
BASE_SIZE = 64  # the tiny encoder's base resolution: 4x4 patches of 16 px
DIGITS = ("2", "3", "5", "8")
"""The digits drawn and offered, always in this order (the answer letter names the digit: a tiny LM from scratch
does not learn to match a read digit against shuffled options within a demo's steps; measured, chance after 400)."""

# 5x7 digits, one string of five columns per row ("#" = ink).
FONT = {
    "0": (" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "),
    "1": ("  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "2": (" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"),
    "3": ("#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "),
    "4": ("   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "),
    "5": ("#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "),
    "6": ("  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "),
    "7": ("#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "),
    "8": (" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "),
    "9": (" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "),
}


@dataclass
class ReadingSample:
    """One image with its digit, the four options and the answer letter."""

    image: np.ndarray  # [H, W, 3] uint8
    digit: int
    options: list[str]
    answer: str

    def prompt(self) -> str:
        """The question with lettered options."""
        lines = ["Which digit is written in the image?"]
        lines += [f"{LETTERS[i]}. {option}" for i, option in enumerate(self.options)]
        return "\n".join([*lines, "Answer with the option's letter."])


def glyph(digit: int, scale: int = 2) -> np.ndarray:
    """The digit's ink mask ``[7*scale, 5*scale]`` bool."""
    rows = np.array([[c == "#" for c in row] for row in FONT[str(digit)]])  # [7, 5]
    return rows.repeat(scale, axis=0).repeat(scale, axis=1)


def make_reading_sample(
    seed: int, *, size: int = 256, scale: int = 2, copies: tuple[int, int] = (1, 1), cell: int = 32
) -> ReadingSample:
    """The sample for ``seed``: the same image, digit and options every time.

    ``copies=(low, high)``: the digit is printed a random number of times in that range, each copy at a random
    place inside its own ``cell`` x ``cell`` square of a grid over the image, in a random dark grey (10-99),
    as on a page of small print; the random count and darkness keep the total amount of ink from naming the
    digit. One copy is drawn anywhere, in black (20).
    """
    rng = np.random.default_rng([seed, 8191])
    image = rng.integers(200, 246, (size, size, 3), dtype=np.uint8)
    options = list(DIGITS)
    answer = seed % len(options)  # cycles with the seed: consecutive seeds are balanced, as in probe.tasks
    digit = int(options[answer])
    mask = glyph(digit, scale)
    count = int(rng.integers(copies[0], copies[1] + 1))
    if count == 1:
        row, col = (int(rng.integers(size - side + 1)) for side in mask.shape)
        image[row : row + mask.shape[0], col : col + mask.shape[1]][mask] = 20
        return ReadingSample(image, digit, options, LETTERS[answer])
    per_side = size // cell
    if max(mask.shape) > cell or count > per_side**2:
        raise ValueError(f"{count} copies of a {mask.shape[1]}x{mask.shape[0]} glyph do not fit {cell}-px cells")
    for index in rng.choice(per_side**2, size=count, replace=False):
        top, left = divmod(int(index), per_side)
        row = top * cell + int(rng.integers(cell - mask.shape[0] + 1))
        col = left * cell + int(rng.integers(cell - mask.shape[1] + 1))
        image[row : row + mask.shape[0], col : col + mask.shape[1]][mask] = int(rng.integers(10, 100))
    return ReadingSample(image, digit, options, LETTERS[answer])


def strategy_views(image: np.ndarray, strategy: str) -> list[np.ndarray]:
    """The images the encoder sees for one picture under ``strategy`` (tiles in reading order, then global)."""
    from PIL import Image

    picture = Image.fromarray(image)
    if strategy == "native":
        return [image]
    base = np.asarray(picture.resize((BASE_SIZE, BASE_SIZE), Image.Resampling.BICUBIC))
    if strategy == "fixed":
        return [base]
    if strategy != "tiled":
        raise ValueError(f"unknown encoding strategy {strategy!r}; choose from {STRATEGIES}")
    rows, cols = tiled_grid(*image.shape[:2], tile_size=BASE_SIZE)
    canvas = np.asarray(picture.resize((cols * BASE_SIZE, rows * BASE_SIZE), Image.Resampling.BICUBIC))
    tiles = [
        canvas[r * BASE_SIZE : (r + 1) * BASE_SIZE, c * BASE_SIZE : (c + 1) * BASE_SIZE]
        for r in range(rows)
        for c in range(cols)
    ]
    return [*tiles, base]


def generate_reading(
    out: str | Path, *, train: int = 800, test: int = 200, scale: int = 2, copies: tuple[int, int] = (1, 1)
) -> dict[str, int]:
    """Write the images of every strategy and ``{strategy}_{split}.jsonl`` (LLaVA format) into ``out``.

    Seeds ``0 .. train-1`` form the train split and the next ``test`` the test split. Existing images are kept.
    """
    from PIL import Image

    out = Path(out)
    counts = {}
    for strategy in STRATEGIES:
        (out / strategy).mkdir(parents=True, exist_ok=True)
    for split, seeds in (("train", range(train)), ("test", range(train, train + test))):
        records: dict[str, list[dict]] = {strategy: [] for strategy in STRATEGIES}
        for seed in seeds:
            sample = make_reading_sample(seed, scale=scale, copies=copies)
            for strategy in STRATEGIES:
                paths = []
                for index, view in enumerate(strategy_views(sample.image, strategy)):
                    path = out / strategy / f"{seed}_{index}.png"
                    if not path.exists():
                        Image.fromarray(view).save(path)
                    paths.append(f"{strategy}/{path.name}")
                records[strategy].append(
                    {
                        "id": f"read_digit_{seed}",
                        "task": "read_digit",
                        "image": paths,
                        "answer": sample.answer,
                        "options": sample.options,
                        "conversations": [
                            {"from": "human", "value": "<image>\n" * len(paths) + sample.prompt()},
                            {"from": "gpt", "value": sample.answer},
                        ],
                    }
                )
        for strategy, rows in records.items():
            with (out / f"{strategy}_{split}.jsonl").open("w") as annotations:
                annotations.writelines(json.dumps(row) + "\n" for row in rows)
        counts[split] = len(seeds)
    return counts
