"""The echo origin (`handshake-proxy origin`) answers a malformed request with its 4xx and why."""

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
