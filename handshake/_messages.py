"""Codecs for the handshake messages of our profile (RFC 5246 §7.4) and their extensions.

Decoders take one complete message body and either return a value object or
raise ``RemoteProtocolError`` with ``decode_error`` (or the alert the RFC
names for a well-formed but forbidden value). Encoders return bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from ._constants import (
    RANDOM_LEN,
    AlertDescription,
    HandshakeType,
)
from ._errors import RemoteProtocolError

__all__ = [
    "ClientHelloMessage",
    "Reader",
    "ServerHelloMessage",
    "decode_alpn",
    "decode_certificate",
    "decode_client_hello",
    "decode_client_key_exchange",
    "decode_server_hello",
    "decode_server_name",
    "encode_alpn",
    "encode_certificate",
    "encode_client_hello",
    "encode_client_key_exchange",
    "encode_server_hello",
    "frame",
]


def _decode_error(what: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"malformed {what}", AlertDescription.decode_error)


class Reader:
    """Reads the TLS presentation language from a bytes object; any overrun is a decode_error."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def _take(self, n: int) -> bytes:
        pos = self._pos
        end = pos + n
        if end > len(self._data):
            raise _decode_error(self._what)
        self._pos = end
        return self._data[pos:end]

    def uint8(self) -> int:
        pos = self._pos
        if pos >= len(self._data):
            raise _decode_error(self._what)
        self._pos = pos + 1
        return self._data[pos]

    def uint16(self) -> int:
        pos = self._pos
        if pos + 2 > len(self._data):
            raise _decode_error(self._what)
        self._pos = pos + 2
        return (self._data[pos] << 8) | self._data[pos + 1]

    def fixed(self, n: int) -> bytes:
        return self._take(n)

    def vector(self, length_bytes: int, minimum: int = 0, maximum: int | None = None) -> bytes:
        """A variable-length vector ``<minimum..maximum>`` with a 1-3 byte length prefix."""
        data, pos = self._data, self._pos
        start = pos + length_bytes
        n = int.from_bytes(data[pos:start], "big")
        end = start + n
        if (start > len(data) or end > len(data) or n < minimum
                or (maximum is not None and n > maximum)):
            raise _decode_error(self._what)
        self._pos = end
        return data[start:end]

    @property
    def position(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def expect_end(self) -> None:
        if self._pos != len(self._data):
            raise _decode_error(self._what)


def _vec(length_bytes: int, body: bytes) -> bytes:
    return len(body).to_bytes(length_bytes, "big") + body


def frame(msg_type: HandshakeType, body: bytes) -> bytes:
    """The handshake header: type(1) ‖ length(3) ‖ body."""
    return bytes((msg_type,)) + len(body).to_bytes(3, "big") + body


# --- extensions --------------------------------------------------------------

def decode_extensions(data: bytes, start: int, what: str) -> list[tuple[int, bytes]]:
    """The optional extensions block that ends a hello at ``data[start:]`` (RFC 5246 §7.4.1.2)."""
    if start == len(data):
        return []
    if start + 2 > len(data) or start + 2 + ((data[start] << 8) | data[start + 1]) != len(data):
        raise _decode_error(what)
    block = data[start + 2:]
    # Walked with plain offsets: this runs on every ClientHello, and the
    # handshake rate is a product target.
    extensions: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    pos, end = 0, len(block)
    while pos < end:
        if pos + 4 > end:
            raise _decode_error(what)
        ext_type = (block[pos] << 8) | block[pos + 1]
        data_end = pos + 4 + ((block[pos + 2] << 8) | block[pos + 3])
        if data_end > end:
            raise _decode_error(what)
        # RFC 5246 §7.4.1.4: "There MUST NOT be more than one extension of the same type."
        if ext_type in seen:
            raise RemoteProtocolError(f"duplicate extension {ext_type} in {what}",
                                      AlertDescription.illegal_parameter)
        seen.add(ext_type)
        extensions.append((ext_type, block[pos + 4:data_end]))
        pos = data_end
    return extensions


def encode_extensions(extensions: Iterable[tuple[int, bytes]]) -> bytes:
    body = b"".join(struct.pack("!HH", t, len(d)) + d for t, d in extensions)
    return _vec(2, body) if body else b""


def decode_server_name(data: bytes) -> str | None:
    """RFC 6066 §3: the host_name entry, as text."""
    what = "server_name extension"
    # Offsets rather than Readers: this runs on nearly every ClientHello.
    end = len(data)
    if end < 2 or (data[0] << 8 | data[1]) != end - 2 or end == 2:
        raise _decode_error(what)
    pos = 2
    host: str | None = None
    seen: set[int] = set()
    while pos < end:
        if pos + 3 > end:
            raise _decode_error(what)
        name_type = data[pos]
        name_end = pos + 3 + (data[pos + 1] << 8 | data[pos + 2])
        if name_end > end or name_end == pos + 3:
            raise _decode_error(what)
        # "The ServerNameList MUST NOT contain more than one name of the same name_type."
        if name_type in seen:
            raise RemoteProtocolError("server_name lists two names of the same type",
                                      AlertDescription.illegal_parameter)
        seen.add(name_type)
        if name_type == 0:
            try:
                host = data[pos + 3:name_end].decode("ascii")
            except UnicodeDecodeError:
                raise RemoteProtocolError("server_name is not ASCII",
                                          AlertDescription.illegal_parameter) from None
            if "\0" in host:
                raise RemoteProtocolError("server_name contains a NUL byte",
                                          AlertDescription.illegal_parameter)
        pos = name_end
    return host


def encode_server_name(host: str) -> bytes:
    entry = b"\x00" + _vec(2, host.encode("ascii"))
    return _vec(2, entry)


def decode_alpn(data: bytes) -> tuple[str, ...]:
    """RFC 7301 §3.1: ProtocolNameList protocol_name_list<2..2^16-1>, names <1..2^8-1>."""
    end = len(data)
    if end < 4 or (data[0] << 8 | data[1]) != end - 2:
        raise _decode_error("ALPN extension")
    pos = 2
    protocols = []
    while pos < end:
        name_end = pos + 1 + data[pos]
        if name_end > end or name_end == pos + 1:
            raise _decode_error("ALPN extension")
        protocols.append(data[pos + 1:name_end].decode("latin-1"))
        pos = name_end
    return tuple(protocols)


def encode_alpn(protocols: Iterable[str]) -> bytes:
    return _vec(2, b"".join(_vec(1, p.encode("latin-1")) for p in protocols))


def _vector1_filling(data: bytes, what: str) -> bytes:
    """The one-byte-length vector that must make up all of ``data``."""
    if not data or data[0] != len(data) - 1:
        raise _decode_error(what)
    return data[1:]


def decode_supported_versions(data: bytes) -> tuple[int, ...]:
    versions = _vector1_filling(data, "supported_versions extension")
    # RFC 8446 §4.2.1: ProtocolVersion versions<2..254>.
    if not 2 <= len(versions) <= 254 or len(versions) % 2:
        raise _decode_error("supported_versions extension")
    return struct.unpack(f"!{len(versions) // 2}H", versions)


def decode_renegotiation_info(data: bytes) -> bytes:
    return _vector1_filling(data, "renegotiation_info extension")


def check_signature_algorithms(data: bytes) -> None:
    """Parsed only to reject a malformed one: RSA key transport signs nothing."""
    n = len(data)
    if n < 4 or (data[0] << 8 | data[1]) != n - 2 or n % 2:
        raise _decode_error("signature_algorithms extension")


def check_empty(data: bytes, what: str) -> None:
    if data:
        raise _decode_error(what)


# --- hellos --------------------------------------------------------------------

@dataclass(slots=True)
class ClientHelloMessage:
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    compression_methods: bytes
    extensions: list[tuple[int, bytes]] = field(default_factory=list)


def decode_client_hello(body: bytes) -> ClientHelloMessage:
    what = "ClientHello"
    # Plain offsets rather than a Reader: every connection starts here.
    end = len(body)
    # version(2) random(32) session_id_len(1): the first length is at 34.
    if end < 35:
        raise _decode_error(what)
    legacy_version = (body[0] << 8) | body[1]
    random = body[2:2 + RANDOM_LEN]
    session_id_end = 35 + body[34]
    if body[34] > 32 or session_id_end + 2 > end:
        raise _decode_error(what)
    suites_len = (body[session_id_end] << 8) | body[session_id_end + 1]
    suites_start = session_id_end + 2
    compression_at = suites_start + suites_len
    if suites_len < 2 or suites_len % 2 or compression_at + 1 > end:
        raise _decode_error(what)
    extensions_at = compression_at + 1 + body[compression_at]
    if body[compression_at] < 1 or extensions_at > end:
        raise _decode_error(what)
    suites = struct.unpack_from(f"!{suites_len // 2}H", body, suites_start)
    compression = body[compression_at + 1:extensions_at]
    extensions = decode_extensions(body, extensions_at, what)
    return ClientHelloMessage(legacy_version, random, body[35:session_id_end], suites, compression,
                              extensions)


def encode_client_hello(msg: ClientHelloMessage) -> bytes:
    body = (struct.pack("!H", msg.legacy_version) + msg.random + _vec(1, msg.session_id)
            + _vec(2, b"".join(struct.pack("!H", s) for s in msg.cipher_suites))
            + _vec(1, msg.compression_methods) + encode_extensions(msg.extensions))
    return frame(HandshakeType.client_hello, body)


@dataclass(slots=True)
class ServerHelloMessage:
    version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int
    extensions: list[tuple[int, bytes]] = field(default_factory=list)


def decode_server_hello(body: bytes) -> ServerHelloMessage:
    what = "ServerHello"
    r = Reader(body, what)
    version = r.uint16()
    random = r.fixed(RANDOM_LEN)
    session_id = r.vector(1, 0, 32)
    suite = r.uint16()
    compression = r.uint8()
    extensions = decode_extensions(body, r.position, what)
    return ServerHelloMessage(version, random, session_id, suite, compression, extensions)


def encode_server_hello(msg: ServerHelloMessage) -> bytes:
    body = (struct.pack("!H", msg.version) + msg.random + _vec(1, msg.session_id)
            + struct.pack("!HB", msg.cipher_suite, msg.compression_method)
            + encode_extensions(msg.extensions))
    return frame(HandshakeType.server_hello, body)


# --- Certificate, ClientKeyExchange, Finished -----------------------------------

def encode_certificate(chain_der: Iterable[bytes]) -> bytes:
    body = _vec(3, b"".join(_vec(3, der) for der in chain_der))
    return frame(HandshakeType.certificate, body)


def decode_certificate(body: bytes) -> list[bytes]:
    what = "Certificate"
    r = Reader(body, what)
    certs = Reader(r.vector(3), what)
    r.expect_end()
    chain = []
    while certs.remaining:
        chain.append(certs.vector(3, 1))
    return chain


def check_certificate_request(body: bytes) -> None:
    """RFC 5246 §7.4.4, parsed only to reject a malformed one: we never send a certificate."""
    what = "CertificateRequest"
    r = Reader(body, what)
    r.vector(1, 1)  # certificate_types
    algorithms = r.vector(2, 2, 2**16 - 2)
    if len(algorithms) % 2:
        raise _decode_error(what)
    authorities = Reader(r.vector(2), what)
    r.expect_end()
    while authorities.remaining:
        authorities.vector(2, 1)  # DistinguishedName


def encode_client_key_exchange(encrypted_pre_master_secret: bytes) -> bytes:
    return frame(HandshakeType.client_key_exchange, _vec(2, encrypted_pre_master_secret))


def decode_client_key_exchange(body: bytes) -> bytes:
    """EncryptedPreMasterSecret: opaque<0..2^16-1> filling the whole message."""
    if len(body) < 2 or len(body) != 2 + ((body[0] << 8) | body[1]):
        raise _decode_error("ClientKeyExchange")
    return body[2:]
