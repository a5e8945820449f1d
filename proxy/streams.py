"""Byte streams the HTTP side runs over: plain TCP, or our TLS on top of TCP.

The forwarding code only sees ``read() / write() / drain() / close()``, so
it is the same over TLS and over plain TCP (which tests use to check the
HTTP side alone). Reads return whatever arrived (``b""`` at EOF) and copy
nothing beyond what the TLS layer hands over.
"""

from __future__ import annotations

import asyncio
import sys
import time
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

__all__ = ["Stream", "PlainStream", "TLSStream", "within", "HandshakeFailed", "TLSError"]

READ_SIZE = 256 * 1024
T = TypeVar("T")


async def within(aw: Awaitable[T], seconds: float) -> T:
    """Await with a deadline; raises TimeoutError (the builtin, on 3.11+)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await aw
    try:  # pragma: no cover - Python 3.10
        return await asyncio.wait_for(aw, seconds)
    except asyncio.TimeoutError:  # pragma: no cover
        raise TimeoutError from None


class Stream(Protocol):
    async def read(self) -> bytes: ...
    def write(self, data: bytes) -> None: ...
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

    def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.writer.write(out)

    def _feed(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except ProtocolError:
            self._flush()  # the fatal alert the library queued
            raise
        self._flush()
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
        while self.session is None:
            if self._eof:
                raise HandshakeFailed("client closed the connection during the handshake")
            data = await self.reader.read(READ_SIZE)
            try:
                self._feed(data)
            except ProtocolError as exc:
                raise HandshakeFailed(str(exc)) from exc
            if not data and self.session is None:
                raise HandshakeFailed("client closed the connection during the handshake")
            await self.writer.drain()
        return self.session

    async def read(self) -> bytes:
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
        if not data:
            # No empty records: a client pool (httpcore) sees stray readable bytes
            # on an idle connection as a reason to drop it.
            return
        self.conn.send_application_data(data)
        self.writer.write(self.conn.data_to_send())

    async def drain(self) -> None:
        await self.writer.drain()

    def close(self, clean: bool = True) -> None:
        """clean: close_notify first; otherwise EOF without it, which the peer must
        treat as a truncation (what an origin dying mid-body should look like)."""
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
