"""``fetch_remote``: download an http(s) media URL without letting a request reach the server's own network.

Server-side request forgery (SSRF) guard, in this order:

1. only ``http`` and ``https`` URLs with a host name;
2. the host is resolved once (``socket.getaddrinfo``) and **every** resolved address must pass
   ``is_public_address`` (no loopback, private, link-local, reserved, multicast, unspecified or shared
   addresses, IPv4-mapped IPv6 unwrapped first), else the fetch is refused naming the address;
3. the connection goes to the checked address itself (the ``Host`` header and TLS SNI keep the name), so a
   second DNS answer cannot swap in ``127.0.0.1`` between the check and the connect (DNS rebinding);
4. redirects are not followed: a 3xx is an error naming the target (re-validating hops is more code to trust);
5. the body is read in chunks and refused once it passes ``max_bytes`` (a ``Content-Length`` above it is refused
   before reading), and the whole fetch has a deadline of ``timeout`` seconds.

Example (refused before any connection)::

    fetch_remote("http://127.0.0.1:8000/x.png", max_bytes=1 << 20, timeout=5.0)
    # -> FetchError: http://127.0.0.1:8000/x.png: address 127.0.0.1 is loopback; remote media must be public
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

__all__ = ["FetchError", "address_problem", "fetch_remote", "is_public_address"]

_CHUNK = 64 * 1024


class FetchError(ValueError):
    """A remote media URL that may not or could not be fetched; the message names the URL and the reason."""


def address_problem(address: str) -> str | None:
    """Why ``address`` is not a public unicast address (``"loopback"``, ``"private"``, ...), or None if it is.

    >>> address_problem("127.0.0.1"), address_problem("::ffff:10.0.0.1"), address_problem("8.8.8.8")
    ('loopback', 'private', None)
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone index
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("shared (carrier-grade NAT)", ip in ipaddress.ip_network("100.64.0.0/10")),
        ("not global", not ip.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def is_public_address(address: str) -> bool:
    """True when ``address`` is a public unicast address that a media fetch may connect to."""
    return address_problem(address) is None


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a fixed, already checked address; the Host header keeps the URL's name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to a fixed, already checked address; certificate and SNI use the URL's name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def fetch_remote(
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    allow_address: Callable[[str], bool] = is_public_address,
) -> bytes:
    """The body of ``url`` (at most ``max_bytes``, within ``timeout`` s); ``FetchError`` naming the URL otherwise.

    ``allow_address`` decides which resolved addresses may be contacted (default: public ones only); the server
    always uses the default.
    """
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"{url}: only http(s) URLs with a host can be fetched")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise FetchError(f"{url}: cannot resolve host {parts.hostname!r}: {error}") from error
    addresses = sorted({str(info[4][0]) for info in infos})
    for address in addresses:
        if not allow_address(address):
            reason = address_problem(address) or "not allowed"
            raise FetchError(f"{url}: address {address} is {reason}; remote media must be public")
    if not addresses:
        raise FetchError(f"{url}: host {parts.hostname!r} has no address")
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(parts.hostname, port, addresses[0], timeout=max(0.1, deadline - time.monotonic()))
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    # One deadline for the whole fetch, headers included: per-read socket timeouts alone let a server that trickles
    # a byte at a time hold the worker forever. At the deadline a watchdog shuts the socket, which ends any read.
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        if connection.sock is not None:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request("GET", path, headers={"User-Agent": "tempflex-serve", "Accept": "*/*"})
        response = connection.getresponse()
        if 300 <= response.status < 400:
            raise FetchError(f"{url}: redirect ({response.status}) to {response.getheader('Location')!r} not followed")
        if response.status != 200:
            raise FetchError(f"{url}: HTTP {response.status} {response.reason}")
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(f"{url}: {declared} bytes is above the {max_bytes}-byte media limit")
        body = bytearray()
        while chunk := response.read1(_CHUNK):
            body += chunk
            if len(body) > max_bytes:
                raise FetchError(f"{url}: more than the {max_bytes}-byte media limit")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError(f"{url}: not downloaded within {timeout:g} s")
            if connection.sock is not None:  # each read waits at most what is left of the deadline
                connection.sock.settimeout(remaining)
        return bytes(body)
    except (OSError, http.client.HTTPException) as error:
        if expired.is_set():
            raise FetchError(f"{url}: not downloaded within {timeout:g} s") from error
        raise FetchError(f"{url}: {type(error).__name__}: {error}") from error
    finally:
        watchdog.cancel()
        connection.close()
