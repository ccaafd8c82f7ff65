"""Test helpers for the synthesis pipeline: a real OpenAI-compatible HTTP server on 127.0.0.1, and distinct videos.

``ScriptedServer(script, latency=0.0)`` serves ``POST /v1/chat/completions`` from a thread on a free port. Each
request takes the next action of ``script`` (a list; ``"valid"`` once it is used up), or ``script(key, n)`` when it
is a function (``key``: the video, ``n``: how many requests that video made before). Actions:

- ``"valid"``: a correct answer, a pure function of the images and text sent (so reruns get the same answer);
- ``"invalid_json"``, ``"wrong_count"`` (4 pairs of type 1), ``"unknown_dimension"``, ``"empty_answer"``;
- ``("429", seconds)``: Too Many Requests with ``Retry-After``; ``"500"``; ``("slow", seconds)``: sleep, then
  answer (past the client's timeout); ``"drop"``: close the connection without a response; ``"401"``;
- ``("bad_usage", usage)``: a correct answer whose ``usage`` is ``usage`` as given (``NO_USAGE``: no such key).

``server.log`` lists ``(key, action)`` per request, in arrival order; ``server.bodies`` the request bodies.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np

from tempflex.synth.prompt import PromptSpec

DIMENSIONS = PromptSpec().dimensions
NO_USAGE = object()
"""For ``("bad_usage", NO_USAGE)``: the reply has no ``usage`` key at all."""


def request_key(body: dict) -> str:
    """The video a request is about: a hash of the first user turn (metadata text and grid images)."""
    first_user = next(m for m in body["messages"] if m["role"] == "user")
    return hashlib.sha256(json.dumps(first_user["content"], sort_keys=True).encode()).hexdigest()[:12]


def valid_answer(key: str) -> dict:
    """A correct answer derived from the key: 5 + 5 pairs over 10 different dimensions."""
    start = int(key[:4], 16) % len(DIMENSIONS)
    dims = [DIMENSIONS[(start + i) % len(DIMENSIONS)] for i in range(10)]
    pairs = [{"dimension": d, "question": f"Question {i} about {key}?", "answer": f"Answer {i}."} for i, d in
             enumerate(dims)]  # fmt: skip
    return {"caption": f"Video {key} shows a pattern. It changes over time.", "vqa_type1": pairs[:5],
            "vqa_type2": pairs[5:]}  # fmt: skip


def _content(action: str, key: str) -> str:
    answer = valid_answer(key)
    if action == "invalid_json":
        return "Sure! Here is the JSON: {caption: oops"
    if action == "wrong_count":
        answer["vqa_type1"] = answer["vqa_type1"][:4]
    elif action == "unknown_dimension":
        answer["vqa_type2"][0]["dimension"] = "Smell Recognition"
    elif action == "empty_answer":
        answer["vqa_type1"][2]["answer"] = "  "
    return "```json\n" + json.dumps(answer) + "\n```"


class ScriptedServer:
    """A scripted chat-completions server in a daemon thread; use as a context manager."""

    def __init__(self, script: list | object = (), latency: float = 0.0) -> None:
        self.script = script if callable(script) else list(script)
        self.latency = latency
        self.log: list[tuple[str, str]] = []
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                key = request_key(body)
                action = server._next(key, body)
                time.sleep(server.latency)
                kind = action[0] if isinstance(action, tuple) else action
                if kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if kind == "429":
                    return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": str(action[1])})
                if kind in ("500", "401"):
                    return self._send(int(kind), {"error": {"message": f"scripted {kind}"}})
                if kind == "slow":
                    time.sleep(action[1])
                content = _content("valid" if kind in ("slow", "bad_usage") else kind, key)
                usage = {"prompt_tokens": len(json.dumps(body)) // 4, "completion_tokens": len(content) // 4}
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                reply = {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"], "choices": [choice],
                         "usage": usage}  # fmt: skip
                if kind == "bad_usage":
                    if action[1] is NO_USAGE:
                        del reply["usage"]
                    else:
                        reply["usage"] = action[1]
                return self._send(200, reply)

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout): nothing to do
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def _next(self, key: str, body: dict) -> object:
        with self._lock:
            self.bodies.append(body)
            count = self._counts.get(key, 0)
            self._counts[key] = count + 1
            if callable(self.script):
                action = self.script(key, count)
            else:
                action = self.script.pop(0) if self.script else "valid"
            self.log.append((key, action if isinstance(action, str) else action[0]))
        return action

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def encode_pattern_video(
    path: Path, seed: int, *, seconds: int = 3, fps: int = 5, size: tuple[int, int] = (48, 64), quality: int = 4
) -> Path:
    """A video of a random block pattern (one per seed) drifting one block per frame; ``size`` and ``quality``
    (mpeg4 qscale) change the bytes, not the picture, so two encodings of a seed are near-duplicates."""
    rng = np.random.default_rng(seed)
    pattern = rng.integers(0, 2, (6, 8 + seconds * fps)).astype(np.uint8) * 255  # [rows, cols] of blocks
    height, width = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
        stream.bit_rate = quality * 50_000
        stream.codec_context.time_base = Fraction(1, fps)
        for index in range(seconds * fps):
            blocks = pattern[:, index : index + 8]  # [6, 8] window
            picture = np.kron(blocks, np.ones((height // 6, width // 8), np.uint8))  # [H, W]
            frame = av.VideoFrame.from_ndarray(np.repeat(picture[..., None], 3, axis=2), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
