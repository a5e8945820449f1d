"""The origin pool against real keep-alive origins on 127.0.0.1: how many idle connections it
keeps, per origin and in all, and that it lets go of stale ones without being asked for
their origin again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import h11
import pytest

from proxy import pool as pool_module
from proxy.pool import OriginConnection, OriginPool


class KeepAliveOrigins:
    """``count`` listening origins that answer every request with an empty 200 and keep the
    connection open; ``open_connections`` is how many clients are connected right now."""

    def __init__(self) -> None:
        self.servers: list[asyncio.Server] = []
        self.ports: list[int] = []
        self.open_connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self, count: int) -> None:
        for _ in range(count):
            server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.servers.append(server)
            self.ports.append(server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self.writers.append(writer)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_connections -= 1
            writer.close()

    def hang_up(self) -> None:
        """Close every connection from the origins' side, as an origin's idle timeout does."""
        for writer in self.writers:
            writer.close()

    def close(self) -> None:
        for server in self.servers:
            server.close()


async def exchange(oc: OriginConnection) -> None:
    """One GET and its response on ``oc``, leaving h11 ready for release()."""
    oc.writer.write(oc.h11.send(h11.Request(method="GET", target="/", headers=[("Host", "o")]))
                    or b"")
    oc.writer.write(oc.h11.send(h11.EndOfMessage()) or b"")
    while not isinstance(event := oc.h11.next_event(), h11.EndOfMessage):
        if event is h11.NEED_DATA:
            oc.h11.receive_data(await oc.reader.read(65536))


async def settle(origins: KeepAliveOrigins, expected: int) -> None:
    """Wait (briefly) for the origins to see the connections the pool closed."""
    for _ in range(200):
        if origins.open_connections == expected:
            return
        await asyncio.sleep(0.01)
    assert origins.open_connections == expected


@contextlib.asynccontextmanager
async def origins_and_pool(count: int, max_idle_per_origin: int, idle_timeout: float
                           ) -> AsyncIterator[tuple[KeepAliveOrigins, OriginPool]]:
    origins = KeepAliveOrigins()
    await origins.start(count)
    pool = OriginPool(max_idle_per_origin, idle_timeout, connect_timeout=5)
    try:
        yield origins, pool
    finally:
        pool.close()
        origins.close()


async def use_once(pool: OriginPool, port: int) -> tuple[OriginConnection, bool]:
    """Take a connection to ``port`` from the pool, make one exchange, give it back."""
    oc, reused = await pool.acquire("127.0.0.1", port)
    await exchange(oc)
    pool.release(oc)
    return oc, reused


def test_idle_connections_are_capped_in_all(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each origin may keep --pool-size idle connections, but a client naming many origins
    # must not pin a socket for each: past the total cap the longest idle one is closed.
    monkeypatch.setattr(pool_module, "MAX_IDLE_TOTAL", 20)

    async def run() -> None:
        async with origins_and_pool(50, max_idle_per_origin=100,
                                    idle_timeout=60) as (origins, pool):
            for port in origins.ports:
                _, reused = await use_once(pool, port)
                assert not reused
            assert pool.idle_count == 20
            await settle(origins, 20)
            # The 20 kept are the most recent; the first origin's went first.
            oc, reused = await pool.acquire("127.0.0.1", origins.ports[-1])
            assert reused
            oc.close()
            oc, reused = await pool.acquire("127.0.0.1", origins.ports[0])
            assert not reused
            oc.close()

    asyncio.run(run())


def test_stale_idle_connections_are_closed_while_the_pool_is_used(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # An idle connection past the idle timeout used to stay open until its own origin was
    # asked for again, which may be never; now any use of the pool sweeps it away.
    monkeypatch.setattr(pool_module, "SWEEP_INTERVAL", 0.0)

    async def run() -> None:
        async with origins_and_pool(4, max_idle_per_origin=10,
                                    idle_timeout=0.3) as (origins, pool):
            for port in origins.ports[:3]:
                await use_once(pool, port)
            await settle(origins, 3)
            await asyncio.sleep(0.4)
            oc, _ = await pool.acquire("127.0.0.1", origins.ports[3])  # another origin
            await settle(origins, 1)
            assert pool.idle_count == 0
            await exchange(oc)
            pool.release(oc)
            assert pool.idle_count == 1

    asyncio.run(run())


def test_a_connection_its_origin_closed_is_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "SWEEP_INTERVAL", 0.0)

    async def run() -> None:
        async with origins_and_pool(2, max_idle_per_origin=10,
                                    idle_timeout=60) as (origins, pool):
            oc, _ = await use_once(pool, origins.ports[0])
            origins.hang_up()
            await settle(origins, 0)
            await asyncio.sleep(0.05)  # the FIN reaches the pool's socket
            other, _ = await pool.acquire("127.0.0.1", origins.ports[1])
            assert pool.idle_count == 0 and oc.writer.transport.is_closing()
            other.close()

    asyncio.run(run())
