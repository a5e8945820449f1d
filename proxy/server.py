"""All of the proxy's socket I/O: accept, handshake, hand over to the HTTP side, shut down.

One asyncio task per client connection. Protocol work (TLS in ``handshake``,
HTTP in h11) is synchronous; this module only moves bytes and keeps time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from handshake import ServerConfig, ServerConnection

from .config import ProxyConfig
from .forward import ClientSession, ConnContext
from .pool import OriginPool
from .steps import step_record, tls_record
from .streams import HandshakeFailed, PlainStream, TLSStream, peer_of, within
from .traffic_log import TrafficLog, utc_now_iso

__all__ = ["ProxyServer", "build_tls_config", "KeyLogFile"]


class KeyLogFile:
    """An NSS key-log sink: appends one line per session and flushes at once,
    so Wireshark (or a test) can read it while the proxy runs."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = open(path, "a", encoding="ascii")  # noqa: SIM115 - open for the run

    def __call__(self, line: str) -> None:
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def build_tls_config(config: ProxyConfig, keylog: Callable[[str], None] | None = None
                     ) -> ServerConfig:
    """Load the certificate and key; raises OSError/ValueError with a clear message."""
    assert config.cert and config.key
    options: dict[str, Any] = {
        "require_extended_master_secret": config.require_extended_master_secret,
        "keylog": keylog,
    }
    if config.cipher_suites:
        options["cipher_suites"] = config.cipher_suites
    return ServerConfig.from_pem_files(config.cert, config.key, **options)


class ProxyServer:
    def __init__(self, config: ProxyConfig, log: TrafficLog,
                 tls_config: ServerConfig | None = None) -> None:
        self.config = config
        self.log = log
        self.keylog: KeyLogFile | None = None
        if config.tls and tls_config is None:
            keylog_path = config.keylog or os.environ.get("SSLKEYLOGFILE") or None
            self.keylog = KeyLogFile(keylog_path) if keylog_path else None
            tls_config = build_tls_config(config, self.keylog)
        self.tls_config = tls_config if config.tls else None
        self.pool = OriginPool(config.pool_size, config.pool_idle_timeout, config.connect_timeout)
        self.address: tuple[str, int] = (config.listen_host, config.listen_port)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: dict[asyncio.Task[Any], ClientSession | None] = {}
        self._next_id = 0
        self._allowed = config.allowed_clients
        self._allowed_cache: dict[str, bool] = {}
        self.closing = False

    async def start(self) -> tuple[str, int]:
        """Listen; returns the bound address (port 0 picks a free one)."""
        self._server = await asyncio.start_server(
            self._handle, self.config.listen_host, self.config.listen_port,
            limit=256 * 1024, backlog=1024)
        sock = self._server.sockets[0].getsockname()
        self.address = (str(sock[0]), int(sock[1]))
        return self.address

    def _client_allowed(self, ip: str) -> bool:
        # Parsing the address and testing it against every network costs more than
        # the rest of accepting a connection; clients repeat, so remember answers.
        known = self._allowed_cache.get(ip)
        if known is not None:
            return known
        if len(self._allowed_cache) > 10_000:
            self._allowed_cache.clear()
        allowed = self._check_client(ip)
        self._allowed_cache[ip] = allowed
        return allowed

    def _check_client(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self._allowed)

    def _connection_record(self, conn_id: str, client: str, when: str, tls: Any,
                           steps: list[dict[str, Any]], error: str | None) -> None:
        self.log.write({"type": "connection", "time": when, "conn": conn_id, "client": client,
                        "tls": tls, "handshake": steps, "error": error})

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started = time.perf_counter()
        when = utc_now_iso()
        ip, port = peer_of(writer)
        client = f"{ip}:{port}"
        self._next_id += 1
        conn_id = f"c{self._next_id:06d}"
        cfg = self.config
        if not self._client_allowed(ip):
            self._connection_record(conn_id, client, when, None, [],
                                    f"client {ip} is not allowed (see --allow-client)")
            writer.close()
            return
        if len(self._tasks) >= cfg.max_connections or self.closing:
            self._connection_record(conn_id, client, when, None, [],
                                    "refused: too many connections" if not self.closing
                                    else "refused: shutting down")
            writer.close()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = asyncio.current_task()
        assert task is not None
        self._tasks[task] = None
        stream: TLSStream | PlainStream | None = None
        try:
            ctx = ConnContext(cfg, self.pool, self.log, conn_id, client, ip)
            if self.tls_config is not None:
                stream = TLSStream(reader, writer, ServerConnection(self.tls_config), started)
                try:
                    session = await within(stream.handshake(), cfg.handshake_timeout)
                except (HandshakeFailed, TimeoutError, OSError) as exc:
                    reason = str(exc) or type(exc).__name__
                    if isinstance(exc, TimeoutError):
                        reason = f"no complete handshake within {cfg.handshake_timeout:g}s"
                    self._connection_record(
                        conn_id, client, when, None,
                        [step_record(ev, at) for ev, at in stream.steps],
                        f"handshake failed: {reason}")
                    with contextlib.suppress(TimeoutError, OSError):
                        await within(writer.drain(), 1.0)  # let the alert go out
                    return
                steps = [step_record(ev, at) for ev, at in stream.steps]
                ctx.tls = tls_record(session, stream.steps[-1][1])
                self._connection_record(conn_id, client, when, ctx.tls, steps, None)
            else:
                stream = PlainStream(reader, writer)
            session_obj = ClientSession(stream, ctx)
            self._tasks[task] = session_obj
            await session_obj.run()
        except asyncio.CancelledError:
            # Shutdown: an idle connection gets a proper goodbye (close_notify); one cut off
            # mid-exchange gets none, so the client cannot take a partial response as whole.
            if stream is not None:
                current = self._tasks.get(task)
                stream.close(clean=current is None or not current.busy)
        except Exception:  # noqa: BLE001 - one connection's bug must not stop the proxy
            import traceback
            traceback.print_exc()
        finally:
            writer.close()
            self._tasks.pop(task, None)

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop accepting; let busy exchanges finish within the grace period; close the rest."""
        self.closing = True
        grace = self.config.grace_period if grace is None else grace
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + grace
        while self._tasks:
            for task, session in list(self._tasks.items()):
                if session is None or not session.busy:
                    task.cancel()
            if time.monotonic() >= deadline:
                break
            await asyncio.wait(list(self._tasks), timeout=0.05)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        self.pool.close()
        if self.keylog is not None:
            self.keylog.close()

    def catch_signals(self) -> asyncio.Event:
        """SIGTERM and SIGINT set the returned event (install before announcing readiness)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return stop

    async def serve_until_signal(self, stop: asyncio.Event | None = None) -> None:
        """Run until SIGTERM or SIGINT, then shut down gracefully."""
        if stop is None:
            stop = self.catch_signals()
        await stop.wait()
        await self.shutdown()
