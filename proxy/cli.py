"""The ``handshake-proxy`` command: serve, certs, client, origin, demo (and log, from logcli).

Every ``serve`` option can also come from a ``HANDSHAKE_PROXY_*`` environment
variable (``--idle-timeout`` → ``HANDSHAKE_PROXY_IDLE_TIMEOUT``; lists are
comma-separated; switches take 1/true/yes/on or 0/false/no/off). A flag wins over
the variable: ``--no-require-ems`` turns off what ``HANDSHAKE_PROXY_REQUIRE_EMS=1``
turned on.

Every ``serve`` configuration error is one line on stderr and exit status 2,
including the ones argparse finds (a bad number, an unknown option).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .messages import format_authority

__all__ = ["main", "build_parser", "config_from_args"]

ENV_PREFIX = "HANDSHAKE_PROXY_"
MAX_CERT_DAYS = 36500  # proxy.certs.MAX_DAYS, which the parser must not import (it loads cryptography)


class _Parser(argparse.ArgumentParser):
    """argparse, except that a parser made with ``one_line_errors=True`` reports a
    usage error as one ``handshake-proxy: error:`` line (serve's configuration
    errors all look alike, whether argparse or the program finds them)."""

    def __init__(self, *args: Any, one_line_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.one_line_errors = one_line_errors

    def error(self, message: str) -> NoReturn:
        if not self.one_line_errors:
            super().error(message)
        print(f"handshake-proxy: error: {message}", file=sys.stderr)
        raise SystemExit(2)


class _FromEnv(str):
    """A default taken from a HANDSHAKE_PROXY_* variable: argparse hands string
    defaults to the option's type as they are, so the type can tell a value from
    the environment (and name the variable) from one typed as a flag."""

    env_name: str

    def __new__(cls, value: str, env_name: str) -> _FromEnv:
        self = super().__new__(cls, value)
        self.env_name = env_name
        return self


def _env(dest: str) -> _FromEnv | None:
    name = ENV_PREFIX + dest.upper()
    value = os.environ.get(name)
    return None if value is None else _FromEnv(value, name)


SWITCH_ON = ("1", "true", "yes", "on")
SWITCH_OFF = ("0", "false", "no", "off")


def _switch_value(text: str, env_name: str) -> bool:
    """A switch variable's value; ValueError for anything else, so a typo is not
    silently 'off'."""
    word = text.strip().lower()
    if word in SWITCH_ON:
        return True
    if word in SWITCH_OFF:
        return False
    raise ValueError(f"{env_name}: {text!r} is not a switch value; accepted (any case): "
                     f"{'/'.join(SWITCH_ON)} or {'/'.join(SWITCH_OFF)}")


def _switch(args: argparse.Namespace, dest: str) -> bool:
    """A switch's setting: the flag's bool, else the variable's word, else the default."""
    value = getattr(args, dest)
    if isinstance(value, _FromEnv):
        return _switch_value(value, value.env_name)
    return bool(value)


def _number(kind: str, minimum: float, maximum: float | None = None) -> Callable[[str], Any]:
    """An argparse type for a finite number in [minimum, maximum] whose error names
    the variable when the text came from one."""
    convert: Any = float if kind == "float" else int

    def parse(text: str) -> Any:
        source = f" (from {text.env_name})" if isinstance(text, _FromEnv) else ""
        try:
            value = convert(text)
        except ValueError:
            what = "a whole number" if kind == "int" else "a number"
            raise argparse.ArgumentTypeError(f"{text!r}{source} is not {what}") from None
        # float() accepts nan and inf; nan compares false with every bound and
        # would pass the checks below, turning a timeout off.
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r}{source} is not a finite number")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}{source} is below the minimum of "
                                             f"{minimum:g}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{text!r}{source} is above the maximum of "
                                             f"{maximum:g}")
        return value

    return parse


def _add(p: argparse.ArgumentParser, flag: str, *, kind: str = "str", default: Any = None,
         help: str, metavar: str | None = None, minimum: float = 0) -> None:
    """An option whose default may come from the environment."""
    dest = flag.lstrip("-").replace("-", "_")
    env = _env(dest)
    env_help = f" [env {ENV_PREFIX}{dest.upper()}]"
    if kind == "flag":
        # The variable's word is checked when the configuration is built
        # (_switch), not here: a bad serve variable must not break other commands.
        p.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction,
                       default=default if env is None else env, help=help + env_help)
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
    p.add_argument(flag, dest=dest, type=_number(kind, minimum),
                   default=default if env is None else env, metavar=metavar,
                   help=help + env_help)


def _serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the proxy", one_line_errors=True,
                       description="Run the HTTPS forward proxy: TLS 1.2 (RSA key transport) "
                                   "from clients, plain HTTP/1.1 to origins, decrypted log. "
                                   "Switches from the environment take 1/true/yes/on or "
                                   "0/false/no/off (any case); --no-SWITCH overrides one.")
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


def _credentials(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(where it came from, USER:PASS) for every credential --auth and --auth-file give.

    Asking for authentication and getting no credentials is an error, never an
    open proxy: an empty --auth, or an --auth-file (even an empty name) that
    cannot be read or holds no USER:PASS line.
    """
    from .config import read_auth_file
    auth_given = args.auth is not None or args.auth_default is not None
    auth_source = "--auth" if args.auth is not None else ENV_PREFIX + "AUTH"
    auth = [(auth_source, a) for a in _list(args, "auth")]
    if auth_given and not auth:
        raise ValueError(f"{auth_source} is set but names no USER:PASS")
    if args.auth_file is not None:
        if not args.auth_file:  # "" would read as the current directory
            raise ValueError(f"{_source(args.auth_file, '--auth-file')} is set but names no file")
        try:
            auth += read_auth_file(args.auth_file)
        except OSError as exc:
            raise ValueError(f"cannot read the auth file {args.auth_file!r}: "
                             f"{exc.strerror or exc}") from None
    return auth


def config_from_args(args: argparse.Namespace) -> Any:
    """A ProxyConfig from parsed ``serve`` arguments; ValueError/OSError on bad input."""
    from .config import (
        DEFAULT_ALLOWED_CLIENTS,
        ProxyConfig,
        basic_credentials,
        parse_cipher_suites,
        parse_host_port,
        parse_networks,
    )
    host, port = parse_host_port(args.listen)
    if not args.cert or not args.key:
        raise ValueError("serve needs --cert CHAIN.pem and --key KEY.pem "
                         "(`handshake-proxy certs --out DIR` makes them)")
    auth = _credentials(args)
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
        require_extended_master_secret=_switch(args, "require_ems"),
        handshake_timeout=args.handshake_timeout, idle_timeout=args.idle_timeout,
        header_timeout=args.header_timeout, connect_timeout=args.connect_timeout,
        origin_timeout=args.origin_timeout, grace_period=args.grace_period,
        max_connections=args.max_connections, max_header_bytes=args.max_header_bytes,
        pool_size=args.pool_size,
        allowed_clients=parse_networks(_list(args, "allow_client") or list(DEFAULT_ALLOWED_CLIENTS)),
        auth=frozenset(basic_credentials(a, source) for source, a in auth),
        redact_headers=frozenset(h.lower().encode() for h in _list(args, "redact_header")),
        connect_ports=frozenset(ports), x_forwarded_for=_switch(args, "x_forwarded_for"),
        preview_bytes=args.preview_bytes, bodies_dir=args.bodies,
    )


def _fail(message: str) -> int:
    print(f"handshake-proxy: error: {message}", file=sys.stderr)
    return 2


def _source(value: object, flag: str) -> str:
    """How to name where a setting came from: its flag, or its variable."""
    return value.env_name if isinstance(value, _FromEnv) else flag


def _silence_stdout() -> None:
    """Point stdout at /dev/null: its reader is gone (`serve | head -1`), and the
    interpreter's final flush must not print a BrokenPipeError traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _say(line: str) -> None:
    """Print a status line; a closed stdout is not a reason to stop serving."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        _silence_stdout()


def _file_problem(path: str) -> str | None:
    """Why ``path`` cannot be a certificate or key file, or None."""
    if os.path.isdir(path):
        return "it is a directory"
    if not os.path.isfile(path):
        return "no such file"
    return None


def _prepare_bodies_dir(path: str, source: str) -> None:
    """Make (or refuse) --bodies now, not on the first body."""
    from .bodystore import BodyStore
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{source} {path!r} is not a directory")
    try:
        BodyStore.for_directory(path)
    except OSError as exc:
        raise ValueError(f"{source} {path!r}: cannot create the directory: "
                         f"{exc.strerror or exc}") from None


def _cmd_serve(args: argparse.Namespace) -> int:
    from .certs import describe_certificate
    from .server import ProxyServer
    from .traffic_log import TrafficLog

    try:
        config = config_from_args(args)
        for label, path in (("certificate chain", config.cert), ("key", config.key)):
            problem = _file_problem(path)
            if problem is not None:
                return _fail(f"cannot read the {label} {path!r}: {problem}")
        subject, fingerprint = describe_certificate(config.cert)
        if config.bodies_dir:
            _prepare_bodies_dir(config.bodies_dir, _source(args.bodies, "--bodies"))
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
        _say(f"handshake-proxy listening on https://{format_authority(host, port)}")
        _say(f"  certificate: {subject}")
        _say(f"  sha256 fingerprint: {fingerprint}")
        if config.traffic_log:
            _say(f"  traffic log: {config.traffic_log}")
        await server.serve_until_signal(stop)
        log.close()
        _say("handshake-proxy stopped")
        return 0

    return asyncio.run(run())


def _certs_out_problem(out: str, force: bool) -> str | None:
    """Why ``certs --out`` cannot write there, found before anything is made."""
    from .certs import CertPaths
    if os.path.exists(out) and not os.path.isdir(out):
        return f"--out {out!r} is not a directory"
    existing = CertPaths.in_directory(out).existing()
    if existing and not force:
        # Clients that trust the old CA would stop trusting the proxy.
        return (f"--out {out!r} already holds {', '.join(p.name for p in existing)}; "
                "a new CA would replace the one clients trust (--force to replace it)")
    return None


def _cmd_certs(args: argparse.Namespace) -> int:
    from .certs import DEFAULT_NAMES, describe_certificate, make_certs
    names = tuple(args.name or DEFAULT_NAMES)
    problem = _certs_out_problem(args.out, args.force)
    if problem is not None:
        return _fail(problem)
    try:
        paths = make_certs(args.out, names, days=args.days, force=args.force)
    except OSError as exc:
        return _fail(f"--out {args.out!r}: cannot write: {exc.strerror or exc}")
    except ValueError as exc:
        return _fail(str(exc))
    subject, fingerprint = describe_certificate(paths.chain)
    print(f"wrote {paths.ca} (CA), {paths.chain} (certificate chain), {paths.key} (RSA-2048 key)")
    print(f"  certificate: {subject} for {', '.join(names)}")
    print(f"  sha256 fingerprint: {fingerprint}")
    return 0


def _cmd_client(args: argparse.Namespace) -> int:
    from handshake import CertificateError, ProtocolError

    from .client import fetch
    from .logview import os_reason
    body = args.data.encode() if args.data is not None else b""
    if args.data_file:
        try:
            with open(args.data_file, "rb") as f:
                body = f.read()
        except OSError as exc:
            return _fail(f"--data-file {args.data_file}: {os_reason(exc)}")
    problem = _file_problem(args.ca)
    if problem is not None:
        return _fail(f"--ca {args.ca}: {problem}")
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
    except OSError as exc:
        if exc.filename is not None:  # the CA file, unreadable
            return _fail(f"--ca {exc.filename}: {os_reason(exc)}")
        return _fail(str(exc) or type(exc).__name__)
    except (ProtocolError, ValueError) as exc:
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
        _say(f"echo origin listening on http://{format_authority(h, p)}")
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
    parser = _Parser(
        prog="handshake-proxy",
        description="An HTTPS forward proxy whose TLS 1.2 handshake is its own.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _serve_parser(sub)

    p = sub.add_parser("certs", help="make a CA and a proxy certificate (RSA-2048)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="where to write ca.pem, cert.pem and key.pem (made if missing)")
    p.add_argument("--name", action="append", metavar="NAME",
                   help="DNS name or IP address (repeatable; default localhost and 127.0.0.1)")
    p.add_argument("--days", type=_number("int", 1, MAX_CERT_DAYS), default=365,
                   help=f"validity, 1 to {MAX_CERT_DAYS} (default 365)")
    p.add_argument("--force", action="store_true",
                   help="replace the files if DIR already holds them (a new CA: clients "
                        "that trusted the old one must be given the new ca.pem)")
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
    p.add_argument("--timeout", type=_number("float", 0.001), default=30.0, metavar="S",
                   help="seconds for connecting and for each wait for the proxy (default 30)")
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
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        # argparse finds unknown arguments at the top level, after `serve` has
        # parsed its own: report them the way serve reports its other errors.
        message = f"unrecognized arguments: {' '.join(extras)}"
        if args.command == "serve":
            return _fail(message)
        parser.error(message)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `handshake-proxy client ... | head -1`
        _silence_stdout()
        return 0
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
