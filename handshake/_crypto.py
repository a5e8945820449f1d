"""Every use of ``cryptography`` in the library: keys, certificates, RSA, AES-GCM.

Keeping them here means the rest of the library deals in bytes, and a
reader can audit all cryptographic operations in one file. Hashing and HMAC
for the PRF come from the standard library (they are the same OpenSSL code,
with less call overhead).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from ._constants import PRE_MASTER_SECRET_LEN

Certificate = x509.Certificate
RSAPrivateKey = rsa.RSAPrivateKey
RSAPublicKey = rsa.RSAPublicKey

__all__ = [
    "AESGCM",
    "Certificate",
    "InvalidTag",
    "RSAPrivateKey",
    "RSAPublicKey",
    "certificate_der",
    "certificate_summary",
    "check_server_key",
    "decrypt_pre_master_secret",
    "encrypt_pre_master_secret",
    "load_der_certificate",
    "load_der_leaf",
    "load_pem_chain",
    "load_pem_rsa_private_key",
    "rsa_public_key",
    "HASHES",
    "PrfKey",
    "ServerVerifier",
]


# --- loading ---------------------------------------------------------------

def load_pem_chain(path: str | os.PathLike[str]) -> list[x509.Certificate]:
    with open(path, "rb") as f:
        data = f.read()
    try:
        chain = x509.load_pem_x509_certificates(data)
    except (ValueError, x509.InvalidVersion) as exc:
        raise ValueError(f"{os.fspath(path)}: no PEM certificate could be read ({exc})") from None
    try:
        for cert in chain:
            _read_lazy_parts(cert)
    except ValueError as exc:
        raise ValueError(f"{os.fspath(path)}: a certificate is malformed ({exc})") from None
    return chain


def load_pem_rsa_private_key(path: str | os.PathLike[str]) -> rsa.RSAPrivateKey:
    with open(path, "rb") as f:
        data = f.read()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{os.fspath(path)}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{os.fspath(path)}: the key is {type(key).__name__.lstrip('_')}, "
                         "but RSA key transport needs an RSA key")
    return key


def load_der_certificate(der: bytes) -> x509.Certificate:
    """Parse a certificate a peer sent, as far as the handshake will read it (else ValueError)."""
    return _load_der(der)[0]


def load_der_leaf(der: bytes) -> tuple[x509.Certificate, tuple[str, str, int, bytes]]:
    """``load_der_certificate`` for the server's leaf, with its ``certificate_summary`` made
    from the names that parsing already read and the DER as it came (not formatted and
    encoded a second time: this runs on every handshake)."""
    cert, subject, issuer = _load_der(der)
    return cert, (subject, issuer, _rsa_bits(cert), hashlib.sha256(der).digest())


def _load_der(der: bytes) -> tuple[x509.Certificate, str, str]:
    try:
        cert = x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion) as exc:
        raise ValueError(str(exc)) from None
    return (cert, *_read_lazy_parts(cert))


def _read_lazy_parts(cert: x509.Certificate) -> tuple[str, str]:
    """Parse now what cryptography parses at first use: the names and the extensions;
    return the subject and the issuer (RFC 4514).

    A flaw there would otherwise raise in the middle of a handshake, and not
    always as a ValueError: by flaw, cryptography raises ValueError, TypeError,
    KeyError or DuplicateExtension (a fuzzer found each), or, as documented,
    UnsupportedGeneralNameType. Here every one is a ValueError.
    """
    try:
        names = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
        cert.extensions  # noqa: B018 (parsed on first access)
    except (ValueError, TypeError, KeyError, x509.DuplicateExtension,
            x509.UnsupportedGeneralNameType) as exc:
        raise ValueError(str(exc) if isinstance(exc, ValueError)
                         else f"{type(exc).__name__}: {exc}") from None
    return names


def rsa_public_key(cert: x509.Certificate) -> rsa.RSAPublicKey | None:
    """The certificate's RSA public key; None if its key is of another (or an unknown) kind.

    A malformed key is a ValueError.
    """
    try:
        key = cert.public_key()
    except UnsupportedAlgorithm:
        return None
    return key if isinstance(key, rsa.RSAPublicKey) else None


def certificate_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def check_server_key(leaf: x509.Certificate, key: rsa.RSAPrivateKey,
                     min_bits: int, max_bits: int) -> None:
    """Refuse a configuration that could never complete a handshake."""
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("RSA key transport needs an RSA private key")
    if not min_bits <= key.key_size <= max_bits:
        raise ValueError(f"RSA key of {key.key_size} bits; {min_bits}-{max_bits} are supported")
    public = leaf.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or (
            public.public_numbers() != key.public_key().public_numbers()):
        raise ValueError("the private key does not match the certificate's public key")
    if not allows_key_encipherment(leaf):
        raise ValueError("the certificate's key usage leaves out keyEncipherment, which RSA key "
                         "transport needs (RFC 5246 §7.4.2); clients that check would refuse it")


def allows_key_encipherment(cert: x509.Certificate) -> bool:
    """RFC 5246 §7.4.2: an RSA key-transport certificate with a key usage extension
    must have keyEncipherment set; without the extension any use is allowed."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.key_encipherment


def certificate_summary(cert: x509.Certificate) -> tuple[str, str, int, bytes]:
    """Subject, issuer (RFC 4514), public key bits and SHA-256 fingerprint of a certificate."""
    return (cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), _rsa_bits(cert),
            hashlib.sha256(certificate_der(cert)).digest())


def _rsa_bits(cert: x509.Certificate) -> int:
    key = rsa_public_key(cert)
    return key.key_size if key is not None else 0


# --- PRF (RFC 5246 §5) -----------------------------------------------------

_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
# The PRF and transcript hashes by name (hashlib.new(name) adds a Python-level
# lookup per call), and their block sizes in bytes for HMAC.
HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384}
_BLOCK_SIZES = {"sha256": 64, "sha384": 128}


class PrfKey:
    """An HMAC key (RFC 2104) prepared once, then expanded with P_hash (RFC 5246 §5) at will.

    HMAC is spelled out over hashlib so the keyed inner and outer states are
    computed once per secret and copied per block: OpenSSL 3's one-shot HMAC
    pays a setup cost on every call, and the master secret is used three
    times per handshake (key block, two Finished messages).
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, hash_name: str, secret: bytes) -> None:
        new, block_size = HASHES[hash_name], _BLOCK_SIZES[hash_name]
        if len(secret) > block_size:
            secret = new(secret).digest()
        key = secret.ljust(block_size, b"\0")
        self._inner = new(key.translate(_IPAD))
        self._outer = new(key.translate(_OPAD))

    def p_hash(self, seed: bytes, length: int) -> bytes:
        """P_hash(secret, seed), ``length`` bytes."""
        inner, outer = self._inner, self._outer
        out = b""
        a = seed
        while len(out) < length:
            # A(i) = HMAC(secret, A(i-1)); output block = HMAC(secret, A(i) + seed)
            h = inner.copy()
            h.update(a)
            o = outer.copy()
            o.update(h.digest())
            a = o.digest()
            h = inner.copy()
            h.update(a + seed)
            o = outer.copy()
            o.update(h.digest())
            out += o.digest()
        return out[:length]


# --- RSA key transport (RFC 5246 §7.4.7.1) ---------------------------------

_PKCS1_V15 = padding.PKCS1v15()  # stateless; one for every handshake


def encrypt_pre_master_secret(public_key: rsa.RSAPublicKey, pre_master_secret: bytes) -> bytes:
    return public_key.encrypt(pre_master_secret, _PKCS1_V15)


def decrypt_pre_master_secret(key: rsa.RSAPrivateKey, encrypted: bytes,
                              client_version: bytes) -> bytes:
    """Decrypt the pre-master secret with the Bleichenbacher countermeasure.

    RFC 5246 §7.4.7.1: generate a random pre-master secret *first*, and use it
    whenever decryption, the length check or the version check fails, so that
    a forged ClientKeyExchange is only detected when the Finished fails to
    authenticate, exactly like a well-formed one with an unknown secret.
    OpenSSL >= 3.2 does implicit rejection and returns random bytes instead
    of raising; older builds raise ValueError. Both paths end in the same place.
    """
    fallback = os.urandom(PRE_MASTER_SECRET_LEN)
    try:
        decrypted = key.decrypt(encrypted, _PKCS1_V15)
    except ValueError:
        decrypted = fallback
    good = len(decrypted) == PRE_MASTER_SECRET_LEN and hmac.compare_digest(
        decrypted[:2], client_version)
    return decrypted if good else fallback


# --- certificate verification (client side) --------------------------------

class ServerVerifier:
    """Verifies a server's chain (leaf first) and name against a client's trust anchors.

    Built once per client configuration: the trust store, the extension policies and
    the expected name do not change between handshakes, only the time of each check.
    """

    __slots__ = ("_builder", "_subject", "_server_name")

    def __init__(self, trust_anchors: Sequence[x509.Certificate], server_name: str) -> None:
        # trustme (and many private CAs) mark SAN and EKU critical; the web PKI
        # policy forbids that, OpenSSL and curl accept it. Accept either
        # criticality; everything else stays the web-PKI default.
        ee_policy = (ExtensionPolicy.webpki_defaults_ee()
                     .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
                     .require_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None))
        self._builder = PolicyBuilder().store(Store(list(trust_anchors))).extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
        self._subject: DNSName | IPAddress
        try:
            self._subject = IPAddress(ipaddress.ip_address(server_name))
        except ValueError:
            self._subject = DNSName(server_name)
        self._server_name = server_name

    def verify(self, chain: Sequence[x509.Certificate]) -> tuple[str, str]:
        """("ok", "") or (reason, message), as of now; reason is "untrusted", "expired",
        "hostname" or "invalid"."""
        try:
            # Without a time of its own, the builder takes the time of this call.
            self._builder.build_server_verifier(self._subject).verify(chain[0], list(chain[1:]))
        except VerificationError as exc:
            text = str(exc)
            if "subjectAltName" in text:
                return "hostname", f"certificate does not match {self._server_name!r}"
            if "not valid at validation time" in text:
                return "expired", "certificate has expired or is not yet valid"
            if "candidates exhausted" in text:
                return "untrusted", "certificate is not signed by a trusted CA"
            return "invalid", f"certificate rejected: {text}"
        except ValueError as exc:
            return "invalid", f"certificate rejected: {exc}"
        return "ok", ""
