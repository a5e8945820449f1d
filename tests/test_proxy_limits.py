"""Timeouts and the connection cap, provoked for real: each ends the right way and is logged."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from conftest import CertFiles
from proxy_helpers import client_context, curl, running_proxy


def _tls(rp, ca: Path, ragged_ok: bool = True) -> ssl.SSLSocket:  # type: ignore[no-untyped-def]
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
