"""Configuration mistakes get one line naming the problem and exit status 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CertFiles
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


def serve(certs: CertFiles, *args: str, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--listen", "127.0.0.1:0",
         "--cert", str(certs.chain_pem), "--key", str(certs.key_pem), *args],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, **(env or {})}, cwd=Path(__file__).resolve().parents[1])


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The README's promise for a configuration error: status 2, one line on stderr."""
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no usage block, no traceback
    assert lines[0].startswith("handshake-proxy: error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize(("args", "env", "expected"), [
    ((), {"HANDSHAKE_PROXY_IDLE_TIMEOUT": "abc"},
     "'abc' (from HANDSHAKE_PROXY_IDLE_TIMEOUT) is not a number"),
    (("--max-connections", "-1"), {}, "--max-connections: '-1' is below the minimum of 1"),
    (("--idle-timeout", "-5"), {}, "--idle-timeout: '-5' is below the minimum"),
    (("--auth-file", "no-such-file"), {}, "cannot read the auth file 'no-such-file'"),
    (("--cipher-suites", "FOO"), {}, "--cipher-suites: 'FOO' is not a cipher suite"),
    # float() takes these; nan compares false with every bound and would turn a timeout off.
    (("--idle-timeout", "nan"), {}, "--idle-timeout: 'nan' is not a finite number"),
    (("--handshake-timeout", "inf"), {}, "--handshake-timeout: 'inf' is not a finite number"),
    (("--grace-period=-inf",), {}, "--grace-period: '-inf' is not a finite number"),
    ((), {"HANDSHAKE_PROXY_ORIGIN_TIMEOUT": "NaN"},
     "'NaN' (from HANDSHAKE_PROXY_ORIGIN_TIMEOUT) is not a finite number"),
    # The flag's text is not blamed on the variable, even when they are the same.
    (("--header-timeout", "nan"), {"HANDSHAKE_PROXY_HEADER_TIMEOUT": "nan"},
     "--header-timeout: 'nan' is not a finite number"),
    # A switch variable with a word it does not know is an error, not silently off.
    ((), {"HANDSHAKE_PROXY_REQUIRE_EMS": "maybe"},
     "HANDSHAKE_PROXY_REQUIRE_EMS: 'maybe' is not a switch value; accepted (any case): "
     "1/true/yes/on or 0/false/no/off"),
    ((), {"HANDSHAKE_PROXY_X_FORWARDED_FOR": "enabled"},
     "HANDSHAKE_PROXY_X_FORWARDED_FOR: 'enabled' is not a switch value"),
    (("--no-such-option",), {}, "unrecognized arguments: --no-such-option"),
    # Asking for authentication and naming no credentials never leaves the proxy open.
    (("--auth", ""), {}, "--auth is set but names no USER:PASS"),
    ((), {"HANDSHAKE_PROXY_AUTH": " , "}, "HANDSHAKE_PROXY_AUTH is set but names no USER:PASS"),
    ((), {"HANDSHAKE_PROXY_AUTH_FILE": ""}, "HANDSHAKE_PROXY_AUTH_FILE is set but names no file"),
])
def test_bad_serve_settings(certs: CertFiles, args: tuple[str, ...], env: dict[str, str],
                            expected: str) -> None:
    line = one_line_error(serve(certs, *args, env=env))
    assert expected in line


@pytest.mark.parametrize("content", ["", "\n\n", "# users\n  # alice:pw (disabled)\n"])
@pytest.mark.parametrize("via", ["flag", "variable"])
def test_an_auth_file_without_credentials_is_refused(certs: CertFiles, tmp_path: Path,
                                                     content: str, via: str) -> None:
    users = tmp_path / "users"
    users.write_text(content)
    if via == "flag":
        result = serve(certs, "--auth-file", str(users))
    else:
        result = serve(certs, env={"HANDSHAKE_PROXY_AUTH_FILE": str(users)})
    assert one_line_error(result).endswith(f"auth file {str(users)!r} has no USER:PASS lines")


def test_a_malformed_auth_file_line_names_the_file_and_line(certs: CertFiles,
                                                            tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("# users\nalice:pw\nbob-s3cret\n")
    line = one_line_error(serve(certs, "--auth-file", str(users)))
    assert line.endswith(f"auth file {str(users)!r} line 3: expected USER:PASS")
    assert "s3cret" not in line  # the line may be a password: it is not echoed


def test_a_directory_given_as_certificate_or_key(certs: CertFiles, tmp_path: Path) -> None:
    for option, label in (("--cert", "certificate chain"), ("--key", "key")):
        args = {"--cert": str(certs.chain_pem), "--key": str(certs.key_pem), option: str(tmp_path)}
        result = subprocess.run(
            [sys.executable, "-m", "proxy", "serve", "--listen", "127.0.0.1:0",
             "--cert", args["--cert"], "--key", args["--key"]],
            capture_output=True, text=True, timeout=30, cwd=Path(__file__).resolve().parents[1])
        line = one_line_error(result)
        assert line.endswith(f"cannot read the {label} {str(tmp_path)!r}: it is a directory")


def test_bodies_naming_a_file_is_not_a_directory(certs: CertFiles, tmp_path: Path) -> None:
    existing = tmp_path / "bodies.txt"
    existing.write_text("not a directory\n")
    line = one_line_error(serve(certs, "--bodies", str(existing)))
    assert line.endswith(f"--bodies {str(existing)!r} is not a directory")
    line = one_line_error(serve(certs, env={"HANDSHAKE_PROXY_BODIES": str(existing)}))
    assert line.endswith(f"HANDSHAKE_PROXY_BODIES {str(existing)!r} is not a directory")
    line = one_line_error(serve(certs, "--bodies", str(existing / "sub")))
    assert f"--bodies {str(existing / 'sub')!r}: cannot create the directory" in line
    assert existing.read_text() == "not a directory\n"


def test_a_key_given_as_the_certificate(certs: CertFiles) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--listen", "127.0.0.1:0",
         "--cert", str(certs.key_pem), "--key", str(certs.key_pem)],
        capture_output=True, text=True, timeout=30, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2
    assert result.stderr.strip().endswith("is not a PEM certificate chain")


def test_a_bad_serve_variable_does_not_break_other_commands(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "proxy", "log", "--help"],
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "HANDSHAKE_PROXY_IDLE_TIMEOUT": "abc"},
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["issuer", "subject"])
def test_a_certificate_that_cryptography_cannot_fully_parse(certs: CertFiles, tmp_path: Path,
                                                            name: str) -> None:
    # The outer DER is whole, so the PEM loads; the name's organizationName is tagged as a
    # BIT STRING, which cryptography refuses (with a TypeError) only when the name is read.
    leaf = certs.cert.cert_chain_pems[0].bytes()
    der = x509.load_pem_x509_certificate(leaf).public_bytes(Encoding.DER)
    utf8_org = b"\x06\x03\x55\x04\x0a\x0c"
    assert der.count(utf8_org) == 2  # the issuer's, then the subject's
    at = der.find(utf8_org) if name == "issuer" else der.rfind(utf8_org)
    broken = x509.load_der_x509_certificate(der[:at + 5] + b"\x03" + der[at + 6:])
    chain = tmp_path / "chain.pem"
    chain.write_bytes(broken.public_bytes(Encoding.PEM) + certs.ca.cert_pem.bytes())
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--listen", "127.0.0.1:0",
         "--cert", str(chain), "--key", str(certs.key_pem)],
        capture_output=True, text=True, timeout=30, cwd=Path(__file__).resolve().parents[1])
    line = one_line_error(result)
    assert line.endswith(f"{str(chain)}: a certificate is malformed "
                         "(TypeError: oid must be X500_UNIQUE_IDENTIFIER for BitString type.)"), line
