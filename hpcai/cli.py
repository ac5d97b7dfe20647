"""The ``hpcai`` command line. Each subcommand lives in its own ``hpcai._cli_*`` module.

Exit codes, the same for every command:

====  ==========================================================================
0     success
1     error (bad input, a missing file, a network failure, ...)
2     usage (unknown command or option)
3     refused by the residency policy (a ``ResidencyError``)
4     the audit log failed verification (``hpcai audit verify``)
130   interrupted (Ctrl-C); copies in flight are not left half-written
141   the output pipe was closed early (e.g. ``hpcai devices --json | head``)
====  ==========================================================================

Errors are one line on stderr (``hpcai: error: ...``), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .errors import AuditError, HpcaiError, ResidencyError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_TAMPERED = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE, what `yes | head` gives

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
        epilog="exit codes: 0 ok, 1 error, 2 usage, 3 refused by the residency policy, "
        "4 audit log failed verification, 130 interrupted, 141 output pipe closed",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
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
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except AuditError as exc:  # the log cannot be read or written: an error, not a policy refusal
        print(f"hpcai: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ResidencyError as exc:
        print(f"hpcai: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except HpcaiError as exc:
        print(f"hpcai: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("hpcai: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Whoever read our output stopped reading: point stdout at /dev/null so that the
        # interpreter's final flush does not fail again, and exit as a piped tool does.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_CLOSED_PIPE


if __name__ == "__main__":
    sys.exit(main())
