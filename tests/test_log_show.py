"""`log show`: the one-line view, filters, --full, --handshakes, colour, bad lines, follow mode."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_log_helpers import connection, exchange, sample_records, write_log

from proxy import logcli, logview

# Runs the `log` command without proxy/cli.py, so these tests do not depend on it.
RUNNER = (
    "import argparse, sys; from proxy import logcli; p = argparse.ArgumentParser(prog='handshake-proxy'); "
    "logcli.add_parser(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))"
)


def run_log(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="handshake-proxy")
    logcli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["log", *argv])
    return int(args.func(args))


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return write_log(tmp_path / "traffic.jsonl", sample_records())


def shown(capsys: pytest.CaptureFixture[str], log: Path, *options: str) -> list[str]:
    assert run_log("show", str(log), *options) == 0
    return capsys.readouterr().out.splitlines()


def test_one_line_per_exchange_with_every_field(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    lines = shown(capsys, log)
    assert len(lines) == 5
    first = lines[0]
    for part in ("2026-11-28 15:30:00.200", "127.0.0.1:50412", "c000001#1", "GET",
                 "http://127.0.0.1:8080/", " 200 ", "0 B / 13 B", "12.5 ms", "AES128-GCM-SHA256"):
        assert part in first, (part, first)
    assert "\x1b[" not in "".join(lines)  # not a terminal: plain
    assert "ERR" in lines[4] and "origin did not answer in time" in lines[4]
    assert "AES256-GCM-SHA384" in lines[2]


@pytest.mark.parametrize(("options", "expected_urls"), [
    (("--host", "127.0.0.1"), ["/", "/upload"]),
    (("--host", "origin.example"), ["/missing", "/slow"]),
    (("--host", ".origin.example"), ["/missing", "/fail", "/slow"]),
    (("--method", "post"), ["/upload"]),
    (("--status", "5xx"), ["/fail"]),
    (("--status", "404"), ["/missing"]),
    (("--status", "2xx,4xx"), ["/", "/upload", "/missing"]),
    (("--status", "error"), ["/slow"]),
    (("--since", "2026-11-28T15:35:00Z"), ["/missing", "/fail", "/slow"]),
    (("--since", "2026-11-28T15:40:00.500"), ["/fail", "/slow"]),
    (("--conn", "c000001"), ["/", "/upload"]),
    (("--conn", "c000002", "--method", "GET", "--status", "4xx"), ["/missing"]),
])
def test_filters(capsys: pytest.CaptureFixture[str], log: Path, options: tuple[str, ...],
                 expected_urls: list[str]) -> None:
    lines = shown(capsys, log, *options)
    paths = [line.split()[5].split(":8080", 1)[1] for line in lines]
    assert paths == expected_urls


def ip_and_name_records() -> list[dict[str, object]]:
    urls = ["http://127.0.0.1:8080/v4", "http://10.0.0.1:8080/ten", "http://[::1]:8080/v6",
            "http://example.com:8080/apex", "http://api.example.com:8080/api"]
    records: list[dict[str, object]] = [connection("c000001")]
    records += [exchange("c000001", i, url=url) for i, url in enumerate(urls, 1)]
    # CONNECT to an IPv6 origin: the tunnel's host, as forward.py records it (no brackets).
    records.append(exchange("c000001", 6, method="CONNECT", url="[0:0::1]:443", status=200,
                            tunnel={"host": "0:0::1", "port": 443, "bytes_up": 1,
                                    "bytes_down": 1}))
    return records


@pytest.mark.parametrize(("host", "expected"), [
    # The domain-suffix rule is for names; an address matches only itself.
    ("0.0.1", []),
    (".0.0.1", []),
    ("1", []),
    (".1", []),
    ("0.1", []),
    ("127.0.0.1", ["/v4"]),
    ("10.0.0.1", ["/ten"]),
    ("::1", ["/v6", "CONNECT"]),          # compared as addresses, not as text
    ("[::1]", ["/v6", "CONNECT"]),
    ("0:0:0:0:0:0:0:1", ["/v6", "CONNECT"]),
    (":1", []),
    (".example.com", ["/apex", "/api"]),       # names keep the suffix rule
    ("example.com", ["/apex"]),
    ("EXAMPLE.com", ["/apex"]),
])
def test_host_filter_treats_ip_addresses_as_exact(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], host: str, expected: list[str]) -> None:
    path = write_log(tmp_path / "t.jsonl", ip_and_name_records())
    lines = shown(capsys, path, "--host", host)
    got = [line.split()[4] if line.split()[4] == "CONNECT" else line.split()[5].split(":8080")[1]
           for line in lines]
    assert got == expected


def test_since_relative_is_counted_back_from_now(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    old = exchange(time=(now - dt.timedelta(hours=2)).isoformat(), url="http://h:1/old")
    new = exchange(time=(now - dt.timedelta(minutes=1)).isoformat(), url="http://h:1/new")
    path = write_log(tmp_path / "t.jsonl", [old, new])
    assert [line.split()[5] for line in shown(capsys, path, "--since", "10m")] == ["http://h:1/new"]
    assert len(shown(capsys, path, "--since", "3h")) == 2
    fixed = dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone.utc)
    assert logview.parse_since("90s", fixed) == fixed - dt.timedelta(seconds=90)
    assert logview.parse_since("1d", fixed) == fixed - dt.timedelta(days=1)


def test_bad_filter_values_exit_with_one_line(log: Path) -> None:
    with pytest.raises(SystemExit, match="--status"):
        run_log("show", str(log), "--status", "5x")
    with pytest.raises(SystemExit, match="--since"):
        run_log("show", str(log), "--since", "yesterday")


def test_truncated_last_line_is_skipped_silently(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    whole = json.dumps(exchange(url="http://h:1/last")).encode()
    path = write_log(tmp_path / "t.jsonl", sample_records(), tail=whole[: len(whole) // 2])
    lines = shown(capsys, path)
    assert len(lines) == 5
    assert capsys.readouterr().err == ""


def test_complete_last_record_without_newline_is_kept(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # A proxy killed between the record and its newline: the record is whole, keep it.
    tail = json.dumps(exchange(url="http://h:1/last")).encode()
    path = write_log(tmp_path / "t.jsonl", sample_records(), tail=tail)
    lines = shown(capsys, path)
    assert lines[-1].split()[5] == "http://h:1/last"


def test_corrupt_line_is_reported_with_its_number_and_skipped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = sample_records()
    path = tmp_path / "t.jsonl"
    with open(path, "wb") as f:
        for i, record in enumerate(records):
            f.write(json.dumps(record).encode() + b"\n")
            if i == 1:
                f.write(b'{"type": "exchange", "conn": \n')  # line 3: cut by a crash
            if i == 3:
                f.write(b"[1, 2, 3]\n")                       # line 6: JSON but not a record
                f.write(b"\xff\xfe garbage\n")                # line 7: not even UTF-8
    assert run_log("show", str(path)) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 5  # every good exchange still shown
    errors = captured.err.splitlines()
    assert len(errors) == 3
    assert errors[0].startswith(f"{path}:3: corrupt record")
    assert errors[1].startswith(f"{path}:6: corrupt record")
    assert errors[2].startswith(f"{path}:7: corrupt record")
    assert all(line.endswith("line skipped") for line in errors)


def test_missing_file_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_log("show", str(tmp_path / "nope.jsonl")) == 1
    assert "no such file" in capsys.readouterr().err


def test_full_prints_headers_bodies_tls_and_timings(
        capsys: pytest.CaptureFixture[str], log: Path) -> None:
    out = "\n".join(shown(capsys, log, "--full", "--method", "POST"))
    assert "    > POST http://127.0.0.1:8080/upload HTTP/1.1" in out
    assert "    > Proxy-Authorization: [redacted]" in out
    assert "    > name=value" in out
    assert "    < HTTP/1.1 200 OK" in out
    assert "    < Content-Type: application/json" in out
    assert '    < {"ok": true}' in out
    assert "client_random: " + f"{1:064x}" in out
    assert "timings: total 30.0 ms" in out


def test_full_prints_a_stored_body_from_the_bodies_dir(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib
    data = "line 1 é\n".encode() + b"x" * 10000 + b"\nEND\n"
    digest = hashlib.sha256(data).hexdigest()
    bodies = tmp_path / "bodies"
    bodies.mkdir()
    (bodies / digest).write_bytes(data)
    record = exchange(resp_body=data)
    path = write_log(tmp_path / "t.jsonl", [record])
    out = "\n".join(shown(capsys, path, "--full", "--bodies", str(bodies)))
    assert "[full body, 9.8 KiB" in out and "    < END" in out and "line 1 é" in out
    # The path recorded in the log works without --bodies.
    record["response"]["body"]["file"] = str(bodies / digest)
    path = write_log(tmp_path / "t.jsonl", [record])
    assert "    < END" in "\n".join(shown(capsys, path, "--full"))


def test_handshakes_draw_the_seed_ladder(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    out = "\n".join(shown(capsys, log, "--handshakes"))
    assert out.count("connection c0000") == 2
    steps = ["1. Client Hello", "2. Server Hello + certificate", "3. Client agrees",
             "4. Server agrees", "5. Encrypted communication"]
    positions = [out.index(step) for step in steps]
    assert positions == sorted(positions)
    assert "ClientKeyExchange, ChangeCipherSpec, Finished" in out
    assert "--->|" in out and "|<---" in out and "|<====" in out and "===>|" in out
    # The ladder comes before its connection's exchanges.
    assert out.index("connection c000002") < out.index("c000002#1")


def test_handshake_ladder_only_for_connections_with_matching_exchanges(
        capsys: pytest.CaptureFixture[str], log: Path) -> None:
    out = "\n".join(shown(capsys, log, "--handshakes", "--status", "404"))
    assert "connection c000002" in out and "connection c000001" not in out


def test_json_prints_the_matching_records_themselves(capsys: pytest.CaptureFixture[str],
                                                     log: Path) -> None:
    stored = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    exchanges = [r for r in stored if r["type"] == "exchange"]
    printed = [json.loads(line) for line in shown(capsys, log, "--json")]
    assert printed == exchanges  # whole, as written, filters aside
    printed = [json.loads(line) for line in shown(capsys, log, "--json", "--status", "404")]
    assert [r["response"]["status"] for r in printed] == [404]
    # With --handshakes, each shown exchange's connection record comes first, once.
    printed = [json.loads(line) for line in shown(capsys, log, "--json", "--handshakes",
                                                  "--status", "404")]
    assert [(r["type"], r["conn"]) for r in printed] == [("connection", "c000002"),
                                                         ("exchange", "c000002")]


def test_json_and_full_do_not_go_together(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_log("show", str(log), "--json", "--full")
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_failed_handshake_is_drawn_with_its_error(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = write_log(tmp_path / "t.jsonl", [connection("c000009", failed=True)])
    out = "\n".join(shown(capsys, path, "--handshakes"))
    assert "1. Client Hello" in out and "2. Server Hello" not in out
    assert "handshake failed: no shared cipher suite (alert: handshake_failure)" in out


def test_colour_with_always_and_never(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    assert any("\x1b[31m502" in line for line in shown(capsys, log, "--color", "always"))
    assert not any("\x1b[" in line for line in shown(capsys, log, "--color", "never"))


def _run_on_a_tty(argv: list[str], env: dict[str, str]) -> str:
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, *argv], stdout=follower,
                            stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=30) == 0
    return b"".join(chunks).decode()


def test_colour_on_a_terminal_unless_no_color(log: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    assert "\x1b[32m200" in _run_on_a_tty(["log", "show", str(log)], env)
    assert "\x1b[" not in _run_on_a_tty(["log", "show", str(log)], {**env, "NO_COLOR": "1"})
    piped = subprocess.run([sys.executable, "-c", RUNNER, "log", "show", str(log)], env=env,
                           capture_output=True, text=True, check=True)
    assert "\x1b[" not in piped.stdout and len(piped.stdout.splitlines()) == 5


def test_follow_reads_what_a_writer_appends(tmp_path: Path) -> None:
    """A writer appends (sometimes half a line at a time) while the reader follows."""
    path = tmp_path / "growing.jsonl"
    path.write_bytes(b"")
    records = [exchange(seq=i, url=f"http://h:1/{i}") for i in range(1, 41)]
    writer_done = threading.Event()
    read_some = threading.Semaphore(0)

    def writer() -> None:
        with open(path, "ab") as f:
            for i, record in enumerate(records):
                line = json.dumps(record).encode() + b"\n"
                if i % 5 == 0:  # a record split across two writes: the reader must wait
                    f.write(line[:20])
                    f.flush()
                    f.write(line[20:])
                else:
                    f.write(line)
                f.flush()
                if i % 10 == 9:
                    read_some.acquire(timeout=10)  # let the reader catch up now and then
        writer_done.set()

    out = io.StringIO()

    class Counting(io.StringIO):
        def write(self, s: str) -> int:
            if s.count("\n") and "#" in s:
                read_some.release()
            return out.write(s)

    thread = threading.Thread(target=writer)
    thread.start()
    code = logview.show(str(path), logview.Filter(), logview.ShowOptions(), follow=True,
                        out=Counting(), stop=writer_done.is_set)
    thread.join()
    assert code == 0
    urls = [line.split()[5] for line in out.getvalue().splitlines()]
    assert urls == [f"http://h:1/{i}" for i in range(1, 41)]


def test_follow_waits_for_the_file_and_skips_a_corrupt_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "later.jsonl"
    started = threading.Event()
    done = threading.Event()

    def writer() -> None:
        started.wait(10)
        write_log(path, [exchange(url="http://h:1/a")], tail=b"not json\n" + json.dumps(
            exchange(url="http://h:1/b")).encode() + b"\n")
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()

    def stop() -> bool:
        started.set()  # the reader has looked once and found no file
        return done.is_set()

    out = io.StringIO()
    logview.show(str(path), logview.Filter(), logview.ShowOptions(), follow=True, out=out, stop=stop)
    thread.join()
    assert [line.split()[5] for line in out.getvalue().splitlines()] == ["http://h:1/a", "http://h:1/b"]
    assert f"{path}:2: corrupt record" in capsys.readouterr().err


def test_a_reader_that_stops_early_is_not_an_error(tmp_path: Path) -> None:
    """`log show FILE | head -1`: the closed pipe ends the command quietly with 0."""
    path = write_log(tmp_path / "big.jsonl", [exchange(seq=i) for i in range(20_000)])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for command in (["log", "show", str(path)], ["log", "har", str(path)]):
        proc = subprocess.Popen([sys.executable, "-c", RUNNER, *command], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.readline()
        proc.stdout.close()
        assert proc.wait(timeout=60) == 0
        assert proc.stderr.read() == b""


def test_follow_goes_on_after_the_log_is_rotated_or_truncated(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    write_log(path, [exchange(url="http://h:1/before")])
    seen: list[str] = []
    step = iter(["rotate", "truncate", "append", "done"])
    state = {"now": ""}

    class Out(io.StringIO):
        def write(self, s: str) -> int:
            seen.extend(line.split()[5] for line in s.splitlines() if "#" in line)
            return len(s)

    def stop() -> bool:
        # Called only when the reader has caught up: the next change happens then.
        state["now"] = next(step)
        if state["now"] == "rotate":
            path.rename(tmp_path / "traffic.jsonl.1")
            write_log(path, [exchange(url="http://h:1/after-rotation")])
        elif state["now"] == "truncate":
            # In place (copytruncate). Like tail -F, the reader notices a truncation
            # by the file being shorter than what it has read, so it looks in between.
            write_log(path, [])
        elif state["now"] == "append":
            with open(path, "ab") as f:
                f.write(json.dumps(exchange(url="http://h:1/after-truncation")).encode() + b"\n")
        return state["now"] == "done"

    logview.show(str(path), logview.Filter(), logview.ShowOptions(), follow=True, out=Out(),
                 stop=stop)
    assert seen == ["http://h:1/before", "http://h:1/after-rotation", "http://h:1/after-truncation"]


def test_an_ipv6_tunnel_target_is_bracketed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_log(tmp_path / "t.jsonl", ip_and_name_records())
    connect_line = next(line for line in shown(capsys, path) if " CONNECT " in line)
    assert " [0:0::1]:443 " in connect_line


def test_line_separators_inside_a_record_do_not_split_it(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # The log keeps non-ASCII text unescaped, so U+2028, U+2029 and U+0085 (a header byte
    # 0x85 read as latin-1) appear raw inside a record; str.splitlines() would cut the
    # record there. The readers split on newlines only.
    from proxy.traffic_log import TrafficLog

    record = exchange(url="http://127.0.0.1:8080/separators")
    record["request"]["headers"].append(["X-Odd", "a\x85b\u2028c\u2029d"])
    path = tmp_path / "traffic.jsonl"
    log_file = TrafficLog(str(path))
    log_file.write(record)
    log_file.close()
    raw = path.read_text(encoding="utf-8")
    assert "\u2028" in raw and len(raw.splitlines()) > 1  # the hazard is real
    (read,) = logview.read_records(path)
    assert read["request"]["headers"][-1] == ["X-Odd", "a\x85b\u2028c\u2029d"]
    lines = shown(capsys, path)
    assert len(lines) == 1 and "/separators" in lines[0], lines
