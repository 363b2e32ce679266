"""The `tinyvit` command line (entry point tinyvit=tinyvit.cli:main)."""
from __future__ import annotations

import argparse
import sys

from .store_cli import add_store_parsers


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tinyvit", description="tinyvit command line tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_store_parsers(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
