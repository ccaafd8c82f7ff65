"""Request and token rate limits for asyncio: token buckets plus a shared pause after a 429.

``RateLimiter(requests_per_minute=500, tokens_per_minute=30_000)``; ``await limiter.acquire(tokens)`` before a
request waits until both buckets hold enough, ``limiter.settle(estimated, actual)`` corrects the token bucket once
the response reports its usage, and ``limiter.pause(seconds)`` holds every caller back (a 429's Retry-After
applies to the whole client, not only to the request that got it). Each bucket holds one second's worth
(at least one request, at least one request's tokens): bursts stay small and the average rate is the limit.

Example::

    limiter = RateLimiter(requests_per_minute=120)   # two requests a second
    for _ in range(6):
        await limiter.acquire()                        # the sixth returns after about 2 s
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["RateLimiter"]


class _Bucket:
    """A token bucket: ``rate`` units per second, holding at most ``capacity``; may go negative to admit a
    request larger than the capacity (it then waits for the debt to refill)."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` can be taken (0 when it can be now)."""
        self._refill()
        need = min(amount, self.capacity)  # a request over the capacity goes once the bucket is full
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount

    def give(self, amount: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    """Requests/min and tokens/min limits (None: unlimited) shared by all tasks of one event loop."""

    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None) -> None:
        for name, value in (("requests_per_minute", requests_per_minute), ("tokens_per_minute", tokens_per_minute)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self._requests = _Bucket(requests_per_minute) if requests_per_minute else None
        self._tokens = _Bucket(tokens_per_minute) if tokens_per_minute else None
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` from now (extends, never shortens, a pause)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def acquire(self, tokens: int = 0) -> None:
        """Wait for a request slot and ``tokens`` (an estimate) under both limits and any pause."""
        async with self._lock:  # one waiter at a time: first come, first served
            while True:
                delay = self._paused_until - time.monotonic()
                if self._requests is not None:
                    delay = max(delay, self._requests.wait_for(1))
                if self._tokens is not None:
                    delay = max(delay, self._tokens.wait_for(tokens))
                if delay <= 0:
                    break
                await asyncio.sleep(delay)
            if self._requests is not None:
                self._requests.take(1)
            if self._tokens is not None:
                self._tokens.take(tokens)

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token bucket by what a request really used."""
        if self._tokens is not None and actual != estimated:
            if actual > estimated:
                self._tokens.take(actual - estimated)
            else:
                self._tokens.give(estimated - actual)
