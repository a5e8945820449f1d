"""The echo origin (`handshake-proxy origin`): a malformed request or a route value it cannot use
gets its 4xx and why; the routes send what they promise."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from proxy_helpers import BackgroundOrigin


@pytest.fixture
def origin() -> Iterator[BackgroundOrigin]:
    running = BackgroundOrigin()
    yield running
    running.close()


def ask(origin: BackgroundOrigin, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", origin.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


@pytest.mark.parametrize(("request_bytes", "status", "why"), [
    (b"NOT A REQUEST LINE\r\n\r\n", b"400", b"illegal request line"),
    (b"GET / HTTP/1.1\r\nNo-Colon\r\n\r\n", b"400", b"illegal header line"),
    (b"GET / HTTP/1.1\r\n\r\n", b"400", b"Missing mandatory Host: header"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", b"501",
     b"Only Transfer-Encoding: chunked is supported"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nshort", b"400",
     b"without sending complete message body (received 5 bytes, expected 10)"),
])
def test_a_malformed_request_gets_its_status_and_why(origin: BackgroundOrigin,
                                                     request_bytes: bytes, status: bytes,
                                                     why: bytes) -> None:
    # It used to close without a word, which looks like a dead origin through a proxy.
    with socket.create_connection(("127.0.0.1", origin.port), timeout=10) as sock:
        sock.sendall(request_bytes)
        sock.shutdown(socket.SHUT_WR)  # the cut-short body ends here
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer
    assert answer.split(b"\r\n")[0] != b"HTTP/1.1 " + status + b" ", answer  # a reason phrase
    assert b"Connection: close" in answer
    assert why in answer.partition(b"\r\n\r\n")[2], answer
    assert ask(origin, b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 200 ")


@pytest.mark.parametrize(("path", "why"), [
    ("/status/199", b"/status/199: give a status from 200 to 599"),
    ("/status/0", b"give a status from 200 to 599"),
    ("/status/1000", b"give a status from 200 to 599"),
    ("/status/abc", b"give a status from 200 to 599"),
    ("/slow/10?seconds=abc", b"seconds='abc': give a number from 0 to 3600"),
    ("/slow/10?seconds=-1", b"give a number from 0 to 3600"),
    ("/slow/10?seconds=nan", b"give a number from 0 to 3600"),
    ("/slow/10?seconds=1e9", b"give a number from 0 to 3600"),
])
def test_a_route_value_it_cannot_use_is_a_400_naming_it(origin: BackgroundOrigin, path: str,
                                                        why: bytes) -> None:
    # These used to end the connection without an answer (h11 refused the status, float()
    # raised), or, for /status/abc, to echo as if no status had been asked for.
    answer = ask(origin, f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert why in answer.partition(b"\r\n\r\n")[2], answer


@pytest.mark.parametrize("code", [200, 204, 404, 599])
def test_status_route(origin: BackgroundOrigin, code: int) -> None:
    answer = ask(origin, f"GET /status/{code} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                 .encode())
    assert answer.startswith(f"HTTP/1.1 {code} ".encode()), answer


def test_slow_sends_the_pattern_over_the_time_asked(origin: BackgroundOrigin) -> None:
    # 200,000 bytes in pieces no larger than the pattern block, at any phase, over 0.5 s.
    import time

    from proxy.origin import pattern
    start = time.monotonic()
    answer = ask(origin, b"GET /slow/200000?seconds=0.5 HTTP/1.1\r\nHost: a\r\n"
                         b"Connection: close\r\n\r\n")
    took = time.monotonic() - start
    assert answer.partition(b"\r\n\r\n")[2] == pattern(200000)
    assert took >= 0.45, took  # it did wait (how long beyond is the machine's business)
