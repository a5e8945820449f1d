"""Wire constants of the TLS 1.2 profile we speak (RFC 5246 and the extension RFCs).

One place for every number that appears on the wire.
"""

from __future__ import annotations

import enum

__all__ = ["AlertDescription", "AlertLevel", "CipherSuite", "ContentType", "HandshakeType"]

TLS12 = 0x0303
TLS13 = 0x0304
# Until the hellos fix the version, a record may carry any {03,XX}: clients put
# 0x0301 or even a future version on their first ClientHello, and servers
# must accept it (RFC 5246 Appendix E.1).
RECORD_VERSION_MAJOR = 0x03

MAX_PLAINTEXT = 2**14
MAX_CIPHERTEXT = 2**14 + 2048  # RFC 5246 §6.2.3: TLSCiphertext.length limit
RECORD_HEADER_LEN = 5
# A handshake message bigger than this is refused: certificate chains of
# 2-4096-bit RSA keys fit easily, and it bounds memory per connection.
MAX_HANDSHAKE_MESSAGE = 64 * 1024

RANDOM_LEN = 32
MASTER_SECRET_LEN = 48
PRE_MASTER_SECRET_LEN = 48
VERIFY_DATA_LEN = 12
GCM_SALT_LEN = 4
GCM_EXPLICIT_NONCE_LEN = 8
GCM_TAG_LEN = 16
# RFC 5246 §6.1: sequence numbers are uint64 and must not wrap.
MAX_SEQUENCE_NUMBER = 2**64 - 1


class ContentType(enum.IntEnum):
    change_cipher_spec = 20
    alert = 21
    handshake = 22
    application_data = 23


class HandshakeType(enum.IntEnum):
    hello_request = 0
    client_hello = 1
    server_hello = 2
    certificate = 11
    server_key_exchange = 12
    certificate_request = 13
    server_hello_done = 14
    certificate_verify = 15
    client_key_exchange = 16
    finished = 20


class AlertLevel(enum.IntEnum):
    warning = 1
    fatal = 2


class AlertDescription(enum.IntEnum):
    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    record_overflow = 22
    handshake_failure = 40
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    decode_error = 50
    decrypt_error = 51
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    no_renegotiation = 100
    unsupported_extension = 110
    unrecognized_name = 112
    no_application_protocol = 120


class CipherSuite(enum.IntEnum):
    """The two suites of our profile: RSA key transport, AES-GCM (RFC 5288)."""

    TLS_RSA_WITH_AES_128_GCM_SHA256 = 0x009C
    TLS_RSA_WITH_AES_256_GCM_SHA384 = 0x009D

    @property
    def openssl_name(self) -> str:
        """The name OpenSSL and Python's ``ssl`` use for this suite."""
        return _OPENSSL_NAMES[self]

    @property
    def key_len(self) -> int:
        return 16 if self is CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256 else 32

    @property
    def hash_name(self) -> str:
        """The PRF hash (RFC 5288 §3): SHA-256 or SHA-384."""
        return "sha256" if self is CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256 else "sha384"


_OPENSSL_NAMES = {
    CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256: "AES128-GCM-SHA256",
    CipherSuite.TLS_RSA_WITH_AES_256_GCM_SHA384: "AES256-GCM-SHA384",
}

TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF  # RFC 5746 §3.3


class ExtensionType(enum.IntEnum):
    server_name = 0
    supported_groups = 10
    ec_point_formats = 11
    signature_algorithms = 13
    application_layer_protocol_negotiation = 16
    extended_master_secret = 23
    session_ticket = 35
    supported_versions = 43
    renegotiation_info = 0xFF01
