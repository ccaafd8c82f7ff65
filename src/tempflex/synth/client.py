"""An asyncio client for any OpenAI-compatible ``POST {base_url}/chat/completions``, owning its retries.

Why httpx and not the ``openai`` package: we must see every status code, the ``Retry-After`` header and each
transport failure to decide retries, rate-limit pauses and accounting ourselves; with the SDK we would turn its
retries off and unwrap its exceptions to get the same facts. httpx is one small dependency and speaks to GPT-4o,
vLLM, SGLang or our own server alike.

Retried, up to ``max_retries`` times with exponential backoff and jitter (``backoff * 2**k``, capped at
``max_backoff``, times a random factor in [0.5, 1]): 429 (waiting at least ``Retry-After`` seconds or HTTP date,
and pausing the whole client meanwhile), 408, 409, 5xx, timeouts, refused or dropped connections, and a 200 whose
body is not a chat completion. Not retried: other 4xx. 401, 403 and 404 raise ``EndpointError`` (the endpoint,
key or model is wrong: the job should stop); other 4xx (e.g. a 400 for a request too large) raise
``RequestFailedError`` for that one request.

Usage: a reply's ``usage`` is trusted only when it is an object whose ``prompt_tokens`` and ``completion_tokens``
are whole numbers in [0, 10**9] (not booleans, not strings). Anything else (``"usage": "n/a"``, a list, a missing
field, a negative or non-numeric count, no ``usage`` at all) makes the usage unknown: ``Completion.prompt_tokens``
and ``completion_tokens`` are None, the answer is still returned (a bad usage is no reason to pay for the request
again), and the tokens/min limiter keeps its estimate for that request instead of settling it.

Example (a local vLLM)::

    client = ChatClient("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-VL-7B-Instruct", api_key=None)
    async with client:
        reply = await client.complete([{"role": "user", "content": "Say hi"}])
    reply.content, reply.prompt_tokens, reply.completion_tokens   # -> 'Hi!', 9, 3 (None, None: usage unknown)
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass

try:
    import httpx
except ImportError as error:  # the synth extra is not installed
    raise ImportError("tempflex.synth needs httpx: pip install 'tempflex[synth]'") from error

from tempflex.synth.ratelimit import RateLimiter

__all__ = ["ChatClient", "Completion", "EndpointError", "RequestFailedError", "estimate_tokens", "parse_usage"]

_RETRIED_STATUS = {408, 409, 429}
_FATAL_STATUS = {401, 403, 404}
_MAX_REPORTED_TOKENS = 10**9  # per reply; more is nonsense (and would overflow SQLite's INTEGER when summed)


class RequestFailedError(RuntimeError):
    """One request failed for good; the message says why. ``retryable``: a later run may succeed (retries were
    spent on a transient error) rather than the request itself being refused (a 4xx)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class EndpointError(RequestFailedError):
    """The endpoint refuses every request (bad URL, key or model): stop the job rather than fail each video."""


@dataclass
class Completion:
    """The assistant's text and what getting it cost; the token counts are None when the reply's usage was
    missing or malformed (see the module docstring)."""

    content: str
    prompt_tokens: int | None
    completion_tokens: int | None
    attempts: int
    finish_reason: str | None = None

    @property
    def usage_known(self) -> bool:
        """Whether both token counts came from a well-formed ``usage``."""
        return self.prompt_tokens is not None and self.completion_tokens is not None


def _token_count(value: object) -> int | None:
    if isinstance(value, bool):  # a bool is an int to Python, never a count to us
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= _MAX_REPORTED_TOKENS:
        return value
    return None


def parse_usage(usage: object) -> tuple[int | None, int | None]:
    """``(prompt_tokens, completion_tokens)`` from a reply's ``usage``; (None, None) unless both are well-formed.

    >>> parse_usage({"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12})
    (9, 3)
    >>> [parse_usage(u) for u in ("n/a", {"prompt_tokens": 9}, {"prompt_tokens": -1, "completion_tokens": 2})]
    [(None, None), (None, None), (None, None)]
    """
    if not isinstance(usage, dict):
        return None, None
    prompt, completion = _token_count(usage.get("prompt_tokens")), _token_count(usage.get("completion_tokens"))
    return (prompt, completion) if prompt is not None and completion is not None else (None, None)


def estimate_tokens(messages: list[dict], *, tokens_per_image: int = 800, max_tokens: int = 0) -> int:
    """Rough tokens of a request for the tokens/min limit: text chars / 4, a fixed cost per image, the reply cap.

    >>> estimate_tokens([{"role": "user", "content": [{"type": "text", "text": "x" * 400},
    ...     {"type": "image_url", "image_url": {"url": "data:"}}]}], max_tokens=100)
    1000
    """
    total = max_tokens
    for message in messages:
        parts = message["content"] if isinstance(message["content"], list) else [message["content"]]
        for part in parts:
            if isinstance(part, str):
                total += len(part) // 4
            elif part.get("type") == "text":
                total += len(part["text"]) // 4
            else:
                total += tokens_per_image
    return total


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class ChatClient:
    """Chat completions with bounded retries, backoff, rate limits and a timeout (seconds) per request attempt."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_retry_after: float = 300.0,
        limiter: RateLimiter | None = None,
        max_tokens: int = 4096,
        temperature: float | None = None,
        tokens_per_image: int = 800,
        seed: int | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout, self.max_retries = timeout, max_retries
        self.backoff, self.max_backoff, self.max_retry_after = backoff, max_backoff, max_retry_after
        self.limiter = limiter or RateLimiter()
        self.max_tokens, self.temperature, self.tokens_per_image = max_tokens, temperature, tokens_per_image
        self._random = random.Random(seed)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # the whole request is bounded by ``timeout`` (asyncio.wait_for), each read too; the number of connections
        # is bounded by the callers' concurrency, not by a pool limit that would turn queueing into timeouts
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout, limits=httpx.Limits(max_connections=None))

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def _backoff(self, retry: int) -> float:
        return min(self.max_backoff, self.backoff * 2**retry) * self._random.uniform(0.5, 1.0)

    async def complete(self, messages: list[dict]) -> Completion:
        """One chat completion, retried as the module docstring says; raises ``RequestFailedError`` at the end."""
        body: dict = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        estimate = estimate_tokens(messages, tokens_per_image=self.tokens_per_image, max_tokens=self.max_tokens)
        problem = "no attempt made"
        for attempt in range(self.max_retries + 1):
            await self.limiter.acquire(estimate)
            wait = None
            try:
                response = await asyncio.wait_for(self._http.post(self.url, json=body), self.timeout)
            except (httpx.TimeoutException, asyncio.TimeoutError):
                problem = f"timed out after {self.timeout}s"
            except httpx.TransportError as error:  # refused, reset, dropped mid-response, bad protocol
                problem = f"connection failed ({type(error).__name__}: {error})"
            else:
                if response.status_code == 200:
                    try:
                        data = response.json()
                        choice = data["choices"][0]
                        content = choice["message"]["content"]
                        if not isinstance(content, str):
                            raise TypeError("message.content is not a string")
                    except (ValueError, KeyError, IndexError, TypeError) as error:
                        problem = f"HTTP 200 without a chat completion ({type(error).__name__}: {error})"
                    else:
                        prompt_tokens, completion_tokens = parse_usage(data.get("usage"))
                        if prompt_tokens is not None and completion_tokens is not None:
                            self.limiter.settle(estimate, prompt_tokens + completion_tokens)
                        # else: unknown usage, the limiter keeps the estimate it took
                        finish = choice.get("finish_reason")
                        finish = finish if isinstance(finish, str) else None
                        return Completion(content, prompt_tokens, completion_tokens, attempt + 1, finish)
                else:
                    status, text = response.status_code, response.text[:300]
                    problem = f"HTTP {status} from {self.url}: {text}"
                    if status in _FATAL_STATUS:
                        raise EndpointError(problem, retryable=False)
                    if status not in _RETRIED_STATUS and status < 500:
                        raise RequestFailedError(problem, retryable=False)
                    if status == 429:
                        wait = _retry_after(response.headers.get("retry-after"))
                        if wait is not None:
                            wait = min(wait, self.max_retry_after)
                            self.limiter.pause(wait)
            if attempt == self.max_retries:
                break
            delay = self._backoff(attempt)
            await asyncio.sleep(max(delay, wait) if wait is not None else delay)
        raise RequestFailedError(f"gave up after {self.max_retries + 1} attempts; last: {problem}")
