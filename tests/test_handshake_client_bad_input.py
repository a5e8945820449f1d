"""Bad input to our client (issue 2: "every failure mapped to the alert a real peer expects").

The server side of point 6, mirrored: a hand-made server flight (tests/tls_wire.py)
with one thing wrong, fed to a ClientConnection in memory; the client must raise
its own RemoteProtocolError and queue the matching alert. After the
handshake, records forged with the session keys (taken from our server's key
log) check the server Finished and record protection on the client side.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import tls_wire as wire
from conftest import CertFiles, decode_error_at_every_length, expect_fatal_alert
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from handshake import (
    AlertDescription,
    ApplicationData,
    CipherSuite,
    ClientConfig,
    ClientConnection,
    LocalProtocolError,
    RemoteProtocolError,
    ServerConfig,
    ServerConnection,
)

AD = AlertDescription


@pytest.fixture(scope="module")
def chain_der(certs: CertFiles) -> list[bytes]:
    return [c.public_bytes(Encoding.DER)
            for c in x509.load_pem_x509_certificates(certs.chain_pem.read_bytes())]


def started_client(config: ClientConfig) -> ClientConnection:
    client = ClientConnection(config)
    client.start_handshake()
    client.data_to_send()
    return client


def flight(chain: list[bytes], **hello: object) -> bytes:
    return wire.handshake_records(wire.server_flight(
        chain, hello=wire.server_hello_body(**hello)))  # type: ignore[arg-type]


def messages(*parts: tuple[int, bytes]) -> bytes:
    return wire.handshake_records(b"".join(wire.handshake_message(t, b) for t, b in parts))


def test_hand_made_flight_is_accepted(client_config: ClientConfig, chain_der: list[bytes]) -> None:
    # The control: the unmodified hand-made flight gets a ClientKeyExchange back.
    client = started_client(client_config)
    client.receive_data(flight(chain_der))
    records = wire.parse_records(client.data_to_send())
    assert [r.content_type for r in records] == [wire.HANDSHAKE, wire.CHANGE_CIPHER_SPEC,
                                                 wire.HANDSHAKE]


def with_renegotiation_info(*extensions: bytes) -> dict[str, object]:
    """ServerHello options: the (required) empty renegotiation_info, then ``extensions``."""
    return {"extensions": [wire.ext_renegotiation_info(), *extensions]}


# The client offers server_name "localhost", extended_master_secret, renegotiation_info,
# signature_algorithms and ALPN ["http/1.1"] (ClientConfig's defaults).
SERVER_HELLO_CASES: dict[str, tuple[dict[str, object], AlertDescription]] = {
    # RFC 5246 Appendix E.1: a server version the client does not support (lower or
    # higher) "MUST send a protocol_version alert message and close the connection".
    "version-tls11": ({"version": 0x0302}, AD.protocol_version),
    "version-tls13": ({"version": 0x0304}, AD.protocol_version),
    "suite-not-offered": ({"cipher_suite": 0x002F}, AD.illegal_parameter),
    "compression-deflate": ({"compression_method": 1}, AD.illegal_parameter),
    "session-id-33-bytes": ({"session_id": b"s" * 33}, AD.decode_error),
    # RFC 5246 §7.4.1.4: an extension not requested "MUST abort ... unsupported_extension".
    "unsolicited-extension": (with_renegotiation_info(wire.extension(0x1234, b"")),
                              AD.unsupported_extension),
    # The extension was offered but the protocol was not: a value the client never allowed,
    # illegal_parameter (no_application_protocol is the server's alert, RFC 7301 §3.2).
    "alpn-not-offered": (with_renegotiation_info(wire.ext_alpn(["h2"])), AD.illegal_parameter),
    "renegotiation_info-not-empty": ({"extensions": [wire.ext_renegotiation_info(b"x" * 24)]},
                                     AD.handshake_failure),
    # RFC 5246 §7.4.1.4: "MUST NOT be more than one extension of the same type"; both decode,
    # so illegal_parameter, as on the server side.
    "duplicate-extension": ({"extensions": [wire.ext_renegotiation_info(),
                                            wire.ext_renegotiation_info()]},
                            AD.illegal_parameter),
    # RFC 5746 §3.2: renegotiated_connection<0..255>, its length byte must fill the extension.
    "renegotiation_info-length-wrong": (
        {"extensions": [wire.extension(wire.EXT_RENEGOTIATION_INFO, b"\x01")]}, AD.decode_error),
    # RFC 7627 §5.1: "The "extension_data" field of this extension is empty".
    "extended_master_secret-with-data": (
        with_renegotiation_info(wire.extension(wire.EXT_EXTENDED_MASTER_SECRET, b"\x00")),
        AD.decode_error),
    # RFC 7301 §3.1: the same ProtocolNameList syntax as in the ClientHello.
    "alpn-list-length-wrong": (
        with_renegotiation_info(wire.extension(wire.EXT_ALPN,
                                               wire.u16(20) + wire.vec8(b"http/1.1"))),
        AD.decode_error),
    "alpn-name-overruns-the-list": (
        with_renegotiation_info(wire.extension(wire.EXT_ALPN,
                                               wire.vec16(wire.u8(20) + b"http/1.1"))),
        AD.decode_error),
    # RFC 7301 §3.1: the server's list contains "exactly one ProtocolName". Both names are
    # ones the client offered, so only the count is wrong: illegal_parameter.
    "alpn-two-names": (with_renegotiation_info(wire.ext_alpn(["http/1.1", "http/1.1"])),
                       AD.illegal_parameter),
    # RFC 6066 §3: a server that used the name answers with server_name whose
    # "extension_data" field "SHALL be empty".
    "server_name-ack-with-data": (with_renegotiation_info(wire.ext_server_name("localhost")),
                                  AD.decode_error),
}


@pytest.mark.parametrize("name", SERVER_HELLO_CASES)
def test_bad_server_hello(client_config: ClientConfig, chain_der: list[bytes], name: str) -> None:
    hello, alert = SERVER_HELLO_CASES[name]
    expect_fatal_alert(started_client(client_config), flight(chain_der, **hello), alert)


def test_server_chooses_a_suite_offered_but_not_by_this_client(
        certs: CertFiles, chain_der: list[bytes]) -> None:
    config = ClientConfig.from_ca_file(certs.ca_pem, "localhost",
                                       cipher_suites=[CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256])
    expect_fatal_alert(started_client(config),
                        flight(chain_der, cipher_suite=wire.AES256_GCM_SHA384),
                        AD.illegal_parameter)


def test_server_sends_ems_the_client_did_not_offer(certs: CertFiles,
                                                   chain_der: list[bytes]) -> None:
    config = ClientConfig.from_ca_file(certs.ca_pem, "localhost", extended_master_secret=False)
    expect_fatal_alert(started_client(config), flight(chain_der), AD.unsupported_extension)


def test_start_handshake_twice(client_config: ClientConfig) -> None:
    # API misuse: a second ClientHello would be a new handshake on the same connection.
    # The caller's mistake: LocalProtocolError (internal_error), nothing sent to the peer.
    client = started_client(client_config)
    with pytest.raises(LocalProtocolError) as info:
        client.start_handshake()
    assert info.value.alert is AD.internal_error
    assert info.value.args[0] == "the handshake was already started"
    assert client.data_to_send() == b""


# RFC 5246 §7.4.4: certificate_types<1..2^8-1>, supported_signature_algorithms<2..2^16-2>,
# certificate_authorities<0..2^16-1> of DistinguishedName<1..2^16-1>.
GOOD_CERTIFICATE_REQUEST = wire.vec8(b"\x01") + wire.vec16(b"\x04\x01") + wire.vec16(b"")

# RFC 5246 §7.4.3: ServerKeyExchange is not legal with RSA key transport; every case is a
# message where the RFC 5246 §7.3 flight has none: unexpected_message (§7.2.2). A
# CertificateRequest may come once, between Certificate and ServerHelloDone.
OUT_OF_ORDER_FLIGHTS: dict[str, Callable[[list[bytes]], bytes]] = {
    "no-certificate": lambda chain: messages((wire.SERVER_HELLO, wire.server_hello_body()),
                                             (wire.SERVER_HELLO_DONE, b"")),
    "server-key-exchange": lambda chain: messages(
        (wire.SERVER_HELLO, wire.server_hello_body()),
        (wire.CERTIFICATE, wire.certificate_body(chain)),
        (12, b"\x03\x00\x17\x41" + b"\x04" * 65),
        (wire.SERVER_HELLO_DONE, b"")),
    "certificate-request-before-certificate": lambda chain: messages(
        (wire.SERVER_HELLO, wire.server_hello_body()),
        (wire.CERTIFICATE_REQUEST, GOOD_CERTIFICATE_REQUEST)),
    "two-certificate-requests": lambda chain: messages(
        (wire.SERVER_HELLO, wire.server_hello_body()),
        (wire.CERTIFICATE, wire.certificate_body(chain)),
        (wire.CERTIFICATE_REQUEST, GOOD_CERTIFICATE_REQUEST),
        (wire.CERTIFICATE_REQUEST, GOOD_CERTIFICATE_REQUEST)),
    "client-hello": lambda chain: wire.handshake_records(wire.client_hello()),
    "two-server-hellos": lambda chain: messages((wire.SERVER_HELLO, wire.server_hello_body()),
                                                (wire.SERVER_HELLO, wire.server_hello_body())),
}


@pytest.mark.parametrize("name", OUT_OF_ORDER_FLIGHTS)
def test_flight_out_of_order(client_config: ClientConfig, chain_der: list[bytes],
                             name: str) -> None:
    expect_fatal_alert(started_client(client_config), OUT_OF_ORDER_FLIGHTS[name](chain_der),
                       AD.unexpected_message)


# Certificate bodies (RFC 5246 §7.4.2: ASN.1Cert certificate_list<0..2^24-1>, each
# ASN.1Cert opaque<1..2^24-1>), built from the real chain.
CERTIFICATE_CASES: dict[str, tuple[Callable[[list[bytes]], bytes], AlertDescription]] = {
    # Well-formed but no certificate: RSA key transport has no key to encrypt to, so no
    # acceptable security parameters (§7.2.2 handshake_failure; as for a missing client
    # certificate, §7.4.6).
    "empty-list": (lambda chain: wire.vec24(b""), AD.handshake_failure),
    # A DER SEQUENCE that is no certificate: "A certificate was corrupt" (bad_certificate).
    "not-a-certificate": (lambda chain: wire.certificate_body([b"\x30\x03\x02\x01\x00"]),
                          AD.bad_certificate),
    "byte-after-the-list": (lambda chain: wire.certificate_body(chain) + b"\x00",
                            AD.decode_error),
    "one-entry-empty": (lambda chain: wire.certificate_body([chain[0], b""]), AD.decode_error),
    "entry-overruns-the-list": (
        lambda chain: wire.vec24(wire.u24(len(chain[0]) + 10) + chain[0]), AD.decode_error),
}


def leaf_edited(old: bytes, new: bytes) -> Callable[[list[bytes]], bytes]:
    """A Certificate body whose leaf has its first ``old`` bytes replaced by ``new`` (same length,
    so the DER framing stays whole and only what is inside goes wrong)."""
    assert len(old) == len(new)

    def build(chain: list[bytes]) -> bytes:
        assert old in chain[0], old
        return wire.certificate_body([chain[0].replace(old, new, 1), *chain[1:]])

    return build


# Leaves whose outer DER is fine but whose insides are not. cryptography parses some of
# these parts lazily and raises InvalidVersion, ValueError, TypeError, KeyError or
# DuplicateExtension, by flaw (a fuzzer found each); all are a corrupt certificate
# (bad_certificate). A key of a kind nobody knows is an unsupported one.
_ISSUER_O = b"\x06\x03\x55\x04\x0a\x0c"  # organizationName, then UTF8String's tag
CERTIFICATE_CASES |= {
    "unknown-x509-version": (leaf_edited(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x45"),
                             AD.bad_certificate),
    "san-name-overruns": (leaf_edited(b"\x82\x09localhost", b"\x82\x7flocalhost"),
                          AD.bad_certificate),
    "issuer-as-bit-string": (leaf_edited(_ISSUER_O, _ISSUER_O[:-1] + b"\x03"),
                             AD.bad_certificate),
    "issuer-of-unknown-string-type": (leaf_edited(_ISSUER_O, _ISSUER_O[:-1] + b"\x08"),
                                      AD.bad_certificate),
    # The subjectAltName's OID (2.5.29.17) written over the basicConstraints' (2.5.29.19).
    "duplicate-extension": (leaf_edited(b"\x06\x03\x55\x1d\x13", b"\x06\x03\x55\x1d\x11"),
                            AD.bad_certificate),
    # rsaEncryption (1.2.840.113549.1.1.1) turned into 1.2.840.113549.1.1.99
    "unknown-key-algorithm": (leaf_edited(b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05",
                                          b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x63\x05"),
                              AD.unsupported_certificate),
}


@pytest.mark.parametrize("name", CERTIFICATE_CASES)
def test_certificate_problems(client_config: ClientConfig, chain_der: list[bytes],
                              name: str) -> None:
    build, alert = CERTIFICATE_CASES[name]
    expect_fatal_alert(started_client(client_config),
                       messages((wire.SERVER_HELLO, wire.server_hello_body()),
                                (wire.CERTIFICATE, build(chain_der)),
                                (wire.SERVER_HELLO_DONE, b"")),
                       alert)


def test_server_hello_done_with_a_body(client_config: ClientConfig,
                                       chain_der: list[bytes]) -> None:
    # RFC 5246 §7.4.5: "struct { } ServerHelloDone;": any body is the wrong length.
    expect_fatal_alert(started_client(client_config),
                       messages((wire.SERVER_HELLO, wire.server_hello_body()),
                                (wire.CERTIFICATE, wire.certificate_body(chain_der)),
                                (wire.SERVER_HELLO_DONE, b"\x00")),
                       AD.decode_error)


def test_server_hello_truncated_at_every_length(client_config: ClientConfig,
                                                chain_der: list[bytes]) -> None:
    body = wire.server_hello_body()
    without_extensions = 2 + 32 + 1 + 2 + 1  # RFC 5246 §7.4.1.3: extensions may be absent
    rest = (wire.handshake_message(wire.CERTIFICATE, wire.certificate_body(chain_der))
            + wire.handshake_message(wire.SERVER_HELLO_DONE, b""))
    def prepare(truncated: bytes) -> tuple[ClientConnection, bytes]:
        return started_client(client_config), wire.handshake_records(
            wire.handshake_message(wire.SERVER_HELLO, truncated) + rest)

    failures = decode_error_at_every_length(body, prepare, skip={without_extensions})
    assert not failures, failures


def test_certificate_truncated_at_every_length(client_config: ClientConfig,
                                               chain_der: list[bytes]) -> None:
    body = wire.certificate_body(chain_der)
    def prepare(truncated: bytes) -> tuple[ClientConnection, bytes]:
        return started_client(client_config), messages(
            (wire.SERVER_HELLO, wire.server_hello_body()), (wire.CERTIFICATE, truncated),
            (wire.SERVER_HELLO_DONE, b""))

    failures = decode_error_at_every_length(body, prepare)
    assert not failures, failures


# -- after the keys are in use: forge records with the keys from our server's key log ----------

class Session:
    """Our client and our server up to the server's last flight, plus the server's write state."""

    def __init__(self, client_config: ClientConfig, certs: CertFiles) -> None:
        lines: list[str] = []
        server_config = ServerConfig.from_pem_files(certs.chain_pem, certs.key_pem,
                                                    keylog=lines.append)
        self.client = ClientConnection(client_config)
        self.server = ServerConnection(server_config)
        self.client.start_handshake()
        self.server.receive_data(self.client.data_to_send())
        self.client.receive_data(self.server.data_to_send())
        self.server.receive_data(self.client.data_to_send())
        self.server_flight = self.server.data_to_send()
        session = self.server.session
        assert session is not None
        master_secret = bytes.fromhex(lines[0].split()[2])
        hash_name = wire.suite_hash(session.cipher_suite)
        key_len = wire.suite_key_len(session.cipher_suite)
        block = wire.prf(hash_name, master_secret, b"key expansion",
                         session.server_random + session.client_random, 2 * key_len + 8)
        self.server_write = wire.GCMState(block[key_len:2 * key_len],
                                          block[2 * key_len + 4:2 * key_len + 8])
        self.client_write = wire.GCMState(block[:key_len], block[2 * key_len:2 * key_len + 4])


def test_wrong_server_finished(client_config: ClientConfig, certs: CertFiles) -> None:
    session = Session(client_config, certs)
    change_cipher_spec = wire.parse_records(session.server_flight)[0]
    forged = change_cipher_spec.encode() + session.server_write.seal(
        wire.HANDSHAKE, wire.handshake_message(wire.FINISHED, os.urandom(12)))
    with pytest.raises(RemoteProtocolError) as info:
        session.client.receive_data(forged)
    assert info.value.alert is AD.decrypt_error
    # The client's write keys are active: its alert is sealed.
    queued = wire.parse_records(session.client.data_to_send())
    session.client_write.seq = 1  # the client's Finished used 0
    assert [(r.content_type, session.client_write.open(r)) for r in queued] == [
        (wire.ALERT, bytes([2, AD.decrypt_error]))]


def test_flipped_bit_in_a_server_record(client_config: ClientConfig, certs: CertFiles) -> None:
    session = Session(client_config, certs)
    session.client.receive_data(session.server_flight)
    session.server.send_application_data(b"HTTP/1.1 200 OK\r\n\r\n")
    record = bytearray(session.server.data_to_send())
    record[-5] ^= 0x10
    with pytest.raises(RemoteProtocolError) as info:
        session.client.receive_data(bytes(record))
    assert info.value.alert is AD.bad_record_mac
    session.client_write.seq = 1
    queued = wire.parse_records(session.client.data_to_send())
    assert [(r.content_type, session.client_write.open(r)) for r in queued] == [
        (wire.ALERT, bytes([2, AD.bad_record_mac]))]


def test_hello_request_after_the_handshake_is_refused(client_config: ClientConfig,
                                                      certs: CertFiles) -> None:
    session = Session(client_config, certs)
    session.client.receive_data(session.server_flight)
    session.server_write.seq = 1  # after the server's Finished
    hello_request = session.server_write.seal(wire.HANDSHAKE, wire.handshake_message(0, b""))
    session.client_write.seq = 1
    assert session.client.receive_data(hello_request) == []
    # RFC 5246 §7.4.1.1 / §7.2.2: decline with no_renegotiation, which "is always a warning".
    queued = wire.parse_records(session.client.data_to_send())
    assert [(r.content_type, session.client_write.open(r)) for r in queued] == [
        (wire.ALERT, bytes([1, AD.no_renegotiation]))]
    assert session.client.handshake_complete and session.client.state == "established"
    # A warning leaves the connection up: data keeps flowing both ways (server seq 2,
    # client seq 3 after its Finished and the alert).
    events = session.client.receive_data(
        session.server_write.seal(wire.APPLICATION_DATA, b"still here"))
    assert events == [ApplicationData(b"still here")]
    session.client.send_application_data(b"and back")
    queued = wire.parse_records(session.client.data_to_send())
    assert [(r.content_type, session.client_write.open(r)) for r in queued] == [
        (wire.APPLICATION_DATA, b"and back")]


def test_hello_request_during_the_handshake_is_ignored_unless_it_has_a_body(
        client_config: ClientConfig, chain_der: list[bytes]) -> None:
    # RFC 5246 §7.4.1.1: HelloRequest is an empty struct that a client ignores while it is
    # negotiating; with a body it is malformed (§7.2.2: decode_error).
    client = started_client(client_config)
    assert client.receive_data(messages((wire.HELLO_REQUEST, b""))) == []
    assert client.data_to_send() == b""
    client.receive_data(flight(chain_der))
    assert wire.parse_records(client.data_to_send())[0].content_type == wire.HANDSHAKE

    expect_fatal_alert(started_client(client_config), messages((wire.HELLO_REQUEST, b"garbage")),
                       AD.decode_error)


def test_hello_request_with_a_body_after_the_handshake(client_config: ClientConfig,
                                                       certs: CertFiles) -> None:
    session = Session(client_config, certs)
    session.client.receive_data(session.server_flight)
    session.server_write.seq = 1  # after the server's Finished
    with pytest.raises(RemoteProtocolError) as info:
        session.client.receive_data(session.server_write.seal(
            wire.HANDSHAKE, wire.handshake_message(wire.HELLO_REQUEST, b"\x00")))
    assert info.value.alert is AD.decode_error
    session.client_write.seq = 1
    queued = wire.parse_records(session.client.data_to_send())
    assert [(r.content_type, session.client_write.open(r)) for r in queued] == [
        (wire.ALERT, bytes([2, AD.decode_error]))]


def test_a_flood_of_hello_requests_after_the_handshake(client_config: ClientConfig,
                                                       certs: CertFiles) -> None:
    # 32 records in a row that carry nothing are allowed (OpenSSL's limit for empty
    # records); the 33rd ends the connection with unexpected_message.
    session = Session(client_config, certs)
    session.client.receive_data(session.server_flight)
    session.server_write.seq = 1
    hello_request = wire.handshake_message(0, b"")
    flood = b"".join(session.server_write.seal(wire.HANDSHAKE, hello_request) for _ in range(32))
    assert session.client.receive_data(flood) == []
    session.client_write.seq = 1
    queued = wire.parse_records(session.client.data_to_send())
    assert [(r.content_type, session.client_write.open(r)) for r in queued] == [
        (wire.ALERT, bytes([1, AD.no_renegotiation]))] * 32
    with pytest.raises(RemoteProtocolError) as info:
        session.client.receive_data(session.server_write.seal(wire.HANDSHAKE, hello_request))
    assert info.value.alert is AD.unexpected_message
    assert "more than 32 records in a row carried no data" in str(info.value)
    queued = wire.parse_records(session.client.data_to_send())
    assert [(r.content_type, session.client_write.open(r)) for r in queued] == [
        (wire.ALERT, bytes([2, AD.unexpected_message]))]


def test_a_flood_of_hello_requests_during_the_handshake(client_config: ClientConfig,
                                                        chain_der: list[bytes]) -> None:
    hello_request = messages((0, b""))
    client = started_client(client_config)
    client.receive_data(hello_request * 32 + flight(chain_der))
    assert client.data_to_send()[:1] == bytes([wire.HANDSHAKE])  # the ClientKeyExchange
    client = started_client(client_config)
    client.receive_data(hello_request * 32)
    expect_fatal_alert(client, hello_request, AD.unexpected_message)


def test_certificate_request_is_answered_with_an_empty_certificate(
        client_config: ClientConfig, chain_der: list[bytes]) -> None:
    # RFC 5246 §7.4.6: without a certificate the client still sends Certificate, empty,
    # before its ClientKeyExchange, and both go into the transcript.
    client = started_client(client_config)
    client.receive_data(messages(
        (wire.SERVER_HELLO, wire.server_hello_body()),
        (wire.CERTIFICATE, wire.certificate_body(chain_der)),
        (wire.CERTIFICATE_REQUEST, wire.vec8(b"\x01\x40") + wire.vec16(b"\x04\x01\x08\x04")
         + wire.vec16(wire.vec16(b"0\x00"))),
        (wire.SERVER_HELLO_DONE, b"")))
    records = wire.parse_records(client.data_to_send())
    handshake = wire.parse_handshake_messages(records[0].fragment)
    assert [t for t, _ in handshake] == [wire.CERTIFICATE, wire.CLIENT_KEY_EXCHANGE]
    assert handshake[0][1] == wire.handshake_message(wire.CERTIFICATE, wire.vec24(b""))
    assert [r.content_type for r in records[1:]] == [wire.CHANGE_CIPHER_SPEC, wire.HANDSHAKE]


CERTIFICATE_REQUESTS = {
    "no-certificate-types": wire.vec8(b"") + wire.vec16(b"\x04\x01") + wire.vec16(b""),
    "no-signature-algorithms": wire.vec8(b"\x01") + wire.vec16(b"") + wire.vec16(b""),
    "odd-signature-algorithms": wire.vec8(b"\x01") + wire.vec16(b"\x04\x01\x05") + wire.vec16(b""),
    "empty-distinguished-name": wire.vec8(b"\x01") + wire.vec16(b"\x04\x01")
    + wire.vec16(wire.vec16(b"")),
    "distinguished-name-overruns": wire.vec8(b"\x01") + wire.vec16(b"\x04\x01")
    + wire.vec16(wire.u16(9) + b"0\x00"),
    "byte-after-the-authorities": GOOD_CERTIFICATE_REQUEST + b"\x00",
    "truncated": GOOD_CERTIFICATE_REQUEST[:-1],
}


@pytest.mark.parametrize("name", CERTIFICATE_REQUESTS)
def test_malformed_certificate_request(client_config: ClientConfig, chain_der: list[bytes],
                                       name: str) -> None:
    expect_fatal_alert(started_client(client_config), messages(
        (wire.SERVER_HELLO, wire.server_hello_body()),
        (wire.CERTIFICATE, wire.certificate_body(chain_der)),
        (wire.CERTIFICATE_REQUEST, CERTIFICATE_REQUESTS[name]),
        (wire.SERVER_HELLO_DONE, b"")), AD.decode_error)

