"""Batching clips of different sizes through SigLIP2-naflex: padding waste and time against encoding alone.

Command (CPU, about a minute on 2 cores)::

    python benchmarks/encoder_packing.py
    python benchmarks/encoder_packing.py --device cuda

For each mix of images, prints per strategy: the batches it runs, the share of padded slots, the median
forward time and its ratio to encoding each clip alone:

- ``alone``: one encoder call per clip (no padding, no batching);
- ``one padded batch``: every frame in one batch padded to the longest (naive batching);
- ``equal-length buckets``: ``VisionTower``'s default (``max_padding=0``), only frames of the same length
  share a batch (no padding, no attention mask);
- ``buckets (<=10% pad)``: ``max_padding=0.1``, frames sorted by length and grouped while padding stays under
  10% of a batch's slots.

Mixes: the issue's 8 images from 64x64 to 1024x768, each a different size; and 32 images in 4 sizes (what a
data loader that groups by aspect ratio gives), where equal sizes batch without padding.
"""

from __future__ import annotations

import argparse

import torch
from transformers import Siglip2VisionConfig

from tempflex.vision import VisionTower, padding_fraction, patchify, plan_buckets
from timing import median_seconds

EIGHT_SIZES = [(64, 64), (128, 96), (224, 224), (256, 384), (480, 640), (512, 512), (768, 1024), (1024, 768)]
FOUR_SIZES = [(224, 224), (256, 384), (384, 256), (512, 512)]


def run_mix(name: str, sizes: list[tuple[int, int]], config: Siglip2VisionConfig, args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    images = [torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(i)) for i, (h, w) in enumerate(sizes)]
    grids = [(1, h // 16, w // 16) for h, w in sizes]
    clip_patches = [patchify(image, 16).to(device=device, dtype=dtype) for image in images]
    patches = torch.cat(clip_patches)
    lengths = [h * w for _, h, w in grids]
    strategies = {
        "alone": dict(max_padding=0.0, max_batch_tokens=0),
        "one padded batch": dict(max_padding=1.0, max_batch_tokens=10**9),
        "equal-length buckets": dict(max_padding=0.0, max_batch_tokens=32768),
        "buckets (<=10% pad)": dict(max_padding=0.1, max_batch_tokens=32768),
    }
    torch.manual_seed(0)
    tower = VisionTower(config).to(device=device, dtype=dtype).eval()
    results = {}
    for label, options in strategies.items():
        tower.max_padding, tower.max_batch_tokens = options["max_padding"], options["max_batch_tokens"]
        if label == "alone":
            buckets = [[i] for i in range(len(lengths))]

            def encode() -> None:
                for clip, grid in zip(clip_patches, grids, strict=True):
                    tower(clip, [grid])

        else:
            buckets = plan_buckets(lengths, **options)

            def encode() -> None:
                tower(patches, grids)

        with torch.no_grad():
            seconds = median_seconds(encode, args.repeats, device)
        results[label] = (len(buckets), padding_fraction(lengths, buckets), seconds)
    print(f"\n{name}: {len(sizes)} images, {sum(lengths)} patches")
    print(f"{'strategy':<22}{'batches':>8}{'padding':>10}{'seconds':>10}{'vs alone':>10}")
    alone = results["alone"][2]
    for label, (batches, waste, seconds) in results.items():
        print(f"{label:<22}{batches:>8}{100 * waste:>9.1f}%{seconds:>10.3f}{seconds / alone:>9.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=192, help="encoder width of the small SigLIP2 config")
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    config = Siglip2VisionConfig(
        hidden_size=args.hidden,
        intermediate_size=4 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=max(1, args.hidden // 64),
        num_patches=256,
        patch_size=16,
    )
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}, {args.dtype}; "
        f"SigLIP2 width {args.hidden}, {args.layers} layers, patch 16, sdpa, median of {args.repeats}"
    )
    run_mix("8 sizes from 64x64 to 1024x768", EIGHT_SIZES, config, args)
    run_mix("32 images in 4 sizes", [FOUR_SIZES[i % 4] for i in range(32)], config, args)


if __name__ == "__main__":
    main()
