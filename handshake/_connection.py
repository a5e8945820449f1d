"""What both sides share: record dispatch, handshake framing, alerts, data, close, errors.

``ServerConnection`` (``_server.py``) and ``ClientConnection`` (``_client.py``)
add only their half of the handshake. Every failure goes through ``_fail``:
the fatal alert is queued first, then the error is raised, and the
connection stays failed (STYLE.md: h2's way of closing on error).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac

from ._config import KeyLogSink
from ._constants import (
    MAX_HANDSHAKE_MESSAGE,
    TLS12,
    AlertDescription,
    AlertLevel,
    CipherSuite,
    ContentType,
    HandshakeType,
)
from ._crypto import HASHES
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ._events import (
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    Event,
    HandshakeComplete,
)
from ._keyschedule import (
    MasterSecret,
    compute_master_secret,
    compute_verify_data,
    derive_traffic_keys,
    keylog_line,
)
from ._record import RecordCipher, RecordLayer
from ._state import CHANGE_CIPHER_SPEC, Role, State, next_state

__all__ = ["Connection"]

# Code -> member, looked up per message (cheaper than calling the IntEnum).
_HANDSHAKE_TYPES = {int(t): t for t in HandshakeType}
# Plain ints for per-record comparisons (IntEnum attribute lookups cost more).
_APPLICATION_DATA = int(ContentType.application_data)
_HANDSHAKE = int(ContentType.handshake)
_ALERT = int(ContentType.alert)
_CCS_PAYLOAD = b"\x01"
# Records in a row that carry no data and move no handshake forward (empty
# records, warning alerts, refused renegotiations): each costs us work, so past
# this many the peer is flooding. OpenSSL's limit for empty records is the same.
MAX_IDLE_RECORDS = 32
_FINISHED_LABEL = {Role.CLIENT: b"client finished", Role.SERVER: b"server finished"}


class Transcript:
    """The handshake messages so far (RFC 5246 §7.4.9 handshake_messages).

    Buffered until the suite fixes the hash, then hashed as they come, so
    each Finished and the session hash cost one copy of the hash state. With
    the extended master secret, the session hash and the client Finished
    cover the same messages: the digest is kept until the next message.
    """

    __slots__ = ("_pending", "_hash", "_digest")

    def __init__(self) -> None:
        self._pending = bytearray()
        self._hash: hashlib._Hash | None = None
        self._digest: bytes | None = None

    def add(self, raw: bytes) -> None:
        if self._hash is None:
            self._pending += raw
        else:
            self._hash.update(raw)
            self._digest = None

    def start_hashing(self, hash_name: str) -> None:
        self._hash = HASHES[hash_name](self._pending)
        self._pending = bytearray()

    def digest(self) -> bytes:
        if self._digest is None:
            assert self._hash is not None, "the suite's hash is not known yet"
            self._digest = self._hash.copy().digest()
        return self._digest


class Connection:
    """The common half of a TLS 1.2 endpoint; use ServerConnection or ClientConnection."""

    role: Role
    peer_role: Role

    def __init__(self, keylog: KeyLogSink | None) -> None:
        self._records = RecordLayer()
        # Encoded records waiting for data_to_send, as chunks joined once there.
        self._out: list[bytes] = []
        self._state = State.AWAIT_CLIENT_HELLO
        self._handshake_buf = bytearray()
        self._transcript = Transcript()
        self._keylog = keylog
        self._suite: CipherSuite | None = None
        self._client_random = b""
        self._server_random = b""
        self._master_secret: MasterSecret | None = None
        self._ems = False  # extended master secret negotiated
        self._pending_read: RecordCipher | None = None
        self._pending_write: RecordCipher | None = None
        self._session: HandshakeComplete | None = None
        self._sent_close = False
        self._read_closed = False
        self._idle_records = 0  # in a row; see MAX_IDLE_RECORDS
        self._error: ProtocolError | None = None

    # --- public API ------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed bytes from the peer (``b""`` = EOF); return the events they complete.

        Raises ``ProtocolError`` (with the fatal alert already queued) when the
        peer broke the protocol; its ``events`` holds what completed before that.
        """
        if self._error is not None:
            self._check_not_failed()
        events: list[Event] = []
        if self._read_closed:
            return events
        if not data:
            # EOF without close_notify: a truncation attack or a crash; the
            # caller must not take partial data as complete (RFC 5246 §7.2.1).
            self._read_closed = True
            if self._state is State.ESTABLISHED:
                self._state = State.CLOSED
            events.append(ConnectionClosed(clean=False))
            return events
        records = self._records
        records.feed(data)
        try:
            while not self._read_closed:
                record = records.next_record()
                if record is None:
                    break
                content_type, payload = record
                # The hot path, taken for nearly every record of a busy connection.
                if (content_type == _APPLICATION_DATA and self._state is State.ESTABLISHED
                        and not self._handshake_buf):
                    if payload:
                        events.append(ApplicationData(payload))
                        self._idle_records = 0
                    else:
                        self._idle_record("an empty application_data record")
                    continue
                self._handle_record(content_type, payload, events)
        except ProtocolError as exc:
            exc.events = events
            self._fail(exc)
            raise
        return events

    def data_to_send(self) -> bytes:
        """Take the bytes queued for the peer (may be empty)."""
        out = self._out
        if not out:
            return b""
        data = b"".join(out)
        out.clear()
        return data

    def send_application_data(self, data: bytes) -> None:
        """Queue application data, split into protected records of at most 16 KiB (none for b"")."""
        if self._error is not None or self._sent_close or self._state is not State.ESTABLISHED:
            self._check_not_failed()
            raise LocalProtocolError(
                "cannot send application data after close()" if self._sent_close
                else f"cannot send application data in state '{self._state.value}'",
                AlertDescription.internal_error)
        if data:
            # An empty record would carry nothing, and some peers read stray
            # bytes on an idle connection as a reason to drop it.
            try:
                self._records.seal(_APPLICATION_DATA, data, self._out)
            except ProtocolError as exc:  # the sequence number ran out
                self._fail(exc)
                raise

    def close(self) -> None:
        """Queue close_notify (once); nothing may be sent after it."""
        if self._sent_close or self._error is not None:
            return
        self._sent_close = True
        self._send_alert(AlertLevel.warning, AlertDescription.close_notify)

    @property
    def handshake_complete(self) -> bool:
        return self._session is not None

    @property
    def session(self) -> HandshakeComplete | None:
        """The negotiated facts once the handshake completed, else None."""
        return self._session

    @property
    def state(self) -> str:
        """The handshake state's name, for logs and error messages."""
        return self._state.value

    # --- record dispatch ----------------------------------------------------------

    def _handle_record(self, content_type: int, payload: bytes, events: list[Event]) -> None:
        if content_type == _HANDSHAKE:
            if not payload:
                raise RemoteProtocolError("empty handshake record", AlertDescription.unexpected_message)
            if self._handshake_buf:
                self._handshake_buf += payload
                self._handshake_buf = self._take_handshake_messages(bytes(self._handshake_buf),
                                                                    events)
            else:
                # The usual case, whole messages in one record: no buffering.
                self._handshake_buf = self._take_handshake_messages(payload, events)
            return
        # RFC 5246 §6.2.1: a fragmented handshake message must not be
        # interleaved with records of another type.
        if self._handshake_buf:
            raise RemoteProtocolError(
                f"{ContentType(content_type).name} record inside a fragmented handshake message",
                AlertDescription.unexpected_message)
        if content_type == _APPLICATION_DATA:
            # Established with no fragment pending is receive_data's fast path; here it is early.
            raise RemoteProtocolError(
                f"application data before the handshake completed (state '{self._state.value}')",
                AlertDescription.unexpected_message)
        if content_type == _ALERT:
            self._handle_alert(payload, events)
        else:
            self._handle_change_cipher_spec(payload)

    def _take_handshake_messages(self, data: bytes, events: list[Event]) -> bytearray:
        """Handle every whole handshake message in ``data``; return the incomplete rest."""
        pos, end = 0, len(data)
        while end - pos >= 4 and not self._read_closed:
            msg_type = data[pos]
            length = (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3]
            if length > MAX_HANDSHAKE_MESSAGE:
                raise RemoteProtocolError(f"handshake message of {length} bytes is too large",
                                          AlertDescription.illegal_parameter)
            msg_end = pos + 4 + length
            if msg_end > end:
                break
            known_type = _HANDSHAKE_TYPES.get(msg_type)
            if known_type is None:
                raise RemoteProtocolError(f"unknown handshake message type {msg_type}",
                                          AlertDescription.unexpected_message)
            self._handle_handshake_message(known_type, data[pos:msg_end], events)
            pos = msg_end
        return bytearray(data[pos:]) if pos < end and not self._read_closed else bytearray()

    def _handle_handshake_message(self, msg_type: HandshakeType, raw: bytes,
                                  events: list[Event]) -> None:
        if msg_type is HandshakeType.hello_request and self.role is Role.CLIENT:
            # RFC 5246 §7.4.1.1: an empty struct, ignored while a handshake is under way
            # and never part of the transcript.
            if len(raw) != 4:
                raise RemoteProtocolError("HelloRequest with a body", AlertDescription.decode_error)
            if self._state is not State.ESTABLISHED:
                self._idle_record("a HelloRequest during the handshake")
                return
        if self._state is State.ESTABLISHED:
            self._refuse_renegotiation(msg_type)
            return
        peer = self.peer_role
        self._state = next_state(self._state, peer, msg_type, local_role=self.role)
        self._idle_records = 0
        body = raw[4:]
        if msg_type is HandshakeType.finished:
            # The peer's Finished covers the transcript *before* itself.
            self._check_peer_finished(body)
        self._transcript.add(raw)
        self._on_handshake_message(msg_type, body, events)

    def _refuse_renegotiation(self, msg_type: HandshakeType) -> None:
        renegotiation = (HandshakeType.client_hello if self.role is Role.SERVER
                         else HandshakeType.hello_request)
        if msg_type is not renegotiation:
            raise RemoteProtocolError(f"{msg_type.name} after the handshake completed",
                                      AlertDescription.unexpected_message)
        self._idle_record("a renegotiation attempt")
        # RFC 5246 §7.2.2 / RFC 5746 §4.4: decline with the (warning-level)
        # no_renegotiation alert; the connection carries on with its keys.
        self._send_alert(AlertLevel.warning, AlertDescription.no_renegotiation)

    def _handle_change_cipher_spec(self, payload: bytes) -> None:
        if payload != _CCS_PAYLOAD:
            raise RemoteProtocolError("malformed ChangeCipherSpec", AlertDescription.decode_error)
        peer = self.peer_role
        self._state = next_state(self._state, peer, CHANGE_CIPHER_SPEC, local_role=self.role)
        if self._pending_read is None:
            raise RemoteProtocolError("ChangeCipherSpec before keys were agreed",
                                      AlertDescription.unexpected_message)
        self._records.read_cipher, self._pending_read = self._pending_read, None

    def _handle_alert(self, payload: bytes, events: list[Event]) -> None:
        if len(payload) != 2:
            raise RemoteProtocolError("malformed alert", AlertDescription.decode_error)
        level_code, description_code = payload[0], payload[1]
        try:
            level = AlertLevel(level_code)
        except ValueError:
            raise RemoteProtocolError(f"alert with unknown level {level_code}",
                                      AlertDescription.illegal_parameter) from None
        description: AlertDescription | int
        try:
            description = AlertDescription(description_code)
        except ValueError:
            description = description_code
        events.append(AlertReceived(level, description))
        if description == AlertDescription.close_notify and level is AlertLevel.warning:
            self._read_closed = True
            self._state = State.CLOSED
            # RFC 5246 §7.2.1: answer close_notify with our own.
            self.close()
            events.append(ConnectionClosed(clean=True))
        elif level is AlertLevel.fatal:
            self._read_closed = True
            self._state = State.FAILED
            name = getattr(description, "name", str(description))
            # Not `or`: close_notify is 0, and false.
            known = (description if isinstance(description, AlertDescription)
                     else AlertDescription.internal_error)
            self._error = RemoteProtocolError(f"peer sent fatal alert {name}", known)
            events.append(ConnectionClosed(clean=False))
        else:
            self._idle_record(f"a {getattr(description, 'name', description)} warning alert")

    def _idle_record(self, what: str) -> None:
        """Count a record that carried no data and no handshake progress; refuse a flood of them."""
        self._idle_records += 1
        if self._idle_records > MAX_IDLE_RECORDS:
            raise RemoteProtocolError(
                f"more than {MAX_IDLE_RECORDS} records in a row carried no data (the last: {what})",
                AlertDescription.unexpected_message)

    # --- sending --------------------------------------------------------------------

    def _send_handshake(self, msg_type: HandshakeType, raw: bytes, flight: bytearray) -> None:
        """Advance the state for a message we send and add it to the transcript and flight."""
        self._state = next_state(self._state, self.role, msg_type, local_role=self.role)
        self._transcript.add(raw)
        flight += raw

    def _flush_handshake(self, flight: bytearray) -> None:
        if flight:
            self._records.seal(ContentType.handshake, bytes(flight), self._out)
            flight.clear()

    def _send_change_cipher_spec(self) -> None:
        self._state = next_state(self._state, self.role, CHANGE_CIPHER_SPEC, local_role=self.role)
        self._records.seal(ContentType.change_cipher_spec, _CCS_PAYLOAD, self._out)
        self._records.write_cipher, self._pending_write = self._pending_write, None

    def _send_finished(self) -> bytes:
        verify_data = self._verify_data(self.role)
        flight = bytearray()
        self._send_handshake(HandshakeType.finished,
                             bytes((HandshakeType.finished, 0, 0, len(verify_data))) + verify_data,
                             flight)
        self._flush_handshake(flight)
        return verify_data

    def _send_alert(self, level: AlertLevel, description: AlertDescription) -> None:
        self._records.seal(ContentType.alert, bytes((level, description)), self._out)

    # --- keys and Finished -------------------------------------------------------------

    def _verify_data(self, sender: Role) -> bytes:
        assert self._suite is not None
        assert self._master_secret is not None
        return compute_verify_data(self._master_secret, _FINISHED_LABEL[sender],
                                   self._transcript.digest())

    def _check_peer_finished(self, body: bytes) -> None:
        peer = self.peer_role
        if len(body) != 12:
            raise RemoteProtocolError("malformed Finished", AlertDescription.decode_error)
        if not hmac.compare_digest(body, self._verify_data(peer)):
            raise RemoteProtocolError(f"{peer.value} Finished does not match the transcript",
                                      AlertDescription.decrypt_error)

    def _agree_keys(self, pre_master_secret: bytes) -> None:
        """Master secret, then both directions' ciphers; each takes effect at its ChangeCipherSpec.

        With the extended master secret (RFC 7627 §4) the master secret is
        bound to the transcript up to and including the ClientKeyExchange.
        """
        assert self._suite is not None
        session_hash = self._transcript.digest() if self._ems else None
        self._master_secret = compute_master_secret(self._suite, pre_master_secret,
                                                    self._client_random, self._server_random,
                                                    session_hash)
        keys = derive_traffic_keys(self._master_secret, self._client_random, self._server_random)
        client = RecordCipher(keys.client_write_key, keys.client_write_salt)
        server = RecordCipher(keys.server_write_key, keys.server_write_salt)
        if self.role is Role.CLIENT:
            self._pending_write, self._pending_read = client, server
        else:
            self._pending_write, self._pending_read = server, client
        if self._keylog is not None:
            self._keylog(keylog_line(self._client_random, self._master_secret))

    def _complete(self, server_name: str | None, alpn: str | None, ems: bool,
                  certificate_subject: str, events: list[Event]) -> None:
        assert self._suite is not None
        self._session = HandshakeComplete(
            version=TLS12, cipher_suite=self._suite, server_name=server_name, alpn_protocol=alpn,
            extended_master_secret=ems, client_random=self._client_random,
            server_random=self._server_random, certificate_subject=certificate_subject)
        events.append(self._session)

    # --- errors -------------------------------------------------------------------------

    def _fail(self, error: ProtocolError) -> None:
        if self._error is not None:
            return
        self._error = error
        self._state = State.FAILED
        # If the write cipher itself is exhausted, nothing more can be sent.
        with contextlib.suppress(ProtocolError):
            self._send_alert(AlertLevel.fatal, error.alert)

    def _check_not_failed(self) -> None:
        if self._error is not None:
            raise LocalProtocolError(f"connection already failed: {self._error.args[0]}",
                                     self._error.alert)

    def _on_handshake_message(self, msg_type: HandshakeType, body: bytes,
                              events: list[Event]) -> None:
        raise NotImplementedError  # each side handles its half
