"""Shared fixtures: RSA test CAs and certificates made by trustme, written to disk."""

from __future__ import annotations

import datetime
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from handshake import ClientConfig, ServerConfig


@dataclass(frozen=True)
class CertFiles:
    """A CA and a server certificate on disk, as the CLI and real peers use them."""

    ca: trustme.CA
    cert: trustme.LeafCert
    ca_pem: Path
    chain_pem: Path  # leaf first, then the CA
    key_pem: Path


def make_cert_files(directory: Path, *names: str, key_size: int = 2048,
                    not_after: datetime.datetime | None = None) -> CertFiles:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    cert = ca.issue_cert(*(names or ("localhost", "127.0.0.1")), key_type=trustme.KeyType.RSA,
                         not_after=not_after)
    ca_pem = directory / "ca.pem"
    chain_pem = directory / "cert.pem"
    key_pem = directory / "key.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    chain_pem.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_pem))
    return CertFiles(ca, cert, ca_pem, chain_pem, key_pem)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A CA and a certificate for localhost and 127.0.0.1, shared by the whole run."""
    return make_cert_files(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def server_config(certs: CertFiles) -> ServerConfig:
    return ServerConfig.from_pem_files(certs.chain_pem, certs.key_pem)


@pytest.fixture
def client_config(certs: CertFiles) -> ClientConfig:
    return ClientConfig.from_ca_file(certs.ca_pem, "localhost")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; .ci/run installs it")
    return path
