"""Byte streams the HTTP side runs over: plain TCP, or our TLS on top of TCP.

The forwarding code only sees ``read() / write() / drain() / close()``, so
it is the same over TLS and over plain TCP (which tests use to check the
HTTP side alone). Reads return whatever arrived (``b""`` at EOF) and copy
nothing beyond what the TLS layer hands over.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
import weakref
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

from handshake import (
    ApplicationData,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    HandshakeStep,
    ProtocolError,
    ServerConnection,
)

from .messages import error_response_parts, response_bytes

__all__ = ["Stream", "PlainStream", "TLSStream", "within", "HandshakeFailed", "TLSError"]

READ_SIZE = 256 * 1024
T = TypeVar("T")
# A request line where a TLS record should start. No TLS content type is an ASCII
# letter (they are 20-24), so this never mistakes a real client for an HTTP one.
_PLAIN_HTTP_REQUEST = re.compile(rb"[A-Z]{3,16} [\x21-\x7e]")


class _Watchdog:
    """Coarse deadlines for every wait in one event loop.

    ``asyncio.timeout`` creates a timer and a context object per wait, which
    costs more than the read it guards on a keep-alive hot path. Here a wait
    only stores a deadline in a dict; one tick every TICK seconds cancels
    the tasks whose deadline passed. Timeouts are late by at most TICK.
    """

    TICK = 0.1

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.deadlines: dict[asyncio.Task[Any], float] = {}
        self.expired: set[asyncio.Task[Any]] = set()
        self._ticking = False

    def watch(self, task: asyncio.Task[Any], seconds: float) -> None:
        self.deadlines[task] = self.loop.time() + seconds
        if not self._ticking:
            self._ticking = True
            self.loop.call_later(self.TICK, self._tick)

    def _tick(self) -> None:
        now = self.loop.time()
        late = [t for t, d in self.deadlines.items() if d <= now]
        for task in late:
            del self.deadlines[task]
            self.expired.add(task)
            task.cancel()
        if self.deadlines:
            self.loop.call_later(self.TICK, self._tick)
        else:
            self._ticking = False


_watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog] = \
    weakref.WeakKeyDictionary()


async def within(aw: Awaitable[T], seconds: float) -> T:
    """Await with a deadline; raises the builtin TimeoutError. Not for nesting in one task."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    dog = _watchdogs.get(loop)
    if dog is None:
        dog = _watchdogs[loop] = _Watchdog(loop)
    dog.watch(task, seconds)
    try:
        return await aw
    except asyncio.CancelledError:
        if task in dog.expired:
            dog.expired.discard(task)
            if sys.version_info >= (3, 11):
                task.uncancel()
            raise TimeoutError from None
        raise
    finally:
        dog.deadlines.pop(task, None)


class Stream(Protocol):
    """``write`` may buffer; ``read``, ``drain`` and ``close`` send what is buffered."""

    async def read(self) -> bytes: ...
    def write(self, data: bytes) -> None: ...
    def flush(self) -> None: ...
    async def drain(self) -> None: ...
    def close(self, clean: bool = True) -> None: ...


class PlainStream:
    """TCP as it is."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def read(self) -> bytes:
        return await self.reader.read(READ_SIZE)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    def flush(self) -> None:
        pass

    async def drain(self) -> None:
        await self.writer.drain()

    def close(self, clean: bool = True) -> None:
        # Plain TCP has no close_notify: a truncation shows only as a short body.
        self.writer.close()


class TLSError(ConnectionError):
    """The TLS layer failed after the handshake (bad record, alert): the alert was sent."""


class HandshakeFailed(Exception):
    """The TLS handshake did not complete: alert sent, timeout or EOF."""


class TLSStream:
    """Application data of a ``handshake.ServerConnection`` over a TCP stream.

    ``steps`` records each handshake step event with its time (ms since the
    TCP accept), for the connection's log record.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: ServerConnection, started: float) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self.started = started
        self.steps: list[tuple[Event, float]] = []
        self.session: HandshakeComplete | None = None
        self._pending: list[bytes] = []
        self._eof = False
        # Plaintext written but not yet sealed: a response head and a small body
        # go out as one record in one send instead of two.
        self._out: list[bytes] = []

    def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.writer.write(out)

    def _feed(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            self._flush()  # the fatal alert the library queued
            # Keep what the client offered before the failure for the log record.
            self._take_events(exc.events)
            raise
        self._flush()
        self._take_events(events)

    def _take_events(self, events: list[Event]) -> None:
        for ev in events:
            if type(ev) is ApplicationData:
                self._pending.append(ev.data)
            elif isinstance(ev, ConnectionClosed):
                self._eof = True
            elif isinstance(ev, (HandshakeStep, HandshakeComplete)):
                self.steps.append((ev, (time.perf_counter() - self.started) * 1000))
                if isinstance(ev, HandshakeComplete):
                    self.session = ev

    async def handshake(self) -> HandshakeComplete:
        """Run the server side of the handshake; the caller bounds it with a timeout."""
        first = True
        while self.session is None:
            if self._eof:
                raise HandshakeFailed("client closed the connection during the handshake")
            data = await self.reader.read(READ_SIZE)
            if first and _PLAIN_HTTP_REQUEST.match(data):
                self._refuse_plain_http(data)
            first = False
            try:
                self._feed(data)
            except ProtocolError as exc:
                raise HandshakeFailed(str(exc)) from exc
            if not data and self.session is None:
                raise HandshakeFailed("client closed the connection during the handshake")
            await self.writer.drain()
        return self.session

    def _refuse_plain_http(self, data: bytes) -> None:
        """Answer an HTTP client that skipped TLS in its own terms: a TLS alert would reach
        it as garbage (curl: "Received HTTP/0.9 when not allowed")."""
        headers, body = error_response_parts(
            400, "this port speaks TLS, and a plain HTTP request came: give the proxy as "
                 "https://HOST:PORT, not http:// (curl: --proxy https://HOST:PORT "
                 "--proxy-cacert CA.pem)", close=True)
        self.writer.write(response_bytes(400, headers, body))
        request_line = data.split(b"\r\n", 1)[0][:200].decode("latin-1")
        raise HandshakeFailed(f"plain HTTP request on the TLS port ({request_line!r}); "
                              "answered 400")

    async def read(self) -> bytes:
        if self._out:
            self.flush()  # the peer may be waiting for what we wrote before reading
        while True:
            if self._pending:
                if len(self._pending) == 1:
                    return self._pending.pop()
                data = b"".join(self._pending)
                self._pending.clear()
                return data
            if self._eof:
                return b""
            data = await self.reader.read(READ_SIZE)
            try:
                self._feed(data)
            except ProtocolError as exc:
                # An OSError subclass, so the HTTP side treats it like a reset.
                raise TLSError(str(exc)) from exc
            if not data:
                self._eof = True

    def write(self, data: bytes) -> None:
        if data:  # an empty write carries nothing (and the library seals no record for it)
            self._out.append(data)

    def flush(self) -> None:
        out = self._out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            try:
                self.conn.send_application_data(data)
            except ProtocolError as exc:  # the connection failed or was closed meanwhile
                raise TLSError(str(exc)) from exc
            self.writer.write(self.conn.data_to_send())

    async def drain(self) -> None:
        self.flush()
        await self.writer.drain()

    def close(self, clean: bool = True) -> None:
        """clean: close_notify first; otherwise EOF without it, which the peer must
        treat as a truncation (what an origin dying mid-body should look like)."""
        with contextlib.suppress(TLSError):
            self.flush()  # an error answer written just before closing
        if clean:
            try:
                self.conn.close()
                self._flush()
            except ProtocolError:
                pass
        self.writer.close()


def peer_of(writer: asyncio.StreamWriter) -> tuple[str, int]:
    peer: Any = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), int(peer[1])
    return "?", 0
