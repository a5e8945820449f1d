"""`handshake-proxy log show|har|stats`: the command line of the traffic-log readers.

proxy/cli.py owns the top-level parser and calls `add_parser(subparsers)`, then
`args.func(args)`. The readers are imported inside the handlers so that the
rest of the CLI starts without loading them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `log` command and its subcommands show, har and stats."""
    log = subparsers.add_parser(
        "log", help="read the decrypted traffic log (show, har, stats)",
        description="Read the JSON Lines traffic log written by `serve --traffic-log`.")
    log_sub = log.add_subparsers(dest="log_command", metavar="{show,har,stats}")
    log_sub.required = True
    # `log` alone prints its usage instead of a traceback.
    log.set_defaults(func=lambda args: _usage(log))

    show = log_sub.add_parser(
        "show", help="one readable line per exchange; filters; follow mode",
        description="One line per exchange: time, client, method, URL, status, "
                    "sizes, duration, cipher suite.")
    show.add_argument("file", help="traffic log (JSON Lines)")
    _add_filters(show)
    view = show.add_mutually_exclusive_group()
    view.add_argument("--full", action="store_true",
                      help="also print headers and body previews (full bodies when stored)")
    view.add_argument("--json", action="store_true",
                      help="print the matching records themselves, as JSON Lines (for jq and "
                           "scripts; with --handshakes, their connections' records too)")
    show.add_argument("--handshakes", action="store_true",
                      help="draw each connection's handshake as the seed's ladder")
    show.add_argument("--bodies", metavar="DIR",
                      help="where `serve --bodies` stored full bodies (default: the path "
                           "recorded in the log)")
    show.add_argument("--follow", "-f", action="store_true",
                      help="keep reading as the proxy appends (Ctrl-C to stop)")
    show.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                      help="colour: auto = only on a terminal and when NO_COLOR is unset")
    show.set_defaults(func=_show)

    har = log_sub.add_parser("har", help="export HAR 1.2",
                             description="Export the exchanges as an HTTP Archive (HAR 1.2).")
    har.add_argument("file", help="traffic log (JSON Lines)")
    har.add_argument("-o", "--output", metavar="OUT.har", default="-",
                     help="where to write the HAR (default: standard output)")
    har.add_argument("--bodies", metavar="DIR",
                     help="where `serve --bodies` stored full bodies, to embed them")
    _add_filters(har)
    har.set_defaults(func=_har)

    stats = log_sub.add_parser("stats", help="counts and latency percentiles",
                               description="Counts by status, host and cipher suite; "
                                           "handshake and exchange latency percentiles.")
    stats.add_argument("file", help="traffic log (JSON Lines)")
    stats.add_argument("--json", action="store_true", help="print the figures as JSON")
    _add_filters(stats)
    stats.set_defaults(func=_stats)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters (all must match)")
    group.add_argument("--host", help="origin host (exact, or a suffix like .example.com; "
                                      "an IP address matches only itself)")
    group.add_argument("--method", help="request method, e.g. POST (case-insensitive)")
    group.add_argument("--status", help="status code or class: 404, 5xx, 2xx,3xx; "
                                        "'error' for exchanges without a response")
    group.add_argument("--since", help="ISO time (2026-11-28T15:00:00Z) or relative: 30s, 10m, 2h, 1d")
    group.add_argument("--conn", help="connection id, e.g. c000001")


def _piped(run: Callable[[], int]) -> int:
    """`log show ... | head` closes the pipe early: that is not an error."""
    try:
        return run()
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    return 2


def _filters(args: argparse.Namespace) -> object:
    from proxy.logview import Filter
    try:
        return Filter.from_options(host=args.host, method=args.method, status=args.status,
                                   since=args.since, conn=args.conn)
    except ValueError as exc:
        raise SystemExit(f"handshake-proxy log: {exc}") from None


def _show(args: argparse.Namespace) -> int:
    from proxy import logview
    flt = _filters(args)
    assert isinstance(flt, logview.Filter)
    if args.color == "always":
        color = True
    elif args.color == "never":
        color = False
    else:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    options = logview.ShowOptions(full=args.full, handshakes=args.handshakes, color=color,
                                  bodies_dir=args.bodies, as_json=args.json)
    try:
        return _piped(lambda: logview.show(args.file, flt, options, follow=args.follow))
    except KeyboardInterrupt:  # how --follow ends
        return 0


def _har(args: argparse.Namespace) -> int:
    from proxy import har, logview
    flt = _filters(args)
    assert isinstance(flt, logview.Filter)
    return _piped(lambda: har.export(args.file, args.output, flt, bodies_dir=args.bodies))


def _stats(args: argparse.Namespace) -> int:
    from proxy import logstats, logview
    flt = _filters(args)
    assert isinstance(flt, logview.Filter)
    return _piped(lambda: logstats.run(args.file, flt, as_json=args.json))
