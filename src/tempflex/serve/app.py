"""``create_app``: the OpenAI-compatible FastAPI app, and ``serve`` to run it with uvicorn.

Routes:

- ``POST /v1/chat/completions``: OpenAI's schema (see ``protocol``); ``"stream": true`` answers with server-sent
  events (``chat.completion.chunk`` objects, then ``data: [DONE]``); ``usage`` gives prompt, completion and
  visual tokens (in a last chunk with ``stream_options.include_usage``);
- ``GET /v1/models``, ``GET /health``;
- ``POST /v1/tempflex/preview``: the same body -> the sampled frames (small JPEG data URIs, as the model sees them
  after resizing) and the token counts, without generating; the web page uses it;
- ``GET /``: the single-page web chat (``static/index.html``, no build step).

Limits: a request body above ``max_body_bytes`` is refused with 413 (declared or chunked); what one request may
cost in media and tokens is ``limits.ServerLimits`` (400 naming the limit, before decoding); a full queue answers
503 with ``Retry-After``; a client that leaves cancels its request, streamed or not. Errors come in OpenAI's format
``{"error": {"message", "type", "param", "code"}}``. Model work runs on ``GenerationQueue``'s
thread, never on the event loop.

Run it::

    tempflex serve --model tiny --host 127.0.0.1 --port 8000
    curl -s localhost:8000/v1/chat/completions -H 'content-type: application/json' \\
        -d '{"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}'
    # -> {"id": "chatcmpl-...", "object": "chat.completion", "choices": [...], "usage": {...}}
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from tempflex.media import MediaError
from tempflex.serve.engine import Engine, GenerationParams, Prepared
from tempflex.serve.errors import RequestError
from tempflex.serve.limits import ServerLimits
from tempflex.serve.media_policy import MediaPolicy
from tempflex.serve.protocol import (
    chunk_body,
    completion_body,
    new_completion_id,
    parse_conversation,
    parse_params,
    usage_body,
)
from tempflex.serve.queue import GenerationQueue

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as error:  # pragma: no cover - the message is the point
    raise ImportError("the TempFlex server needs the serve extra: pip install 'tempflex[serve]'") from error

__all__ = ["BodySizeLimit", "create_app", "serve"]


class BodySizeLimit:
    """ASGI middleware: a 413 in OpenAI's format for a body above ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, int(declared))
            return
        # Read the whole body here, at most max_bytes of it, then replay it: a body over the limit gets its 413
        # before the app sees a byte, whether it was declared or sent in chunks.
        chunks, received = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > self.max_bytes:
                await self._refuse(send, received)
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: disconnect notices, as the server sends them

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any, size: int) -> None:
        error = RequestError(
            413, f"the request body is over the {self.max_bytes}-byte limit ({size} bytes); send smaller media "
            "or start the server with a larger --max-body-mb", code="request_too_large",
        )  # fmt: skip
        payload = json.dumps(error.body()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _error_response(error: RequestError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _frames_preview(prepared: Prepared, processor: Any, max_side: int = 160) -> list[dict]:
    """The frames the model sees (un-normalised from its patches) as small JPEG data URIs."""
    import numpy as np
    from PIL import Image

    patch = processor.patch_size
    mean, std = np.array(processor.image_mean), np.array(processor.image_std)
    frames = []
    for pixels_key, grid_key, kind in (
        ("pixel_values", "image_grid_thw", "image"),
        ("pixel_values_videos", "video_grid_thw", "video"),
    ):
        if pixels_key not in prepared.inputs:
            continue
        pixels = prepared.inputs[pixels_key].float().numpy()
        offset = 0
        for clip, (count, rows, cols) in enumerate(prepared.inputs[grid_key].tolist()):
            size = count * rows * cols
            patches = pixels[offset : offset + size].reshape(count, rows, cols, patch, patch, 3)  # [F, h, w, p, p, C]
            offset += size
            images = patches.transpose(0, 1, 3, 2, 4, 5).reshape(count, rows * patch, cols * patch, 3)  # [F, H, W, C]
            images = np.clip((images * std + mean) * 255, 0, 255).astype(np.uint8)
            for index, array in enumerate(images):
                image = Image.fromarray(array)
                image.thumbnail((max_side, max_side))
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=80)
                uri = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
                frames.append({"kind": kind, "clip": clip, "frame": index, "grid": [count, rows, cols], "url": uri})
    return frames


def create_app(
    engine: Engine,
    *,
    policy: MediaPolicy | None = None,
    max_body_bytes: int = 32 * 1024 * 1024,
    max_tokens_limit: int = 2048,
    max_pending: int = 64,
    limits: ServerLimits | None = None,
) -> Any:
    """The ASGI app serving ``engine`` (wrapped in ``BodySizeLimit``); ``limits`` default to the model's."""
    policy = policy or MediaPolicy()
    limits = limits or ServerLimits.for_model(engine.model, engine.processor)
    queue = GenerationQueue(max_pending=max_pending)
    app = FastAPI(title="TempFlex", docs_url=None, redoc_url=None)
    app.state.engine, app.state.queue = engine, queue
    app.router.add_event_handler("shutdown", queue.close)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError) -> JSONResponse:
        return _error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error_response(RequestError(error.status_code, f"{request.method} {request.url.path}: {error.detail}"))

    async def read_body(request: Request) -> dict:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RequestError(400, f"the request body is not valid JSON: {error}") from error
        if not isinstance(body, dict):
            raise RequestError(400, "the request body must be a JSON object")
        model = body.get("model")
        if model is not None and model != engine.name:
            raise RequestError(404, f"model {model!r} is not served here; use {engine.name!r}", param="model",
                               code="model_not_found")  # fmt: skip
        return body

    def prepare(body: dict, max_tokens: int) -> Prepared:
        conversation = limits.check_conversation(parse_conversation(body, policy))  # from headers, before decoding
        try:
            prepared = engine.prepare(conversation)
        except MediaError as error:
            raise RequestError(400, f"cannot read the media: {error}", param="messages", code="bad_media") from error
        except ValueError as error:  # e.g. a clip too short for the asked frame count
            raise RequestError(400, str(error), param="messages") from error
        limits.check_tokens(prepared.prompt_tokens, prepared.visual_tokens, max_tokens)
        return prepared

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": engine.name, "queued": queue.pending}

    @app.get("/v1/models")
    async def models() -> dict:
        entry = {"id": engine.name, "object": "model", "created": 0, "owned_by": "tempflex"}
        return {"object": "list", "data": [entry]}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return resources.files("tempflex.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.post("/v1/tempflex/preview")
    async def preview(request: Request) -> dict:
        body = await read_body(request)
        prepared = await queue.run_media(prepare, body, 0)
        frames = await queue.run_media(_frames_preview, prepared, engine.processor)
        return {"usage": usage_body(prepared, 0), "frames": frames}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        body = await read_body(request)
        params = parse_params(body, max_tokens_limit=max_tokens_limit)
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise RequestError(400, f"stream must be true or false, got {stream!r}", param="stream")
        prepared = await queue.run_media(prepare, body, params.max_tokens)
        if not stream:
            gone = threading.Event()  # a client that leaves cancels its request, waiting or generating
            job = asyncio.ensure_future(
                queue.run_model(lambda: engine.generate(prepared.inputs, params, cancelled=gone.is_set))
            )
            while not job.done():
                await asyncio.wait({job}, timeout=0.25)
                if not job.done() and await request.is_disconnected():
                    gone.set()
            completion = job.result()
            return completion_body(engine.name, prepared, completion)
        options = body.get("stream_options") or {}
        include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
        return StreamingResponse(
            _stream(engine, queue, prepared, params, include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return BodySizeLimit(app, max_body_bytes)


async def _stream(
    engine: Engine, queue: GenerationQueue, prepared: Prepared, params: GenerationParams, include_usage: bool
) -> AsyncIterator[str]:
    """Server-sent events of one completion; a client that goes away cancels its generation."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()
    gone = threading.Event()
    chunk_id = new_completion_id()

    def on_text(piece: str) -> None:
        loop.call_soon_threadsafe(pieces.put_nowait, piece)

    def event(payload: dict) -> str:
        return f"data: {json.dumps(payload)}\n\n"

    job = asyncio.ensure_future(
        queue.run_model(lambda: engine.generate(prepared.inputs, params, on_text=on_text, cancelled=gone.is_set))
    )
    job.add_done_callback(lambda _: loop.call_soon_threadsafe(pieces.put_nowait, None))
    try:
        yield event(chunk_body(chunk_id, engine.name, {"role": "assistant", "content": ""}))
        while (piece := await pieces.get()) is not None:
            yield event(chunk_body(chunk_id, engine.name, {"content": piece}))
        try:
            completion = job.result()
        except RequestError as error:  # the queue was full: the stream has begun, so say it in the stream
            yield event(error.body())
            return
        reason = "length" if completion.finish_reason == "length" else "stop"
        yield event(chunk_body(chunk_id, engine.name, {}, reason))
        if include_usage:
            final = chunk_body(chunk_id, engine.name, {})
            final["choices"], final["usage"] = [], usage_body(prepared, completion.completion_tokens)
            yield event(final)
        yield "data: [DONE]\n\n"
    finally:
        gone.set()


def serve(app: Any, host: str, port: int) -> None:
    """Run ``app`` with uvicorn until interrupted."""
    import uvicorn

    started = time.monotonic()
    uvicorn.run(app, host=host, port=port, log_level="info")
    print(f"server stopped after {time.monotonic() - started:.0f} s")
