"""Hostile requests against a real server on 127.0.0.1: every per-request limit answers 400 naming itself before the
expensive work, a full queue answers 503 with Retry-After, a client that leaves cancels its request, and the
low-severity abuses get their 4xx (chunked body over the limit, a NUL byte in a path, a seed beyond 64 bits)."""

from __future__ import annotations

import http.client
import io
import json
import socket
import struct
import threading
import time
import zlib
from urllib.parse import urlsplit

import pytest
import torch
from PIL import Image

from serving import data_uri, png_bytes, running
from tempflex.serve.app import create_app
from tempflex.serve.engine import Engine
from tempflex.serve.limits import ServerLimits
from tempflex.serve.media_policy import MediaPolicy
from video_files import encode_video

LIMITS = ServerLimits(max_images=2, max_videos=1, max_frames=8, max_visual_tokens=100, max_context=400)


class RecordingEngine(Engine):
    """The tiny engine, recording how each generation ended."""

    def __init__(self, model, processor, name):
        super().__init__(model, processor, name)
        self.ended: list[tuple[str, int]] = []

    def generate(self, *args, **kwargs):
        completion = super().generate(*args, **kwargs)
        self.ended.append((completion.finish_reason, completion.completion_tokens))
        return completion


@pytest.fixture(scope="module")
def engine():
    torch.manual_seed(0)
    loaded = Engine.load("tiny")
    return RecordingEngine(loaded.model, loaded.processor, "tiny")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return encode_video(tmp_path_factory.mktemp("media") / "clip.mp4", 40, fps=10)


@pytest.fixture(scope="module")
def server(engine, clip):
    policy = MediaPolicy(allowed_dir=clip.parent)
    app = create_app(engine, policy=policy, max_body_bytes=1 << 20, max_tokens_limit=4000, limits=LIMITS)
    with running(app) as url:
        yield url


def post(url: str, body: dict | bytes, *, timeout: float = 60) -> tuple[int, dict, dict]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection.request("POST", "/v1/chat/completions", payload, {"content-type": "application/json"})
    response = connection.getresponse()
    data = json.loads(response.read() or b"{}")
    headers = dict(response.getheaders())
    connection.close()
    return response.status, data, headers


def video_body(clip, **knobs) -> dict:
    content = [{"type": "video_url", "video_url": {"url": str(clip)}}, {"type": "text", "text": "What happens?"}]
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 2, "mm_processor_kwargs": knobs}


def image_body(*images: bytes, text: str = "What?", max_tokens: int = 2) -> dict:
    parts = [{"type": "image_url", "image_url": {"url": data_uri(image, "image/png")}} for image in images]
    return {
        "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}],
        "max_tokens": max_tokens,
    }


def flat_png(height: int, width: int) -> bytes:
    """A one-colour PNG: large in pixels, small in bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 140, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` and which holds no pixel data: only a size check can pass it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"num_frames": 10**7}, "10000000 frames asked, above the limit of 8 (tempflex serve --max-frames)"),
        ({"fps": 30, "max_frames": 100000}, "100000 frames asked, above the limit of 8"),
    ],
)
def test_frame_requests_beyond_the_limit_are_refused_at_once(server, clip, knobs, message):
    started = time.monotonic()
    status, data, _ = post(server, video_body(clip, **knobs))
    assert status == 400 and message in data["error"]["message"]
    assert data["error"]["code"] == "limit_exceeded"
    assert time.monotonic() - started < 2.0


def test_an_fps_request_is_capped_at_the_frame_limit(server, clip, engine):
    status, data, _ = post(server, video_body(clip, fps=30))  # 4 s at 30 fps would be 120 frames
    assert status == 200, data
    tokens_per_frame = data["usage"]["prompt_tokens_details"]["video_tokens"]
    status, one, _ = post(server, video_body(clip, num_frames=8))
    assert tokens_per_frame == one["usage"]["prompt_tokens_details"]["video_tokens"]  # 8 frames, as the cap


def test_a_huge_image_is_refused_from_its_header(server):
    started = time.monotonic()
    status, data, _ = post(server, image_body(png_header_only(6000, 6000)))
    assert status == 400 and "36000000 image pixels, above the limit of 16777216" in data["error"]["message"]
    status, data, _ = post(server, image_body(png_header_only(20000, 20000)))  # beyond PIL's own bomb check too
    assert status == 400 and "400000000 image pixels, above the limit of 16777216" in data["error"]["message"]
    assert time.monotonic() - started < 2.0


def test_media_counts_visual_tokens_and_context_are_limited(server, clip):
    small = png_bytes(64, 96)  # 6 visual tokens each
    status, data, _ = post(server, image_body(small, small, small))
    assert status == 400 and "3 images in the request, above the limit of 2" in data["error"]["message"]
    body = video_body(clip, num_frames=2)
    body["messages"][0]["content"].insert(0, body["messages"][0]["content"][0])
    status, data, _ = post(server, body)
    assert status == 400 and "2 videos in the request, above the limit of 1" in data["error"]["message"]
    status, data, _ = post(server, image_body(flat_png(512, 512)))
    assert status == 400 and "visual tokens, above the 100-token limit" in data["error"]["message"]
    status, data, _ = post(server, image_body(text="word " * 500))
    assert status == 400 and data["error"]["code"] == "context_length_exceeded"
    assert "above the model's 400-token context" in data["error"]["message"]
    status, data, _ = post(server, image_body(text="Hi", max_tokens=390))
    assert status == 400 and data["error"]["param"] == "max_tokens"


def test_decoded_bytes_are_limited_from_the_headers(engine, clip):
    tight = ServerLimits(max_decoded_bytes=100_000)  # the 64x128 clip: 24,576 bytes a frame
    with running(create_app(engine, policy=MediaPolicy(allowed_dir=clip.parent), limits=tight)) as url:
        status, data, _ = post(url, video_body(clip, num_frames=4))
        assert status == 200, data
        status, data, _ = post(url, video_body(clip, num_frames=5))
    assert status == 400 and "122880 bytes of decoded media, above the limit of 100000" in data["error"]["message"]


def test_a_full_queue_answers_503_with_retry_after(engine):
    with running(create_app(engine, max_pending=0, limits=LIMITS)) as url:
        status, data, headers = post(url, image_body(text="Hi"))
    assert status == 503 and data["error"]["code"] == "queue_full"
    assert headers.get("retry-after", headers.get("Retry-After")) == "5"


def test_a_client_that_leaves_cancels_its_non_streamed_request(engine):
    talker = RecordingEngine(engine.model, engine.processor, "tiny")
    talker.stop_ids = (10**6,)  # no end of turn: the random model would otherwise stop within a few tokens
    engine = talker
    body = json.dumps({"messages": [{"role": "user", "content": "Tell a long story."}], "max_tokens": 3000}).encode()
    with running(create_app(engine, max_tokens_limit=4000)) as url:
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname, parts.port)) as raw:
            raw.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            time.sleep(1.0)
        deadline = time.monotonic() + 60
        while not engine.ended and time.monotonic() < deadline:
            time.sleep(0.1)
    reason, tokens = engine.ended[-1]
    assert reason == "cancelled" and tokens < 3000


def test_low_severity_abuses_get_their_status(server):
    parts = urlsplit(server)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    chunks = (b"x" * 65536 for _ in range(40))  # 2.5 MB in chunks, no content-length
    connection.request("POST", "/v1/chat/completions", chunks, {"content-type": "application/json"},
                       encode_chunked=True)  # fmt: skip
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["error"]["code"] == "request_too_large"
    connection.close()
    nul = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "/tmp/a\x00.png"}}]}]}
    status, data, _ = post(server, nul)
    assert status == 400 and "NUL byte" in data["error"]["message"]
    status, data, _ = post(server, {"messages": [{"role": "user", "content": "Hi"}], "seed": 2**64})
    assert status == 400 and data["error"]["param"] == "seed"


def test_defaults_are_sized_from_the_model(engine):
    limits = ServerLimits.for_model(engine.model, engine.processor)
    assert limits.max_frames == engine.processor.max_video_frames == 64
    assert limits.max_context == engine.model.config.text_config.max_position_embeddings
    assert limits.max_visual_tokens == limits.max_context // 2
    assert ServerLimits.for_model(engine.model, engine.processor, max_frames=16, max_images=None).max_frames == 16


def test_concurrent_mixed_requests_all_succeed_under_limits(server, clip):
    bodies = [image_body(png_bytes(64, 96, seed=i)) if i % 3 else video_body(clip, num_frames=4) for i in range(12)]
    results = []
    threads = [threading.Thread(target=lambda b=b: results.append(post(server, b)[0])) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == [200] * len(bodies)
