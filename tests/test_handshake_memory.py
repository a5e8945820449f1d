"""Issue 2, point 4: our client against our server in memory.

Handshake bytes fed one byte at a time, and every flight delivered in a
single read (several records, several handshake messages per record,
application data right behind the Finished); handshake messages fragmented
into one-byte records; application data of 0 B, 1 B, 16 KiB, 16 KiB + 1 and
10 MiB arriving intact, each way.
"""

from __future__ import annotations

import os

import pytest
import tls_wire as wire
from conftest import MemoryPair

from handshake import (
    AlertDescription,
    AlertLevel,
    AlertReceived,
    ApplicationData,
    CipherSuite,
    ClientConfig,
    ClientConnection,
    ClientFinished,
    ClientHello,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    LocalProtocolError,
    ServerConfig,
    ServerConnection,
    ServerFinished,
    ServerHello,
)

LADDER = [ClientHello, ServerHello, ClientFinished, ServerFinished, HandshakeComplete]


def ladder(events: list[Event]) -> list[type]:
    return [type(e) for e in events if not isinstance(
        e, (ApplicationData, AlertReceived, ConnectionClosed))]


def feed_bytewise(conn: ClientConnection | ServerConnection, data: bytes) -> list[Event]:
    events: list[Event] = []
    for i in range(len(data)):
        events += conn.receive_data(data[i:i + 1])
    return events


@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.openssl_name)
def test_one_byte_at_a_time(client_config: ClientConfig,
                            server_config: ServerConfig, suite: CipherSuite) -> None:
    client = ClientConnection(ClientConfig(trust_anchors=client_config.trust_anchors,
                                           server_name="localhost", cipher_suites=[suite]))
    server = ServerConnection(server_config)
    client_events = client.start_handshake()
    server_events: list[Event] = []
    while True:
        to_server, to_client = client.data_to_send(), b""
        server_events += feed_bytewise(server, to_server)
        to_client = server.data_to_send()
        client_events += feed_bytewise(client, to_client)
        if not to_server and not to_client:
            break
    assert ladder(client_events) == LADDER
    assert ladder(server_events) == LADDER
    assert client.session == server.session
    assert server.session is not None and server.session.cipher_suite is suite
    # Application data and close_notify, a byte at a time too.
    client.send_application_data(b"ping" * 100)
    server_events = feed_bytewise(server, client.data_to_send())
    assert b"".join(e.data for e in server_events if isinstance(e, ApplicationData)) == (
        b"ping" * 100)
    server.send_application_data(b"pong" * 5000)
    server.close()
    client_events = feed_bytewise(client, server.data_to_send())
    assert b"".join(e.data for e in client_events if isinstance(e, ApplicationData)) == (
        b"pong" * 5000)
    assert client_events[-1] == ConnectionClosed(clean=True)


def test_every_flight_in_a_single_read(client_config: ClientConfig,
                                       server_config: ServerConfig) -> None:
    client = ClientConnection(client_config)
    server = ServerConnection(server_config)
    client_events = client.start_handshake()
    # Flight 1: ClientHello. Flight 2: ServerHello, Certificate, ServerHelloDone as one read.
    server_events = server.receive_data(client.data_to_send())
    client_events += client.receive_data(server.data_to_send())
    # Flight 3: ClientKeyExchange, ChangeCipherSpec, Finished as one read.
    server_events += server.receive_data(client.data_to_send())
    # Flight 4: ChangeCipherSpec, Finished, then application data and close_notify, one read.
    server.send_application_data(b"early from server")
    server.close()
    client_events += client.receive_data(server.data_to_send())
    assert ladder(client_events) == LADDER
    assert ladder(server_events) == LADDER
    assert [e for e in client_events if isinstance(e, ApplicationData)] == [
        ApplicationData(b"early from server")]
    assert client_events[-1] == ConnectionClosed(clean=True)


def reframe(data: bytes, size: int | None) -> bytes:
    """Re-cut the plaintext handshake records in ``data``: ``size`` bytes per record, or (None)
    all of them in one record. Records from ChangeCipherSpec on pass through unchanged."""
    out = b""
    pending = b""
    protected = False
    for rec in wire.parse_records(data):
        if rec.content_type == wire.HANDSHAKE and not protected:
            pending += rec.fragment
            continue
        if pending:
            out += wire.handshake_records(pending, size or len(pending))
            pending = b""
        protected = protected or rec.content_type == wire.CHANGE_CIPHER_SPEC
        out += rec.encode()
    if pending:
        out += wire.handshake_records(pending, size or len(pending))
    return out


@pytest.mark.parametrize("size", [1, 3, None], ids=["1-byte-records", "3-byte-records",
                                                     "one-record"])
def test_handshake_messages_refragmented(client_config: ClientConfig,
                                         server_config: ServerConfig, size: int | None) -> None:
    client = ClientConnection(client_config)
    server = ServerConnection(server_config)
    client.start_handshake()
    server.receive_data(reframe(client.data_to_send(), size))
    client.receive_data(reframe(server.data_to_send(), size))
    # Flight 3's ClientKeyExchange is plaintext and re-cut; the Finished is sealed and kept.
    server.receive_data(reframe(client.data_to_send(), size))
    client.receive_data(server.data_to_send())
    assert client.handshake_complete and server.handshake_complete
    assert client.session == server.session


SIZES = [0, 1, 2**14, 2**14 + 1, 10 * 2**20]


@pytest.mark.parametrize("size", SIZES, ids=["0B", "1B", "16KiB", "16KiB+1", "10MiB"])
def test_application_data_sizes(client_config: ClientConfig, server_config: ServerConfig,
                                size: int) -> None:
    pair = MemoryPair.connected(client_config, server_config)
    payload = os.urandom(size)
    pair.client.send_application_data(payload)
    wire_bytes = pair.client.data_to_send()
    if size == 0:
        # Nothing to carry, so no record: an empty one is only noise to the peer
        # (and receive_data(b"") would mean EOF).
        assert wire_bytes == b""
        pair.server.send_application_data(payload)
        assert pair.server.data_to_send() == b""
        return
    records = wire.parse_records(wire_bytes)
    assert all(r.content_type == wire.APPLICATION_DATA for r in records)
    assert all(len(r.fragment) <= 2**14 + 2048 for r in records)
    assert len(records) >= -(-size // 2**14)  # at least ceil(size / 16 KiB) records
    events = pair.server.receive_data(wire_bytes)
    assert b"".join(e.data for e in events if isinstance(e, ApplicationData)) == payload
    assert all(len(e.data) <= 2**14 for e in events if isinstance(e, ApplicationData))
    # And back the other way.
    pair.server.send_application_data(payload[::-1])
    events = pair.client.receive_data(pair.server.data_to_send())
    assert b"".join(e.data for e in events if isinstance(e, ApplicationData)) == payload[::-1]


def test_application_data_split_at_awkward_points(client_config: ClientConfig,
                                                  server_config: ServerConfig) -> None:
    pair = MemoryPair.connected(client_config, server_config)
    payload = os.urandom(3 * 2**14 + 5)
    pair.client.send_application_data(payload)
    data = pair.client.data_to_send()
    received = b""
    # Cuts inside headers, nonces, ciphertexts and tags.
    for start, end in zip([0, 2, 7, 16400, 16430, 40000], [2, 7, 16400, 16430, 40000, len(data)],
                          strict=True):
        for event in pair.server.receive_data(data[start:end]):
            assert isinstance(event, ApplicationData)
            received += event.data
    assert received == payload


def test_close_notify_both_ways(client_config: ClientConfig, server_config: ServerConfig) -> None:
    pair = MemoryPair.connected(client_config, server_config)
    pair.client.close()
    events = pair.server.receive_data(pair.client.data_to_send())
    assert events[-1] == ConnectionClosed(clean=True)
    pair.server.close()
    events = pair.client.receive_data(pair.server.data_to_send())
    assert events[-1] == ConnectionClosed(clean=True)


def test_eof_without_close_notify_is_not_clean(client_config: ClientConfig,
                                               server_config: ServerConfig) -> None:
    pair = MemoryPair.connected(client_config, server_config)
    pair.client.send_application_data(b"truncated?")
    events = pair.server.receive_data(pair.client.data_to_send())
    events += pair.server.receive_data(b"")
    assert events[-1] == ConnectionClosed(clean=False)


def test_both_sides_report_the_same_facts(client_config: ClientConfig,
                                          server_config: ServerConfig) -> None:
    pair = MemoryPair.connected(client_config, server_config)
    assert pair.client.session == pair.server.session
    session = pair.server.session
    assert session is not None
    assert session.version == 0x0303
    assert session.server_name == "localhost"
    assert session.alpn_protocol == "http/1.1"
    assert session.extended_master_secret
    client_hello = [e for e in pair.client_events + pair.server_events
                    if isinstance(e, ClientHello)]
    assert client_hello[0] == client_hello[1]
    server_hello = {e.certificate_verified for e in pair.client_events + pair.server_events
                    if isinstance(e, ServerHello)}
    assert True in server_hello  # the client verified the chain


@pytest.mark.parametrize("kind", ["bytearray", "memoryview"])
def test_a_reused_receive_buffer(client_config: ClientConfig, server_config: ServerConfig,
                                 kind: str) -> None:
    """A caller that reads into one buffer (``sock.recv_into(buf)``) and hands it over, then
    reuses it for the next read: a record split across the two reads must arrive intact.
    The library must neither keep nor modify the caller's bytes-like object."""
    pair = MemoryPair.connected(client_config, server_config)
    pair.client.send_application_data(b"A" * 1000)
    data = bytes(pair.client.data_to_send())
    half = len(data) // 2
    buffer = bytearray(data[:half])
    first = memoryview(buffer) if kind == "memoryview" else buffer
    events = pair.server.receive_data(first)
    assert buffer == data[:half], "receive_data changed the caller's buffer"
    if kind == "memoryview":
        first.release()  # type: ignore[union-attr]
    buffer[:] = data[half:]  # the next read lands in the same buffer
    second = memoryview(buffer) if kind == "memoryview" else buffer
    events += pair.server.receive_data(second)
    assert b"".join(e.data for e in events if isinstance(e, ApplicationData)) == b"A" * 1000


def test_sequence_numbers_never_wrap(client_config: ClientConfig,
                                     server_config: ServerConfig) -> None:
    """RFC 5246 §6.1: a sequence number must not wrap, and renegotiation (refused here) is
    the only way on, so the connection ends. 2^64 records cannot be sent in a test: the
    counters are moved to their last values, the one place these tests touch internals."""
    last = 2**64 - 1
    pair = MemoryPair.connected(client_config, server_config)
    # 2^64 - 1 itself is the last number a record may carry ("may not exceed").
    pair.client._records.write_cipher.seq = last  # type: ignore[union-attr]
    pair.server._records.read_cipher.seq = last  # type: ignore[union-attr]
    pair.client.send_application_data(b"the last record")
    assert pair.server.receive_data(pair.client.data_to_send()) == [
        ApplicationData(b"the last record")]
    with pytest.raises(LocalProtocolError) as sending:
        pair.client.send_application_data(b"one too many")
    assert sending.value.alert is AlertDescription.internal_error
    assert pair.client.data_to_send() == b""  # no key left to protect an alert with
    assert pair.client.state == "failed"

    pair = MemoryPair.connected(client_config, server_config)
    pair.server._records.read_cipher.seq = last + 1  # type: ignore[union-attr]
    pair.client.send_application_data(b"one too many")
    with pytest.raises(LocalProtocolError) as receiving:
        pair.server.receive_data(pair.client.data_to_send())
    assert receiving.value.alert is AlertDescription.internal_error
    events = pair.client.receive_data(pair.server.data_to_send())
    assert events[0] == AlertReceived(AlertLevel.fatal, AlertDescription.internal_error)
