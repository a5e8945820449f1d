"""Each failure provoked for real (issue 3, point 4): its status, its log record, and the
proxy then serves a normal request."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CertFiles
from proxy_helpers import (
    FakeOrigin,
    RunningProxy,
    answering_origin,
    client_context,
    curl,
    raw_exchange,
    read_log,
    read_request_head,
    running_proxy,
)


def _status_then_normal(rp: RunningProxy, bad_url: str) -> tuple[int, bytes]:
    """The bad request and a good one on the same keep-alive connection (one curl)."""
    r = curl(rp, "-o", "/dev/null", "-w", "%{http_code}\n", bad_url,
             "-o", "-", "-w", "%{http_code}\n", f"{rp.origin}/after")
    lines = r.stdout.split(b"\n")
    status = int(lines[0])
    assert lines[-2] == b"200", r.stdout
    assert b'"path": "/after"' in r.stdout
    return status, r.stdout


def _record(records: list[dict[str, Any]], url_part: str) -> dict[str, Any]:
    (rec,) = [r for r in records if r["type"] == "exchange" and r["request"]["url"].endswith(url_part)]
    return rec


def test_origin_refuses_connection_502(certs: CertFiles, tmp_path: Path, refused_port: int) -> None:
    port = refused_port  # bound by the test, never listening: connections are refused
    with running_proxy(certs, tmp_path) as rp:
        status, _ = _status_then_normal(rp, f"http://127.0.0.1:{port}/closed")
        assert status == 502
        r = curl(rp, f"http://127.0.0.1:{port}/closed-again")
        assert b"502 Bad Gateway: origin refused the connection" in r.stdout
        records = rp.stop()
    rec = _record(records, "/closed")
    assert rec["response"]["status"] == 502
    assert "refused" in rec["error"]


def test_silent_origin_504(certs: CertFiles, tmp_path: Path) -> None:
    stop = threading.Event()

    def silent(conn: socket.socket) -> None:
        read_request_head(conn)
        stop.wait(30)  # says nothing until the test ends

    origin = FakeOrigin(silent)
    try:
        with running_proxy(certs, tmp_path, origin_timeout=1.0) as rp:
            status, _ = _status_then_normal(rp, f"http://127.0.0.1:{origin.port}/silent")
            assert status == 504
            records = rp.stop()
    finally:
        stop.set()
        origin.close()
    rec = _record(records, "/silent")
    assert rec["response"]["status"] == 504
    assert "did not answer within 1s" in rec["error"]


def test_origin_sends_garbage_502(certs: CertFiles, tmp_path: Path) -> None:
    with answering_origin(b"THIS IS NOT HTTP\r\n\r\n") as origin, \
            running_proxy(certs, tmp_path) as rp:
        status, _ = _status_then_normal(rp, f"http://127.0.0.1:{origin.port}/garbage")
        assert status == 502
        records = rp.stop()
    rec = _record(records, "/garbage")
    assert "origin sent an invalid response" in rec["error"]


def test_a_status_code_outside_100_599_is_a_bad_gateway(certs: CertFiles, tmp_path: Path) -> None:
    with answering_origin(b"HTTP/1.1 904 Library Error\r\nContent-Length: 2\r\n\r\nno") \
            as origin, running_proxy(certs, tmp_path) as rp:
        status, _ = _status_then_normal(rp, f"http://127.0.0.1:{origin.port}/904")
        assert status == 502
        records = rp.stop()
    assert _record(records, "/904")["error"] == (
        "origin sent an invalid response: status 904 is outside 100-599")


def test_a_head_request_gets_the_proxys_error_without_a_body(certs: CertFiles,
                                                              tmp_path: Path) -> None:
    # RFC 9110 §9.3.2: the answer to HEAD has a GET's header fields and no content. The
    # proxy's own error answers used to send their text anyway, which h11 refuses for
    # HEAD, and the exchange was dropped with nothing sent.
    with answering_origin(b"THIS IS NOT HTTP\r\n\r\n") as origin, \
            running_proxy(certs, tmp_path) as rp:
        r = curl(rp, "-I", "-o", "-", "-w", "%{http_code}\n",
                 f"http://127.0.0.1:{origin.port}/head", "-o", "-", "-w", "%{http_code}\n",
                 f"{rp.origin}/after")
        assert r.returncode == 0, r
        assert r.stdout.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), r.stdout
        assert b"Content-Length: " in r.stdout
        assert r.stdout.split(b"\r\n\r\n", 1)[1].startswith(b"502\n"), r.stdout
        assert r.stdout.endswith(b"200\n"), r.stdout  # the connection carried on
        records = rp.stop()
    rec = _record(records, "/head")
    assert rec["response"]["status"] == 502 and rec["response"]["body"]["size"] == 0


def test_origin_dies_mid_body_client_sees_abort(certs: CertFiles, tmp_path: Path) -> None:
    dies = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000
    with answering_origin(dies) as origin, running_proxy(certs, tmp_path) as rp:
        r = curl(rp, f"http://127.0.0.1:{origin.port}/dies")
        # curl: "transfer closed with N bytes remaining" — not a complete response.
        assert r.returncode != 0, r.stderr
        assert len(r.stdout) < 100000
        # Python's ssl agrees: the body is short of the declared length.
        import urllib3
        ctx = client_context(certs.ca_pem)
        pm = urllib3.ProxyManager(rp.url, proxy_ssl_context=ctx, ssl_context=ctx)
        with pytest.raises(urllib3.exceptions.ProtocolError):
            pm.request("GET", f"http://127.0.0.1:{origin.port}/dies-too", retries=False)
        r = curl(rp, f"{rp.origin}/after")
        assert r.returncode == 0 and b'"/after"' in r.stdout
        records = rp.stop()
    rec = _record(records, "/dies")
    assert rec["response"]["status"] == 200
    assert "mid-body" in rec["error"]
    assert rec["response"]["body"]["size"] == 1000


def test_oversized_request_header_431(certs: CertFiles, tmp_path: Path) -> None:
    with running_proxy(certs, tmp_path, max_header_bytes=16 * 1024) as rp:
        r = curl(rp, "-i", "-H", "X-Big: " + "a" * 20000, f"{rp.origin}/big")
        assert r.stdout.startswith(b"HTTP/1.1 431 ")
        assert b"header block larger than 16384 bytes" in r.stdout
        r = curl(rp, f"{rp.origin}/after")
        assert r.returncode == 0 and b'"/after"' in r.stdout
        records = rp.stop()
    (rec,) = [r for r in records if r["type"] == "exchange" and r["response"]["status"] == 431]
    assert "header block" in rec["error"]


@pytest.mark.parametrize("target, why", [
    (b"/origin-form", b"origin-form request target"),
    (b"ftp://127.0.0.1/file", b"unsupported scheme 'ftp'"),
    (b"http://:80/nohost", b"no host"),
    (b"http://127.0.0.1:99999/", b"bad port"),
    # Names the resolver cannot encode (it raised UnicodeError from inside the connect).
    (b"http://127.0.0..1/", b"'127.0.0..1' is not a host name"),
    (b"http://" + b"a" * 64 + b".test/", b"is not a host name"),
])
def test_bad_request_targets_400(certs: CertFiles, tmp_path: Path, target: bytes, why: bytes) -> None:
    with running_proxy(certs, tmp_path) as rp:
        answer = raw_exchange(rp, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        assert why in answer
        r = curl(rp, f"{rp.origin}/after")
        assert r.returncode == 0 and b'"/after"' in r.stdout
        records = rp.stop()
    rec = [r for r in records if r["type"] == "exchange"][0]
    assert rec["response"]["status"] == 400
    assert why.decode() in rec["error"]


def test_malformed_http_400(certs: CertFiles, tmp_path: Path) -> None:
    with running_proxy(certs, tmp_path) as rp:
        answer = raw_exchange(rp, b"THIS IS NOT A REQUEST LINE\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        # h11's complaint quotes the bytes, not the Python object that held them.
        assert b"malformed request: illegal request line: b'THIS IS NOT A REQUEST LINE'" in answer
        assert b"bytearray" not in answer
        records = rp.stop()
    (rec,) = [r for r in records if r["type"] == "exchange"]
    assert rec["response"]["status"] == 400


def test_plain_http_on_the_tls_port_gets_an_http_answer(certs: CertFiles, tmp_path: Path) -> None:
    # curl --proxy http://... speaks HTTP where TLS is expected. A TLS alert reached it as
    # garbage ("Received HTTP/0.9 when not allowed"); an HTTP 400 says what to change.
    with running_proxy(certs, tmp_path) as rp:
        r = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", "--proxy",
                            f"http://127.0.0.1:{rp.port}", f"{rp.origin}/plain"],
                           capture_output=True, timeout=20)
        assert r.returncode == 0, r.stderr
        head, _, body = r.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"Connection: close" in head
        assert b"this port speaks TLS" in body and b"https://HOST:PORT" in body
        # A TLS client is not affected.
        assert curl(rp, "-o", "/dev/null", "-w", "%{http_code}", f"{rp.origin}/tls").stdout \
            == b"200"
        records = rp.stop()
    failed = [r for r in records if r["type"] == "connection" and r["error"]]
    assert [r["error"] for r in failed] == [
        f"handshake failed: plain HTTP request on the TLS port ('GET {rp.origin}/plain "
        "HTTP/1.1'); answered 400"]


def test_an_unknown_transfer_coding_is_501(certs: CertFiles, tmp_path: Path) -> None:
    # RFC 9112 §6.1: a server that does not understand a request's transfer coding
    # SHOULD answer 501; the body cannot be framed, so the connection closes.
    with running_proxy(certs, tmp_path) as rp:
        answer = raw_exchange(rp, f"POST {rp.origin}/gz HTTP/1.1\r\nHost: x\r\n"
                                  "Transfer-Encoding: gzip, chunked\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 501 Not Implemented\r\n"), answer
        assert b"Connection: close" in answer
        assert b"not implemented: Only Transfer-Encoding: chunked is supported" in answer
        records = rp.stop()
    (rec,) = [r for r in records if r["type"] == "exchange"]
    assert rec["response"]["status"] == 501
    assert rp.origin_connections() == 0


def test_user_info_in_a_url_is_refused_and_not_logged(certs: CertFiles, tmp_path: Path) -> None:
    with running_proxy(certs, tmp_path) as rp:
        answer = raw_exchange(rp, f"GET http://alice:s3cret@127.0.0.1:{rp.origin_port}/x "
                                  "HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 400 ") and b"user info" in answer, answer
        answer = raw_exchange(rp, b"CONNECT bob:hunter2@127.0.0.1:443 HTTP/1.1\r\n"
                                  b"Host: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        rp.stop()
    text = rp.log_path.read_text()
    assert "s3cret" not in text and "hunter2" not in text and "alice" not in text
    urls = [r["request"]["url"] for r in read_log(rp.log_path) if r["type"] == "exchange"]
    assert urls == [f"http://[redacted]@127.0.0.1:{rp.origin_port}/x",
                    "[redacted]@127.0.0.1:443"]


def test_bad_tls_gets_an_alert_and_a_connection_record(certs: CertFiles, tmp_path: Path) -> None:
    with running_proxy(certs, tmp_path) as rp:
        ctx = ssl.create_default_context(cafile=str(certs.ca_pem))
        ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")  # no suite in common
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", rp.port), timeout=10) as raw, \
                pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
            ctx.wrap_socket(raw, server_hostname="localhost")
        r = curl(rp, f"{rp.origin}/after")
        assert r.returncode == 0
        records = rp.stop()
    failed = [r for r in records if r["type"] == "connection" and r["error"]]
    assert len(failed) == 1 and failed[0]["tls"] is None
    assert "handshake failed" in failed[0]["error"] and "handshake_failure" in failed[0]["error"]
    # The record still shows what the client offered before the handshake failed.
    (hello,) = failed[0]["handshake"]
    assert hello["step"] == "Client Hello" and hello["sender"] == "client"
    assert "0xc02f" in json.dumps(hello["detail"]) or \
        "ECDHE_RSA_WITH_AES_128_GCM_SHA256" in json.dumps(hello["detail"])


def test_client_not_allowed_is_refused(certs: CertFiles, tmp_path: Path) -> None:
    from proxy.config import parse_networks
    with running_proxy(certs, tmp_path, allowed_clients=parse_networks(["10.0.0.0/8"])) as rp:
        r = curl(rp, f"{rp.origin}/nope")
        assert r.returncode != 0
        records = rp.stop()
    (rec,) = records
    assert rec["type"] == "connection" and "not allowed" in rec["error"]
    assert json.dumps(rec)  # a plain JSON record


def test_upload_to_a_closed_port_still_gets_its_502(certs: CertFiles, tmp_path: Path,
                                                   refused_port: int) -> None:
    port = refused_port
    body = tmp_path / "body.bin"
    body.write_bytes(b"u" * 300_000)  # unread by anyone: the proxy drops it, then answers
    with running_proxy(certs, tmp_path) as rp:
        for _ in range(3):
            r = curl(rp, "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", f"@{body}",
                     f"http://127.0.0.1:{port}/upload")
            assert r.stdout == b"502", (r.stdout, r.stderr)


def test_stale_pooled_origin_connection_is_retried_once(certs: CertFiles, tmp_path: Path) -> None:
    """An origin that closes a kept-alive connection when the next request arrives (its
    keep-alive timeout racing the request): a bodiless request is retried on a new one."""
    def once_per_connection(conn: socket.socket) -> None:
        read_request_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        read_request_head(conn)  # the next request on this connection...
        conn.close()             # ...is dropped without an answer

    origin = FakeOrigin(once_per_connection)
    try:
        with running_proxy(certs, tmp_path) as rp:
            for _ in range(3):
                r = curl(rp, f"http://127.0.0.1:{origin.port}/again")
                assert r.returncode == 0 and r.stdout == b"first", r
            assert rp.pool.opened == 3  # each retry needed a fresh connection
            records = rp.stop()
    finally:
        origin.close()
    assert [r["response"]["status"] for r in records if r["type"] == "exchange"] == [200] * 3


def test_client_dying_mid_upload_or_sending_a_bad_body(certs: CertFiles, tmp_path: Path,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    ctx = client_context(certs.ca_pem)
    with running_proxy(certs, tmp_path) as rp:
        with socket.create_connection(("127.0.0.1", rp.port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(f"POST {rp.origin}/cut HTTP/1.1\r\nHost: x\r\n"
                        "Content-Length: 100000\r\n\r\n".encode() + b"x" * 1000)
        answer = raw_exchange(rp, f"POST {rp.origin}/badchunk HTTP/1.1\r\nHost: x\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\nZZZ\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 400 ") and b"malformed request body" in answer
        assert curl(rp, f"{rp.origin}/after").returncode == 0
        records = rp.stop()
    cut = _record(records, "/cut")
    assert "client" in cut["error"] and cut["request"]["body"]["size"] == 1000
    assert _record(records, "/badchunk")["response"]["status"] == 400
    assert "Traceback" not in capfd.readouterr().err


def test_a_refused_request_whose_body_then_turns_out_malformed(
        certs: CertFiles, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # The request is refused on its head (400: not an absolute URL) and its body read and
    # dropped before the answer; that body's chunk framing is broken. The client still
    # gets the refusal, the exchange is logged, and nothing escapes as a traceback.
    with running_proxy(certs, tmp_path) as rp:
        answer = raw_exchange(rp, b"POST /relative HTTP/1.1\r\nHost: x\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n-\r\n")
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        assert b"origin-form request target" in answer, answer
        assert curl(rp, f"{rp.origin}/after").returncode == 0
        records = rp.stop()
    rec = _record(records, "/relative")
    assert rec["response"]["status"] == 400
    assert "origin-form request target" in rec["error"]
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("failure", ["flood of empty records", "forged record"])
def test_a_tls_failure_between_requests_is_logged(certs: CertFiles, tmp_path: Path,
                                                  failure: str) -> None:
    # After the handshake, while the proxy waits for a request, the client's TLS goes
    # wrong. The proxy answers with its fatal alert and closes, and the log says why in
    # an exchange record without a request (as for a request too malformed to parse).
    import tls_wire as wire
    from conftest import drive_client

    from handshake import ClientConfig, ClientConnection, HandshakeComplete

    key_log: list[str] = []
    client = ClientConnection(ClientConfig.from_ca_file(certs.ca_pem, "localhost",
                                                        keylog=key_log.append))
    with running_proxy(certs, tmp_path) as rp:
        with socket.create_connection(("127.0.0.1", rp.port), timeout=10) as sock:
            client.start_handshake()
            drive_client(client, sock, lambda events: any(
                isinstance(e, HandshakeComplete) for e in events))
            session = client.session
            assert session is not None
            # Our client never sends these, so they are sealed by hand with its keys.
            block = wire.prf("sha256", bytes.fromhex(key_log[0].split()[2]), b"key expansion",
                             session.server_random + session.client_random, 40)
            keys = wire.GCMState(block[:16], block[32:36])
            keys.seq = 1  # after the client's Finished
            if failure == "flood of empty records":
                sock.sendall(b"".join(keys.seal(wire.APPLICATION_DATA, b"") for _ in range(33)))
            else:
                forged = bytearray(keys.seal(wire.APPLICATION_DATA, b"GET / HTTP/1.1\r\n"))
                forged[-1] ^= 1
                sock.sendall(bytes(forged))
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        (alert,) = wire.parse_records(answer)
        assert alert.content_type == wire.ALERT  # sealed: its level and description are not read here
        records = rp.stop()
    (exchange,) = [r for r in records if r["type"] == "exchange"]
    assert exchange["request"]["method"] is None and exchange["response"] is None
    expected = ("more than 32 records in a row carried no data" if failure.startswith("flood")
                else "record failed to authenticate (alert: bad_record_mac)")
    assert exchange["error"].startswith("TLS failure: "), exchange["error"]
    assert expected in exchange["error"], exchange["error"]


def test_origin_that_stops_reading_an_upload_gets_504(certs: CertFiles, tmp_path: Path) -> None:
    # DESIGN §5, every wait has a timeout: writing a request body to an origin that no
    # longer reads it is bounded by --origin-timeout, like waiting for its answer.
    stop = threading.Event()

    def stops_reading(conn: socket.socket) -> None:
        read_request_head(conn)
        stop.wait(30)  # never reads the body: the proxy's writes back up

    origin = FakeOrigin(stops_reading)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(bytes(32 * 1024 * 1024))
    try:
        with running_proxy(certs, tmp_path, origin_timeout=1.0) as rp:
            r = curl(rp, "-T", str(upload), "-o", "/dev/null", "-w", "%{http_code}",
                     f"http://127.0.0.1:{origin.port}/sink", timeout=20)
            (rec,) = rp.exchanges("/sink")
    finally:
        stop.set()
        origin.close()
    assert rec["response"]["status"] == 504, (rec, r)
    assert rec["error"] == "origin stopped reading the request body for 1s"
    assert 0 < rec["request"]["body"]["size"] < upload.stat().st_size


def test_client_that_stops_reading_the_response_is_cut_off(certs: CertFiles,
                                                           tmp_path: Path) -> None:
    # The download's back-pressure waits on the client; one that stops reading must not
    # hold its connection (and an origin connection) forever: --idle-timeout bounds it.
    with running_proxy(certs, tmp_path, idle_timeout=1.0) as rp:
        with socket.create_connection(("127.0.0.1", rp.port), timeout=10) as raw, \
                client_context(certs.ca_pem).wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(f"GET {rp.origin}/bytes/2000000000 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            (rec,) = rp.exchanges("/bytes/2000000000")  # waits while the client reads nothing
        assert curl(rp, f"{rp.origin}/after").returncode == 0
    assert rec["error"] == "client stopped reading the response for 1s"
    assert rec["response"]["status"] == 200
    assert 0 < rec["response"]["body"]["size"] < 2_000_000_000


def test_exchanges_cut_off_by_shutdown_are_logged(certs: CertFiles, tmp_path: Path) -> None:
    # A download still running when the grace period ends is cut off: the client must see
    # a truncation (no close_notify after a partial body) and the log must still show it.
    with running_proxy(certs, tmp_path) as rp:
        slow = subprocess.Popen(
            ["curl", "-sS", "--proxy", rp.url, "--proxy-cacert", str(certs.ca_pem),
             "-o", "/dev/null", f"{rp.origin}/slow/1000?seconds=20"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            rp.wait_for(lambda r: r["type"] == "connection")
            time.sleep(0.5)  # the response head is out, the body is trickling
            records = rp.stop()  # shutdown with a 2 s grace period
            _, err = slow.communicate(timeout=20)
        finally:
            slow.kill()
    assert slow.returncode != 0, err  # curl: transfer closed with bytes remaining
    rec = _record(records, "/slow/1000?seconds=20")
    assert rec["error"] == "cut off: the proxy shut down before the exchange finished"
    assert rec["response"]["status"] == 200
    assert rec["response"]["body"]["size"] < 1000


def test_bytes_an_origin_sends_after_its_response_never_reach_the_next_client(
        certs: CertFiles, tmp_path: Path) -> None:
    # An origin that sends more than the response it declared (a second response hidden
    # after the first one's Content-Length): those bytes sit in the pooled connection's
    # parser, and reusing it would hand them to the next client as its answer.
    def extra_bytes(conn: socket.socket) -> None:
        read_request_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSECRET")
        while read_request_head(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")

    origin = FakeOrigin(extra_bytes)
    try:
        with running_proxy(certs, tmp_path) as rp:
            bodies = [curl(rp, f"http://127.0.0.1:{origin.port}/c{i}").stdout for i in range(2)]
            opened = rp.pool.opened
    finally:
        origin.close()
    assert bodies == [b"first", b"first"]  # never SECRET: a fresh connection each time
    assert opened == 2


def test_content_length_with_transfer_encoding_is_refused_and_closed(
        certs: CertFiles, tmp_path: Path) -> None:
    # Request smuggling: we read the chunked body, an origin that believes Content-Length
    # reads the rest ("GET /smuggled ...") as its next request. RFC 9112 §6.3: remove
    # Content-Length or reject, and close the connection either way.
    with running_proxy(certs, tmp_path) as rp:
        smuggled = f"GET {rp.origin}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        answer = raw_exchange(rp, f"POST {rp.origin}/both HTTP/1.1\r\nHost: x\r\n"
                                  "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "0\r\n\r\n".encode() + smuggled.encode())
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 "), answer
        assert b"\r\nConnection: close" in head
        assert b"Content-Length and Transfer-Encoding" in body
        assert b"/smuggled" not in answer  # the connection ended after the 400
        assert rp.origin_connections() == 0
        records = rp.stop()
    assert [r["response"]["status"] for r in records if r["type"] == "exchange"] == [400]


@pytest.mark.parametrize("framing, body", [
    ("Content-Length: 5", "hello"),
    ("Transfer-Encoding: chunked", "5\r\nhello\r\n0\r\n\r\n"),
])
def test_connection_naming_a_framing_header_does_not_strip_it(
        certs: CertFiles, tmp_path: Path, framing: str, body: str) -> None:
    # Connection may name hop-by-hop fields to drop, but Content-Length and
    # Transfer-Encoding frame the body h11 forwards: dropping them sent the origin a
    # bodiless head, then the body failed h11's check and the exchange died unanswered.
    name = framing.split(":")[0].lower()
    with running_proxy(certs, tmp_path) as rp:
        answer = raw_exchange(rp, f"POST {rp.origin}/echo HTTP/1.1\r\nHost: x\r\n"
                                  f"Connection: close, {name}\r\n{framing}\r\n\r\n{body}".encode())
        records = rp.stop()
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nhello"), answer
    (rec,) = [r for r in records if r["type"] == "exchange"]
    assert rec["error"] is None and rec["request"]["body"]["size"] == 5


def test_response_with_content_length_and_transfer_encoding_is_not_pooled(
        certs: CertFiles, tmp_path: Path) -> None:
    # RFC 9112 §6.3: such a response may be a response-splitting attempt; its framing
    # is in doubt, so the connection must not carry another client's request.
    def both(conn: socket.socket) -> None:
        while read_request_head(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 60\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n")

    origin = FakeOrigin(both)
    try:
        with running_proxy(certs, tmp_path) as rp:
            r = curl(rp, "-i", f"http://127.0.0.1:{origin.port}/a")
            assert r.stdout.endswith(b"\r\n\r\nfirst") and b"Content-Length" not in r.stdout
            assert curl(rp, f"http://127.0.0.1:{origin.port}/b").stdout == b"first"
            assert rp.pool.opened == 2
    finally:
        origin.close()


def test_a_non_idempotent_request_is_not_retried(certs: CertFiles, tmp_path: Path) -> None:
    # RFC 9110 §9.2.2: a proxy MUST NOT automatically retry non-idempotent requests. The
    # origin may have acted on a POST before it dropped the connection without answering.
    seen: list[bytes] = []

    def answers_once(conn: socket.socket) -> None:
        seen.append(read_request_head(conn).split(b" ", 1)[0])
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        head = read_request_head(conn)
        seen.append(head.split(b" ", 1)[0])
        conn.close()  # acted on it (maybe), never answered

    origin = FakeOrigin(answers_once)
    try:
        with running_proxy(certs, tmp_path) as rp:
            url = f"http://127.0.0.1:{origin.port}"
            assert curl(rp, f"{url}/warm").stdout == b"first"  # leaves a pooled connection
            r = curl(rp, "-X", "POST", "-o", "/dev/null", "-w", "%{http_code}", f"{url}/act")
            time.sleep(0.2)
    finally:
        origin.close()
    assert r.stdout == b"502"
    assert seen.count(b"POST") == 1, seen


def test_informational_responses_from_the_origin_are_forwarded(certs: CertFiles,
                                                               tmp_path: Path) -> None:
    # RFC 9110 §15.2: a proxy MUST forward 1xx responses unless it asked for them itself
    # (our own 100 Continue), and never to an HTTP/1.0 client.
    def early_hints(conn: socket.socket) -> None:
        read_request_head(conn)
        conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n"
                     b"Connection: X-Hop\r\nX-Hop: 1\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        conn.close()

    origin = FakeOrigin(early_hints)
    try:
        with running_proxy(certs, tmp_path) as rp:
            url = f"http://127.0.0.1:{origin.port}/hints"
            answer = raw_exchange(rp, f"GET {url} HTTP/1.1\r\nHost: x\r\n"
                                      "Connection: close\r\n\r\n".encode())
            old = raw_exchange(rp, f"GET {url} HTTP/1.0\r\n\r\n".encode())
    finally:
        origin.close()
    hints, _, final = answer.partition(b"\r\n\r\n")
    assert hints.startswith(b"HTTP/1.1 103 Early Hints\r\n"), answer
    assert b"\r\nLink: </s.css>; rel=preload" in hints and b"X-Hop" not in hints
    assert final.startswith(b"HTTP/1.1 200 ") and final.endswith(b"\r\n\r\nok"), answer
    assert old.startswith(b"HTTP/1.1 200 ") and b" 103 " not in old, old
