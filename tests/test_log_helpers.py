"""Traffic-log fixtures for the log readers' tests, in proxy/traffic_log.py's documented format.

Until a test runs the real proxy, the readers are tested on records built here;
`test_fixture_records_follow_the_documented_format` keeps them honest.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import proxy.traffic_log

Record = dict[str, Any]

SUITE_128 = "TLS_RSA_WITH_AES_128_GCM_SHA256"
SUITE_256 = "TLS_RSA_WITH_AES_256_GCM_SHA384"


def tls_facts(suite: str = SUITE_128, sni: str | None = "localhost", n: int = 1) -> Record:
    return {"version": "TLSv1.2", "cipher_suite": suite, "sni": sni, "alpn": "http/1.1",
            "extended_master_secret": True, "client_random": f"{n:064x}",
            "server_random": f"{n + 1000:064x}", "handshake_ms": 4.0 + n}


def body(data: bytes = b"", file: str | None = None) -> Record:
    try:
        preview, encoding = data[:4096].decode("utf-8"), "text"
    except UnicodeDecodeError:
        import base64
        preview, encoding = base64.b64encode(data[:4096]).decode(), "base64"
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "preview": preview,
            "preview_encoding": encoding, "truncated": len(data) > 4096, "file": file}


def connection(conn: str = "c000001", time: str = "2026-11-28T15:30:00.100000+00:00",
               client: str = "127.0.0.1:50412", suite: str = SUITE_128, n: int = 1,
               failed: bool = False) -> Record:
    steps = [
        {"step": "Client Hello", "sender": "client", "messages": ["ClientHello"], "at_ms": 0.2,
         "detail": {"offered_suites": [SUITE_128, SUITE_256], "sni": "localhost",
                    "alpn": ["http/1.1"], "extended_master_secret": True}},
        {"step": "Server Hello + certificate", "sender": "server",
         "messages": ["ServerHello", "Certificate", "ServerHelloDone"], "at_ms": 0.9,
         "detail": {"suite": suite, "certificate": "CN=localhost"}},
        {"step": "Client agrees", "sender": "client",
         "messages": ["ClientKeyExchange", "ChangeCipherSpec", "Finished"], "at_ms": 3.1,
         "detail": {"encrypted_pre_master_secret_bytes": 256}},
        {"step": "Server agrees", "sender": "server", "messages": ["ChangeCipherSpec", "Finished"],
         "at_ms": 3.9, "detail": {}},
        {"step": "Encrypted communication", "sender": "both", "messages": ["application_data"],
         "at_ms": 4.0, "detail": {"cipher": "AES-GCM"}},
    ]
    if failed:
        return {"type": "connection", "time": time, "conn": conn, "client": client, "tls": None,
                "handshake": steps[:1],
                "error": "handshake failed: no shared cipher suite (alert: handshake_failure)"}
    return {"type": "connection", "time": time, "conn": conn, "client": client,
            "tls": tls_facts(suite, n=n), "handshake": steps, "error": None}


def exchange(conn: str = "c000001", seq: int = 1, time: str = "2026-11-28T15:30:00.200000+00:00",
             method: str = "GET", url: str = "http://127.0.0.1:8080/path?q=1", status: int | None = 200,
             req_body: bytes = b"", resp_body: bytes = b'{"ok": true}\n', suite: str = SUITE_128,
             client: str = "127.0.0.1:50412", total_ms: float = 12.5, error: str | None = None,
             tunnel: Record | None = None, n: int = 1) -> Record:
    host = re.sub(r"^\w+://([^/]+).*$", r"\1", url)
    response = None if status is None else {
        "status": status, "reason": {200: "OK", 404: "Not Found", 502: "Bad Gateway"}.get(status, ""),
        "version": "HTTP/1.1",
        "headers": [["Content-Type", "application/json"], ["Content-Length", str(len(resp_body))],
                    ["Set-Cookie", "session=abc; Path=/"]],
        "body": body(resp_body)}
    return {"type": "exchange", "time": time, "conn": conn, "client": client, "seq": seq,
            "tls": tls_facts(suite, n=n),
            "request": {"method": method, "url": url, "version": "HTTP/1.1",
                        "headers": [["Host", host], ["User-Agent", "curl/8.0"],
                                    ["Proxy-Authorization", "[redacted]"], ["Cookie", "a=1; b=2"]],
                        "body": body(req_body)},
            "response": response, "tunnel": tunnel,
            "timings": {"total_ms": total_ms, "origin_connect_ms": 1.0, "wait_ms": 3.0,
                        "receive_ms": 5.0},
            "error": error}


def sample_records() -> list[Record]:
    """Two connections, five exchanges: hosts, methods, statuses and suites differ."""
    return [
        connection("c000001", n=1),
        exchange("c000001", 1, "2026-11-28T15:30:00.200000+00:00", "GET", "http://127.0.0.1:8080/"),
        exchange("c000001", 2, "2026-11-28T15:30:01.000000+00:00", "POST",
                 "http://127.0.0.1:8080/upload", 200, req_body=b"name=value", total_ms=30.0),
        connection("c000002", "2026-11-28T15:40:00.000000+00:00", "127.0.0.1:50500", SUITE_256, n=2),
        exchange("c000002", 1, "2026-11-28T15:40:00.100000+00:00", "GET",
                 "http://origin.example:8080/missing", 404, client="127.0.0.1:50500",
                 suite=SUITE_256, n=2, total_ms=2.0),
        exchange("c000002", 2, "2026-11-28T15:40:01.000000+00:00", "GET",
                 "http://api.origin.example:8080/fail", 502, client="127.0.0.1:50500",
                 suite=SUITE_256, n=2, error="origin refused the connection (127.0.0.1:9)",
                 total_ms=1.0),
        exchange("c000002", 3, "2026-11-28T15:40:02.000000+00:00", "DELETE",
                 "http://origin.example:8080/slow", None, client="127.0.0.1:50500",
                 suite=SUITE_256, n=2, error="origin did not answer in time", total_ms=5000.0),
    ]


def write_log(path: Path, records: list[Record], tail: bytes = b"") -> Path:
    with open(path, "wb") as f:
        for record in records:
            f.write(json.dumps(record).encode() + b"\n")
        f.write(tail)
    return path


# --- real runs: `handshake-proxy serve` and `origin` as processes ----------------------------

REPO = Path(__file__).resolve().parents[1]
STARTUP_S = 30.0  # a bound on waiting for a process to say it listens, not a timed assertion


def cli(*argv: str) -> list[str]:
    """The handshake-proxy command, run from this checkout with this interpreter."""
    return [sys.executable, "-m", "proxy", *argv]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDSHAKE_PROXY_")}
    env.pop("SSLKEYLOGFILE", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Proc:
    """A child process whose output lines are collected by a thread, to wait on without hanging."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.argv = argv
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, text=True, env=env or child_env(),
                                      cwd=cwd)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern: str, bound_s: float = STARTUP_S) -> re.Match[str]:
        while True:
            try:
                line = self.lines.get(timeout=bound_s)
            except queue.Empty:
                raise AssertionError(f"{self.argv}: no line matching {pattern!r}; "
                                     f"output: {self.seen}") from None
            if line is None:
                raise AssertionError(f"{self.argv} exited ({self.popen.wait()}) before "
                                     f"{pattern!r}; output: {self.seen}")
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                return self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait()


@dataclass
class RealRun:
    """Certificates, the echo origin and the proxy, each a `handshake-proxy` process."""

    tmp: Path
    origin: Proc
    proxy: Proc
    origin_port: int
    port: int

    @property
    def log(self) -> Path:
        return self.tmp / "traffic.jsonl"

    @property
    def keylog(self) -> Path:
        return self.tmp / "keylog.txt"

    @property
    def bodies(self) -> Path:
        return self.tmp / "bodies"

    @property
    def certs(self) -> Path:
        return self.tmp / "certs"

    @property
    def proxy_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def origin_url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.origin_port}{path}"

    def curl(self, url: str, *options: str) -> subprocess.CompletedProcess[str]:
        curl = shutil.which("curl")
        assert curl, "curl is not installed; .ci/run installs it"
        return subprocess.run(
            [curl, "-sS", "--max-time", "30", "--proxy", self.proxy_url,
             "--proxy-cacert", str(self.certs / "ca.pem"), *options, url],
            capture_output=True, text=True, timeout=60, env=child_env())

    def stop(self) -> None:
        """SIGTERM: the proxy finishes and flushes its log, then exits 0."""
        assert self.proxy.stop() == 0, self.proxy.seen
        self.origin.stop()


@contextmanager
def real_run(tmp: Path, *serve_options: str, connect_to_origin: bool = False) -> Iterator[RealRun]:
    """`connect_to_origin`: CONNECT may reach the echo origin's port (default: 443 only)."""
    tmp.mkdir(parents=True, exist_ok=True)
    subprocess.run(cli("certs", "--out", str(tmp / "certs")), check=True, capture_output=True,
                   env=child_env(), timeout=60)
    origin = Proc(cli("origin", "--listen", "127.0.0.1:0"))
    proxy = None
    try:
        origin_port = int(origin.wait_for(r"listening on http://[\d.]+:(\d+)")[1])
        if connect_to_origin:
            serve_options = (*serve_options, "--connect-port", str(origin_port))
        proxy = Proc(cli("serve", "--listen", "127.0.0.1:0", "--cert", str(tmp / "certs/cert.pem"),
                         "--key", str(tmp / "certs/key.pem"), "--traffic-log",
                         str(tmp / "traffic.jsonl"), "--keylog", str(tmp / "keylog.txt"),
                         "--bodies", str(tmp / "bodies"), *serve_options))
        port = int(proxy.wait_for(r"listening on https://[\d.]+:(\d+)")[1])
        yield RealRun(tmp, origin, proxy, origin_port, port)
    finally:
        if proxy is not None:
            proxy.stop(signal.SIGKILL)
        origin.stop(signal.SIGKILL)


def _keys(value: Any) -> set[str]:
    """Every key at every depth, except inside "detail" (free-form by design)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            found.add(key)
            if key != "detail":
                found |= _keys(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _keys(inner)
    return found


def test_fixture_records_follow_the_documented_format() -> None:
    """Every key our fixture records use is one the format docstring names."""
    documented = set(re.findall(r'"(\w+)":', proxy.traffic_log.__doc__ or ""))
    for record in sample_records() + [connection(failed=True)]:
        assert _keys(record) <= documented, _keys(record) - documented
