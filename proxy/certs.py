"""Certificates for the proxy: a throwaway CA and a leaf for given names (RSA-2048).

The only ``cryptography`` imports of the proxy package. SAN and EKU are
issued non-critical (RFC 5280 allows either), which every verifier accepts,
including the strict web-PKI policy of ``cryptography.x509.verification``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertPaths", "make_certs", "describe_certificate", "DEFAULT_NAMES", "MAX_DAYS"]

DEFAULT_NAMES = ("localhost", "127.0.0.1")
KEY_BITS = 2048
# A hundred years: longer than anything needs, and far inside what X.509 dates
# (and Python's datetime) can hold.
MAX_DAYS = 36500


@dataclass(frozen=True)
class CertPaths:
    ca: Path
    chain: Path   # leaf, then the CA
    key: Path

    @classmethod
    def in_directory(cls, out_dir: str | Path) -> CertPaths:
        out = Path(out_dir)
        return cls(out / "ca.pem", out / "cert.pem", out / "key.pem")

    def existing(self) -> list[Path]:
        """The files of the three that are already there (os.path.lexists: a
        dangling symlink would be written through, so it counts)."""
        return [p for p in (self.ca, self.chain, self.key) if os.path.lexists(p)]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "handshake-proxy"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for n in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            entries.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(entries)


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only, also when replacing a file
    that was readable by others (Path.touch(mode=...) leaves an existing mode alone)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(data)


def make_certs(out_dir: str | Path, names: tuple[str, ...] = DEFAULT_NAMES,
               days: int = 365, force: bool = False) -> CertPaths:
    """Write ``ca.pem``, ``cert.pem`` (chain) and ``key.pem`` into ``out_dir``.

    Refuses (FileExistsError, before anything is made) to replace files that are
    already there unless ``force``: a new CA breaks every client that trusts the old.
    """
    if not names:
        raise ValueError("at least one name is needed")
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}, not {days}")
    paths = CertPaths.in_directory(out_dir)
    existing = paths.existing()
    if existing and not force:
        raise FileExistsError(f"{', '.join(map(str, existing))} already exist")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(hours=1)  # tolerate a little clock skew
    end = now + datetime.timedelta(days=days)

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    ca_name = _name(f"handshake-proxy CA {now:%Y-%m-%d %H:%M:%S}")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0])).issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # key_encipherment: RSA key transport encrypts the pre-master secret to this key.
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=True, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    paths.ca.write_bytes(ca_cert.public_bytes(pem))
    paths.chain.write_bytes(leaf.public_bytes(pem) + ca_cert.public_bytes(pem))
    _write_private(paths.key, key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    return paths


def describe_certificate(chain_path: str | Path) -> tuple[str, str]:
    """(subject, SHA-256 fingerprint as AA:BB:..) of the first certificate in a PEM file.

    ValueError, with a message naming the file, if there is none or its subject cannot be read.
    """
    try:
        leaf = x509.load_pem_x509_certificates(Path(chain_path).read_bytes())[0]
    except (ValueError, x509.InvalidVersion):
        raise ValueError(f"{str(chain_path)!r} is not a PEM certificate chain") from None
    try:
        subject = leaf.subject.rfc4514_string()
    except (ValueError, TypeError, KeyError) as exc:
        # cryptography parses names lazily, and says what is wrong with several exception types.
        raise ValueError(f"{chain_path}: a certificate is malformed "
                         f"({type(exc).__name__}: {exc})") from None
    digest = leaf.fingerprint(hashes.SHA256())
    return subject, ":".join(f"{b:02X}" for b in digest)
