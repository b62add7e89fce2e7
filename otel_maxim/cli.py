"""The ``otel-maxim`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from otel_maxim.tree import render_tree


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-maxim", description="Maxim sessions for OpenTelemetry.")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="print a records file as a tree (session -> traces -> spans)")
    show.add_argument("file", help="a records file, or - for standard input")
    args = parser.parse_args(argv)

    if args.command == "show":
        if args.file == "-":
            print(render_tree(sys.stdin))
        else:
            try:
                with open(args.file, encoding="utf-8") as f:
                    print(render_tree(f))
            except OSError as exc:
                print(f"otel-maxim: {exc}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
