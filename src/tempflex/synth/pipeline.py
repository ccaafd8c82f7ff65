"""``run_synthesis``: videos (+ metadata) -> caption + VQA per video in the store; resumable and fault-tolerant.

Steps, each safe to interrupt at any moment (kill -9 included) and to run again:

1. Register: hash each file's content (the video id; cached by path, size and mtime), keep this shard's
   (``shard=(i, n)``: ids with ``int(id[:8], 16) % n == i``), add a pending row per (video id, prompt version).
2. Near-duplicates: a perceptual hash of a few frames per video (``dedup.video_phash``, stored once); videos close
   to one kept earlier (done ones first, then registration order) become ``duplicate`` and are not sent.
3. Generate: ``extract_workers`` threads decode 1 fps frames (``tempflex.media.load_video``; at most
   ``max_grids * 9``, spread evenly beyond that, the prompt then says at which seconds), stitch them into 3x3
   grids and JPEG data URIs, off the event loop; ``concurrency`` asyncio workers send requests
   (``ChatClient``: rate limits, retries), validate (``validate_output``), re-prompt with the reason on an
   invalid answer (``max_repairs`` times), and commit the result, or the failure and its reason, per video.

A rerun sends only pending videos and retryable failures with attempts left (``max_attempts``); a done video is
never sent again, and a result is written once. A video that cannot be decoded fails alone (not retried); an
endpoint that refuses every request (401/403/404) stops the job with ``EndpointError`` and leaves the rest pending.

Never two runs on one store: a run holds the store's exclusive run lock (``Store.run_lock``, an OS file lock on
``<store>.lock``) from registration to the end, so a second run started meanwhile is refused with
``StoreLockedError`` naming the store and the holder's pid, or, with ``wait_for_lock=True``, waits and then sends
only what is still to do: no video is paid for twice. A run killed with ``kill -9`` leaves no lock behind.

A reply with a missing or malformed ``usage`` keeps its answer; its tokens and cost are unknown and counted as such
(``RunReport.unknown_usage``, ``VideoRow.unknown_usage``), never guessed, and the run goes on.

Example (against a local vLLM serving a vision model)::

    config = SynthConfig(base_url="http://127.0.0.1:8000/v1", model="Qwen/Qwen2.5-VL-7B-Instruct")
    with Store("synth.db") as store:
        report = run_synthesis(store, find_videos("clips/"), {}, config)
    report.counts     # -> {'done': 98, 'failed': 1, 'duplicate': 1}
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tempflex.media import MediaError, load_video
from tempflex.synth.client import ChatClient, EndpointError, RequestFailedError
from tempflex.synth.dedup import content_hash, near_duplicates, video_phash
from tempflex.synth.grids import GRID_SIDE, grid_data_uris, stitch_grids
from tempflex.synth.inputs import metadata_for
from tempflex.synth.prompt import PromptSpec
from tempflex.synth.ratelimit import RateLimiter
from tempflex.synth.schema import InvalidOutputError, validate_output
from tempflex.synth.store import Store, StoreLockedError, VideoRow

__all__ = ["RunReport", "StoreLockedError", "SynthConfig", "prepare_request_images", "run_synthesis"]

logger = logging.getLogger(__name__)


@dataclass
class SynthConfig:
    """Everything a run needs besides its inputs; prices are USD per million tokens."""

    base_url: str
    model: str
    api_key: str | None = None
    prompt: PromptSpec = field(default_factory=PromptSpec)
    concurrency: int = 8
    extract_workers: int = 2
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    timeout: float = 120.0
    max_retries: int = 6
    backoff: float = 1.0
    max_backoff: float = 60.0
    max_repairs: int = 2
    max_attempts: int = 3
    max_grids: int = 8
    cell_width: int = 320
    jpeg_quality: int = 85
    near_dup_threshold: float | None = 6.0
    price_input: float = 0.0
    price_output: float = 0.0
    max_tokens: int = 4096
    temperature: float | None = None
    shard: tuple[int, int] = (0, 1)
    decode_timeout: float = 600.0

    def __post_init__(self) -> None:
        index, count = self.shard
        if not 0 <= index < count:
            raise ValueError(f"shard {index}/{count}: need 0 <= i < n")
        for name in ("concurrency", "extract_workers", "max_grids", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class RunReport:
    """What a run did: final counts per status, work done now, and where the time went (seconds).
    ``unknown_usage``: replies whose usage was missing or malformed; their tokens and cost are not in the sums."""

    counts: dict[str, int]
    sent: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    unknown_usage: int = 0
    skipped_inputs: list[str] = field(default_factory=list)
    extract_seconds: float = 0.0
    request_seconds: float = 0.0
    starved_seconds: float = 0.0
    wall_seconds: float = 0.0


def prepare_request_images(
    path: str | Path, *, max_grids: int, cell_width: int, quality: int = 85, timeout: float = 600.0
) -> tuple[list[str], str | None]:
    """A video -> its 3x3 grids as data URIs, and a note with the frame times when they are not 1 s apart."""
    clip = load_video(path, fps=1.0, max_frames=max_grids * GRID_SIDE * GRID_SIDE, timeout=timeout)
    uris = grid_data_uris(stitch_grids(clip.frames, cell_width=cell_width), quality=quality)
    times = clip.timestamps
    note = None
    if len(times) > 1 and max(b - a for a, b in itertools.pairwise(times)) > 1.5:
        shown = ", ".join(f"{t:.0f}" for t in times)
        note = f"Note: this video is long; its frames were taken at these seconds instead of every second: {shown}"
    return uris, note


def _register(store: Store, videos: list[Path], table: dict[str, dict], config: SynthConfig) -> list[str]:
    """Step 1; returns the inputs that could not be read (path: reason)."""
    skipped, version = [], config.prompt.version
    index, count = config.shard
    for path in videos:
        try:
            stat = path.stat()
            resolved = str(path.resolve())
            video_id = store.cached_video_id(resolved, stat.st_size, stat.st_mtime_ns)
            if video_id is None:
                video_id = content_hash(path)
                store.record_file(resolved, stat.st_size, stat.st_mtime_ns, video_id)
        except OSError as error:
            skipped.append(f"{path}: {error.strerror or error}")
            continue
        if int(video_id[:8], 16) % count == index:
            store.register(video_id, version, resolved, metadata_for(path, table))
    return skipped


async def _deduplicate(store: Store, config: SynthConfig, pool: concurrent.futures.Executor) -> None:
    """Step 2: perceptual hashes for the videos lacking one, then mark near-duplicates."""
    version, loop = config.prompt.version, asyncio.get_running_loop()
    rows = [
        r
        for r in store.rows(version, ("pending", "failed", "done"))
        if (r.status != "failed" or r.retryable) and store.phash(r.video_id) is None
    ]
    jobs = {r.video_id: loop.run_in_executor(pool, video_phash, r.source, config.decode_timeout) for r in rows}
    for video_id, job in jobs.items():
        try:
            store.set_phash(video_id, await job)
        except MediaError as error:
            store.fail(video_id, version, str(error), retryable=False)
    rows = store.rows(version, ("done",)) + store.todo(version, config.max_attempts)  # never kept: a lost cause
    ordered = [(r.video_id, h) for r in rows if (h := store.phash(r.video_id)) is not None]
    for video_id, (kept, distance) in near_duplicates(ordered, config.near_dup_threshold).items():
        store.mark_duplicate(video_id, version, kept, distance)


class _Generator:
    """Step 3: extraction threads feed a bounded queue; asyncio workers send, validate, repair and commit."""

    def __init__(self, store: Store, config: SynthConfig, client: ChatClient, report: RunReport) -> None:
        self.store, self.config, self.client, self.report = store, config, client, report
        self.spec = config.prompt

    def _cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.config.price_input + completion_tokens * self.config.price_output) / 1e6

    async def produce(self, rows: Iterator[VideoRow], queue: asyncio.Queue, pool: concurrent.futures.Executor) -> None:
        config, loop = self.config, asyncio.get_running_loop()
        for row in rows:  # one iterator shared by all producers
            begin = time.perf_counter()
            try:
                images = await loop.run_in_executor(
                    pool, lambda s=row.source: prepare_request_images(
                        s, max_grids=config.max_grids, cell_width=config.cell_width, quality=config.jpeg_quality,
                        timeout=config.decode_timeout,
                    ),
                )  # fmt: skip
            except MediaError as error:
                self.store.fail(row.video_id, row.prompt_version, str(error), retryable=False)
                continue
            except Exception as error:  # anything else about this one video (a huge frame, a PIL error) fails it alone
                reason = f"cannot prepare {row.source!r}: {type(error).__name__}: {error}"
                self.store.fail(row.video_id, row.prompt_version, reason, retryable=False)
                continue
            finally:
                self.report.extract_seconds += time.perf_counter() - begin
            await queue.put((row, images))

    async def consume(self, queue: asyncio.Queue, on_video: Callable[[str], None] | None) -> None:
        while True:
            begin = time.perf_counter()
            item = await queue.get()
            self.report.starved_seconds += time.perf_counter() - begin
            if item is None:
                return
            row, (uris, note) = item
            status = await self.generate(row, uris, note)
            if on_video is not None:
                on_video(status)

    async def generate(self, row: VideoRow, uris: list[str], note: str | None) -> str:
        """Send one video (with repairs) and commit the outcome; returns the new status."""
        store, spec, version = self.store, self.spec, row.prompt_version
        store.start_attempt(row.video_id, version)
        self.report.sent += 1
        messages = spec.messages(uris, row.metadata, note=note)
        requests = prompt_tokens = completion_tokens = unknown = 0
        reason = ""
        for _ in range(self.config.max_repairs + 1):
            begin = time.perf_counter()
            try:
                reply = await self.client.complete(messages)
            except EndpointError:
                raise
            except RequestFailedError as error:
                cost = self._cost(prompt_tokens, completion_tokens)
                store.fail(row.video_id, version, str(error), retryable=error.retryable, requests=requests,
                           prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost=cost,
                           unknown_usage=unknown)  # fmt: skip
                return "failed"
            finally:
                self.report.request_seconds += time.perf_counter() - begin
            requests += reply.attempts
            if reply.prompt_tokens is not None and reply.completion_tokens is not None:
                prompt_tokens += reply.prompt_tokens
                completion_tokens += reply.completion_tokens
                self._account(reply.attempts, reply.prompt_tokens, reply.completion_tokens)
            else:  # a malformed or missing usage: the answer stands, its cost is unknown
                unknown += 1
                self._account(reply.attempts, 0, 0, unknown_usage=1)
                logger.warning("video %s: the reply's usage is missing or malformed; its cost is unknown", row.source)
            try:
                output = validate_output(reply.content, spec)
            except InvalidOutputError as error:
                reason = str(error)
                messages = [*messages, {"role": "assistant", "content": reply.content}, spec.repair_message(reason)]
                continue
            store.finish(row.video_id, version, output.model_dump(), model=self.client.model, requests=requests,
                         prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                         cost=self._cost(prompt_tokens, completion_tokens), unknown_usage=unknown)  # fmt: skip
            return "done"
        store.fail(row.video_id, version, f"invalid output after {self.config.max_repairs + 1} tries: {reason}",
                   retryable=True, requests=requests, prompt_tokens=prompt_tokens,
                   completion_tokens=completion_tokens, cost=self._cost(prompt_tokens, completion_tokens),
                   unknown_usage=unknown)  # fmt: skip
        return "failed"

    def _account(self, requests: int, prompt_tokens: int, completion_tokens: int, *, unknown_usage: int = 0) -> None:
        self.report.requests += requests
        self.report.unknown_usage += unknown_usage
        self.report.prompt_tokens += prompt_tokens
        self.report.completion_tokens += completion_tokens
        self.report.cost += self._cost(prompt_tokens, completion_tokens)


async def _run(
    store: Store, videos: list[Path], table: dict[str, dict], config: SynthConfig, on_video: Callable | None
) -> RunReport:
    started = time.perf_counter()
    report = RunReport(counts={})
    report.skipped_inputs = _register(store, videos, table, config)
    version = config.prompt.version
    with concurrent.futures.ThreadPoolExecutor(config.extract_workers, thread_name_prefix="synth-frames") as pool:
        if config.near_dup_threshold is not None:
            await _deduplicate(store, config, pool)
        rows = iter(store.todo(version, config.max_attempts))
        limiter = RateLimiter(config.requests_per_minute, config.tokens_per_minute)
        client = ChatClient(
            config.base_url, config.model, api_key=config.api_key, timeout=config.timeout,
            max_retries=config.max_retries, backoff=config.backoff, max_backoff=config.max_backoff,
            limiter=limiter, max_tokens=config.max_tokens, temperature=config.temperature,
        )  # fmt: skip
        async with client:
            generator = _Generator(store, config, client, report)
            queue: asyncio.Queue = asyncio.Queue(maxsize=config.concurrency)
            producers = [
                asyncio.create_task(generator.produce(rows, queue, pool)) for _ in range(config.extract_workers)
            ]
            consumers = [asyncio.create_task(generator.consume(queue, on_video)) for _ in range(config.concurrency)]

            async def feed_then_stop() -> None:
                await asyncio.gather(*producers)
                for _ in consumers:
                    await queue.put(None)

            feeder = asyncio.create_task(feed_then_stop())
            tasks = [feeder, *producers, *consumers]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    task.result()  # an EndpointError (or a bug) stops the job here
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    report.counts = store.counts(version)
    report.wall_seconds = time.perf_counter() - started
    return report


def run_synthesis(
    store: Store,
    videos: list[Path],
    metadata: dict[str, dict],
    config: SynthConfig,
    *,
    on_video: Callable[[str], None] | None = None,
    wait_for_lock: bool = False,
) -> RunReport:
    """Run (or resume) a job over ``videos`` into ``store``; ``metadata`` from ``inputs.load_metadata``;
    ``on_video(status)`` is called after each video sent. Raises ``EndpointError`` when the endpoint refuses, and
    ``StoreLockedError`` when another run holds the store (unless ``wait_for_lock``: then it waits for it)."""
    with store.run_lock(wait=wait_for_lock):
        return asyncio.run(_run(store, [Path(v) for v in videos], metadata, config, on_video))
