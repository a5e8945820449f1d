"""Benchmark of the handshake library against the raw primitives it is built on.

    python3 bench/handshake_bench.py [--seconds 8] [--rounds 16]

Measures, in one run:

- full in-memory handshakes per second (our client + our server), and the
  server's share alone (only the time spent inside ServerConnection calls);
- raw RSA-2048 PKCS#1 v1.5 decryptions per second with ``cryptography``:
  the one expensive step of an RSA key-transport server handshake, so
  ``handshake_ratio`` = server handshakes/s ÷ RSA decryptions/s (1.0 would
  mean the rest of the server's handshake is free; the target is ≥ 0.8);
- record-layer MB/s: 16 KiB of application data sealed by our client
  (send_application_data + data_to_send) and opened by our server
  (receive_data), against raw AES-GCM encrypt + decrypt of 16 KiB with
  ``cryptography``'s AESGCM; ``record_ratio`` is their quotient (target ≥ 0.8);
- the same 16 KiB framed by the least Python that can do it (no checks, no
  API, no events), against the same raw AES-GCM: ``bare_record_ratio`` is how
  close any record layer written in Python could come.

The measurements run in short interleaved rounds, so each ratio compares
figures taken under the same load; every figure is the median over the
rounds. It prints a table, then one JSON line, last.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trustme
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from handshake import (  # noqa: E402
    ApplicationData,
    CipherSuite,
    ClientConfig,
    ClientConnection,
    ServerConfig,
    ServerConnection,
)

RECORD = 16 * 1024
MB = 1e6


def make_configs(directory: Path, suite: CipherSuite) -> tuple[ClientConfig, ServerConfig]:
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    cert = ca.issue_cert("localhost", key_type=trustme.KeyType.RSA)
    ca_pem, chain_pem, key_pem = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    chain_pem.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_pem))
    client = ClientConfig.from_ca_file(ca_pem, "localhost", cipher_suites=[suite])
    server = ServerConfig.from_pem_files(chain_pem, key_pem, cipher_suites=[suite])
    return client, server


def timed(operation: Callable[[], None], budget: float, batch: int) -> float:
    """Operations per second of ``operation`` over about ``budget`` seconds (whole batches)."""
    count = 0
    start = time.perf_counter()
    deadline = start + budget
    while count == 0 or time.perf_counter() < deadline:
        for _ in range(batch):
            operation()
        count += batch
    return count / (time.perf_counter() - start)


def one_handshake(client_config: ClientConfig,
                  server_config: ServerConfig) -> tuple[ClientConnection, ServerConnection, float]:
    """A full handshake in memory; returns both ends and the time spent in the server alone."""
    clock = time.perf_counter
    client = ClientConnection(client_config)
    start = clock()
    server = ServerConnection(server_config)
    server_time = clock() - start
    client.start_handshake()
    while True:
        to_server = client.data_to_send()
        start = clock()
        if to_server:
            server.receive_data(to_server)
        to_client = server.data_to_send()
        server_time += clock() - start
        if to_client:
            client.receive_data(to_client)
        if not to_server and not to_client:
            break
    if not (client.handshake_complete and server.handshake_complete):
        raise RuntimeError("the benchmark handshake did not complete")
    return client, server, server_time


def handshake_round(client_config: ClientConfig, server_config: ServerConfig,
                    budget: float) -> tuple[float, float]:
    """(full handshakes/s, server handshakes/s) over about ``budget`` seconds."""
    count, server_total = 0, 0.0
    start = time.perf_counter()
    deadline = start + budget
    while count == 0 or time.perf_counter() < deadline:
        server_total += one_handshake(client_config, server_config)[2]
        count += 1
    return count / (time.perf_counter() - start), count / server_total


def rsa_operation(server_config: ServerConfig) -> Callable[[], None]:
    """One raw PKCS#1 v1.5 decryption of a pre-master secret with the server's key."""
    key = server_config.private_key
    assert isinstance(key, rsa.RSAPrivateKey)
    pkcs1 = padding.PKCS1v15()
    ciphertext = key.public_key().encrypt(b"\x03\x03" + os.urandom(46), pkcs1)

    def operation() -> None:
        key.decrypt(ciphertext, pkcs1)

    return operation


def record_operation(client_config: ClientConfig,
                     server_config: ServerConfig) -> Callable[[], None]:
    """16 KiB of application data sealed by our client and opened by our server."""
    client, server, _ = one_handshake(client_config, server_config)
    payload = os.urandom(RECORD)

    def operation() -> None:
        client.send_application_data(payload)
        events = server.receive_data(client.data_to_send())
        if len(events) != 1 or not isinstance(events[0], ApplicationData):
            raise RuntimeError(f"one 16 KiB record should give one event: {events}")

    return operation


def aesgcm_operation(key_len: int) -> Callable[[], None]:
    """Raw AES-GCM encrypt + decrypt of 16 KiB, with TLS-sized nonce and additional data."""
    aead = AESGCM(os.urandom(key_len))
    salt = os.urandom(4)
    payload = os.urandom(RECORD)
    counter = iter(range(2**63))

    def operation() -> None:
        explicit = next(counter).to_bytes(8, "big")
        aad = explicit + b"\x17\x03\x03" + RECORD.to_bytes(2, "big")
        sealed = aead.encrypt(salt + explicit, payload, aad)
        aead.decrypt(salt + explicit, sealed, aad)

    return operation


def bare_record_operation(key_len: int) -> Callable[[], None]:
    """The least Python that can frame a 16 KiB TLS record around AES-GCM and open it again:
    header, nonce and additional data packed, one encrypt, one concatenation, the header
    unpacked, one decrypt from a view. No checks, no API, no events: a floor for any
    record layer written in Python, not a usable one."""
    aead = AESGCM(os.urandom(key_len))
    salt = os.urandom(4)
    payload = os.urandom(RECORD)
    prefix, aad_of, header, seq_of = (struct.Struct("!BHHQ"), struct.Struct("!QBHH"),
                                      struct.Struct("!BHH"), struct.Struct("!Q"))
    encrypt, decrypt = aead.encrypt, aead.decrypt
    counter = iter(range(2**63))

    def operation() -> None:
        seq = next(counter)
        wire = prefix.pack(23, 0x0303, RECORD + 24, seq) + encrypt(
            salt + seq_of.pack(seq), payload, aad_of.pack(seq, 23, 0x0303, RECORD))
        content_type, version, length = header.unpack_from(wire)
        with memoryview(wire) as view:
            decrypt(salt + wire[5:13], view[13:5 + length],
                    aad_of.pack(seq, content_type, version, length - 24))

    return operation


def measure(client_config: ClientConfig, server_config: ServerConfig, suite: CipherSuite,
            seconds: float, rounds: int) -> dict[str, float]:
    """Interleave short rounds of each measurement so that each ratio compares figures taken
    under the same load (a shared machine drifts by 2x over seconds); report medians."""
    rsa_op = rsa_operation(server_config)
    record_op = record_operation(client_config, server_config)
    aesgcm_op = aesgcm_operation(suite.key_len)
    bare_op = bare_record_operation(suite.key_len)
    budget = seconds / rounds
    samples: dict[str, list[float]] = {name: [] for name in (
        "handshakes", "server_handshakes", "rsa", "record", "aesgcm", "bare_record",
        "handshake_ratio", "record_ratio", "bare_record_ratio")}
    for _ in range(rounds):
        full, server = handshake_round(client_config, server_config, budget)
        rsa_rate = timed(rsa_op, budget, 5)
        record_rate = timed(record_op, budget, 20) * RECORD / MB
        aesgcm_rate = timed(aesgcm_op, budget, 20) * RECORD / MB
        bare_rate = timed(bare_op, budget, 20) * RECORD / MB
        samples["handshakes"].append(full)
        samples["server_handshakes"].append(server)
        samples["rsa"].append(rsa_rate)
        samples["record"].append(record_rate)
        samples["aesgcm"].append(aesgcm_rate)
        samples["bare_record"].append(bare_rate)
        samples["handshake_ratio"].append(server / rsa_rate)
        samples["record_ratio"].append(record_rate / aesgcm_rate)
        samples["bare_record_ratio"].append(bare_rate / aesgcm_rate)
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="time budget of each of the five measurements (default 8)")
    parser.add_argument("--rounds", type=int, default=16,
                        help="interleaved rounds the budget is split into (default 16)")
    args = parser.parse_args(argv)
    suite = CipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256

    with tempfile.TemporaryDirectory() as tmp:
        client_config, server_config = make_configs(Path(tmp), suite)
    one_handshake(client_config, server_config)  # warm-up: imports, caches

    m = measure(client_config, server_config, suite, args.seconds, args.rounds)
    handshakes, server_handshakes, rsa_decrypts = m["handshakes"], m["server_handshakes"], m["rsa"]
    record_mb, aesgcm_mb = m["record"], m["aesgcm"]

    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cipher_suite": suite.openssl_name,
        "rsa_bits": server_config.private_key.key_size,
        "handshakes_per_s": round(handshakes, 1),
        "server_handshakes_per_s": round(server_handshakes, 1),
        "rsa_decrypts_per_s": round(rsa_decrypts, 1),
        "handshake_ratio": round(m["handshake_ratio"], 3),
        "record_mb_per_s": round(record_mb, 1),
        "aesgcm_mb_per_s": round(aesgcm_mb, 1),
        "record_ratio": round(m["record_ratio"], 3),
        "bare_record_mb_per_s": round(m["bare_record"], 1),
        "bare_record_ratio": round(m["bare_record_ratio"], 3),
        "rounds": args.rounds,
    }
    rows = [
        ("full handshakes (client + server, in memory)", f"{handshakes:10.1f}", "/s"),
        ("server share of a handshake", f"{server_handshakes:10.1f}", "/s"),
        (f"raw RSA-{result['rsa_bits']} PKCS#1 v1.5 decryptions", f"{rsa_decrypts:10.1f}", "/s"),
        ("handshake_ratio (server ÷ RSA, target ≥ 0.8)", f"{result['handshake_ratio']:10.3f}",
         ""),
        ("record layer seal+open, 16 KiB records", f"{record_mb:10.1f}", "MB/s"),
        ("raw AES-GCM encrypt+decrypt, 16 KiB", f"{aesgcm_mb:10.1f}", "MB/s"),
        ("record_ratio (records ÷ AES-GCM, target ≥ 0.8)", f"{result['record_ratio']:10.3f}", ""),
        ("bare record framing in Python, no API (a floor)", f"{m['bare_record']:10.1f}", "MB/s"),
        ("bare_record_ratio (bare framing ÷ AES-GCM)", f"{result['bare_record_ratio']:10.3f}", ""),
    ]
    width = max(len(name) for name, _, _ in rows)
    print(f"handshake library benchmark, {suite.openssl_name}, {result['date']}, "
          f"Python {result['python']}, {result['cpu_count']} CPUs")
    for name, value, unit in rows:
        print(f"  {name:<{width}}  {value} {unit}".rstrip())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
