"""What h11 alone costs per proxied exchange: the ceiling it puts on keep-alive requests/s.

    python3 bench/h11_floor.py [--seconds 5]

The proxy drives two h11 connections per exchange: a server connection that
parses the client's request and sends the response, and a client connection
that sends the request to the origin and parses its response. This runs that
same h11 work for the benchmark's exchange (wrk's absolute-form 1 KiB GET, the
origin's 1 KiB answer) with no sockets, no TLS and no logging, and prints the
µs per exchange and the requests/s that leaves for one core when nothing else
costs anything. Last line: JSON.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import statistics
import sys
import time

import h11

REQUEST = (b"GET http://127.0.0.1:8080/bytes/1024 HTTP/1.1\r\n"
           b"Host: 127.0.0.1:8080\r\n\r\n")
RESPONSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                 b"Content-Length: 1024\r\n\r\n")
BODY = bytes(range(256)) * 4


def one_exchange(to_client: h11.Connection, to_origin: h11.Connection) -> None:
    """One exchange's h11 work, as forward.py does it."""
    to_client.receive_data(REQUEST)
    request = to_client.next_event()
    assert isinstance(request, h11.Request), request
    assert isinstance(to_client.next_event(), h11.EndOfMessage)
    to_origin.send(h11.Request(method=request.method, target=b"/bytes/1024",
                               headers=[(b"Host", b"127.0.0.1:8080"),
                                        (b"Via", b"1.1 handshake-proxy")]))
    to_origin.send(h11.EndOfMessage())
    to_origin.receive_data(RESPONSE_HEAD + BODY)
    response = to_origin.next_event()
    assert isinstance(response, h11.Response), response
    headers = list(response.headers) + [(b"Via", b"1.1 handshake-proxy")]
    to_client.send(h11.Response(status_code=response.status_code, headers=headers,
                                reason=response.reason))
    while True:
        event = to_origin.next_event()
        if isinstance(event, h11.EndOfMessage):
            to_client.send(h11.EndOfMessage())
            break
        assert isinstance(event, h11.Data), event
        to_client.send(h11.Data(data=event.data))
    to_client.start_next_cycle()
    to_origin.start_next_cycle()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    to_client, to_origin = h11.Connection(h11.SERVER), h11.Connection(h11.CLIENT)
    samples = []
    deadline = time.perf_counter() + args.seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(500):
            one_exchange(to_client, to_origin)
        samples.append((time.perf_counter() - start) / 500)
    per = statistics.median(samples)
    result = {"h11_us_per_exchange": round(per * 1e6, 1),
              "h11_only_requests_per_s_ceiling": round(1 / per), "h11": importlib.metadata.version("h11"),
              "python": sys.version.split()[0]}
    print(f"h11 alone, one proxied exchange: {per * 1e6:.1f} µs "
          f"(a ceiling of {1 / per:,.0f} requests/s on one core)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
