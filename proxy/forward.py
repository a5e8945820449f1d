"""One client connection's HTTP/1.1 exchanges: read with h11, forward, stream both ways, log.

Bodies are never buffered whole: each chunk read from one side is written to
the other and drained before the next read, so a slow reader slows the
writer (back-pressure) and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import h11

from .bodystore import BodyStore
from .config import ProxyConfig
from .messages import (
    REASONS,
    VIA,
    HttpError,
    Target,
    credentials_ok,
    error_response_parts,
    http_date,
    max_forwards,
    parse_absolute_target,
    parse_authority,
    request_headers_upstream,
    response_bytes,
    response_headers_downstream,
    trace_echo,
    trailers_onward,
    with_max_forwards,
)
from .pool import OriginConnectError, OriginConnection, OriginConnectTimeout, OriginPool
from .streams import Stream, TLSError, within
from .traffic_log import BodyTap, TrafficLog, header_pairs, target_for_log, utc_now_iso

__all__ = ["ConnContext", "ClientSession"]

READ_SIZE = 256 * 1024
DISCARD_LIMIT = 1024 * 1024  # request body bytes read and dropped before an error answer
PROXY_AUTHENTICATE = (b"Proxy-Authenticate", b'Basic realm="handshake-proxy"')
# Parsed absolute-form targets (frozen, so shared): clients repeat the same URLs.
_TARGETS: dict[bytes, Target] = {}
_CACHED_TARGET_MAX = 2048  # longer ones are parsed each time: the cache stays near 4 MiB
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
_BAD_HOST_BYTE = re.compile(rb"[\x00-\x20\x7f]")
# Never echoed by TRACE, whatever --redact-header says: credentials and session cookies.
_NOT_TRACED = frozenset({b"authorization", b"cookie"})
# h11 quotes what it could not parse as the repr of its buffer: bytearray(b'GARBAGE').
_BUFFER_REPR = re.compile(r"bytearray\((b(['\"]).*?\2)\)")


def _h11_problem(exc: h11.ProtocolError) -> str:
    """h11's complaint, with the offending bytes shown as bytes rather than a Python object."""
    return _BUFFER_REPR.sub(r"\1", str(exc))


def _both_framings(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Content-Length and Transfer-Encoding both present (h11 leaves at most one of each)."""
    seen = False
    for name, _ in headers:
        if name == b"content-length" or name == b"transfer-encoding":
            if seen:
                return True
            seen = True
    return False


@dataclass
class ConnContext:
    """What every exchange on one client connection shares."""

    config: ProxyConfig
    pool: OriginPool
    log: TrafficLog
    conn_id: str
    client: str          # "ip:port"
    client_ip: str
    tls: dict[str, Any] | None = None
    exchanges: int = 0
    stats: dict[str, int] = field(default_factory=dict)


class _ClientGone(Exception):
    """The client closed or reset its connection; nothing more can be sent to it."""


class _Abort(Exception):
    """No answer can be completed (the response already started, or the client's TLS failed):
    cut the client off, without close_notify."""


class _OriginGone(Exception):
    """The origin closed a connection before any response: maybe a stale pooled one."""


class ClientSession:
    """Runs the exchanges of one client connection until it closes."""

    def __init__(self, stream: Stream, ctx: ConnContext) -> None:
        self.stream = stream
        self.ctx = ctx
        self.cfg = ctx.config
        self.h = h11.Connection(h11.SERVER, max_incomplete_event_size=ctx.config.max_header_bytes)
        self.busy = False  # True while an exchange is in flight: shutdown waits for those
        # When the current request's first byte arrived (not when we began waiting).
        self.request_started = 0.0
        self.request_time = ""

    # --- reading from the client -------------------------------------------

    async def _client_event(self, timeout: float) -> Any:
        """The next event of a request already under way (its body, its end)."""
        h = self.h
        eof = False
        while True:
            try:
                ev = h.next_event()
            except h11.RemoteProtocolError as exc:
                if eof:
                    raise _ClientGone("client closed the connection mid-request") from None
                raise HttpError(400, f"malformed request body: {_h11_problem(exc)}") from None
            if ev is not h11.NEED_DATA:
                return ev
            try:
                data = await within(self.stream.read(), timeout)
            except OSError as exc:
                raise _ClientGone(str(exc)) from None
            eof = not data
            h.receive_data(data)

    async def _request_head(self) -> Any:
        """The next Request, or None when the client is done (EOF / idle timeout)."""
        h = self.h
        ev = h.next_event()
        if ev is not h11.NEED_DATA:  # pipelined: already here
            self.request_started = time.perf_counter()
            self.request_time = utc_now_iso()
        else:
            # The idle keep-alive wait: no byte of the next request yet.
            try:
                data = await within(self.stream.read(), self.cfg.idle_timeout)
            except TLSError as exc:
                # Not a goodbye: the TLS layer failed (a bad record, a fatal alert, a
                # flood), and the log says so in the slot of the request that never came.
                self.request_started = time.perf_counter()
                self.request_time = utc_now_iso()
                raise _Abort(f"TLS failure: {exc}") from None
            except (TimeoutError, OSError):
                return None
            h.receive_data(data)
            self.busy = True
            self.request_started = time.perf_counter()
            self.request_time = utc_now_iso()
            # From the first byte, the whole header block has header_timeout.
            deadline = time.monotonic() + self.cfg.header_timeout
            while True:
                ev = h.next_event()
                if ev is not h11.NEED_DATA:
                    break
                left = deadline - time.monotonic()
                try:
                    data = await within(self.stream.read(), max(left, 0.0))
                except TimeoutError:
                    raise HttpError(408, f"request header not received within "
                                         f"{self.cfg.header_timeout:g}s") from None
                except OSError:
                    return None
                h.receive_data(data)
        self.busy = True
        if isinstance(ev, h11.ConnectionClosed):
            return None
        return ev

    # --- the connection loop -------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                self.busy = False
                keep_alive = await self._one_exchange()
                if not keep_alive:
                    break
                if self.h.our_state is h11.DONE and self.h.their_state is h11.DONE:
                    self.h.start_next_cycle()
                else:
                    break
            self.stream.close(clean=True)
        except _Abort:
            self.stream.close(clean=False)
        except Exception:
            self.stream.close(clean=False)
            raise

    async def _one_exchange(self) -> bool:
        record: dict[str, Any] = {
            "type": "exchange", "time": "", "conn": self.ctx.conn_id,
            "client": self.ctx.client, "seq": self.ctx.exchanges + 1, "tls": self.ctx.tls,
            "request": None, "response": None, "tunnel": None,
            "timings": {"total_ms": 0.0, "origin_connect_ms": None, "wait_ms": None,
                        "receive_ms": None},
            "error": None,
        }
        ex = _Exchange(self, record)
        try:
            try:
                req = await self._request_head()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                if status == 431:
                    raise HttpError(431, f"request header block larger than "
                                         f"{self.cfg.max_header_bytes} bytes") from None
                if status == 501:
                    # RFC 9112 §6.1: a transfer coding we do not know (h11 knows chunked).
                    raise HttpError(501, f"not implemented: {_h11_problem(exc)}") from None
                raise HttpError(400, f"malformed request: {_h11_problem(exc)}") from None
            if req is None:
                return False
            self.ctx.exchanges += 1
            ex.set_request(req)
            # h11 enforces its limit only on a header block split across reads; one
            # that arrived whole is measured here, so the limit holds either way.
            head_size = len(req.method) + len(req.target) + 12 + sum(
                len(n) + len(v) + 4 for n, v in req.headers.raw_items())
            if head_size > self.cfg.max_header_bytes:
                raise HttpError(431, f"request header block larger than "
                                     f"{self.cfg.max_header_bytes} bytes")
            keep = await ex.forward(req)
        except HttpError as err:
            if self.ctx.exchanges == record["seq"] - 1:
                self.ctx.exchanges += 1  # a request we could not even parse still counts
            record["error"] = err.message
            if self.h.their_state is h11.SEND_BODY:
                # A body that breaks its framing while being dropped (HttpError) changes
                # nothing: the client gets the first error, then the connection closes.
                with contextlib.suppress(TimeoutError, _ClientGone, h11.ProtocolError, HttpError):
                    await ex._discard_request_body()
            try:
                keep = self._send_error(err, ex)
            except _Abort:
                self._finish_record(record, ex)
                raise
        except _ClientGone as exc:
            record["error"] = f"client went away: {exc}" if str(exc) else "client went away"
            keep = False
        except _Abort as exc:
            record["error"] = str(exc)
            self._finish_record(record, ex)
            raise
        except TimeoutError:
            record["error"] = "client stopped sending the request body"
            keep = False
        except asyncio.CancelledError:
            # Only shutdown cancels a connection's task. An exchange under way when the
            # grace period ran out is logged as cut off, so the log still shows it.
            if self.busy:
                record["error"] = "cut off: the proxy shut down before the exchange finished"
                self._finish_record(record, ex)
            raise
        self._finish_record(record, ex)
        return keep

    def _finish_record(self, record: dict[str, Any], ex: _Exchange) -> None:
        record["time"] = self.request_time
        record["timings"]["total_ms"] = round(
            (time.perf_counter() - self.request_started) * 1000, 3)
        if record["request"] is None:
            record["request"] = {"method": None, "url": None, "version": None, "headers": [],
                                 "body": ex.req_tap.to_record()}
        else:
            record["request"]["body"] = ex.req_tap.to_record()
        if record["response"] is not None:
            record["response"]["body"] = ex.resp_tap.to_record()
        self.ctx.log.write(record)

    def _send_error(self, err: HttpError, ex: _Exchange) -> bool:
        """Answer with the proxy's own error; True if the connection may stay open."""
        h = self.h
        # If the request body was not read, the connection cannot be reused.
        close = h.their_state is not h11.DONE or err.status in (400, 408, 431)
        headers, body = error_response_parts(err.status, err.message, close, err.extra_headers)
        ex.set_response(err.status, b"", headers)
        try:
            return self._send_whole_response(ex, err.status, headers, body, close)
        except h11.LocalProtocolError:
            raise _Abort(err.message) from None  # the response had started already

    def _send_whole_response(self, ex: _Exchange, status: int, headers: list[tuple[bytes, bytes]],
                             body: bytes, close: bool) -> bool:
        """Send an answer of the proxy's own; True if the connection may stay open.

        h11.LocalProtocolError if a response to this request had already started.
        """
        h = self.h
        if ex.method == b"HEAD":
            body = b""  # RFC 9110 §9.3.2: the header fields a GET would get, and no content
        ex.resp_tap.update(body)
        try:
            out = h.send(h11.Response(status_code=status, headers=headers,
                                      reason=REASONS.get(status, "").encode()))
            out = (out or b"") + (h.send(h11.Data(data=body)) or b"") \
                + (h.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            if h.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
                raise
            # h11 refuses after some parse errors: write the answer by hand.
            out = response_bytes(status, headers, body)
            close = True
        try:
            self.stream.write(out)
        except OSError:
            return False
        return not close and h.our_state is h11.DONE


class _Exchange:
    """One request/response through the proxy."""

    def __init__(self, session: ClientSession, record: dict[str, Any]) -> None:
        self.s = session
        self.cfg = session.cfg
        self.record = record
        if self.cfg.bodies_dir:  # serve --bodies: whole bodies to disk as they pass
            store = BodyStore.for_directory(self.cfg.bodies_dir)
            self.req_tap: BodyTap = store.tap(self.cfg.preview_bytes)
            self.resp_tap: BodyTap = store.tap(self.cfg.preview_bytes)
        else:
            self.req_tap = BodyTap(self.cfg.preview_bytes)
            self.resp_tap = BodyTap(self.cfg.preview_bytes)
        self.redact = self.cfg.redact_headers
        self.origin_answered = False  # any response byte yet: tells a stale pooled connection
        self.method = b""  # the request's, once its head is parsed

    def set_request(self, req: h11.Request) -> None:
        self.method = req.method
        self.record["request"] = {
            "method": req.method.decode("latin-1"), "url": target_for_log(req.target),
            "version": "HTTP/" + req.http_version.decode("latin-1"),
            "headers": header_pairs(req.headers.raw_items(), self.redact), "body": None,
        }

    def set_response(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]],
                     version: bytes = b"1.1") -> None:
        self.record["response"] = {
            "status": status, "reason": reason.decode("latin-1") or REASONS.get(status, ""),
            "version": "HTTP/" + version.decode("latin-1"),
            "headers": header_pairs(headers, self.redact), "body": None,
        }

    async def forward(self, req: h11.Request) -> bool:
        cfg = self.cfg
        if cfg.auth:
            value = None
            for name, v in req.headers:
                if name == b"proxy-authorization":
                    value = v
            if not credentials_ok(value, cfg.auth):
                await self._discard_request_body()
                raise HttpError(407, "proxy authentication required" if value is None
                                else "proxy credentials not accepted",
                                [(b"Proxy-Authenticate", b'Basic realm="handshake-proxy"')])
        if req.method == b"CONNECT":
            return await self._tunnel(req)
        if req.method == b"OPTIONS" and req.target == b"*":
            # Asterisk-form asks about the server it is sent to, here the proxy itself
            # (RFC 9112 §3.2.4): a valid request with an answer, not a malformed target.
            return await self._answer_as_last_hop(req)
        target = _TARGETS.get(req.target)
        if target is None:
            target = parse_absolute_target(req.target)  # raises HttpError if malformed
            if _BAD_HOST_BYTE.search(target.authority):
                # It becomes the Host header, which h11 no longer re-validates below.
                # (h11's parser already limits targets to \x21-\x7e: belt and braces.)
                raise HttpError(400, "malformed request target: control character in the host")
            if len(req.target) <= _CACHED_TARGET_MAX:
                if len(_TARGETS) >= 1024:
                    _TARGETS.clear()
                _TARGETS[req.target] = target
        if _both_framings(req.headers):
            # h11 lets Transfer-Encoding win; an origin that believes the
            # Content-Length would read part of the body as another request.
            raise HttpError(400, "malformed request: both Content-Length and "
                                 "Transfer-Encoding (RFC 9112 section 6.3)")
        hops_left = max_forwards(req.headers) if req.method in (b"OPTIONS", b"TRACE") else None
        if hops_left == 0:
            return await self._answer_as_last_hop(req)
        h = self.s.h
        expect_100 = h.they_are_waiting_for_100_continue
        headers = request_headers_upstream(req.headers.raw_items(), target, self.s.ctx.client_ip,
                                           cfg.x_forwarded_for, expect_100, req.http_version)
        if hops_left is not None:
            headers = with_max_forwards(headers, hops_left - 1)
        # h11 validates these headers again although they came out of its parser or
        # are ours; its private _parsed flag would skip that (~15 us), but a private
        # parameter could change under us in any h11 release.
        upstream = h11.Request(method=req.method, target=target.request_target(req.method),
                               headers=headers)
        has_body = any(n in (b"content-length", b"transfer-encoding") and v != b"0"
                       for n, v in req.headers)
        if not has_body:
            # A bodiless request still has its EndOfMessage to read (h11 state); read
            # it once, before any attempt, so a retry does not wait for it again.
            ev = await self.s._client_event(cfg.idle_timeout)
            if not isinstance(ev, h11.EndOfMessage):
                raise HttpError(400, "malformed request: unexpected body")
        # An idempotent request without a body can be retried once if a pooled
        # connection turns out to have been closed by the origin meanwhile; any other
        # may have been acted on already (RFC 9110 9.2.2: a proxy MUST NOT retry it).
        retry = not has_body and req.method in _IDEMPOTENT
        for attempt in (0, 1):
            t0 = time.perf_counter()
            oc, reused = await self._acquire(target.host, target.port)
            if not reused:
                self.record["timings"]["origin_connect_ms"] = round(
                    (time.perf_counter() - t0) * 1000, 3)
            try:
                self._origin_write(oc, oc.h11.send(upstream))
                if expect_100 and attempt == 0:
                    # We answer Expect: 100-continue ourselves (and did not forward it),
                    # so the client sends its body without waiting a second for it.
                    self.s.stream.write(h.send(h11.InformationalResponse(
                        status_code=100, headers=[])))
                if has_body:
                    await self._upload(oc)
                else:
                    self._origin_write(oc, oc.h11.send(h11.EndOfMessage()))
                    await self._origin_drain(oc, "the request", stale_possible=True)
                t_sent = time.perf_counter()
                resp = await self._response_head(oc)
                break
            except _OriginGone as exc:
                oc.close()
                if reused and retry and attempt == 0:
                    continue
                raise HttpError(502, str(exc)) from None
            except BaseException:
                oc.close()
                raise
        self.record["timings"]["wait_ms"] = round((time.perf_counter() - t_sent) * 1000, 3)
        return await self._download(oc, resp)

    async def _answer_as_last_hop(self, req: h11.Request) -> bool:
        """The proxy answers as the final recipient: OPTIONS or TRACE with Max-Forwards: 0
        (RFC 9110 §7.6.2), or OPTIONS *. OPTIONS gets an empty 200, TRACE the request it
        received (§9.3.8)."""
        await self._discard_request_body()
        if req.method == b"TRACE":
            body = trace_echo(req.method, req.target, req.http_version, req.headers.raw_items(),
                              self.redact | _NOT_TRACED)
            headers = [(b"Content-Type", b"message/http")]
        else:
            body, headers = b"", []
        headers += [(b"Content-Length", b"%d" % len(body)), (b"Date", http_date()), VIA]
        close = self.s.h.their_state is not h11.DONE  # a body too long to read through
        if close:
            headers.append((b"Connection", b"close"))
        self.set_response(200, b"OK", headers)
        return self.s._send_whole_response(self, 200, headers, body, close)

    async def _acquire(self, host: str, port: int) -> tuple[OriginConnection, bool]:
        try:
            return await self.s.ctx.pool.acquire(host, port)
        except OriginConnectError as exc:
            raise HttpError(502, str(exc)) from None
        except OriginConnectTimeout as exc:
            raise HttpError(504, str(exc)) from None

    def _origin_write(self, oc: OriginConnection, data: bytes | None) -> None:
        if data:
            oc.writer.write(data)

    async def _origin_drain(self, oc: OriginConnection, what: str,
                            stale_possible: bool = False) -> None:
        """Wait until the origin takes ``what`` we wrote, for at most --origin-timeout: an
        origin that stops reading must not hold the exchange (and the client) forever."""
        try:
            await within(oc.writer.drain(), self.cfg.origin_timeout)
        except TimeoutError:
            raise HttpError(504, f"origin stopped reading {what} for "
                                 f"{self.cfg.origin_timeout:g}s") from None
        except OSError as exc:
            message = f"origin reset the connection while reading {what} " \
                      f"({exc.strerror or exc})"
            if stale_possible:
                raise _OriginGone(message) from None  # a pooled connection may be retried
            raise HttpError(502, message) from None

    async def _discard_request_body(self, limit: int = DISCARD_LIMIT) -> None:
        """Read (and drop) up to ``limit`` bytes of an unwanted request body.

        Closing a connection with unread request bytes makes the kernel send a
        reset, which can destroy our error answer before the client reads it;
        reading a bounded amount first lets the answer arrive (and often lets
        the connection stay open).
        """
        h = self.s.h
        if h.they_are_waiting_for_100_continue:
            return  # the client has not sent it; we will close instead
        while h.their_state is h11.SEND_BODY and self.req_tap.size <= limit:
            ev = await self.s._client_event(min(self.cfg.idle_timeout, 5.0))
            if isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
                return
            self.req_tap.update(ev.data)

    async def _upload(self, oc: OriginConnection) -> None:
        """Request body client → origin, chunk by chunk with back-pressure."""
        s = self.s
        idle = self.cfg.idle_timeout
        tap = self.req_tap
        writer = oc.writer
        send = oc.h11.send_with_data_passthrough
        while True:
            ev = await s._client_event(idle)
            if type(ev) is h11.Data:
                tap.update(ev.data)
                writer.writelines(send(ev) or ())
                await self._origin_drain(oc, "the request body")
            elif type(ev) is h11.EndOfMessage:
                # Trailers come only with a chunked body, which goes upstream chunked too.
                trailers = self._log_trailers("request", ev)
                writer.writelines(send(h11.EndOfMessage(headers=trailers)) or ())
                await self._origin_drain(oc, "the request body")
                return
            else:  # ConnectionClosed mid-body
                raise _ClientGone("client closed the connection during the upload")

    async def _origin_event(self, oc: OriginConnection, head: bool) -> Any:
        conn = oc.h11
        while True:
            try:
                ev = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if not head:
                    raise _Abort(f"origin closed the connection mid-body ({_h11_problem(exc)})") \
                        from None
                if not self.origin_answered:
                    raise _OriginGone("origin closed the connection without responding") \
                        from None
                raise HttpError(502, f"origin sent an invalid response: {_h11_problem(exc)}") \
                    from None
            if ev is not h11.NEED_DATA:
                return ev
            try:
                data = await within(oc.reader.read(READ_SIZE), self.cfg.origin_timeout)
            except TimeoutError:
                if head:
                    raise HttpError(504, f"origin did not answer within "
                                         f"{self.cfg.origin_timeout:g}s") from None
                raise _Abort(f"origin stopped sending the body for "
                             f"{self.cfg.origin_timeout:g}s") from None
            except OSError as exc:
                if head:
                    raise _OriginGone(f"origin reset the connection "
                                      f"({exc.strerror or exc})") from None
                raise _Abort(f"origin reset the connection mid-body "
                             f"({exc.strerror or exc})") from None
            if data:
                self.origin_answered = True
            conn.receive_data(data)

    async def _response_head(self, oc: OriginConnection) -> h11.Response:
        while True:
            ev = await self._origin_event(oc, head=True)
            if isinstance(ev, h11.Response):
                if ev.status_code > 599:
                    # RFC 9110 §15: 600-999 are invalid (h11 takes any three digits), and a
                    # recipient treats one as a server error; it is not passed on as if real.
                    raise HttpError(502, f"origin sent an invalid response: status "
                                         f"{ev.status_code} is outside 100-599")
                return ev
            if isinstance(ev, h11.InformationalResponse):
                # RFC 9110 15.2: forward a 1xx (103 Early Hints, ...) unless we asked
                # for it (100: we answered the client's Expect ourselves) or the client
                # speaks HTTP/1.0. (h11 refuses a 101 we did not ask for.)
                h = self.s.h
                if ev.status_code != 100 and h.their_http_version != b"1.0":
                    headers = response_headers_downstream(ev.headers.raw_items(), ev.status_code,
                                                          ev.http_version)
                    try:
                        self.s.stream.write(h.send(h11.InformationalResponse(
                            status_code=ev.status_code, headers=headers,
                            reason=ev.reason)) or b"")
                        await self._client_drain()
                    except OSError as exc:
                        raise _ClientGone(str(exc)) from None
                continue
            if isinstance(ev, h11.ConnectionClosed):
                raise _OriginGone("origin closed the connection without responding")
            raise HttpError(502, f"origin sent an unexpected {type(ev).__name__}")

    async def _download(self, oc: OriginConnection, resp: h11.Response) -> bool:
        """Response origin → client, chunk by chunk with back-pressure."""
        s = self.s
        h = s.h
        raw = resp.headers.raw_items()
        self.set_response(resp.status_code, resp.reason, raw, resp.http_version)
        headers = response_headers_downstream(raw, resp.status_code, resp.http_version)
        t0 = time.perf_counter()
        tap = self.resp_tap
        stream = s.stream
        try:
            stream.write(h.send(h11.Response(status_code=resp.status_code, headers=headers,
                                             reason=resp.reason)) or b"")
            send = h.send_with_data_passthrough
            while True:
                ev = await self._origin_event(oc, head=False)
                if type(ev) is h11.Data:
                    tap.update(ev.data)
                    pieces = send(ev) or [b""]
                    stream.write(pieces[0] if len(pieces) == 1 else b"".join(pieces))
                    await self._client_drain()
                elif type(ev) is h11.EndOfMessage:
                    trailers = self._log_trailers("response", ev)
                    # An HTTP/1.0 client gets the body close-delimited, where trailers
                    # have no place (RFC 9112 §7.1.2 lets a recipient discard them).
                    if h.their_http_version != b"1.1":
                        trailers = []
                    stream.write(h.send(h11.EndOfMessage(headers=trailers)) or b"")
                    break
                else:
                    raise _Abort("origin closed the connection mid-body")
        except OSError as exc:
            oc.close()
            raise _ClientGone(str(exc)) from None
        except BaseException:
            oc.close()
            raise
        self.record["timings"]["receive_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        if _both_framings(resp.headers):
            oc.close()  # its framing is in doubt (RFC 9112 6.3): no other request on it
        else:
            s.ctx.pool.release(oc)
        return True

    def _log_trailers(self, side: str, end: h11.EndOfMessage) -> list[tuple[bytes, bytes]]:
        """Log a chunked body's trailer fields as received; return those to pass on."""
        if not end.headers:
            return []
        raw = end.headers.raw_items()
        self.record[side]["trailers"] = header_pairs(raw, self.redact)
        return trailers_onward(raw)

    async def _client_drain(self) -> None:
        """Wait until the client takes the response so far, for at most --idle-timeout."""
        try:
            await within(self.s.stream.drain(), self.cfg.idle_timeout)
        except TimeoutError:
            raise _Abort(f"client stopped reading the response for "
                         f"{self.cfg.idle_timeout:g}s") from None

    async def _tunnel(self, req: h11.Request) -> bool:
        """CONNECT: an opaque byte pipe to an allowed port, counted both ways."""
        s = self.s
        cfg = self.cfg
        host, port = parse_authority(req.target, None)
        ev = await s._client_event(cfg.idle_timeout)
        if not isinstance(ev, h11.EndOfMessage):
            raise HttpError(400, "malformed CONNECT request")
        if port not in cfg.connect_ports:
            allowed = ", ".join(str(p) for p in sorted(cfg.connect_ports)) or "none"
            raise HttpError(403, f"CONNECT to port {port} is not allowed (allowed: {allowed})")
        t0 = time.perf_counter()
        try:
            oc = await s.ctx.pool.connect(host, port)
        except OriginConnectError as exc:
            raise HttpError(502, str(exc)) from None
        except OriginConnectTimeout as exc:
            raise HttpError(504, str(exc)) from None
        self.record["timings"]["origin_connect_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        headers = [(b"Date", http_date()), VIA]
        self.set_response(200, b"Connection established", headers)
        s.stream.write(s.h.send(h11.Response(status_code=200, headers=headers,
                                             reason=b"Connection established")) or b"")
        counts = [0, 0]  # bytes up, bytes down
        trailing, _closed = s.h.trailing_data
        if trailing:
            oc.writer.write(trailing)
            counts[0] += len(trailing)
        idle = cfg.idle_timeout
        last_activity = [time.monotonic()]

        async def read_unless_idle(read: Callable[[], Awaitable[bytes]]) -> bytes:
            # A tunnel is idle when no byte moves either way: a download's client sends
            # nothing for minutes, and its silence alone must not close the tunnel.
            while True:
                left = last_activity[0] + idle - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                try:
                    data = await within(read(), left)
                except TimeoutError:
                    continue  # the other direction may have moved meanwhile
                last_activity[0] = time.monotonic()
                return data

        async def up() -> None:
            while True:
                data = await read_unless_idle(s.stream.read)
                if not data:
                    if oc.writer.can_write_eof():
                        oc.writer.write_eof()
                    return
                counts[0] += len(data)
                oc.writer.write(data)
                await within(oc.writer.drain(), idle)

        async def down() -> None:
            while True:
                data = await read_unless_idle(lambda: oc.reader.read(READ_SIZE))
                if not data:
                    return
                counts[1] += len(data)
                s.stream.write(data)
                await within(s.stream.drain(), idle)

        up_task = asyncio.ensure_future(up())
        down_task = asyncio.ensure_future(down())
        try:
            done, _ = await asyncio.wait({up_task, down_task},
                                         return_when=asyncio.FIRST_COMPLETED)
            if up_task in done and not up_task.exception():
                # Client finished sending; let the origin finish its answer.
                await asyncio.wait({down_task}, timeout=cfg.origin_timeout)
        finally:
            for task in (up_task, down_task):
                if not task.done():
                    task.cancel()
            await asyncio.gather(up_task, down_task, return_exceptions=True)
            oc.close()
            self.record["tunnel"] = {"host": host, "port": port, "bytes_up": counts[0],
                                     "bytes_down": counts[1]}
        for task in (up_task, down_task):
            error = None if task.cancelled() else task.exception()
            if isinstance(error, TimeoutError):
                self.record["error"] = f"tunnel closed: no bytes either way for {idle:g}s"
            elif isinstance(error, OSError):
                self.record["error"] = f"tunnel ended: {error.strerror or error}"
            elif error is not None:
                self.record["error"] = f"tunnel ended: {type(error).__name__}: {error}"
        return False  # a tunnel ends its connection
