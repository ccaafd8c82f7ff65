"""``fetch_remote`` and the address checks against real local HTTP servers (loopback only)."""

from __future__ import annotations

import http.server
import threading
import time
from contextlib import contextmanager

import pytest

from tempflex.serve.fetch import FetchError, address_problem, fetch_remote


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output quiet
        pass

    def do_GET(self):
        if self.path == "/small":
            self._reply(b"x" * 100)
        elif self.path == "/big-declared":
            self._reply(b"x" * 5000)
        elif self.path == "/big-chunked":  # no Content-Length: the cap must hold while streaming
            self.send_response(200)
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"y" * 1000)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/secret")
            self.end_headers()
        elif self.path == "/slow":
            self.send_response(200)
            self.end_headers()
            for _ in range(20):
                self.wfile.write(b"z")
                self.wfile.flush()
                time.sleep(0.1)

    def handle_one_request(self):
        if self.server.trickle_headers:  # a status line and headers one byte at a time, never finished
            self.rfile.readline()
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.1)
            return
        super().handle_one_request()

    def _reply(self, body: bytes):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def local_server(trickle_headers: bool = False):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.trickle_headers = trickle_headers
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def allow_all(address: str) -> bool:
    return True


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("240.0.0.1", "reserved"),
        ("fc00::1", "private"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_problem(address, problem):
    assert address_problem(address) == problem


def test_loopback_is_refused_before_connecting():
    with local_server() as url, pytest.raises(FetchError, match=r"127\.0\.0\.1 is loopback"):
        fetch_remote(url + "/small", max_bytes=1000, timeout=2)
    with pytest.raises(FetchError, match="loopback"):
        fetch_remote("http://localhost:9/x.png", max_bytes=1000, timeout=2)


def test_fetch_reads_the_body_within_the_caps():
    with local_server() as url:
        assert fetch_remote(url + "/small", max_bytes=1000, timeout=2, allow_address=allow_all) == b"x" * 100


@pytest.mark.parametrize("path", ["/big-declared", "/big-chunked"])
def test_byte_cap(path):
    with local_server() as url, pytest.raises(FetchError, match="1000-byte media limit"):
        fetch_remote(url + path, max_bytes=1000, timeout=5, allow_address=allow_all)


def test_redirects_are_not_followed():
    with local_server() as url, pytest.raises(FetchError, match=r"redirect \(302\) .* not followed"):
        fetch_remote(url + "/redirect", max_bytes=1000, timeout=2, allow_address=allow_all)


def test_total_deadline():
    started = time.monotonic()
    with local_server() as url, pytest.raises(FetchError, match=r"timed out|within 0\.5 s"):
        fetch_remote(url + "/slow", max_bytes=1000, timeout=0.5, allow_address=allow_all)
    assert time.monotonic() - started < 1.5


def test_the_deadline_covers_trickled_headers():
    """A server that sends its headers a byte every 0.1 s held a worker 22 s with timeout=2 before the watchdog."""
    started = time.monotonic()
    with local_server(trickle_headers=True) as url, pytest.raises(FetchError, match=r"within 1 s"):
        fetch_remote(url + "/small", max_bytes=1000, timeout=1, allow_address=allow_all)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("url", ["ftp://example.com/a", "http:///nohost", "file:///etc/passwd"])
def test_only_http_urls_with_a_host(url):
    with pytest.raises(FetchError, match="only http"):
        fetch_remote(url, max_bytes=10, timeout=1)
