"""`log har`: the traffic log as an HTTP Archive (HAR 1.2).

HAR is what browser devtools, mitmproxy, Charles and Fiddler exchange, so a
log exported here opens in the tools people already know. What HAR has no
field for (the TLS facts, the client, errors, CONNECT tunnels, body hashes)
goes into `_`-prefixed custom fields, which the spec allows.

Bodies: the log keeps the first bytes of each body; when `serve --bodies`
stored the whole body, the HAR embeds it (up to EMBED_LIMIT bytes each).
Entries are written one at a time, so a long log never sits in memory whole.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import sys
import zlib
from collections.abc import Iterable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlsplit

from proxy.logview import Filter, Record, body_file, log_problem, os_reason, read_records

__all__ = ["EMBED_LIMIT", "build", "entry", "export", "write"]

EMBED_LIMIT = 16 * 1024 * 1024  # a HAR is one JSON document: don't embed a 1 GiB body
_DECODED_LIMIT = 64 * 1024 * 1024  # a gzip bomb stops here


def _creator() -> dict[str, str]:
    try:
        from importlib.metadata import version
        return {"name": "handshake-proxy", "version": version("handshake-proxy")}
    except Exception:  # running from a source tree that was never installed
        return {"name": "handshake-proxy", "version": "0.0.0"}


def _header(headers: list[list[str]], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers:
        if key.lower() == lowered:
            return value
    return None


def _pairs(pairs: Iterable[tuple[str, str]] | Iterable[list[str]]) -> list[dict[str, str]]:
    return [{"name": str(name), "value": str(value)} for name, value in pairs]


def _request_cookies(headers: list[list[str]]) -> list[dict[str, Any]]:
    cookies = []
    for key, value in headers:
        if key.lower() != "cookie":
            continue
        for part in value.split(";"):
            name, sep, val = part.strip().partition("=")
            if sep and name:
                cookies.append({"name": name, "value": val})
    return cookies


def _response_cookies(headers: list[list[str]]) -> list[dict[str, Any]]:
    cookies: list[dict[str, Any]] = []
    for key, value in headers:
        if key.lower() != "set-cookie":
            continue
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(value)
        except Exception:  # a cookie the stdlib cannot parse is still a header
            continue
        for morsel in jar.values():
            cookie: dict[str, Any] = {"name": morsel.key, "value": morsel.value}
            for attr, har_name in (("path", "path"), ("domain", "domain"),
                                   ("expires", "expires")):
                if morsel[attr]:
                    cookie[har_name] = str(morsel[attr])
            cookie["httpOnly"] = bool(morsel["httponly"])
            cookie["secure"] = bool(morsel["secure"])
            cookies.append(cookie)
    return cookies


def _full_body(body: Record, bodies_dir: str | None) -> bytes | None:
    """The whole body: stored by `serve --bodies`, or a preview that was not cut."""
    if body.get("size", 0) == 0:
        return b""
    stored = body_file(body, bodies_dir)
    if stored is not None:
        # A stored body that cannot be read is as good as none: the logged
        # preview stands in, and an OSError here would pass for one writing OUT.har.
        with contextlib.suppress(OSError):
            if stored.stat().st_size <= EMBED_LIMIT:
                return stored.read_bytes()
    if not body.get("truncated") and body.get("preview") is not None:
        if body.get("preview_encoding") == "base64":
            return base64.b64decode(str(body["preview"]))
        return str(body["preview"]).encode("utf-8")
    return None


def _decode_content(data: bytes, coding: str | None) -> bytes | None:
    """HAR's content.text is the body after Content-Encoding is undone (gzip, deflate)."""
    if not coding or coding.lower() == "identity":
        return data
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS,
             "deflate": zlib.MAX_WBITS}.get(coding.lower())
    if wbits is None:
        return None
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(data, _DECODED_LIMIT)
        return out if not inflater.unconsumed_tail else None
    except zlib.error:
        return None


def _text_fields(data: bytes) -> dict[str, str]:
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"text": base64.b64encode(data).decode("ascii"), "encoding": "base64"}


def _preview_fields(body: Record) -> dict[str, Any]:
    fields: dict[str, Any] = {"text": str(body.get("preview") or "")}
    if body.get("preview_encoding") == "base64":
        fields["encoding"] = "base64"
    if body.get("truncated"):
        fields["_truncated"] = True
    return fields


def _body_facts(body: Record) -> dict[str, Any]:
    return {"_sha256": body.get("sha256"), "_file": body.get("file")}


def _post_data(request: Record, bodies_dir: str | None) -> dict[str, Any] | None:
    body = request.get("body") or {}
    if not body.get("size"):
        return None
    headers = request.get("headers") or []
    post: dict[str, Any] = {"mimeType": _header(headers, "content-type") or ""}
    data = _full_body(body, bodies_dir)
    if data is not None:
        fields = _text_fields(data)
        post["text"] = fields["text"]
        if "encoding" in fields:  # postData has no encoding field in HAR 1.2
            post["_encoding"] = fields["encoding"]
    else:
        fields = _preview_fields(body)
        post["text"] = fields.pop("text")
        if "encoding" in fields:
            post["_encoding"] = fields.pop("encoding")
        post.update(fields)
    post.update(_body_facts(body))
    return post


def _content(response: Record, bodies_dir: str | None) -> dict[str, Any]:
    body = response.get("body") or {}
    headers = response.get("headers") or []
    size = int(body.get("size") or 0)
    content: dict[str, Any] = {"size": size,
                               "mimeType": _header(headers, "content-type") or "x-unknown"}
    if size == 0:
        content["text"] = ""
        return content
    coding = _header(headers, "content-encoding")
    raw = _full_body(body, bodies_dir)
    decoded = _decode_content(raw, coding) if raw is not None else None
    if decoded is not None:
        content["size"] = len(decoded)
        if len(decoded) != size:
            content["compression"] = len(decoded) - size
        content.update(_text_fields(decoded))
    else:
        # Only the first bytes, still content-encoded: say so rather than pretend.
        content.update(_preview_fields(body))
        if coding and coding.lower() != "identity":
            content["_contentEncoding"] = coding
    content.update(_body_facts(body))
    return content


def _timings(record: Record) -> tuple[float, dict[str, float]]:
    timings = record.get("timings") or {}

    def ms(name: str) -> float | None:
        value = timings.get(name)
        return float(value) if isinstance(value, (int, float)) and value >= 0 else None

    total = ms("total_ms") or 0.0
    connect, wait, receive = ms("origin_connect_ms"), ms("wait_ms"), ms("receive_ms")
    known = (connect or 0.0) + (wait or 0.0) + (receive or 0.0)
    # HAR has no slot for the rest (reading the request, writing to the origin):
    # it goes into send, so that the phases add up to the entry's time.
    send = max(0.0, total - known)
    return send + known, {
        "blocked": -1, "dns": -1, "connect": connect if connect is not None else -1,
        "ssl": -1, "send": round(send, 3), "wait": wait or 0.0, "receive": receive or 0.0}


def _har_url(request: Record, tunnel: object) -> str | None:
    """An absolute URL, as HAR requires, or None when the request had none to give."""
    if isinstance(tunnel, dict):
        # CONNECT's target is host:port, not a URL.
        return f"https://{tunnel.get('host')}:{tunnel.get('port')}/"
    url = str(request.get("url") or "")
    try:
        split = urlsplit(url)
    except ValueError:
        return None
    if split.scheme and split.netloc:
        return url
    host = _header(request.get("headers") or [], "host")
    if url.startswith("/") and host:
        # An origin-form request (which the proxy refuses with 400): rebuilt from Host.
        return f"http://{host}{url}"
    return None


def entry(record: Record, bodies_dir: str | None = None) -> dict[str, Any] | None:
    """One exchange record as a HAR entry; None if it has no request line to show
    (a request so malformed that the proxy could not parse it)."""
    request = record.get("request") or {}
    response = record.get("response")
    tunnel = record.get("tunnel")
    url = _har_url(request, tunnel)
    if not request.get("method") or url is None:
        return None
    split = urlsplit(url)
    req_headers = request.get("headers") or []
    req_body = request.get("body") or {}
    har_request: dict[str, Any] = {
        "method": str(request.get("method") or ""),
        "url": url,
        "httpVersion": str(request.get("version") or "HTTP/1.1"),
        "cookies": _request_cookies(req_headers),
        "headers": _pairs(req_headers),
        "queryString": _pairs(parse_qsl(split.query, keep_blank_values=True)),
        "headersSize": -1,  # the log keeps parsed headers, not their bytes on the wire
        "bodySize": int(req_body.get("size") or 0),
    }
    post = _post_data(request, bodies_dir)
    if post is not None:
        har_request["postData"] = post
    if request.get("trailers"):
        har_request["_trailers"] = _pairs(request["trailers"])
    if isinstance(response, dict):
        resp_headers = response.get("headers") or []
        har_response: dict[str, Any] = {
            "status": int(response.get("status") or 0),
            "statusText": str(response.get("reason") or ""),
            "httpVersion": str(response.get("version") or "HTTP/1.1"),
            "cookies": _response_cookies(resp_headers),
            "headers": _pairs(resp_headers),
            "content": _content(response, bodies_dir),
            "redirectURL": _header(resp_headers, "location") or "",
            "headersSize": -1,
            "bodySize": int((response.get("body") or {}).get("size") or 0),
        }
        if response.get("trailers"):
            har_response["_trailers"] = _pairs(response["trailers"])
    else:
        # No response (origin timed out, client went away): what browsers write, status 0.
        har_response = {"status": 0, "statusText": "", "httpVersion": "", "cookies": [],
                        "headers": [], "content": {"size": 0, "mimeType": "x-unknown"},
                        "redirectURL": "", "headersSize": -1, "bodySize": -1}
    total, timings = _timings(record)
    har_entry: dict[str, Any] = {
        "startedDateTime": str(record.get("time")),
        "time": round(total, 3),
        "request": har_request,
        "response": har_response,
        "cache": {},
        "timings": timings,
        "connection": str(record.get("conn") or ""),
    }
    # Only for an IP literal: for a name, the log does not say which address it resolved to.
    with contextlib.suppress(ValueError):
        har_entry["serverIPAddress"] = str(ipaddress.ip_address(split.hostname or ""))
    har_entry["_client"] = record.get("client")
    har_entry["_seq"] = record.get("seq")
    har_entry["_tls"] = record.get("tls")
    if tunnel is not None:
        har_entry["_tunnel"] = tunnel
    if record.get("error"):
        har_entry["_error"] = record["error"]
    return har_entry


def write(records: Iterable[Record], out: TextIO, bodies_dir: str | None = None,
          comment: str | None = None) -> int:
    """Stream a HAR document to `out`; returns the number of entries."""
    head: dict[str, Any] = {"version": "1.2", "creator": _creator()}
    if comment:
        head["comment"] = comment
    # The head without its closing brace, then the entries one by one.
    out.write('{"log": ' + json.dumps(head)[:-1] + ', "entries": [')
    count = skipped = 0
    for record in records:
        if record.get("type") != "exchange":
            continue
        har_entry = entry(record, bodies_dir)
        if har_entry is None:
            skipped += 1
            continue
        out.write(",\n" if count else "\n")
        out.write(json.dumps(har_entry, ensure_ascii=False))
        count += 1
    # What was left out is said in custom fields of the log object, after the entries.
    tail = (f', "_skipped": {skipped}, "_skippedReason": "no parseable request line"'
            if skipped else "")
    out.write(f"\n]{tail}}}}}\n")
    return count


def build(records: Iterable[Record], bodies_dir: str | None = None) -> dict[str, Any]:
    """The HAR document as a dict (for tests and small logs)."""
    entries = (entry(r, bodies_dir) for r in records if r.get("type") == "exchange")
    return {"log": {"version": "1.2", "creator": _creator(),
                    "entries": [e for e in entries if e is not None]}}


def export(path: str, output: str, flt: Filter, bodies_dir: str | None = None) -> int:
    """`log har FILE -o OUT`: returns the exit code."""
    problem = log_problem(path)
    if problem is not None:
        print(f"handshake-proxy log har: {path}: {problem}", file=sys.stderr)
        return 1
    exchanges = flt.exchanges(read_records(path))
    comment = f"exported from {Path(path).name}"
    if output == "-":
        write(exchanges, sys.stdout, bodies_dir, comment)
        return 0
    try:
        count = _write_file(exchanges, output, bodies_dir, comment)
    except OSError as exc:
        print(f"handshake-proxy log har: {output}: cannot write: {_output_reason(exc)}",
              file=sys.stderr)
        return 1
    print(f"wrote {count} entries to {output}", file=sys.stderr)
    return 0


def _output_reason(exc: OSError) -> str:
    # Creating OUT.har.part fails with "no such file" when the directory is missing.
    if isinstance(exc, FileNotFoundError):
        return "no such directory"
    return os_reason(exc)


def _write_file(exchanges: Iterable[Record], output: str, bodies_dir: str | None,
                comment: str) -> int:
    """Write the HAR to ``output``; OSError if it cannot, with no .part file left."""
    if Path(output).is_dir():
        raise IsADirectoryError(output)
    # Written beside the target and renamed: a reader never sees half a HAR.
    tmp = Path(output).with_name(Path(output).name + ".part")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            count = write(exchanges, f, bodies_dir, comment)
        tmp.replace(output)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return count
