"""Training throughput: packed vs padded batches, and bf16 autocast vs fp32, on a realistic length mix, in one run.

Command (CPU, about 2.5 minutes)::

    python benchmarks/train_throughput.py

The mix (seeded): images of 64x64 to 384x512, videos of 8 to 64 frames (64x96), and text-only samples, 8
samples a step, the same samples in the same order for both strategies. The model is the tiny preset with a
wider LLM (hidden 512, 4 layers) so that the language model, where padding is spent, carries most of the step
as in a real-size model (with a 256-wide LLM the attention over long packed rows and the vision tower took a
larger share and the gain fell to 1.2-1.9x between runs). Prints real (non-padding) tokens per second of
forward + backward + AdamW step, the padding share, and the peak RSS of the process; each strategy runs the
6 steps 3 times, interleaved, and the median is reported. Goal: packed >= 1.5x padded. The third row is packed
training as ``tempflex train --packing --bf16`` runs it: forward and loss under ``torch.autocast("cpu",
torch.bfloat16)`` (what accelerate wraps the forward in), fp32 master weights and AdamW.
"""

from __future__ import annotations

import random
import resource
import statistics
import time

import numpy as np
import torch
from PIL import Image

from tempflex import TempFlexConfig, TempFlexForConditionalGeneration, TempFlexProcessor
from tempflex.tokenization import build_tiny_tokenizer
from tempflex.train import PackingCollator, PaddingCollator

STEPS, PER_STEP, REPEATS = 6, 8, 3


def make_samples(processor: TempFlexProcessor, count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    samples = []
    for index in range(count):
        kind = rng.choice(["image", "image", "video", "text"])
        if kind == "image":
            h, w = rng.randrange(64, 385, 32), rng.randrange(64, 513, 32)
            part = [{"type": "image", "image": Image.new("RGB", (w, h), (index * 7 % 255, 80, 160))}]
        elif kind == "video":
            frames = [Image.new("RGB", (96, 64), (f * 4 % 255, 90, 30)) for f in range(rng.randrange(8, 65))]
            part = [{"type": "video", "video": frames}]
        else:
            part = []
        answer = " ".join(
            rng.choice(["red", "ball", "moves", "left", "right", "the", "a"]) for _ in range(rng.randrange(3, 60))
        )
        messages = [
            {"role": "user", "content": [*part, {"type": "text", "text": "Describe it."}]},
            {"role": "assistant", "content": answer},
        ]
        output = processor.apply_chat_template(
            messages, tokenize=True, return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True
        )
        output.pop("assistant_masks")
        samples.append(dict(output))
    return samples


def run(model: torch.nn.Module, batches: list[dict], bf16: bool = False) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    start = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    from tempflex.configuration import PRESETS

    wider = {"hidden_size": 512, "intermediate_size": 1536, "num_hidden_layers": 4, "num_attention_heads": 8}
    config = TempFlexConfig.from_preset("tiny", text_config={**PRESETS["tiny"]["text_config"], **wider, "head_dim": 64})
    processor = TempFlexProcessor.for_model(config, build_tiny_tokenizer())
    samples = make_samples(processor, STEPS * PER_STEP)
    real_tokens = sum(s["input_ids"].shape[-1] for s in samples)
    pad = processor.tokenizer.pad_token_id
    longest = max(s["input_ids"].shape[-1] for s in samples)
    packing = PackingCollator(pad, max_length=max(4096, longest))
    strategies = {"padded": (PaddingCollator(pad), False), "packed": (packing, False), "packed bf16": (packing, True)}
    prepared = {}
    for name, (collator, bf16) in strategies.items():
        batches = [collator(samples[i : i + PER_STEP]) for i in range(0, len(samples), PER_STEP)]
        torch.manual_seed(0)
        model = TempFlexForConditionalGeneration(config)
        run(model, batches[:1], bf16)  # warm-up
        prepared[name] = (model, batches, sum(b["input_ids"].numel() for b in batches), bf16)
    timings = {name: [] for name in strategies}
    for _ in range(REPEATS):  # interleaved, so that load from elsewhere hits all alike; the median is reported
        for name, (model, batches, _, bf16) in prepared.items():
            timings[name].append(run(model, batches, bf16))
    results = {}
    for name, (_, _, slots, _) in prepared.items():
        seconds = statistics.median(timings[name])
        results[name] = (real_tokens / seconds, 1 - real_tokens / slots, seconds)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(samples)} samples, {real_tokens} tokens")
    print(f"{'batches':<12}{'tokens/s':>10}{'padding':>10}{'seconds':>10}{'vs padded':>11}")
    for name, (rate, waste, seconds) in results.items():
        print(f"{name:<12}{rate:>10.0f}{100 * waste:>9.1f}%{seconds:>10.2f}{rate / results['padded'][0]:>10.2f}x")
    ratio = results["packed"][0] / results["padded"][0]
    print(
        f"peak RSS {peak:.0f} MB; goal packed >= 1.5x padded -> {ratio:.2f}x {'(met)' if ratio >= 1.5 else '(NOT met)'}"
    )
    print(f"packed with bf16 autocast vs fp32: {results['packed bf16'][0] / results['packed'][0]:.2f}x")


if __name__ == "__main__":
    np.random.seed(0)
    main()
