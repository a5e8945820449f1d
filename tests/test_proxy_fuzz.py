"""Mutation fuzzing of the proxy's HTTP side, through real TLS and a real origin socket.

Mutated requests from a client, and mutated responses from an origin: whatever
the bytes, the proxy answers with an HTTP status or closes, writes no
traceback, logs the exchange, and goes on serving. The mutations come from a
fixed seed. Fuzzing like this found a refused request's broken body escaping
as a traceback, a HEAD request's error answer that was never sent, a host
name the resolver could not encode, and an origin status code of 904 passed
on (each now has its own test in test_proxy_errors.py).
"""

from __future__ import annotations

import random
import socket
import ssl
import time
from pathlib import Path

import pytest
from conftest import CertFiles
from proxy_helpers import FakeOrigin, RunningProxy, client_context, curl, read_request_head, running_proxy

CASES = 120
INSERTS = [b"\r\n", b"Transfer-Encoding: chunked\r\n", b"Content-Length: 5\r\n",
           b"Content-Length: 999\r\n", b"Connection: close\r\n", b"Expect: 100-continue\r\n"]


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        roll, at = rng.random(), rng.randrange(len(out))
        if roll < 0.35:
            out[at] = rng.randrange(256)
        elif roll < 0.55:
            out[at] = rng.choice(b" :\r\n\t/?@[]0123456789-.")
        elif roll < 0.75:
            del out[at:at + rng.randint(1, 8)]
        else:
            out[at:at] = rng.choice([*INSERTS, rng.randbytes(rng.randint(1, 6))])
    return bytes(out)


def exchange(rp: RunningProxy, context: ssl.SSLContext, data: bytes) -> bytes:
    """Send ``data`` over a fresh TLS connection to the proxy; all it answers until it closes."""
    with socket.create_connection(("127.0.0.1", rp.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(data)
        answer = b""
        try:
            while chunk := tls.recv(65536):
                answer += chunk
        except (ssl.SSLError, ConnectionResetError):
            pass  # the proxy may end a broken exchange without close_notify
        return answer


def test_mutated_requests(certs: CertFiles, tmp_path: Path,
                          capfd: pytest.CaptureFixture[str]) -> None:
    rng = random.Random("requests")
    context = client_context(certs.ca_pem)
    timeouts = {"idle_timeout": 0.25, "header_timeout": 0.25}
    with running_proxy(certs, tmp_path, **timeouts) as rp:
        origin = f"127.0.0.1:{rp.origin_port}"
        requests = [
            f"GET http://{origin}/get?q=1 HTTP/1.1\r\nHost: {origin}\r\nAccept: */*\r\n"
            "Connection: close\r\n\r\n",
            f"POST http://{origin}/post HTTP/1.1\r\nHost: {origin}\r\nContent-Length: 11\r\n"
            "Connection: close\r\n\r\nhello world",
            f"POST http://{origin}/chunked HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n"
            "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            f"HEAD http://{origin}/head HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n",
            f"CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\n",
            f"TRACE http://{origin}/trace HTTP/1.1\r\nHost: {origin}\r\nMax-Forwards: 0\r\n"
            "Cookie: a=1\r\nConnection: close\r\n\r\n",
            f"OPTIONS http://{origin} HTTP/1.1\r\nHost: {origin}\r\nMax-Forwards: 1\r\n"
            "Connection: close\r\n\r\n",
            f"POST http://{origin}/trailers HTTP/1.1\r\nHost: {origin}\r\nTE: trailers\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close, TE\r\n\r\n"
            "5\r\nhello\r\n0\r\nX-Sum: 1\r\nKeep-Alive: 1\r\n\r\n",
        ]
        answered = 0
        for _ in range(CASES):
            answer = exchange(rp, context, mutate(rng, rng.choice(requests).encode()))
            answered += answer.startswith(b"HTTP/1.1 ")
        # Still serving normally, and every answered request was logged.
        done = curl(rp, f"{rp.origin}/after")
        assert done.returncode == 0 and b'"/after"' in done.stdout, done
        records = rp.stop()
    assert answered > CASES // 2, answered
    assert len([r for r in records if r["type"] == "exchange"]) >= answered
    assert "Traceback" not in capfd.readouterr().err


def test_mutated_origin_responses(certs: CertFiles, tmp_path: Path,
                                  capfd: pytest.CaptureFixture[str]) -> None:
    rng = random.Random("responses")
    responses = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the origin closes",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ]
    current = [b""]

    def answer_with_the_current_response(conn: socket.socket) -> None:
        read_request_head(conn)
        conn.sendall(current[0])
        time.sleep(0.02)
        conn.close()

    origin = FakeOrigin(answer_with_the_current_response)
    context = client_context(certs.ca_pem)
    try:
        with running_proxy(certs, tmp_path, idle_timeout=0.25, origin_timeout=0.5) as rp:
            for number in range(CASES):
                current[0] = mutate(rng, rng.choice(responses))
                method = rng.choice(["GET", "HEAD", "POST"])
                request = (f"{method} http://127.0.0.1:{origin.port}/r{number} HTTP/1.1\r\n"
                           "Host: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                answer = exchange(rp, context, request.encode())
                # A valid request always gets a status line: the origin's, or the proxy's 502.
                assert answer.startswith(b"HTTP/1.1 "), (method, current[0], answer)
            records = rp.stop()
    finally:
        origin.close()
    assert len([r for r in records if r["type"] == "exchange"]) == CASES
    assert "Traceback" not in capfd.readouterr().err
