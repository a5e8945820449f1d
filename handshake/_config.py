"""Configuration of each side: certificates, keys, suites, extensions, key log."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import _crypto
from ._constants import CipherSuite
from ._messages import encode_certificate

__all__ = ["ClientConfig", "KeyLogSink", "ServerConfig"]

# A key-log sink receives one NSS key-log line (no newline) per session.
KeyLogSink = Callable[[str], None]

DEFAULT_CIPHER_SUITES: tuple[CipherSuite, ...] = (
    CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_RSA_WITH_AES_256_GCM_SHA384,
)
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 4096


def _check_suites(suites: Sequence[CipherSuite]) -> tuple[CipherSuite, ...]:
    checked = tuple(CipherSuite(s) for s in suites)
    if not checked:
        raise ValueError("at least one cipher suite is needed")
    if len(set(checked)) != len(checked):
        raise ValueError("cipher suites are listed twice")
    return checked


def _check_alpn(protocols: Sequence[str]) -> tuple[str, ...]:
    checked = tuple(protocols)
    for name in checked:
        if not 0 < len(name.encode()) < 256:
            raise ValueError(f"ALPN protocol name {name!r} must be 1-255 bytes")
    return checked


@dataclass(frozen=True)
class ServerConfig:
    """What a server needs: its certificate chain (leaf first) and RSA key.

    ``cipher_suites`` is the server's preference order; the first one the
    client also offers wins. With ``require_extended_master_secret`` a
    client that does not offer RFC 7627 gets ``handshake_failure``.
    """

    certificate_chain: Sequence[_crypto.Certificate]
    private_key: _crypto.RSAPrivateKey
    cipher_suites: Sequence[CipherSuite] = DEFAULT_CIPHER_SUITES
    require_extended_master_secret: bool = False
    alpn_protocols: Sequence[str] = ("http/1.1",)
    keylog: KeyLogSink | None = None
    _chain_der: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    _certificate_message: bytes = field(init=False, repr=False, compare=False)
    _leaf_summary: tuple[str, str, int, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.certificate_chain:
            raise ValueError("the certificate chain is empty")
        object.__setattr__(self, "cipher_suites", _check_suites(self.cipher_suites))
        object.__setattr__(self, "alpn_protocols", _check_alpn(self.alpn_protocols))
        _crypto.check_server_key(self.certificate_chain[0], self.private_key,
                                 MIN_RSA_BITS, MAX_RSA_BITS)
        object.__setattr__(self, "_chain_der",
                           tuple(_crypto.certificate_der(c) for c in self.certificate_chain))
        # Encoded once: every handshake sends the same Certificate message.
        object.__setattr__(self, "_certificate_message", encode_certificate(self._chain_der))
        object.__setattr__(self, "_leaf_summary",
                           _crypto.certificate_summary(self.certificate_chain[0]))

    @classmethod
    def from_pem_files(cls, chain_path: str | os.PathLike[str], key_path: str | os.PathLike[str],
                       **options: object) -> ServerConfig:
        """Load a PEM chain (leaf first) and a PEM RSA private key; ``options`` as the constructor."""
        chain = _crypto.load_pem_chain(chain_path)
        key = _crypto.load_pem_rsa_private_key(key_path)
        return cls(certificate_chain=chain, private_key=key, **options)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ClientConfig:
    """What a client needs: the CAs it trusts and the name (or IP) it expects.

    ``server_name`` is verified against the certificate's subjectAltName;
    a DNS name is also sent as SNI (an IP address is not, RFC 6066 §3).
    ``extended_master_secret=False`` leaves the RFC 7627 extension out,
    which is only useful to test servers that require it.
    """

    trust_anchors: Sequence[_crypto.Certificate]
    server_name: str
    cipher_suites: Sequence[CipherSuite] = DEFAULT_CIPHER_SUITES
    alpn_protocols: Sequence[str] = ("http/1.1",)
    extended_master_secret: bool = True
    keylog: KeyLogSink | None = None
    _verifier: _crypto.ServerVerifier = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.trust_anchors:
            raise ValueError("no trust anchors: a client must trust at least one CA")
        if not self.server_name:
            raise ValueError("server_name is required to verify the certificate")
        object.__setattr__(self, "cipher_suites", _check_suites(self.cipher_suites))
        object.__setattr__(self, "alpn_protocols", _check_alpn(self.alpn_protocols))
        try:
            verifier = _crypto.ServerVerifier(self.trust_anchors, self.server_name)
        except ValueError as exc:
            raise ValueError(f"server_name {self.server_name!r}: {exc}") from None
        object.__setattr__(self, "_verifier", verifier)

    @property
    def server_name_is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.server_name)
        except ValueError:
            return False
        return True

    @classmethod
    def from_ca_file(cls, ca_path: str | os.PathLike[str], server_name: str,
                     **options: object) -> ClientConfig:
        """Trust every certificate in a PEM file; ``options`` as the constructor."""
        return cls(trust_anchors=_crypto.load_pem_chain(ca_path), server_name=server_name,
                   **options)  # type: ignore[arg-type]
