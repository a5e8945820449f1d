"""The log readers' ordinary mistakes get one line in the style of a missing file
(`handshake-proxy log show: nope.jsonl: no such file`, exit 1), never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_log_helpers import child_env, cli, sample_records, write_log

REPO = Path(__file__).parent.parent


def log_command(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli("log", *argv), capture_output=True, text=True, timeout=30,
                          env=child_env(), cwd=REPO)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["show", "stats", "har"])
def test_a_missing_log_and_a_directory_are_named_as_such(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "nope.jsonl"
    assert one_line(log_command(command, str(missing))) == \
        f"handshake-proxy log {command}: {missing}: no such file"
    # The same branch handles PermissionError (an unreadable log), which a test run
    # as root cannot provoke: a directory stands in for it.
    assert one_line(log_command(command, str(tmp_path))) == \
        f"handshake-proxy log {command}: {tmp_path}: is a directory"


def test_show_follow_waits_for_a_missing_log_but_not_for_a_directory(tmp_path: Path) -> None:
    assert one_line(log_command("show", "--follow", str(tmp_path))) == \
        f"handshake-proxy log show: {tmp_path}: is a directory"


@pytest.mark.parametrize("where", ["missing directory", "directory", "file in a file"])
def test_har_output_that_cannot_be_written(tmp_path: Path, where: str) -> None:
    log = write_log(tmp_path / "traffic.jsonl", sample_records())
    (tmp_path / "a-file").write_text("x\n")
    output, reason = {
        "missing directory": (tmp_path / "nonexist" / "x.har", "no such directory"),
        "directory": (tmp_path, "is a directory"),
        "file in a file": (tmp_path / "a-file" / "x.har", "not a directory"),
    }[where]
    line = one_line(log_command("har", str(log), "-o", str(output)))
    assert line == f"handshake-proxy log har: {output}: cannot write: {reason}"
    # Nothing half-written is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "traffic.jsonl"]


def test_har_output_still_written_whole(tmp_path: Path) -> None:
    log = write_log(tmp_path / "traffic.jsonl", sample_records())
    out = tmp_path / "t.har"
    r = log_command("har", str(log), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("wrote ") and out.read_text().startswith("{")
    assert not (tmp_path / "t.har.part").exists()


def test_show_full_with_an_unreadable_stored_body_falls_back_to_the_preview(
        tmp_path: Path) -> None:
    records = sample_records()
    upload = next(r for r in records if r["type"] == "exchange"
                  and r["request"]["url"].endswith("/upload"))
    stored = tmp_path / "stored-body"
    stored.write_bytes(b"name=value")
    stored.chmod(0)
    upload["request"]["body"]["file"] = str(stored)
    log = write_log(tmp_path / "traffic.jsonl", records)
    argv = cli("log", "show", "--full", str(log))
    if os.geteuid() == 0:
        # Root reads any file: drop the capabilities that let it, for this one command.
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop file-read capabilities")
        argv = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                "--bounding-set=-dac_override,-dac_read_search", *argv]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                            env=child_env(), cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"[stored body {stored} cannot be read (Permission denied); " \
           "the logged preview follows]" in result.stdout
    assert "name=value" in result.stdout  # the preview, from the log itself


# Records that are JSON objects but not of the documented shape (hand-edited, or damaged
# in a way that still parses). Each broke one reader with a traceback (a fuzzer found them).
MISSHAPEN = {
    "request headers not pairs": (("request", "headers"), [["Host"]],
                                  "record.request.headers[0] is not a [name, value] pair"),
    "tls a string": (("tls",), "TLSv1.2", "record.tls is not an object"),
    "body size text": (("response", "body", "size"), "12", "record.response.body.size is not"),
    "status null": (("response", "status"), None, "record.response.status is not an integer"),
    "time not a time": (("time",), "yesterday", "record.time is not an ISO 8601 time"),
    "timings a list": (("timings",), [], "record.timings is not an object"),
}


@pytest.mark.parametrize("case", MISSHAPEN)
@pytest.mark.parametrize("command", ["show", "stats", "har"])
def test_a_record_of_the_wrong_shape_is_one_reported_line(tmp_path: Path, command: str,
                                                          case: str) -> None:
    path, value, message = MISSHAPEN[case]
    records = sample_records()
    damaged = records[1]  # line 2, the first exchange
    assert damaged["type"] == "exchange"
    holder = damaged
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    log = write_log(tmp_path / "traffic.jsonl", records)
    extra = ("-o", str(tmp_path / "out.har")) if command == "har" else ()
    result = log_command(command, str(log), *extra)
    assert result.returncode == 0, result
    assert "Traceback" not in result.stderr
    # (har also says on stderr how many entries it wrote.)
    (line,) = [line for line in result.stderr.splitlines() if "corrupt" in line]
    assert line.startswith(f"{log}:2: corrupt record: {message}"), line
    assert line.endswith("; line skipped")
    if command == "show":  # the other four exchanges are still shown
        assert len(result.stdout.splitlines()) == 4


def test_mutated_records_never_break_a_reader(tmp_path: Path) -> None:
    # Mutation fuzzing: a few fields of one record replaced by values of other types, or
    # removed. Every reader either uses the record or reports it as corrupt; none raises.
    import argparse
    import contextlib
    import copy
    import io
    import random

    from proxy import logcli

    def fields(value: object, path: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
        if path:
            yield path
        items = value.items() if isinstance(value, dict) else (
            enumerate(value) if isinstance(value, list) else ())
        for key, item in items:
            yield from fields(item, (*path, key))

    values: list[object] = [None, 0, -1, 2.5, "", "x", "2026-13-45", [], {}, [1], {"a": 1},
                            True, 10**30, ["a", "b"], [["a", "b"]]]
    rng = random.Random("log records")
    log = tmp_path / "traffic.jsonl"
    for _ in range(60):
        records = sample_records()
        record = rng.choice(records)
        for _ in range(rng.randint(1, 3)):
            *parents, last = rng.choice(list(fields(record)))
            holder: Any = record
            for key in parents:
                holder = holder[key]
            if isinstance(holder, dict) and rng.random() < 0.3:
                del holder[last]
            else:
                holder[last] = copy.deepcopy(rng.choice(values))
        write_log(log, records)
        for argv in (["show", str(log)], ["show", str(log), "--full"],
                     ["show", str(log), "--handshakes"], ["stats", str(log), "--json"],
                     ["har", str(log), "-o", str(tmp_path / "out.har")]):
            parser = argparse.ArgumentParser(prog="handshake-proxy")
            logcli.add_parser(parser.add_subparsers())
            args = parser.parse_args(["log", *argv])
            err = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                assert args.func(args) == 0, (argv, record)
            problems = [line for line in err.getvalue().splitlines() if not line.startswith("wrote ")]
            assert all(": corrupt record: " in line for line in problems), problems
