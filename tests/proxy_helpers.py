"""Helpers for the proxy tests: a proxy + echo origin in a background loop, real clients,
and misbehaving origins (plain sockets in threads)."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxy.config import ProxyConfig
from proxy.demo import Background
from proxy.traffic_log import TrafficLog

if TYPE_CHECKING:
    from conftest import CertFiles


class RunningProxy:
    """The proxy (our TLS) and the echo origin on free 127.0.0.1 ports."""

    def __init__(self, certs: CertFiles, tmp: Path, **overrides: Any) -> None:
        self.certs = certs
        self.log_path = tmp / "traffic.jsonl"
        config = ProxyConfig(listen_port=0, cert=str(certs.chain_pem), key=str(certs.key_pem),
                             traffic_log=str(self.log_path))
        self.config = replace(config, **overrides)
        self.log = TrafficLog(str(self.log_path), keep_in_memory=True)
        self.bg = Background(self.config, self.log)
        self.origin_port, self.port = self.bg.start()
        self.url = f"https://127.0.0.1:{self.port}"
        self.origin = f"http://127.0.0.1:{self.origin_port}"
        self._stopped = False

    @property
    def pool(self) -> Any:
        return self.bg.proxy.pool

    def origin_connections(self) -> int:
        """TCP connections the echo origin has accepted."""
        return int(self.bg.origin.connections)

    def stop(self) -> list[dict[str, Any]]:
        """Shut down (flushing the log) and return the records from the file."""
        if not self._stopped:
            self._stopped = True
            self.bg.stop()
            self.log.close()
        return read_log(self.log_path)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], count: int = 1,
                 within: float = 10.0) -> list[dict[str, Any]]:
        """Records appear when an exchange ends, a moment after the client has its answer."""
        deadline = time.monotonic() + within
        while True:
            assert self.log.records is not None
            found = [r for r in list(self.log.records) if predicate(r)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.01)

    def exchanges(self, path_part: str = "", count: int = 1) -> list[dict[str, Any]]:
        return self.wait_for(lambda r: r["type"] == "exchange"
                             and path_part in (r["request"]["url"] or ""), count)


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    # Split on newlines only: the log keeps U+2028 and U+0085 unescaped, and splitlines()
    # would cut a record at them.
    return [json.loads(line) for line in path.read_text().split("\n") if line.strip()]


@contextmanager
def running_proxy(certs: CertFiles, tmp: Path, **overrides: Any) -> Iterator[RunningProxy]:
    rp = RunningProxy(certs, tmp, **overrides)
    try:
        yield rp
    finally:
        rp.stop()


def client_context(ca: Path) -> ssl.SSLContext:
    """Python's ssl restricted to our profile: TLS 1.2, the two RSA-GCM suites."""
    from conftest import python_client_context

    return python_client_context(ca)


def curl(rp: RunningProxy, *args: str, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    cmd = ["curl", "-sS", "--proxy", rp.url, "--proxy-cacert", str(rp.certs.ca_pem),
           "--max-time", str(int(timeout)), *args]
    return subprocess.run(cmd, capture_output=True, timeout=timeout + 5, env=env)


def raw_exchange(rp: RunningProxy, request: bytes) -> bytes:
    """Send ``request`` (bytes as they are) over one TLS connection; return all that comes back
    until the proxy closes it."""
    ctx = client_context(rp.certs.ca_pem)
    with socket.create_connection(("127.0.0.1", rp.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(request)
        data = b""
        while True:
            try:
                chunk = tls.recv(65536)
            except ssl.SSLEOFError:
                break
            if not chunk:
                break
            data += chunk
    return data


class FakeOrigin:
    """A TCP server that answers each connection with ``behaviour(conn)`` in a thread."""

    def __init__(self, behaviour: Callable[[socket.socket], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.behaviour = behaviour
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.behaviour(conn)

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self.sock.close()
        for c in self.conns:
            c.close()


@contextmanager
def answering_origin(answer: bytes) -> Iterator[FakeOrigin]:
    """An origin that reads each request's head, sends ``answer`` as it is, and closes."""
    def answer_and_close(conn: socket.socket) -> None:
        read_request_head(conn)
        conn.sendall(answer)
        conn.close()

    origin = FakeOrigin(answer_and_close)
    try:
        yield origin
    finally:
        origin.close()


def read_request_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


class BackgroundOrigin:
    """The echo origin alone, in its own event loop thread (for a proxy run as a subprocess)."""

    def __init__(self) -> None:
        import asyncio

        from proxy.origin import Origin
        self._asyncio = asyncio
        self.loop = asyncio.new_event_loop()
        self.origin = Origin()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(self.origin.start(), self.loop)
        self.port = fut.result()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._asyncio.run_coroutine_threadsafe(self.origin.aclose(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def start_serve(*args: str, env: dict[str, str] | None = None
                ) -> tuple[subprocess.Popen[str], int, list[str]]:
    """``python -m proxy serve ...`` as a subprocess; waits for its startup lines."""
    import os
    import sys
    cmd = [sys.executable, "-m", "proxy", "serve", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or dict(os.environ), cwd=str(Path(__file__).parent.parent))
    assert proc.stdout is not None
    lines = []
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"serve exited: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}")
        lines.append(line.rstrip("\n"))
        if line.startswith("  sha256 fingerprint:"):
            break
    port = int(lines[0].rsplit(":", 1)[1])
    return proc, port, lines
