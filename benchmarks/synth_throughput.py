"""Synthesis throughput: videos/min against a local OpenAI-compatible server answering after 200 ms.

Command (CPU; the clips are generated once into ``benchmarks/.cache/synth``, a few seconds)::

    python benchmarks/synth_throughput.py [--videos 48] [--seconds 15] [--latency 0.2]

Each concurrency level (1, 8, 32) runs the whole job (register + hash, frames at 1 fps, 3x3 grids, JPEG, request,
validation, SQLite commit) into a fresh store, with 2 frame-extraction threads and the near-duplicate pass off
(timed once on its own). The server is the test suite's ``ScriptedServer`` (``tests/synth_server.py``), every
answer valid. Columns: videos/min; per video, the mean time to extract frames and build the request (in the
extraction threads) and the mean time waiting for the server (in the request workers); "starved": the share of
request-worker time spent waiting for frames (high = extraction-bound, low = server-bound).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synth_server import ScriptedServer
from tempflex.synth.dedup import video_phash
from tempflex.synth.pipeline import SynthConfig, run_synthesis
from tempflex.synth.store import Store

CACHE = Path(__file__).parent / ".cache" / "synth"


def make_clip(path: Path, seed: int, seconds: int, width: int = 640, height: int = 360, fps: int = 25) -> Path:
    """A moving gradient with a per-seed tint, H.264 (libx264 ultrafast), written once."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.mp4")
    base = np.add.outer(np.arange(height), np.arange(width)).astype(np.uint16)  # [H, W]
    tint = np.random.default_rng(seed).integers(0, 256, 3).astype(np.uint16)
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
        for index in range(seconds * fps):
            grey = ((base + 4 * index) % 256)[..., None]  # [H, W, 1]
            frame = ((grey + tint) % 256).astype(np.uint8)  # [H, W, 3]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    partial.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=48)
    parser.add_argument("--seconds", type=int, default=15, help="length of each clip")
    parser.add_argument("--latency", type=float, default=0.2, help="server latency per request (s)")
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels")
    args = parser.parse_args()
    clips = [make_clip(CACHE / f"clip{i:03d}_{args.seconds}s.mp4", i, args.seconds) for i in range(args.videos)]
    print(f"{args.videos} clips of {args.seconds} s, 640x360 H.264; server latency {args.latency * 1000:.0f} ms; "
          "2 extraction threads")  # fmt: skip
    print(f"{'concurrency':>11} {'videos/min':>11} {'wall s':>7} {'extract s/video':>16} {'wait s/video':>13} "
          f"{'starved':>8}")  # fmt: skip
    with ScriptedServer(latency=args.latency) as server, tempfile.TemporaryDirectory() as folder:
        for level in [int(x) for x in args.levels.split(",")]:
            config = SynthConfig(base_url=server.base_url, model="bench", concurrency=level, extract_workers=2,
                                 near_dup_threshold=None)  # fmt: skip
            with Store(Path(folder) / f"c{level}.db") as store:
                report = run_synthesis(store, clips, {}, config)
            assert report.counts == {"done": args.videos}, report.counts
            starved = report.starved_seconds / (report.starved_seconds + report.request_seconds)
            print(f"{level:>11} {args.videos / report.wall_seconds * 60:>11.1f} {report.wall_seconds:>7.1f} "
                  f"{report.extract_seconds / args.videos:>16.3f} {report.request_seconds / args.videos:>13.3f} "
                  f"{starved:>7.0%}")  # fmt: skip
    begin = time.perf_counter()
    for clip in clips:
        video_phash(clip)
    print(f"near-duplicate pass (perceptual hash of 4 frames): {(time.perf_counter() - begin) / len(clips):.3f} "
          "s/video on one thread")  # fmt: skip


if __name__ == "__main__":
    main()
