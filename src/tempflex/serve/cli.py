"""``tempflex chat`` and ``tempflex serve``: parsed arguments -> ``ChatSession`` / ``create_app``.

tempflex chat --model tiny --image cat.png "What is it?"     # one answer, streamed to stdout
tempflex chat --model tiny --video clip.mp4                  # interactive: the clip is encoded once
tempflex serve --model tiny --host 127.0.0.1 --port 8000     # OpenAI-compatible API + the page at /
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "run_chat", "run_serve"]


def add_arguments(chat: argparse.ArgumentParser, serve: argparse.ArgumentParser) -> None:
    """Declare the options of ``tempflex chat`` and ``tempflex serve``."""
    from tempflex.model_arguments import add_model_arguments

    for parser in (chat, serve):
        parser.add_argument("--model", required=True, help="a preset (tiny) or a saved TempFlex folder")
        parser.add_argument("--max-tokens", type=int, default=256, help="new tokens per answer (serve: the cap)")
        add_model_arguments(parser)
    chat.add_argument("question", nargs="?", help="ask once and exit; without it, chat interactively")
    chat.add_argument("--image", help="an image file for the (first) question")
    chat.add_argument("--video", help="a video file for the (first) question")
    chat.add_argument("--fps", type=float, help="video frames sampled per second (default 1)")
    chat.add_argument("--num-frames", type=int, help="sample exactly this many video frames instead of --fps")
    chat.add_argument("--temperature", type=float, default=0.0, help="0 (default) for greedy decoding")
    chat.add_argument("--no-visual-cache", action="store_true", help="re-encode the media on every turn")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--name", help="the model name clients pass (default: --model)")
    serve.add_argument("--allowed-media-dir", help="allow file:// URLs and paths inside this folder only")
    serve.add_argument("--allow-remote-media", action="store_true", help="fetch http(s) media (public hosts only)")
    serve.add_argument("--max-remote-mb", type=float, default=64.0, help="size cap of one fetched media file")
    serve.add_argument("--remote-timeout", type=float, default=20.0, help="seconds allowed for one media fetch")
    serve.add_argument("--max-body-mb", type=float, default=32.0, help="request body size limit (413 above)")
    serve.add_argument("--max-queue", type=int, default=64, help="requests waiting for the model (503 above)")
    limits = serve.add_argument_group("per-request limits (400 above; defaults sized from the model)")
    limits.add_argument("--max-images", type=int, help="images per request (default 8)")
    limits.add_argument("--max-videos", type=int, help="videos per request (default 2)")
    limits.add_argument("--max-image-pixels", type=int, help="source pixels of one image (default 4096x4096)")
    limits.add_argument("--max-frame-pixels", type=int, help="source pixels of one video frame (default 3840x2160)")
    limits.add_argument("--max-frames", type=int, help="frames sampled per video (default: the processor's, 64)")
    limits.add_argument("--max-decoded-mb", type=float, help="decoded RGB media per request (default 1024)")
    limits.add_argument("--max-visual-tokens", type=int, help="visual tokens per request (default: half the context)")
    limits.add_argument("--max-context", type=int, help="prompt + max_tokens (default: the LLM's context)")


def run_chat(args: argparse.Namespace) -> int:
    """One question, or an interactive loop (empty line or EOF ends it); prints the answers as they stream."""
    from tempflex.serve.engine import Engine, GenerationParams
    from tempflex.serve.session import ChatSession

    options = {key: value for key, value in (("fps", args.fps), ("nframes", args.num_frames)) if value is not None}
    session = ChatSession(
        Engine.load(args.model, device=args.device, dtype=args.dtype), use_cache=not args.no_visual_cache, **options
    )
    params = GenerationParams(max_tokens=args.max_tokens, temperature=args.temperature)
    media = {"image": args.image, "video": args.video}

    def answer(question: str) -> None:
        result = session.ask(question, params=params, on_text=lambda piece: print(piece, end="", flush=True), **media)
        media.update(image=None, video=None)
        print(f"\n[{result.completion_tokens} tokens, {result.finish_reason}]", file=sys.stderr)

    if args.question is not None:
        answer(args.question)
        return 0
    print("tempflex chat: type a question, an empty line to quit", file=sys.stderr)
    while True:
        try:
            question = input("> ").strip()
        except EOFError:
            return 0
        if not question:
            return 0
        answer(question)


def run_serve(args: argparse.Namespace) -> int:
    """Load the model and serve the API and the page until interrupted."""
    from tempflex.serve.app import create_app, serve
    from tempflex.serve.engine import Engine
    from tempflex.serve.media_policy import MediaPolicy

    allowed = Path(args.allowed_media_dir) if args.allowed_media_dir else None
    if allowed is not None and not allowed.is_dir():
        raise ValueError(f"--allowed-media-dir {args.allowed_media_dir!r} is not a folder")
    policy = MediaPolicy(
        allowed_dir=allowed,
        allow_remote=args.allow_remote_media,
        max_remote_bytes=int(args.max_remote_mb * 1024 * 1024),
        remote_timeout=args.remote_timeout,
    )
    from tempflex.serve.limits import ServerLimits

    engine = Engine.load(args.model, name=args.name, device=args.device, dtype=args.dtype)
    limits = ServerLimits.for_model(
        engine.model, engine.processor, max_images=args.max_images, max_videos=args.max_videos,
        max_image_pixels=args.max_image_pixels, max_frame_pixels=args.max_frame_pixels, max_frames=args.max_frames,
        max_visual_tokens=args.max_visual_tokens, max_context=args.max_context,
        max_decoded_bytes=int(args.max_decoded_mb * 1024 * 1024) if args.max_decoded_mb else None,
    )  # fmt: skip
    app = create_app(
        engine,
        policy=policy,
        limits=limits,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_tokens_limit=args.max_tokens,
        max_pending=args.max_queue,
    )
    serve(app, args.host, args.port)
    return 0
