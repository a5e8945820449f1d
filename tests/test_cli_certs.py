"""`handshake-proxy certs`: --days within its bounds, and an existing CA is never replaced
unless --force says so (clients that trust it would stop trusting the proxy)."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from proxy.certs import MAX_DAYS
from proxy.cli import MAX_CERT_DAYS

REPO = Path(__file__).parent.parent
FILES = ("ca.pem", "cert.pem", "key.pem")


def certs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "certs", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in FILES}


@pytest.mark.parametrize("days", ["0", "-1", "100000000", "36501", "ten", "1e3"])
def test_days_out_of_bounds_is_refused_and_makes_nothing(tmp_path: Path, days: str) -> None:
    out = tmp_path / "pki"
    r = certs("--out", str(out), f"--days={days}")
    assert r.returncode == 2, r
    assert "--days" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_the_bound_is_the_documented_one() -> None:
    assert MAX_DAYS == MAX_CERT_DAYS == 36500
    assert "1 to 36500" in certs("--help").stdout


def test_one_day_is_a_day(tmp_path: Path) -> None:
    r = certs("--out", str(tmp_path), "--days", "1")
    assert r.returncode == 0, r.stderr
    leaf = x509.load_pem_x509_certificates((tmp_path / "cert.pem").read_bytes())[0]
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime.total_seconds() == 25 * 3600  # an hour of clock skew before now, a day after


def test_existing_files_are_kept_unless_force(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    assert certs("--out", str(out)).returncode == 0
    before = snapshot(out)

    r = certs("--out", str(out))
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"handshake-proxy: error: --out {str(out)!r} already holds "
                           "ca.pem, cert.pem, key.pem")
    assert "--force" in line
    assert snapshot(out) == before

    # One file of the three is enough to refuse: it would be replaced too.
    other = tmp_path / "other"
    other.mkdir()
    (other / "key.pem").write_text("someone's key\n")
    r = certs("--out", str(other))
    assert r.returncode == 2 and "already holds key.pem;" in r.stderr
    assert sorted(p.name for p in other.iterdir()) == ["key.pem"]

    (out / "key.pem").chmod(0o644)
    r = certs("--out", str(out), "--force")
    assert r.returncode == 0, r.stderr
    after = snapshot(out)
    assert all(after[name] != before[name] for name in FILES)
    # Replacing a key file that others could read leaves it readable by its owner only.
    assert stat.S_IMODE((out / "key.pem").stat().st_mode) == 0o600


def test_out_naming_a_file_is_not_a_directory(tmp_path: Path) -> None:
    existing = tmp_path / "pki"
    existing.write_text("a file\n")
    r = certs("--out", str(existing))
    assert r.returncode == 2
    assert r.stderr.strip() == f"handshake-proxy: error: --out {str(existing)!r} is not a directory"
    r = certs("--out", str(existing / "sub"))
    assert r.returncode == 2
    assert r.stderr.strip().startswith(f"handshake-proxy: error: --out {str(existing / 'sub')!r}:")
    assert "Errno" not in r.stderr and existing.read_text() == "a file\n"
