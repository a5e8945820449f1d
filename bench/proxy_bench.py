"""End-to-end benchmark through the proxy (issue 3).

The proxy (one process) is pinned to core 0; wrk, the origin and the idle-connection
client run on core 1. Measures, in one run:
  - raw RSA-2048 PKCS#1 v1.5 decryptions/s of `cryptography` on one core (the handshake limit)
  - h11 alone per proxied exchange on that core (bench/h11_floor.py: the keep-alive limit)
  - keep-alive 1 KiB GETs: requests/s, p50 and p99 latency (wrk --latency)
  - a new TLS connection per request (Connection: close): requests/s and its ratio to RSA
  - 10 MiB downloads: MB/s
  - proxy memory with 1,000 idle TLS connections: bytes per connection (RSS delta)
  - a 1 GiB download and a 1 GiB chunked upload through the proxy (curl, h11 echo origin):
    the proxy's peak RSS during each, against its RSS before (memory stays flat)

Usage:  python3 bench/proxy_bench.py [--duration 10] [--json out.json]
Needs wrk (apt-get install wrk) and taskset. The traffic log is on, as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ONE_MIB = 1024 * 1024


# --- a fast origin (run as a subprocess on the load generator's core) -----------------------

def run_origin(port: int) -> None:
    """Minimal keep-alive HTTP/1.1 origin: GET /bytes/N → N bytes. Fast, so it is not
    what is measured."""
    body = memoryview(bytes(range(256)) * (10 * ONE_MIB // 256 + 1))

    class Origin(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t: asyncio.Transport = transport  # type: ignore[assignment]
            self.buf = b""
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head, self.buf = self.buf[:end], self.buf[end + 4:]
                target = head.split(b" ", 2)[1]
                n = int(target.rsplit(b"/", 1)[1]) if target.startswith(b"/bytes/") else 1024
                close = b"connection: close" in head.lower()
                self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\n%s\r\n"
                             % (n, b"Connection: close\r\n" if close else b""))
                self.t.write(body[:n])
                if close:
                    self.t.close()
                    return

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Origin, "127.0.0.1", port, backlog=4096)
        print("origin ready", flush=True)
        await server.serve_forever()

    asyncio.run(main())


# --- helpers -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def rsa_rate(seconds: float) -> float:
    """Raw RSA-2048 PKCS#1 v1.5 decryptions per second (this process, one core)."""
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ct = key.public_key().encrypt(os.urandom(48), padding.PKCS1v15())
    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            key.decrypt(ct, padding.PKCS1v15())
        n += 50
    return n / elapsed


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(proxy_port: int, origin: str, path: str, connections: int, duration: int,
        close: bool = False, pid: int | None = None) -> dict[str, float]:
    env = dict(os.environ, ORIGIN=origin, TARGET_PATH=path, CLOSE="1" if close else "0")
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
           "-s", str(REPO / "bench" / "wrk_proxy.lua"), f"https://127.0.0.1:{proxy_port}"]
    cpu0 = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                         timeout=duration + 60).stdout
    cpu = cpu_seconds(pid) - cpu0 if pid else 0.0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    result = {"requests_per_s": rps}
    total = re.search(r"(\d+) requests in", out)
    if pid and total and int(total.group(1)):
        # CPU time per request: what the proxy costs, whatever else shares the machine.
        per = cpu / int(total.group(1))
        result["proxy_cpu_us_per_request"] = round(per * 1e6, 1)
        result["per_proxy_core_second"] = round(1 / per, 1)
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        if m:
            result[f"p{pct}_ms"] = _ms(m.group(1))
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    if transfer:
        scale = {"B": 1, "KB": 1024, "MB": ONE_MIB, "GB": 1024 * ONE_MIB}[transfer.group(2)]
        result["bytes_per_s"] = float(transfer.group(1)) * scale
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = (errors.group(1) if errors else "none") + (
        f"; non-2xx {non2xx.group(1)}" if non2xx else "")  # type: ignore[assignment]
    return result


def peak_rss_during(pid: int, cmd: list[str] | str, shell: bool = False
                    ) -> tuple[int, int, subprocess.CompletedProcess[str], float]:
    """Run cmd while sampling the proxy's RSS every 50 ms: (before, peak, result, seconds)."""
    import threading
    before = rss_bytes(pid)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, rss_bytes(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    try:
        result = subprocess.run(cmd, shell=shell, capture_output=True, text=True, timeout=600)
    finally:
        done.set()
        sampler.join()
    return before, peak, result, time.perf_counter() - start


def one_gib(proxy_port: int, ca: str, pid: int) -> dict[str, object]:
    """1 GiB each way through the proxy; the h11 echo origin streams and hashes."""
    gib = 1024 * ONE_MIB
    port = free_port()
    origin = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-m", "proxy", "origin",
                               "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                              text=True, cwd=REPO)
    assert origin.stdout is not None and origin.stdout.readline()
    curl = (f"taskset -c 1 curl -sS --proxy https://127.0.0.1:{proxy_port} "
            f"--proxy-cacert {ca}")
    out: dict[str, object] = {}
    try:
        before, peak, r, secs = peak_rss_during(
            pid, f"{curl} http://127.0.0.1:{port}/bytes/{gib} | wc -c", shell=True)
        assert r.returncode == 0 and int(r.stdout) == gib, r
        out["download"] = {"rss_before": before, "rss_peak": peak,
                           "MB_per_s": round(gib / secs / 1e6, 1)}
        before, peak, r, secs = peak_rss_during(
            pid, f"head -c {gib} /dev/zero | {curl} -T - -X POST "
                 f"http://127.0.0.1:{port}/upload", shell=True)
        assert r.returncode == 0 and json.loads(r.stdout)["body_size"] == gib, r
        out["upload"] = {"rss_before": before, "rss_peak": peak,
                         "MB_per_s": round(gib / secs / 1e6, 1)}
    finally:
        origin.terminate()
        origin.wait(timeout=10)
    return out


def idle_connections(proxy_port: int, ca: str, count: int) -> list[ssl.SSLSocket]:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_ciphers("AES128-GCM-SHA256:AES256-GCM-SHA384")
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    socks = []
    for _ in range(count):
        raw = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
        socks.append(ctx.wrap_socket(raw, server_hostname="localhost"))
    return socks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--origin-only", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.origin_only:
        run_origin(args.origin_only)
        return 0
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("needs wrk and taskset (apt-get install wrk util-linux)", file=sys.stderr)
        return 2

    from proxy.certs import make_certs

    results: dict[str, object] = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(),
                                  "load_average_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        certs = make_certs(Path(tmp) / "certs")
        origin_port, proxy_port = free_port(), free_port()
        origin_proc = subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, __file__, "--origin-only", str(origin_port)],
            stdout=subprocess.PIPE, text=True)
        assert origin_proc.stdout is not None and origin_proc.stdout.readline()
        proxy_proc = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "-m", "proxy", "serve",
             "--listen", f"127.0.0.1:{proxy_port}", "--cert", str(certs.chain),
             "--key", str(certs.key), "--traffic-log", str(Path(tmp) / "traffic.jsonl"),
             "--max-connections", "5000"],
            stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert proxy_proc.stdout is not None
        while "sha256 fingerprint" not in proxy_proc.stdout.readline():
            pass
        origin = f"http://127.0.0.1:{origin_port}"
        try:
            # Raw RSA on core 0 while the proxy is idle there: the ceiling for handshakes.
            rsa = subprocess.run(
                ["taskset", "-c", "0", sys.executable, "-c",
                 f"import sys; sys.path.insert(0, {str(REPO / 'bench')!r}); "
                 "from proxy_bench import rsa_rate; print(rsa_rate(3.0))"],
                capture_output=True, text=True, check=True)
            results["rsa2048_decrypt_per_s"] = round(float(rsa.stdout), 1)
            print(f"raw RSA-2048 decryptions/s (one core): {results['rsa2048_decrypt_per_s']}",
                  flush=True)
            # And what h11 alone costs per exchange on that core: keep-alive's ceiling.
            floor = subprocess.run(
                ["taskset", "-c", "0", sys.executable, str(REPO / "bench" / "h11_floor.py"),
                 "--seconds", "3"], capture_output=True, text=True, check=True)
            results["h11_floor"] = json.loads(floor.stdout.splitlines()[-1])
            print(floor.stdout.splitlines()[0], flush=True)

            wrk(proxy_port, origin, "/bytes/1024", 10, 2)  # warm-up
            pid = proxy_proc.pid
            ka = wrk(proxy_port, origin, "/bytes/1024", 50, args.duration, pid=pid)
            results["keepalive_1kib"] = ka
            print(f"keep-alive 1 KiB: {ka}", flush=True)

            nc = wrk(proxy_port, origin, "/bytes/1024", 50, args.duration, close=True, pid=pid)
            nc["ratio_to_rsa"] = round(nc["requests_per_s"] /
                                       float(results["rsa2048_decrypt_per_s"]), 3)  # type: ignore[arg-type]
            results["new_connection_per_request"] = nc
            print(f"new connection per request: {nc}", flush=True)

            dl = wrk(proxy_port, origin, f"/bytes/{10 * ONE_MIB}", 4, args.duration, pid=pid)
            dl["MB_per_s"] = round(dl.get("bytes_per_s", 0.0) / 1e6, 1)
            results["download_10mib"] = dl
            print(f"10 MiB download: {dl}", flush=True)

            big = one_gib(proxy_port, str(certs.ca), proxy_proc.pid)
            results["one_gib"] = big
            for way, fig in big.items():
                assert isinstance(fig, dict)
                print(f"1 GiB {way}: proxy RSS {fig['rss_before'] / ONE_MIB:.1f} MiB before, "
                      f"peak {fig['rss_peak'] / ONE_MIB:.1f} MiB; {fig['MB_per_s']} MB/s",
                      flush=True)

            time.sleep(1.0)
            before = rss_bytes(proxy_proc.pid)
            socks = idle_connections(proxy_port, str(certs.ca), 1000)
            time.sleep(1.0)
            after = rss_bytes(proxy_proc.pid)
            per = (after - before) / len(socks)
            results["idle_tls_connections"] = {"count": len(socks), "rss_before": before,
                                               "rss_after": after,
                                               "bytes_per_connection": round(per)}
            print(f"1,000 idle TLS connections: {per / 1024:.1f} KiB each "
                  f"(RSS {before / ONE_MIB:.1f} → {after / ONE_MIB:.1f} MiB)", flush=True)
            for s in socks:
                s.close()
        finally:
            proxy_proc.terminate()
            proxy_proc.wait(timeout=30)
            origin_proc.terminate()
            origin_proc.wait(timeout=10)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
