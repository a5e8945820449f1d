"""curl through the proxy (issue 3, points 1 and 7): real TLS from curl's OpenSSL to our
handshake, real HTTP to the echo origin on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

from conftest import CertFiles
from proxy_helpers import answering_origin, curl, running_proxy

from proxy.origin import pattern_sha256

TEN_MIB = 10 * 1024 * 1024


def test_get_through_proxy_rewrites_headers(certs: CertFiles, tmp_path: Path) -> None:
    with running_proxy(certs, tmp_path) as rp:
        r = curl(rp, "-H", "Connection: close, X-Hop", "-H", "X-Hop: secret",
                 "-H", "Keep-Alive: timeout=5", "-H", "Host: wrong.example",
                 f"{rp.origin}/hello?q=1")
        assert r.returncode == 0, r.stderr
        echo = json.loads(r.stdout)
        assert echo["method"] == "GET" and echo["path"] == "/hello?q=1"  # origin-form upstream
        sent = [h.split(": ", 1) for h in echo["headers"]]
        names = [n.lower() for n, _ in sent]
        # Host rebuilt from the URI, not the disagreeing Host header.
        assert ["Host", f"127.0.0.1:{rp.origin_port}"] in sent
        assert "wrong.example" not in r.stdout.decode()
        # Hop-by-hop headers (and what Connection names) are not forwarded.
        for hop in ("connection", "keep-alive", "proxy-connection", "x-hop"):
            assert hop not in names
        assert ["Via", "1.1 handshake-proxy"] in sent
        records = rp.stop()
    conn = [r for r in records if r["type"] == "connection"]
    assert len(conn) == 1 and conn[0]["error"] is None
    assert conn[0]["tls"]["cipher_suite"].startswith("TLS_RSA_WITH_AES_")
    steps = [s["step"] for s in conn[0]["handshake"]]
    assert steps == ["Client Hello", "Server Hello + certificate", "Client agrees",
                     "Server agrees", "Encrypted communication"]
    (ex,) = [r for r in records if r["type"] == "exchange"]
    assert ex["request"]["url"] == f"{rp.origin}/hello?q=1"
    assert ex["response"]["status"] == 200
    assert ex["tls"]["client_random"] == conn[0]["tls"]["client_random"]


def _response_head(stdout: bytes) -> list[str]:
    """The status and header lines of the first response head that ``curl -D -`` printed."""
    return stdout.decode("latin-1").split("\r\n\r\n")[0].split("\r\n")


def test_via_names_the_http_version_received_each_way(certs: CertFiles, tmp_path: Path) -> None:
    # RFC 9110 §7.6.3: an HTTP/1.0 client's request reaches the origin as HTTP/1.1, and the
    # Via entry records that it came in as 1.0; likewise an HTTP/1.0 origin's response.
    with answering_origin(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok") as old, \
            running_proxy(certs, tmp_path) as rp:
        r = curl(rp, "--http1.0", f"{rp.origin}/from-1.0")
        assert r.returncode == 0, r.stderr
        assert ["Via", "1.0 handshake-proxy"] in [h.split(": ", 1)
                                                 for h in json.loads(r.stdout)["headers"]]
        r = curl(rp, "-D", "-", "-o", "/dev/null", f"http://127.0.0.1:{old.port}/old-origin")
        assert r.returncode == 0, r.stderr
        head = _response_head(r.stdout)
        assert "Via: 1.0 handshake-proxy" in head
        # That origin sent no Date; RFC 9110 §6.6.1 has the proxy add one.
        assert [line for line in head if line.startswith("Date: ")]
        r = curl(rp, "-D", "-", "-o", "/dev/null", f"{rp.origin}/new-origin")
        assert "Via: 1.1 handshake-proxy" in _response_head(r.stdout)


def test_a_204_loses_the_framing_headers_its_origin_gave_it(certs: CertFiles,
                                                            tmp_path: Path) -> None:
    # RFC 9112 §6.1: a server never sends Transfer-Encoding in a 204. Passed on, it tells the
    # client a chunked body follows, which never does; the proxy drops it, and the
    # keep-alive connection carries the next request.
    with answering_origin(b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n"
                          b"X-Kept: yes\r\n\r\n") as origin, \
            running_proxy(certs, tmp_path) as rp:
        r = curl(rp, "-D", "-", "-o", "/dev/null", f"http://127.0.0.1:{origin.port}/empty",
                 "-o", "/dev/null", "-w", "%{http_code}", f"{rp.origin}/after")
        assert r.returncode == 0, r.stderr
        head = _response_head(r.stdout)
        assert head[0].startswith("HTTP/1.1 204") and "X-Kept: yes" in head
        assert not [h for h in head if h.lower().startswith(("transfer-encoding", "content-length"))]
        assert r.stdout.endswith(b"200")
        records = rp.stop()
    assert len([r for r in records if r["type"] == "connection"]) == 1


def test_post_10_mib_and_download_10_mib(certs: CertFiles, tmp_path: Path) -> None:
    body = os.urandom(TEN_MIB)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(body)
    with running_proxy(certs, tmp_path) as rp:
        r = curl(rp, "--data-binary", f"@{upload}", f"{rp.origin}/upload")
        assert r.returncode == 0, r.stderr
        echo = json.loads(r.stdout)
        assert echo["body_size"] == TEN_MIB
        assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()

        r = curl(rp, f"{rp.origin}/bytes/{TEN_MIB}")
        assert r.returncode == 0, r.stderr
        assert len(r.stdout) == TEN_MIB
        assert hashlib.sha256(r.stdout).hexdigest() == pattern_sha256(TEN_MIB)
        records = rp.stop()
    up, down = [r for r in records if r["type"] == "exchange"]
    assert up["request"]["body"]["size"] == TEN_MIB
    assert up["request"]["body"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert up["request"]["body"]["truncated"] is True
    assert down["response"]["body"]["sha256"] == pattern_sha256(TEN_MIB)
    assert down["response"]["body"]["size"] == TEN_MIB


def test_chunked_response_and_chunked_upload(certs: CertFiles, tmp_path: Path) -> None:
    size = 3 * 1024 * 1024 + 17
    with running_proxy(certs, tmp_path) as rp:
        r = curl(rp, "-D", str(tmp_path / "headers.txt"), f"{rp.origin}/chunked/{size}")
        assert r.returncode == 0, r.stderr
        assert hashlib.sha256(r.stdout).hexdigest() == pattern_sha256(size)
        assert "transfer-encoding: chunked" in (tmp_path / "headers.txt").read_text().lower()

        data = os.urandom(200_000)
        (tmp_path / "c.bin").write_bytes(data)
        r = curl(rp, "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{tmp_path / 'c.bin'}",
                 f"{rp.origin}/chunked-upload")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["body_sha256"] == hashlib.sha256(data).hexdigest()


def test_log_holds_the_client_random_curl_logged(certs: CertFiles, tmp_path: Path) -> None:
    keylog = tmp_path / "curl-keys.log"
    env = dict(os.environ, SSLKEYLOGFILE=str(keylog))
    with running_proxy(certs, tmp_path) as rp:
        r = curl(rp, f"{rp.origin}/first", f"{rp.origin}/second", env=env)
        assert r.returncode == 0, r.stderr
        records = rp.stop()
    randoms = {line.split()[1].lower() for line in keylog.read_text().splitlines()
               if line.startswith("CLIENT_RANDOM ")}
    assert randoms, "curl wrote no CLIENT_RANDOM line"
    exchanges = [r for r in records if r["type"] == "exchange"]
    assert len(exchanges) == 2
    for ex in exchanges:
        assert ex["tls"]["client_random"] in randoms
    # The proxy's own key log (--keylog) names the same session.
    assert len({ex["conn"] for ex in exchanges}) == 1


def test_proxy_keylog_matches_log(certs: CertFiles, tmp_path: Path) -> None:
    keylog = tmp_path / "proxy-keys.log"
    with running_proxy(certs, tmp_path, keylog=str(keylog)) as rp:
        assert curl(rp, f"{rp.origin}/k").returncode == 0
        records = rp.stop()
    (line,) = keylog.read_text().splitlines()
    label, client_random, master = line.split()
    assert label == "CLIENT_RANDOM" and len(master) == 96
    (ex,) = [r for r in records if r["type"] == "exchange"]
    assert ex["tls"]["client_random"] == client_random.lower()


def test_connect_tunnel_to_allowed_port_and_403_elsewhere(certs: CertFiles, tmp_path: Path) -> None:
    with running_proxy(certs, tmp_path) as rp:
        # Default: only 443 may be tunnelled to.
        r = curl(rp, "-p", "-o", "/dev/null", "-w", "%{http_connect}", f"{rp.origin}/t")
        assert r.returncode != 0
        assert r.stdout == b"403"
        # Allow the origin's port (new connections read the config): curl -p then
        # sends its plain HTTP inside the tunnel.
        proxy = rp.bg.proxy
        proxy.config = replace(proxy.config, connect_ports=frozenset({rp.origin_port}))
        r = curl(rp, "-p", f"{rp.origin}/tunnelled")
        assert r.returncode == 0, r.stderr
        echo = json.loads(r.stdout)
        assert echo["path"] == "/tunnelled"
        assert not any(h.startswith("Via:") for h in echo["headers"])  # opaque: untouched
        records = rp.stop()
    denied, tunnelled = [r for r in records if r["type"] == "exchange"]
    assert denied["response"]["status"] == 403 and "not allowed" in denied["error"]
    assert tunnelled["request"]["method"] == "CONNECT"
    tunnel = tunnelled["tunnel"]
    assert tunnel["port"] == rp.origin_port
    assert tunnel["bytes_up"] > 0 and tunnel["bytes_down"] > len(r.stdout)


def test_proxy_auth(certs: CertFiles, tmp_path: Path) -> None:
    from proxy.config import basic_credentials
    with running_proxy(certs, tmp_path, auth=frozenset({basic_credentials("alice:s3cret")})) as rp:
        r = curl(rp, "-i", f"{rp.origin}/a")
        assert b"407" in r.stdout.split(b"\r\n", 1)[0]
        assert b'Proxy-Authenticate: Basic realm="handshake-proxy"' in r.stdout
        r = curl(rp, "-i", "--proxy-user", "alice:wrong", f"{rp.origin}/b")
        assert b"407" in r.stdout.split(b"\r\n", 1)[0]
        r = curl(rp, "--proxy-user", "alice:s3cret", f"{rp.origin}/c")
        assert r.returncode == 0
        echo = json.loads(r.stdout)
        assert not any(h.lower().startswith("proxy-authorization") for h in echo["headers"])
        # The scheme's name is case-insensitive (RFC 9110 §11.1).
        r = curl(rp, "-H", "Proxy-Authorization: basic  YWxpY2U6czNjcmV0", f"{rp.origin}/d")
        assert r.returncode == 0 and b'"/d"' in r.stdout, r
        records = rp.stop()
    text = rp.log_path.read_text()
    assert "s3cret" not in text and "YWxpY2U6czNjcmV0" not in text  # nor its base64
    statuses = [r["response"]["status"] for r in records if r["type"] == "exchange"]
    assert statuses == [407, 407, 200, 200]
    ok = [r for r in records if r["type"] == "exchange"][-2]
    assert ["Proxy-Authorization", "[redacted]"] in ok["request"]["headers"]


def test_head_204_and_a_close_delimited_http10_origin(certs: CertFiles, tmp_path: Path) -> None:
    import socket

    from proxy_helpers import FakeOrigin, read_request_head

    def http10(conn: socket.socket) -> None:
        read_request_head(conn)
        # No Content-Length: the body ends when the origin closes (RFC 9112 §6.3).
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"old school " * 1000)
        conn.close()

    origin = FakeOrigin(http10)
    try:
        with running_proxy(certs, tmp_path) as rp:
            r = curl(rp, "-I", f"{rp.origin}/bytes/5000")
            assert r.returncode == 0 and b"Content-Length: 5000" in r.stdout
            r = curl(rp, "-i", f"{rp.origin}/status/204")
            assert r.returncode == 0 and r.stdout.startswith(b"HTTP/1.1 204")
            # Twice on one connection: the close-delimited body is re-framed (chunked) for
            # the client, whose connection stays open.
            r = curl(rp, f"http://127.0.0.1:{origin.port}/a", f"http://127.0.0.1:{origin.port}/b")
            assert r.returncode == 0 and r.stdout == b"old school " * 2000
            records = rp.stop()
    finally:
        origin.close()
    conns = {r["conn"] for r in records if r["type"] == "exchange"
             and r["request"]["url"].endswith(("/a", "/b"))}
    assert len(conns) == 1
