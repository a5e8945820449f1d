"""A small, independent TLS 1.2 encoder for the tests (RFC 5246, RFC 5288, RFC 7627).

The tests craft bad bytes with it, so it must not share code with
``handshake/``: every encoder here is written from the RFCs. ``ManualClient``
walks a ``ServerConnection`` through the RSA key-transport handshake by hand
and lets a test replace any piece of it (the pre-master secret, its RSA
encryption, the Finished verify_data) with something wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# RFC 5246 §6.2.1 content types, §7.4 handshake types, §7.2 alerts.
CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23

HELLO_REQUEST = 0
CLIENT_HELLO = 1
SERVER_HELLO = 2
CERTIFICATE = 11
CERTIFICATE_REQUEST = 13
SERVER_HELLO_DONE = 14
CLIENT_KEY_EXCHANGE = 16
FINISHED = 20

TLS12 = 0x0303
TLS13 = 0x0304

# Extension code points (RFC 6066, 7301, 7627, 5746, 8446).
EXT_SERVER_NAME = 0
EXT_SUPPORTED_GROUPS = 10
EXT_EC_POINT_FORMATS = 11
EXT_SIGNATURE_ALGORITHMS = 13
EXT_ALPN = 16
EXT_EXTENDED_MASTER_SECRET = 23
EXT_SUPPORTED_VERSIONS = 43
EXT_RENEGOTIATION_INFO = 0xFF01

AES128_GCM_SHA256 = 0x009C
AES256_GCM_SHA384 = 0x009D


# -- vectors (RFC 5246 §4.3) -------------------------------------------------------------------

def u8(value: int) -> bytes:
    return struct.pack("!B", value)


def u16(value: int) -> bytes:
    return struct.pack("!H", value)


def u24(value: int) -> bytes:
    return struct.pack("!I", value)[1:]


def vec8(data: bytes) -> bytes:
    return u8(len(data)) + data


def vec16(data: bytes) -> bytes:
    return u16(len(data)) + data


def vec24(data: bytes) -> bytes:
    return u24(len(data)) + data


# -- records and handshake framing (RFC 5246 §6.2, §7.4) ---------------------------------------

def record(content_type: int, fragment: bytes, version: int = TLS12) -> bytes:
    """A TLSPlaintext/TLSCiphertext record: type(1) version(2) length(2) fragment."""
    return u8(content_type) + u16(version) + u16(len(fragment)) + fragment


def handshake_message(msg_type: int, body: bytes) -> bytes:
    """A Handshake struct: msg_type(1) length(3) body."""
    return u8(msg_type) + vec24(body)


def handshake_records(messages: bytes, max_fragment: int = 2**14) -> bytes:
    """Handshake bytes split into handshake records of at most ``max_fragment`` bytes each."""
    return b"".join(record(HANDSHAKE, messages[i:i + max_fragment])
                    for i in range(0, len(messages), max_fragment))


@dataclass(frozen=True)
class Record:
    content_type: int
    version: int
    fragment: bytes

    def encode(self) -> bytes:
        return record(self.content_type, self.fragment, self.version)


def parse_records(data: bytes | bytearray) -> list[Record]:
    """Split bytes into records; the bytes must hold whole records only."""
    records = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 5:
            raise ValueError(f"{len(data) - offset} stray bytes after the last record")
        content_type, version, length = struct.unpack_from("!BHH", data, offset)
        fragment = data[offset + 5:offset + 5 + length]
        if len(fragment) != length:
            raise ValueError(f"record of {length} bytes has only {len(fragment)}")
        records.append(Record(content_type, version, bytes(fragment)))
        offset += 5 + length
    return records


def parse_handshake_messages(data: bytes) -> list[tuple[int, bytes]]:
    """Split concatenated handshake messages into (msg_type, whole message including header)."""
    messages = []
    offset = 0
    while offset < len(data):
        msg_type = data[offset]
        length = int.from_bytes(data[offset + 1:offset + 4], "big")
        whole = data[offset:offset + 4 + length]
        if len(whole) != 4 + length:
            raise ValueError("truncated handshake message")
        messages.append((msg_type, whole))
        offset += 4 + length
    return messages


def alert_of(data: bytes | bytearray) -> tuple[int, int]:
    """(level, description) of the single plaintext alert record ``data`` must be exactly."""
    records = parse_records(data)
    if len(records) != 1 or records[0].content_type != ALERT or len(records[0].fragment) != 2:
        raise AssertionError(f"expected exactly one plaintext alert record, got {data.hex()}")
    return records[0].fragment[0], records[0].fragment[1]


# -- ClientHello (RFC 5246 §7.4.1.2) and its extensions ----------------------------------------

def extension(ext_type: int, data: bytes) -> bytes:
    return u16(ext_type) + vec16(data)


def ext_server_name(host: str) -> bytes:
    # RFC 6066 §3: ServerNameList of one host_name (type 0).
    return extension(EXT_SERVER_NAME, vec16(u8(0) + vec16(host.encode())))


def ext_extended_master_secret() -> bytes:
    return extension(EXT_EXTENDED_MASTER_SECRET, b"")


def ext_renegotiation_info(renegotiated_connection: bytes = b"") -> bytes:
    return extension(EXT_RENEGOTIATION_INFO, vec8(renegotiated_connection))


def ext_alpn(protocols: Sequence[str]) -> bytes:
    return extension(EXT_ALPN, vec16(b"".join(vec8(p.encode()) for p in protocols)))


def ext_supported_versions(versions: Sequence[int]) -> bytes:
    return extension(EXT_SUPPORTED_VERSIONS, vec8(b"".join(u16(v) for v in versions)))


def ext_signature_algorithms() -> bytes:
    # rsa_pkcs1_sha256, rsa_pkcs1_sha384, rsa_pss_rsae_sha256
    return extension(EXT_SIGNATURE_ALGORITHMS, vec16(u16(0x0401) + u16(0x0501) + u16(0x0804)))


def default_extensions(server_name: str | None = "localhost", ems: bool = True) -> list[bytes]:
    exts = []
    if server_name is not None:
        exts.append(ext_server_name(server_name))
    if ems:
        exts.append(ext_extended_master_secret())
    exts += [ext_renegotiation_info(), ext_alpn(["http/1.1"]), ext_signature_algorithms()]
    return exts


def client_hello_body(random: bytes | None = None, *, version: int = TLS12,
                      session_id: bytes = b"",
                      cipher_suites: Sequence[int] = (AES128_GCM_SHA256, AES256_GCM_SHA384),
                      compression_methods: bytes = b"\x00",
                      extensions: Iterable[bytes] | None = None) -> bytes:
    """The ClientHello body; ``extensions=None`` gives the usual set, ``[]`` an empty list."""
    if random is None:
        random = os.urandom(32)
    exts = default_extensions() if extensions is None else list(extensions)
    return (u16(version) + random + vec8(session_id)
            + vec16(b"".join(u16(s) for s in cipher_suites))
            + vec8(compression_methods) + vec16(b"".join(exts)))


def client_hello(**options: object) -> bytes:
    """A whole ClientHello handshake message (header included); options as client_hello_body."""
    return handshake_message(CLIENT_HELLO, client_hello_body(**options))  # type: ignore[arg-type]


# -- PRF and key schedule (RFC 5246 §5, §6.3, §7.4.9; RFC 7627 §4) -----------------------------

def p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    out = b""
    a = seed
    while len(out) < length:
        a = hmac.new(secret, a, hash_name).digest()
        out += hmac.new(secret, a + seed, hash_name).digest()
    return out[:length]


def prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    return p_hash(hash_name, secret, label + seed, length)


def suite_hash(suite: int) -> str:
    return "sha256" if suite == AES128_GCM_SHA256 else "sha384"


def suite_key_len(suite: int) -> int:
    return 16 if suite == AES128_GCM_SHA256 else 32


@dataclass
class GCMState:
    """One direction of AES-GCM record protection (RFC 5288 §3, RFC 5246 §6.2.3.3)."""

    key: bytes
    salt: bytes
    seq: int = 0

    def seal(self, content_type: int, plaintext: bytes, version: int = TLS12) -> bytes:
        explicit = self.seq.to_bytes(8, "big")
        aad = explicit + u8(content_type) + u16(version) + u16(len(plaintext))
        sealed = AESGCM(self.key).encrypt(self.salt + explicit, plaintext, aad)
        self.seq += 1
        return record(content_type, explicit + sealed, version)

    def open(self, rec: Record) -> bytes:
        explicit, sealed = rec.fragment[:8], rec.fragment[8:]
        aad = (self.seq.to_bytes(8, "big") + u8(rec.content_type) + u16(rec.version)
               + u16(len(sealed) - 16))
        plaintext = AESGCM(self.key).decrypt(self.salt + explicit, sealed, aad)
        self.seq += 1
        return plaintext


def pkcs1_v15_encrypt_raw(public_key: rsa.RSAPublicKey, encoded_message: bytes) -> bytes:
    """Textbook RSA of a whole encoded block, so a test can send any padding it likes."""
    numbers = public_key.public_numbers()
    k = (numbers.n.bit_length() + 7) // 8
    if len(encoded_message) != k:
        raise ValueError(f"encoded message must be {k} bytes")
    m = int.from_bytes(encoded_message, "big")
    return pow(m, numbers.e, numbers.n).to_bytes(k, "big")


def nonzero_random(length: int) -> bytes:
    out = b""
    while len(out) < length:
        out += bytes(b for b in os.urandom(length) if b != 0)
    return out[:length]


# -- a client done by hand ---------------------------------------------------------------------

@dataclass
class ManualClient:
    """Our own test-side client: builds each flight itself and checks the server's answers.

    Use: ``hello()`` → feed to the server → ``read_server_hello_flight(out)`` →
    ``key_exchange(...)`` / ``change_cipher_spec()`` / ``finished()`` → feed →
    ``read_server_finished(out)``; then ``seal``/``open`` application data.
    """

    cipher_suites: Sequence[int] = (AES128_GCM_SHA256, AES256_GCM_SHA384)
    extensions: list[bytes] | None = None
    client_random: bytes = field(default_factory=lambda: os.urandom(32))
    transcript: bytes = b""
    server_random: bytes = b""
    suite: int = 0
    server_extensions: dict[int, bytes] = field(default_factory=dict)
    certificates: list[bytes] = field(default_factory=list)
    master_secret: bytes = b""
    client_verify_data: bytes = b""
    write: GCMState | None = None
    read: GCMState | None = None

    @property
    def hash_name(self) -> str:
        return suite_hash(self.suite)

    @property
    def ems(self) -> bool:
        return EXT_EXTENDED_MASTER_SECRET in self.server_extensions

    @property
    def server_public_key(self) -> rsa.RSAPublicKey:
        key = x509.load_der_x509_certificate(self.certificates[0]).public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        return key

    def hello_message(self) -> bytes:
        return client_hello(random=self.client_random, cipher_suites=self.cipher_suites,
                            extensions=self.extensions)

    def hello(self) -> bytes:
        message = self.hello_message()
        self.transcript += message
        return handshake_records(message)

    def read_server_hello_flight(self, data: bytes | bytearray) -> None:
        """Parse ServerHello, Certificate, ServerHelloDone (plaintext) and remember them."""
        records = parse_records(data)
        assert all(r.content_type == HANDSHAKE for r in records), records
        messages = parse_handshake_messages(b"".join(r.fragment for r in records))
        types = [t for t, _ in messages]
        assert types == [SERVER_HELLO, CERTIFICATE, SERVER_HELLO_DONE], types
        for _, whole in messages:
            self.transcript += whole
        hello = messages[0][1][4:]
        assert hello[:2] == u16(TLS12)
        self.server_random = hello[2:34]
        sid_len = hello[34]
        offset = 35 + sid_len
        self.suite = int.from_bytes(hello[offset:offset + 2], "big")
        assert hello[offset + 2] == 0, "compression must be null"
        offset += 3
        if offset < len(hello):
            ext_total = int.from_bytes(hello[offset:offset + 2], "big")
            offset += 2
            end = offset + ext_total
            assert end == len(hello)
            while offset < end:
                ext_type, ext_len = struct.unpack_from("!HH", hello, offset)
                self.server_extensions[ext_type] = hello[offset + 4:offset + 4 + ext_len]
                offset += 4 + ext_len
        cert_body = messages[1][1][4:]
        offset = 3
        while offset < len(cert_body):
            length = int.from_bytes(cert_body[offset:offset + 3], "big")
            self.certificates.append(cert_body[offset + 3:offset + 3 + length])
            offset += 3 + length

    def good_pre_master_secret(self) -> bytes:
        return u16(TLS12) + os.urandom(46)

    def encrypt_pre_master_secret(self, pre_master_secret: bytes) -> bytes:
        return self.server_public_key.encrypt(pre_master_secret, padding.PKCS1v15())

    def key_exchange(self, pre_master_secret: bytes | None = None,
                     encrypted: bytes | None = None) -> bytes:
        """The ClientKeyExchange record.

        ``pre_master_secret`` is what this client derives its keys from;
        ``encrypted`` (default: its proper encryption) is what goes on the wire.
        """
        if pre_master_secret is None:
            pre_master_secret = self.good_pre_master_secret()
        if encrypted is None:
            encrypted = self.encrypt_pre_master_secret(pre_master_secret)
        message = handshake_message(CLIENT_KEY_EXCHANGE, vec16(encrypted))
        self.transcript += message
        self._derive_keys(pre_master_secret)
        return handshake_records(message)

    def _derive_keys(self, pre_master_secret: bytes) -> None:
        if self.ems:
            session_hash = hashlib.new(self.hash_name, self.transcript).digest()
            self.master_secret = prf(self.hash_name, pre_master_secret,
                                     b"extended master secret", session_hash, 48)
        else:
            self.master_secret = prf(self.hash_name, pre_master_secret, b"master secret",
                                     self.client_random + self.server_random, 48)
        key_len = suite_key_len(self.suite)
        block = prf(self.hash_name, self.master_secret, b"key expansion",
                    self.server_random + self.client_random, 2 * key_len + 8)
        client_key, server_key = block[:key_len], block[key_len:2 * key_len]
        client_salt = block[2 * key_len:2 * key_len + 4]
        server_salt = block[2 * key_len + 4:2 * key_len + 8]
        self.write = GCMState(client_key, client_salt)
        self.read = GCMState(server_key, server_salt)

    def change_cipher_spec(self) -> bytes:
        return record(CHANGE_CIPHER_SPEC, b"\x01")

    def verify_data(self, label: bytes) -> bytes:
        digest = hashlib.new(self.hash_name, self.transcript).digest()
        return prf(self.hash_name, self.master_secret, label, digest, 12)

    def finished(self, verify_data: bytes | None = None) -> bytes:
        """The client's encrypted Finished record (``verify_data`` overrides the right one)."""
        assert self.write is not None
        self.client_verify_data = self.verify_data(b"client finished")
        message = handshake_message(FINISHED, verify_data if verify_data is not None
                                    else self.client_verify_data)
        self.transcript += message
        return self.write.seal(HANDSHAKE, message)

    def read_server_finished(self, data: bytes) -> list[Record]:
        """Check the server's ChangeCipherSpec and Finished; return any records after them."""
        assert self.read is not None
        records = parse_records(data)
        assert records[0].content_type == CHANGE_CIPHER_SPEC and records[0].fragment == b"\x01"
        assert records[1].content_type == HANDSHAKE
        message = self.read.open(records[1])
        expected = handshake_message(FINISHED, self.verify_data(b"server finished"))
        assert message == expected, f"server Finished {message.hex()} != {expected.hex()}"
        self.transcript += message
        return records[2:]

    def handshake_with(self, server: object) -> None:
        """Run the whole handshake against a ``ServerConnection`` in memory."""
        server.receive_data(self.hello())  # type: ignore[attr-defined]
        self.read_server_hello_flight(server.data_to_send())  # type: ignore[attr-defined]
        flight = self.key_exchange() + self.change_cipher_spec() + self.finished()
        server.receive_data(flight)  # type: ignore[attr-defined]
        rest = self.read_server_finished(server.data_to_send())  # type: ignore[attr-defined]
        assert rest == [], rest

    def seal(self, content_type: int, plaintext: bytes) -> bytes:
        assert self.write is not None
        return self.write.seal(content_type, plaintext)

    def open_all(self, data: bytes | bytearray) -> list[tuple[int, bytes]]:
        """Decrypt every record the server sent after its Finished: (content_type, plaintext)."""
        assert self.read is not None
        return [(r.content_type, self.read.open(r)) for r in parse_records(data)]


# -- a server flight done by hand (to test the client side) ------------------------------------

def server_hello_body(random: bytes | None = None, *, version: int = TLS12,
                      session_id: bytes = b"", cipher_suite: int = AES128_GCM_SHA256,
                      compression_method: int = 0,
                      extensions: Iterable[bytes] | None = None) -> bytes:
    """The ServerHello body (RFC 5246 §7.4.1.3); ``extensions=None`` gives EMS and
    renegotiation_info, ``[]`` an empty list."""
    if random is None:
        random = os.urandom(32)
    exts = ([ext_renegotiation_info(), ext_extended_master_secret()] if extensions is None
            else list(extensions))
    return (u16(version) + random + vec8(session_id) + u16(cipher_suite) + u8(compression_method)
            + vec16(b"".join(exts)))


def certificate_body(chain_der: Sequence[bytes]) -> bytes:
    """The Certificate body (RFC 5246 §7.4.2): a vector of DER certificates, leaf first."""
    return vec24(b"".join(vec24(der) for der in chain_der))


def server_flight(chain_der: Sequence[bytes], *, hello: bytes | None = None) -> bytes:
    """ServerHello, Certificate, ServerHelloDone as handshake messages (no record framing)."""
    return (handshake_message(SERVER_HELLO, hello if hello is not None else server_hello_body())
            + handshake_message(CERTIFICATE, certificate_body(chain_der))
            + handshake_message(SERVER_HELLO_DONE, b""))
