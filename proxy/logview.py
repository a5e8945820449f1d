"""Reading the traffic log: records, filters, `log show` and follow mode.

The format is the one in proxy/traffic_log.py's docstring. The proxy appends
one JSON object per line and may be in the middle of a line when we read, so:

- a last line without its newline is a record still being written: skipped
  silently (follow mode waits for the rest of it);
- a complete line that is not a JSON object is corrupt: reported on stderr with
  its line number, skipped, and reading goes on.
"""

from __future__ import annotations

import codecs
import datetime as dt
import ipaddress
import json
import os
import re
import sys
import textwrap
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TextIO
from urllib.parse import urlsplit

from .messages import format_authority
from .traffic_log import record_problem

__all__ = [
    "Filter",
    "body_file",
    "Record",
    "ShowOptions",
    "exchange_host",
    "follow_records",
    "format_exchange",
    "format_full",
    "format_handshake",
    "human_size",
    "log_problem",
    "os_reason",
    "parse_line",
    "read_records",
    "short_suite",
    "show",
]

Record = dict[str, Any]
ProblemHandler = Callable[[int, str], None]


# --- reading ---------------------------------------------------------------------------------

def os_reason(exc: OSError) -> str:
    """An OSError in the few words the commands print after a file's name or an address."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if isinstance(exc, NotADirectoryError):
        return "not a directory"
    if isinstance(exc, PermissionError):
        return "permission denied"
    reason = exc.strerror or str(exc) or type(exc).__name__
    return reason[:1].lower() + reason[1:]


def log_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the log at ``path`` cannot be read (os_reason), or None.

    Asked before reading rather than caught while reading: the readers are
    generators consumed while the output is written, and an OSError from the
    output (a closed pipe) must not be reported as one about the log.
    """
    try:
        with open(path, "rb"):
            return None
    except OSError as exc:
        return os_reason(exc)


def stderr_problem(path: str | os.PathLike[str]) -> ProblemHandler:
    """A problem handler that prints `FILE:LINE: message` on stderr."""
    def report(lineno: int, message: str) -> None:
        print(f"{os.fspath(path)}:{lineno}: {message}; line skipped", file=sys.stderr)
    return report


def parse_line(raw: bytes) -> Record:
    """One complete log line to a record; ValueError says why it is corrupt."""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"corrupt record: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise ValueError("corrupt record: not a JSON object with a \"type\"")  # noqa: TRY004
    problem = record_problem(value)
    if problem is not None:
        raise ValueError(f"corrupt record: {problem}")
    return value


def _records_from_lines(lines: Iterable[tuple[int, bytes]], on_problem: ProblemHandler
                        ) -> Iterator[Record]:
    for lineno, raw in lines:
        if not raw.strip():
            continue
        try:
            yield parse_line(raw)
        except ValueError as exc:
            on_problem(lineno, str(exc))


def read_records(path: str | os.PathLike[str], on_problem: ProblemHandler | None = None
                 ) -> Iterator[Record]:
    """Every record in the file, in order (streamed: the file is never read whole)."""
    report = on_problem or stderr_problem(path)

    def lines() -> Iterator[tuple[int, bytes]]:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.endswith(b"\n"):
                    # The proxy is still writing this one. A truncated JSON object
                    # never parses, so a complete one (a proxy killed just before
                    # its newline) is kept and a partial one is dropped unreported.
                    try:
                        parse_line(raw)
                    except ValueError:
                        return
                yield lineno, raw
    return _records_from_lines(lines(), report)


def follow_records(path: str | os.PathLike[str], stop: Callable[[], bool],
                   on_problem: ProblemHandler | None = None, poll_s: float = 0.2
                   ) -> Iterator[Record]:
    """Records as they are appended, like `tail -F`, until `stop()` says so.

    `stop` is asked only when no more data is there, so everything written
    before it turns true is read. A partial last line waits for its newline.
    A log rotated (renamed, then a new file) or truncated is followed from the
    new file's start.
    """
    report = on_problem or stderr_problem(path)
    return _records_from_lines(_follow_lines(path, stop, poll_s), report)


def _follow_lines(path: str | os.PathLike[str], stop: Callable[[], bool], poll_s: float
                  ) -> Iterator[tuple[int, bytes]]:
    f = None
    pending = b""
    lineno = 0
    try:
        while True:
            if f is None:
                try:
                    f = open(path, "rb")  # noqa: SIM115 (closed in finally)
                except FileNotFoundError:
                    # The proxy may not have written its first record yet.
                    if stop():
                        return
                    time.sleep(poll_s)
                    continue
            chunk = f.read(65536)
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    lineno += 1
                    yield lineno, raw + b"\n"
                continue
            # At the end of what we have: was the log rotated (a new file under the
            # name) or truncated in place (copytruncate)? Then start over on the new one.
            # The old file has been read to its end by now, so nothing of it is lost.
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is not None and (current.st_ino != os.fstat(f.fileno()).st_ino
                                        or current.st_size < f.tell()):
                f.close()
                f, pending, lineno = None, b"", 0
                continue
            if stop():
                return
            time.sleep(poll_s)
    finally:
        if f is not None:
            f.close()


# --- filters ---------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """`10m`, `2h`, `1d`, `30s` before now, or an ISO 8601 time (no zone = UTC)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    match = _RELATIVE.match(text)
    if match:
        return now - dt.timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {text!r}: expected an ISO time or 30s/10m/2h/1d") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def _status_matcher(text: str) -> Callable[[int | None], bool]:
    codes: set[int] = set()
    classes: set[int] = set()
    errors = False  # "error": exchanges that got no response at all
    for part in (p.strip().lower() for p in text.split(",")):
        if part == "error":
            errors = True
        elif re.fullmatch(r"[1-5]xx", part):
            classes.add(int(part[0]))
        elif re.fullmatch(r"\d{3}", part):
            codes.add(int(part))
        else:
            raise ValueError(f"--status {text!r}: expected codes or classes like 404,5xx or 'error'")

    def matches(status: int | None) -> bool:
        if status is None:
            return errors
        return status in codes or status // 100 in classes
    return matches


def record_time(record: Record) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def exchange_host(record: Record) -> str:
    """The origin host an exchange went to (the tunnel's host for CONNECT)."""
    tunnel = record.get("tunnel")
    if isinstance(tunnel, dict) and tunnel.get("host"):
        return str(tunnel["host"])
    url = str((record.get("request") or {}).get("url") or "")
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally (``[v6]`` brackets allowed), or None for a name."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _host_matcher(pattern: str) -> Callable[[str], bool]:
    """What ``--host PATTERN`` selects, as a test of an exchange's host.

    A name matches itself; a leading dot selects a domain and its subdomains, as in
    curl's --noproxy. Addresses have no domains: an IP pattern matches only that
    address (compared as addresses, so ``::1`` matches ``0:0::1``), and a name or
    suffix never matches an address (``.0.0.1`` does not select ``127.0.0.1``).
    """
    pattern = pattern.lower()
    address = _ip(pattern)
    if address is not None:
        return lambda host: _ip(host) == address
    if not pattern.startswith("."):
        # Not an address, so only a name can be equal to it.
        return lambda host: host.lower() == pattern
    domain = pattern[1:]

    def in_domain(host: str) -> bool:
        host = host.lower()
        return (host == domain or host.endswith(pattern)) and _ip(host) is None

    return in_domain


def exchange_status(record: Record) -> int | None:
    response = record.get("response")
    if isinstance(response, dict) and isinstance(response.get("status"), int):
        return int(response["status"])
    return None


@dataclass(frozen=True)
class Filter:
    """What `--host --method --status --since --conn` select; None = anything."""

    host: Callable[[str], bool] | None = None
    method: str | None = None
    status: Callable[[int | None], bool] | None = None
    since: dt.datetime | None = None
    conn: str | None = None

    @classmethod
    def from_options(cls, host: str | None = None, method: str | None = None,
                     status: str | None = None, since: str | None = None,
                     conn: str | None = None, now: dt.datetime | None = None) -> Filter:
        return cls(host=_host_matcher(host) if host else None,
                   method=method.upper() if method else None,
                   status=_status_matcher(status) if status else None,
                   since=parse_since(since, now) if since else None,
                   conn=conn or None)

    @property
    def selects_exchanges(self) -> bool:
        """True when some filter looks at what only exchanges have (host, method, status)."""
        return bool(self.host or self.method or self.status)

    def _common(self, record: Record) -> bool:
        if self.conn is not None and record.get("conn") != self.conn:
            return False
        if self.since is not None:
            when = record_time(record)
            if when is None or when < self.since:
                return False
        return True

    def matches_connection(self, record: Record) -> bool:
        return self._common(record)

    def matches(self, record: Record) -> bool:
        """Does this exchange record pass every filter?"""
        if not self._common(record):
            return False
        if self.host is not None and not self.host(exchange_host(record)):
            return False
        method = str((record.get("request") or {}).get("method", "")).upper()
        if self.method is not None and method != self.method:
            return False
        return self.status is None or self.status(exchange_status(record))

    def exchanges(self, records: Iterable[Record]) -> Iterator[Record]:
        return (r for r in records if r.get("type") == "exchange" and self.matches(r))


# --- formatting ------------------------------------------------------------------------------

_SUITES = {  # OpenSSL's short names, what curl -v and openssl s_client print
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
}


def short_suite(name: object) -> str:
    return _SUITES.get(str(name), str(name)) if name else "-"


def human_size(size: object) -> str:
    if not isinstance(size, int):
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # not reached


def _ms(value: object) -> str:
    return f"{value:.1f} ms" if isinstance(value, (int, float)) else "-"


class _Paint:
    """ANSI colour when wanted, plain text otherwise."""

    CODES: ClassVar[dict[str, str]] = {"dim": "2", "bold": "1", "red": "31", "green": "32", "yellow": "33",
                                       "blue": "34", "magenta": "35", "cyan": "36"}

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles:
            return text
        codes = ";".join(self.CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


def _status_style(status: int | None) -> str:
    if status is None or status >= 500:
        return "red"
    return {2: "green", 3: "cyan", 4: "yellow"}.get(status // 100, "bold")


def _when(record: Record) -> str:
    when = record_time(record)
    if when is None:
        return str(record.get("time", "-"))
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _body_size(part: object) -> object:
    body = part.get("body") if isinstance(part, dict) else None
    return body.get("size") if isinstance(body, dict) else None


def format_exchange(record: Record, color: bool = False) -> str:
    """One line: time, client, conn#seq, method, URL, status, sizes, duration, suite."""
    paint = _Paint(color)
    request = record.get("request") or {}
    response = record.get("response")
    tunnel = record.get("tunnel")
    status = exchange_status(record)
    if isinstance(tunnel, dict):
        host = str(tunnel.get("host"))
        target = format_authority(host, str(tunnel.get("port")))
        sizes = f"{human_size(tunnel.get('bytes_up'))} / {human_size(tunnel.get('bytes_down'))}"
    else:
        target = str(request.get("url") or "-")
        sizes = f"{human_size(_body_size(request))} / {human_size(_body_size(response))}"
    status_text = str(status) if status is not None else "ERR"
    tls = record.get("tls") or {}
    timings = record.get("timings") or {}
    line = " ".join([
        paint(_when(record), "dim"),
        str(record.get("client", "-")),
        paint(f"{record.get('conn', '-')}#{record.get('seq', '?')}", "dim"),
        paint(str(request.get("method") or "-"), "bold"),
        target,
        paint(status_text, _status_style(status)),
        sizes,
        _ms(timings.get("total_ms")),
        short_suite(tls.get("cipher_suite")),
    ])
    if record.get("error"):
        line += " " + paint(f"! {record['error']}", "red")
    return line


@dataclass(frozen=True)
class ShowOptions:
    full: bool = False
    handshakes: bool = False
    color: bool = False
    bodies_dir: str | None = None
    as_json: bool = False  # the records themselves, one JSON object per line


def body_file(body: Record, bodies_dir: str | None) -> Path | None:
    """The stored full body, by --bodies DIR and SHA-256 name first, else the logged path."""
    if bodies_dir and body.get("sha256"):
        candidate = Path(bodies_dir) / str(body["sha256"])
        if candidate.is_file():
            return candidate
    if body.get("file"):
        candidate = Path(str(body["file"]))
        if candidate.is_file():
            return candidate
    return None


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


def _print_stored_body(stored: Path, facts: str, prefix: str, paint: _Paint,
                       out: TextIO) -> None:
    with open(stored, "rb") as f:
        head = f.read(8192)
        if _looks_binary(head):
            out.write(paint(f"{prefix}[binary body, {facts}, stored at {stored}]", "dim") + "\n")
            return
        out.write(paint(f"{prefix}[full body, {facts}, from {stored}]", "dim") + "\n")
        # Streamed through an incremental decoder: a stored body can be larger
        # than memory, and a UTF-8 sequence may straddle two reads.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        at_line_start = True
        chunk = head
        while chunk:
            text = decoder.decode(chunk)
            for piece in text.splitlines(keepends=True):
                out.write((prefix if at_line_start else "") + piece)
                at_line_start = piece.endswith("\n")
            chunk = f.read(65536)
        if not at_line_start:
            out.write("\n")


def _print_body(body: object, prefix: str, options: ShowOptions, paint: _Paint,
                out: TextIO) -> None:
    if not isinstance(body, dict) or not body.get("size"):
        return
    stored = body_file(body, options.bodies_dir)
    facts = f"{human_size(body.get('size'))}, sha256 {str(body.get('sha256', '-'))[:16]}…"
    if stored is not None:
        try:
            _print_stored_body(stored, facts, prefix, paint, out)
            return
        except OSError as exc:
            # The log's own preview is still there to show.
            out.write(paint(f"{prefix}[stored body {stored} cannot be read "
                            f"({exc.strerror or exc}); the logged preview follows]", "dim") + "\n")
    preview = str(body.get("preview") or "")
    more = ", preview truncated" if body.get("truncated") else ""
    if body.get("preview_encoding") == "base64":
        out.write(paint(f"{prefix}[binary body, {facts}{more}; preview is base64]", "dim") + "\n")
        out.write(f"{prefix}{preview[:120]}{'…' if len(preview) > 120 else ''}\n")
        return
    out.write(paint(f"{prefix}[body, {facts}{more}]", "dim") + "\n")
    out.writelines(f"{prefix}{text_line}\n" for text_line in preview.splitlines())


def format_full(record: Record, options: ShowOptions, out: TextIO) -> None:
    """Headers, body previews (full stored bodies when present), TLS facts and timings."""
    paint = _Paint(options.color)
    request = record.get("request") or {}
    response = record.get("response")
    out.write(paint(f"    > {request.get('method') or '-'} {request.get('url') or '-'} "
                    f"{request.get('version') or ''}", "blue") + "\n")
    out.writelines(f"    > {name}: {value}\n" for name, value in request.get("headers") or [])
    _print_body(request.get("body"), "    > ", options, paint, out)
    out.writelines(f"    > {name}: {value} (trailer)\n" for name, value in request.get("trailers") or [])
    if isinstance(response, dict):
        out.write(paint(f"    < {response.get('version', '')} {response.get('status', '')} "
                        f"{response.get('reason', '')}", "magenta") + "\n")
        out.writelines(f"    < {name}: {value}\n" for name, value in response.get("headers") or [])
        _print_body(response.get("body"), "    < ", options, paint, out)
        out.writelines(f"    < {name}: {value} (trailer)\n"
                       for name, value in response.get("trailers") or [])
    tunnel = record.get("tunnel")
    if isinstance(tunnel, dict):
        out.write(f"    tunnel {tunnel.get('host')}:{tunnel.get('port')}: "
                  f"{tunnel.get('bytes_up')} bytes up, {tunnel.get('bytes_down')} bytes down\n")
    tls = record.get("tls") or {}
    if tls:
        out.write(paint("    tls: " + _tls_facts(tls), "dim") + "\n")
        out.write(paint(f"    client_random: {tls.get('client_random', '-')}", "dim") + "\n")
    timings = record.get("timings") or {}
    if timings:
        parts = [f"{k.removesuffix('_ms')} {_ms(v)}" for k, v in timings.items() if v is not None]
        out.write(paint("    timings: " + ", ".join(parts), "dim") + "\n")
    if record.get("error"):
        out.write(paint(f"    error: {record['error']}", "red") + "\n")


def _tls_facts(tls: Record) -> str:
    ems = tls.get("extended_master_secret")
    return "  ".join([
        str(tls.get("version", "-")), str(tls.get("cipher_suite", "-")),
        f"SNI {tls.get('sni') or '-'}", f"ALPN {tls.get('alpn') or '-'}",
        f"EMS {'yes' if ems else 'no' if ems is not None else '-'}",
        f"handshake {_ms(tls.get('handshake_ms'))}",
    ])


_LADDER_WIDTH = 50


def _detail_text(detail: object) -> list[str]:
    if not isinstance(detail, dict):
        return [str(detail)] if detail else []
    lines = []
    for key, value in detail.items():
        lines.append(f"{key}: {_detail_value(value)}")
    return lines


def _detail_value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or value == [] or value == "":
        return "-"
    if isinstance(value, list):
        return ", ".join(_detail_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_detail_value(v)}" for k, v in value.items())
    return str(value)


def format_handshake(record: Record, color: bool = False) -> list[str]:
    """A connection record as the seed's ladder between client and proxy."""
    paint = _Paint(color)
    width = _LADDER_WIDTH
    tls = record.get("tls")
    lines = [paint(f"connection {record.get('conn', '-')}  client {record.get('client', '-')}  "
                   f"{_when(record)}", "bold")]
    if isinstance(tls, dict):
        lines.append(paint("  " + _tls_facts(tls), "dim"))
        # The key log's and Wireshark's handle on this connection.
        lines.append(paint(f"  client_random {tls.get('client_random', '-')}", "dim"))
    lines.append("  " + "client".ljust(width + 1) + "proxy")
    for number, step in enumerate(record.get("handshake") or [], 1):
        if not isinstance(step, dict):
            continue
        sender = step.get("sender")
        if sender == "client":
            arrow = "-" * (width - 1) + ">"
        elif sender == "server":
            arrow = "<" + "-" * (width - 1)
        else:  # both: the encrypted channel goes both ways
            arrow = "<" + "=" * (width - 2) + ">"
        at = step.get("at_ms")
        when = f"  {at:.1f} ms" if isinstance(at, (int, float)) else ""
        title = f" {number}. {step.get('step', '?')}"
        lines.append("    |" + paint(title.ljust(width), "bold") + "|" + paint(when, "dim"))
        messages = ", ".join(str(m) for m in step.get("messages") or [])
        lines.append("    |" + f"    {messages}"[:width].ljust(width) + "|")
        for text in _detail_text(step.get("detail")):
            # Long details wrap inside the ladder's rails.
            for piece in textwrap.wrap(text, width - 7, subsequent_indent="  ") or [""]:
                lines.append("    |" + paint(f"      {piece}".ljust(width), "dim") + "|")
        lines.append("    |" + arrow + "|")
    if record.get("error"):
        lines.append(paint(f"  {record['error']}", "red"))
    elif tls is None:
        lines.append(paint("  handshake failed", "red"))
    return lines


# --- log show --------------------------------------------------------------------------------

_MAX_PENDING_LADDERS = 10_000  # follow mode on a long log: never an unbounded dict


_as_json_line = json.JSONEncoder(ensure_ascii=False).encode  # as the proxy wrote it


def _connection_text(record: Record, options: ShowOptions) -> str:
    if options.as_json:
        return _as_json_line(record)
    return "\n".join(format_handshake(record, options.color))


def _exchange_text(record: Record, options: ShowOptions) -> str:
    return _as_json_line(record) if options.as_json else format_exchange(record, options.color)


def render(records: Iterable[Record], flt: Filter, options: ShowOptions, out: TextIO) -> int:
    """Write `log show` output for these records; returns how many exchanges were shown."""
    # With a host/method/status filter a connection's ladder is held back and
    # drawn just before its first matching exchange, so only relevant ladders show.
    pending: OrderedDict[str, Record] = OrderedDict()
    shown = 0
    for record in records:
        kind = record.get("type")
        if kind == "connection":
            if not options.handshakes or not flt.matches_connection(record):
                continue
            if flt.selects_exchanges:
                pending[str(record.get("conn"))] = record
                if len(pending) > _MAX_PENDING_LADDERS:
                    pending.popitem(last=False)
            else:
                out.write(_connection_text(record, options) + "\n")
        elif kind == "exchange" and flt.matches(record):
            ladder = pending.pop(str(record.get("conn")), None)
            if ladder is not None:
                out.write(_connection_text(ladder, options) + "\n")
            out.write(_exchange_text(record, options) + "\n")
            if options.full:
                format_full(record, options, out)
            shown += 1
        out.flush()
    return shown


def show(path: str, flt: Filter, options: ShowOptions, follow: bool = False,
         out: TextIO | None = None, stop: Callable[[], bool] | None = None) -> int:
    """`log show`: returns the exit code."""
    out = out or sys.stdout
    # --follow waits for a log that is not there yet; anything else wrong with it
    # (a directory, no permission) is an error either way.
    problem = log_problem(path)
    if problem is not None and not (follow and not os.path.lexists(path)):
        print(f"handshake-proxy log show: {path}: {problem}", file=sys.stderr)
        return 1
    if follow:
        render(follow_records(path, stop or (lambda: False)), flt, options, out)
        return 0
    render(read_records(path), flt, options, out)
    return 0
