"""Parameter counts of the real presets by part (meta device) and forward times.

Commands::

    python benchmarks/model_footprint.py                                   # CPU, about 10 seconds
    python benchmarks/model_footprint.py --preset qwen3-4b --device cuda   # GPU: real-size forward, bf16

Prints, for ``qwen3-4b`` and ``gemma3-4b``, the parameters of the vision tower, TFF, the merger and the LM
(built on the meta device: no memory, no weights), then the chosen preset's forward time (median of 5,
random weights) for one 384x384 image and a 16-frame 224x224 video, plus, for the real presets, a 1280x720
image (880 tokens) and a 64-frame 1280x720 video (TFF on 64 frames, pooled to 32 for the LM).
"""

from __future__ import annotations

import torch

from tempflex.configuration import TempFlexConfig
from tempflex.modeling import TempFlexForConditionalGeneration
from tempflex.token_budget import fit_image, num_image_tokens, num_video_tokens
from tempflex.vision import patchify
from timing import median_seconds

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
    device = next(model.parameters()).device
    with torch.no_grad():
        return median_seconds(lambda: model(**inputs), repeats, device)


def forward_timing(preset: str, device: str, dtype: torch.dtype) -> None:
    config = TempFlexConfig.from_preset(preset)
    torch.manual_seed(0)
    with torch.device(device):
        model = TempFlexForConditionalGeneration(config).to(dtype).eval()
    cases = [("image 384x384", 1, 384, 384), ("video 16 x 224x224", 16, 224, 224)]
    if preset != "tiny":
        cases += [("image 1280x720", 1, 720, 1280), ("video 64 x 1280x720", 64, 720, 1280)]
    rows = []
    for label, frames, height, width in cases:
        video = frames > 1
        budget = config.max_tokens_per_frame if video else config.max_image_tokens
        rh, rw = fit_image(height, width, max_tokens=budget)
        patches = patchify(torch.rand(frames, 3, rh, rw), 16).to(device=device, dtype=dtype)
        grid = torch.tensor([[frames, rh // 16, rw // 16]], device=device)
        tokens = num_video_tokens(frames, height, width) if video else num_image_tokens(height, width)
        placeholder = config.video_token_id if video else config.image_token_id
        ids = [1, 50, config.vision_start_token_id, *([placeholder] * tokens), config.vision_end_token_id, 40, 41, 2]
        ids = torch.tensor([ids], device=device)
        if video:
            pixels = {"pixel_values_videos": patches, "video_grid_thw": grid}
        else:
            pixels = {"pixel_values": patches, "image_grid_thw": grid}
        rows.append((label, tokens, ids.shape[1], median_forward_seconds(model, {"input_ids": ids, **pixels})))
    where = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"\n{preset} preset forward on {where}, {str(dtype).removeprefix('torch.')}, random weights, median of 5")
    print(f"{'input':<22}{'visual tokens':>14}{'sequence':>10}{'seconds':>10}")
    for label, tokens, length, seconds in rows:
        print(f"{label:<22}{tokens:>14}{length:>10}{seconds:>10.3f}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=["tiny", "qwen3-4b", "gemma3-4b"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16"], help="default: bf16 on GPU")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32"))
    print(f"torch {torch.__version__}")
    parameter_table()
    forward_timing(args.preset, args.device, dtype)
