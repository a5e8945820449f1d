"""A small HTTP/1.1 echo origin (h11 over asyncio) for the demo, compose and tests.

Routes:
  any method, any path   → JSON: method, path, headers, body size and SHA-256
  /echo                  → the request body back (up to 64 MiB)
  /bytes/N               → N bytes of a fixed pattern, Content-Length framed
  /chunked/N             → the same, Transfer-Encoding: chunked
  /slow/N?seconds=S      → N pattern bytes spread over S seconds
  /status/CODE           → an empty response with that status

A malformed request gets h11's 4xx or 501 with the reason as its body, and the
connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import h11

__all__ = ["Origin", "pattern", "pattern_sha256"]

_BLOCK = bytes(range(256)) * 256   # 64 KiB: whole pattern periods, so blocks concatenate
ECHO_LIMIT = 64 * 1024 * 1024


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

        if parts[0] in ("bytes", "chunked", "slow") and len(parts) > 1 and parts[1].isdigit():
            n = int(parts[1])
            headers = [(b"Content-Type", b"application/octet-stream")]
            if parts[0] != "chunked":
                headers.append((b"Content-Length", str(n).encode()))
            send(h11.Response(status_code=200, headers=headers))
            seconds = float(parse_qs(url.query).get("seconds", ["0"])[0]) \
                if parts[0] == "slow" else 0.0
            # Fast path: whole 64 KiB blocks stay in phase with the pattern.
            step = len(_BLOCK) if not seconds else max(1, n // 20)
            whole = pattern(n) if seconds else b""
            sent = 0
            while sent < n:
                part = min(n - sent, step)
                send(h11.Data(data=whole[sent:sent + part] if seconds else _BLOCK[:part]))
                sent += part
                await writer.drain()
                if seconds:
                    await asyncio.sleep(seconds / 20)
            send(h11.EndOfMessage())
            await writer.drain()
            return
        if parts[0] == "status" and len(parts) > 1 and parts[1].isdigit():
            send(h11.Response(status_code=int(parts[1]), headers=[(b"Content-Length", b"0")]))
            send(h11.EndOfMessage())
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
