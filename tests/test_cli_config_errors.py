"""Configuration mistakes get one line naming the problem and exit status 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CertFiles


def serve(certs: CertFiles, *args: str, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--listen", "127.0.0.1:0",
         "--cert", str(certs.chain_pem), "--key", str(certs.key_pem), *args],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, **(env or {})}, cwd=Path(__file__).resolve().parents[1])


@pytest.mark.parametrize(("args", "env", "expected"), [
    ((), {"HANDSHAKE_PROXY_IDLE_TIMEOUT": "abc"},
     "'abc' (from HANDSHAKE_PROXY_IDLE_TIMEOUT) is not a number"),
    (("--max-connections", "-1"), {}, "--max-connections: '-1' is below the minimum of 1"),
    (("--idle-timeout", "-5"), {}, "--idle-timeout: '-5' is below the minimum"),
    (("--auth-file", "no-such-file"), {}, "cannot read the auth file 'no-such-file'"),
    (("--cipher-suites", "FOO"), {}, "--cipher-suites: 'FOO' is not a cipher suite"),
])
def test_bad_serve_settings(certs: CertFiles, args: tuple[str, ...], env: dict[str, str],
                            expected: str) -> None:
    result = serve(certs, *args, env=env)
    assert result.returncode == 2, result
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


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
