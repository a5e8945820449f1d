"""Pure helpers for proxying HTTP/1.1 messages: targets, hop-by-hop headers, error bodies.

No I/O here, so each rule is easy to test on its own.
"""

from __future__ import annotations

import email.utils
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["HttpError", "Target", "parse_absolute_target", "parse_authority",
           "request_headers_upstream", "response_headers_downstream", "trailers_onward",
           "max_forwards", "with_max_forwards", "trace_echo", "http_date",
           "error_response_parts", "response_bytes", "credentials_ok", "format_authority",
           "userinfo_span", "VIA", "via", "REASONS"]

Headers = list[tuple[bytes, bytes]]

# RFC 9110 §7.6.1 and RFC 9112: never forwarded, plus whatever Connection names.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade",
    b"proxy-authorization", b"proxy-authenticate",
})
# Transfer-Encoding is hop-by-hop as well, but we hand it (and Content-Length)
# to h11, which re-frames the body itself on each side from these headers.
VIA = (b"Via", b"1.1 handshake-proxy")  # on the answers the proxy makes itself


def via(received_version: bytes) -> tuple[bytes, bytes]:
    """Our Via entry for a forwarded message: RFC 9110 §7.6.3 names the protocol version
    the message was received with (an HTTP/1.0 client's request is forwarded as 1.1)."""
    return (b"Via", received_version + b" handshake-proxy") if received_version != b"1.1" else VIA

REASONS = {
    200: "OK", 400: "Bad Request", 403: "Forbidden", 407: "Proxy Authentication Required",
    408: "Request Timeout", 431: "Request Header Fields Too Large", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


class HttpError(Exception):
    """An exchange that ends with an error answer from the proxy itself."""

    def __init__(self, status: int, message: str,
                 extra_headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra_headers = list(extra_headers)


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    authority: bytes   # the Host header the origin gets: rebuilt from the URI
    path: bytes        # origin-form: what the origin sees on its request line
    # No path and no query in the URI (http://host): an OPTIONS request for it asks about
    # the server as a whole, and goes to the origin as "OPTIONS *" (RFC 9112 §3.2.4).
    server_wide: bool = False

    def request_target(self, method: bytes) -> bytes:
        """What the origin gets on its request line for ``method``."""
        return b"*" if self.server_wide and method == b"OPTIONS" else self.path


def parse_authority(authority: bytes, default_port: int | None) -> tuple[str, int]:
    """``host[:port]`` or ``[v6]:port``; HttpError(400) when malformed."""
    if not authority:
        raise HttpError(400, "malformed request target: no host")
    if b"@" in authority:
        raise HttpError(400, "malformed request target: user info in the URL is not allowed")
    if authority.startswith(b"["):
        end = authority.find(b"]")
        if end < 0:
            raise HttpError(400, "malformed request target: unterminated IPv6 address")
        host, rest = authority[1:end], authority[end + 1:]
        if rest and not rest.startswith(b":"):
            raise HttpError(400, "malformed request target: junk after the IPv6 address")
        port_text = rest[1:] if rest else b""
    else:
        host, sep, port_text = authority.partition(b":")
        if sep and not port_text:
            raise HttpError(400, "malformed request target: empty port")
    if not host:
        raise HttpError(400, "malformed request target: no host")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise HttpError(400, f"malformed request target: bad port {port_text.decode('latin-1')!r}")
        port = int(port_text)
    elif default_port is None:
        raise HttpError(400, "malformed request target: CONNECT needs host:port")
    else:
        port = default_port
    try:
        host_text = host.decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(400, "malformed request target: non-ASCII host") from None
    if not authority.startswith(b"[") and not _valid_dns_labels(host_text):
        # The resolver's IDNA step would raise UnicodeError on these, mid-connect.
        raise HttpError(400, f"malformed request target: {host_text!r} is not a host name "
                             "(an empty label, one over 63 characters, or over 253 in all)")
    return host_text, port


def _valid_dns_labels(name: str) -> bool:
    """Every dot-separated label 1-63 characters (a final dot allowed), 253 in all."""
    labels = (name[:-1] if name.endswith(".") else name).split(".")
    return len(name) <= 253 and all(0 < len(label) < 64 for label in labels)


def _authority_end(rest: bytes) -> int:
    """Where the authority ends in ``rest``, a URL after its ``scheme://``."""
    cut = len(rest)
    for delim in (b"/", b"?", b"#"):
        i = rest.find(delim)
        if 0 <= i < cut:
            cut = i
    return cut


def userinfo_span(target: bytes) -> tuple[int, int] | None:
    """(start, end) of the user info (``user:password``, before ``@``) in an absolute-form
    or authority-form target, or None. Such targets are refused, but still logged."""
    scheme_end = target.find(b"://")
    start = 0 if scheme_end < 0 else scheme_end + 3
    authority_end = start + _authority_end(target[start:])
    at = target.rfind(b"@", start, authority_end)
    return (start, at) if at >= 0 else None


def format_authority(host: str, port: int | str) -> str:
    """``host:port``, with an IPv6 address in brackets so the port stays readable."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_absolute_target(target: bytes) -> Target:
    """An absolute-form ``http://`` target (RFC 9112 §3.2.2) → where to connect and what to send."""
    if target.startswith(b"/"):
        raise HttpError(400, "origin-form request target: this is a forward proxy, send the "
                             "absolute URL (GET http://host/path HTTP/1.1)")
    scheme, sep, rest = target.partition(b"://")
    if not sep:
        raise HttpError(400, "malformed request target: expected http://host/path")
    if scheme.lower() != b"http":
        raise HttpError(400, f"unsupported scheme {scheme.decode('latin-1')!r}: only http:// "
                             "URLs are forwarded (https goes through CONNECT)")
    cut = _authority_end(rest)
    authority, path = rest[:cut], rest[cut:]
    host, port = parse_authority(authority, 80)
    path = path.partition(b"#")[0]  # a fragment is never sent to a server
    server_wide = not path
    if not path.startswith(b"/"):
        path = b"/" + path
    return Target(host, port, authority, path, server_wide)


# Never removed because Connection names them: h11 frames the forwarded body with them.
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    tokens -= _FRAMING
    return tokens


def _strip_hop_by_hop(raw: list[tuple[bytes, bytes]], also: frozenset[bytes] = frozenset()
                      ) -> Headers:
    named = _connection_tokens(raw)
    return [(n, v) for n, v in raw
            if (low := n.lower()) not in HOP_BY_HOP and low not in named and low not in also]


def _accepts_trailers(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request's TE lists "trailers" (RFC 9110 §10.1.4)."""
    return any(name.lower() == b"te"
               and b"trailers" in (t.split(b";")[0].strip().lower() for t in value.split(b","))
               for name, value in headers)


def request_headers_upstream(raw: list[tuple[bytes, bytes]], target: Target, client_ip: str,
                             x_forwarded_for: bool, drop_expect: bool,
                             received_version: bytes) -> Headers:
    """What the origin gets: Host from the URI first, no hop-by-hop headers, our Via."""
    also = frozenset({b"host", b"expect"}) if drop_expect else frozenset({b"host"})
    out = [(b"Host", target.authority)]
    out += _strip_hop_by_hop(raw, also)
    if received_version == b"1.1" and _accepts_trailers(raw):
        # TE is hop-by-hop, but the proxy passes trailers on to this client, so it can say
        # the same to the origin for its own hop (which some send trailers only after);
        # RFC 9110 §10.1.4 has a sender of TE name it in Connection too.
        out += [(b"TE", b"trailers"), (b"Connection", b"TE")]
    out.append(via(received_version))
    if x_forwarded_for:
        out.append((b"X-Forwarded-For", client_ip.encode()))
    return out


_date_cache: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """Now as an HTTP-date (RFC 9110 §5.6.7), built once per second."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, email.utils.formatdate(second, usegmt=True).encode())
    return _date_cache[1]


def response_headers_downstream(raw: list[tuple[bytes, bytes]], status: int,
                                received_version: bytes) -> Headers:
    """What the client gets: no hop-by-hop headers, our Via, and a Date if the origin gave
    none (RFC 9110 §6.6.1: a recipient with a clock adds one to what it forwards). A 1xx
    or 204 never has a body, and may not say how one is framed (RFC 9110 §8.6, RFC 9112
    §6.1): an origin's Content-Length or Transfer-Encoding there is dropped, not passed on
    to confuse a client."""
    out = _strip_hop_by_hop(raw, _FRAMING if status < 200 or status == 204 else frozenset())
    if status >= 200 and not any(name.lower() == b"date" for name, _ in out):
        out.append((b"Date", http_date()))
    out.append(via(received_version))
    return out


def max_forwards(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The Max-Forwards of a request (RFC 9110 §7.6.2), or None without one; h11's
    lower-cased names. Two that disagree, or one that is not a number, is a 400."""
    values = {value for name, value in headers if name == b"max-forwards"}
    if not values:
        return None
    value = values.pop()
    if values or not value.isdigit():
        raise HttpError(400, "malformed Max-Forwards header (RFC 9110 section 7.6.2)")
    return int(value)


def with_max_forwards(headers: Headers, value: int) -> Headers:
    """``headers`` with Max-Forwards set to ``value``, as the next hop gets it."""
    return [(name, b"%d" % value) if name.lower() == b"max-forwards" else (name, v)
            for name, v in headers]


def trace_echo(method: bytes, target: bytes, version: bytes,
               headers: Iterable[tuple[bytes, bytes]], leave_out: frozenset[bytes]) -> bytes:
    """The content of a TRACE answer: the request as received, as ``message/http`` (RFC 9110
    §9.3.8), less the fields in ``leave_out`` (credentials: it is an echo, not a leak)."""
    lines = [method + b" " + target + b" HTTP/" + version]
    lines += [name + b": " + value for name, value in headers if name.lower() not in leave_out]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def trailers_onward(raw: list[tuple[bytes, bytes]]) -> Headers:
    """A chunked body's trailer fields as forwarded: the hop-by-hop ones (and any that a
    trailing Connection names) stay here, and so do framing fields, which a trailer may
    not carry (RFC 9110 §6.5.1) and which could mislead the next recipient's framing."""
    return _strip_hop_by_hop(raw, _FRAMING)


def error_response_parts(status: int, message: str, close: bool,
                         extra: Iterable[tuple[bytes, bytes]] = ()) -> tuple[Headers, bytes]:
    """Headers and a short text body naming the cause."""
    body = f"{status} {REASONS.get(status, 'Error')}: {message}\n".encode()
    headers: Headers = [
        (b"Content-Type", b"text/plain; charset=utf-8"),
        (b"Content-Length", str(len(body)).encode()),
        (b"Date", http_date()),
        VIA,
    ]
    headers += extra
    if close:
        headers.append((b"Connection", b"close"))
    return headers, body


def response_bytes(status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> bytes:
    """A whole HTTP/1.1 response written by hand, for where h11 cannot be asked to."""
    reason = REASONS.get(status, "").encode()
    return (b"HTTP/1.1 %d %s\r\n" % (status, reason)
            + b"".join(name + b": " + value + b"\r\n" for name, value in headers)
            + b"\r\n" + body)


def credentials_ok(value: bytes | None, accepted: frozenset[bytes]) -> bool:
    """Constant-time comparison against every accepted ``Basic ...`` value. The scheme's
    name is case-insensitive (RFC 9110 §11.1), so ``basic`` works as ``Basic`` does."""
    if value is None:
        return False
    scheme, _, credentials = value.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return False
    value = b"Basic " + credentials.strip()
    ok = False
    for candidate in accepted:
        ok |= hmac.compare_digest(value, candidate)
    return ok
