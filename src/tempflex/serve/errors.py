"""``RequestError``: a client error with its HTTP status, rendered in OpenAI's error format.

>>> RequestError(400, "messages[0].content[1]: unknown part type 'audio'", param="messages").body()["error"]["type"]
'invalid_request_error'
"""

from __future__ import annotations

from typing import Any

__all__ = ["RequestError"]


class RequestError(Exception):
    """A request the server refuses: ``status`` (4xx, or 503 when busy), a message naming what is wrong, the offending
    ``param``, and response ``headers`` (``Retry-After``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.headers = headers or {}
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}`` as OpenAI's API returns it."""
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}
