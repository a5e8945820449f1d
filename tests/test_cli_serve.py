"""`handshake-proxy serve` as users run it: startup lines, configuration errors, SIGTERM
(issue 3, point 6), environment variables."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CertFiles, make_cert_files, make_leaf_with_key_usage, python_client_context
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from proxy_helpers import BackgroundOrigin, read_log, start_serve

from proxy.origin import pattern_sha256

REPO = Path(__file__).parent.parent


def _serve_fails(*args: str, env: dict[str, str] | None = None) -> str:
    r = subprocess.run([sys.executable, "-m", "proxy", "serve", *args], capture_output=True,
                       text=True, timeout=30, cwd=REPO, env=env)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr  # one clear line, no traceback
    assert lines[0].startswith("handshake-proxy: error: ")
    return lines[0]


def test_startup_prints_address_subject_fingerprint(certs: CertFiles, tmp_path: Path) -> None:
    proc, port, lines = start_serve("--listen", "127.0.0.1:0", "--cert", str(certs.chain_pem),
                                    "--key", str(certs.key_pem))
    try:
        assert lines[0] == f"handshake-proxy listening on https://127.0.0.1:{port}"
        assert lines[1].startswith("  certificate: ") and "O=trustme" in lines[1]
        fingerprint = lines[2].split(": ", 1)[1]
        der = certs.cert.cert_chain_pems[0].bytes()
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        leaf = x509.load_pem_x509_certificate(der)
        expected = leaf.fingerprint(hashes.SHA256()).hex()
        assert fingerprint.replace(":", "").lower() == expected
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0


def test_configuration_errors_exit_nonzero_with_one_line(certs: CertFiles, tmp_path: Path) -> None:
    chain, key = str(certs.chain_pem), str(certs.key_pem)
    assert "no such file" in _serve_fails("--listen", "127.0.0.1:0", "--cert",
                                          str(tmp_path / "missing.pem"), "--key", key)
    other = make_cert_files(tmp_path / "other")
    assert "does not match" in _serve_fails("--listen", "127.0.0.1:0", "--cert", chain,
                                            "--key", str(other.key_pem))
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    assert "RSA" in _serve_fails("--listen", "127.0.0.1:0", "--cert", chain, "--key", str(ec_key))
    signing_chain, signing_key = make_leaf_with_key_usage(certs, tmp_path / "signing-only", False)
    assert "keyEncipherment" in _serve_fails("--listen", "127.0.0.1:0", "--cert",
                                             str(signing_chain), "--key", str(signing_key))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _serve_fails("--listen", f"127.0.0.1:{port}", "--cert", chain, "--key", key)
        assert f"cannot listen on 127.0.0.1:{port}" in line and "in use" in line
    assert "--cert" in _serve_fails("--listen", "127.0.0.1:0")
    assert "cannot open" in _serve_fails("--listen", "127.0.0.1:0", "--cert", chain, "--key", key,
                                         "--keylog", str(tmp_path / "no" / "dir" / "keys.txt"))
    assert "traffic log" in _serve_fails("--listen", "127.0.0.1:0", "--cert", chain, "--key", key,
                                         "--traffic-log", str(tmp_path / "no" / "log.jsonl"))
    assert "not a number" in _serve_fails("--listen", "127.0.0.1:http", "--cert", chain,
                                          "--key", key)


def test_environment_variables_configure_serve(certs: CertFiles, tmp_path: Path) -> None:
    log = tmp_path / "env-traffic.jsonl"
    env = dict(os.environ, HANDSHAKE_PROXY_LISTEN="127.0.0.1:0",
               HANDSHAKE_PROXY_CERT=str(certs.chain_pem), HANDSHAKE_PROXY_KEY=str(certs.key_pem),
               HANDSHAKE_PROXY_TRAFFIC_LOG=str(log), HANDSHAKE_PROXY_REDACT_HEADER="X-Secret")
    origin = BackgroundOrigin()
    proc, port, _ = start_serve(env=env)
    try:
        r = subprocess.run(["curl", "-sS", "--proxy", f"https://127.0.0.1:{port}",
                            "--proxy-cacert", str(certs.ca_pem), "-H", "X-Secret: hunter2",
                            f"{origin.url}/bytes/10"], capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        origin.close()
    (ex,) = [r for r in read_log(log) if r["type"] == "exchange"]
    assert ["X-Secret", "[redacted]"] in ex["request"]["headers"]
    assert "hunter2" not in log.read_text()  # /bytes does not echo headers back


def test_sigterm_lets_a_slow_download_finish(certs: CertFiles, tmp_path: Path) -> None:
    log = tmp_path / "traffic.jsonl"
    size = 2_000_000
    origin = BackgroundOrigin()
    proc, port, _ = start_serve("--listen", "127.0.0.1:0", "--cert", str(certs.chain_pem),
                                "--key", str(certs.key_pem), "--traffic-log", str(log),
                                "--grace-period", "20")
    out = tmp_path / "download.bin"
    try:
        curl = subprocess.Popen(["curl", "-sS", "--proxy", f"https://127.0.0.1:{port}",
                                 "--proxy-cacert", str(certs.ca_pem), "-o", str(out),
                                 f"{origin.url}/slow/{size}?seconds=2"], stderr=subprocess.PIPE)
        # The connection record is written after the handshake: the download is under way.
        deadline = time.monotonic() + 15
        while not any(r["type"] == "connection" for r in read_log(log)):
            assert time.monotonic() < deadline, "no connection record"
            time.sleep(0.02)
        time.sleep(0.3)  # let the response start
        proc.send_signal(signal.SIGTERM)
        assert curl.wait(timeout=30) == 0, curl.stderr.read() if curl.stderr else ""
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        origin.close()
    assert hashlib.sha256(out.read_bytes()).hexdigest() == pattern_sha256(size)
    assert proc.stdout is not None and "handshake-proxy stopped" in proc.stdout.read()
    (ex,) = [r for r in read_log(log) if r["type"] == "exchange"]
    assert ex["error"] is None and ex["response"]["status"] == 200
    assert ex["response"]["body"]["size"] == size
    json.dumps(ex)


@pytest.mark.parametrize(("args", "env"), [
    (("--cipher-suites", "AES256-GCM-SHA384"), {}),                    # OpenSSL's name
    (("--cipher-suites", "tls_rsa_with_aes_256_gcm_sha384"), {}),      # IANA's, any case
    ((), {"HANDSHAKE_PROXY_CIPHER_SUITES": "aes256-gcm-sha384"}),
])
def test_cipher_suites_by_openssl_or_iana_name(certs: CertFiles, args: tuple[str, ...],
                                               env: dict[str, str]) -> None:
    proc, port, _ = start_serve("--listen", "127.0.0.1:0", "--cert", str(certs.chain_pem),
                                "--key", str(certs.key_pem), *args, env={**os.environ, **env})
    try:
        # The client prefers AES128 and so does the proxy by default: AES256 is the option's doing.
        context = python_client_context(certs.ca_pem, "AES128-GCM-SHA256:AES256-GCM-SHA384")
        assert context.maximum_version == ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock, \
                context.wrap_socket(sock, server_hostname="localhost") as tls:
            assert tls.version() == "TLSv1.2"
            cipher = tls.cipher()
            assert cipher is not None and cipher[0] == "AES256-GCM-SHA384"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


@pytest.mark.parametrize(("args", "env", "source"), [
    (("--cipher-suites", "AES128-GCM-SHA256,AES256-SHA256"), {}, "--cipher-suites"),
    ((), {"HANDSHAKE_PROXY_CIPHER_SUITES": "AES256-SHA256"}, "HANDSHAKE_PROXY_CIPHER_SUITES"),
])
def test_unknown_cipher_suite_is_one_line_with_the_accepted_names(
        certs: CertFiles, args: tuple[str, ...], env: dict[str, str], source: str) -> None:
    line = _serve_fails("--listen", "127.0.0.1:0", "--cert", str(certs.chain_pem),
                        "--key", str(certs.key_pem), *args, env={**os.environ, **env})
    assert f"{source}: 'AES256-SHA256' is not a cipher suite" in line
    for name in ("TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256",
                 "TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"):
        assert name in line


def _forwarded_for(proxy_port: int, ca: Path, origin: BackgroundOrigin) -> list[str]:
    """The X-Forwarded-For headers the echo origin received for one request via curl."""
    r = subprocess.run(["curl", "-sS", "--proxy", f"https://127.0.0.1:{proxy_port}",
                        "--proxy-cacert", str(ca), f"{origin.url}/xff"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    headers: list[str] = json.loads(r.stdout)["headers"]
    return [h for h in headers if h.lower().startswith("x-forwarded-for:")]


@pytest.mark.parametrize(("word", "args", "expected"), [
    ("YES", (), True),                           # any case
    ("on", ("--no-x-forwarded-for",), False),    # the flag wins over the variable
    ("off", ("--x-forwarded-for",), True),
    ("0", (), False),
])
def test_switch_variable_and_its_flags(certs: CertFiles, word: str, args: tuple[str, ...],
                                       expected: bool) -> None:
    origin = BackgroundOrigin()
    proc, port, _ = start_serve("--listen", "127.0.0.1:0", "--cert", str(certs.chain_pem),
                                "--key", str(certs.key_pem), *args,
                                env={**os.environ, "HANDSHAKE_PROXY_X_FORWARDED_FOR": word})
    try:
        assert bool(_forwarded_for(port, certs.ca_pem, origin)) is expected
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        origin.close()


def test_an_ipv6_listen_address_is_printed_in_brackets(certs: CertFiles) -> None:
    proc, port, lines = start_serve("--listen", "[::1]:0", "--cert", str(certs.chain_pem),
                                    "--key", str(certs.key_pem))
    try:
        assert lines[0] == f"handshake-proxy listening on https://[::1]:{port}"
        with socket.create_connection(("::1", port), timeout=10):
            pass
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_a_closed_stdout_neither_stops_serve_nor_ends_in_a_traceback(
        certs: CertFiles) -> None:
    """`handshake-proxy serve ... | head -1`: the reader goes away after the first line."""
    origin = BackgroundOrigin()
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--listen", "127.0.0.1:0",
                             "--cert", str(certs.chain_pem), "--key", str(certs.key_pem)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        port = int(first.rsplit(":", 1)[1])
        proc.stdout.close()  # what head does after its line
        # Still serving after its stdout is gone.
        assert _forwarded_for(port, certs.ca_pem, origin) == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0  # "handshake-proxy stopped" went nowhere, quietly
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
        origin.close()
