"""The test client: our own ``handshake.ClientConnection`` to the proxy, then one HTTP request.

Blocking sockets on purpose: one request, printed step by step, is easiest
to follow without an event loop.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import SplitResult, unquote, urlsplit

import h11

from handshake import (
    ApplicationData,
    ClientConfig,
    ClientConnection,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    HandshakeStep,
    ProtocolError,
)

from .logview import os_reason
from .messages import format_authority
from .steps import ladder_row

__all__ = ["Response", "fetch", "parse_proxy_url", "proxy_authorization"]


@dataclass
class Response:
    status: int
    reason: str
    http_version: str
    headers: list[tuple[str, str]]
    body: bytes
    steps: list[Event] = field(default_factory=list)
    complete: bool = True


def _without_password(parts: SplitResult) -> str:
    """The URL as it may be shown in a message: a password replaced by ***."""
    if parts.password is None:
        return parts.geturl()
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def _port_is_valid(parts: SplitResult) -> bool:
    try:
        _ = parts.port  # urlsplit checks the port only when it is read
    except ValueError:
        return False
    return True


def _split_proxy_url(proxy: str) -> SplitResult:
    parts = urlsplit(proxy)
    if parts.scheme != "https" or not parts.hostname or not _port_is_valid(parts):
        raise ValueError(f"--proxy wants https://HOST:PORT, not {_without_password(parts)!r}")
    return parts


def parse_proxy_url(proxy: str) -> tuple[str, int]:
    parts = _split_proxy_url(proxy)
    assert parts.hostname is not None
    return parts.hostname, parts.port or 443


def proxy_authorization(proxy: str) -> str | None:
    """The Proxy-Authorization value for the USER:PASS in ``https://USER:PASS@HOST:PORT``
    (percent-decoded, as curl does), or None when the URL carries no user."""
    parts = _split_proxy_url(proxy)
    if parts.username is None:
        return None
    user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(user_pass.encode()).decode("ascii")


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to the proxy; OSError naming the proxy's address when there is none."""
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else os_reason(exc)
        raise ConnectionError(f"cannot connect to the proxy at {format_authority(host, port)}: "
                              f"{reason}") from None


class _Channel:
    """Our TLS client over a blocking socket; ``emit`` sees each handshake step."""

    def __init__(self, sock: socket.socket, conn: ClientConnection,
                 emit: Callable[[Event], None]) -> None:
        self.sock = sock
        self.conn = conn
        self.emit = emit
        self.pending: list[bytes] = []
        self.eof = False
        self.first_bytes = b""  # of the proxy's answer: they tell a plain-HTTP server

    def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def _handle(self, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, ApplicationData):
                self.pending.append(ev.data)
            elif isinstance(ev, ConnectionClosed):
                self.eof = True
            elif isinstance(ev, (HandshakeStep, HandshakeComplete)):
                self.emit(ev)

    def handshake(self) -> None:
        self._handle(self.conn.start_handshake())
        self._flush()
        try:
            while not self.conn.handshake_complete:
                if self.eof:
                    raise ConnectionError("the proxy closed the connection during the handshake")
                self._pump()
        except ProtocolError:
            if self.first_bytes.startswith(b"HTTP/"):
                # A common mistake, which TLS alone would call "unknown record content type 72".
                status_line = self.first_bytes.split(b"\r\n")[0].decode("latin-1")
                raise ConnectionError(f"the proxy answered in plain HTTP, not TLS "
                                      f"({status_line!r}): is it a proxy for http:// "
                                      f"rather than https://, or not a proxy?") from None
            raise

    def _pump(self) -> None:
        data = self.sock.recv(256 * 1024)
        if not self.first_bytes:
            self.first_bytes = data[:200]
        try:
            self._handle(self.conn.receive_data(data))
        finally:
            self._flush()  # our fatal alert too, if the data was bad
        if not data:
            self.eof = True

    def send(self, data: bytes) -> None:
        self.conn.send_application_data(data)
        self._flush()

    def recv(self) -> bytes:
        while not self.pending and not self.eof:
            self._pump()
        data = b"".join(self.pending)
        self.pending.clear()
        return data

    def close(self) -> None:
        try:
            self.conn.close()
            self._flush()
        except (ProtocolError, OSError):
            pass
        self.sock.close()


def _with_proxy_authorization(proxy: str, headers: Sequence[tuple[str, str]]
                              ) -> list[tuple[str, str]]:
    """The request headers plus Proxy-Authorization for the proxy URL's USER:PASS.

    One way to give the credentials: both the URL's and a -H header would leave
    it to chance which one the proxy checks.
    """
    value = proxy_authorization(proxy)
    if value is None:
        return list(headers)
    if any(name.strip().lower() == "proxy-authorization" for name, _ in headers):
        raise ValueError("the proxy's credentials are given twice: in the --proxy URL and "
                         "as -H Proxy-Authorization; keep one")
    return [("Proxy-Authorization", value), *headers]


def _url_authority(url: str) -> str:
    """The URL's host[:port], for the Host header. Anything that fits a request line is sent
    as it is (the proxy's answer to an odd URL is worth seeing); what does not is refused."""
    if not url or any(not "\x21" <= c <= "\x7e" for c in url):
        raise ValueError(f"the URL {url!r} is empty or has characters a request line cannot "
                         "carry (spaces, control or non-ASCII characters): percent-encode them")
    try:
        return urlsplit(url).netloc
    except ValueError as exc:
        raise ValueError(f"the URL {url!r} cannot be read: {exc}") from None


def fetch(url: str, proxy: str, ca: str, method: str = "GET", body: bytes = b"",
          headers: Sequence[tuple[str, str]] = (), timeout: float = 30.0,
          trace: Callable[[str], None] | None = None) -> Response:
    """One request through the proxy; ``trace`` gets the ladder as it happens."""
    authority = _url_authority(url)
    host, port = parse_proxy_url(proxy)
    headers = _with_proxy_authorization(proxy, headers)
    config = ClientConfig.from_ca_file(ca, host)
    steps: list[Event] = []

    def emit(ev: Event) -> None:
        steps.append(ev)
        if trace is not None:
            trace(ladder_row(len(steps), ev, "client", f"proxy {host}:{port}"))

    sock = _connect(host, port, timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    channel = _Channel(sock, ClientConnection(config), emit)
    try:
        channel.handshake()
        target = url.encode()
        req_headers = [("Host", authority), ("User-Agent", "handshake-proxy-client/0.1"),
                       ("Accept", "*/*")] + list(headers)
        if body or method.upper() in ("POST", "PUT", "PATCH"):
            req_headers.append(("Content-Length", str(len(body))))
        h = h11.Connection(h11.CLIENT)
        out = h.send(h11.Request(method=method.upper(), target=target, headers=req_headers))
        if body:
            out = (out or b"") + (h.send(h11.Data(data=body)) or b"")
        out = (out or b"") + (h.send(h11.EndOfMessage()) or b"")
        if trace is not None:
            trace(f"{'':>8} |  → {method.upper()} {url} ({len(out)} bytes of HTTP, sent as "
                  "encrypted application_data)")
        channel.send(out)
        resp: h11.Response | None = None
        chunks: list[bytes] = []
        complete = False
        while True:
            ev = h.next_event()
            if ev is h11.NEED_DATA:
                h.receive_data(channel.recv())
                continue
            if isinstance(ev, h11.Response):
                resp = ev
            elif isinstance(ev, h11.Data):
                chunks.append(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                complete = True
                break
            elif isinstance(ev, h11.ConnectionClosed):
                break
        assert resp is not None
        data = b"".join(chunks)
        if trace is not None:
            trace(f"{'':>8} |  ← {resp.status_code} {resp.reason.decode('latin-1')} "
                  f"({len(data)} body bytes, decrypted)")
        return Response(resp.status_code, resp.reason.decode("latin-1"),
                        resp.http_version.decode(),
                        [(n.decode("latin-1"), v.decode("latin-1"))
                         for n, v in resp.headers.raw_items()], data, steps, complete)
    finally:
        channel.close()
