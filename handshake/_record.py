"""The record layer (RFC 5246 §6.2): framing, size limits, and AES-GCM protection.

Incoming bytes accumulate in one buffer; ``next_record`` returns one
(content type, plaintext) at a time. Outgoing payloads are split into
records of at most 2^14 bytes and sealed when a write key is active.

AES-GCM per RFC 5288 §3: nonce = 4-byte implicit salt ‖ 8-byte explicit
part, where we send the sequence number as the explicit part; the
additional data is seq_num ‖ type ‖ version ‖ plaintext length.
"""

from __future__ import annotations

import struct

from ._constants import (
    GCM_EXPLICIT_NONCE_LEN,
    GCM_TAG_LEN,
    MAX_CIPHERTEXT,
    MAX_PLAINTEXT,
    MAX_SEQUENCE_NUMBER,
    RECORD_HEADER_LEN,
    RECORD_VERSION_MAJOR,
    TLS12,
    AlertDescription,
    ContentType,
)
from ._crypto import AESGCM, InvalidTag
from ._errors import LocalProtocolError, RemoteProtocolError

__all__ = ["RecordCipher", "RecordLayer"]

_HEADER = struct.Struct("!BHH")
_AAD = struct.Struct("!QBHH")
_SEQ = struct.Struct("!Q")
_KNOWN_TYPES = frozenset(int(t) for t in ContentType)
_VERSION_BYTES = TLS12.to_bytes(2, "big")
_OVERHEAD = GCM_EXPLICIT_NONCE_LEN + GCM_TAG_LEN
# Header and explicit nonce, written in one go before the ciphertext.
_RECORD_PREFIX = struct.Struct("!BHHQ")


def _sequence_exhausted() -> LocalProtocolError:
    # RFC 5246 §6.1: sequence numbers must never wrap; renegotiation is the
    # only way on, and we refuse it, so the connection must end.
    return LocalProtocolError("sequence number exhausted", AlertDescription.internal_error)


class RecordCipher:
    """One direction's AES-GCM key, salt and sequence number."""

    __slots__ = ("_aead", "_salt", "seq")

    def __init__(self, key: bytes, salt: bytes) -> None:
        self._aead = AESGCM(key)
        self._salt = salt
        self.seq = 0

    def seal_into(self, content_type: int, plaintext: bytes | memoryview, out: list[bytes]) -> None:
        """Append one protected record to ``out`` (header, then the sealed fragment)."""
        seq = self.seq
        if seq > MAX_SEQUENCE_NUMBER:
            raise _sequence_exhausted()
        self.seq = seq + 1
        length = len(plaintext)
        out.append(_RECORD_PREFIX.pack(content_type, TLS12, length + _OVERHEAD, seq))
        # Kept as its own chunk: data_to_send joins the chunks, the one copy a record costs.
        out.append(self._aead.encrypt(self._salt + _SEQ.pack(seq), plaintext,
                                      _AAD.pack(seq, content_type, TLS12, length)))

    def open(self, content_type: int, buf: bytes | bytearray, start: int, end: int) -> bytes:
        """Authenticate and decrypt the record fragment ``buf[start:end]``."""
        length = end - start - _OVERHEAD
        if length < 0:
            raise RemoteProtocolError("protected record too short", AlertDescription.bad_record_mac)
        seq = self.seq
        if seq > MAX_SEQUENCE_NUMBER:
            raise _sequence_exhausted()
        self.seq = seq + 1
        explicit_end = start + GCM_EXPLICIT_NONCE_LEN
        ciphertext = memoryview(buf)[explicit_end:end]
        try:
            plaintext = self._aead.decrypt(self._salt + buf[start:explicit_end], ciphertext,
                                           _AAD.pack(seq, content_type, TLS12, length))
        except InvalidTag:
            # Released now: the traceback keeps this frame, and a live view
            # would stop the input buffer from being resized.
            ciphertext.release()
            raise RemoteProtocolError("record failed to authenticate",
                                      AlertDescription.bad_record_mac) from None
        if length > MAX_PLAINTEXT:
            raise RemoteProtocolError("decrypted record over 2^14 bytes",
                                      AlertDescription.record_overflow)
        return plaintext


class RecordLayer:
    """Both directions of the record layer of one connection."""

    def __init__(self) -> None:
        # Unparsed input is _inbuf[_inpos:]. When a read ends on a record
        # boundary (the common case) the caller's bytes are parsed in place
        # and nothing is copied.
        self._inbuf: bytes | bytearray = b""
        self._inpos = 0
        self.read_cipher: RecordCipher | None = None
        self.write_cipher: RecordCipher | None = None
        # Until the hellos fix the version, any {03,XX} record version is
        # accepted on input (RFC 5246 Appendix E.1).
        self.version_fixed = False

    # --- input --------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._inpos >= len(self._inbuf):
            # Only an immutable object may be kept: a caller reading into one
            # reused buffer (recv_into) would otherwise change it under us.
            self._inbuf = data if type(data) is bytes else bytes(data)
            self._inpos = 0
            return
        if not isinstance(self._inbuf, bytearray):
            self._inbuf = bytearray(memoryview(self._inbuf)[self._inpos:])
        elif self._inpos:
            del self._inbuf[:self._inpos]
        self._inpos = 0
        self._inbuf += data

    @property
    def buffered(self) -> int:
        return len(self._inbuf) - self._inpos

    def next_record(self) -> tuple[int, bytes] | None:
        """Return the next (content type, plaintext), or None if a whole record is not in yet."""
        buf, pos = self._inbuf, self._inpos
        available = len(buf) - pos
        if available < RECORD_HEADER_LEN:
            # Judge a header as early as its bytes allow, so garbage is
            # refused at once rather than waited on.
            if available and buf[pos] not in _KNOWN_TYPES:
                self._check_header(buf[pos], TLS12, 0)
            return None
        content_type, version, length = _HEADER.unpack_from(buf, pos)
        cipher = self.read_cipher
        if (content_type not in _KNOWN_TYPES or version != TLS12
                or length > (MAX_PLAINTEXT if cipher is None else MAX_CIPHERTEXT)):
            self._check_header(content_type, version, length)
        start = pos + RECORD_HEADER_LEN
        end = start + length
        if len(buf) < end:
            return None
        payload = (cipher.open(content_type, buf, start, end) if cipher is not None
                   else bytes(buf[start:end]))
        self._inpos = end
        return content_type, payload

    def _check_header(self, content_type: int, version: int, length: int) -> None:
        if content_type not in _KNOWN_TYPES:
            raise RemoteProtocolError(f"unknown record content type {content_type}",
                                      AlertDescription.unexpected_message)
        if version != TLS12 and (self.version_fixed or version >> 8 != RECORD_VERSION_MAJOR):
            raise RemoteProtocolError(f"record version 0x{version:04x}, expected TLS 1.2",
                                      AlertDescription.protocol_version)
        limit = MAX_CIPHERTEXT if self.read_cipher is not None else MAX_PLAINTEXT
        if length > limit:
            raise RemoteProtocolError(f"record of {length} bytes exceeds the limit of {limit}",
                                      AlertDescription.record_overflow)

    # --- output -------------------------------------------------------------

    def seal(self, content_type: int, payload: bytes, out: list[bytes]) -> None:
        """Append ``payload`` as one or more records to ``out``."""
        cipher = self.write_cipher
        if cipher is None:
            for start in range(0, len(payload), MAX_PLAINTEXT):
                chunk = payload[start:start + MAX_PLAINTEXT]
                out.append(_HEADER.pack(content_type, TLS12, len(chunk)))
                out.append(chunk)
            return
        if len(payload) <= MAX_PLAINTEXT:
            # One record, possibly empty: an empty application_data record is legal.
            cipher.seal_into(content_type, payload, out)
            return
        with memoryview(payload) as view:
            for start in range(0, len(payload), MAX_PLAINTEXT):
                cipher.seal_into(content_type, view[start:start + MAX_PLAINTEXT], out)
