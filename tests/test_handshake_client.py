"""Issue 2, point 3: our client against ``openssl s_server -tls1_2`` and a Python ``ssl`` server.

The handshake, chain and hostname/IP verification, data both ways, clean
close. Then the refusals: an untrusted CA, an expired certificate and a
wrong hostname each end the handshake on our side with a certificate alert
(certificate_unknown for a chain we cannot trust, bad_certificate for one that
names another host) and a CertificateError whose ``reason`` says which.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import tls_wire as wire
import trustme
from conftest import (
    IO_TIMEOUT,
    CertFiles,
    MemoryPair,
    OpenSSLServer,
    drive_client,
    expect_fatal_alert,
    make_cert_files,
    make_leaf_with_key_usage,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from handshake import (
    AlertDescription,
    AlertLevel,
    AlertReceived,
    ApplicationData,
    CertificateError,
    CipherSuite,
    ClientConfig,
    ClientConnection,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    ProtocolError,
    RemoteProtocolError,
    ServerConfig,
    ServerConnection,
    ServerHello,
)

SUITES = [CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256, CipherSuite.TLS_RSA_WITH_AES_256_GCM_SHA384]


def completed(events: list[Event]) -> bool:
    return any(isinstance(e, HandshakeComplete) for e in events)


def received(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, ApplicationData))


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.openssl_name)
@pytest.mark.parametrize("server_name", ["localhost", "127.0.0.1"])
def test_our_client_against_openssl_s_server(certs: CertFiles,
                                             openssl_server: Callable[..., OpenSSLServer],
                                             suite: CipherSuite, server_name: str) -> None:
    server = openssl_server(certs.chain_pem, certs.key_pem, "-cipher", suite.openssl_name)
    conn = ClientConnection(ClientConfig.from_ca_file(certs.ca_pem, server_name,
                                                      cipher_suites=[suite]))
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as sock:
        events = conn.start_handshake()
        events += drive_client(conn, sock, completed)
        hello = next(e for e in events if isinstance(e, ServerHello))
        assert hello.certificate_verified
        assert hello.certificate_key_bits == 2048
        assert conn.session is not None
        assert conn.session.cipher_suite is suite
        assert conn.session.version == 0x0303
        assert conn.session.extended_master_secret  # OpenSSL offers and accepts RFC 7627
        conn.send_application_data(b"hello\n")
        # s_server -rev answers each line reversed.
        events = drive_client(conn, sock, lambda ev: received(ev).endswith(b"olleh\n"))
        conn.close()
        sock.sendall(conn.data_to_send())
        server.process.wait(timeout=IO_TIMEOUT)
    out = server.stop()
    assert "CONNECTION CLOSED" in out, out
    assert f"Ciphersuite: {suite.openssl_name}" in out, out


def s_server_asking_for_a_client_certificate(
        certs: CertFiles, openssl_server: Callable[..., OpenSSLServer],
        verify_flag: str) -> tuple[OpenSSLServer, ClientConnection]:
    """s_server with -verify (a certificate is optional) or -Verify (required), and our client."""
    server = openssl_server(certs.chain_pem, certs.key_pem, verify_flag, "1",
                            "-CAfile", str(certs.ca_pem))
    return server, ClientConnection(ClientConfig.from_ca_file(certs.ca_pem, "localhost"))


def test_a_server_asking_for_a_client_certificate_gets_an_empty_one(
        certs: CertFiles, openssl_server: Callable[..., OpenSSLServer]) -> None:
    # RFC 5246 §7.4.6: we have no client certificate, so we answer s_server's
    # CertificateRequest (-verify: optional) with an empty Certificate and carry on.
    server, conn = s_server_asking_for_a_client_certificate(certs, openssl_server, "-verify")
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as sock:
        conn.start_handshake()
        drive_client(conn, sock, completed)
        conn.send_application_data(b"no certificate\n")
        drive_client(conn, sock, lambda ev: received(ev).endswith(b"etacifitrec on\n"))
        conn.close()
        sock.sendall(conn.data_to_send())
        server.process.wait(timeout=IO_TIMEOUT)
    out = server.stop()
    assert "CONNECTION CLOSED" in out, out


def test_a_server_requiring_a_client_certificate_refuses_us_with_an_alert(
        certs: CertFiles, openssl_server: Callable[..., OpenSSLServer]) -> None:
    server, conn = s_server_asking_for_a_client_certificate(certs, openssl_server, "-Verify")
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as sock:
        conn.start_handshake()
        events = drive_client(conn, sock, lambda ev: any(isinstance(e, ConnectionClosed)
                                                         for e in ev))
    out = server.stop()
    # s_server got our empty Certificate (it parsed it: "did not return") and refused it.
    assert AlertReceived(AlertLevel.fatal, AlertDescription.handshake_failure) in events, events
    assert not conn.handshake_complete and conn.state == "failed"
    assert "peer did not return a certificate" in out, out


class PythonSSLServer:
    """Python's ``ssl`` as the server: reads a message, answers it upside down, then closes."""

    def __init__(self, certs: CertFiles, ciphers: str) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.maximum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_ciphers(ciphers)
        self.context.load_cert_chain(str(certs.chain_pem), str(certs.key_pem))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(IO_TIMEOUT)
        self.port: int = self.listener.getsockname()[1]
        self.received = b""
        self.clean_close = False
        self.error: BaseException | None = None
        self.cipher: tuple[str, str, int] | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            raw, _ = self.listener.accept()
            raw.settimeout(IO_TIMEOUT)
            with self.context.wrap_socket(raw, server_side=True,
                                          suppress_ragged_eofs=False) as tls:
                self.cipher = tls.cipher()
                self.received = tls.recv(1000)
                tls.sendall(self.received.swapcase())
                # recv() returns b"" only on the client's close_notify (else SSLEOFError).
                self.clean_close = tls.recv(1000) == b""
                tls.unwrap()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.listener.close()

    def join(self) -> None:
        self.thread.join(IO_TIMEOUT + 5)
        assert not self.thread.is_alive()


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.openssl_name)
@pytest.mark.parametrize("server_name", ["localhost", "127.0.0.1"])
def test_our_client_against_python_ssl_server(certs: CertFiles, suite: CipherSuite,
                                              server_name: str) -> None:
    server = PythonSSLServer(certs, suite.openssl_name)
    conn = ClientConnection(ClientConfig.from_ca_file(certs.ca_pem, server_name))
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as sock:
        events = conn.start_handshake()
        events += drive_client(conn, sock, completed)
        assert conn.session is not None and conn.session.cipher_suite is suite
        conn.send_application_data(b"Hello, Python")
        events = drive_client(conn, sock, lambda ev: len(received(ev)) >= 13)
        assert received(events) == b"hELLO, pYTHON"
        conn.close()
        events = drive_client(conn, sock,
                              lambda ev: any(isinstance(e, ConnectionClosed) for e in ev))
        assert events[-1] == ConnectionClosed(clean=True)
    server.join()
    assert server.error is None, repr(server.error)
    assert server.received == b"Hello, Python"
    assert server.clean_close
    assert server.cipher is not None and server.cipher[:2] == (suite.openssl_name, "TLSv1.2")


# -- refusals ----------------------------------------------------------------------------------

def refused(client_config: ClientConfig, server_config: ServerConfig,
            alert: AlertDescription) -> CertificateError:
    """Run our client against our server in memory until the client refuses the certificate
    with ``alert``."""
    pair = MemoryPair(client_config, server_config).start()
    pair.server.receive_data(pair.client.data_to_send())
    with pytest.raises(ProtocolError) as info:
        pair.client.receive_data(pair.server.data_to_send())
    error = info.value
    assert isinstance(error, CertificateError), f"{type(error).__name__}: {error}"
    assert error.alert is alert, error.alert.name
    # The alert goes out before anything else: the ClientKeyExchange is never sent.
    queued = pair.client.data_to_send()
    assert wire.alert_of(queued) == (2, error.alert), queued.hex()
    try:
        events = pair.server.receive_data(queued)
    except RemoteProtocolError as server_error:
        assert server_error.alert is error.alert
    else:
        assert AlertReceived(level=AlertLevel.fatal, description=error.alert) in [
            e for e in events if isinstance(e, AlertReceived)], events
    assert not pair.client.handshake_complete
    return error


def says(error: CertificateError, *words: str) -> None:
    message = str(error).lower()
    assert any(word in message for word in words), f"{error!s} names none of {words}"


def test_refuses_an_untrusted_ca(certs: CertFiles, server_config: ServerConfig,
                                 tmp_path: Path) -> None:
    other = make_cert_files(tmp_path / "other")  # a different CA, same names
    client_config = ClientConfig.from_ca_file(other.ca_pem, "localhost")
    error = refused(client_config, server_config, AlertDescription.certificate_unknown)
    assert error.reason == "untrusted"
    says(error, "trust", "issuer", "unknown ca", "untrusted", "chain")


def test_refuses_an_expired_certificate(certs: CertFiles, tmp_path: Path) -> None:
    yesterday = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    expired = make_cert_files(tmp_path / "expired", "localhost", not_after=yesterday)
    server_config = ServerConfig.from_pem_files(expired.chain_pem, expired.key_pem)
    client_config = ClientConfig.from_ca_file(expired.ca_pem, "localhost")
    error = refused(client_config, server_config, AlertDescription.certificate_unknown)
    assert error.reason == "expired"
    says(error, "expired", "not valid after", "validity")


def test_one_client_config_checks_validity_at_each_handshake(tmp_path: Path) -> None:
    # The config builds its verifier once; the time it checks against is each handshake's.
    soon = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) \
        + datetime.timedelta(seconds=3)
    brief = make_cert_files(tmp_path / "brief", "localhost", not_after=soon)
    server_config = ServerConfig.from_pem_files(brief.chain_pem, brief.key_pem)
    client_config = ClientConfig.from_ca_file(brief.ca_pem, "localhost")
    MemoryPair.connected(client_config, server_config)
    time.sleep(max(0.0, (soon - datetime.datetime.now(datetime.timezone.utc)).total_seconds())
               + 1.1)
    error = refused(client_config, server_config, AlertDescription.certificate_unknown)
    assert error.reason == "expired"


def test_a_server_name_that_is_not_an_a_label_is_refused_at_once(certs: CertFiles) -> None:
    with pytest.raises(ValueError, match="server_name 'b\u00fccher.example': .*A-label"):
        ClientConfig.from_ca_file(certs.ca_pem, "b\u00fccher.example")


@pytest.mark.parametrize("server_name", ["example.com", "127.0.0.2", "localhost.evil"])
def test_refuses_a_wrong_hostname(certs: CertFiles, server_config: ServerConfig,
                                  server_name: str) -> None:
    client_config = ClientConfig.from_ca_file(certs.ca_pem, server_name)
    error = refused(client_config, server_config, AlertDescription.bad_certificate)
    assert error.reason == "hostname"
    says(error, server_name)


def test_refuses_a_wrong_hostname_from_openssl_s_server(
        certs: CertFiles, openssl_server: Callable[..., OpenSSLServer]) -> None:
    server = openssl_server(certs.chain_pem, certs.key_pem)
    conn = ClientConnection(ClientConfig.from_ca_file(certs.ca_pem, "example.com"))
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as sock:
        conn.start_handshake()
        with pytest.raises(CertificateError) as info:
            drive_client(conn, sock, completed)
        assert info.value.reason == "hostname"
        sock.sendall(conn.data_to_send())
        server.process.wait(timeout=IO_TIMEOUT)
    out = server.stop()
    assert info.value.alert is AlertDescription.bad_certificate
    # s_server reports the alert our client sent, by name.
    assert "bad certificate" in out.lower(), out


def test_a_server_connection_works_with_the_same_certificates(
        certs: CertFiles, server_config: ServerConfig) -> None:
    # Control for the refusals: the right CA and name are accepted, by DNS name and by IP.
    for name in ("localhost", "127.0.0.1"):
        pair = MemoryPair.connected(ClientConfig.from_ca_file(certs.ca_pem, name), server_config)
        hello = next(e for e in pair.client_events if isinstance(e, ServerHello))
        assert hello.certificate_verified
        assert isinstance(pair.server, ServerConnection)


def test_refuses_a_certificate_whose_key_usage_forbids_key_encipherment(
        certs: CertFiles, tmp_path: Path) -> None:
    # RFC 5246 §7.4.2: with RSA key transport, keyEncipherment MUST be set when key usage is
    # present; otherwise the client would encrypt its secret to a key not meant for it.
    # Our server refuses to load such a certificate, so a hand-made flight carries it.
    chain_pem, _ = make_leaf_with_key_usage(certs, tmp_path / "signing-only", False)
    chain = [c.public_bytes(serialization.Encoding.DER)
             for c in x509.load_pem_x509_certificates(chain_pem.read_bytes())]
    client = ClientConnection(ClientConfig.from_ca_file(certs.ca_pem, "localhost"))
    client.start_handshake()
    client.data_to_send()
    error = expect_fatal_alert(client, wire.handshake_records(wire.server_flight(chain)),
                               AlertDescription.unsupported_certificate)
    assert isinstance(error, CertificateError) and error.reason == "invalid"
    says(error, "keyencipherment")


@pytest.mark.parametrize("key_encipherment", [True, None],
                         ids=["key-encipherment", "no-key-usage"])
def test_accepts_key_encipherment_or_no_key_usage_at_all(certs: CertFiles, tmp_path: Path,
                                                         key_encipherment: bool | None) -> None:
    server_config = ServerConfig.from_pem_files(
        *make_leaf_with_key_usage(certs, tmp_path / "leaf", key_encipherment))
    pair = MemoryPair.connected(ClientConfig.from_ca_file(certs.ca_pem, "localhost"),
                                server_config)
    assert pair.client.handshake_complete


# -- chains and names --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def intermediate_certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """Root → intermediate → leaf for localhost, *.example.com and ::1; chain file has the
    leaf and the intermediate, the client trusts only the root."""
    directory = tmp_path_factory.mktemp("intermediate")
    root = trustme.CA(key_type=trustme.KeyType.RSA)
    intermediate = root.create_child_ca(key_type=trustme.KeyType.RSA)
    leaf = intermediate.issue_cert("localhost", "*.example.com", "::1",
                                   key_type=trustme.KeyType.RSA)
    files = CertFiles(root, leaf, directory / "ca.pem", directory / "chain.pem",
                      directory / "key.pem")
    root.cert_pem.write_to_path(str(files.ca_pem))
    files.chain_pem.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(files.key_pem))
    return files


@pytest.mark.parametrize("server_name", ["localhost", "LOCALHOST", "api.example.com",
                                         "API.Example.Com", "::1", "0:0:0:0:0:0:0:1"])
def test_chain_through_an_intermediate_and_names(intermediate_certs: CertFiles,
                                                 server_name: str) -> None:
    server_config = ServerConfig.from_pem_files(intermediate_certs.chain_pem,
                                                intermediate_certs.key_pem)
    pair = MemoryPair.connected(ClientConfig.from_ca_file(intermediate_certs.ca_pem, server_name),
                                server_config)
    hello = next(e for e in pair.client_events if isinstance(e, ServerHello))
    assert hello.certificate_verified
    assert hello.certificate_chain_length == 2
    # The client describes the leaf as the server does (it reads it from the DER it got).
    served = next(e for e in pair.server_events if isinstance(e, ServerHello))
    leaf = x509.load_pem_x509_certificates(intermediate_certs.chain_pem.read_bytes())[0]
    assert (hello.certificate_subject, hello.certificate_issuer, hello.certificate_key_bits,
            hello.certificate_sha256) == (
        served.certificate_subject, served.certificate_issuer, served.certificate_key_bits,
        leaf.fingerprint(hashes.SHA256()))


@pytest.mark.parametrize("server_name", ["example.com", "a.b.example.com", "::2"])
def test_wildcard_and_ip_mismatches(intermediate_certs: CertFiles, server_name: str) -> None:
    server_config = ServerConfig.from_pem_files(intermediate_certs.chain_pem,
                                                intermediate_certs.key_pem)
    error = refused(ClientConfig.from_ca_file(intermediate_certs.ca_pem, server_name),
                    server_config, AlertDescription.bad_certificate)
    assert error.reason == "hostname"


def test_missing_intermediate_is_untrusted(intermediate_certs: CertFiles, tmp_path: Path) -> None:
    leaf_only = tmp_path / "leaf.pem"
    leaf_only.write_bytes(intermediate_certs.cert.cert_chain_pems[0].bytes())
    server_config = ServerConfig.from_pem_files(leaf_only, intermediate_certs.key_pem)
    error = refused(ClientConfig.from_ca_file(intermediate_certs.ca_pem, "localhost"),
                    server_config, AlertDescription.certificate_unknown)
    assert error.reason == "untrusted"


def test_our_client_against_python_ssl_server_with_an_intermediate(
        intermediate_certs: CertFiles) -> None:
    server = PythonSSLServer(intermediate_certs, "AES128-GCM-SHA256")
    conn = ClientConnection(ClientConfig.from_ca_file(intermediate_certs.ca_pem,
                                                      "www.example.com"))
    with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as sock:
        events = conn.start_handshake()
        events += drive_client(conn, sock, completed)
        hello = next(e for e in events if isinstance(e, ServerHello))
        assert hello.certificate_verified and hello.certificate_chain_length == 2
        conn.send_application_data(b"abc")
        events = drive_client(conn, sock, lambda ev: len(received(ev)) >= 3)
        assert received(events) == b"ABC"
        conn.close()
        drive_client(conn, sock, lambda ev: any(isinstance(e, ConnectionClosed) for e in ev))
    server.join()
    assert server.error is None, repr(server.error)
    assert server.clean_close
