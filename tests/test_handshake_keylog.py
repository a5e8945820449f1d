"""Issue 2, point 5: the NSS key-log line (``CLIENT_RANDOM <client_random> <master_secret>``).

For one connection, the line our side writes equals the one OpenSSL wrote
on the other side: Python's ``ssl`` client (``keylog_filename``),
``openssl s_client -keylogfile``, and ``openssl s_server -keylogfile`` with
our client. Also: our client and our server agree. (``SSLKEYLOGFILE`` is the
proxy's business: the sans-IO library only calls the configured sink.)
"""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import (
    IO_TIMEOUT,
    CertFiles,
    MemoryPair,
    OpenSSLServer,
    OurServer,
    drive_client,
    python_client_context,
    require_binary,
)

from handshake import (
    CipherSuite,
    ClientConfig,
    ClientConnection,
    Event,
    HandshakeComplete,
    ServerConfig,
)

LINE = re.compile(r"^CLIENT_RANDOM [0-9a-f]{64} [0-9a-f]{96}$")
SUITES = [CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256, CipherSuite.TLS_RSA_WITH_AES_256_GCM_SHA384]


def client_random_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("CLIENT_RANDOM ")]


def server_config_logging_to(certs: CertFiles, lines: list[str], **options: object) -> ServerConfig:
    return ServerConfig.from_pem_files(certs.chain_pem, certs.key_pem, keylog=lines.append,
                                       **options)


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.openssl_name)
def test_python_ssl_client_key_log(certs: CertFiles, our_server: Callable[..., OurServer],
                                   tmp_path: Path, suite: CipherSuite) -> None:
    ours: list[str] = []
    server = our_server(server_config_logging_to(certs, ours))
    keylog = tmp_path / "python.keylog"
    context = python_client_context(certs.ca_pem, suite.openssl_name)
    context.keylog_filename = str(keylog)
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"k")
        assert tls.recv(1) == b"k"
        tls.unwrap()
    server.join()
    assert server.error is None, repr(server.error)
    assert len(ours) == 1 and LINE.match(ours[0]), ours
    assert client_random_lines(keylog) == ours
    assert ours[0].split()[1] == server.session.client_random.hex()


def test_openssl_s_client_key_log(certs: CertFiles, server_config: ServerConfig,
                                  our_server: Callable[..., OurServer], tmp_path: Path) -> None:
    ours: list[str] = []
    server = our_server(server_config_logging_to(certs, ours), close_after_reply=True)
    keylog = tmp_path / "s_client.keylog"
    args = [require_binary("openssl"), "s_client", "-tls1_2", "-connect",
            f"127.0.0.1:{server.port}", "-CAfile", str(certs.ca_pem), "-servername", "localhost",
            "-ign_eof", "-keylogfile", str(keylog)]
    done = subprocess.run(args, input=b"key log\n", stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=IO_TIMEOUT * 2)
    server.join()
    out = done.stdout.decode(errors="replace")
    assert server.error is None, f"{server.error!r}\n{out}"
    assert len(ours) == 1 and LINE.match(ours[0]), ours
    assert client_random_lines(keylog) == ours, out
    # s_client also prints the master key; it is the second field of our line.
    assert f"Master-Key: {ours[0].split()[2].upper()}" in out, out


def test_openssl_s_server_key_log_with_our_client(
        certs: CertFiles, openssl_server: Callable[..., OpenSSLServer], tmp_path: Path) -> None:
    keylog = tmp_path / "s_server.keylog"
    server = openssl_server(certs.chain_pem, certs.key_pem, keylog=keylog)
    ours: list[str] = []
    conn = ClientConnection(ClientConfig.from_ca_file(certs.ca_pem, "localhost",
                                                      keylog=ours.append))

    def complete(events: list[Event]) -> bool:
        return any(isinstance(e, HandshakeComplete) for e in events)

    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as sock:
        conn.start_handshake()
        drive_client(conn, sock, complete)
        conn.close()
        sock.sendall(conn.data_to_send())
        server.process.wait(timeout=IO_TIMEOUT)
    server.stop()
    assert len(ours) == 1 and LINE.match(ours[0]), ours
    assert client_random_lines(keylog) == ours


def test_our_client_and_server_write_the_same_line(certs: CertFiles) -> None:
    client_lines: list[str] = []
    server_lines: list[str] = []
    MemoryPair.connected(
        ClientConfig.from_ca_file(certs.ca_pem, "localhost", keylog=client_lines.append),
        server_config_logging_to(certs, server_lines))
    assert len(server_lines) == 1 and LINE.match(server_lines[0])
    assert client_lines == server_lines

