"""Wireshark's view: capture the proxy's port with tshark while curl goes through the proxy,
then decrypt the capture two ways — with the proxy's key log, and with its RSA private key
alone (RSA key transport: the key decrypts the pre-master secret) — and find the HTTP inside."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import hold_refused_port
from test_log_helpers import Proc, RealRun, real_run

from proxy.logview import read_records


def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.fail("tshark is not installed; .ci/run installs it (Debian package tshark)")
    return path


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RealRun, Path]]:
    tmp = tmp_path_factory.mktemp("tshark")
    cap = tmp / "proxy.pcapng"
    with real_run(tmp) as run, hold_refused_port() as probe:
        # Only the client↔proxy leg: the proxy→origin leg is plain HTTP and must not
        # be what the decryption test finds.
        sniffer = Proc([tshark(), "-i", "lo", "-f", f"tcp port {run.port} or tcp port {probe}",
                        "-w", str(cap)])
        try:
            sniffer.wait_for(r"Capturing on")
            knock_until_written(cap, probe)
            for args in ((run.origin_url("/wire/get?q=1"),),
                         (run.origin_url("/wire/post"), "-d", "payload=seen-by-wireshark")):
                done = run.curl(*args)
                assert done.returncode == 0, done.stderr
            knock_until_written(cap, probe)
        finally:
            sniffer.stop(signal.SIGINT)
        run.stop()
        yield run, cap


def knock_until_written(cap: Path, probe: int) -> None:
    """Return once the capture file holds a packet sent now.

    tshark says "Capturing on" before it really captures, and on Linux the kernel hands
    packets over in blocks, so what was just sent may not be in the file yet (and is lost
    if tshark stops first). Knock on a closed port, which the capture filter also matches,
    until one of these knocks shows in the file: every packet before it is there too.
    """
    knocks: set[int] = set()
    for _ in range(300):  # a bound on tries, not a timing assertion
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", 0))
            knocks.add(int(s.getsockname()[1]))
            s.connect(("127.0.0.1", probe))
        if cap.exists() and cap.stat().st_size:
            # A file still being written may end mid-packet: tshark then complains, and
            # still prints what it read.
            found = subprocess.run(
                [tshark(), "-r", str(cap), "-Y", f"tcp.dstport == {probe}", "-T", "fields",
                 "-e", "tcp.srcport"], capture_output=True, text=True, timeout=60).stdout
            if knocks & {int(p) for p in found.split()}:
                return
        time.sleep(0.1)
    raise AssertionError("tshark never wrote the packets sent to it")


def read(cap: Path, port: int, *options: str) -> list[str]:
    """`tshark -r CAP -d tcp.port==PORT,tls ... -Y http` as fields: method, URI, status, body."""
    result = subprocess.run(
        [tshark(), "-r", str(cap), "-d", f"tcp.port=={port},tls", *options, "-Y", "http",
         "-T", "fields", "-E", "separator=|", "-e", "http.request.method",
         "-e", "http.request.uri", "-e", "http.response.code", "-e", "http.file_data"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line.strip()]


def check_http(lines: list[str], run: RealRun) -> None:
    requests = [line.split("|") for line in lines if line.split("|")[0]]
    responses = [line.split("|") for line in lines if line.split("|")[2]]
    assert [(r[0], r[1]) for r in requests] == [
        ("GET", run.origin_url("/wire/get?q=1")), ("POST", run.origin_url("/wire/post"))]
    assert "payload=seen-by-wireshark" in requests[1][3] or \
        "7061796c6f61643d" in requests[1][3]  # older tshark prints file_data as hex
    assert [r[2] for r in responses] == ["200", "200"]


def test_capture_is_opaque_without_keys(capture: tuple[RealRun, Path]) -> None:
    run, cap = capture
    assert read(cap, run.port) == []


def test_decrypt_with_the_key_log(capture: tuple[RealRun, Path]) -> None:
    run, cap = capture
    check_http(read(cap, run.port, "-o", f"tls.keylog_file:{run.keylog}"), run)


def test_decrypt_with_the_private_key_alone(capture: tuple[RealRun, Path]) -> None:
    run, cap = capture
    key = run.certs / "key.pem"
    check_http(read(cap, run.port, "-o", f'uat:rsa_keys:"{key}",""'), run)


def test_capture_and_traffic_log_share_the_client_random(capture: tuple[RealRun, Path]) -> None:
    """A log record is matched to its packets by the ClientHello's random."""
    run, cap = capture
    result = subprocess.run(
        [tshark(), "-r", str(cap), "-d", f"tcp.port=={run.port},tls", "-Y",
         "tls.handshake.type == 1", "-T", "fields", "-e", "tls.handshake.random"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    randoms = {line.replace(":", "").strip() for line in result.stdout.splitlines() if line.strip()}
    logged = {r["tls"]["client_random"] for r in read_records(run.log) if r["type"] == "connection"}
    handshakes = {r["tls"]["client_random"] for r in read_records(run.log)
                  if r["type"] == "connection" and r["tls"]}
    assert len(handshakes) == 2 and randoms == handshakes == logged
