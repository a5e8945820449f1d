"""Trailer fields of chunked bodies through the proxy (RFC 9110 §6.5, RFC 9112 §7.1.2): passed
on both ways without hop-by-hop or framing fields, logged as received, and shown by
``log show --full``."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import h11
import pytest
from conftest import CertFiles
from proxy_helpers import FakeOrigin, answering_origin, raw_exchange, running_proxy
from test_har import export, validate

from proxy import logcli

CHUNKED_WITH_TRAILERS = (b"5\r\nhello\r\n0\r\n"
                         b"X-Checksum: abc\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\n")


def _read_response_end(data: bytes) -> h11.EndOfMessage:
    """The end of the one response in ``data``, read by h11 as a client would."""
    reader = h11.Connection(h11.CLIENT)
    reader.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    reader.send(h11.EndOfMessage())
    reader.receive_data(data)
    reader.receive_data(b"")
    body = b""
    while not isinstance(event := reader.next_event(), h11.EndOfMessage):
        if isinstance(event, h11.Data):
            body += event.data
    assert body == b"hello"
    return event


def test_request_trailers_reach_the_origin(certs: CertFiles, tmp_path: Path) -> None:
    received: list[bytes] = []

    def record_request(conn: socket.socket) -> None:
        data = b""
        # The head ends in a blank line, and so does the trailer section after the body.
        while not data.endswith(b"\r\n\r\n") or data.count(b"\r\n\r\n") < 2:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        received.append(data)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        conn.close()

    origin = FakeOrigin(record_request)
    try:
        with running_proxy(certs, tmp_path) as rp:
            answer = raw_exchange(rp, f"POST http://127.0.0.1:{origin.port}/up HTTP/1.1\r\n"
                                      "Host: x\r\nTransfer-Encoding: chunked\r\n"
                                      "TE: trailers\r\nConnection: close, TE\r\n\r\n".encode()
                                  + CHUNKED_WITH_TRAILERS)
            assert answer.startswith(b"HTTP/1.1 200 ")
            records = rp.stop()
    finally:
        origin.close()
    (upstream,) = received
    head, _, body = upstream.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"\r\nTE: trailers\r\nConnection: TE\r\n" in head  # the client's TE: trailers
    # The trailer section of the forwarded body: X-Checksum, and neither the hop-by-hop
    # Keep-Alive nor a Content-Length that a trailer may not carry.
    assert body == b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n"
    (exchange,) = [r for r in records if r["type"] == "exchange"]
    assert exchange["request"]["trailers"] == [
        ["X-Checksum", "abc"], ["Keep-Alive", "timeout=5"], ["Content-Length", "5"]]


@pytest.mark.parametrize("version, passed_on", [("1.1", True), ("1.0", False)])
def test_response_trailers_reach_an_http_11_client(certs: CertFiles, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   version: str, passed_on: bool) -> None:
    # An HTTP/1.0 client gets the body close-delimited, where trailers cannot go; the
    # log keeps them either way.
    with answering_origin(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          + CHUNKED_WITH_TRAILERS) as origin, \
            running_proxy(certs, tmp_path) as rp:
        answer = raw_exchange(rp, f"GET http://127.0.0.1:{origin.port}/down HTTP/{version}\r\n"
                                  "Host: x\r\nConnection: close\r\n\r\n".encode())
        records = rp.stop()
    end = _read_response_end(answer)
    assert end.headers.raw_items() == ([(b"X-Checksum", b"abc")] if passed_on else [])
    (exchange,) = [r for r in records if r["type"] == "exchange"]
    assert exchange["response"]["trailers"] == [
        ["X-Checksum", "abc"], ["Keep-Alive", "timeout=5"], ["Content-Length", "5"]]
    assert "trailers" not in exchange["request"]

    parser = argparse.ArgumentParser(prog="handshake-proxy")
    logcli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["log", "show", "--full", str(rp.log_path)])
    assert args.func(args) == 0
    shown = capsys.readouterr().out
    assert "    < X-Checksum: abc (trailer)" in shown
    assert shown.index("[body, 5 B") < shown.index("X-Checksum: abc (trailer)")

    # HAR has no field for trailers: they come as a custom one, and the file still validates.
    document = export(tmp_path, records)
    validate(document)
    (har_entry,) = document["log"]["entries"]
    assert har_entry["response"]["_trailers"][0] == {"name": "X-Checksum", "value": "abc"}
    assert "_trailers" not in har_entry["request"]
