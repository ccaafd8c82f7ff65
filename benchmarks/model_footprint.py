"""Parameter counts of the real presets by part (meta device) and the tiny model's forward time.

Command (CPU, about 10 seconds)::

    python benchmarks/model_footprint.py

Prints, for ``qwen3-4b`` and ``gemma3-4b``, the parameters of the vision tower, TFF, the merger and the LM
(built on the meta device: no memory, no weights), then the ``tiny`` preset's forward time (median of 5) for
one 384x384 image and for a 16-frame 224x224 video.
"""

from __future__ import annotations

import statistics
import time

import torch

from tempflex.configuration import TempFlexConfig
from tempflex.modeling import TempFlexForConditionalGeneration
from tempflex.token_budget import fit_image, num_image_tokens, num_video_tokens
from tempflex.vision import patchify

PARTS = ("vision_tower", "temporal_fusion", "merger", "language_model")


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_table() -> None:
    print(f"{'preset':<11}" + "".join(f"{part:>17}" for part in PARTS) + f"{'total':>17}")
    for preset in ("qwen3-4b", "gemma3-4b"):
        with torch.device("meta"):
            model = TempFlexForConditionalGeneration(TempFlexConfig.from_preset(preset))
        counts = [count(getattr(model, part)) for part in PARTS]
        print(f"{preset:<11}" + "".join(f"{c / 1e6:>16.1f}M" for c in counts) + f"{count(model) / 1e6:>16.1f}M")


def median_forward_seconds(model, inputs: dict, repeats: int = 5) -> float:
    times = []
    with torch.no_grad():
        model(**inputs)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            model(**inputs)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def tiny_timing() -> None:
    config = TempFlexConfig.from_preset("tiny")
    torch.manual_seed(0)
    model = TempFlexForConditionalGeneration(config).eval()
    rows = []
    for label, frames, side, budget, video in (
        ("image 384x384", 1, 384, config.max_image_tokens, False),
        ("video 16 x 224x224", 16, 224, config.max_tokens_per_frame, True),
    ):
        rh, rw = fit_image(side, side, max_tokens=budget)
        patches = patchify(torch.rand(frames, 3, rh, rw), 16)
        grid = torch.tensor([[frames, rh // 16, rw // 16]])
        tokens = num_video_tokens(frames, side, side) if video else num_image_tokens(side, side)
        placeholder = config.video_token_id if video else config.image_token_id
        ids = torch.tensor([[1, 50, config.vision_start_token_id, *([placeholder] * tokens), 10, 40, 41, 2]])
        pixels = (
            {"pixel_values_videos": patches, "video_grid_thw": grid}
            if video
            else {"pixel_values": patches, "image_grid_thw": grid}
        )
        rows.append((label, tokens, ids.shape[1], median_forward_seconds(model, {"input_ids": ids, **pixels})))
    print(f"\ntiny preset forward on CPU ({torch.get_num_threads()} threads), median of 5")
    print(f"{'input':<20}{'visual tokens':>14}{'sequence':>10}{'seconds':>10}")
    for label, tokens, length, seconds in rows:
        print(f"{label:<20}{tokens:>14}{length:>10}{seconds:>10.3f}")


if __name__ == "__main__":
    print(f"torch {torch.__version__}")
    parameter_table()
    tiny_timing()
