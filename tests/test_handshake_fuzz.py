"""Mutation fuzzing: whatever the bytes, the library fails only with its own error and an alert.

Each test runs a few hundred real handshakes between our client and our
server, and at one flight (the same for the whole test) mutates the bytes on
the way: some changed, flipped, cut out or put in, then fed whole or in random
pieces. It checks the invariants of issue 2's error handling: ``receive_data``
either works or raises ``ProtocolError``, never anything else; a raised error
has queued one fatal alert, the last record out; the connection then stays
failed. The mutations come from a fixed seed, and a failure prints its case's
bytes; the flights themselves change from run to run (fresh randoms), so each
run also tries new bytes.

This is how the certificates that cryptography parses lazily were found
(see test_handshake_client_bad_input.py's CERTIFICATE_CASES).
"""

from __future__ import annotations

import random

import pytest
import tls_wire as wire

from handshake import (
    ClientConfig,
    ClientConnection,
    LocalProtocolError,
    ProtocolError,
    ServerConfig,
    ServerConnection,
)

CASES_PER_TARGET = 250
Connection = ServerConnection | ClientConnection
# The flights of a handshake in order, with who receives each.
STAGES = ("ClientHello", "ServerHello..ServerHelloDone", "ClientKeyExchange..Finished",
          "server ChangeCipherSpec, Finished", "client application data",
          "server application data")


def live_flight(client_config: ClientConfig, server_config: ServerConfig,
                stage: str) -> tuple[Connection, bytes]:
    """Run a real handshake up to ``stage``; return its receiver and the flight it is due.

    A fresh handshake per case, so the flight carries valid MACs and
    matching randoms, and a mutation is the only thing wrong with it.
    """
    client, server = ClientConnection(client_config), ServerConnection(server_config)
    client.start_handshake()
    sender: Connection = client
    receiver: Connection = server
    for name in STAGES:
        if name == "client application data":
            client.send_application_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            client.send_application_data(b"x" * 300)
        elif name == "server application data":
            server.send_application_data(b"HTTP/1.1 200 OK\r\n\r\n")
            server.close()
        flight = sender.data_to_send()
        if name == stage:
            return receiver, flight
        receiver.receive_data(flight)
        sender, receiver = receiver, sender
    raise AssertionError(f"no stage {stage!r}")


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        at = rng.randrange(len(out)) if out else 0
        if roll < 0.4 and out:
            out[at] = rng.randrange(256)
        elif roll < 0.6 and out:
            out[at] ^= 1 << rng.randrange(8)
        elif roll < 0.8 and out:
            del out[at:at + rng.randint(1, 8)]
        else:
            out[at:at] = rng.randbytes(rng.randint(1, 8))
    return bytes(out)


def feed(conn: Connection, data: bytes, rng: random.Random) -> None:
    """All at once or in random pieces; stops at the first error, as a caller would."""
    if rng.random() < 0.5:
        conn.receive_data(data)
        return
    at = 0
    while at < len(data):
        size = rng.randint(1, 64)
        conn.receive_data(data[at:at + size])
        at += size


def check_failure(conn: Connection, error: ProtocolError, case: str) -> None:
    """One fatal alert queued, the last record out, matching the error; then failed for good."""
    records = wire.parse_records(conn.data_to_send())
    assert records, f"{case}: {error!r} queued no alert"
    alert = records[-1]
    assert alert.content_type == wire.ALERT, f"{case}: the last record out is {alert}"
    if len(alert.fragment) == 2:  # before the keys are in use: readable
        assert tuple(alert.fragment) == (2, error.alert), f"{case}: {alert} for {error!r}"
    else:  # sealed: 8-byte explicit nonce, the 2 bytes, 16-byte tag
        assert len(alert.fragment) == 8 + 2 + 16, f"{case}: {alert}"
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"\x17\x03\x03\x00\x01\x00")


@pytest.mark.parametrize("stage", STAGES)
def test_mutated_flights_fail_only_with_an_alert(client_config: ClientConfig,
                                                 server_config: ServerConfig,
                                                 stage: str) -> None:
    rng = random.Random(stage)
    failures = 0
    for number in range(CASES_PER_TARGET):
        conn, flight = live_flight(client_config, server_config, stage)
        data = mutate(rng, flight)
        try:
            feed(conn, data, rng)
        except ProtocolError as error:
            failures += 1
            check_failure(conn, error, f"{stage} #{number} ({data.hex()})")
    # Not a vacuous run: most mutations must have been caught.
    assert failures > CASES_PER_TARGET // 2, failures
