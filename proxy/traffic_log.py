"""The decrypted-traffic log: JSON Lines records, written off the forwarding path.

This format is a contract: `handshake-proxy log show|har|stats` reads it, and
checks each record against it (``record_problem``) before use.

## Traffic log format (JSON Lines, one object per line, UTF-8, appended)

Two record types, distinguished by "type".

1. "connection": one per TLS connection, written as soon as the handshake completes or fails.

{"type": "connection",
 "time": "2026-11-28T15:30:00.123456+00:00",  # ISO 8601 UTC, when the TCP connection was accepted
 "conn": "c000001",                 # connection id, unique within one proxy run
 "client": "127.0.0.1:50412",
 "tls": {"version": "TLSv1.2", "cipher_suite": "TLS_RSA_WITH_AES_128_GCM_SHA256",
         "sni": "localhost" | null, "alpn": "http/1.1" | null, "extended_master_secret": true,
         "client_random": "<64 hex>", "server_random": "<64 hex>",
         "handshake_ms": 4.1} | null (handshake failed),
 "handshake": [
    {"step": "Client Hello", "sender": "client", "messages": ["ClientHello"], "at_ms": 0.2,
     "detail": {...what that message carried: offered suites names, sni, alpn, ems...}},
    {"step": "Server Hello + certificate", "sender": "server",
     "messages": ["ServerHello", "Certificate", "ServerHelloDone"], ...},
    {"step": "Client agrees", "sender": "client",
     "messages": ["ClientKeyExchange", "ChangeCipherSpec", "Finished"], ...},
    {"step": "Server agrees", "sender": "server", "messages": ["ChangeCipherSpec", "Finished"], ...},
    {"step": "Encrypted communication", "sender": "both", "messages": ["application_data"], ...}],
 "error": null | "handshake failed: <message> (alert: handshake_failure)"}

A failed handshake's record lists the steps that happened before the failure
(at least the Client Hello when the client's offer was refused).

2. "exchange": one per HTTP request/response (or CONNECT tunnel), written when the exchange ends.

{"type": "exchange",
 "time": "<ISO 8601 UTC, request start>", "conn": "c000001", "client": "127.0.0.1:50412",
 "seq": 1,                          # 1-based index of the exchange on its connection
 "tls": { same object as in the connection record },
 "request": {"method": "GET", "url": "http://127.0.0.1:8080/path?q=1", "version": "HTTP/1.1",
             # as received; the Proxy-Authorization value becomes "[redacted]"
             "headers": [["Host", "127.0.0.1:8080"], ...],
             "body": {"size": 0, "sha256": "<hex of the whole body>", "preview": "...",
                      "preview_encoding": "text" | "base64", "truncated": false,
                      "file": null | "<path of stored full body>"},
             # only when a chunked body ended with trailer fields (redacted as headers are):
             "trailers": [["X-Checksum", "..."], ...]},
 "response": {"status": 200, "reason": "OK", "version": "HTTP/1.1", "headers": [[...]],
              "body": {same shape}, "trailers": [[...]] (as in the request)} | null,
 # CONNECT only:
 "tunnel": null | {"host": "example.com", "port": 443, "bytes_up": 123, "bytes_down": 456},
 "timings": {"total_ms": 12.3, "origin_connect_ms": 1.0 | null, "wait_ms": 3.0 | null,
             "receive_ms": 5.0 | null},
 "error": null | "origin refused the connection (127.0.0.1:9)" ...}
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import datetime
import hashlib
import json
import queue
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TextIO

from .messages import userinfo_span

__all__ = ["TrafficLog", "BodyTap", "utc_now_iso", "header_pairs", "target_for_log",
           "record_problem"]

Record = dict[str, Any]
REDACTED = "[redacted]"


def utc_now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def header_pairs(raw: Iterable[tuple[bytes, bytes]], redact: frozenset[bytes]) -> list[list[str]]:
    """Headers as the log shows them: original case, redacted values replaced."""
    out = []
    for name, value in raw:
        shown = REDACTED if name.lower() in redact else value.decode("latin-1")
        out.append([name.decode("latin-1"), shown])
    return out


def target_for_log(target: bytes) -> str:
    """The request target as the log shows it: user info in the URL (often a password)
    is redacted, though the proxy refuses such requests."""
    span = userinfo_span(target) if b"@" in target else None
    if span is None:
        return target.decode("latin-1")
    start, end = span
    return target[:start].decode("latin-1") + REDACTED + target[end:].decode("latin-1")


# --- the format as types, for readers ----------------------------------------------------
# A reader checks each record against these before using it, so a damaged or hand-edited
# record is one reported line, not a traceback halfway through the output. A field may be
# missing (readers have defaults: logs from other versions), but one that is present has
# the documented type. In a spec, a tuple lists alternatives, a dict an object's fields,
# _ListOf a list, and a function checks a value itself (returning what is wrong, or None).


class _ListOf(NamedTuple):
    item: Any


def _iso_time(value: object) -> str | None:
    if not isinstance(value, str):
        return "is not a string"
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "is not an ISO 8601 time"
    return None


def _header(value: object) -> str | None:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return None
    return "is not a [name, value] pair of strings"


_NULL = type(None)
_NUMBER = (int, float)
_BODY = {"size": int, "sha256": str, "preview": (str, _NULL), "preview_encoding": (str, _NULL),
         "truncated": bool, "file": (str, _NULL)}
_TLS = {"version": str, "cipher_suite": str, "sni": (str, _NULL), "alpn": (str, _NULL),
        "extended_master_secret": bool, "client_random": str, "server_random": str,
        "handshake_ms": _NUMBER}
_HEADERS = _ListOf(_header)
_RECORD = {
    "type": str, "time": _iso_time, "conn": str, "client": str, "seq": int,
    "error": (str, _NULL), "tls": (_TLS, _NULL),
    "handshake": _ListOf({"step": str, "sender": str, "messages": _ListOf(str),
                          "at_ms": _NUMBER, "detail": dict}),
    "request": ({"method": (str, _NULL), "url": (str, _NULL), "version": (str, _NULL),
                 "headers": _HEADERS, "body": (_BODY, _NULL), "trailers": _HEADERS}, _NULL),
    "response": ({"status": int, "reason": str, "version": str, "headers": _HEADERS,
                  "body": (_BODY, _NULL), "trailers": _HEADERS}, _NULL),
    "tunnel": ({"host": str, "port": int, "bytes_up": int, "bytes_down": int}, _NULL),
    "timings": {"total_ms": (_NUMBER, _NULL), "origin_connect_ms": (_NUMBER, _NULL),
                "wait_ms": (_NUMBER, _NULL), "receive_ms": (_NUMBER, _NULL)},
}


def record_problem(record: Record) -> str | None:
    """What in ``record`` does not match the documented format (its first such field), or None."""
    if _record_ok(record):
        return None
    return _problem(record, _RECORD, "record")  # slower: it names the field


_MISSING = object()


def _compile(spec: Any) -> Callable[[object], bool]:
    """A yes/no check of ``spec``, built once: log readers run it on every record, so plain
    type fields are checked inline and only nested ones cost a call."""
    if isinstance(spec, _ListOf):  # before tuple: a NamedTuple is one
        item = _compile(spec.item)
        return lambda value: type(value) is list and all(map(item, value))
    if isinstance(spec, tuple) and not all(isinstance(s, type) for s in spec):
        (alternative,) = [_compile(s) for s in spec if s is not _NULL]  # one shape, or null
        return lambda value: value is None or alternative(value)
    if isinstance(spec, dict):
        plain = [(key, _types(s)) for key, s in spec.items() if _is_plain(s)]
        nested = [(key, _compile(s)) for key, s in spec.items() if not _is_plain(s)]

        def check_object(value: object) -> bool:
            if type(value) is not dict:
                return False
            get = value.get
            for key, types in plain:
                field_value = get(key, _MISSING)
                if field_value is not _MISSING and (
                        not isinstance(field_value, types)
                        or (type(field_value) is bool and bool not in types)):
                    return False
            for key, check in nested:
                field_value = get(key, _MISSING)
                if field_value is not _MISSING and not check(field_value):
                    return False
            return True
        return check_object
    if spec is _header:
        return lambda value: (type(value) is list and len(value) == 2
                              and type(value[0]) is str and type(value[1]) is str)
    if callable(spec) and not isinstance(spec, type):
        return lambda value: spec(value) is None
    types = _types(spec)
    return lambda value: isinstance(value, types) and (type(value) is not bool or bool in types)


def _is_plain(spec: Any) -> bool:
    """A type, or a tuple of types (a NamedTuple such as _ListOf is not)."""
    return isinstance(spec, type) or (type(spec) is tuple and all(isinstance(s, type) for s in spec))


def _problem(value: object, spec: Any, where: str) -> str | None:
    if isinstance(spec, _ListOf):  # before tuple: a NamedTuple is one
        if not isinstance(value, list):
            return f"{where} is not a list"
        for index, item in enumerate(value):
            problem = _problem(item, spec.item, f"{where}[{index}]")
            if problem is not None:
                return problem
        return None
    if isinstance(spec, tuple) and not all(isinstance(s, type) for s in spec):
        problems = [_problem(value, alternative, where) for alternative in spec]
        return None if None in problems else problems[0]
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return f"{where} is not an object"
        for key, field_spec in spec.items():
            if key in value:
                problem = _problem(value[key], field_spec, f"{where}.{key}")
                if problem is not None:
                    return problem
        return None
    if callable(spec) and not isinstance(spec, type):
        problem = spec(value)
        return None if problem is None else f"{where} {problem}"
    if isinstance(value, spec) and not (isinstance(value, bool) and bool not in _types(spec)):
        return None
    return f"{where} is not {_type_names(spec)}"


def _types(spec: type | tuple[type, ...]) -> tuple[type, ...]:
    return spec if isinstance(spec, tuple) else (spec,)


def _type_names(spec: type | tuple[type, ...]) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             dict: "an object", _NULL: "null"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in _types(spec)))


_record_ok = _compile(_RECORD)
_EMPTY_SHA256 = hashlib.sha256().hexdigest()


class BodyTap:
    """Counts, hashes and keeps the first bytes of a body as it streams past.

    Only the preview is kept, so memory stays bounded whatever the body's size.
    """

    __slots__ = ("size", "_sha", "_preview", "_limit")

    def __init__(self, preview_limit: int) -> None:
        self.size = 0
        self._sha = hashlib.sha256()
        self._preview = bytearray()
        self._limit = preview_limit

    def update(self, data: bytes) -> None:
        self.size += len(data)
        self._sha.update(data)
        room = self._limit - len(self._preview)
        if room > 0:
            self._preview += data[:room]

    def to_record(self) -> Record:
        if not self.size:  # most requests: no body; skip hashing and text checks
            return {"size": 0, "sha256": _EMPTY_SHA256, "preview": "",
                    "preview_encoding": "text", "truncated": False, "file": None}
        preview = bytes(self._preview)
        truncated = self.size > len(preview)
        text = _as_text(preview, truncated)
        return {
            "size": self.size,
            "sha256": self._sha.hexdigest(),
            "preview": text if text is not None else base64.b64encode(preview).decode(),
            "preview_encoding": "text" if text is not None else "base64",
            "truncated": truncated,
            "file": None,
        }


def _as_text(data: bytes, truncated: bool) -> str | None:
    """UTF-8 without NULs counts as text; a cut may split the last character."""
    if b"\x00" in data:
        return None
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        # final=False tolerates a multi-byte character cut by the preview limit.
        return decoder.decode(data, final=not truncated)
    except UnicodeDecodeError:
        return None


class TrafficLog:
    """Appends records as JSON Lines from a background thread.

    ``write`` only puts the record on a queue, so forwarding never waits
    for the disk; ``close`` drains the queue and flushes, so nothing is lost
    on a clean shutdown. With no path, records are kept only in memory
    (``records``), which the demo and tests read.
    """

    # How long the writer lets records gather before it writes them (a record
    # reaches the file at most this much later than its exchange ends).
    GATHER_SECONDS = 0.05
    # Records waiting for a file that takes them more slowly than the proxy makes them (a
    # slow disk, a pipe whose reader stalls): past this many, new ones are dropped and
    # counted, rather than held in memory without bound.
    MAX_WAITING = 100_000

    def __init__(self, path: str | None, keep_in_memory: bool = False) -> None:
        self.path = path
        self.records: list[Record] | None = [] if keep_in_memory else None
        self._queue: queue.SimpleQueue[Record | None] = queue.SimpleQueue()
        # Open for the whole run; close() flushes and closes it.
        self._file: TextIO | None = (
            open(path, "a", encoding="utf-8") if path else None)  # noqa: SIM115
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self.failures = 0
        self.dropped = 0  # records refused because MAX_WAITING were waiting
        if self._file is not None:
            self._thread = threading.Thread(target=self._run, name="traffic-log", daemon=True)
            self._thread.start()

    def write(self, record: Record) -> None:
        if self.records is not None:
            self.records.append(record)
        if self._thread is not None:
            if self._queue.qsize() >= self.MAX_WAITING:
                self.dropped += 1
                if self.dropped == 1:
                    print(f"handshake-proxy: traffic log {self.path}: {self.MAX_WAITING} records "
                          "are waiting for the file to take them; new ones are being dropped",
                          file=sys.stderr, flush=True)
                return
            self._queue.put(record)

    def _run(self) -> None:
        assert self._file is not None
        # One encoder for the run: json.dumps with options builds a new one per call.
        # Records are fresh dicts and lists built by the proxy, never cyclic, so the
        # encoder's cycle bookkeeping is skipped (about 1% of the proxy's work).
        dumps = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
        while True:
            batch = [self._queue.get()]  # idle: sleep until a record comes
            if batch[0] is not None:
                # Let a burst gather before writing it. While this thread sleeps
                # here, write() wakes nobody: waking it per record (a thread
                # switch on the proxy's one core) cost more than encoding.
                self._closing.wait(self.GATHER_SECONDS)
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in batch
            records = [item for item in batch if item is not None]
            try:
                if records:
                    self._file.write("".join([dumps(item) + "\n" for item in records]))
                    self._file.flush()
            except (OSError, TypeError, ValueError) as exc:
                # A full disk must not stop the thread (the queue would then grow
                # without bound): say so once, drop this batch, keep draining.
                self.failures += 1
                if self.failures == 1:
                    print(f"handshake-proxy: traffic log {self.path}: {exc}; records are "
                          "being dropped", file=sys.stderr, flush=True)
            if stop:
                return

    def close(self) -> None:
        if self._thread is not None:
            self._closing.set()
            self._queue.put(None)
            self._thread.join()
            self._thread = None
            if self.dropped:
                print(f"handshake-proxy: traffic log {self.path}: {self.dropped} records were "
                      "dropped because the file did not keep up", file=sys.stderr, flush=True)
        if self._file is not None:
            with contextlib.suppress(OSError):  # reported by the thread already
                self._file.close()
            self._file = None
