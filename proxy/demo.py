"""``handshake-proxy demo``: everything on 127.0.0.1 with no set-up.

A throwaway CA and proxy certificate, the echo origin and the proxy on free
ports (in a background event loop), then our client's GET and POST with the
handshake ladder, then the decrypted log records. Exits 0 when both
requests came back complete and the log holds them.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from .certs import describe_certificate, make_certs
from .client import fetch
from .config import ProxyConfig
from .logview import read_records
from .origin import Origin
from .server import ProxyServer
from .traffic_log import TrafficLog

__all__ = ["run_demo", "Background"]


class Background:
    """An event loop in a thread running the origin and the proxy."""

    def __init__(self, config: ProxyConfig, log: TrafficLog) -> None:
        self.loop = asyncio.new_event_loop()
        self.origin = Origin()
        self.proxy = ProxyServer(config, log)
        self.thread = threading.Thread(target=self.loop.run_forever, name="demo-loop",
                                       daemon=True)

    def start(self) -> tuple[int, int]:
        self.thread.start()
        origin_port = asyncio.run_coroutine_threadsafe(self.origin.start(), self.loop).result()[1]
        proxy_port = asyncio.run_coroutine_threadsafe(self.proxy.start(), self.loop).result()[1]
        return origin_port, proxy_port

    def stop(self) -> None:
        async def stop() -> None:
            await self.proxy.shutdown(2.0)
            await self.origin.aclose()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def run_demo(out: Callable[[str], None] = lambda s: print(s, flush=True)) -> int:
    with tempfile.TemporaryDirectory(prefix="handshake-proxy-demo-") as tmp:
        certs = make_certs(Path(tmp) / "certs")
        subject, fingerprint = describe_certificate(certs.chain)
        log_path = str(Path(tmp) / "traffic.jsonl")
        log = TrafficLog(log_path)
        config = ProxyConfig(listen_port=0, cert=str(certs.chain), key=str(certs.key),
                             traffic_log=log_path)
        bg = Background(config, log)
        origin_port, proxy_port = bg.start()
        proxy_url = f"https://localhost:{proxy_port}"
        out("== handshake-proxy demo ==")
        out(f"throwaway CA and proxy certificate (RSA-2048): {subject}")
        out(f"  sha256 {fingerprint}")
        out(f"echo origin  http://127.0.0.1:{origin_port}")
        out(f"proxy        {proxy_url}  (TLS 1.2, RSA key transport, AES-GCM)")
        ok = True
        try:
            requests = [
                ("GET", f"http://127.0.0.1:{origin_port}/hello?from=demo", b"", []),
                ("POST", f"http://127.0.0.1:{origin_port}/echo",
                 b'{"message": "hello through the handshake"}',
                 [("Content-Type", "application/json")]),
            ]
            for method, url, body, headers in requests:
                out("")
                out(f"-- client: {method} {url} through {proxy_url} --")
                resp = fetch(url, proxy_url, str(certs.ca), method, body, headers, trace=out)
                out("")
                out(f"response: HTTP/{resp.http_version} {resp.status} {resp.reason}")
                for name, value in resp.headers:
                    out(f"  {name}: {value}")
                out(resp.body.decode("utf-8", "replace").rstrip())
                ok = ok and resp.complete and resp.status == 200
        finally:
            bg.stop()
            log.close()
        records = list(read_records(log_path))
        out("")
        out(f"== the decrypted traffic log ({len(records)} records, JSON Lines) ==")
        for rec in records:
            out(json.dumps(rec, indent=2))
        exchanges = [r for r in records if r["type"] == "exchange"]
        ok = ok and len(exchanges) == len(requests)
        out("")
        out("demo complete" if ok else "demo FAILED")
        return 0 if ok else 1
