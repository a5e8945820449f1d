"""The log readers on a log written by a real run: `handshake-proxy serve` and `origin`
as processes, curl through the proxy, then `log show`, `log har`, `log stats` on the result."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import hold_refused_port
from haralyzer import HarParser
from test_log_helpers import Proc, RealRun, child_env, cli, real_run

from proxy.logview import read_records

SCHEMA = json.loads((Path(__file__).parent / "data" / "har-schema.json").read_text())
UPLOAD = os.urandom(100_000)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRun]:
    tmp = tmp_path_factory.mktemp("realrun")
    (tmp / "upload.bin").write_bytes(UPLOAD)
    with real_run(tmp, connect_to_origin=True) as r:
        # Two exchanges on one TLS connection (curl keeps it alive between URLs).
        done = r.curl(r.origin_url("/hello?x=1"), r.origin_url("/again"))
        assert done.returncode == 0, done.stderr
        done = r.curl(r.origin_url("/form"), "-d", "name=value")
        assert done.returncode == 0, done.stderr
        done = r.curl(r.origin_url("/upload", host="localhost"), "-X", "PUT",
                      "--data-binary", f"@{tmp / 'upload.bin'}", "-H",
                      "Content-Type: application/octet-stream")
        assert done.returncode == 0, done.stderr
        with hold_refused_port() as dead:
            done = r.curl(f"http://127.0.0.1:{dead}/nothing-here")
        assert "502" in done.stdout or done.returncode == 0, done
        # Requests the proxy refuses with 400, sent raw over Python's ssl (a real TLS peer).
        assert raw_request(r, b"NOT A REQUEST LINE\r\n\r\n").startswith(b"HTTP/1.1 400")
        assert raw_request(r, b"GET /origin-form HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                           ).startswith(b"HTTP/1.1 400")
        # curl -p: CONNECT to the origin's port, then plain HTTP inside the tunnel.
        done = r.curl(r.origin_url("/through-a-tunnel"), "-p")
        assert done.returncode == 0 and "/through-a-tunnel" in done.stdout, done.stderr
        r.stop()
        yield r


def raw_request(run: RealRun, data: bytes) -> bytes:
    context = ssl.create_default_context(cafile=str(run.certs / "ca.pem"))
    context.set_ciphers("AES128-GCM-SHA256:AES256-GCM-SHA384")  # RSA key transport only
    with socket.create_connection(("127.0.0.1", run.port), timeout=30) as sock, \
            context.wrap_socket(sock, server_hostname="localhost") as tls:
        tls.sendall(data)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer:
                break
        return answer


def show(run: RealRun, *options: str) -> list[str]:
    result = subprocess.run(cli("log", "show", str(run.log), *options), capture_output=True,
                            text=True, env=child_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


def test_the_run_logged_every_exchange(run: RealRun) -> None:
    records = list(read_records(run.log))
    exchanges = [r for r in records if r["type"] == "exchange"]
    connections = [r for r in records if r["type"] == "connection"]
    assert len(exchanges) == 8
    assert len(connections) == 7  # the first curl's two URLs share one connection
    assert exchanges[-1]["tunnel"]["bytes_down"] > 0  # the CONNECT tunnel's byte counts


def test_show_one_line_per_exchange(run: RealRun) -> None:
    lines = show(run)
    assert len(lines) == 8
    first = next(line for line in lines if "/hello?x=1" in line)
    assert "GET " + run.origin_url("/hello?x=1") + " 200 " in first
    assert "c000001#" in first and "127.0.0.1:" in first and "AES" in first and " ms " in first
    assert "\x1b[" not in "".join(lines)


@pytest.mark.parametrize(("options", "count"), [
    (("--host", "127.0.0.1"), 5),  # the CONNECT tunnel's host counts
    (("--host", "localhost"), 1),
    (("--host", "0.0.1"), 0),  # no domain-suffix rule for addresses
    (("--host", ".0.0.1"), 0),
    (("--host", "1"), 0),
    (("--host", ".1"), 0),
    (("--method", "PUT"), 1),
    (("--method", "post"), 1),
    (("--method", "CONNECT"), 1),
    (("--status", "5xx"), 1),
    (("--status", "502"), 1),
    (("--status", "400"), 2),
    (("--status", "4xx,5xx"), 3),
    (("--status", "2xx"), 5),
    (("--since", "10m"), 8),
])
def test_show_filters(run: RealRun, options: tuple[str, ...], count: int) -> None:
    assert len(show(run, *options)) == count


def test_show_since_iso_and_conn(run: RealRun) -> None:
    records = [r for r in read_records(run.log) if r["type"] == "exchange"]
    third = dt.datetime.fromisoformat(records[2]["time"])
    assert len(show(run, "--since", third.isoformat())) == 6
    conn = records[0]["conn"]
    lines = show(run, "--conn", conn)
    assert [line.split()[3] for line in lines] == [f"{conn}#1", f"{conn}#2"]


def test_show_full_prints_the_stored_bodies(run: RealRun) -> None:
    out = "\n".join(show(run, "--full", "--method", "POST"))
    assert "    > name=value" in out
    assert "[full body, 10 B" in out
    assert '"path": "/form"' in out  # the echo origin's response, from the stored file
    put = "\n".join(show(run, "--full", "--method", "PUT"))
    assert "[binary body, 97.7 KiB" in put
    stored = run.bodies / hashlib.sha256(UPLOAD).hexdigest()
    assert stored.read_bytes() == UPLOAD


def test_show_handshakes_draws_each_connection(run: RealRun) -> None:
    out = "\n".join(show(run, "--handshakes"))
    assert out.count("1. Client Hello") == 7
    for step in ("2. Server Hello + certificate", "3. Client agrees", "4. Server agrees",
                 "5. Encrypted communication"):
        assert out.count(step) == 7
    assert "ClientKeyExchange" in out


def test_har_from_the_real_run(run: RealRun, tmp_path: Path) -> None:
    out = tmp_path / "run.har"
    result = subprocess.run(cli("log", "har", str(run.log), "-o", str(out), "--bodies",
                                str(run.bodies)), capture_output=True, text=True,
                            env=child_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(out.read_text())
    jsonschema.validate(document, SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    entries = [e for page in HarParser(document).pages for e in page.entries]
    # The request without a request line has no URL to give: left out, and counted.
    assert [e.request.method for e in entries] == ["GET", "GET", "POST", "PUT", "GET", "GET",
                                                   "CONNECT"]
    assert [e.response.status for e in entries] == [200, 200, 200, 200, 502, 400, 200]
    assert document["log"]["_skipped"] == 1
    raw = document["log"]["entries"]
    assert raw[5]["request"]["url"] == "http://127.0.0.1/origin-form"
    assert raw[6]["_tunnel"]["bytes_up"] > 0
    mitmdump = os.environ.get("HANDSHAKE_PROXY_MITMDUMP") or shutil.which("mitmdump")
    if mitmdump:  # the second real reader, where installed (see tests/test_har.py)
        loaded = subprocess.run([mitmdump, "-nr", str(out)], capture_output=True, text=True,
                                timeout=60)
        assert loaded.returncode == 0, loaded.stderr
        assert loaded.stdout.count("<< ") == 7 and "PUT http://localhost:" in loaded.stdout
    assert raw[0]["_tls"]["cipher_suite"].startswith("TLS_RSA_WITH_AES_")
    assert json.loads(raw[2]["response"]["content"]["text"])["path"] == "/form"
    assert raw[3]["request"]["postData"]["_encoding"] == "base64"


def test_stats_from_the_real_run(run: RealRun) -> None:
    result = subprocess.run(cli("log", "stats", str(run.log), "--json"), capture_output=True,
                            text=True, env=child_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["exchanges"] == 8 and data["connections"] == 7
    assert data["by_status"] == {"200": 5, "400": 2, "502": 1}
    assert data["by_host"] == {"127.0.0.1": 5, "-": 2, "localhost": 1}
    assert sum(data["by_suite"].values()) == 7
    assert data["handshake_ms"]["count"] == 7 and data["exchange_ms"]["count"] == 8
    assert data["exchange_ms"]["p50"] <= data["exchange_ms"]["p99"] <= data["exchange_ms"]["max"]


def test_follow_a_live_proxy(tmp_path: Path) -> None:
    """`log show --follow` as a process, tailing the log while a live proxy writes it."""
    with real_run(tmp_path) as r:
        follower = Proc(cli("log", "show", "--follow", str(r.log)))
        try:
            for i in range(1, 4):
                done = r.curl(r.origin_url(f"/live/{i}"), "-o", "/dev/null")
                assert done.returncode == 0, done.stderr
                # Each exchange shows up while the proxy keeps running.
                follower.wait_for(rf"GET http://127\.0\.0\.1:\d+/live/{i} 200 ")
        finally:
            code = follower.stop(signal.SIGINT)
        assert code == 0
        r.stop()


def test_real_log_with_a_corrupt_line_and_a_truncated_tail(run: RealRun, tmp_path: Path) -> None:
    """The real log, damaged as a crash or a concurrent write would: every reader reports the
    corrupt line by number, skips the half-written last record silently, and goes on."""
    lines = run.log.read_bytes().splitlines(keepends=True)
    damaged = tmp_path / "damaged.jsonl"
    last = lines[-1]
    damaged.write_bytes(b"".join(lines[:2]) + b'{"type": "exchange", "conn": "c0\n'
                        + b"".join(lines[2:-1]) + last[: len(last) // 2])
    corrupt_at = 3
    kept = [json.loads(line) for line in lines[:-1]]  # what survives: all but the cut record
    expected_exchanges = sum(1 for r in kept if r["type"] == "exchange")
    without_request_line = sum(1 for r in kept if r["type"] == "exchange"
                               and r["request"]["method"] is None)
    for command, check in (
            (["show"], lambda out: len(out.splitlines()) == expected_exchanges),
            (["stats", "--json"], lambda out: json.loads(out)["exchanges"] == expected_exchanges),
            (["har"], lambda out: len(json.loads(out)["log"]["entries"])
             == expected_exchanges - without_request_line)):
        result = subprocess.run(cli("log", command[0], str(damaged), *command[1:]),
                                capture_output=True, text=True, env=child_env(), timeout=60)
        assert result.returncode == 0, result.stderr
        assert check(result.stdout), (command, result.stdout[:300])
        assert result.stderr.splitlines()[0].startswith(f"{damaged}:{corrupt_at}: corrupt record")
        assert len([e for e in result.stderr.splitlines() if "corrupt" in e]) == 1
