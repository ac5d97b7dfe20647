"""``hpcai energy``: meters available here (or why not) and reports of recorded runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .cli import CommandError


def _meters(args: argparse.Namespace) -> int:
    from .energy import discover

    rows = [{"meter": m.name, "available": m.available, "detail": m.reason} for m in discover(args.powercap)]
    if args.json:
        print(json.dumps({"ok": True, "meters": rows}, indent=2))
        return 0
    from ._advisor import format_table

    table: list[tuple[str, str, str]] = [("meter", "status", "detail")]
    table += [(str(r["meter"]), "available" if r["available"] else "missing", str(r["detail"])) for r in rows]
    print(format_table(table))
    if not any(r["available"] for r in rows):
        print("no meter works here: every energy figure is modelled (the reasons are above)")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .energy import EnergyReport

    path = Path(args.path)
    try:
        doc: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise CommandError(f"energy report: {path}: no such file (write one with EnergyReport.save(path))") from None
    except (OSError, ValueError) as exc:
        raise CommandError(f"energy report: {path}: not readable JSON ({exc})") from None
    report = EnergyReport.from_dict(doc, str(path))
    if args.json:
        print(json.dumps({"ok": True, **report.to_dict()}, indent=2))
    else:
        print(f"energy report {path} ({report.seconds:.3f} s)")
        print(report.table())
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("energy", help="energy meters and reports (measured and modelled kept apart)")
    esub = p.add_subparsers(dest="energy_command", metavar="SUBCOMMAND", required=True)
    m = esub.add_parser("meters", help="which energy meters work here, and why the others do not")
    m.add_argument("--powercap", default=None, help="powercap root (default /sys/class/powercap)")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.set_defaults(func=_meters)
    r = esub.add_parser("report", help="the table of a recorded run (a file from EnergyReport.save)")
    r.add_argument("path", help="JSON file written by EnergyReport.save() / e.to_json()")
    r.add_argument("--json", action="store_true", help="machine-readable output")
    r.set_defaults(func=_report)
