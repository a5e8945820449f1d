"""Issue 2, point 2: ``openssl s_client -tls1_2`` against our server; extended master secret.

s_client verifies our chain against the test CA (verify return code 0),
reports ``Extended master secret: yes``, sends a line and gets our answer.
Then the handshake without RFC 7627: served by default, refused with
handshake_failure when the server requires it (our client with it turned
off, and Python's ``ssl`` with OpenSSL's SSL_OP_NO_EXTENDED_MASTER_SECRET).
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable

import pytest
from conftest import IO_TIMEOUT, CertFiles, MemoryPair, OurServer, python_client_context, require_binary

from handshake import (
    AlertDescription,
    AlertReceived,
    CipherSuite,
    ClientConfig,
    ClientHello,
    ProtocolError,
    RemoteProtocolError,
    ServerConfig,
)

SUITES = [CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256, CipherSuite.TLS_RSA_WITH_AES_256_GCM_SHA384]
# OpenSSL 3's SSL_OP_NO_EXTENDED_MASTER_SECRET (SSL_OP_BIT(0)); Python has no name for it.
SSL_OP_NO_EXTENDED_MASTER_SECRET = 1 << 0


def s_client(certs: CertFiles, port: int, *extra: str, data: bytes) -> str:
    args = [require_binary("openssl"), "s_client", "-tls1_2", "-connect", f"127.0.0.1:{port}",
            "-CAfile", str(certs.ca_pem), "-servername", "localhost",
            "-verify_hostname", "localhost", "-verify_return_error", "-ign_eof", *extra]
    # subprocess.run kills s_client if it outlives the timeout.
    done = subprocess.run(args, input=data, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=IO_TIMEOUT * 2)
    return done.stdout.decode(errors="replace")


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.openssl_name)
def test_openssl_s_client(certs: CertFiles, server_config: ServerConfig,
                          our_server: Callable[..., OurServer], suite: CipherSuite) -> None:
    # The server answers the first line in upper case, then sends close_notify.
    server = our_server(server_config, reply=lambda data: data.upper(), close_after_reply=True)
    out = s_client(certs, server.port, "-cipher", suite.openssl_name,
                   data=b"hello from s_client\n")
    server.join()
    assert server.error is None, f"{server.error!r}\n{out}"
    assert "Verify return code: 0 (ok)" in out, out
    assert "Extended master secret: yes" in out, out
    assert "Protocol  : TLSv1.2" in out, out
    assert f"Cipher    : {suite.openssl_name}" in out, out
    assert "HELLO FROM S_CLIENT" in out, out
    assert server.received == b"hello from s_client\n"
    assert server.session.cipher_suite is suite
    assert server.session.extended_master_secret
    assert server.session.server_name == "localhost"


def test_openssl_s_client_against_a_server_requiring_ems(
        certs: CertFiles, our_server: Callable[..., OurServer]) -> None:
    config = ServerConfig.from_pem_files(certs.chain_pem, certs.key_pem,
                                         require_extended_master_secret=True)
    server = our_server(config, close_after_reply=True)
    out = s_client(certs, server.port, data=b"ems\n")
    server.join()
    assert server.error is None, f"{server.error!r}\n{out}"
    assert "Extended master secret: yes" in out, out
    assert server.received == b"ems\n"


def fatal_alert_reaches_client(pair: MemoryPair, expected: AlertDescription) -> None:
    """The client reads the server's fatal alert: an AlertReceived event, or an error carrying it."""
    data = pair.server.data_to_send()
    try:
        events = pair.client.receive_data(data)
    except RemoteProtocolError as error:
        assert error.alert is expected, error
        return
    alerts = [e for e in events if isinstance(e, AlertReceived)]
    assert [(a.level, a.description) for a in alerts] == [(2, expected)], events


def test_our_client_without_ems_is_served_by_default(certs: CertFiles,
                                                     server_config: ServerConfig) -> None:
    client_config = ClientConfig.from_ca_file(certs.ca_pem, "localhost",
                                              extended_master_secret=False)
    pair = MemoryPair.connected(client_config, server_config)
    hello = next(e for e in pair.server_events if isinstance(e, ClientHello))
    assert not hello.extended_master_secret
    assert pair.client.session is not None and pair.server.session is not None
    assert not pair.client.session.extended_master_secret
    assert not pair.server.session.extended_master_secret
    pair.client.send_application_data(b"question")
    pair.pump()
    pair.server.send_application_data(b"answer")
    pair.pump()
    assert pair.application_data("server") == b"question"
    assert pair.application_data("client") == b"answer"


def test_our_client_without_ems_is_refused_when_required(certs: CertFiles) -> None:
    client_config = ClientConfig.from_ca_file(certs.ca_pem, "localhost",
                                              extended_master_secret=False)
    server_config = ServerConfig.from_pem_files(certs.chain_pem, certs.key_pem,
                                                require_extended_master_secret=True)
    pair = MemoryPair(client_config, server_config).start()
    with pytest.raises(ProtocolError) as info:
        pair.server.receive_data(pair.client.data_to_send())
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.alert is AlertDescription.handshake_failure
    fatal_alert_reaches_client(pair, AlertDescription.handshake_failure)
    assert not pair.client.handshake_complete


def test_python_ssl_client_without_ems(certs: CertFiles, server_config: ServerConfig,
                                       our_server: Callable[..., OurServer]) -> None:
    server = our_server(server_config)
    context = python_client_context(certs.ca_pem, "AES128-GCM-SHA256")
    context.options |= SSL_OP_NO_EXTENDED_MASTER_SECRET
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"no ems")
        assert tls.recv(100) == b"no ems"
        tls.unwrap()
    server.join()
    assert server.error is None, repr(server.error)
    assert not server.session.extended_master_secret


def test_python_ssl_client_without_ems_refused_when_required(
        certs: CertFiles, our_server: Callable[..., OurServer]) -> None:
    config = ServerConfig.from_pem_files(certs.chain_pem, certs.key_pem,
                                         require_extended_master_secret=True)
    server = our_server(config)
    context = python_client_context(certs.ca_pem, "AES128-GCM-SHA256")
    context.options |= SSL_OP_NO_EXTENDED_MASTER_SECRET
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as raw, \
            pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE|handshake failure"):
        context.wrap_socket(raw, server_hostname="localhost")
    server.join()
    assert isinstance(server.error, RemoteProtocolError), repr(server.error)
    assert server.error.alert is AlertDescription.handshake_failure


def test_openssl_s_client_reconnect_gets_full_handshakes(
        certs: CertFiles, server_config: ServerConfig,
        our_server: Callable[..., OurServer]) -> None:
    # -reconnect offers the first session's ID (and a ticket) five more times; we never
    # resume, so every connection is a new, complete, verified handshake.
    server = our_server(server_config, connections=6)
    out = s_client(certs, server.port, "-reconnect", "-no_ign_eof", data=b"")
    server.join()
    assert server.error is None, f"{server.error!r}\n{out}"
    assert len(server.sessions) == 6
    assert out.count("New, TLSv1.2, Cipher is") == 6 and "Reused," not in out, out
    assert out.count("Verify return code: 0 (ok)") == 6, out


def test_openssl_s_client_renegotiation_is_refused(
        certs: CertFiles, server_config: ServerConfig,
        our_server: Callable[..., OurServer]) -> None:
    # s_client's "R" command renegotiates; we answer no_renegotiation (RFC 5746 / RFC 5246
    # §7.2.2), and OpenSSL gives up on the renegotiation with a handshake_failure of its own.
    server = our_server(server_config)
    args = [require_binary("openssl"), "s_client", "-tls1_2", "-connect",
            f"127.0.0.1:{server.port}", "-CAfile", str(certs.ca_pem), "-servername", "localhost"]
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.decode(errors="replace"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("Extended master secret" in line for line in lines), lines)
        assert process.stdin is not None
        process.stdin.write(b"R\n")
        process.stdin.flush()
        process.wait(timeout=IO_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=IO_TIMEOUT)
        reader.join(IO_TIMEOUT)
    server.join()
    out = "".join(lines)
    assert "RENEGOTIATING" in out and "no renegotiation" in out, out
    assert server.error is None, repr(server.error)
    alerts = [e for e in server.events if isinstance(e, AlertReceived)]
    assert [(a.level, a.description) for a in alerts] == [
        (2, AlertDescription.handshake_failure)], server.events
    assert len(server.sessions) == 1  # the first handshake, and no second one


def wait_for(condition: Callable[[], bool], lines: list[str]) -> None:
    deadline = time.monotonic() + IO_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "".join(lines)
        time.sleep(0.02)
