"""The pure rules of proxying (targets, hop-by-hop headers) and the log's body summaries."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import time
from pathlib import Path

import pytest
from conftest import CertFiles

from proxy.config import basic_credentials, parse_host_port
from proxy.messages import (
    HttpError,
    credentials_ok,
    error_response_parts,
    max_forwards,
    parse_absolute_target,
    parse_authority,
    request_headers_upstream,
    response_headers_downstream,
    trace_echo,
)
from proxy.traffic_log import BodyTap, header_pairs

DATE = b"Sun, 29 Nov 2026 10:00:00 GMT"


@pytest.mark.parametrize("target, host, port, authority, path", [
    (b"http://example.com/a?b=1", "example.com", 80, b"example.com", b"/a?b=1"),
    (b"HTTP://example.com:8080", "example.com", 8080, b"example.com:8080", b"/"),
    (b"http://127.0.0.1:9?x", "127.0.0.1", 9, b"127.0.0.1:9", b"/?x"),
    (b"http://[::1]:8080/p#frag", "::1", 8080, b"[::1]:8080", b"/p"),
])
def test_absolute_targets(target: bytes, host: str, port: int, authority: bytes,
                          path: bytes) -> None:
    t = parse_absolute_target(target)
    assert (t.host, t.port, t.authority, t.path) == (host, port, authority, path)


@pytest.mark.parametrize("target, method, sent", [
    (b"http://example.com", b"OPTIONS", b"*"),
    (b"http://example.com:8080#frag", b"OPTIONS", b"*"),
    (b"http://example.com/", b"OPTIONS", b"/"),
    (b"http://example.com?q", b"OPTIONS", b"/?q"),
    (b"http://example.com", b"GET", b"/"),
])
def test_server_wide_options_become_asterisk_form(target: bytes, method: bytes,
                                                  sent: bytes) -> None:
    # RFC 9112 §3.2.4: OPTIONS for a URI with an empty path and no query is forwarded
    # to the origin as "OPTIONS *"; any other method, or a path of "/", asks about "/".
    assert parse_absolute_target(target).request_target(method) == sent


@pytest.mark.parametrize("target, why", [
    (b"/index.html", "origin-form"),
    (b"https://example.com/", "unsupported scheme"),
    (b"example.com/x", "expected http://"),
    (b"http://user:pw@example.com/", "user info"),
    (b"http://example.com:0/", "bad port"),
    (b"http://example.com:/", "empty port"),
    (b"http://[::1/", "IPv6"),
])
def test_bad_targets(target: bytes, why: str) -> None:
    with pytest.raises(HttpError) as err:
        parse_absolute_target(target)
    assert err.value.status == 400 and why in err.value.message


def test_connect_authority_needs_a_port() -> None:
    assert parse_authority(b"example.com:443", None) == ("example.com", 443)
    with pytest.raises(HttpError):
        parse_authority(b"example.com", None)


def test_hop_by_hop_headers_removed_both_ways() -> None:
    raw = [(b"Host", b"evil"), (b"Connection", b"keep-alive, X-Private"), (b"X-Private", b"1"),
           (b"Keep-Alive", b"300"), (b"Proxy-Connection", b"keep-alive"), (b"TE", b"trailers"),
           (b"Trailer", b"X"), (b"Upgrade", b"h2c"), (b"Proxy-Authorization", b"Basic x"),
           (b"Expect", b"100-continue"), (b"Content-Length", b"5"), (b"X-Kept", b"yes")]
    t = parse_absolute_target(b"http://origin:8080/p")
    up = request_headers_upstream(raw, t, "10.1.2.3", x_forwarded_for=True, drop_expect=True,
                                  received_version=b"1.1")
    # The client's TE, hop-by-hop, is said again for the proxy's own hop (see below).
    assert up == [(b"Host", b"origin:8080"), (b"Content-Length", b"5"), (b"X-Kept", b"yes"),
                  (b"TE", b"trailers"), (b"Connection", b"TE"),
                  (b"Via", b"1.1 handshake-proxy"), (b"X-Forwarded-For", b"10.1.2.3")]
    down = response_headers_downstream([(b"Connection", b"close"), (b"Proxy-Authenticate", b"x"),
                                        (b"Transfer-Encoding", b"chunked"), (b"ETag", b'"1"'),
                                        (b"Date", DATE)], 200, b"1.1")
    assert down == [(b"Transfer-Encoding", b"chunked"), (b"ETag", b'"1"'), (b"Date", DATE),
                    (b"Via", b"1.1 handshake-proxy")]


@pytest.mark.parametrize("te, version, passed_on", [
    (b"trailers", b"1.1", True),
    (b"gzip;q=0.5, Trailers", b"1.1", True),
    (b"gzip", b"1.1", False),
    (b"trailers", b"1.0", False),  # the proxy cannot hand trailers back to this client
])
def test_te_trailers_is_said_again_for_the_origin_hop(te: bytes, version: bytes,
                                                      passed_on: bool) -> None:
    t = parse_absolute_target(b"http://origin/")
    up = request_headers_upstream([(b"TE", te), (b"Connection", b"TE")], t, "10.1.2.3",
                                  x_forwarded_for=False, drop_expect=False,
                                  received_version=version)
    sent = [(b"TE", b"trailers"), (b"Connection", b"TE")] if passed_on else []
    assert up == [(b"Host", b"origin"), *sent, (b"Via", version + b" handshake-proxy")]


def test_via_names_the_version_each_message_came_with() -> None:
    # RFC 9110 §7.6.3: received-protocol is the version of the message the proxy received.
    t = parse_absolute_target(b"http://origin/")
    up = request_headers_upstream([], t, "10.1.2.3", x_forwarded_for=False, drop_expect=False,
                                  received_version=b"1.0")
    assert up == [(b"Host", b"origin"), (b"Via", b"1.0 handshake-proxy")]
    down = response_headers_downstream([(b"Via", b"1.1 cache"), (b"Date", DATE)], 200, b"1.0")
    assert down == [(b"Via", b"1.1 cache"), (b"Date", DATE), (b"Via", b"1.0 handshake-proxy")]


def test_bodiless_statuses_lose_framing_headers() -> None:
    # RFC 9110 §8.6 and RFC 9112 §6.1: no Content-Length or Transfer-Encoding in a 1xx or 204.
    framing = [(b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked"), (b"X-Kept", b"1"),
               (b"Date", DATE)]
    for status in (103, 204):
        assert response_headers_downstream(framing, status, b"1.1") == [
            (b"X-Kept", b"1"), (b"Date", DATE), (b"Via", b"1.1 handshake-proxy")]
    # A 304's Content-Length describes the representation, and stays.
    assert (b"Content-Length", b"5") in response_headers_downstream(framing, 304, b"1.1")


def test_a_response_without_date_gets_one() -> None:
    # RFC 9110 §6.6.1: a recipient with a clock adds a Date to a response it forwards
    # without one (a final one: the origin may leave it out of a 1xx).
    before = time.time()
    (date,) = [v for n, v in response_headers_downstream([(b"X", b"1")], 200, b"1.1")
               if n == b"Date"]
    when = email.utils.parsedate_to_datetime(date.decode()).timestamp()
    assert before - 1 <= when <= time.time()
    assert date.endswith(b" GMT")
    assert response_headers_downstream([(b"date", DATE)], 500, b"1.1").count((b"date", DATE)) == 1
    assert [n for n, _ in response_headers_downstream([], 103, b"1.1")] == [b"Via"]
    headers, _ = error_response_parts(502, "no origin", close=False)
    assert [n for n, _ in headers].count(b"Date") == 1


def test_basic_credentials() -> None:
    value = basic_credentials("alice:pw")
    assert value == b"Basic " + base64.b64encode(b"alice:pw")
    assert credentials_ok(value, frozenset({value}))
    assert not credentials_ok(b"Basic xxx", frozenset({value}))
    assert not credentials_ok(None, frozenset({value}))


def test_parse_host_port() -> None:
    assert parse_host_port("0.0.0.0:8443") == ("0.0.0.0", 8443)
    assert parse_host_port("[::1]:1") == ("::1", 1)
    with pytest.raises(ValueError):
        parse_host_port("localhost")


def test_body_tap_text_binary_and_truncation() -> None:
    tap = BodyTap(8)
    tap.update("héllo wörld".encode())
    rec = tap.to_record()
    assert rec["preview_encoding"] == "text" and rec["truncated"] is True
    assert rec["preview"] == "héllo w"  # the cut 'ö' is dropped, not mangled
    assert rec["sha256"] == hashlib.sha256("héllo wörld".encode()).hexdigest()
    binary = BodyTap(4096)
    binary.update(b"\x00\x01\xff")
    rec = binary.to_record()
    assert rec["preview_encoding"] == "base64" and base64.b64decode(rec["preview"]) == b"\x00\x01\xff"
    assert rec["size"] == 3 and rec["truncated"] is False and rec["file"] is None


def test_header_pairs_redact() -> None:
    pairs = header_pairs([(b"Proxy-Authorization", b"Basic x"), (b"Cookie", b"a=1")],
                         frozenset({b"proxy-authorization", b"cookie"}))
    assert pairs == [["Proxy-Authorization", "[redacted]"], ["Cookie", "[redacted]"]]


def test_traffic_log_survives_a_full_disk(capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from proxy.traffic_log import TrafficLog
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    log = TrafficLog("/dev/full")
    for i in range(3):
        log.write({"type": "exchange", "seq": i})
    log.close()  # returns: the thread kept draining and stopped on request
    assert log.failures >= 1
    assert "records are being dropped" in capsys.readouterr().err


def test_traffic_log_drops_records_rather_than_hold_them_all_when_the_file_lags(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A pipe whose reader stalls (--traffic-log into a FIFO read by another tool) takes
    # records more slowly than the proxy makes them. The waiting records are capped; the
    # ones past the cap are counted and reported, and the rest still arrive whole.
    import os
    import threading

    from proxy.traffic_log import TrafficLog
    monkeypatch.setattr(TrafficLog, "MAX_WAITING", 50)
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open, but not reading yet
    log = TrafficLog(str(fifo))
    padding = "x" * 4000  # the pipe holds 64 KiB: a few records fill it
    for seq in range(400):
        log.write({"type": "exchange", "seq": seq, "padding": padding})
    assert log.dropped > 0
    received = bytearray()

    def drain() -> None:
        os.set_blocking(reader, True)
        while chunk := os.read(reader, 1 << 16):
            received.extend(chunk)

    draining = threading.Thread(target=drain)
    draining.start()
    log.close()
    draining.join(10)
    os.close(reader)
    seqs = [json.loads(line)["seq"] for line in received.decode().splitlines()]
    assert len(seqs) == 400 - log.dropped and seqs == sorted(seqs)
    err = capsys.readouterr().err
    assert "50 records are waiting for the file to take them; new ones are being dropped" in err
    assert f"{log.dropped} records were dropped because the file did not keep up" in err


def test_traffic_log_writes_json_lines_in_order(tmp_path) -> None:  # type: ignore[no-untyped-def]

    from proxy.traffic_log import TrafficLog
    path = tmp_path / "t.jsonl"
    log = TrafficLog(str(path))
    for i in range(1000):
        log.write({"type": "exchange", "seq": i, "text": "é"})
    log.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1000))


def test_traffic_log_record_reaches_the_file_without_a_close(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import time

    from proxy.traffic_log import TrafficLog
    path = tmp_path / "t.jsonl"
    log = TrafficLog(str(path))
    try:
        log.write({"type": "exchange", "seq": 1})
        # The writer gathers records briefly, then writes them while the proxy runs
        # (log show --follow relies on it); wait generously, the machine may be slow.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not path.read_text():
            time.sleep(0.02)
        assert [json.loads(line)["seq"] for line in path.read_text().splitlines()] == [1]
    finally:
        log.close()


def test_long_targets_are_not_kept_in_the_parsed_target_cache(certs: CertFiles,
                                                               tmp_path: Path) -> None:
    # The cache of parsed targets is shared by all connections and holds 1024 entries:
    # with URLs up to --max-header-bytes long, one client could pin ~128 MiB in it.
    from proxy_helpers import curl, running_proxy

    from proxy import forward
    with running_proxy(certs, tmp_path) as rp:
        long_url = f"{rp.origin}/{'a' * 30000}"
        assert curl(rp, "-o", "/dev/null", "-w", "%{http_code}", long_url).stdout == b"200"
        assert curl(rp, "-o", "/dev/null", "-w", "%{http_code}", f"{rp.origin}/short"
                    ).stdout == b"200"
    assert all(len(target) <= 2048 for target in forward._TARGETS)
    assert f"{rp.origin}/short".encode() in forward._TARGETS


def test_options_for_a_whole_origin_reaches_it_as_asterisk(certs: CertFiles,
                                                           tmp_path: Path) -> None:
    from proxy_helpers import raw_exchange, running_proxy

    with running_proxy(certs, tmp_path) as rp:
        answer = raw_exchange(rp, f"OPTIONS {rp.origin} HTTP/1.1\r\nHost: x\r\n"
                                  "Connection: close\r\n\r\n".encode())
        records = rp.stop()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["path"] == "*"
    (exchange,) = [r for r in records if r["type"] == "exchange"]
    assert exchange["request"]["url"] == rp.origin  # the log keeps the URL as received


def test_options_asterisk_is_answered_by_the_proxy(certs: CertFiles, tmp_path: Path) -> None:
    # "OPTIONS * HTTP/1.1" asks about the server it is sent to: the proxy answers it, and
    # the connection carries on (it used to be a 400 "malformed request target").
    from proxy_helpers import raw_exchange, running_proxy

    with running_proxy(certs, tmp_path) as rp:
        answer = raw_exchange(rp, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"
                                  + f"GET {rp.origin}/next HTTP/1.1\r\nHost: x\r\n"
                                    "Connection: close\r\n\r\n".encode())
        records = rp.stop()
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 0" in first
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and b'"path": "/next"' in rest
    assert [r["response"]["status"] for r in records if r["type"] == "exchange"] == [200, 200]


@pytest.mark.parametrize("headers, hops", [
    ([], None),
    ([(b"max-forwards", b"0")], 0),
    ([(b"max-forwards", b"12"), (b"max-forwards", b"12")], 12),
])
def test_max_forwards(headers: list[tuple[bytes, bytes]], hops: int | None) -> None:
    assert max_forwards(headers) == hops


@pytest.mark.parametrize("value", [[b"-1"], [b"1.5"], [b""], [b"0x1"], [b"1", b"2"]])
def test_malformed_max_forwards_is_a_400(value: list[bytes]) -> None:
    with pytest.raises(HttpError) as info:
        max_forwards([(b"max-forwards", v) for v in value])
    assert info.value.status == 400 and "Max-Forwards" in info.value.message


def test_trace_echo_leaves_out_credentials() -> None:
    echoed = trace_echo(b"TRACE", b"http://o/x", b"1.1",
                        [(b"Host", b"o"), (b"Cookie", b"s=1"), (b"X-A", b"1")],
                        frozenset({b"cookie"}))
    assert echoed == b"TRACE http://o/x HTTP/1.1\r\nHost: o\r\nX-A: 1\r\n\r\n"


def test_options_and_trace_with_max_forwards(certs: CertFiles, tmp_path: Path) -> None:
    # RFC 9110 §7.6.2: Max-Forwards: 0 makes the proxy the final recipient, which answers
    # itself; a larger value is forwarded one less. Other methods leave it alone.
    from proxy_helpers import curl, running_proxy

    with running_proxy(certs, tmp_path) as rp:
        r = curl(rp, "-i", "-X", "OPTIONS", "-H", "Max-Forwards: 0", f"{rp.origin}/o")
        head, _, body = r.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b""
        assert b"Content-Length: 0" in head and b"Via: 1.1 handshake-proxy" in head
        r = curl(rp, "-i", "-X", "TRACE", "-H", "Max-Forwards: 0", "-H", "Cookie: secret=1",
                 "-H", "Authorization: Basic c2VjcmV0", f"{rp.origin}/t?q=1")
        head, _, body = r.stdout.partition(b"\r\n\r\n")
        assert b"Content-Type: message/http" in head
        assert body.startswith(f"TRACE {rp.origin}/t?q=1 HTTP/1.1\r\n".encode())
        assert b"Max-Forwards: 0\r\n" in body and b"secret" not in body
        assert body.endswith(b"\r\n\r\n")
        for method, sent, seen in (("OPTIONS", "3", "2"), ("TRACE", "1", "0"), ("GET", "0", "0")):
            r = curl(rp, "-X", method, "-H", f"Max-Forwards: {sent}", f"{rp.origin}/{method}")
            assert f"Max-Forwards: {seen}" in json.loads(r.stdout)["headers"], method
        r = curl(rp, "-o", "/dev/null", "-w", "%{http_code}", "-X", "OPTIONS",
                 "-H", "Max-Forwards: many", f"{rp.origin}/bad")
        assert r.stdout == b"400"
        assert rp.origin_connections() == 1  # the two answered by the proxy never got there
        records = rp.stop()
    answered = [r for r in records if r["type"] == "exchange"
                and r["request"]["url"].endswith(("/o", "/t?q=1"))]
    assert [(r["response"]["status"], r["error"]) for r in answered] == [(200, None)] * 2
