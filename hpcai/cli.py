"""The ``hpcai`` command line. Each subcommand lives in its own ``hpcai._cli_*`` module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import HpcaiError

#: Modules that add subcommands; each defines ``register(subparsers)``.
_COMMAND_MODULES = [
    "hpcai._cli_devices",
    "hpcai._cli_policy",
    "hpcai._cli_audit",
    "hpcai._cli_demo",
    "hpcai._cli_storage",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpcai",
        description="hpcai: vendor-neutral arrays with explicit locality, residency policies and audit.",
    )
    parser.add_argument("--config", help="configuration file (default: $HPCAI_CONFIG, ./hpcai.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hpcai`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.config:
            from ._config import configure

            configure(args.config)
        return int(args.func(args) or 0)
    except HpcaiError as exc:
        print(f"hpcai: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
