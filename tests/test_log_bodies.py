"""`serve --bodies DIR` storage: streamed to a temp file while hashing, renamed to its SHA-256."""

from __future__ import annotations

import gc
import hashlib
import os
from pathlib import Path

import pytest

from proxy.bodystore import PARTIAL_PREFIX, BodyStore


def partials(directory: Path) -> list[str]:
    return [n for n in os.listdir(directory) if n.startswith(PARTIAL_PREFIX)]


def test_streamed_to_a_temp_file_then_renamed_to_its_digest(tmp_path: Path) -> None:
    store = BodyStore(tmp_path / "bodies")
    writer = store.open()
    sha = hashlib.sha256()
    chunk = os.urandom(64 * 1024)
    for i in range(64):  # 4 MiB in 64 KiB chunks
        piece = chunk[i:] + chunk[:i]
        writer.write(piece)
        sha.update(piece)
        # On disk as it passes, under a temporary name that no reader mistakes for a body.
        assert len(partials(store.directory)) == 1
    assert os.path.getsize(store.directory / partials(store.directory)[0]) <= 64 * 64 * 1024
    stored = writer.finish()
    assert stored.sha256 == sha.hexdigest()
    assert stored.path == store.directory / sha.hexdigest()
    assert stored.size == 64 * 64 * 1024
    assert hashlib.sha256(stored.path.read_bytes()).hexdigest() == stored.sha256
    assert partials(store.directory) == []
    assert writer.finish() is stored  # idempotent
    with pytest.raises(ValueError):
        writer.write(b"more")


def test_same_body_twice_is_one_file(tmp_path: Path) -> None:
    store = BodyStore(tmp_path)
    with store.open() as a:
        a.write(b"same")
    with store.open() as b:
        b.write(b"same")
    assert a.result == b.result
    assert sorted(os.listdir(tmp_path)) == [hashlib.sha256(b"same").hexdigest()]


def test_abort_and_exceptions_leave_nothing(tmp_path: Path) -> None:
    store = BodyStore(tmp_path)
    writer = store.open()
    writer.write(b"half")
    writer.abort()
    with pytest.raises(RuntimeError), store.open() as w:
        w.write(b"x")
        raise RuntimeError("client went away")
    dropped = store.open()
    dropped.write(b"never finished")
    del dropped
    gc.collect()
    assert os.listdir(tmp_path) == []


def test_storing_tap_adds_the_file_to_the_log_record(tmp_path: Path) -> None:
    store = BodyStore(tmp_path / "b")
    tap = store.tap(preview_limit=16)
    data = b"A" * 10_000 + b"Z"
    for i in range(0, len(data), 1000):
        tap.update(data[i:i + 1000])
    record = tap.to_record()
    assert record["size"] == len(data) and record["truncated"]
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["file"] == str(store.directory / record["sha256"])
    assert Path(record["file"]).read_bytes() == data
    empty = store.tap(preview_limit=16)
    assert empty.to_record()["file"] is None
    assert len(os.listdir(store.directory)) == 1
