"""`log stats`: counts by status, host and cipher suite; latency percentiles.

Handshake latency comes from each connection's `tls.handshake_ms` (counted
once per connection), exchange latency from each exchange's
`timings.total_ms`. Percentiles use the nearest-rank method, so every figure
printed is a latency that really happened.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from proxy.logview import (
    Filter,
    Record,
    exchange_host,
    exchange_status,
    log_problem,
    read_records,
    short_suite,
)

__all__ = ["PERCENTILES", "Stats", "collect", "percentile", "run"]

PERCENTILES = (50, 90, 95, 99)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (not empty)."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    summary: dict[str, float | int] = {"count": len(ordered), "min": ordered[0]}
    for p in PERCENTILES:
        summary[f"p{p}"] = percentile(ordered, p)
    summary["max"] = ordered[-1]
    return summary


@dataclass
class Stats:
    exchanges: int = 0
    connections: int = 0
    failed_handshakes: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_host: Counter[str] = field(default_factory=Counter)
    by_suite: Counter[str] = field(default_factory=Counter)  # per connection
    handshake_ms: dict[str, float] = field(default_factory=dict)  # conn -> ms
    exchange_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "exchanges": self.exchanges,
            "connections": self.connections,
            "failed_handshakes": self.failed_handshakes,
            "by_status": dict(self.by_status.most_common()),
            "by_host": dict(self.by_host.most_common()),
            "by_suite": dict(self.by_suite.most_common()),
            "handshake_ms": _summary(list(self.handshake_ms.values())),
            "exchange_ms": _summary(self.exchange_ms),
        }


def collect(records: Iterable[Record], flt: Filter) -> Stats:
    stats = Stats()
    seen_conns: set[str] = set()

    def count_connection(conn: str, tls: object) -> None:
        if conn in seen_conns:
            return
        seen_conns.add(conn)
        stats.connections += 1
        if isinstance(tls, dict):
            stats.by_suite[str(tls.get("cipher_suite"))] += 1
            if isinstance(tls.get("handshake_ms"), (int, float)):
                stats.handshake_ms[conn] = float(tls["handshake_ms"])
        else:
            stats.failed_handshakes += 1

    for record in records:
        kind = record.get("type")
        conn = str(record.get("conn"))
        if kind == "connection":
            # With a host/method/status filter only the connections that carried
            # a matching exchange count; they are counted from those exchanges.
            if not flt.selects_exchanges and flt.matches_connection(record):
                count_connection(conn, record.get("tls"))
        elif kind == "exchange" and flt.matches(record):
            stats.exchanges += 1
            status = exchange_status(record)
            stats.by_status[str(status) if status is not None else "error"] += 1
            stats.by_host[exchange_host(record) or "-"] += 1
            count_connection(conn, record.get("tls"))
            total = (record.get("timings") or {}).get("total_ms")
            if isinstance(total, (int, float)):
                stats.exchange_ms.append(float(total))
    return stats


def _table(title: str, counts: dict[str, int], out: TextIO, label: Any = str) -> None:
    out.write(f"{title}\n")
    if not counts:
        out.write("  -\n")
    width = max((len(label(k)) for k in counts), default=0)
    for key, count in counts.items():
        out.write(f"  {label(key).ljust(width)}  {count:>7}\n")


def _latency(title: str, summary: dict[str, float | int], out: TextIO) -> None:
    if not summary.get("count"):
        out.write(f"{title}: no data\n")
        return
    parts = [f"{k} {v:.1f}" for k, v in summary.items() if k != "count"]
    out.write(f"{title} (ms, n={summary['count']}): " + "  ".join(parts) + "\n")


def render(stats: Stats, out: TextIO) -> None:
    data = stats.as_dict()
    out.write(f"exchanges {stats.exchanges}  connections {stats.connections}  "
              f"failed handshakes {stats.failed_handshakes}\n")
    _table("by status", data["by_status"], out)
    _table("by host", data["by_host"], out)
    _table("by cipher suite (connections)", data["by_suite"], out,
           label=lambda s: f"{s} ({short_suite(s)})")
    _latency("handshake latency", data["handshake_ms"], out)
    _latency("exchange latency", data["exchange_ms"], out)


def run(path: str, flt: Filter, as_json: bool = False, out: TextIO | None = None) -> int:
    """`log stats FILE`: returns the exit code."""
    out = out or sys.stdout
    problem = log_problem(path)
    if problem is not None:
        print(f"handshake-proxy log stats: {path}: {problem}", file=sys.stderr)
        return 1
    stats = collect(read_records(path), flt)
    if as_json:
        out.write(json.dumps(stats.as_dict(), indent=2) + "\n")
    else:
        render(stats, out)
    return 0
