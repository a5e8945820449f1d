"""Events: what happened on the connection, as small values.

Both sides report every handshake step in protocol order, whether they sent
or received the messages, so a caller can print the seed's ladder
(Client Hello → Server Hello + certificate → client agrees → server agrees →
encrypted communication) from either end. ``seed_step`` names the step in the
seed's words; ``tls_messages`` names the TLS 1.2 messages that carry it.

Events are values to read, never to change. They are not frozen dataclasses
only because a frozen one costs several times more to build, and a server
builds five per handshake and one per record received.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ._constants import AlertDescription, AlertLevel, CipherSuite

__all__ = [
    "AlertReceived",
    "ApplicationData",
    "ClientFinished",
    "ClientHello",
    "ConnectionClosed",
    "Event",
    "HandshakeComplete",
    "ServerFinished",
    "ServerHello",
]


class Event:
    """Base class of everything ``receive_data`` and ``start_handshake`` return."""

    __slots__ = ()


class HandshakeStep(Event):
    """An event that is one step of the handshake ladder."""

    __slots__ = ()
    seed_step: ClassVar[str]
    tls_messages: ClassVar[tuple[str, ...]]
    sender: ClassVar[str]  # "client" or "server"


@dataclass(slots=True)
class ClientHello(HandshakeStep):
    """Client Hello: the protocols and cipher suites the client supports."""

    seed_step: ClassVar[str] = "Client Hello"
    tls_messages: ClassVar[tuple[str, ...]] = ("ClientHello",)
    sender: ClassVar[str] = "client"

    client_random: bytes
    legacy_version: int
    # From supported_versions when present, else (legacy_version,).
    offered_versions: tuple[int, ...]
    # Every suite code the client offered, known to us or not, in its order.
    offered_cipher_suites: tuple[int, ...]
    server_name: str | None
    alpn_protocols: tuple[str, ...]
    extended_master_secret: bool
    secure_renegotiation: bool
    # Extension type codes in the order the client sent them.
    extensions: tuple[int, ...]


@dataclass(slots=True)
class ServerHello(HandshakeStep):
    """Server Hello: the server's choices and its certificate (ServerHello, Certificate, ServerHelloDone)."""

    seed_step: ClassVar[str] = "Server Hello + certificate"
    tls_messages: ClassVar[tuple[str, ...]] = ("ServerHello", "Certificate", "ServerHelloDone")
    sender: ClassVar[str] = "server"

    server_random: bytes
    version: int
    cipher_suite: CipherSuite
    alpn_protocol: str | None
    extended_master_secret: bool
    certificate_subject: str  # RFC 4514 string of the leaf's subject
    certificate_issuer: str
    certificate_key_bits: int
    certificate_chain_length: int
    certificate_sha256: bytes  # fingerprint of the leaf certificate (DER)
    # Client side only: True once the chain and the name were verified.
    certificate_verified: bool


@dataclass(slots=True)
class ClientFinished(HandshakeStep):
    """Client agrees: the encrypted pre-master secret and the client's MAC over the transcript."""

    seed_step: ClassVar[str] = "Client agrees"
    tls_messages: ClassVar[tuple[str, ...]] = ("ClientKeyExchange", "ChangeCipherSpec", "Finished")
    sender: ClassVar[str] = "client"

    encrypted_pre_master_secret_len: int
    verify_data: bytes


@dataclass(slots=True)
class ServerFinished(HandshakeStep):
    """Server agrees: the server's MAC over the transcript (ChangeCipherSpec, Finished)."""

    seed_step: ClassVar[str] = "Server agrees"
    tls_messages: ClassVar[tuple[str, ...]] = ("ChangeCipherSpec", "Finished")
    sender: ClassVar[str] = "server"

    verify_data: bytes


@dataclass(slots=True)
class HandshakeComplete(Event):
    """Encrypted communication begins: the negotiated facts of the session."""

    seed_step: ClassVar[str] = "Encrypted communication"

    version: int
    cipher_suite: CipherSuite
    server_name: str | None
    alpn_protocol: str | None
    extended_master_secret: bool
    client_random: bytes
    server_random: bytes
    certificate_subject: str


@dataclass(slots=True)
class ApplicationData(Event):
    """Decrypted application bytes (one record's worth)."""

    data: bytes


@dataclass(slots=True)
class AlertReceived(Event):
    """The peer sent an alert. A fatal one (or close_notify) is followed by ConnectionClosed."""

    level: AlertLevel
    description: AlertDescription | int


@dataclass(slots=True)
class ConnectionClosed(Event):
    """The connection is over for reading.

    ``clean`` is True when the peer sent close_notify, False on a fatal
    alert or on EOF without close_notify (a truncation a reader must not
    mistake for a complete message).
    """

    clean: bool
