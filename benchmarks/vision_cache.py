"""A stage with a frozen vision tower, with and without ``--cache-vision-features``, in one run.

Command (CPU, about 2 minutes)::

    python benchmarks/vision_cache.py [--steps 150] [--threads 2] [--towers 64x2,256x6]

Trains the tiny preset through ``tempflex.train.train`` on the temporal probe (16 frames of 64x64 per clip, 16 clips
a step, 2 epochs' worth of steps over a 64-clip set), the way the paper's stage 3 does: TFF and the merger learn,
the vision tower and the LM are frozen. Both runs start from the same weights and read the same clips in the same
order; the cached run encodes each frame once (the first of 37 epochs) and reads it from the store afterwards.
Prints, per vision tower (the tiny preset's 64-wide 2 layers, and a 256-wide 6-layer one to show how the gain grows
with the tower's cost), seconds per step over the whole run (``train`` from start to saved model), the speed-up,
the store's size, and whether the trained weights are identical (they must be: the cache is exact).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--towers", default="64x2,256x6", help="vision towers to try, WIDTHxLAYERS (comma-separated)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from tempflex.configuration import PRESETS
    from tempflex.fusion import PATHS
    from tempflex.loading import load
    from tempflex.probe.dataset import generate_probe
    from tempflex.train import Stage, TrainSettings, train
    from tempflex.train.run import load_records

    folder = Path(tempfile.mkdtemp(prefix="tempflex-vision-cache-"))
    generate_probe(folder / "probe", per_task=11, frames=16, size=64)  # 8 tasks x 8 train clips = 64 clips
    records = load_records(folder / "probe" / "train.jsonl")[:64]
    stage = Stage(name="stage3-like", trainable={"temporal_fusion": 3e-3, "merger": 1e-3}, use_temporal_fusion=True)
    rows = []
    for tower in args.towers.split(","):
        width, layers = (int(v) for v in tower.split("x"))
        vision = {**PRESETS["tiny"]["vision_config"], "hidden_size": width, "intermediate_size": 4 * width}
        vision |= {"num_hidden_layers": layers, "num_attention_heads": max(4, width // 64)}
        results = {}
        for cached in (False, True):
            torch.manual_seed(0)
            model, processor = load("tiny", max_frames_to_llm=2, fusion_paths=list(PATHS), vision_config=vision)
            store: dict | bool = {} if cached else False
            settings = TrainSettings(
                folder / f"{tower}-{cached}", max_steps=args.steps, batch_size=16, gradient_accumulation_steps=1,
                shuffle=False, logging_steps=10**6, cache={}, cache_vision_features=store,
            )  # fmt: skip
            start = time.perf_counter()
            train(model, processor, stage, records, settings)
            seconds = time.perf_counter() - start
            results[cached] = (seconds / args.steps, model.state_dict(), len(store) if cached else 0)
        same = all(torch.equal(results[False][1][k], results[True][1][k]) for k in results[False][1])
        rows.append((tower, results[False][0], results[True][0], results[True][2], same))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.steps} steps of 16 clips (16x64x64)")
    print(f"{'vision tower':<14}{'encoded s/step':>16}{'cached s/step':>15}{'speed-up':>10}", end="")
    print(f"{'frames':>8}{'identical':>11}")
    for tower, plain, cached, frames, same in rows:
        print(f"{tower:<14}{plain:>16.3f}{cached:>15.3f}{plain / cached:>9.2f}x{frames:>8}{same!s:>11}")


if __name__ == "__main__":
    main()
