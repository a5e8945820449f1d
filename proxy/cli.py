"""The ``handshake-proxy`` command: serve, certs, client, origin, demo (and log, from logcli).

Every ``serve`` option can also come from a ``HANDSHAKE_PROXY_*`` environment
variable (``--idle-timeout`` → ``HANDSHAKE_PROXY_IDLE_TIMEOUT``; lists are
comma-separated; switches take 1/true/yes). A flag wins over the variable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "build_parser", "config_from_args"]

ENV_PREFIX = "HANDSHAKE_PROXY_"


def _env(dest: str) -> str | None:
    return os.environ.get(ENV_PREFIX + dest.upper())


def _number(kind: str, minimum: float, env_name: str, env_value: str | None) -> Any:
    """An argparse type for a number >= minimum whose error names the option's source."""
    convert: Any = float if kind == "float" else int

    def parse(text: str) -> Any:
        source = f" (from {env_name})" if env_value is not None and text == env_value else ""
        try:
            value = convert(text)
        except ValueError:
            what = "a whole number" if kind == "int" else "a number"
            raise argparse.ArgumentTypeError(f"{text!r}{source} is not {what}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}{source} is below the minimum of "
                                             f"{minimum:g}")
        return value

    return parse


def _add(p: argparse.ArgumentParser, flag: str, *, kind: str = "str", default: Any = None,
         help: str, metavar: str | None = None, minimum: float = 0) -> None:
    """An option whose default may come from the environment."""
    dest = flag.lstrip("-").replace("-", "_")
    env = _env(dest)
    env_help = f" [env {ENV_PREFIX}{dest.upper()}]"
    if kind == "flag":
        value = default if env is None else env.strip().lower() in ("1", "true", "yes", "on")
        p.add_argument(flag, dest=dest, action="store_true", default=value, help=help + env_help)
        return
    if kind == "list":
        value = default if env is None else [x.strip() for x in env.split(",") if x.strip()]
        p.add_argument(flag, dest=dest, action="append", default=None, metavar=metavar,
                       help=help + env_help)
        p.set_defaults(**{dest + "_default": value})
        return
    if kind == "str":
        p.add_argument(flag, dest=dest, default=default if env is None else env,
                       metavar=metavar, help=help + env_help)
        return
    # A string default from the environment goes through the same type check as
    # the flag (argparse converts string defaults), so a bad value is a usage
    # error naming the variable, not a traceback.
    p.add_argument(flag, dest=dest, type=_number(kind, minimum, ENV_PREFIX + dest.upper(), env),
                   default=default if env is None else env, metavar=metavar,
                   help=help + env_help)


def _serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the proxy",
                       description="Run the HTTPS forward proxy: TLS 1.2 (RSA key transport) "
                                   "from clients, plain HTTP/1.1 to origins, decrypted log.")
    _add(p, "--listen", default="127.0.0.1:8443", metavar="HOST:PORT", help="listen address")
    _add(p, "--cert", metavar="CHAIN.pem", help="certificate chain, leaf first")
    _add(p, "--key", metavar="KEY.pem", help="the certificate's RSA private key")
    _add(p, "--traffic-log", metavar="FILE", help="append the decrypted traffic (JSON Lines)")
    _add(p, "--keylog", metavar="FILE",
         help="NSS key log for Wireshark (default: $SSLKEYLOGFILE if set)")
    _add(p, "--cipher-suites", kind="list", metavar="NAME",
         help="allowed suites in preference order (repeatable): IANA or OpenSSL "
              "names, e.g. TLS_RSA_WITH_AES_256_GCM_SHA384 or AES256-GCM-SHA384")
    _add(p, "--require-ems", kind="flag", default=False,
         help="refuse clients without extended_master_secret (RFC 7627)")
    _add(p, "--handshake-timeout", kind="float", minimum=0.001, default=10.0, metavar="S",
         help="seconds for a TLS handshake")
    _add(p, "--idle-timeout", kind="float", minimum=0.001, default=60.0, metavar="S",
         help="keep-alive wait for the next request; body inactivity")
    _add(p, "--header-timeout", kind="float", minimum=0.001, default=10.0, metavar="S",
         help="seconds to receive a request's header block")
    _add(p, "--connect-timeout", kind="float", minimum=0.001, default=10.0, metavar="S",
         help="seconds to connect to an origin")
    _add(p, "--origin-timeout", kind="float", minimum=0.001, default=30.0, metavar="S",
         help="seconds to wait for the origin's response (and between body bytes)")
    _add(p, "--grace-period", kind="float", default=10.0, metavar="S",
         help="on SIGTERM/SIGINT, how long in-flight exchanges may finish")
    _add(p, "--max-connections", kind="int", minimum=1, default=4096, metavar="N",
         help="concurrent client connections")
    _add(p, "--max-header-bytes", kind="int", minimum=1, default=64 * 1024, metavar="N",
         help="request header block limit (431 above it)")
    _add(p, "--pool-size", kind="int", default=100, metavar="N",
         help="idle keep-alive connections kept per origin")
    _add(p, "--allow-client", kind="list", metavar="CIDR",
         help="client networks allowed (repeatable; default loopback + private ranges)")
    _add(p, "--auth", kind="list", metavar="USER:PASS",
         help="require Basic proxy authentication (repeatable)")
    _add(p, "--auth-file", metavar="FILE", help="USER:PASS lines for proxy authentication")
    _add(p, "--redact-header", kind="list", metavar="NAME",
         help="also redact this header in the log (Proxy-Authorization always is)")
    _add(p, "--connect-port", kind="list", metavar="PORT",
         help="ports CONNECT may reach (repeatable; default 443)")
    _add(p, "--x-forwarded-for", kind="flag", default=False,
         help="add X-Forwarded-For with the client's address")
    _add(p, "--preview-bytes", kind="int", default=4096, metavar="N",
         help="body bytes kept in each log record")
    _add(p, "--bodies", metavar="DIR",
         help="store every body in full in DIR, named by SHA-256 (the log points at them)")
    p.set_defaults(func=_cmd_serve)


def _list(args: argparse.Namespace, dest: str) -> list[str]:
    value = getattr(args, dest)
    if value is None:
        value = getattr(args, dest + "_default", None) or []
    out: list[str] = []
    for item in value:
        out += [x.strip() for x in item.split(",") if x.strip()]
    return out


def config_from_args(args: argparse.Namespace) -> Any:
    """A ProxyConfig from parsed ``serve`` arguments; ValueError/OSError on bad input."""
    from .config import (
        DEFAULT_ALLOWED_CLIENTS,
        ProxyConfig,
        basic_credentials,
        parse_cipher_suites,
        parse_host_port,
        parse_networks,
        read_auth_file,
    )
    host, port = parse_host_port(args.listen)
    if not args.cert or not args.key:
        raise ValueError("serve needs --cert CHAIN.pem and --key KEY.pem "
                         "(`handshake-proxy certs --out DIR` makes them)")
    auth = _list(args, "auth")
    if args.auth_file:
        try:
            auth += read_auth_file(args.auth_file)
        except OSError as exc:
            raise ValueError(f"cannot read the auth file {args.auth_file!r}: "
                             f"{exc.strerror or exc}") from None
    ports = []
    for p in _list(args, "connect_port") or ["443"]:
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise ValueError(f"--connect-port {p!r} is not a port number")
        ports.append(int(p))
    suites_source = ("--cipher-suites" if args.cipher_suites is not None
                     else ENV_PREFIX + "CIPHER_SUITES")
    suites = parse_cipher_suites(_list(args, "cipher_suites"), suites_source)
    return ProxyConfig(
        listen_host=host, listen_port=port, cert=args.cert, key=args.key,
        traffic_log=args.traffic_log, keylog=args.keylog,
        cipher_suites=suites,
        require_extended_master_secret=args.require_ems,
        handshake_timeout=args.handshake_timeout, idle_timeout=args.idle_timeout,
        header_timeout=args.header_timeout, connect_timeout=args.connect_timeout,
        origin_timeout=args.origin_timeout, grace_period=args.grace_period,
        max_connections=args.max_connections, max_header_bytes=args.max_header_bytes,
        pool_size=args.pool_size,
        allowed_clients=parse_networks(_list(args, "allow_client") or list(DEFAULT_ALLOWED_CLIENTS)),
        auth=frozenset(basic_credentials(a) for a in auth),
        redact_headers=frozenset(h.lower().encode() for h in _list(args, "redact_header")),
        connect_ports=frozenset(ports), x_forwarded_for=args.x_forwarded_for,
        preview_bytes=args.preview_bytes, bodies_dir=args.bodies,
    )


def _fail(message: str) -> int:
    print(f"handshake-proxy: error: {message}", file=sys.stderr)
    return 2


def _cmd_serve(args: argparse.Namespace) -> int:
    from .certs import describe_certificate
    from .server import ProxyServer
    from .traffic_log import TrafficLog

    try:
        config = config_from_args(args)
        for label, path in (("certificate chain", config.cert), ("key", config.key)):
            if not os.path.isfile(path):
                return _fail(f"cannot read the {label} {path!r}: no such file")
        try:
            subject, fingerprint = describe_certificate(config.cert)
        except ValueError:
            return _fail(f"{config.cert!r} is not a PEM certificate chain")
        if config.bodies_dir:  # made (or refused) now, not on the first body
            from .bodystore import BodyStore
            BodyStore.for_directory(config.bodies_dir)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))

    async def run() -> int:
        try:
            log = TrafficLog(config.traffic_log)
        except OSError as exc:
            return _fail(f"cannot open the traffic log: {exc}")
        try:
            server = ProxyServer(config, log)
        except OSError as exc:  # the key log, or a certificate file that vanished
            log.close()
            return _fail(f"cannot open {exc.filename or ''}: {exc.strerror or exc}")
        except (ValueError, TypeError) as exc:
            log.close()
            return _fail(f"cannot set up TLS: {exc}")
        try:
            host, port = await server.start()
        except OSError as exc:
            log.close()
            return _fail(f"cannot listen on {config.listen_host}:{config.listen_port}: "
                         f"{exc.strerror or exc}")
        stop = server.catch_signals()  # before the startup lines: a supervisor may signal at once
        print(f"handshake-proxy listening on https://{host}:{port}", flush=True)
        print(f"  certificate: {subject}", flush=True)
        print(f"  sha256 fingerprint: {fingerprint}", flush=True)
        if config.traffic_log:
            print(f"  traffic log: {config.traffic_log}", flush=True)
        await server.serve_until_signal(stop)
        log.close()
        print("handshake-proxy stopped", flush=True)
        return 0

    return asyncio.run(run())


def _cmd_certs(args: argparse.Namespace) -> int:
    from .certs import DEFAULT_NAMES, describe_certificate, make_certs
    names = tuple(args.name or DEFAULT_NAMES)
    try:
        paths = make_certs(args.out, names, days=args.days)
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    subject, fingerprint = describe_certificate(paths.chain)
    print(f"wrote {paths.ca} (CA), {paths.chain} (certificate chain), {paths.key} (RSA-2048 key)")
    print(f"  certificate: {subject} for {', '.join(names)}")
    print(f"  sha256 fingerprint: {fingerprint}")
    return 0


def _cmd_client(args: argparse.Namespace) -> int:
    from handshake import CertificateError, ProtocolError

    from .client import fetch
    body = args.data.encode() if args.data is not None else b""
    if args.data_file:
        try:
            with open(args.data_file, "rb") as f:
                body = f.read()
        except OSError as exc:
            return _fail(str(exc))
    headers = []
    for h in args.header or []:
        name, sep, value = h.partition(":")
        if not sep:
            return _fail(f"-H {h!r}: expected 'Name: value'")
        headers.append((name.strip(), value.strip()))
    method = args.request or ("POST" if body or args.data_file else "GET")
    trace = (lambda line: print(line, flush=True)) if args.trace else None
    try:
        resp = fetch(args.url, args.proxy, args.ca, method, body, headers,
                     timeout=args.timeout, trace=trace)
    except CertificateError as exc:
        return _fail(f"the proxy's certificate was not accepted: {exc}")
    except (ProtocolError, OSError, ValueError) as exc:
        return _fail(str(exc) or type(exc).__name__)
    except Exception as exc:  # h11 errors: the proxy cut the response short
        return _fail(f"{type(exc).__name__}: {exc}")
    if args.trace:
        print()
    print(f"HTTP/{resp.http_version} {resp.status} {resp.reason}")
    for name, value in resp.headers:
        print(f"{name}: {value}")
    print(flush=True)
    sys.stdout.buffer.write(resp.body)
    sys.stdout.flush()
    return 0 if resp.complete else 1


def _cmd_origin(args: argparse.Namespace) -> int:
    from .config import parse_host_port
    from .origin import Origin
    try:
        host, port = parse_host_port(args.listen)
    except ValueError as exc:
        return _fail(str(exc))

    async def run() -> int:
        import signal
        origin = Origin(host, port)
        try:
            h, p = await origin.start()
        except OSError as exc:
            return _fail(f"cannot listen on {args.listen}: {exc.strerror or exc}")
        print(f"echo origin listening on http://{h}:{p}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await origin.aclose()
        return 0

    return asyncio.run(run())


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    return run_demo()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handshake-proxy",
        description="An HTTPS forward proxy whose TLS 1.2 handshake is its own.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _serve_parser(sub)

    p = sub.add_parser("certs", help="make a CA and a proxy certificate (RSA-2048)")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the PEM files")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="DNS name or IP address (repeatable; default localhost and 127.0.0.1)")
    p.add_argument("--days", type=int, default=365, help="validity (default 365)")
    p.set_defaults(func=_cmd_certs)

    p = sub.add_parser("client", help="one request through the proxy on our own TLS client")
    p.add_argument("url", help="the http:// URL to fetch through the proxy")
    p.add_argument("--proxy", required=True, metavar="https://HOST:PORT")
    p.add_argument("--ca", required=True, metavar="CA.pem", help="CA that signed the proxy")
    p.add_argument("-X", "--request", metavar="METHOD")
    p.add_argument("-d", "--data", metavar="DATA", help="request body")
    p.add_argument("--data-file", metavar="FILE", help="request body from a file")
    p.add_argument("-H", "--header", action="append", metavar="'Name: value'")
    p.add_argument("--trace", action="store_true",
                   help="print the handshake as a ladder between client and proxy")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=_cmd_client)

    p = sub.add_parser("origin", help="a small echo origin (HTTP/1.1)")
    p.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    p.set_defaults(func=_cmd_origin)

    p = sub.add_parser("demo", help="everything on 127.0.0.1 with no set-up; prints the trace "
                                    "and the decrypted log")
    p.set_defaults(func=_cmd_demo)

    try:
        from . import logcli
    except ImportError:  # the log readers are optional for the rest of the CLI
        pass
    else:
        logcli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
