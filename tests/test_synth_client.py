"""ChatClient and RateLimiter against a real OpenAI-compatible server on 127.0.0.1 (tests/synth_server.py)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from synth_server import NO_USAGE, ScriptedServer
from tempflex.synth.client import ChatClient, EndpointError, RequestFailedError, estimate_tokens, parse_usage
from tempflex.synth.ratelimit import RateLimiter

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def _complete(base_url: str, **options):
    async def go():
        async with ChatClient(base_url, "test-model", backoff=0.01, max_backoff=0.05, seed=0, **options) as client:
            return await client.complete(MESSAGES)

    return asyncio.run(go())


def test_valid_reply_and_usage():
    with ScriptedServer(["valid"]) as server:
        reply = _complete(server.base_url, api_key="sk-test")
    assert json.loads(reply.content.strip("`json\n"))["caption"].startswith("Video ")
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0 and reply.attempts == 1


def test_retries_429_500_timeout_and_dropped_connection():
    script = [("429", 0.3), "500", ("slow", 1.0), "drop", "valid"]
    with ScriptedServer(script) as server:
        begin = time.perf_counter()
        reply = _complete(server.base_url, timeout=0.4)
        elapsed = time.perf_counter() - begin
        actions = [action for _, action in server.log]
    assert actions == ["429", "500", "slow", "drop", "valid"]
    assert reply.attempts == 5
    assert elapsed >= 0.3 + 0.4  # waited out Retry-After and the timeout


def test_retry_after_pauses_other_requests():
    async def go(base_url):
        async with ChatClient(base_url, "m", backoff=0.01, seed=0) as client:
            first = asyncio.create_task(client.complete(MESSAGES))
            await asyncio.sleep(0.1)  # the 429 has arrived; the client is paused for 0.5 s
            begin = time.perf_counter()
            await client.complete(MESSAGES)
            waited = time.perf_counter() - begin
            await first
            return waited

    with ScriptedServer([("429", 0.5)]) as server:
        assert asyncio.run(go(server.base_url)) >= 0.3


def test_gives_up_with_the_last_reason():
    with ScriptedServer(["500"] * 3) as server, pytest.raises(RequestFailedError, match=r"3 attempts.*HTTP 500"):
        _complete(server.base_url, max_retries=2)
    with ScriptedServer(["drop"] * 2) as server, pytest.raises(RequestFailedError, match="connection failed"):
        _complete(server.base_url, max_retries=1)


def test_fatal_and_client_errors_are_not_retried():
    with ScriptedServer(["401", "valid"]) as server, pytest.raises(EndpointError, match="HTTP 401"):
        _complete(server.base_url)
    with ScriptedServer() as server:  # wrong path -> 404 -> the endpoint is wrong
        with pytest.raises(EndpointError, match="404"):
            _complete(server.base_url.removesuffix("/v1"))
        assert server.log == []


def test_rate_limits_requests_and_tokens():
    async def requests(limiter, count, tokens=0):
        begin = time.perf_counter()
        for _ in range(count):
            await limiter.acquire(tokens)
        return time.perf_counter() - begin

    assert 0.9 < asyncio.run(requests(RateLimiter(requests_per_minute=240), 8)) < 1.5  # 4 at once, then 4 per s
    assert 0.9 < asyncio.run(requests(RateLimiter(tokens_per_minute=6000), 2, tokens=100)) < 1.5  # 100/s
    assert asyncio.run(requests(RateLimiter(), 50)) < 0.1
    with pytest.raises(ValueError, match="requests_per_minute"):
        RateLimiter(requests_per_minute=0)


def test_estimate_and_bad_url():
    assert estimate_tokens(MESSAGES, max_tokens=10) == 10 + len("be brief") // 4 + len("hi") // 4
    with pytest.raises(ValueError, match="base_url"):
        ChatClient("127.0.0.1:8000/v1", "m")


class _SpyLimiter(RateLimiter):
    def __init__(self) -> None:
        super().__init__(tokens_per_minute=1e9)
        self.settled: list[tuple[int, int]] = []

    def settle(self, estimated: int, actual: int) -> None:
        self.settled.append((estimated, actual))
        super().settle(estimated, actual)


BAD_USAGE = ["n/a", [3, 4], {}, {"completion_tokens": 4}, {"prompt_tokens": -1, "completion_tokens": 4},
             {"prompt_tokens": "3", "completion_tokens": "x"}, {"prompt_tokens": False, "completion_tokens": 4},
             {"prompt_tokens": float("nan"), "completion_tokens": 4}, {"prompt_tokens": 10**12, "completion_tokens": 4},
             {"prompt_tokens": 2.5, "completion_tokens": 4}, None, NO_USAGE]  # fmt: skip


def test_malformed_usage_keeps_the_answer_as_unknown_usage_and_the_limiter_keeps_its_estimate():
    limiter = _SpyLimiter()
    with ScriptedServer([("bad_usage", usage) for usage in BAD_USAGE]) as server:
        replies = [_complete(server.base_url, limiter=limiter) for _ in BAD_USAGE]
        good = _complete(server.base_url, limiter=limiter)
        assert len(server.log) == len(BAD_USAGE) + 1  # not one retry: a bad usage is no reason to pay again
    for reply in replies:
        assert json.loads(reply.content.strip("`json\n"))["caption"].startswith("Video ")
        assert reply.prompt_tokens is None and reply.completion_tokens is None and not reply.usage_known
        assert reply.attempts == 1
    assert good.usage_known and good.prompt_tokens > 0
    (settled,) = limiter.settled  # only the good reply corrected the estimate
    assert settled[1] == good.prompt_tokens + good.completion_tokens
    assert parse_usage({"prompt_tokens": 7.0, "completion_tokens": 0, "total_tokens": "?"}) == (7, 0)
