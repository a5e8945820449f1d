"""`serve` options and HANDSHAKE_PROXY_* variables → ProxyConfig, without starting anything."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from proxy.cli import build_parser, config_from_args
from proxy.config import basic_credentials


def _config(argv: list[str], monkeypatch: pytest.MonkeyPatch, **env: str):  # type: ignore[no-untyped-def]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return config_from_args(build_parser().parse_args(["serve", *argv]))


def test_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auth_file = tmp_path / "users"
    auth_file.write_text("# users\nbob:pw2\n\n")
    cfg = _config(["--listen", "0.0.0.0:9443", "--cert", "c.pem", "--key", "k.pem",
                   "--auth", "alice:pw", "--auth-file", str(auth_file),
                   "--connect-port", "443", "--connect-port", "8443,9443",
                   "--allow-client", "10.0.0.0/8", "--redact-header", "Cookie",
                   "--idle-timeout", "5", "--x-forwarded-for"], monkeypatch)
    assert (cfg.listen_host, cfg.listen_port) == ("0.0.0.0", 9443)
    assert cfg.auth == {basic_credentials("alice:pw"), basic_credentials("bob:pw2")}
    assert cfg.connect_ports == {443, 8443, 9443}
    assert cfg.allowed_clients == (ipaddress.ip_network("10.0.0.0/8"),)
    assert b"cookie" in cfg.redact_headers and b"proxy-authorization" in cfg.redact_headers
    assert cfg.idle_timeout == 5.0 and cfg.x_forwarded_for


def test_environment_and_flag_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config(["--idle-timeout", "7"], monkeypatch,
                  HANDSHAKE_PROXY_CERT="c.pem", HANDSHAKE_PROXY_KEY="k.pem",
                  HANDSHAKE_PROXY_IDLE_TIMEOUT="3", HANDSHAKE_PROXY_CONNECT_PORT="443,8443",
                  HANDSHAKE_PROXY_X_FORWARDED_FOR="true", HANDSHAKE_PROXY_MAX_CONNECTIONS="9")
    assert cfg.idle_timeout == 7.0  # the flag wins
    assert cfg.connect_ports == {443, 8443}
    assert cfg.x_forwarded_for is True and cfg.max_connections == 9
    assert (cfg.listen_host, cfg.listen_port) == ("127.0.0.1", 8443)
    assert ipaddress.ip_address("192.168.1.2") in cfg.allowed_clients[4]  # localnet default


@pytest.mark.parametrize("argv, message", [
    (["--cert", "c", "--key", "k", "--connect-port", "https"], "not a port number"),
    (["--cert", "c", "--key", "k", "--allow-client", "nope"], "not a CIDR"),
    (["--cert", "c", "--key", "k", "--auth", "nocolon"], "USER:PASS"),
    (["--cert", "c"], "--key"),
])
def test_bad_values(argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=message):
        _config(argv, monkeypatch)
