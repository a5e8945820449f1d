"""Shared fixtures: RSA test CAs and certificates made by trustme, written to disk."""

from __future__ import annotations

import datetime
import shutil
import ssl
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from handshake import (
    AlertDescription,
    ClientConfig,
    ClientConnection,
    ProtocolError,
    RemoteProtocolError,
    ServerConfig,
    ServerConnection,
)


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



def make_leaf_with_key_usage(certs: CertFiles, directory: Path,
                             key_encipherment: bool | None) -> tuple[Path, Path]:
    """A localhost leaf signed by ``certs``' CA whose key usage is digitalSignature, plus
    keyEncipherment if asked (None: no key usage extension at all), which trustme cannot
    vary; returns the chain and key PEM paths."""
    ca_key = serialization.load_pem_private_key(certs.ca.private_key_pem.bytes(), None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    ca_cert = x509.load_pem_x509_certificate(certs.ca.cert_pem.bytes())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              False))
    if key_encipherment is not None:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=key_encipherment,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
    leaf = builder.sign(ca_key, hashes.SHA256())
    directory.mkdir(parents=True)
    chain, key_file = directory / "chain.pem", directory / "key.pem"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + certs.ca.cert_pem.bytes())
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return chain, key_file

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


PROFILE_CIPHERS = "AES128-GCM-SHA256:AES256-GCM-SHA384"


def python_client_context(ca_pem: Path, ciphers: str = PROFILE_CIPHERS, *,
                          tls12_only: bool = True) -> ssl.SSLContext:
    """Python's ssl as a client of our server: trusts ``ca_pem``, offers ``ciphers``."""
    context = ssl.create_default_context(cafile=str(ca_pem))
    if tls12_only:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    return context


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; .ci/run installs it")
    return path


# -- handshake tests: real peers on 127.0.0.1 --------------------------------------------------
# Our ServerConnection behind a real TCP socket (one thread per served connection), our
# ClientConnection driven over a socket, and `openssl s_server` as a subprocess.

import contextlib  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from handshake import (  # noqa: E402
    ApplicationData,
    ConnectionClosed,
    Event,
    HandshakeComplete,
)

IO_TIMEOUT = 10.0


class OurServer:
    """Serves TLS connections (``connections``, one after another) with our ServerConnection
    in a thread.

    Every ApplicationData is answered with ``reply(data)`` (default: echo);
    with ``close_after_reply`` the server sends close_notify after its first
    reply. A clean close from the peer is answered with close_notify.
    """

    def __init__(self, config: ServerConfig, *, reply: Callable[[bytes], bytes] = bytes,
                 close_after_reply: bool = False, connections: int = 1) -> None:
        self.config = config
        self.connections = connections
        self.reply = reply
        self.close_after_reply = close_after_reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(IO_TIMEOUT)
        self.port: int = self.listener.getsockname()[1]
        self.events: list[Event] = []
        self.received = b""
        self.error: BaseException | None = None
        self.connection: ServerConnection | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> OurServer:
        self._thread.start()
        return self

    def _run(self) -> None:
        for _ in range(self.connections):
            if self.error is not None:
                return
            self._run_one()

    def _run_one(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError as exc:
            self.error = exc
            return
        with sock:
            sock.settimeout(IO_TIMEOUT)
            conn = self.connection = ServerConnection(self.config)
            try:
                self._serve(sock, conn)
            except ProtocolError as exc:
                self.error = exc
                with contextlib.suppress(OSError):
                    sock.sendall(conn.data_to_send())
            except BaseException as exc:  # reported by join()
                self.error = exc

    def _serve(self, sock: socket.socket, conn: ServerConnection) -> None:
        done = False
        while not done:
            data = sock.recv(65536)
            events = conn.receive_data(data)
            self.events.extend(events)
            for event in events:
                if isinstance(event, ApplicationData):
                    self.received += event.data
                    if not done:
                        conn.send_application_data(self.reply(event.data))
                        if self.close_after_reply:
                            conn.close()
                            done = True
                elif isinstance(event, ConnectionClosed):
                    if event.clean and not done:
                        conn.close()
                    done = True
            sock.sendall(conn.data_to_send())
            if not data:
                done = True
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(2)
            while sock.recv(65536):  # let the peer finish reading before we close
                pass
        except OSError:
            pass

    def join(self) -> None:
        self._thread.join(IO_TIMEOUT + 5)
        assert not self._thread.is_alive(), "our server thread did not finish"

    def stop(self) -> None:
        self.listener.close()
        self._thread.join(IO_TIMEOUT + 5)

    @property
    def sessions(self) -> list[HandshakeComplete]:
        return [e for e in self.events if isinstance(e, HandshakeComplete)]

    @property
    def session(self) -> HandshakeComplete:
        assert len(self.sessions) == 1, self.events
        return self.sessions[0]


@pytest.fixture
def our_server() -> Iterator[Callable[..., OurServer]]:
    """A factory: ``our_server(config, reply=..., close_after_reply=...)`` → started OurServer."""
    servers: list[OurServer] = []

    def start(config: ServerConfig, **options: object) -> OurServer:
        server = OurServer(config, **options)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


def drive_client(conn: ClientConnection, sock: socket.socket,
                 until: Callable[[list[Event]], bool]) -> list[Event]:
    """Pump bytes between our client and the socket until ``until(all events so far)``."""
    events: list[Event] = []
    sock.settimeout(IO_TIMEOUT)
    while True:
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
        if until(events):
            return events
        data = sock.recv(65536)
        events += conn.receive_data(data)
        if not data and not until(events):
            raise AssertionError(f"EOF from the peer before the condition; events: {events}")


def free_port() -> int:
    """A port to listen on right away (closing the probe frees it for whoever binds next)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def hold_refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections for as long as the block runs.

    A port found by binding and closing is free for any other process to take, and a
    test expecting "connection refused" then races whatever listens there next. Here
    the socket stays bound and never listens: Linux answers a SYN to it with RST, and
    no one else can bind the port (we do not set SO_REUSEADDR) until the block ends.
    """
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections for the whole test."""
    with hold_refused_port() as port:
        yield port


class ServerProcess:
    """A TLS server program on 127.0.0.1 as a subprocess, its output collected by a thread."""

    def __init__(self, args: list[str], ready: str) -> None:
        self.name = Path(args[0]).name
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._wait_for(ready)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.decode(errors="replace"))

    def _wait_for(self, text: str) -> None:
        deadline = time.monotonic() + IO_TIMEOUT
        while not any(text in line for line in self.lines):
            if self.process.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"{self.name} exited: {''.join(self.lines)}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{self.name} never printed {text!r}")
            time.sleep(0.02)

    def stop(self) -> str:
        """Kill the server (if still running) and return everything it printed."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=IO_TIMEOUT)
        self._reader.join(IO_TIMEOUT)
        return "".join(self.lines)


class OpenSSLServer(ServerProcess):
    """``openssl s_server -tls1_2 -rev`` on 127.0.0.1 (answers each line reversed)."""

    def __init__(self, cert: Path, key: Path, *extra: str, keylog: Path | None = None) -> None:
        self.port = free_port()
        args = [require_binary("openssl"), "s_server", "-tls1_2", "-accept",
                f"127.0.0.1:{self.port}", "-cert", str(cert), "-key", str(key), "-rev",
                "-naccept", "1", *extra]
        if keylog is not None:
            args += ["-keylogfile", str(keylog)]
        super().__init__(args, ready="ACCEPT")


@pytest.fixture
def openssl_server() -> Iterator[Callable[..., OpenSSLServer]]:
    """A factory: ``openssl_server(cert, key, *args, keylog=None)``; killed after the test."""
    servers: list[OpenSSLServer] = []

    def start(cert: Path, key: Path, *extra: str, keylog: Path | None = None) -> OpenSSLServer:
        server = OpenSSLServer(cert, key, *extra, keylog=keylog)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class MemoryPair:
    """Our client and our server wired back to back in memory (h11's ConnectionPair idea)."""

    def __init__(self, client_config: ClientConfig, server_config: ServerConfig) -> None:
        self.client = ClientConnection(client_config)
        self.server = ServerConnection(server_config)
        self.client_events: list[Event] = []
        self.server_events: list[Event] = []

    def start(self) -> MemoryPair:
        self.client_events += self.client.start_handshake()
        return self

    def pump(self) -> None:
        """Move bytes both ways until neither side has anything to send."""
        while True:
            to_server = self.client.data_to_send()
            if to_server:
                self.server_events += self.server.receive_data(to_server)
            to_client = self.server.data_to_send()
            if to_client:
                self.client_events += self.client.receive_data(to_client)
            if not to_server and not to_client:
                return

    @classmethod
    def connected(cls, client_config: ClientConfig, server_config: ServerConfig) -> MemoryPair:
        pair = cls(client_config, server_config).start()
        pair.pump()
        assert pair.client.handshake_complete and pair.server.handshake_complete
        return pair

    def application_data(self, side: str) -> bytes:
        """All application bytes the given side ("client"/"server") has received so far."""
        events = self.client_events if side == "client" else self.server_events
        return b"".join(e.data for e in events if isinstance(e, ApplicationData))


def expect_fatal_alert(conn: ServerConnection | ClientConnection, data: bytes,
                       *allowed: AlertDescription) -> RemoteProtocolError:
    """Feed ``data``: ``conn`` must raise RemoteProtocolError with one of ``allowed`` and have
    queued exactly that fatal alert, in plaintext (before keys are in use)."""
    import tls_wire

    with pytest.raises(ProtocolError) as info:
        conn.receive_data(data)
    error = info.value
    assert isinstance(error, RemoteProtocolError), f"{type(error).__name__}: {error}"
    assert error.alert in allowed, f"alert {error.alert.name}, expected one of {allowed}"
    queued = conn.data_to_send()
    assert tls_wire.alert_of(queued) == (2, error.alert), (
        f"queued alert {queued.hex()} does not match the raised {error.alert.name}")
    return error


def decode_error_at_every_length(
        body: bytes, prepare: Callable[[bytes], tuple[ServerConnection | ClientConnection, bytes]],
        skip: Collection[int] = ()) -> list[str]:
    """For every truncation of ``body`` (but the lengths in ``skip``, valid shorter forms),
    ``prepare`` gives a connection and the bytes to feed it; each must end in
    RemoteProtocolError(decode_error) with that fatal alert queued. Returns what did not."""
    import tls_wire

    failures = []
    for length in range(len(body)):
        if length in skip:
            continue
        conn, data = prepare(body[:length])
        try:
            conn.receive_data(data)
        except RemoteProtocolError as error:
            queued = conn.data_to_send()
            if (error.alert is not AlertDescription.decode_error
                    or tls_wire.alert_of(queued) != (2, AlertDescription.decode_error)):
                failures.append(f"{length}: {error.alert.name}, queued {queued.hex()}")
        except Exception as error:  # noqa: BLE001 - any other exception is the failure we look for
            failures.append(f"{length}: {type(error).__name__}: {error}")
        else:
            failures.append(f"{length}: no error, queued {conn.data_to_send().hex()}")
    return failures
