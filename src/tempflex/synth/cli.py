"""``tempflex synth run | export | stats``: the command-line face of the synthesis pipeline.

Commands (the API key is read from the environment variable named by ``--api-key-env``, default OPENAI_API_KEY)::

    tempflex synth run --videos clips/ --metadata meta.jsonl --store synth.db \\
        --base-url https://api.openai.com/v1 --model gpt-4o --concurrency 16 --rpm 500 --tpm 200000
    # -> done 98, failed 1, duplicate 1; sent 99 videos in 131 requests; 1.2M tokens in, 80k out; $3.10
    tempflex synth export --store synth.db --format llava --out synth.jsonl
    tempflex synth stats --store synth.db --png stats.png

Killed at any point, ``run`` picks up where it stopped: run it again with the same arguments. One ``run`` at a
time per store: a second one exits with code 4 and names the store and the run holding it (pid), unless given
``--wait-for-lock`` (it then waits, and sends only what the first left to do).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["add_synth_commands"]


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    try:
        return int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard wants i/n (e.g. 0/4), got {text!r}") from None


def _run(args: argparse.Namespace) -> int:
    from tempflex.synth.client import EndpointError
    from tempflex.synth.inputs import find_videos, load_metadata
    from tempflex.synth.pipeline import SynthConfig, run_synthesis
    from tempflex.synth.prompt import FIGURE6_TEMPLATE, FIGURE7_TASKS, PromptSpec
    from tempflex.synth.store import Store, StoreLockedError

    spec = PromptSpec(
        template=Path(args.prompt_file).read_text() if args.prompt_file else FIGURE6_TEMPLATE,
        tasks=Path(args.tasks_file).read_text() if args.tasks_file else FIGURE7_TASKS,
    )
    config = SynthConfig(
        base_url=args.base_url, model=args.model, api_key=os.environ.get(args.api_key_env) or None, prompt=spec,
        concurrency=args.concurrency, extract_workers=args.extract_workers, requests_per_minute=args.rpm,
        tokens_per_minute=args.tpm, timeout=args.timeout, max_retries=args.max_retries, backoff=args.backoff,
        max_backoff=args.max_backoff, max_repairs=args.max_repairs, max_attempts=args.max_attempts,
        max_grids=args.max_grids, cell_width=args.cell_width,
        near_dup_threshold=None if args.near_dup_threshold < 0 else args.near_dup_threshold,
        price_input=args.price_input, price_output=args.price_output, max_tokens=args.max_tokens,
        temperature=args.temperature, shard=args.shard,
    )  # fmt: skip
    videos = find_videos(args.videos)
    metadata = load_metadata(args.metadata) if args.metadata else {}
    progress = None
    if not args.quiet:
        from tqdm import tqdm

        progress = tqdm(desc="videos", unit="video", file=sys.stderr)
    with Store(args.store) as store:
        try:
            report = run_synthesis(
                store, videos, metadata, config, on_video=None if progress is None else lambda _: progress.update(),
                wait_for_lock=args.wait_for_lock,
            )  # fmt: skip
        except EndpointError as error:
            print(f"tempflex synth run: the endpoint refuses requests, stopping: {error}", file=sys.stderr)
            return 3
        except StoreLockedError as error:
            print(f"tempflex synth run: {error}", file=sys.stderr)
            return 4
        finally:
            if progress is not None:
                progress.close()
    for line in report.skipped_inputs:
        print(f"skipped input {line}", file=sys.stderr)
    counts = ", ".join(f"{name} {count}" for name, count in sorted(report.counts.items()))
    print(
        f"prompt {spec.version}: {counts}; this run sent {report.sent} videos in {report.requests} requests, "
        f"{report.prompt_tokens} tokens in, {report.completion_tokens} out, ${report.cost:.4f}"
        + (f" (+ {report.unknown_usage} replies of unknown usage)" if report.unknown_usage else "")
        + "; "
        f"{report.wall_seconds:.1f} s (frames {report.extract_seconds:.1f} s, requests {report.request_seconds:.1f} s)"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from tempflex.synth.export import export_llava
    from tempflex.synth.store import Store

    if not Path(args.store).is_file():
        raise ValueError(f"store {args.store!r}: no such file")
    with Store(args.store) as store:
        counts = export_llava(store, args.out, prompt_version=args.prompt_version, media_root=args.media_root)
    print(f"wrote {counts['captions'] + counts['vqa']} samples ({counts['captions']} captions, {counts['vqa']} VQA) "
          f"from {counts['videos']} videos to {args.out}")  # fmt: skip
    return 0


def _stats(args: argparse.Namespace) -> int:
    from tempflex.synth.export import resolve_version
    from tempflex.synth.prompt import PromptSpec
    from tempflex.synth.stats import collect_stats, format_stats, plot_stats
    from tempflex.synth.store import Store

    if not Path(args.store).is_file():
        raise ValueError(f"store {args.store!r}: no such file")
    with Store(args.store) as store:
        version = resolve_version(store, args.prompt_version)
        default = PromptSpec()
        stats = collect_stats(store, version, dimensions=default.dimensions if version == default.version else ())
    print(format_stats(stats))
    if args.png:
        print(f"wrote {plot_stats(stats, args.png)}")
    return 0


def add_synth_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``synth`` and its subcommands to the ``tempflex`` parser's subcommands."""
    synth = commands.add_parser("synth", help="generate caption + VQA data from videos (TempFlex-2M method)")
    sub = synth.add_subparsers(dest="synth_command", required=True)
    run = sub.add_parser("run", help="run or resume a generation job against an OpenAI-compatible endpoint")
    run.add_argument("--videos", required=True, help="a folder of videos, a text file of paths, or one video")
    run.add_argument("--metadata", help="JSONL: {'video': name or path, 'title', 'tags', 'asr', 'activities', "
                     "'objects', 'summary', 'source'} per video")  # fmt: skip
    run.add_argument("--store", required=True, help="the job's SQLite file (created; reuse it to resume)")
    run.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
                     help="endpoint base URL, up to /v1 (default $OPENAI_BASE_URL or OpenAI)")  # fmt: skip
    run.add_argument("--model", required=True, help="model name sent to the endpoint, e.g. gpt-4o")
    run.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    run.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    run.add_argument("--extract-workers", type=int, default=2, help="threads decoding frames and drawing grids")
    run.add_argument("--rpm", type=float, help="requests per minute limit")
    run.add_argument("--tpm", type=float, help="tokens per minute limit (estimated before, settled after)")
    run.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    run.add_argument("--max-retries", type=int, default=6, help="retries per request (429, 5xx, timeouts)")
    run.add_argument("--backoff", type=float, default=1.0, help="first backoff in seconds (doubles per retry)")
    run.add_argument("--max-backoff", type=float, default=60.0, help="backoff cap in seconds")
    run.add_argument("--max-repairs", type=int, default=2, help="re-prompts after an invalid answer")
    run.add_argument("--max-attempts", type=int, default=3, help="runs that may retry a failed video")
    run.add_argument("--max-grids", type=int, default=8, help="3x3 grids per request (9 s of video each at 1 fps)")
    run.add_argument("--cell-width", type=int, default=320, help="grid cell width in pixels")
    run.add_argument("--near-dup-threshold", type=float, default=6.0,
                     help="mean dHash bits for a near-duplicate video; negative turns the check off")  # fmt: skip
    run.add_argument("--prompt-file", help="a prompt template with {task_definitions} (default: Figure 6)")
    run.add_argument("--tasks-file", help="task definitions, '# Name: ...' entries (default: Figure 7)")
    run.add_argument("--price-input", type=float, default=0.0, help="USD per million prompt tokens")
    run.add_argument("--price-output", type=float, default=0.0, help="USD per million completion tokens")
    run.add_argument("--max-tokens", type=int, default=4096, help="completion token cap per request")
    run.add_argument("--temperature", type=float, help="sampling temperature (endpoint default if unset)")
    run.add_argument("--shard", type=_shard, default=(0, 1), help="i/n: take only this shard of the videos")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--wait-for-lock", action="store_true",
                     help="if another run holds the store, wait for it (default: exit with code 4)")  # fmt: skip
    run.set_defaults(run=_run)
    export = sub.add_parser("export", help="write done videos as training data")
    export.add_argument("--store", required=True, help="the job's SQLite file")
    export.add_argument("--format", choices=["llava"], default="llava", help="output format")
    export.add_argument("--out", required=True, help="output JSONL")
    export.add_argument("--prompt-version", help="which prompt's results (default: the store's only one)")
    export.add_argument("--media-root", help="write video paths relative to this folder")
    export.set_defaults(run=_export)
    stats = sub.add_parser("stats", help="counts per dimension and per source (Figure 5), as a table and a PNG")
    stats.add_argument("--store", required=True, help="the job's SQLite file")
    stats.add_argument("--png", help="write the figure here")
    stats.add_argument("--prompt-version", help="which prompt's results (default: the store's only one)")
    stats.set_defaults(run=_stats)
