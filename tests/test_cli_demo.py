"""The README's first command, `handshake-proxy demo`, in a fresh clone (issue 3, point 8)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parent.parent


def _fresh_clone(tmp_path: Path) -> Path:
    """A clone of the committed tree, so the demo cannot lean on uncommitted files."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        return REPO
    clone = tmp_path / "clone"
    r = subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO}", str(clone)],
                       capture_output=True, text=True, timeout=60)
    return clone if r.returncode == 0 else REPO


def test_demo_in_a_fresh_clone_exits_0_and_prints_the_decrypted_records(tmp_path: Path) -> None:
    clone = _fresh_clone(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(clone))
    env.pop("SSLKEYLOGFILE", None)
    workdir = tmp_path / "elsewhere"  # no set-up: an empty directory
    workdir.mkdir()
    r = subprocess.run([sys.executable, "-m", "proxy", "demo"], capture_output=True, text=True,
                       timeout=120, cwd=workdir, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    out = r.stdout
    for step in ("1. Client Hello", "2. Server Hello + certificate", "3. Client agrees",
                 "4. Server agrees", "5. Encrypted communication"):
        assert out.count(step) == 2  # one ladder per request
    assert out.count("response: HTTP/1.1 200 OK") == 2
    assert '"message": "hello through the handshake"' in out  # the POST echoed back
    log_part = out[out.index("== the decrypted traffic log"):]
    records = []
    depth, start = 0, None
    for i, ch in enumerate(log_part):  # the records are pretty-printed JSON objects
        if ch == "{":
            depth += 1
            start = i if depth == 1 else start
        elif ch == "}":
            depth -= 1
            if depth == 0 and start is not None:
                records.append(json.loads(log_part[start:i + 1]))
    exchanges = [rec for rec in records if rec["type"] == "exchange"]
    assert [e["request"]["method"] for e in exchanges] == ["GET", "POST"]
    assert exchanges[1]["request"]["body"]["preview"] == '{"message": "hello through the handshake"}'
    assert all(e["tls"]["client_random"] for e in exchanges)
    assert len([rec for rec in records if rec["type"] == "connection"]) == 2
    assert out.rstrip().endswith("demo complete")
    assert list(workdir.iterdir()) == []  # nothing left behind
