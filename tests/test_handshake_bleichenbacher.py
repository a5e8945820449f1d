"""Issue 2, point 7: the Bleichenbacher countermeasure (RFC 5246 §7.4.7.1).

A ClientKeyExchange whose RSA block has bad padding, a pre-master secret of
the wrong length, or the wrong version bytes must look exactly like a
well-formed ClientKeyExchange carrying a pre-master secret the client did
not use: the server answers nothing after ClientKeyExchange +
ChangeCipherSpec, and the client's Finished then fails to authenticate
(bad_record_mac) because the server derived its keys from a random
pre-master secret. Same events, same bytes queued, same error, same point.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import tls_wire as wire

from handshake import (
    AlertDescription,
    Event,
    ProtocolError,
    RemoteProtocolError,
    ServerConfig,
    ServerConnection,
)


def modulus_len(client: wire.ManualClient) -> int:
    return (client.server_public_key.key_size + 7) // 8


def bad_block_type(client: wire.ManualClient, pms: bytes) -> bytes:
    # 00 01 (the signature block type) instead of 00 02.
    k = modulus_len(client)
    block = b"\x00\x01" + b"\xff" * (k - 3 - len(pms)) + b"\x00" + pms
    return wire.pkcs1_v15_encrypt_raw(client.server_public_key, block)


def no_zero_separator(client: wire.ManualClient, pms: bytes) -> bytes:
    # 00 02, then nonzero bytes to the very end: there is no message at all.
    k = modulus_len(client)
    block = b"\x00\x02" + wire.nonzero_random(k - 2)
    return wire.pkcs1_v15_encrypt_raw(client.server_public_key, block)


def short_padding(client: wire.ManualClient, pms: bytes) -> bytes:
    # PKCS #1 v1.5 needs at least 8 padding bytes; give it 7 and a long message.
    k = modulus_len(client)
    block = b"\x00\x02" + wire.nonzero_random(7) + b"\x00" + os.urandom(k - 10)
    return wire.pkcs1_v15_encrypt_raw(client.server_public_key, block)


def pms_47_bytes(client: wire.ManualClient, pms: bytes) -> bytes:
    return client.encrypt_pre_master_secret(pms[:47])


def pms_49_bytes(client: wire.ManualClient, pms: bytes) -> bytes:
    return client.encrypt_pre_master_secret(pms + b"\x00")


def pms_empty(client: wire.ManualClient, pms: bytes) -> bytes:
    return client.encrypt_pre_master_secret(b"")


def version_tls10(client: wire.ManualClient, pms: bytes) -> bytes:
    return client.encrypt_pre_master_secret(b"\x03\x01" + pms[2:])


def version_tls13(client: wire.ManualClient, pms: bytes) -> bytes:
    return client.encrypt_pre_master_secret(b"\x03\x04" + pms[2:])


def well_formed_but_unused(client: wire.ManualClient, pms: bytes) -> bytes:
    # A perfectly good pre-master secret, just not the one the client derives its keys from.
    return client.encrypt_pre_master_secret(client.good_pre_master_secret())


VARIANTS: dict[str, Callable[[wire.ManualClient, bytes], bytes]] = {
    "bad-padding-block-type": bad_block_type,
    "bad-padding-no-separator": no_zero_separator,
    "bad-padding-too-short": short_padding,
    "wrong-length-47": pms_47_bytes,
    "wrong-length-49": pms_49_bytes,
    "wrong-length-0": pms_empty,
    "wrong-version-0301": version_tls10,
    "wrong-version-0304": version_tls13,
    "well-formed-unused": well_formed_but_unused,
}


@dataclass(frozen=True)
class Outcome:
    """Everything a peer (or a log reader) can observe after each step."""

    events_after_key_exchange: tuple[str, ...]
    sent_after_key_exchange: bytes
    error_type: str
    error_alert: AlertDescription
    error_message: str
    sent_after_finished: bytes
    events_after_finished: tuple[str, ...]


def run(server_config: ServerConfig, variant: Callable[[wire.ManualClient, bytes], bytes],
        suite: int) -> Outcome:
    server = ServerConnection(server_config)
    client = wire.ManualClient(cipher_suites=[suite])
    server.receive_data(client.hello())
    client.read_server_hello_flight(server.data_to_send())
    pms = client.good_pre_master_secret()
    events = server.receive_data(client.key_exchange(pre_master_secret=pms,
                                                     encrypted=variant(client, pms))
                                 + client.change_cipher_spec())
    sent = server.data_to_send()
    finished = client.finished()
    events_after: list[Event] = []
    try:
        events_after = server.receive_data(finished)
    except ProtocolError as error:
        return Outcome(tuple(type(e).__name__ for e in events), sent, type(error).__name__,
                       error.alert, str(error), server.data_to_send(), ())
    return Outcome(tuple(type(e).__name__ for e in events), sent, "no error",
                   AlertDescription.close_notify, "", server.data_to_send(),
                   tuple(type(e).__name__ for e in events_after))


# The bad_record_mac alert, in plaintext: the server has not sent ChangeCipherSpec.
BAD_RECORD_MAC_ALERT = wire.record(wire.ALERT, bytes([2, AlertDescription.bad_record_mac]))


@pytest.mark.parametrize("suite", [wire.AES128_GCM_SHA256, wire.AES256_GCM_SHA384])
@pytest.mark.parametrize("name", VARIANTS)
def test_bad_key_exchange_fails_only_at_the_finished(server_config: ServerConfig, name: str,
                                                     suite: int) -> None:
    outcome = run(server_config, VARIANTS[name], suite)
    assert outcome.sent_after_key_exchange == b"", (
        f"server answered the ClientKeyExchange: {outcome.sent_after_key_exchange.hex()}")
    assert outcome.error_type == RemoteProtocolError.__name__, outcome
    assert outcome.error_alert is AlertDescription.bad_record_mac, outcome
    assert wire.alert_of(outcome.sent_after_finished) == (2, AlertDescription.bad_record_mac), (
        outcome.sent_after_finished.hex())


def test_every_variant_has_the_same_outcome(server_config: ServerConfig) -> None:
    suite = wire.AES128_GCM_SHA256
    outcomes = {name: run(server_config, variant, suite) for name, variant in VARIANTS.items()}
    reference = outcomes["well-formed-unused"]
    different = {name: outcome for name, outcome in outcomes.items() if outcome != reference}
    assert not different, f"reference {reference}; different: {different}"
    assert reference.sent_after_finished == BAD_RECORD_MAC_ALERT


def test_the_right_key_exchange_still_works(server_config: ServerConfig) -> None:
    # The control: the same steps with the pre-master secret the client used.
    server = ServerConnection(server_config)
    client = wire.ManualClient()
    client.handshake_with(server)
    assert server.handshake_complete
