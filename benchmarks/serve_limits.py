"""Hostile requests against ``tempflex serve`` under its default limits: time and server memory of each refusal,
then 50 concurrent mixed requests that must all succeed.

Command (CPU, about a minute; the server runs in its own process with 1 torch thread)::

    python benchmarks/serve_limits.py

Prints one row per hostile request (the status, the seconds until the answer, the server's peak-RSS growth, and
the start of the error message) and a last row for 50 concurrent mixed requests (images, a video, text): how many
got 200, and the wall time. The requests are the ones a tester found costly before the limits existed
(``benchmarks/README.md`` lists their old cost).
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _png(width: int, height: int, flat: bool = True) -> bytes:
    if flat:
        image = Image.new("RGB", (width, height), (90, 140, 200))
    else:
        image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))


def _uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _clip(path: Path, seconds: int = 4, fps: int = 10) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for index in range(seconds * fps):
            frame = np.full((96, 160, 3), 30, np.uint8)
            frame[30:60, (4 * index) % 140 : (4 * index) % 140 + 20] = 220
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _post(url: str, body: dict, timeout: float = 600) -> tuple[int, dict]:
    request = urllib.request.Request(
        url + "/v1/chat/completions", json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _user(*parts: dict, text: str = "What is shown?", max_tokens: int = 4, **extra: object) -> dict:
    content = [*parts, {"type": "text", "text": text}]
    return {"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, **extra}


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        clip = _clip(folder / "clip.mp4")
        port = _free_port()
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "tempflex.cli", "serve", "--model", "tiny", "--port", str(port)]
        command += ["--allowed-media-dir", str(folder), "--max-body-mb", "64", "--max-tokens", "4096"]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    urllib.request.urlopen(url + "/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            video = {"type": "video_url", "video_url": {"url": str(clip)}}
            big_flat = {"type": "image_url", "image_url": {"url": _uri(_png(9950, 9950))}}  # 99 MP, tiny in bytes
            hostile = {
                "num_frames=10**9": _user(video, mm_processor_kwargs={"num_frames": 10**9}),
                "fps=30, max_frames=100000": _user(video, mm_processor_kwargs={"fps": 30, "max_frames": 100000}),
                "4 PNGs of 99 MP": _user(big_flat, big_flat, big_flat, big_flat),
                "a PNG header claiming 400 MP": _user(
                    {"type": "image_url", "image_url": {"url": _uri(_png_header(20000, 20000))}}
                ),
                "40k-token prompt": _user(text="word " * 40000),
                "9 images": _user(*[{"type": "image_url", "image_url": {"url": _uri(_png(64, 96))}}] * 9),
            }
            print(f"{'hostile request (defaults)':<34}{'status':>7}{'seconds':>9}{'peak RSS +MB':>14}  message")
            for name, body in hostile.items():
                before = _peak_rss_mb(server.pid)
                started = time.perf_counter()
                status, answer = _post(url, body)
                seconds = time.perf_counter() - started
                grown = _peak_rss_mb(server.pid) - before
                message = answer.get("error", {}).get("message", "")[:70]
                print(f"{name:<34}{status:>7}{seconds:>9.2f}{grown:>14.0f}  {message}")
            mixed = []
            for index in range(50):
                if index % 5 == 0:
                    mixed.append(_user(video, mm_processor_kwargs={"num_frames": 8}))
                elif index % 5 in (1, 2):
                    mixed.append(_user({"type": "image_url", "image_url": {"url": _uri(_png(96 + index, 128, False))}}))
                else:
                    mixed.append({"messages": [{"role": "user", "content": f"Say {index}."}], "max_tokens": 8})
            started = time.perf_counter()
            with ThreadPoolExecutor(50) as pool:
                statuses = [status for status, _ in pool.map(lambda b: _post(url, b), mixed)]
            seconds = time.perf_counter() - started
            print(f"{'50 concurrent mixed requests':<34}{statuses.count(200):>4}/50{seconds:>9.2f}"
                  f"{_peak_rss_mb(server.pid):>11.0f} MB peak")  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
