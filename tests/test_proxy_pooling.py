"""httpx and urllib3 through the proxy (issue 3, point 2): several requests on one TLS
connection (one handshake, shown by the log) through one pooled origin connection."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from datetime import datetime
from pathlib import Path

import h11
import httpx
import pytest
import urllib3
from conftest import CertFiles
from proxy_helpers import client_context, running_proxy


def test_httpx_keep_alive_one_handshake_one_origin_connection(certs: CertFiles, tmp_path: Path) -> None:
    with running_proxy(certs, tmp_path) as rp:
        proxy = httpx.Proxy(rp.url, ssl_context=client_context(certs.ca_pem))
        bodies = [os.urandom(n) for n in (0, 1, 1000, 70_000, 300_000)]
        with httpx.Client(proxy=proxy) as client:
            for i, body in enumerate(bodies):
                r = client.post(f"{rp.origin}/echo?i={i}", content=body)
                assert r.status_code == 200
                assert r.content == body
                assert r.headers["via"] == "1.1 handshake-proxy"
            r = client.get(f"{rp.origin}/bytes/5000")
            assert r.status_code == 200 and len(r.content) == 5000
        assert rp.origin_connections() == 1
        assert rp.pool.opened == 1
        records = rp.stop()
    conns = [r for r in records if r["type"] == "connection"]
    exchanges = [r for r in records if r["type"] == "exchange"]
    assert len(conns) == 1, "one TLS connection, one handshake"
    assert len(exchanges) == len(bodies) + 1
    assert {e["conn"] for e in exchanges} == {conns[0]["conn"]}
    assert [e["seq"] for e in exchanges] == list(range(1, len(exchanges) + 1))
    for e, body in zip(exchanges, bodies, strict=False):
        assert e["request"]["body"]["sha256"] == hashlib.sha256(body).hexdigest()
        assert e["response"]["body"]["size"] == len(body)
    # Only the first exchange paid for the origin connection.
    assert exchanges[0]["timings"]["origin_connect_ms"] is not None
    assert all(e["timings"]["origin_connect_ms"] is None for e in exchanges[1:])


def test_pipelined_requests_are_answered_in_order(certs: CertFiles, tmp_path: Path) -> None:
    # RFC 9112 §9.3.2: a client may send requests without waiting for responses, and
    # the responses come back in the order of the requests. All three go out in one write.
    with running_proxy(certs, tmp_path) as rp:
        requests = (f"GET {rp.origin}/first HTTP/1.1\r\nHost: x\r\n\r\n"
                    f"POST {rp.origin}/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                    f"GET {rp.origin}/bytes/3000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        ctx = client_context(certs.ca_pem)
        with socket.create_connection(("127.0.0.1", rp.port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(requests.encode())
            # h11 reads one response per request it has sent; it sends nothing here.
            reader = h11.Connection(h11.CLIENT)
            responses: list[tuple[int, bytes]] = []
            while len(responses) < 3:
                reader.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
                reader.send(h11.EndOfMessage())
                status, body = 0, b""
                while not isinstance(event := reader.next_event(), h11.EndOfMessage):
                    if event is h11.NEED_DATA:
                        reader.receive_data(tls.recv(65536))
                    elif isinstance(event, h11.Response):
                        status = event.status_code
                    else:
                        assert isinstance(event, h11.Data), event
                        body += event.data
                responses.append((status, body))
                if len(responses) < 3:
                    reader.start_next_cycle()
        records = rp.stop()
    assert [status for status, _ in responses] == [200, 200, 200]
    assert json.loads(responses[0][1])["path"] == "/first"
    assert responses[1][1] == b"hello"
    assert len(responses[2][1]) == 3000
    (conn,) = [r for r in records if r["type"] == "connection"]
    exchanges = [r for r in records if r["type"] == "exchange"]
    assert [e["request"]["url"].rsplit("/", 1)[1] for e in exchanges] == ["first", "echo", "3000"]
    assert {e["conn"] for e in exchanges} == {conn["conn"]}


def test_urllib3_proxy_manager_keep_alive(certs: CertFiles, tmp_path: Path) -> None:
    with running_proxy(certs, tmp_path) as rp:
        ctx = client_context(certs.ca_pem)
        # For http:// URLs urllib3 takes the proxy connection's context from ssl_context.
        pm = urllib3.ProxyManager(rp.url, proxy_ssl_context=ctx, ssl_context=ctx)
        for i in range(5):
            if i == 4:
                time.sleep(0.3)  # an idle keep-alive gap before the last request
            r = pm.request("GET", f"{rp.origin}/u{i}", retries=False)
            assert r.status == 200
            assert json.loads(r.data)["path"] == f"/u{i}"
        pm.clear()
        records = rp.stop()
    ex = [r for r in records if r["type"] == "exchange"]
    # "time" is when the request arrived, not when the proxy began waiting for it.
    gap = (datetime.fromisoformat(ex[4]["time"]) - datetime.fromisoformat(ex[3]["time"]))
    assert gap.total_seconds() >= 0.3
    assert len([r for r in records if r["type"] == "connection"]) == 1
    assert len([r for r in records if r["type"] == "exchange"]) == 5
    assert rp.pool.opened == 1


def test_requests_with_an_adapter_that_passes_the_context(certs: CertFiles, tmp_path: Path) -> None:
    requests = pytest.importorskip("requests")  # not a test dependency of its own
    from requests.adapters import HTTPAdapter

    ctx = client_context(certs.ca_pem)

    class ProxyTLS(HTTPAdapter):  # the README's recipe
        def proxy_manager_for(self, proxy, **kw):  # type: ignore[no-untyped-def]
            return super().proxy_manager_for(proxy, ssl_context=ctx, proxy_ssl_context=ctx,
                                             **kw)

        def cert_verify(self, conn, url, verify, cert):  # type: ignore[no-untyped-def]
            pass  # ctx verifies the proxy; requests would turn that off for http:// URLs

    with running_proxy(certs, tmp_path) as rp:
        session = requests.Session()
        session.mount("http://", ProxyTLS())
        proxies = {"http": rp.url}
        assert session.get(f"{rp.origin}/r1", proxies=proxies).json()["path"] == "/r1"
        body = os.urandom(50_000)
        assert session.post(f"{rp.origin}/echo", data=body, proxies=proxies).content == body
        records = rp.stop()
    assert len([r for r in records if r["type"] == "connection"]) == 1
    assert len([r for r in records if r["type"] == "exchange"]) == 2
