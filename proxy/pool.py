"""Keep-alive connections to origins: a bounded idle pool per host:port."""

from __future__ import annotations

import asyncio
import socket
import time

import h11

from .messages import format_authority
from .streams import within

__all__ = ["OriginConnection", "OriginPool", "OriginConnectError", "OriginConnectTimeout"]

# Idle connections kept across all origins. Per origin, --pool-size bounds them; without
# this, a client naming many origins would pin a socket (a file descriptor) for each.
MAX_IDLE_TOTAL = 1024
SWEEP_INTERVAL = 1.0  # seconds between passes that close idle connections gone stale


class OriginConnectError(Exception):
    """The origin refused or could not be reached (answered with 502)."""


class OriginConnectTimeout(Exception):
    """The origin did not accept the connection in time (answered with 504)."""


class OriginConnection:
    __slots__ = ("key", "reader", "writer", "h11", "idle_since", "exchanges")

    def __init__(self, key: tuple[str, int], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.key = key
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0
        self.exchanges = 0

    def usable(self) -> bool:
        """False if the origin closed it, or sent bytes beyond its last response (kept
        in h11's buffer) or unasked-for bytes while idle (in the reader's): those would
        be parsed as the next request's response, which may be another client's."""
        # asyncio has no public peek: unread bytes on an idle connection mean it is not idle.
        buffered = getattr(self.reader, "_buffer", b"")
        return not (self.writer.transport.is_closing() or self.reader.at_eof() or buffered
                    or self.h11.trailing_data[0])

    def close(self) -> None:
        self.writer.close()


class OriginPool:
    """Idle keep-alive origin connections: at most ``max_idle_per_origin`` per host:port and
    ``MAX_IDLE_TOTAL`` in all (the longest idle goes first), none kept past ``idle_timeout``
    or after its origin closed it (checked when taken, and swept while the pool is used)."""

    def __init__(self, max_idle_per_origin: int, idle_timeout: float,
                 connect_timeout: float) -> None:
        self.max_idle = max_idle_per_origin
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        # Per origin, oldest first; an origin with none idle has no entry.
        self._idle: dict[tuple[str, int], list[OriginConnection]] = {}
        self.idle_count = 0
        self._next_sweep = 0.0
        self.opened = 0  # connections ever opened: tests read it to see reuse

    def _fresh(self, oc: OriginConnection, now: float) -> bool:
        return oc.usable() and now - oc.idle_since < self.idle_timeout

    async def acquire(self, host: str, port: int) -> tuple[OriginConnection, bool]:
        """An idle pooled connection if one is still good (reused=True), else a new one."""
        key = (host, port)
        now = time.monotonic()
        self._sweep(now)
        idle = self._idle.get(key)
        while idle:
            oc = idle.pop()  # most recently used first: least likely to have timed out
            self.idle_count -= 1
            if not idle:
                del self._idle[key]
            if self._fresh(oc, now):
                return oc, True
            oc.close()
        return await self.connect(host, port), False

    async def connect(self, host: str, port: int) -> OriginConnection:
        try:
            reader, writer = await within(
                asyncio.open_connection(host, port, limit=256 * 1024), self.connect_timeout)
        except TimeoutError:
            raise OriginConnectTimeout(
                f"origin did not accept the connection within {self.connect_timeout:g}s "
                f"({format_authority(host, port)})") from None
        except OSError as exc:
            reason = "refused the connection" if isinstance(exc, ConnectionRefusedError) \
                else f"could not be reached: {exc.strerror or exc}"
            raise OriginConnectError(f"origin {reason} ({format_authority(host, port)})") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Small requests must not wait for Nagle's algorithm.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.opened += 1
        return OriginConnection((host, port), reader, writer)

    def release(self, oc: OriginConnection) -> None:
        """Return a connection after a complete exchange; closes it if it cannot be reused."""
        conn = oc.h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE and oc.usable():
            now = time.monotonic()
            self._sweep(now)
            idle = self._idle.get(oc.key, [])
            if len(idle) < self.max_idle:
                if self.idle_count >= MAX_IDLE_TOTAL:
                    self._close_longest_idle()
                conn.start_next_cycle()
                oc.idle_since = now
                oc.exchanges += 1
                self._idle[oc.key] = idle
                idle.append(oc)
                self.idle_count += 1
                return
        oc.close()

    def _close_longest_idle(self) -> None:
        key = min(self._idle, key=lambda k: self._idle[k][0].idle_since)
        idle = self._idle[key]
        idle.pop(0).close()
        self.idle_count -= 1
        if not idle:
            del self._idle[key]

    def _sweep(self, now: float) -> None:
        """Close idle connections that timed out or that their origin closed (at most once
        per SWEEP_INTERVAL): they would otherwise hold their sockets until their origin's
        next request, which may never come."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        for key, idle in list(self._idle.items()):
            kept: list[OriginConnection] = []
            for oc in idle:
                if self._fresh(oc, now):
                    kept.append(oc)
                else:
                    oc.close()
            self.idle_count -= len(idle) - len(kept)
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]

    def close(self) -> None:
        for idle in self._idle.values():
            for oc in idle:
                oc.close()
        self._idle.clear()
        self.idle_count = 0
