"""50 concurrent clients × 20 requests with random bodies (issue 3, point 5): every
response byte-exact, every exchange in the log exactly once."""

from __future__ import annotations

import collections
import hashlib
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import urllib3
from conftest import CertFiles
from proxy_helpers import client_context, running_proxy

CLIENTS = 50
REQUESTS = 20


def test_50_clients_x_20_requests(certs: CertFiles, tmp_path: Path) -> None:
    with running_proxy(certs, tmp_path) as rp:
        ctx = client_context(certs.ca_pem)

        def one_client(c: int) -> list[tuple[str, str]]:
            rng = random.Random(c)
            # One client = one keep-alive TLS connection to the proxy.
            pm = urllib3.ProxyManager(rp.url, proxy_ssl_context=ctx, ssl_context=ctx,
                                      num_pools=1, maxsize=1)
            sent = []
            try:
                for r in range(REQUESTS):
                    body = rng.randbytes(rng.choice((0, 1, 100, 5000, 40_000, 200_000)))
                    url = f"{rp.origin}/echo?client={c}&req={r}"
                    resp = pm.request("POST", url, body=body, retries=False)
                    assert resp.status == 200
                    assert resp.data == body, f"client {c} request {r}: body differs"
                    sent.append((url, hashlib.sha256(body).hexdigest()))
            finally:
                pm.clear()
            return sent

        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(one_client, range(CLIENTS)))
        records = rp.stop()

    expected = {url: sha for sent in results for url, sha in sent}
    assert len(expected) == CLIENTS * REQUESTS
    exchanges = [r for r in records if r["type"] == "exchange"]
    seen = collections.Counter(r["request"]["url"] for r in exchanges)
    assert set(seen) == set(expected)
    assert all(n == 1 for n in seen.values()), "an exchange was logged twice"
    for r in exchanges:
        assert r["error"] is None
        assert r["request"]["body"]["sha256"] == expected[r["request"]["url"]]
        assert r["response"]["body"]["sha256"] == expected[r["request"]["url"]]
    conns = [r for r in records if r["type"] == "connection"]
    assert len(conns) == CLIENTS
    per_conn = collections.Counter(r["conn"] for r in exchanges)
    assert sorted(per_conn.values()) == [REQUESTS] * CLIENTS
