"""`log stats`: counts by status, host and suite; handshake and exchange latency percentiles."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from test_log_helpers import SUITE_128, connection, exchange, sample_records, write_log

from proxy import logcli, logstats


def run_stats(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="handshake-proxy")
    logcli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["log", "stats", *argv])
    return int(args.func(args))


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert logstats.percentile(values, 50) == 50.0
    assert logstats.percentile(values, 99) == 99.0
    assert logstats.percentile([7.0], 99) == 7.0
    assert logstats.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0


def test_counts_and_percentiles_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write_log(tmp_path / "t.jsonl", [*sample_records(), connection("c000003", failed=True)])
    assert run_stats(str(log), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["exchanges"] == 5
    assert data["connections"] == 3 and data["failed_handshakes"] == 1
    assert data["by_status"] == {"200": 2, "404": 1, "502": 1, "error": 1}
    assert data["by_host"] == {"127.0.0.1": 2, "origin.example": 2, "api.origin.example": 1}
    assert data["by_suite"] == {"TLS_RSA_WITH_AES_128_GCM_SHA256": 1,
                                "TLS_RSA_WITH_AES_256_GCM_SHA384": 1}
    assert data["handshake_ms"] == {"count": 2, "min": 5.0, "p50": 5.0, "p90": 6.0, "p95": 6.0,
                                    "p99": 6.0, "max": 6.0}
    # total_ms of the five exchanges: 12.5, 30, 2, 1, 5000
    assert data["exchange_ms"]["p50"] == 12.5
    assert data["exchange_ms"]["max"] == 5000.0 and data["exchange_ms"]["min"] == 1.0


def test_filters_apply_to_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write_log(tmp_path / "t.jsonl", sample_records())
    assert run_stats(str(log), "--json", "--host", ".origin.example", "--status", "4xx,5xx") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["exchanges"] == 2 and data["connections"] == 1
    assert data["by_suite"] == {"TLS_RSA_WITH_AES_256_GCM_SHA384": 1}


def test_readable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [connection(f"c{i:06d}", n=i) for i in range(1, 21)]
    records += [exchange(f"c{i:06d}", total_ms=float(i), n=i) for i in range(1, 21)]
    log = write_log(tmp_path / "t.jsonl", records)
    assert run_stats(str(log)) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "exchanges 20  connections 20  failed handshakes 0"
    assert f"{SUITE_128} (AES128-GCM-SHA256)       20" in out
    assert "exchange latency (ms, n=20): min 1.0  p50 10.0  p90 18.0  p95 19.0  p99 20.0  max 20.0" in out
    assert "handshake latency (ms, n=20): min 5.0  p50 14.0" in out


def test_empty_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write_log(tmp_path / "t.jsonl", [])
    assert run_stats(str(log)) == 0
    assert "exchange latency: no data" in capsys.readouterr().out
    assert run_stats(str(tmp_path / "missing")) == 1
