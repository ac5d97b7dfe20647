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

Errors are one line on stderr (``hpcai: error: ...``), never a traceback. Every command
takes ``--json``: its result is one JSON document on stdout, and so is a failure
(``{"ok": false, "exit_code": 3, "error": "refused", "type": "ResidencyError",
"message": "..."}``, usage errors included), besides the line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .errors import AuditError, HpcaiError, ResidencyError


class CommandError(Exception):
    """A command failed for a reason the user can fix (exit 1, one line, no traceback)."""


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
    "hpcai._cli_energy",
]


#: Whether the command line being parsed asked for JSON (usage errors are reported in it too).
_json_wanted = False


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are also a JSON document when ``--json`` was given."""

    def error(self, message: str) -> NoReturn:
        if _json_wanted:
            _emit_error(EXIT_USAGE, "usage", "UsageError", f"{self.prog}: {message}")
        super().error(message)


def _emit_error(code: int, kind: str, type_name: str, message: str) -> None:
    doc = {"ok": False, "exit_code": code, "error": kind, "type": type_name, "message": message}
    try:
        print(json.dumps(doc, indent=2))
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass


def _add_json(parser: argparse.ArgumentParser) -> None:
    """Give every (sub)command a ``--json`` flag (those that print JSON results declare their own)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _add_json(child)
    has_sub = any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
    if not has_sub and "--json" not in parser._option_string_actions:
        parser.add_argument("--json", action="store_true", help="machine-readable output (one JSON document)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hpcai",
        description="hpcai: vendor-neutral arrays with explicit locality, residency policies and audit.",
        epilog="exit codes: 0 ok, 1 error, 2 usage, 3 refused by the residency policy, "
        "4 audit log failed verification, 130 interrupted, 141 output pipe closed",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", help="configuration file (default: $HPCAI_CONFIG, ./hpcai.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _add_json(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hpcai`` console script; returns the exit code."""
    global _json_wanted
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    _json_wanted = "--json" in raw[: raw.index("--")] if "--" in raw else "--json" in raw
    args = parser.parse_args(raw)
    if args.command is None:
        if _json_wanted:
            _emit_error(EXIT_USAGE, "usage", "UsageError", "hpcai: a command is required (see hpcai --help)")
        parser.print_help()
        return 2
    as_json = bool(getattr(args, "json", False))

    def failed(code: int, kind: str, exc: BaseException, prefix: str = "error") -> int:
        if as_json:
            _emit_error(code, kind, type(exc).__name__, str(exc))
        print(f"hpcai: {prefix}: {exc}", file=sys.stderr)
        return code

    try:
        if args.config:
            from ._config import configure

            configure(args.config)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except AuditError as exc:  # the log cannot be read or written: an error, not a policy refusal
        return failed(EXIT_ERROR, "error", exc)
    except ResidencyError as exc:
        return failed(EXIT_REFUSED, "refused", exc, "refused")
    except (HpcaiError, CommandError) as exc:
        return failed(EXIT_ERROR, "error", exc)
    except KeyboardInterrupt:
        if as_json:
            _emit_error(EXIT_INTERRUPTED, "interrupted", "KeyboardInterrupt", "interrupted")
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
