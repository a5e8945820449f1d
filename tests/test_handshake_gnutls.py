"""Interop with GnuTLS: gnutls-cli against our server, our client against gnutls-serv.

Python's ssl, curl and ``openssl s_client`` all run on OpenSSL, so the other
interop tests could pass by sharing OpenSSL's habits. GnuTLS shares no code
with it: agreeing with both is evidence that we read the RFCs, not one library.

gnutls-serv has no option to listen on loopback only; it binds every address
for the few seconds a test runs, and the tests reach it on 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import (
    IO_TIMEOUT,
    CertFiles,
    OurServer,
    ServerProcess,
    drive_client,
    free_port,
    require_binary,
)

from handshake import (
    ApplicationData,
    CipherSuite,
    ClientConfig,
    ClientConnection,
    HandshakeComplete,
    ServerConfig,
)

# GnuTLS's names for our two suites' ciphers.
GNUTLS_CIPHER = {
    CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256: "AES-128-GCM",
    CipherSuite.TLS_RSA_WITH_AES_256_GCM_SHA384: "AES-256-GCM",
}
# A priority string offering TLS 1.2 with RSA key transport and one cipher only.
ONLY = "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+RSA:-CIPHER-ALL:+{cipher}"
# GnuTLS's defaults (TLS 1.3 first, ECDHE) with RSA key transport allowed too.
DEFAULTS_WITH_RSA = "NORMAL:+RSA"


def gnutls_cli(certs: CertFiles, port: int, priority: str, *extra: str, data: bytes,
               keylog: Path | None = None) -> str:
    env = dict(os.environ)
    if keylog is not None:
        env["SSLKEYLOGFILE"] = str(keylog)
    args = [require_binary("gnutls-cli"), "--x509cafile", str(certs.ca_pem),
            "--priority", priority, "-p", str(port), *extra, "localhost"]
    done = subprocess.run(args, input=data, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=IO_TIMEOUT * 2, env=env)
    return done.stdout.decode(errors="replace")


@pytest.mark.parametrize("suite", list(GNUTLS_CIPHER), ids=lambda s: s.openssl_name)
def test_gnutls_cli_against_our_server(certs: CertFiles, our_server: Callable[..., OurServer],
                                       tmp_path: Path, suite: CipherSuite) -> None:
    our_lines: list[str] = []
    config = ServerConfig.from_pem_files(certs.chain_pem, certs.key_pem, keylog=our_lines.append)
    server = our_server(config, reply=lambda data: data.upper(), close_after_reply=True)
    keylog = tmp_path / "gnutls-keys.txt"
    cipher = GNUTLS_CIPHER[suite]
    out = gnutls_cli(certs, server.port, ONLY.format(cipher=cipher),
                     data=b"hello from gnutls-cli\n", keylog=keylog)
    server.join()
    assert server.error is None, f"{server.error!r}\n{out}"
    assert "Status: The certificate is trusted." in out, out
    assert f"Description: (TLS1.2-X.509)-(RSA)-({cipher})" in out, out
    assert "Options: extended master secret, safe renegotiation," in out, out
    assert "HELLO FROM GNUTLS-CLI" in out, out
    assert server.received == b"hello from gnutls-cli\n"
    assert server.session.cipher_suite is suite
    assert server.session.extended_master_secret
    assert server.session.server_name == "localhost"
    # Both ends derived the same master secret for the same client random.
    assert len(our_lines) == 1 and our_lines[0].startswith("CLIENT_RANDOM ")
    assert keylog.read_text().splitlines() == our_lines


def test_gnutls_cli_offering_tls13_gets_tls12_and_alpn(
        certs: CertFiles, server_config: ServerConfig,
        our_server: Callable[..., OurServer]) -> None:
    server = our_server(server_config, close_after_reply=True)
    out = gnutls_cli(certs, server.port, DEFAULTS_WITH_RSA, "--alpn", "http/1.1", data=b"ping\n")
    server.join()
    assert server.error is None, f"{server.error!r}\n{out}"
    assert "Description: (TLS1.2-X.509)-(RSA)-(AES-128-GCM)" in out, out
    assert "Application protocol: http/1.1" in out, out
    assert "ping" in out, out
    assert server.session.alpn_protocol == "http/1.1"


def test_gnutls_cli_rehandshake_is_declined(certs: CertFiles, server_config: ServerConfig,
                                            our_server: Callable[..., OurServer]) -> None:
    # gnutls-cli --rehandshake renegotiates right after the handshake and, on a
    # no_renegotiation warning, tries again (16 times in GnuTLS 3.7) before it gives up.
    # Each attempt is declined; our server never fails, and stays under its cap of 32
    # records in a row without data.
    server = our_server(server_config)
    out = gnutls_cli(certs, server.port, ONLY.format(cipher="AES-128-GCM"), "--rehandshake",
                     data=b"")
    server.join()
    assert server.error is None, f"{server.error!r}\n{out}"
    assert "Received alert [100]: No renegotiation is allowed" in out, out
    assert len(server.sessions) == 1


class GnuTLSServer(ServerProcess):
    """``gnutls-serv --echo`` with our test certificate (answers each line with itself)."""

    def __init__(self, certs: CertFiles, priority: str) -> None:
        self.port = free_port()
        super().__init__([require_binary("gnutls-serv"), "--echo", "-p", str(self.port),
                          "--x509certfile", str(certs.chain_pem),
                          "--x509keyfile", str(certs.key_pem), "--priority", priority],
                         ready="Echo Server listening on IPv4")


@pytest.fixture
def gnutls_server() -> Iterator[Callable[..., GnuTLSServer]]:
    servers: list[GnuTLSServer] = []

    def start(certs: CertFiles, priority: str = DEFAULTS_WITH_RSA) -> GnuTLSServer:
        servers.append(GnuTLSServer(certs, priority))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize("suite", list(GNUTLS_CIPHER), ids=lambda s: s.openssl_name)
def test_our_client_against_gnutls_serv(certs: CertFiles,
                                        gnutls_server: Callable[..., GnuTLSServer],
                                        suite: CipherSuite) -> None:
    server = gnutls_server(certs)
    config = ClientConfig.from_ca_file(certs.ca_pem, "localhost", cipher_suites=[suite])
    conn = ClientConnection(config)
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as sock:
        conn.start_handshake()
        events = drive_client(conn, sock, lambda e: any(isinstance(x, HandshakeComplete)
                                                        for x in e))
        session = next(e for e in events if isinstance(e, HandshakeComplete))
        assert session.cipher_suite is suite
        assert session.extended_master_secret
        conn.send_application_data(b"hello gnutls-serv\n")
        events = drive_client(conn, sock, lambda e: b"\n" in b"".join(
            x.data for x in e if isinstance(x, ApplicationData)))
        assert b"".join(x.data for x in events if isinstance(x, ApplicationData)) == (
            b"hello gnutls-serv\n")
        conn.close()
        sock.sendall(conn.data_to_send())
    printed = server.stop()
    assert f"Description: (TLS1.2-X.509)-(RSA)-({GNUTLS_CIPHER[suite]})" in printed, printed
    assert "Options: extended master secret, safe renegotiation," in printed, printed
    assert "Given server name[1]: localhost" in printed, printed
