"""``MediaPolicy``: which media URLs a request may use, and ``resolve`` to turn one into processor input.

- ``data:`` URIs (base64) are always accepted and passed on as they are.
- ``file://`` URLs and plain paths only when the server was started with ``--allowed-media-dir DIR`` and the
  path, with symlinks and ``..`` resolved, lies inside ``DIR``.
- ``http(s)://`` only with ``--allow-remote-media``, through ``fetch.fetch_remote`` (public addresses only,
  no redirects, a byte cap and a deadline).

Every refusal is a ``RequestError(400)`` naming the URL and the reason:

    >>> try:
    ...     MediaPolicy(allowed_dir=Path("/tmp")).resolve("file:///etc/passwd", "image_url")
    ... except RequestError as error:
    ...     print(error.status, error.message)
    400 image_url 'file:///etc/passwd': the path is outside the allowed media folder
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tempflex.serve.errors import RequestError
from tempflex.serve.fetch import FetchError, fetch_remote

__all__ = ["MediaPolicy"]


@dataclass(frozen=True)
class MediaPolicy:
    """Where media may come from: ``allowed_dir`` for files, ``allow_remote`` with its byte and time limits."""

    allowed_dir: Path | None = None
    allow_remote: bool = False
    max_remote_bytes: int = 64 * 1024 * 1024
    remote_timeout: float = 20.0

    def resolve(self, url: str, param: str) -> str | bytes:
        """A data URI or an allowed path as a string, or a fetched URL's bytes; ``RequestError`` otherwise."""
        if not isinstance(url, str) or not url:
            raise RequestError(400, f"{param}: the url must be a non-empty string", param=param)
        if url.startswith("data:"):
            return url
        shown = url if len(url) <= 120 else url[:117] + "..."
        scheme = urlsplit(url).scheme.lower()
        if scheme in ("http", "https"):
            if not self.allow_remote:
                raise RequestError(
                    400, f"{param} {shown!r}: remote media are off (start the server with --allow-remote-media)",
                    param=param, code="remote_media_disabled",
                )  # fmt: skip
            try:
                return fetch_remote(url, max_bytes=self.max_remote_bytes, timeout=self.remote_timeout)
            except FetchError as error:
                raise RequestError(400, f"{param}: {error}", param=param, code="remote_media_refused") from error
        if scheme == "file":
            path = Path(unquote(urlsplit(url).path))
        elif scheme and len(scheme) > 1:  # "c:" is a Windows drive, not a scheme
            raise RequestError(400, f"{param} {shown!r}: unsupported URL scheme {scheme!r}", param=param)
        else:
            path = Path(url)
        return str(self._check_path(path, shown, param))

    def _check_path(self, path: Path, shown: str, param: str) -> Path:
        if self.allowed_dir is None:
            raise RequestError(
                400, f"{param} {shown!r}: local files are off (start the server with --allowed-media-dir)",
                param=param, code="local_media_disabled",
            )  # fmt: skip
        root = self.allowed_dir.resolve()
        resolved = (root / path).resolve() if not path.is_absolute() else path.resolve()
        if not resolved.is_relative_to(root):
            raise RequestError(
                400, f"{param} {shown!r}: the path is outside the allowed media folder", param=param,
                code="media_path_not_allowed",
            )  # fmt: skip
        if not resolved.is_file():
            raise RequestError(400, f"{param} {shown!r}: no such file in the allowed media folder", param=param)
        return resolved
