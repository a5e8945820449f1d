"""The server's handshake work besides RSA, timed back to back by replaying one client.

    python3 bench/server_replay.py [--handshakes 3000] [--with-rsa]

A diagnostic for handshake_bench.py's ``handshake_ratio``: what the server
spends on everything but the RSA decryption. One handshake between our
client and our server is recorded; then fresh ServerConnections are fed that
client's two flights again and again. For the recorded Finished to stay
valid, the server's random bytes are fixed and, unless --with-rsa, the RSA
decryption is replaced by returning the recorded pre-master secret. Both are
done by patching the server module for this process only; never do that
outside a benchmark.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import handshake._server as server_module  # noqa: E402
from handshake import CipherSuite, ClientConnection, ServerConnection  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from handshake_bench import make_configs  # noqa: E402


class _FixedRandom:
    """Stands in for the ``os`` module inside handshake._server: same bytes every time."""

    @staticmethod
    def urandom(n: int) -> bytes:
        return b"\x42" * n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handshakes", type=int, default=3000)
    parser.add_argument("--with-rsa", action="store_true",
                        help="keep the real RSA decryption (then this times the whole server)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        client_config, server_config = make_configs(
            Path(tmp), CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256)

    # The module's own namespace: its names are patched where the server looks them up.
    server_globals = vars(server_module)
    server_globals["os"] = _FixedRandom
    real_decrypt = server_globals["decrypt_pre_master_secret"]
    recorded: list[bytes] = []

    def record_decrypt(key, encrypted, client_version):  # type: ignore[no-untyped-def]
        recorded.append(real_decrypt(key, encrypted, client_version))
        return recorded[-1]

    server_globals["decrypt_pre_master_secret"] = record_decrypt
    client = ClientConnection(client_config)
    client.start_handshake()
    hello = client.data_to_send()
    server = ServerConnection(server_config)
    server.receive_data(hello)
    client.receive_data(server.data_to_send())
    second_flight = client.data_to_send()
    server.receive_data(second_flight)
    client.receive_data(server.data_to_send())
    if not (client.handshake_complete and server.handshake_complete):
        raise RuntimeError("the recorded handshake did not complete")
    if args.with_rsa:
        server_globals["decrypt_pre_master_secret"] = real_decrypt
    else:
        server_globals["decrypt_pre_master_secret"] = lambda key, encrypted, version: recorded[0]

    def replay() -> None:
        server = ServerConnection(server_config)
        server.receive_data(hello)
        server.data_to_send()
        server.receive_data(second_flight)
        server.data_to_send()
        if not server.handshake_complete:
            raise RuntimeError("a replayed handshake did not complete")

    samples = []
    per_sample = 200
    for _ in range(max(1, args.handshakes // per_sample)):
        start = time.perf_counter()
        for _ in range(per_sample):
            replay()
        samples.append((time.perf_counter() - start) / per_sample)
    what = "whole server handshake" if args.with_rsa else "server handshake without RSA"
    print(f"{what}, replayed back to back: median {statistics.median(samples) * 1e6:.1f} µs, "
          f"best {min(samples) * 1e6:.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
