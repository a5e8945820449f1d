"""The log readers on a log written by a real run: `handshake-proxy serve` and `origin`
as processes, curl through the proxy, then `log show`, `log har`, `log stats` on the result."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from haralyzer import HarParser
from test_log_helpers import Proc, RealRun, child_env, cli, real_run

from proxy.logview import read_records

SCHEMA = json.loads((Path(__file__).parent / "data" / "har-schema.json").read_text())
UPLOAD = os.urandom(100_000)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRun]:
    tmp = tmp_path_factory.mktemp("realrun")
    (tmp / "upload.bin").write_bytes(UPLOAD)
    with real_run(tmp) as r:
        # Two exchanges on one TLS connection (curl keeps it alive between URLs).
        done = r.curl(r.origin_url("/hello?x=1"), r.origin_url("/again"))
        assert done.returncode == 0, done.stderr
        done = r.curl(r.origin_url("/form"), "-d", "name=value")
        assert done.returncode == 0, done.stderr
        done = r.curl(r.origin_url("/upload", host="localhost"), "-X", "PUT",
                      "--data-binary", f"@{tmp / 'upload.bin'}", "-H",
                      "Content-Type: application/octet-stream")
        assert done.returncode == 0, done.stderr
        dead = closed_port()
        done = r.curl(f"http://127.0.0.1:{dead}/nothing-here")
        assert "502" in done.stdout or done.returncode == 0, done
        r.stop()
        yield r


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
    assert len(exchanges) == 5
    assert len(connections) == 4  # the first curl's two URLs share one connection


def test_show_one_line_per_exchange(run: RealRun) -> None:
    lines = show(run)
    assert len(lines) == 5
    first = next(line for line in lines if "/hello?x=1" in line)
    assert "GET " + run.origin_url("/hello?x=1") + " 200 " in first
    assert "c000001#" in first and "127.0.0.1:" in first and "AES" in first and " ms " in first
    assert "\x1b[" not in "".join(lines)


@pytest.mark.parametrize(("options", "count"), [
    (("--host", "127.0.0.1"), 4),
    (("--host", "localhost"), 1),
    (("--method", "PUT"), 1),
    (("--method", "post"), 1),
    (("--status", "5xx"), 1),
    (("--status", "502"), 1),
    (("--status", "2xx"), 4),
    (("--since", "10m"), 5),
])
def test_show_filters(run: RealRun, options: tuple[str, ...], count: int) -> None:
    assert len(show(run, *options)) == count


def test_show_since_iso_and_conn(run: RealRun) -> None:
    records = [r for r in read_records(run.log) if r["type"] == "exchange"]
    third = dt.datetime.fromisoformat(records[2]["time"])
    assert len(show(run, "--since", third.isoformat())) == 3
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
    assert out.count("1. Client Hello") == 4
    for step in ("2. Server Hello + certificate", "3. Client agrees", "4. Server agrees",
                 "5. Encrypted communication"):
        assert out.count(step) == 4
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
    assert [e.request.method for e in entries] == ["GET", "GET", "POST", "PUT", "GET"]
    assert [e.response.status for e in entries] == [200, 200, 200, 200, 502]
    raw = document["log"]["entries"]
    assert raw[0]["_tls"]["cipher_suite"].startswith("TLS_RSA_WITH_AES_")
    assert json.loads(raw[2]["response"]["content"]["text"])["path"] == "/form"
    assert raw[3]["request"]["postData"]["_encoding"] == "base64"


def test_stats_from_the_real_run(run: RealRun) -> None:
    result = subprocess.run(cli("log", "stats", str(run.log), "--json"), capture_output=True,
                            text=True, env=child_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["exchanges"] == 5 and data["connections"] == 4
    assert data["by_status"] == {"200": 4, "502": 1}
    assert data["by_host"] == {"127.0.0.1": 4, "localhost": 1}
    assert sum(data["by_suite"].values()) == 4
    assert data["handshake_ms"]["count"] == 4 and data["exchange_ms"]["count"] == 5
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
