"""`handshake-proxy certs` and `handshake-proxy client --trace` (issue 3, point 3)."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

from conftest import CertFiles, hold_refused_port
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from proxy_helpers import BackgroundOrigin, client_context, start_serve

REPO = Path(__file__).parent.parent


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def test_certs_command_then_serve_then_client_trace(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    r = cli("certs", "--out", str(out), "--name", "localhost", "--name", "127.0.0.1")
    assert r.returncode == 0, r.stderr
    ca, chain, key = out / "ca.pem", out / "cert.pem", out / "key.pem"
    leaf, issuer = x509.load_pem_x509_certificates(chain.read_bytes())
    assert leaf.public_key().key_size == 2048  # type: ignore[union-attr]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not san.critical
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical and ExtendedKeyUsageOID.SERVER_AUTH in eku.value
    assert issuer == x509.load_pem_x509_certificate(ca.read_bytes())

    origin = BackgroundOrigin()
    proc, port, _ = start_serve("--listen", "127.0.0.1:0", "--cert", str(chain), "--key",
                                str(key))
    try:
        r = cli("client", f"{origin.url}/traced", "--proxy", f"https://localhost:{port}",
                "--ca", str(ca), "--trace", "-X", "POST", "-d", "hello proxy",
                "-H", "X-Demo: yes")
        assert r.returncode == 0, r.stderr
        text = r.stdout
        # Every seed step, in order, with the TLS 1.2 messages that carry it.
        expected = [
            ("1. Client Hello", "TLS 1.2: ClientHello"),
            ("2. Server Hello + certificate", "TLS 1.2: ServerHello, Certificate, ServerHelloDone"),
            ("3. Client agrees", "TLS 1.2: ClientKeyExchange, ChangeCipherSpec, Finished"),
            ("4. Server agrees", "TLS 1.2: ChangeCipherSpec, Finished"),
            ("5. Encrypted communication", "TLS 1.2: application_data"),
        ]
        pos = 0
        for step, messages in expected:
            i = text.index(step, pos)
            assert text.index(messages, i) > i
            pos = i
        # Arrows point the way each message travels.
        def row(step: str) -> str:
            (line,) = [ln for ln in text.splitlines() if f". {step} " in ln and "|" in ln]
            return line
        assert "->| proxy" in row("Client Hello")
        assert "|<-" in row("Server Hello + certificate")
        assert "->| proxy" in row("Client agrees")
        assert "|<-" in row("Server agrees")
        assert "|<=" in row("Encrypted communication") and "=>|" in row("Encrypted communication")
        assert "chain and name verified by the client" in text
        assert "pre-master secret (48 bytes) encrypted with the server's RSA public key" in text
        assert "TLS_RSA_WITH_AES_128_GCM_SHA256" in text
        assert "HTTP/1.1 200 OK" in text
        echo = json.loads(text[text.index("{"):])
        assert echo["method"] == "POST" and echo["body_size"] == len("hello proxy")
        assert "X-Demo: yes" in echo["headers"]

        # The same certificates satisfy OpenSSL (curl) and Python's ssl as clients.
        r2 = subprocess.run(["curl", "-sS", "--proxy", f"https://localhost:{port}",
                             "--proxy-cacert", str(ca), f"{origin.url}/curl"],
                            capture_output=True, timeout=30)
        assert r2.returncode == 0, r2.stderr
        import socket
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                client_context(ca).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() == "TLSv1.2"
            cipher = tls.cipher()
            assert cipher is not None and cipher[0] in ("AES128-GCM-SHA256", "AES256-GCM-SHA384")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        origin.close()


def test_client_refuses_an_untrusted_proxy(certs: CertFiles, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert cli("certs", "--out", str(other)).returncode == 0
    origin = BackgroundOrigin()
    proc, port, _ = start_serve("--listen", "127.0.0.1:0", "--cert", str(certs.chain_pem),
                                "--key", str(certs.key_pem))
    try:
        r = cli("client", f"{origin.url}/x", "--proxy", f"https://localhost:{port}",
                "--ca", str(other / "ca.pem"))
        assert r.returncode == 2
        assert "certificate was not accepted" in r.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        origin.close()


def test_cli_help_lists_commands() -> None:
    r = cli("--help")
    assert r.returncode == 0
    for command in ("serve", "certs", "client", "origin", "demo"):
        assert command in r.stdout
    assert ssl.OPENSSL_VERSION  # the interop peers are real OpenSSL


def test_client_names_the_proxy_it_cannot_reach(certs: CertFiles) -> None:
    with hold_refused_port() as port:
        r = cli("client", "http://127.0.0.1:9/", "--proxy", f"https://localhost:{port}",
                "--ca", str(certs.ca_pem))
    assert r.returncode == 2
    assert r.stderr.strip() == ("handshake-proxy: error: cannot connect to the proxy at "
                                f"localhost:{port}: connection refused")


def test_client_sends_the_proxy_urls_credentials_as_basic_auth(certs: CertFiles,
                                                               tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("# proxy users\nalice:s3cret:with colon\n")
    origin = BackgroundOrigin()
    proc, port, _ = start_serve("--listen", "127.0.0.1:0", "--cert", str(certs.chain_pem),
                                "--key", str(certs.key_pem), "--auth-file", str(users))
    try:
        def status(proxy: str, *args: str) -> str:
            r = cli("client", f"{origin.url}/auth", "--proxy", proxy, "--ca", str(certs.ca_pem),
                    *args)
            assert r.returncode == 0, r.stderr
            return r.stdout.splitlines()[0]

        # Percent-encoded in the URL as curl takes it: %3A is the ':' inside the password.
        assert status(f"https://alice:s3cret%3Awith%20colon@localhost:{port}") == "HTTP/1.1 200 OK"
        assert status(f"https://alice:wrong@localhost:{port}").startswith("HTTP/1.1 407")
        assert status(f"https://localhost:{port}").startswith("HTTP/1.1 407")

        # One way to give them: the URL's and a header's would compete.
        r = cli("client", f"{origin.url}/auth", "--proxy", f"https://alice:pw@localhost:{port}",
                "--ca", str(certs.ca_pem), "-H", "Proxy-Authorization: Basic eDp5")
        assert r.returncode == 2
        assert "given twice" in r.stderr

        # A bad proxy URL is quoted back without its password.
        r = cli("client", f"{origin.url}/auth", "--proxy", "https://alice:s3cret@localhost:port",
                "--ca", str(certs.ca_pem))
        assert r.returncode == 2 and "s3cret" not in r.stderr and "alice:***@" in r.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        origin.close()


def test_client_names_a_url_it_cannot_send(certs: CertFiles) -> None:
    # Checked before connecting (the proxy here does not exist): a URL that cannot be put
    # on a request line is one message naming it, not h11's "Illegal target characters".
    for url, expected in [
        ("http://x/a b", "has characters a request line cannot carry"),
        ("", "is empty or has characters"),
        ("http://x/\u00e9", "non-ASCII"),
        ("http://[::1", "cannot be read: Invalid IPv6 URL"),
    ]:
        r = cli("client", url, "--proxy", "https://127.0.0.1:1", "--ca", str(certs.ca_pem))
        assert r.returncode == 2, r
        assert r.stderr.startswith(f"handshake-proxy: error: the URL {url!r} "), r.stderr
        assert expected in r.stderr, r.stderr


def test_client_names_a_ca_file_it_cannot_read(certs: CertFiles, tmp_path: Path) -> None:
    unreadable = tmp_path / "unreadable.pem"
    unreadable.write_bytes(certs.ca_pem.read_bytes())
    unreadable.chmod(0)
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate\n")
    cases = [(tmp_path / "missing.pem", "no such file"), (tmp_path, "it is a directory"),
             (not_pem, "no PEM certificate could be read")]
    if os.geteuid() != 0:  # root reads any file
        cases.append((unreadable, "permission denied"))
    for ca, expected in cases:
        r = cli("client", "http://127.0.0.1:9/", "--proxy", "https://127.0.0.1:1", "--ca", str(ca))
        assert r.returncode == 2, r
        (line,) = r.stderr.splitlines()
        assert line.startswith("handshake-proxy: error: ") and str(ca) in line, line
        assert expected in line, line
    r = cli("client", "http://127.0.0.1:9/", "--proxy", "https://127.0.0.1:1",
            "--ca", str(certs.ca_pem), "--data-file", str(tmp_path / "nothing"))
    assert r.stderr.strip() == (f"handshake-proxy: error: --data-file {tmp_path / 'nothing'}: "
                                "no such file")


def test_client_says_when_the_proxy_speaks_plain_http(certs: CertFiles) -> None:
    # Pointed at an HTTP server (the origin itself, or an http:// proxy), TLS alone can
    # only say "unknown record content type 72", the 'H' of "HTTP/1.1 400".
    origin = BackgroundOrigin()
    try:
        r = cli("client", "http://127.0.0.1:9/", "--proxy", f"https://127.0.0.1:{origin.port}",
                "--ca", str(certs.ca_pem))
    finally:
        origin.close()
    assert r.returncode == 2, r
    assert r.stderr.strip() == (
        "handshake-proxy: error: the proxy answered in plain HTTP, not TLS ('HTTP/1.1 400 "
        "Bad Request'): is it a proxy for http:// rather than https://, or not a proxy?")
