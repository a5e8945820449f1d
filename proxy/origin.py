"""A small HTTP/1.1 echo origin (h11 over asyncio) for the demo, compose and tests.

Routes:
  any method, any path   → JSON: method, path, headers, body size and SHA-256
  /echo                  → the request body back (up to 64 MiB)
  /bytes/N               → N bytes of a fixed pattern, Content-Length framed
  /chunked/N             → the same, Transfer-Encoding: chunked
  /slow/N?seconds=S      → N pattern bytes spread over S seconds (0 to 3600)
  /status/CODE           → an empty response with that status (200 to 599)

A malformed request gets h11's 4xx or 501 with the reason as its body, and the
connection closes; a route given a value it cannot use gets a 400 naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import socket
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import h11

__all__ = ["Origin", "pattern", "pattern_sha256"]

_BLOCK = bytes(range(256)) * 256   # 64 KiB: whole pattern periods, so blocks concatenate
_PIECE = len(_BLOCK) - 256  # at most this much is sent at once: any phase fits in _BLOCK
ECHO_LIMIT = 64 * 1024 * 1024
MAX_SLOW_SECONDS = 3600.0


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def pattern(n: int) -> bytes:
    """The first n bytes of the origin's download pattern (tests compare against it)."""
    return (_BLOCK * (n // len(_BLOCK) + 1))[:n]


def pattern_sha256(n: int) -> str:
    h = hashlib.sha256()
    left = n
    while left:
        part = _BLOCK[:min(left, len(_BLOCK))]
        h.update(part)
        left -= len(part)
    return h.hexdigest()


class Origin:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.AbstractServer | None = None
        self.requests = 0
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  backlog=1024)
        name = self._server.sockets[0].getsockname()
        self.port = int(name[1])
        return str(name[0]), self.port

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def aclose(self) -> None:
        """Stop listening and end the open connections."""
        self.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = await self._next(conn, reader)
                if not isinstance(event, h11.Request):
                    break
                self.requests += 1
                await self._respond(conn, reader, writer, event)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            await self._refuse(conn, writer, exc)
        except (h11.ProtocolError, OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    @staticmethod
    async def _refuse(conn: h11.Connection, writer: asyncio.StreamWriter,
                      exc: h11.RemoteProtocolError) -> None:
        """Answer a malformed request with its 4xx (h11's hint) and why, if no answer started."""
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status = exc.error_status_hint
        body = f"{status} {_reason(status).decode()}: {exc}\n".encode()
        with contextlib.suppress(h11.ProtocolError, OSError):
            writer.write(b"".join(conn.send(ev) or b"" for ev in (
                h11.Response(status_code=status, reason=_reason(status), headers=[
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))), ("Connection", "close")]),
                h11.Data(data=body), h11.EndOfMessage())))
            await writer.drain()

    @staticmethod
    async def _next(conn: h11.Connection, reader: asyncio.StreamReader) -> object:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(await reader.read(256 * 1024))

    async def _respond(self, conn: h11.Connection, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, req: h11.Request) -> None:
        url = urlsplit(req.target.decode("latin-1"))
        parts = url.path.strip("/").split("/")
        sha = hashlib.sha256()
        size = 0
        keep_body = parts[0] == "echo"
        body = bytearray()
        while True:
            event = await self._next(conn, reader)
            if isinstance(event, h11.Data):
                size += len(event.data)
                sha.update(event.data)
                if keep_body and len(body) < ECHO_LIMIT:
                    body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise h11.RemoteProtocolError("request body cut short")

        def send(ev: h11.Event) -> None:
            if isinstance(ev, h11.Response) and not ev.reason:
                ev = h11.Response(status_code=ev.status_code, headers=ev.headers,
                                  reason=_reason(ev.status_code))
            writer.write(conn.send(ev) or b"")

        def refuse(why: str) -> None:
            text = f"400 Bad Request: {why}\n".encode()
            send(h11.Response(status_code=400, headers=[
                (b"Content-Type", b"text/plain; charset=utf-8"),
                (b"Content-Length", str(len(text)).encode())]))
            send(h11.Data(data=text))
            send(h11.EndOfMessage())

        if parts[0] in ("bytes", "chunked", "slow") and len(parts) > 1 and parts[1].isdigit():
            n = int(parts[1])
            seconds = 0.0
            if parts[0] == "slow":
                given = parse_qs(url.query).get("seconds", ["0"])[0]
                try:
                    seconds = float(given)
                except ValueError:
                    seconds = math.nan
                if not 0.0 <= seconds <= MAX_SLOW_SECONDS:  # NaN fails this too
                    refuse(f"seconds={given!r}: give a number from 0 to {MAX_SLOW_SECONDS:g}")
                    await writer.drain()
                    return
            headers = [(b"Content-Type", b"application/octet-stream")]
            if parts[0] != "chunked":
                headers.append((b"Content-Length", str(n).encode()))
            send(h11.Response(status_code=200, headers=headers))
            # Slowly: in 20 steps. The pattern repeats every 256 bytes, so any piece of it
            # is a slice of _BLOCK, and no body is ever built whole.
            step = _PIECE if not seconds else max(1, min(n // 20, _PIECE))
            sent = 0
            while sent < n:
                part = min(n - sent, step)
                phase = sent % 256
                send(h11.Data(data=_BLOCK[phase:phase + part]))
                sent += part
                await writer.drain()
                if seconds:
                    await asyncio.sleep(seconds * part / n)
            send(h11.EndOfMessage())
            await writer.drain()
            return
        if parts[0] == "status" and len(parts) > 1:
            code = int(parts[1]) if parts[1].isdigit() and len(parts[1]) == 3 else 0
            if 200 <= code <= 599:
                send(h11.Response(status_code=code, headers=[(b"Content-Length", b"0")]))
                send(h11.EndOfMessage())
            else:
                # A 1xx is not a final answer, and h11 sends no other code.
                refuse(f"/status/{parts[1]}: give a status from 200 to 599")
            await writer.drain()
            return
        if keep_body:
            payload = bytes(body)
            ctype = b"application/octet-stream"
        else:
            payload = json.dumps({
                "method": req.method.decode("latin-1"),
                "path": req.target.decode("latin-1"),
                "headers": [f"{n.decode('latin-1')}: {v.decode('latin-1')}"
                            for n, v in req.headers.raw_items()],
                "body_size": size, "body_sha256": sha.hexdigest(),
            }, indent=1).encode() + b"\n"
            ctype = b"application/json"
        send(h11.Response(status_code=200, headers=[
            (b"Content-Type", ctype), (b"Content-Length", str(len(payload)).encode())]))
        send(h11.Data(data=payload))
        send(h11.EndOfMessage())
        await writer.drain()
