"""The proxy's settings: one frozen value built by the CLI (flags + environment) or by tests."""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from handshake import CipherSuite

__all__ = ["ProxyConfig", "DEFAULT_ALLOWED_CLIENTS", "parse_host_port", "parse_networks",
           "basic_credentials", "read_auth_file", "parse_cipher_suites"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Squid's `localnet` default: loopback and the private / link-local ranges.
DEFAULT_ALLOWED_CLIENTS = (
    "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
    "100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10",
)

# Always removed from what the log shows, whatever the options say.
ALWAYS_REDACTED = frozenset({b"proxy-authorization"})


def parse_host_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[v6]:PORT`` for IPv6); raise ValueError with a clear message."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        if default_port is None:
            raise ValueError(f"{text!r} is not HOST:PORT")
        host, port_text = text, str(default_port)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ValueError(f"{text!r} has no host")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} is out of range")
    return host, port


def parse_networks(items: list[str] | tuple[str, ...]) -> tuple[IPNetwork, ...]:
    nets = []
    for item in items:
        try:
            nets.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"--allow-client {item!r} is not a CIDR network") from None
    return tuple(nets)


# Each suite by its IANA name (the library's CipherSuite member) and by the name
# OpenSSL, curl and Python's ssl use (CipherSuite.openssl_name); any case.
_SUITES_BY_NAME = {name.upper(): suite for suite in CipherSuite
                   for name in (suite.name, suite.openssl_name)}


def _cipher_suite(name: str, source: str = "--cipher-suites") -> CipherSuite:
    """The suite ``name`` spells; ValueError naming ``source`` and the accepted spellings."""
    try:
        return _SUITES_BY_NAME[name.strip().upper()]
    except KeyError:
        accepted = ", ".join(f"{s.name} or {s.openssl_name}" for s in CipherSuite)
        raise ValueError(f"{source}: {name!r} is not a cipher suite; accepted (any case): "
                         f"{accepted}") from None


def parse_cipher_suites(names: list[str] | tuple[str, ...],
                        source: str = "--cipher-suites") -> tuple[CipherSuite, ...]:
    """The suites that IANA or OpenSSL names (any case) spell, in order."""
    return tuple(_cipher_suite(name, source) for name in names)


def basic_credentials(user_pass: str, source: str = "--auth") -> bytes:
    """The exact Proxy-Authorization value a client sends for ``USER:PASS``."""
    if ":" not in user_pass:
        raise ValueError(f"{source} wants USER:PASS")
    return b"Basic " + base64.b64encode(user_pass.encode())


def read_auth_file(path: str) -> list[tuple[str, str]]:
    """(where, USER:PASS) for each line; blank lines and ``#`` comments ignored.

    ValueError names the file (and the line) when a line is not USER:PASS or no
    line is: a file that was meant to switch authentication on must never leave
    it off. OSError when the file cannot be read.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"auth file {path!r} is not UTF-8 text") from None
    found: list[tuple[str, str]] = []
    for lineno, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        # The line itself stays out of the message: it may be a password.
        if ":" not in entry:
            raise ValueError(f"auth file {path!r} line {lineno}: expected USER:PASS")
        found.append((f"auth file {path!r} line {lineno}", entry))
    if not found:
        raise ValueError(f"auth file {path!r} has no USER:PASS lines")
    return found


@dataclass(frozen=True)
class ProxyConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8443
    cert: str | None = None            # PEM chain, leaf first
    key: str | None = None             # PEM RSA key
    # None: terminate nothing, speak plain HTTP (used to test the HTTP side alone).
    tls: bool = True
    traffic_log: str | None = None
    keylog: str | None = None
    cipher_suites: tuple[CipherSuite, ...] = ()  # empty = the library's default order
    require_extended_master_secret: bool = False
    # Timeouts in seconds.
    handshake_timeout: float = 10.0
    idle_timeout: float = 60.0          # keep-alive wait for the next request, and body inactivity
    header_timeout: float = 10.0        # from a request's first byte to its complete header block
    connect_timeout: float = 10.0
    origin_timeout: float = 30.0        # waiting for the origin's response head / next body bytes
    grace_period: float = 10.0          # SIGTERM: how long in-flight exchanges may finish
    max_connections: int = 4096
    max_header_bytes: int = 64 * 1024
    pool_size: int = 100                # idle keep-alive origin connections kept per host:port
    pool_idle_timeout: float = 30.0
    allowed_clients: tuple[IPNetwork, ...] = field(
        default_factory=lambda: parse_networks(DEFAULT_ALLOWED_CLIENTS))
    # Accepted Proxy-Authorization values (see basic_credentials); empty = no auth.
    auth: frozenset[bytes] = frozenset()
    redact_headers: frozenset[bytes] = ALWAYS_REDACTED
    connect_ports: frozenset[int] = frozenset({443})
    x_forwarded_for: bool = False
    preview_bytes: int = 4096
    bodies_dir: str | None = None       # serve --bodies: whole bodies stored here (bodystore.py)

    def __post_init__(self) -> None:
        lowered = frozenset(h.lower() for h in self.redact_headers) | ALWAYS_REDACTED
        object.__setattr__(self, "redact_headers", lowered)
        if self.tls and (not self.cert or not self.key):
            raise ValueError("the proxy needs --cert CHAIN.pem and --key KEY.pem")
