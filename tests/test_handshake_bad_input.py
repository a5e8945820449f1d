"""Issue 2, point 6: bad input gets the alert a real peer expects, one test per rule.

Each test sends hand-made bytes (tests/tls_wire.py, written from RFC 5246) to a
ServerConnection in memory and checks three things: the library raised its
own ``RemoteProtocolError`` carrying the alert, the alert record it queued in
``data_to_send()`` says the same (decrypted with the hand-made client's keys
once the server protects its records), and nothing else was queued.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
import tls_wire as wire
from conftest import decode_error_at_every_length, expect_fatal_alert

from handshake import (
    AlertDescription,
    ApplicationData,
    ConnectionClosed,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    ServerConfig,
    ServerConnection,
)

AD = AlertDescription
FATAL = 2
WARNING = 1


def expect_encrypted_alert(server: ServerConnection, client: wire.ManualClient, data: bytes,
                           *allowed: AlertDescription) -> RemoteProtocolError:
    """As expect_fatal_alert, after the handshake: the alert is sealed with the server's keys."""
    with pytest.raises(ProtocolError) as info:
        server.receive_data(data)
    error = info.value
    assert isinstance(error, RemoteProtocolError), f"{type(error).__name__}: {error}"
    assert error.alert in allowed, f"alert {error.alert.name}, expected one of {allowed}"
    records = client.open_all(server.data_to_send())
    assert records == [(wire.ALERT, bytes([FATAL, error.alert]))], records
    return error


def started(server_config: ServerConfig) -> tuple[ServerConnection, wire.ManualClient]:
    """A server that has answered a good ClientHello; the client has read its flight."""
    server = ServerConnection(server_config)
    client = wire.ManualClient()
    server.receive_data(client.hello())
    client.read_server_hello_flight(server.data_to_send())
    return server, client


def established(server_config: ServerConfig) -> tuple[ServerConnection, wire.ManualClient]:
    server = ServerConnection(server_config)
    client = wire.ManualClient()
    client.handshake_with(server)
    assert server.handshake_complete
    return server, client


def hello_with(ext_type: int, data: bytes) -> bytes:
    """A ClientHello body whose only extension is ``ext_type`` carrying ``data``."""
    return wire.client_hello_body(extensions=[wire.extension(ext_type, data)])


def hello_record(**options: object) -> bytes:
    return wire.handshake_records(wire.client_hello(**options))


# -- the hand-made client itself works (so a failure below is the rule, not the harness) -------

@pytest.mark.parametrize("suite", [wire.AES128_GCM_SHA256, wire.AES256_GCM_SHA384])
def test_hand_made_client_completes_a_handshake(server_config: ServerConfig, suite: int) -> None:
    server = ServerConnection(server_config)
    client = wire.ManualClient(cipher_suites=[suite])
    client.handshake_with(server)
    assert server.session is not None and server.session.cipher_suite == suite
    server.receive_data(client.seal(wire.APPLICATION_DATA, b"ping"))
    server.send_application_data(b"pong")
    assert client.open_all(server.data_to_send()) == [(wire.APPLICATION_DATA, b"pong")]


def test_hand_made_client_without_ems(server_config: ServerConfig) -> None:
    server = ServerConnection(server_config)
    client = wire.ManualClient(extensions=wire.default_extensions(ems=False))
    client.handshake_with(server)
    assert server.session is not None and not server.session.extended_master_secret


# -- records -----------------------------------------------------------------------------------

@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    bytes(range(256)) * 4,
    b"\x00" * 64,
], ids=["http-request", "byte-ramp", "zeros"])
def test_garbage_instead_of_a_record(server_config: ServerConfig, garbage: bytes) -> None:
    # Each starts with a byte that is no content type ("G", 0x00), judged before anything
    # else: RFC 5246 §6: "If a TLS implementation receives an unexpected record type, it
    # MUST send an unexpected_message alert."
    expect_fatal_alert(ServerConnection(server_config), garbage, AD.unexpected_message)


def test_unknown_content_type(server_config: ServerConfig) -> None:
    expect_fatal_alert(ServerConnection(server_config), wire.record(99, b"\x01\x00"),
                           AD.unexpected_message)


def test_unknown_content_type_after_the_handshake(server_config: ServerConfig) -> None:
    server, client = established(server_config)
    expect_encrypted_alert(server, client, client.seal(99, b"hello"), AD.unexpected_message)


@pytest.mark.parametrize("when", ["first-record", "after-server-hello-done"])
def test_empty_handshake_record(server_config: ServerConfig, when: str) -> None:
    # RFC 5246 §6.2.1: "Implementations MUST NOT send zero-length fragments of Handshake,
    # Alert, or ChangeCipherSpec content types"; such a record is not a message a peer
    # may send at any point (§7.2.2: unexpected_message).
    server = started(server_config)[0] if when == "after-server-hello-done" else (
        ServerConnection(server_config))
    expect_fatal_alert(server, wire.record(wire.HANDSHAKE, b""), AD.unexpected_message)


@pytest.mark.parametrize("length", [0, 8, 23], ids=["empty", "nonce-only", "one-short"])
def test_protected_record_too_short_for_nonce_and_tag(server_config: ServerConfig,
                                                      length: int) -> None:
    # RFC 5288 §3 / RFC 5246 §6.2.3.3: an AES-GCM record holds an 8-byte explicit nonce and
    # a 16-byte tag, so under 24 bytes it cannot authenticate: bad_record_mac (§7.2.2).
    server, client = established(server_config)
    expect_encrypted_alert(server, client, wire.record(wire.APPLICATION_DATA, b"\x00" * length),
                           AD.bad_record_mac)


def test_protected_record_of_just_nonce_and_tag_is_empty_data(server_config: ServerConfig) -> None:
    # The boundary of the rule above: 24 bytes is an empty record, which is legal.
    server, client = established(server_config)
    empty = client.seal(wire.APPLICATION_DATA, b"")
    assert len(empty) == 5 + 24
    assert server.receive_data(empty) == []
    assert server.receive_data(client.seal(wire.APPLICATION_DATA, b"next")) == [
        ApplicationData(b"next")]


def test_plaintext_record_over_the_size_limit(server_config: ServerConfig) -> None:
    # RFC 5246 §6.2.1: TLSPlaintext.length MUST NOT exceed 2^14.
    body = hello_with(0x1234, b"\x00" * 2**14)
    oversized = wire.record(wire.HANDSHAKE, wire.handshake_message(wire.CLIENT_HELLO, body))
    assert len(oversized) - 5 > 2**14
    expect_fatal_alert(ServerConnection(server_config), oversized, AD.record_overflow)


def test_ciphertext_record_over_the_size_limit(server_config: ServerConfig) -> None:
    # RFC 5246 §6.2.3: TLSCiphertext.length MUST NOT exceed 2^14 + 2048.
    server, client = established(server_config)
    oversized = wire.record(wire.APPLICATION_DATA, b"\x00" * (2**14 + 2048 + 1))
    expect_encrypted_alert(server, client, oversized, AD.record_overflow)


def test_decrypted_record_over_the_size_limit(server_config: ServerConfig) -> None:
    # A record that authenticates but holds 2^14 + 1 bytes of plaintext.
    server, client = established(server_config)
    oversized = client.seal(wire.APPLICATION_DATA, b"x" * (2**14 + 1))
    expect_encrypted_alert(server, client, oversized, AD.record_overflow)


# -- ClientHello -------------------------------------------------------------------------------

def test_client_hello_with_no_supported_suite(server_config: ServerConfig) -> None:
    # TLS_RSA_WITH_AES_128_CBC_SHA, ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256
    record = hello_record(cipher_suites=[0x002F, 0xC02F, 0x1301])
    expect_fatal_alert(ServerConnection(server_config), record, AD.handshake_failure)


def test_client_hello_offering_only_tls13(server_config: ServerConfig) -> None:
    exts = wire.default_extensions() + [wire.ext_supported_versions([wire.TLS13])]
    record = hello_record(extensions=exts)
    expect_fatal_alert(ServerConnection(server_config), record, AD.protocol_version)


def test_client_hello_offering_only_tls11(server_config: ServerConfig) -> None:
    record = hello_record(version=0x0302)
    expect_fatal_alert(ServerConnection(server_config), record, AD.protocol_version)


def test_client_hello_offering_tls13_and_tls12_gets_tls12(server_config: ServerConfig) -> None:
    exts = wire.default_extensions() + [wire.ext_supported_versions([wire.TLS13, wire.TLS12])]
    server = ServerConnection(server_config)
    client = wire.ManualClient(extensions=exts)
    client.handshake_with(server)
    assert server.session is not None and server.session.version == wire.TLS12


@pytest.mark.parametrize("methods", [b"\x01", b"\x01\x40"], ids=["deflate", "deflate-lzs"])
def test_client_hello_without_null_compression(server_config: ServerConfig,
                                               methods: bytes) -> None:
    # RFC 5246 §7.4.1.2: the vector "MUST contain, and all implementations MUST support,
    # CompressionMethod.null"; a list without it breaks the message's own definition, so
    # decode_error (§7.2.2: "some field was out of the specified range"), as OpenSSL sends.
    record = hello_record(compression_methods=methods)
    expect_fatal_alert(ServerConnection(server_config), record, AD.decode_error)


@pytest.mark.parametrize("duplicate", [
    wire.ext_extended_master_secret(),
    wire.ext_server_name("localhost"),
    wire.extension(0x1234, b"unknown"),
], ids=["extended_master_secret", "server_name", "unknown-extension"])
def test_client_hello_with_a_duplicate_extension(server_config: ServerConfig,
                                                 duplicate: bytes) -> None:
    # RFC 5246 §7.4.1.4: there MUST NOT be more than one extension of the same type. Each
    # extension decodes; the block as a whole is wrong: illegal_parameter (§7.2.2, and
    # RFC 8446 §6.2: "conform to the formal protocol syntax but are otherwise incorrect").
    exts = [e for e in wire.default_extensions() if e != duplicate]
    record = hello_record(extensions=[duplicate, *exts, duplicate])
    expect_fatal_alert(ServerConnection(server_config), record, AD.illegal_parameter)


def test_client_hello_offering_only_another_application_protocol(
        server_config: ServerConfig) -> None:
    exts = [e for e in wire.default_extensions() if not e.startswith(wire.u16(wire.EXT_ALPN))]
    record = hello_record(extensions=exts + [wire.ext_alpn(["h2", "spdy/3"])])
    expect_fatal_alert(ServerConnection(server_config), record, AD.no_application_protocol)


@pytest.mark.parametrize("version", [0x0300, 0x0301, 0x0302, 0x0304, 0x03FF])
def test_any_03xx_record_version_on_the_first_client_hello_is_accepted(
        server_config: ServerConfig, version: int) -> None:
    # RFC 5246 Appendix E.1: servers MUST accept any {03,XX} as the record version of
    # the ClientHello; clients use 0x0301, and a future one may use more.
    server = ServerConnection(server_config)
    server.receive_data(wire.record(wire.HANDSHAKE, wire.client_hello(), version=version))
    wire.ManualClient().read_server_hello_flight(server.data_to_send())


@pytest.mark.parametrize("version", [0x0200, 0x0002, 0x0403])
def test_a_record_version_outside_03xx_is_refused(server_config: ServerConfig,
                                                  version: int) -> None:
    record = wire.record(wire.HANDSHAKE, wire.client_hello(), version=version)
    expect_fatal_alert(ServerConnection(server_config), record, AD.protocol_version)


@pytest.mark.parametrize("version", [0x0301, 0x0304])
def test_once_the_hellos_are_done_every_record_must_say_tls12(server_config: ServerConfig,
                                                              version: int) -> None:
    server, client = started(server_config)
    record = client.key_exchange()
    # ServerHello fixed the version at TLS 1.2 (RFC 5246 Appendix E.1).
    expect_fatal_alert(server, record[:1] + wire.u16(version) + record[3:], AD.protocol_version)


# -- truncated messages ------------------------------------------------------------------------

def client_hello_body_lengths_that_are_complete(body: bytes) -> set[int]:
    """Prefix lengths at which a ClientHello body is itself valid: right after
    compression_methods (RFC 5246 §7.4.1.2: the extensions block may be absent)."""
    session_id_end = 2 + 32 + 1 + body[34]
    suites_end = session_id_end + 2 + int.from_bytes(body[session_id_end:session_id_end + 2],
                                                     "big")
    return {suites_end + 1 + body[suites_end]}


def test_client_hello_truncated_at_every_length(server_config: ServerConfig) -> None:
    body = wire.client_hello_body()
    complete = client_hello_body_lengths_that_are_complete(body)
    def prepare(truncated: bytes) -> tuple[ServerConnection, bytes]:
        return ServerConnection(server_config), wire.record(
            wire.HANDSHAKE, wire.handshake_message(wire.CLIENT_HELLO, truncated))

    failures = decode_error_at_every_length(body, prepare, skip=complete)
    assert not failures, (f"ClientHello body of {len(body)} bytes, truncated to ...: "
                          + "; ".join(failures))


def test_client_hello_without_extensions_is_a_complete_message(
        server_config: ServerConfig) -> None:
    # The one prefix the truncation test skips: it must be served, not refused.
    body = wire.client_hello_body()
    (length,) = client_hello_body_lengths_that_are_complete(body)
    server = ServerConnection(server_config)
    server.receive_data(wire.record(wire.HANDSHAKE,
                                    wire.handshake_message(wire.CLIENT_HELLO, body[:length])))
    wire.ManualClient().read_server_hello_flight(server.data_to_send())


def test_client_key_exchange_truncated_at_every_length(server_config: ServerConfig) -> None:
    server, client = started(server_config)
    encrypted = client.encrypt_pre_master_secret(client.good_pre_master_secret())
    body = wire.vec16(encrypted)
    def prepare(truncated: bytes) -> tuple[ServerConnection, bytes]:
        server, _ = started(server_config)
        return server, wire.record(wire.HANDSHAKE,
                                   wire.handshake_message(wire.CLIENT_KEY_EXCHANGE, truncated))

    failures = decode_error_at_every_length(body, prepare)
    assert not failures, "ClientKeyExchange truncated to ...: " + "; ".join(failures)


# -- out of order ------------------------------------------------------------------------------

def test_application_data_before_the_handshake(server_config: ServerConfig) -> None:
    expect_fatal_alert(ServerConnection(server_config),
                           wire.record(wire.APPLICATION_DATA, b"GET / HTTP/1.1\r\n\r\n"),
                           AD.unexpected_message)


def test_application_data_before_finished(server_config: ServerConfig) -> None:
    server, client = started(server_config)
    expect_fatal_alert(server, wire.record(wire.APPLICATION_DATA, b"early data"),
                           AD.unexpected_message)


def test_application_data_between_key_exchange_and_finished(server_config: ServerConfig) -> None:
    server, client = started(server_config)
    server.receive_data(client.key_exchange() + client.change_cipher_spec())
    assert server.data_to_send() == b""
    # Properly sealed under the new keys, but the Finished has not come yet.
    expect_fatal_alert(server, client.seal(wire.APPLICATION_DATA, b"early data"),
                           AD.unexpected_message)


def test_change_cipher_spec_before_key_exchange(server_config: ServerConfig) -> None:
    server, client = started(server_config)
    expect_fatal_alert(server, client.change_cipher_spec(), AD.unexpected_message)


def test_client_certificate_the_server_never_asked_for(server_config: ServerConfig) -> None:
    # RFC 5246 §7.4.6: a client sends Certificate only after a CertificateRequest, which this
    # server never sends; even an empty one is out of place.
    server, _ = started(server_config)
    expect_fatal_alert(server, wire.handshake_records(
        wire.handshake_message(wire.CERTIFICATE, wire.vec24(b""))), AD.unexpected_message)


def test_handshake_message_interleaved_with_another_content_type(
        server_config: ServerConfig) -> None:
    # DESIGN §2: no interleaving of other content types inside a fragmented handshake message.
    message = wire.client_hello()
    interleaved = (wire.record(wire.HANDSHAKE, message[:20])
                   + wire.record(wire.ALERT, bytes([WARNING, 0x5A]))  # user_canceled
                   + wire.record(wire.HANDSHAKE, message[20:]))
    expect_fatal_alert(ServerConnection(server_config), interleaved, AD.unexpected_message)


def test_wrong_finished(server_config: ServerConfig) -> None:
    server, client = started(server_config)
    server.receive_data(client.key_exchange() + client.change_cipher_spec())
    wrong = bytearray(client.verify_data(b"client finished"))
    wrong[0] ^= 0x01
    # Sealed with the right keys: the record authenticates, the verify_data does not.
    expect_fatal_alert(server, client.finished(verify_data=bytes(wrong)), AD.decrypt_error)


def test_finished_of_the_wrong_length(server_config: ServerConfig) -> None:
    server, client = started(server_config)
    server.receive_data(client.key_exchange() + client.change_cipher_spec())
    right = client.verify_data(b"client finished")
    # RFC 5246 §7.4.9: verify_data is 12 bytes for our suites; a Finished of another
    # length is judged before any comparison: decode_error, not decrypt_error (§7.2.2).
    expect_fatal_alert(server, client.finished(verify_data=right[:11]), AD.decode_error)


# -- protected records -------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["explicit-nonce", "ciphertext", "tag"])
def test_flipped_bit_in_a_protected_record(server_config: ServerConfig, where: str) -> None:
    server, client = established(server_config)
    record = bytearray(client.seal(wire.APPLICATION_DATA, b"GET / HTTP/1.1\r\n\r\n"))
    index = {"explicit-nonce": 5 + 3, "ciphertext": 5 + 8 + 4, "tag": len(record) - 1}[where]
    record[index] ^= 0x04
    expect_encrypted_alert(server, client, bytes(record), AD.bad_record_mac)


def test_flipped_bit_in_the_client_finished(server_config: ServerConfig) -> None:
    server, client = started(server_config)
    server.receive_data(client.key_exchange() + client.change_cipher_spec())
    record = bytearray(client.finished())
    record[5 + 8 + 2] ^= 0x80
    # The server has not sent its ChangeCipherSpec yet: the alert goes out in plaintext.
    expect_fatal_alert(server, bytes(record), AD.bad_record_mac)


def test_replayed_record(server_config: ServerConfig) -> None:
    server, client = established(server_config)
    record = client.seal(wire.APPLICATION_DATA, b"once")
    assert server.receive_data(record) == [ApplicationData(b"once")]
    # Same bytes again: the sequence number in the additional data no longer matches.
    expect_encrypted_alert(server, client, record, AD.bad_record_mac)


# -- renegotiation -----------------------------------------------------------------------------

def test_renegotiation_attempt_after_the_handshake(server_config: ServerConfig) -> None:
    server, client = established(server_config)
    # RFC 5746 §3.5: a renegotiating ClientHello carries the previous client verify_data.
    exts = [e for e in wire.default_extensions()
            if not e.startswith(wire.u16(wire.EXT_RENEGOTIATION_INFO))]
    hello = wire.client_hello(extensions=exts + [
        wire.ext_renegotiation_info(client.client_verify_data)])
    renegotiation = client.seal(wire.HANDSHAKE, hello)
    assert server.receive_data(renegotiation) == []
    # RFC 5246 §7.2.2: no_renegotiation "is always a warning"; the connection goes on.
    records = client.open_all(server.data_to_send())
    assert records == [(wire.ALERT, bytes([WARNING, AD.no_renegotiation]))], records
    assert server.handshake_complete and server.state == "established"
    # Both directions still work with the same keys and sequence numbers.
    assert server.receive_data(client.seal(wire.APPLICATION_DATA, b"still here")) == [
        ApplicationData(b"still here")]
    server.send_application_data(b"and back")
    assert client.open_all(server.data_to_send()) == [(wire.APPLICATION_DATA, b"and back")]


# -- floods: records that carry nothing -----------------------------------------------------------
# Empty records, warning alerts and refused renegotiations each cost the receiver
# work and give it nothing; OpenSSL ends a connection after 32 empty records in a
# row (and 5 warnings) with unexpected_message. We allow 32 of any mix.

LIMIT = 32


def renegotiating_hello(client: wire.ManualClient) -> bytes:
    exts = [e for e in wire.default_extensions()
            if not e.startswith(wire.u16(wire.EXT_RENEGOTIATION_INFO))]
    hello = wire.client_hello(extensions=exts + [
        wire.ext_renegotiation_info(client.client_verify_data)])
    return client.seal(wire.HANDSHAKE, hello)


IDLE_RECORDS = {
    "empty record": lambda client: client.seal(wire.APPLICATION_DATA, b""),
    "warning alert": lambda client: client.seal(wire.ALERT, bytes([WARNING, AD.user_canceled])),
    "renegotiation": renegotiating_hello,
}


@pytest.mark.parametrize("kind", IDLE_RECORDS)
def test_a_flood_of_records_without_data(server_config: ServerConfig, kind: str) -> None:
    server, client = established(server_config)
    idle = IDLE_RECORDS[kind]
    server.receive_data(b"".join(idle(client) for _ in range(LIMIT)))
    client.open_all(server.data_to_send())  # the no_renegotiation warnings, if any
    error = expect_encrypted_alert(server, client, idle(client), AD.unexpected_message)
    assert f"more than {LIMIT} records in a row carried no data" in str(error)


def test_a_mixed_flood_counts_as_one(server_config: ServerConfig) -> None:
    server, client = established(server_config)
    kinds = list(IDLE_RECORDS.values())
    server.receive_data(b"".join(kinds[i % 3](client) for i in range(LIMIT)))
    client.open_all(server.data_to_send())
    expect_encrypted_alert(server, client, kinds[0](client), AD.unexpected_message)


def test_data_between_idle_records_resets_the_count(server_config: ServerConfig) -> None:
    server, client = established(server_config)
    empty = IDLE_RECORDS["empty record"]
    for round_number in range(3):
        events = server.receive_data(b"".join(empty(client) for _ in range(LIMIT))
                                     + client.seal(wire.APPLICATION_DATA, b"%d" % round_number))
        assert events == [ApplicationData(b"%d" % round_number)]
    assert server.data_to_send() == b""


def test_a_flood_of_plaintext_warnings_before_the_hello(server_config: ServerConfig) -> None:
    server = ServerConnection(server_config)
    warning = wire.record(wire.ALERT, bytes([WARNING, AD.user_canceled]))
    events = server.receive_data(warning * LIMIT)
    assert len(events) == LIMIT
    expect_fatal_alert(server, warning, AD.unexpected_message)
    # A handshake message in between resets the count.
    server = ServerConnection(server_config)
    client = wire.ManualClient()
    server.receive_data(warning * LIMIT + client.hello() + warning * LIMIT)
    client.read_server_hello_flight(server.data_to_send())


# -- after an error ----------------------------------------------------------------------------

def test_the_connection_stays_failed(server_config: ServerConfig) -> None:
    server = ServerConnection(server_config)
    expect_fatal_alert(server, wire.record(99, b"\x01\x00"), AD.unexpected_message)
    with pytest.raises(ProtocolError):
        server.receive_data(hello_record())
    with pytest.raises(ProtocolError):
        server.send_application_data(b"x")
    assert server.data_to_send() == b""


# -- API misuse --------------------------------------------------------------------------------

@pytest.mark.parametrize("when,state", [
    ("before-client-hello", "await ClientHello"),
    ("after-server-hello-done", "await ClientKeyExchange"),
], ids=["before-client-hello", "after-server-hello-done"])
def test_send_application_data_before_the_handshake(server_config: ServerConfig, when: str,
                                                    state: str) -> None:
    # No keys yet: sending data now would put it on the wire in plaintext. The caller's
    # mistake, so a LocalProtocolError (internal_error) and nothing at all for the peer.
    server = started(server_config)[0] if when == "after-server-hello-done" else (
        ServerConnection(server_config))
    with pytest.raises(LocalProtocolError) as info:
        server.send_application_data(b"GET / HTTP/1.1\r\n\r\n")
    assert info.value.alert is AD.internal_error
    assert info.value.args[0] == f"cannot send application data in state '{state}'"
    assert server.data_to_send() == b""


# -- more ClientHello rules (RFC 5246 §7.4.1.2, RFC 6066 §3, RFC 5746 §3.6, RFC 7627 §5.1) ------

def body_with(*, after_random: bytes) -> bytes:
    """A ClientHello body whose bytes after version and random are given verbatim."""
    return wire.u16(wire.TLS12) + os.urandom(32) + after_random


SUITES_AND_NULL = wire.vec16(wire.u16(wire.AES128_GCM_SHA256)) + wire.vec8(b"\x00")

MALFORMED_HELLOS: dict[str, tuple[bytes, AlertDescription]] = {
    "session_id-of-33-bytes": (
        body_with(after_random=wire.vec8(b"s" * 33) + SUITES_AND_NULL + wire.vec16(b"")),
        AD.decode_error),
    "empty-cipher-suites": (
        body_with(after_random=b"\x00" + wire.vec16(b"") + wire.vec8(b"\x00")),
        AD.decode_error),
    "odd-cipher-suites-length": (
        body_with(after_random=b"\x00" + wire.vec16(b"\x00\x9c\x00") + wire.vec8(b"\x00")),
        AD.decode_error),
    "empty-compression-methods": (
        body_with(after_random=b"\x00" + wire.vec16(b"\x00\x9c") + wire.vec8(b"")),
        AD.decode_error),  # CompressionMethod compression_methods<1..2^8-1>
    "byte-after-extensions": (
        wire.client_hello_body() + b"\x00", AD.decode_error),
    # RFC 5246 §7.4.1.4: Extension = extension_type(2) ‖ extension_data<0..2^16-1>, and the
    # extensions fill their block exactly.
    "extension-header-cut-inside-the-block": (
        wire.client_hello_body(extensions=[wire.ext_extended_master_secret(),
                                           wire.u16(0x1234) + b"\x00"]),
        AD.decode_error),
    "extension-data-past-the-block": (
        wire.client_hello_body(extensions=[wire.ext_extended_master_secret(),
                                           wire.u16(0x1234) + wire.u16(10) + b"abc"]),
        AD.decode_error),
    "server_name-list-length-wrong": (
        hello_with(wire.EXT_SERVER_NAME, wire.u16(50) + b"\x00" + wire.vec16(b"localhost")),
        AD.decode_error),
    "server_name-empty-list": (
        hello_with(wire.EXT_SERVER_NAME, wire.vec16(b"")),
        AD.decode_error),
    # RFC 6066 §3: "MUST NOT contain more than one name of the same name_type". The list
    # decodes, its content is wrong: illegal_parameter (RFC 8446 §6.2's reading of §7.2.2).
    "server_name-two-host-names": (
        hello_with(wire.EXT_SERVER_NAME, wire.vec16(
            b"\x00" + wire.vec16(b"localhost") + b"\x00" + wire.vec16(b"example.com"))),
        AD.illegal_parameter),
    # RFC 6066 §3: HostName is a DNS hostname in ASCII; a NUL byte makes it none (and it would
    # end up in the traffic log as the connection's SNI). The bytes decode, the value is
    # illegal: illegal_parameter. (OpenSSL says unrecognized_name, but RFC 6066 keeps that
    # for a well-formed name the server does not serve, and this server serves any name.)
    "server_name-with-NUL": (
        hello_with(wire.EXT_SERVER_NAME, wire.vec16(b"\x00" + wire.vec16(b"local\x00host"))),
        AD.illegal_parameter),
    # ServerName: name_type(1) then HostName host_name<1..2^16-1> (RFC 6066 §3).
    "server_name-entry-header-cut": (
        hello_with(wire.EXT_SERVER_NAME, wire.vec16(b"\x00\x00")),
        AD.decode_error),
    "server_name-entry-overruns-the-list": (
        hello_with(wire.EXT_SERVER_NAME, wire.vec16(b"\x00" + wire.u16(20) + b"localhost")),
        AD.decode_error),
    "server_name-empty-host_name": (
        hello_with(wire.EXT_SERVER_NAME, wire.vec16(b"\x00" + wire.vec16(b""))),
        AD.decode_error),
    # "The hostname is represented as a byte string using ASCII encoding" (RFC 6066 §3).
    "server_name-not-ASCII": (
        hello_with(wire.EXT_SERVER_NAME, wire.vec16(b"\x00" + wire.vec16("b\u00fccher.example".encode()))),
        AD.illegal_parameter),
    "extended_master_secret-with-data": (
        hello_with(wire.EXT_EXTENDED_MASTER_SECRET, b"\x00"),
        AD.decode_error),
    "alpn-empty-list": (
        hello_with(wire.EXT_ALPN, wire.vec16(b"")),
        AD.decode_error),
    "alpn-empty-name": (
        hello_with(wire.EXT_ALPN, wire.vec16(wire.vec8(b""))),
        AD.decode_error),
    # RFC 7301 §3.1: ProtocolName protocol_name_list<2..2^16-1>, each opaque<1..2^8-1>.
    "alpn-name-overruns-the-list": (
        hello_with(wire.EXT_ALPN, wire.vec16(wire.u8(10) + b"h2")),
        AD.decode_error),
    "alpn-later-name-empty": (
        hello_with(wire.EXT_ALPN, wire.vec16(wire.vec8(b"http/1.1") + wire.vec8(b""))),
        AD.decode_error),
    "supported_versions-empty": (
        hello_with(wire.EXT_SUPPORTED_VERSIONS, wire.vec8(b"")),
        AD.decode_error),
    "supported_versions-odd-length": (
        hello_with(wire.EXT_SUPPORTED_VERSIONS, wire.vec8(b"\x03\x03\x03")),
        AD.decode_error),
    "supported_versions-length-past-the-end": (
        hello_with(wire.EXT_SUPPORTED_VERSIONS, b"\x04\x03\x03"),
        AD.decode_error),
    "supported_versions-255-bytes": (
        hello_with(wire.EXT_SUPPORTED_VERSIONS, wire.vec8(b"\x03" * 255)),
        AD.decode_error),
    "signature_algorithms-empty": (
        hello_with(wire.EXT_SIGNATURE_ALGORITHMS, wire.vec16(b"")),
        AD.decode_error),
    "signature_algorithms-odd-length": (
        hello_with(wire.EXT_SIGNATURE_ALGORITHMS, wire.vec16(b"\x04\x01\x05")),
        AD.decode_error),
    "signature_algorithms-byte-after-the-list": (
        hello_with(wire.EXT_SIGNATURE_ALGORITHMS, wire.vec16(b"\x04\x01") + b"\x00"),
        AD.decode_error),
    "renegotiation_info-length-wrong": (
        hello_with(wire.EXT_RENEGOTIATION_INFO, b"\x01"),
        AD.decode_error),
    # RFC 5746 §3.6: a non-empty renegotiated_connection on an initial handshake.
    "renegotiation_info-not-empty": (
        wire.client_hello_body(extensions=[wire.ext_renegotiation_info(b"x" * 12)]),
        AD.handshake_failure),
    "legacy-version-ssl3": (
        wire.client_hello_body(version=0x0300), AD.protocol_version),
}


@pytest.mark.parametrize("name", MALFORMED_HELLOS)
def test_malformed_client_hello(server_config: ServerConfig, name: str) -> None:
    body, alert = MALFORMED_HELLOS[name]
    record = wire.record(wire.HANDSHAKE, wire.handshake_message(wire.CLIENT_HELLO, body))
    expect_fatal_alert(ServerConnection(server_config), record, alert)


def test_oversized_handshake_message_is_refused_before_it_arrives(
        server_config: ServerConfig) -> None:
    # DESIGN §5: memory per connection is bounded whatever the peer sends; a 16 MiB
    # ClientHello announces itself in its first four bytes.
    # The uint24 length is well-formed but out of the range this endpoint accepts (no
    # message of the profile comes near 64 KiB): illegal_parameter, as OpenSSL and
    # BoringSSL send for an excessive message size. The record itself is small, so not
    # record_overflow.
    header_only = wire.record(wire.HANDSHAKE, b"\x01\xff\xff\xff" + b"\x03\x03")
    expect_fatal_alert(ServerConnection(server_config), header_only, AD.illegal_parameter)


@pytest.mark.parametrize("msg_type,body", [
    (0, b""),  # hello_request
    (wire.SERVER_HELLO, wire.server_hello_body()),
    (wire.CLIENT_KEY_EXCHANGE, wire.vec16(os.urandom(256))),
    (wire.FINISHED, b"\x00" * 12),
], ids=["hello_request", "server_hello", "client_key_exchange", "finished"])
def test_wrong_first_handshake_message(server_config: ServerConfig, msg_type: int,
                                       body: bytes) -> None:
    record = wire.handshake_records(wire.handshake_message(msg_type, body))
    expect_fatal_alert(ServerConnection(server_config), record, AD.unexpected_message)


@pytest.mark.parametrize("msg_type", [99, 255])
@pytest.mark.parametrize("when", ["first-message", "after-server-hello-done"])
def test_unknown_handshake_message_type(server_config: ServerConfig, msg_type: int,
                                        when: str) -> None:
    # RFC 5246 §7.4: HandshakeType has no such value, so no state expects it (§7.2.2:
    # "An inappropriate message was received": unexpected_message).
    server = started(server_config)[0] if when == "after-server-hello-done" else (
        ServerConnection(server_config))
    record = wire.handshake_records(wire.handshake_message(msg_type, b"\x00\x01"))
    expect_fatal_alert(server, record, AD.unexpected_message)


def test_second_client_hello(server_config: ServerConfig) -> None:
    server, _ = started(server_config)
    expect_fatal_alert(server, hello_record(), AD.unexpected_message)


@pytest.mark.parametrize("payload", [b"\x02", b"\x01\x01", b""], ids=["2", "two-bytes", "empty"])
def test_malformed_change_cipher_spec(server_config: ServerConfig, payload: bytes) -> None:
    # RFC 5246 §7.1: "The message consists of a single byte of value 1." Anything else is
    # not a ChangeCipherSpec at all: decode_error (§7.2.2: a field out of the specified
    # range, or the wrong length). It comes where a ChangeCipherSpec is due, so it is not
    # unexpected_message.
    server, client = started(server_config)
    expect_fatal_alert(server, client.key_exchange() + wire.record(wire.CHANGE_CIPHER_SPEC,
                                                                   payload),
                       AD.decode_error)


def test_client_key_exchange_with_a_trailing_byte(server_config: ServerConfig) -> None:
    server, client = started(server_config)
    encrypted = client.encrypt_pre_master_secret(client.good_pre_master_secret())
    message = wire.handshake_message(wire.CLIENT_KEY_EXCHANGE, wire.vec16(encrypted) + b"\x00")
    expect_fatal_alert(server, wire.handshake_records(message), AD.decode_error)


@pytest.mark.parametrize("payload,alert", [
    (b"\x02\x28\x00", AD.decode_error),
    (b"\x02", AD.decode_error),
    # RFC 5246 §6.2.1: zero-length Alert fragments MUST NOT be sent.
    (b"", AD.decode_error),
    # AlertLevel is warning(1) or fatal(2); the two bytes decode but the level means
    # nothing: illegal_parameter, as OpenSSL and BoringSSL send for an unknown level.
    (b"\x03\x28", AD.illegal_parameter),
], ids=["three-bytes", "one-byte", "empty", "level-3"])
def test_malformed_alert(server_config: ServerConfig, payload: bytes,
                         alert: AlertDescription) -> None:
    # RFC 5246 §7.2: an Alert is exactly level(1) ‖ description(1).
    expect_fatal_alert(ServerConnection(server_config), wire.record(wire.ALERT, payload), alert)


@pytest.mark.parametrize("msg_type,body", [
    (0, b""), (wire.FINISHED, b"\x00" * 12), (wire.CLIENT_KEY_EXCHANGE, wire.vec16(b"\x00" * 256)),
], ids=["hello_request", "finished", "client_key_exchange"])
def test_handshake_message_after_the_handshake(server_config: ServerConfig, msg_type: int,
                                               body: bytes) -> None:
    server, client = established(server_config)
    record = client.seal(wire.HANDSHAKE, wire.handshake_message(msg_type, body))
    expect_encrypted_alert(server, client, record, AD.unexpected_message)


def test_peer_fatal_alert_ends_the_connection(server_config: ServerConfig) -> None:
    server, client = started(server_config)
    events = server.receive_data(wire.record(wire.ALERT, bytes([FATAL, AD.bad_certificate])))
    assert [type(e).__name__ for e in events] == ["AlertReceived", "ConnectionClosed"]
    assert isinstance(events[-1], ConnectionClosed) and not events[-1].clean
    assert server.data_to_send() == b""  # no alert answers an alert
    with pytest.raises(ProtocolError):
        server.receive_data(client.key_exchange())


def test_close_notify_at_fatal_level_is_a_failure_not_a_clean_close(
        server_config: ServerConfig) -> None:
    # The level decides (RFC 5246 §7.2): a fatal alert ends the connection as failed, whatever
    # its description, so a truncation cannot pass for an orderly close. OpenSSL agrees.
    server, client = established(server_config)
    events = server.receive_data(client.seal(wire.ALERT, bytes([FATAL, AD.close_notify])))
    assert [type(e).__name__ for e in events] == ["AlertReceived", "ConnectionClosed"]
    assert isinstance(events[-1], ConnectionClosed) and not events[-1].clean
    assert server.data_to_send() == b""  # no close_notify in answer
    with pytest.raises(ProtocolError) as info:
        server.send_application_data(b"too late")
    assert info.value.alert is AD.close_notify


# -- what must be tolerated ---------------------------------------------------------------------

def test_unknown_extensions_and_grease_values_are_ignored(server_config: ServerConfig) -> None:
    # DESIGN §2: unknown extensions are ignored; RFC 8701 GREASE values in suites, versions
    # and extension types must not disturb a server.
    exts = [wire.extension(0x1A1A, b""), *wire.default_extensions(),
            wire.ext_supported_versions([0x2A2A, wire.TLS13, wire.TLS12]),
            wire.extension(0x1234, b"unknown payload"), wire.extension(0xFAFA, b"\x00")]
    server = ServerConnection(server_config)
    client = wire.ManualClient(cipher_suites=[0x0A0A, 0x1301, wire.AES128_GCM_SHA256],
                               extensions=exts)
    client.handshake_with(server)
    assert server.session is not None
    assert server.session.cipher_suite == wire.AES128_GCM_SHA256
    assert server.session.version == wire.TLS12


def test_session_id_offered_gets_a_full_handshake(server_config: ServerConfig) -> None:
    # We never resume: a ServerHello echoing the client's session_id would tell the client
    # to expect an abbreviated handshake (RFC 5246 §7.4.1.3).
    session_id = os.urandom(32)
    server = ServerConnection(server_config)
    server.receive_data(hello_record(session_id=session_id))
    messages = wire.parse_handshake_messages(
        b"".join(r.fragment for r in wire.parse_records(server.data_to_send())))
    hello = messages[0][1][4:]
    assert hello[35:35 + hello[34]] != session_id
    assert [t for t, _ in messages] == [wire.SERVER_HELLO, wire.CERTIFICATE,
                                        wire.SERVER_HELLO_DONE]


def test_a_server_with_no_alpn_protocols_ignores_the_clients_offer(
        server_config: ServerConfig) -> None:
    # RFC 7301 §3.2's no_application_protocol is for a server that speaks ALPN and finds no
    # protocol in common; one configured with none takes no part and answers without ALPN.
    server = ServerConnection(dataclasses.replace(server_config, alpn_protocols=()))
    exts = [e for e in wire.default_extensions() if not e.startswith(wire.u16(wire.EXT_ALPN))]
    client = wire.ManualClient(extensions=exts + [wire.ext_alpn(["h2", "http/1.1"])])
    client.handshake_with(server)
    assert server.session is not None and server.session.alpn_protocol is None
