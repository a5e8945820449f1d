"""The TLS 1.2 key schedule for our AES-GCM suites (RFC 5246 §5, §6.3, §8.1; RFC 7627; RFC 5288)."""

from __future__ import annotations

from typing import NamedTuple

from ._constants import GCM_SALT_LEN, MASTER_SECRET_LEN, VERIFY_DATA_LEN, CipherSuite
from ._crypto import PrfKey

__all__ = [
    "TrafficKeys",
    "compute_master_secret",
    "compute_verify_data",
    "derive_traffic_keys",
    "keylog_line",
]


class MasterSecret:
    """The 48-byte master secret with its PRF key prepared once for the uses that follow."""

    __slots__ = ("secret", "suite", "_prf")

    def __init__(self, suite: CipherSuite, secret: bytes) -> None:
        self.suite = suite
        self.secret = secret
        self._prf = PrfKey(suite.hash_name, secret)

    def prf(self, label: bytes, seed: bytes, length: int) -> bytes:
        """PRF(master_secret, label, seed) = P_<hash>(master_secret, label + seed) (RFC 5246 §5)."""
        return self._prf.p_hash(label + seed, length)


def compute_master_secret(suite: CipherSuite, pre_master_secret: bytes, client_random: bytes,
                          server_random: bytes, session_hash: bytes | None) -> MasterSecret:
    """RFC 7627 §4 when ``session_hash`` is given (extended master secret), else RFC 5246 §8.1."""
    if session_hash is not None:
        label_and_seed = b"extended master secret" + session_hash
    else:
        label_and_seed = b"master secret" + client_random + server_random
    secret = PrfKey(suite.hash_name, pre_master_secret).p_hash(label_and_seed, MASTER_SECRET_LEN)
    return MasterSecret(suite, secret)


class TrafficKeys(NamedTuple):
    client_write_key: bytes
    server_write_key: bytes
    client_write_salt: bytes
    server_write_salt: bytes


def derive_traffic_keys(master: MasterSecret, client_random: bytes,
                        server_random: bytes) -> TrafficKeys:
    """RFC 5246 §6.3 key block; AEAD suites have no MAC keys, and a 4-byte implicit IV (salt)."""
    k = master.suite.key_len
    block = master.prf(b"key expansion", server_random + client_random,
                       2 * k + 2 * GCM_SALT_LEN)
    return TrafficKeys(block[:k], block[k:2 * k], block[2 * k:2 * k + GCM_SALT_LEN],
                       block[2 * k + GCM_SALT_LEN:])


def compute_verify_data(master: MasterSecret, label: bytes, transcript_hash: bytes) -> bytes:
    """RFC 5246 §7.4.9: PRF(master_secret, finished_label, Hash(handshake_messages))[0..11]."""
    return master.prf(label, transcript_hash, VERIFY_DATA_LEN)


def keylog_line(client_random: bytes, master: MasterSecret) -> str:
    """The NSS key log format line that Wireshark reads for TLS 1.2."""
    return f"CLIENT_RANDOM {client_random.hex()} {master.secret.hex()}"
