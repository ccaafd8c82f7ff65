"""Serving latency of the tiny model: time to first token and decode speed per input kind, and chat turn 2
with and without the per-conversation visual cache (``ChatSession``).

    python benchmarks/serve_latency.py [--repeats 5] [--tokens 32]

prints two Markdown tables (medians over ``--repeats``). Greedy decoding; decode speed counts the tokens after
the first streamed text. Time to first token includes the processor (image resize, video decoding).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from tempflex.serve.engine import Engine, GenerationParams
from tempflex.serve.session import ChatSession
from video_files import encode_video


def timed_generation(engine: Engine, conversation: list[dict], tokens: int) -> tuple[float, float, int]:
    """(seconds to the first streamed text incl. preprocessing, decode tokens/s after it, prompt tokens)."""
    marks: list[float] = []
    started = time.perf_counter()
    prepared = engine.prepare(conversation)
    result = engine.generate(
        prepared.inputs,
        GenerationParams(max_tokens=tokens, temperature=0),
        on_text=lambda _: marks.append(time.perf_counter()),
    )
    finished = time.perf_counter()
    first = marks[0] if marks else finished
    rate = (result.completion_tokens - 1) / (finished - first) if finished > first else float("nan")
    return first - started, rate, prepared.prompt_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    engine = Engine.load("tiny")
    with tempfile.TemporaryDirectory() as folder:
        image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (448, 640, 3), dtype=np.uint8))
        video = str(encode_video(Path(folder) / "clip.mp4", 160, fps=10, size=(224, 320)))
        question = {"type": "text", "text": "Describe what you see."}
        cases = {
            "text only": [{"role": "user", "content": "Describe a sunset in one sentence."}],
            "image 640x448": [{"role": "user", "content": [{"type": "image", "image": image}, question]}],
            "video 16 frames 320x224": [
                {"role": "user", "content": [{"type": "video", "video": video, "nframes": 16}, question]}
            ],
        }
        timed_generation(engine, cases["text only"], 4)  # warm-up
        print(
            f"Tiny model, greedy, {args.tokens} new tokens, median of {args.repeats}; "
            f"torch threads {torch.get_num_threads()}\n"
        )
        print("| input | prompt tokens | time to first token | decode tokens/s |")
        print("|---|---:|---:|---:|")
        for name, conversation in cases.items():
            runs = [timed_generation(engine, conversation, args.tokens) for _ in range(args.repeats)]
            ttft = statistics.median(r[0] for r in runs)
            rate = statistics.median(r[1] for r in runs)
            print(f"| {name} | {runs[0][2]} | {ttft * 1000:.0f} ms | {rate:.0f} |")

        print("\nChat turn 2 (a text follow-up about the 16-frame clip), time to first token:\n")
        print("| turn 2 | time to first token | vision tower runs on turn 2 |")
        print("|---|---:|---:|")
        for use_cache in (True, False):
            times, runs = [], []
            for _ in range(args.repeats):
                session = ChatSession(engine, use_cache=use_cache, nframes=16)
                session.ask(
                    "What happens?", video=video, params=GenerationParams(max_tokens=args.tokens, temperature=0)
                )
                calls: list[int] = []
                handle = engine.model.vision_tower.register_forward_hook(lambda *a, calls=calls: calls.append(1))
                marks: list[float] = []
                started = time.perf_counter()
                session.ask(
                    "And then?",
                    params=GenerationParams(max_tokens=2, temperature=0),
                    on_text=lambda _, marks=marks: marks.append(time.perf_counter()),
                )
                handle.remove()
                times.append((marks[0] if marks else time.perf_counter()) - started)
                runs.append(len(calls))
            label = "with the visual cache (KV prefix reused)" if use_cache else "without (re-encode the conversation)"
            print(f"| {label} | {statistics.median(times) * 1000:.0f} ms | {max(runs)} |")


if __name__ == "__main__":
    main()
