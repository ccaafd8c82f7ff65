"""``GenerationQueue``: runs model work off the event loop, one job at a time, first come first served.

The model computes one request at a time (on a CPU two would only share the cores); a single worker thread
takes jobs in arrival order, so no request is starved by later ones. Media decoding and remote fetches run
in a separate small pool, so a slow download does not hold up the model. When ``max_pending`` jobs are
already waiting, ``run_model`` refuses with 503 and ``Retry-After`` (the server is overloaded, not the client over
a quota) instead of queueing forever.

    >>> import asyncio
    >>> queue = GenerationQueue(max_pending=4)
    >>> asyncio.run(queue.run_model(sum, [1, 2, 3]))
    6
    >>> queue.close()
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from tempflex.serve.errors import RequestError

__all__ = ["GenerationQueue"]

T = TypeVar("T")


class GenerationQueue:
    """One model worker thread (FIFO) and a media pool; at most ``max_pending`` model jobs waiting or running."""

    def __init__(self, max_pending: int = 64, media_workers: int = 2, retry_after: int = 5) -> None:
        self.max_pending = max_pending
        self.retry_after = retry_after
        self.pending = 0
        self._model = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tempflex-model")
        self._media = ThreadPoolExecutor(max_workers=media_workers, thread_name_prefix="tempflex-media")

    async def run_media(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` in the media pool."""
        return await asyncio.get_running_loop().run_in_executor(self._media, function, *args)

    async def run_model(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` on the model thread after the jobs submitted before it; 503 when full."""
        if self.pending >= self.max_pending:
            raise RequestError(
                503, f"the server is busy: {self.pending} requests are queued (limit {self.max_pending}); retry later",
                code="queue_full", headers={"Retry-After": str(self.retry_after)},
            )  # fmt: skip
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._model, function, *args)
        finally:
            self.pending -= 1

    def close(self) -> None:
        """Stop the worker threads (after their current jobs)."""
        self._model.shutdown(wait=False, cancel_futures=True)
        self._media.shutdown(wait=False, cancel_futures=True)
