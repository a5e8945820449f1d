"""Issue 2, point 1: our server against Python's ``ssl`` client over TCP on 127.0.0.1.

Each suite: the handshake completes, data flows both ways, both sides close
with close_notify, and ``SSLSocket.cipher()``/``version()`` agree with what
our server reports it negotiated.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import pytest
from conftest import IO_TIMEOUT, CertFiles, OurServer, python_client_context

from handshake import (
    AlertReceived,
    ApplicationData,
    CipherSuite,
    ClientFinished,
    ClientHello,
    ConnectionClosed,
    HandshakeComplete,
    ServerConfig,
    ServerFinished,
    ServerHello,
)

SUITES = [CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256, CipherSuite.TLS_RSA_WITH_AES_256_GCM_SHA384]


def recv_exactly(tls: ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = tls.recv(size - len(data))
        assert chunk, f"EOF after {len(data)} of {size} bytes"
        data += chunk
    return data


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.openssl_name)
def test_python_ssl_client(certs: CertFiles, server_config: ServerConfig,
                           our_server: Callable[..., OurServer], suite: CipherSuite) -> None:
    server = our_server(server_config, reply=lambda data: data.upper())
    context = python_client_context(certs.ca_pem, suite.openssl_name)
    context.set_alpn_protocols(["http/1.1"])
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() == "TLSv1.2"
        name, protocol, bits = tls.cipher()  # type: ignore[misc]
        assert (name, protocol) == (suite.openssl_name, "TLSv1.2")
        assert bits == suite.key_len * 8
        assert tls.selected_alpn_protocol() == "http/1.1"
        tls.sendall(b"hello, server")
        assert recv_exactly(tls, 13) == b"HELLO, SERVER"
        # unwrap() sends close_notify and waits for the server's close_notify.
        tls.unwrap()
    server.join()
    assert server.error is None, repr(server.error)
    session = server.session
    assert session.version == 0x0303
    assert session.cipher_suite is suite
    assert session.server_name == "localhost"
    assert session.alpn_protocol == "http/1.1"
    assert session.extended_master_secret
    assert server.events[-1] == ConnectionClosed(clean=True)
    # The server reports every step of the seed's ladder, in order.
    steps = [type(e) for e in server.events if not isinstance(
        e, (ApplicationData, AlertReceived, ConnectionClosed))]
    assert steps == [ClientHello, ServerHello, ClientFinished, ServerFinished, HandshakeComplete]


def test_python_ssl_client_both_suites_offered_gets_server_preference(
        certs: CertFiles, our_server: Callable[..., OurServer]) -> None:
    config = ServerConfig.from_pem_files(
        certs.chain_pem, certs.key_pem,
        cipher_suites=[CipherSuite.TLS_RSA_WITH_AES_256_GCM_SHA384,
                       CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256])
    server = our_server(config)
    context = python_client_context(certs.ca_pem, "AES128-GCM-SHA256:AES256-GCM-SHA384")
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.cipher()[0] == "AES256-GCM-SHA384"  # type: ignore[index]
        tls.sendall(b"x")
        assert recv_exactly(tls, 1) == b"x"
        tls.unwrap()
    server.join()
    assert server.session.cipher_suite is CipherSuite.TLS_RSA_WITH_AES_256_GCM_SHA384


def test_python_ssl_client_capable_of_tls13_gets_tls12(
        certs: CertFiles, server_config: ServerConfig,
        our_server: Callable[..., OurServer]) -> None:
    server = our_server(server_config)
    context = python_client_context(certs.ca_pem, "AES128-GCM-SHA256", tls12_only=False)
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() == "TLSv1.2"
        tls.sendall(b"ping")
        assert recv_exactly(tls, 4) == b"ping"
        tls.unwrap()
    server.join()
    hello = next(e for e in server.events if isinstance(e, ClientHello))
    assert 0x0304 in hello.offered_versions and 0x0303 in hello.offered_versions
    assert server.session.version == 0x0303


def test_python_ssl_client_large_data_both_ways(
        certs: CertFiles, server_config: ServerConfig,
        our_server: Callable[..., OurServer]) -> None:
    server = our_server(server_config)
    payload = bytes(range(256)) * 1024  # 256 KiB: many full records each way
    context = python_client_context(certs.ca_pem, "AES128-GCM-SHA256")
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(payload)
        assert recv_exactly(tls, len(payload)) == payload
        tls.unwrap()
    server.join()
    assert server.error is None, repr(server.error)
    assert server.received == payload
    assert server.session.server_name is None  # an IP address is not sent as SNI
