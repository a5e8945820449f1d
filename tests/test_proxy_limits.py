"""Timeouts and the connection cap, provoked for real: each ends the right way and is logged."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path

from conftest import CertFiles
from proxy_helpers import (
    FakeOrigin,
    RunningProxy,
    client_context,
    curl,
    read_request_head,
    running_proxy,
)


def _tls(rp: RunningProxy, ca: Path, ragged_ok: bool = True) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", rp.port), timeout=10)
    return client_context(ca).wrap_socket(raw, server_hostname="localhost",
                                          suppress_ragged_eofs=ragged_ok)


def _read_all(tls: ssl.SSLSocket) -> bytes:
    data = b""
    while True:
        try:
            chunk = tls.recv(65536)
        except (ssl.SSLEOFError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


def test_slow_header_block_gets_408(certs: CertFiles, tmp_path: Path) -> None:
    with running_proxy(certs, tmp_path, header_timeout=0.5) as rp:
        with _tls(rp, certs.ca_pem) as tls:
            tls.sendall(b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n")  # never finished
            answer = _read_all(tls)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"request header not received within 0.5s" in answer
        assert curl(rp, f"{rp.origin}/after").returncode == 0
        records = rp.stop()
    assert [r["response"]["status"] for r in records if r["type"] == "exchange"][0] == 408


def test_silent_client_handshake_timeout(certs: CertFiles, tmp_path: Path) -> None:
    with running_proxy(certs, tmp_path, handshake_timeout=0.5) as rp:
        with socket.create_connection(("127.0.0.1", rp.port), timeout=10) as raw:
            assert raw.recv(100) == b""  # the proxy hung up
        records = rp.stop()
    (rec,) = records
    assert rec["type"] == "connection" and "no complete handshake within 0.5s" in rec["error"]


def test_idle_keep_alive_connection_is_closed_with_close_notify(certs: CertFiles, tmp_path: Path) -> None:
    with running_proxy(certs, tmp_path, idle_timeout=0.5) as rp:
        # ragged_ok=False: an EOF without close_notify would raise SSLEOFError here.
        with _tls(rp, certs.ca_pem, ragged_ok=False) as tls:
            tls.sendall(f"GET {rp.origin}/once HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            answer = b""
            while b'"/once"' not in answer:
                answer += tls.recv(65536)
            assert tls.recv(100) == b""  # a clean close (close_notify), not a reset
        records = rp.stop()
    assert len([r for r in records if r["type"] == "exchange"]) == 1


def test_connection_cap(certs: CertFiles, tmp_path: Path) -> None:
    with running_proxy(certs, tmp_path, max_connections=2) as rp:
        first, second = _tls(rp, certs.ca_pem), _tls(rp, certs.ca_pem)
        try:
            with socket.create_connection(("127.0.0.1", rp.port), timeout=10) as third:
                assert third.recv(100) == b""
        finally:
            first.close()
            second.close()
        records = rp.stop()
    refused = [r for r in records if r["type"] == "connection" and r["error"]]
    assert len(refused) == 1 and "too many connections" in refused[0]["error"]


def _open_tunnel(rp: RunningProxy, port: int) -> ssl.SSLSocket:
    tls = _tls(rp, rp.certs.ca_pem)
    tls.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += tls.recv(1)
    assert head.startswith(b"HTTP/1.1 200 "), head
    return tls


def test_a_tunnel_carrying_bytes_one_way_is_not_idle(certs: CertFiles, tmp_path: Path) -> None:
    # A download through CONNECT: the client sends its request and then nothing for longer
    # than --idle-timeout while the origin keeps sending. Idle means no byte either way.
    def trickles(conn: socket.socket) -> None:
        read_request_head(conn)
        for i in range(8):
            conn.sendall(b"chunk %d\n" % i)
            time.sleep(0.3)
        conn.close()

    origin = FakeOrigin(trickles)
    try:
        with running_proxy(certs, tmp_path, idle_timeout=1.0,
                           connect_ports=frozenset({origin.port})) as rp:
            with _open_tunnel(rp, origin.port) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\n\r\n")
                received = _read_all(tls)
            (rec,) = rp.exchanges()
    finally:
        origin.close()
    assert received == b"".join(b"chunk %d\n" % i for i in range(8))
    assert rec["error"] is None
    assert rec["tunnel"]["bytes_down"] == len(received)


def test_a_silent_tunnel_is_closed_after_the_idle_timeout(certs: CertFiles,
                                                          tmp_path: Path) -> None:
    stop = threading.Event()

    def silent(conn: socket.socket) -> None:
        stop.wait(30)

    origin = FakeOrigin(silent)
    try:
        with running_proxy(certs, tmp_path, idle_timeout=1.0,
                           connect_ports=frozenset({origin.port})) as rp:
            with _open_tunnel(rp, origin.port) as tls:
                assert _read_all(tls) == b""  # closed by the proxy, not by this test
            (rec,) = rp.exchanges()
    finally:
        stop.set()
        origin.close()
    assert rec["error"] == "tunnel closed: no bytes either way for 1s"

