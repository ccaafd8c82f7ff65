"""Video decoding: our ``load_video`` against decord and PyAV decode-all, and peak memory on a long clip.

Command (CPU; the clips are generated once into ``benchmarks/.cache``, about 2 minutes the first time)::

    python benchmarks/video_decode.py

Table 1: 64 frames sampled evenly from a 30 s 640x360 H.264 clip (30 fps), median of 3, each method in the
same run: ``load_video(num_frames=64)`` on each backend; decord's ``VideoReader.get_batch`` of the same 64
indices; PyAV decoding every frame to RGB and keeping 64. Goal: ours <= 1.2x decord.

Table 2: peak resident memory above the process's memory before decoding (each run in a fresh process;
the 64 frames alone are 398 MB) sampling 64 frames from a 10-minute 1920x1080 H.264 clip (10 fps, keyframe
every 10 s). Goal: under 1 GB.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np

CACHE = Path(__file__).parent / ".cache"


def make_clip(path: Path, seconds: int, fps: int, width: int, height: int, keyframe_every: int) -> Path:
    """A moving gradient, H.264 (libx264 ultrafast), written once."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.mp4")
    base = np.add.outer(np.arange(height), np.arange(width)).astype(np.uint16)
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(keyframe_every)}
        for index in range(seconds * fps):
            level = ((base + 4 * index) % 256).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.stack([level, level[::-1], level[:, ::-1]], axis=-1), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    partial.rename(path)
    return path


def even_indices(count: int, keep: int) -> list[int]:
    return np.linspace(0, count - 1, keep).round().astype(int).tolist()


def ours(path: str, backend: str) -> int:
    from tempflex.media import load_video

    return len(load_video(path, num_frames=64, backend=backend).frames)


def decord_batch(path: str) -> int:
    import decord

    reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=0)
    return len(reader.get_batch(even_indices(len(reader), 64)).asnumpy())


def pyav_decode_all(path: str) -> int:
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return len([frames[i] for i in even_indices(len(frames), 64)])


METHODS = {
    "load_video (pyav)": lambda p: ours(p, "pyav"),
    "load_video (decord)": lambda p: ours(p, "decord"),
    "decord get_batch": decord_batch,
    "PyAV decode all": pyav_decode_all,
}


def resident_kb() -> int:
    """The current resident set size (VmRSS) of this process, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_memory_child(method: str, path: str) -> None:
    """Run one method in this (fresh) process; print the peak RSS above the RSS before it, in MB, as JSON."""
    import decord  # noqa: F401  (imports first, so that only the decoding is measured)

    import tempflex.media  # noqa: F401

    before = resident_kb()
    start = time.perf_counter()
    kept = METHODS[method](path)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    print(json.dumps({"kept": kept, "seconds": seconds, "peak_mb": (peak - before) / 1024}))


def available(method: str) -> bool:
    import importlib.util

    return "decord" not in method or importlib.util.find_spec("decord") is not None


def main() -> None:
    short = make_clip(CACHE / "30s_640x360.mp4", 30, 30, 640, 360, keyframe_every=250)
    print(f"PyAV {av.__version__}; 64 frames from {short.name} (900 frames), median of 3")
    print(f"{'method':<22}{'seconds':>10}{'vs decord':>12}")
    results = {}
    for name, method in METHODS.items():
        if not available(name):
            print(f"{name:<22}{'not installed':>22}")
            continue
        method(str(short))  # warm-up
        times = []
        for _ in range(3):
            start = time.perf_counter()
            assert method(str(short)) == 64
            times.append(time.perf_counter() - start)
        results[name] = statistics.median(times)
    base = results.get("decord get_batch")
    for name, seconds in results.items():
        ratio = f"{seconds / base:>11.2f}x" if base else f"{'-':>12}"
        print(f"{name:<22}{seconds:>10.3f}{ratio}")
    if base:
        best = min(results["load_video (pyav)"], results.get("load_video (decord)", float("inf")))
        print(f"goal: load_video <= 1.2x decord -> {best / base:.2f}x {'(met)' if best / base <= 1.2 else '(NOT met)'}")

    long = make_clip(CACHE / "10min_1080p.mp4", 600, 10, 1920, 1080, keyframe_every=100)
    print(f"\nPeak memory, 64 frames from {long.name} (6000 frames 1920x1080), each in a fresh process")
    print(f"{'method':<22}{'peak MB':>10}{'seconds':>10}")
    for name in ("load_video (pyav)", "load_video (decord)", "decord get_batch"):
        if not available(name):
            continue
        output = subprocess.run(
            [sys.executable, __file__, "--child", name, str(long)], capture_output=True, text=True, check=True
        ).stdout
        report = json.loads(output.strip().splitlines()[-1])
        print(f"{name:<22}{report['peak_mb']:>10.0f}{report['seconds']:>10.2f}")
    print("goal: load_video under 1024 MB")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        peak_memory_child(sys.argv[2], sys.argv[3])
    else:
        main()
