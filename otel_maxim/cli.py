"""The ``otel-maxim`` command: ``show`` a records file, or run the OTLP ``bridge``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from otel_maxim import environment_variables as env
from otel_maxim.tree import render_tree

_BRIDGE_EPILOG = f"""\
Every flag falls back to an environment variable, then to its default:
{env.MAXIM_BRIDGE_HOST}, {env.MAXIM_BRIDGE_PORT}, {env.MAXIM_BRIDGE_TOKEN}, {env.MAXIM_BRIDGE_MAX_BODY_BYTES},
{env.MAXIM_BRIDGE_QUEUE_SIZE}, {env.MAXIM_BRIDGE_CROSS_SERVICE_GRACE}, {env.MAXIM_BRIDGE_RETRY_AFTER},
{env.MAXIM_BRIDGE_HEADER_TIMEOUT}, {env.MAXIM_BRIDGE_BODY_TIMEOUT}, {env.MAXIM_BRIDGE_MAX_CONNECTIONS},
{env.MAXIM_BRIDGE_MAX_PENDING_BYTES}.
Where records go is the exporter's own configuration: {env.MAXIM_API_KEY} and {env.MAXIM_LOG_REPO_ID}
(Maxim's log API), else {env.MAXIM_RECORDS_FILE} (a local file).  Prefer {env.MAXIM_BRIDGE_TOKEN} to --token:
a flag is visible to every user of the machine in the process list.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-maxim", description="Maxim sessions for OpenTelemetry.")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="print a records file as a tree (session -> traces -> spans)")
    show.add_argument("file", help="a records file, or - for standard input")
    bridge = commands.add_parser(
        "bridge",
        help="receive OTLP/HTTP traces (e.g. from a Collector) and send them to Maxim as sessions",
        description="An OTLP/HTTP receiver at POST /v1/traces (protobuf or JSON, gzip or not) that feeds\n"
        "the Maxim exporter; GET /healthz for probes.  Stops gracefully on SIGTERM or SIGINT.\n"
        "Needs the 'bridge' extra: pip install '.[bridge]' in a checkout of otel_maxim.",
        epilog=_BRIDGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bridge.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
    bridge.add_argument("--port", type=int, help="port to listen on, 0 for any free port (default 4318)")
    bridge.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every request")
    bridge.add_argument("--max-body-bytes", type=int, help="largest request body, before or after gzip")
    bridge.add_argument("--queue-size", type=int, help="spans queued for the exporter before answering 503")
    bridge.add_argument(
        "--max-pending-bytes",
        type=int,
        help="bytes held at once for requests (bodies being read, decoded spans waiting for the exporter) "
        "before answering 503 (default 128 MiB)",
    )
    bridge.add_argument(
        "--cross-service-grace",
        type=float,
        help="seconds a trace waits for the spans of a calling service (default 10)",
    )
    bridge.add_argument("--retry-after", type=int, help="Retry-After seconds sent with 503 (default 2)")
    bridge.add_argument(
        "--header-timeout",
        type=float,
        help="seconds a connection may take to send a request's line and headers (default 10)",
    )
    bridge.add_argument(
        "--body-timeout",
        type=float,
        help="seconds a request's whole body may take once its head is in, else 408 (default 30)",
    )
    bridge.add_argument(
        "--max-connections",
        type=int,
        help="connections held open at once; one more is answered 503 with Retry-After (default 1000)",
    )
    bridge.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO"
    )
    args = parser.parse_args(argv)

    if args.command == "bridge":
        return _bridge(args)
    return _show(args.file)


#: The exit status a shell reports for a command stopped by SIGPIPE (128 + 13), as ``cat FILE | head`` does.
_SIGPIPE_STATUS = 141


def _show(file: str) -> int:
    # A file and standard input are read alike: as UTF-8 (records are ASCII, as otel_maxim writes
    # them), where a byte that is not UTF-8 spoils its own line only, which is then counted as not a
    # record like any other bad line.
    if file == "-" and sys.stdin is None:  # started with standard input closed (`<&-`)
        print("otel-maxim: cannot read -: standard input is closed", file=sys.stderr)
        return 1
    try:
        source = sys.stdin.fileno() if file == "-" else file
        with open(source, encoding="utf-8", errors="replace", closefd=file != "-") as f:
            tree = render_tree(f)
    except OSError as exc:
        print(f"otel-maxim: cannot read {file}: {exc}", file=sys.stderr)
        return 1
    try:
        print(tree, flush=True)
    except BrokenPipeError:
        # The reader has gone (`otel-maxim show FILE | head`): stop quietly, as Unix tools do.  What
        # is left in the buffer would fail again when Python flushes standard output on its way out,
        # with a message of its own; standard output on /dev/null takes it instead.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return _SIGPIPE_STATUS
    return 0


def _bridge(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from otel_maxim.bridge import Bridge, ListenError, serve  # noqa: PLC0415 - the server is an optional extra
    except ImportError as exc:
        print(
            f"otel-maxim: the bridge needs the 'bridge' extra ({exc.name} is missing): "
            "pip install '.[bridge]' in a checkout of otel_maxim",
            file=sys.stderr,
        )
        return 2
    try:
        bridge = Bridge(
            token=args.token,
            max_body_bytes=args.max_body_bytes,
            queue_size=args.queue_size,
            cross_service_grace=args.cross_service_grace,
            retry_after=args.retry_after,
            max_pending_bytes=args.max_pending_bytes,
        )
    except ValueError as exc:
        print(f"otel-maxim bridge: {_flag_names(str(exc))}", file=sys.stderr)
        return 2
    try:
        serve(
            bridge,
            args.host,
            args.port,
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
            max_connections=args.max_connections,
        )
    except ValueError as exc:
        print(f"otel-maxim bridge: {_flag_names(str(exc))}", file=sys.stderr)
        return 2
    except ListenError as exc:
        print(f"otel-maxim bridge: {exc.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # uvicorn re-raises SIGINT after its graceful shutdown, which has flushed
        return 130
    return 0


_FLAGS = frozenset(
    {
        "max_body_bytes",
        "queue_size",
        "cross_service_grace",
        "retry_after",
        "port",
        "token",
        "header_timeout",
        "body_timeout",
        "max_connections",
        "max_pending_bytes",
    }
)


def _flag_names(message: str) -> str:
    """A ``ValueError`` message that starts with an argument name, with the flag the user typed instead."""
    name, space, rest = message.partition(" ")
    return f"--{name.replace('_', '-')}{space}{rest}" if name in _FLAGS else message


if __name__ == "__main__":
    sys.exit(main())
