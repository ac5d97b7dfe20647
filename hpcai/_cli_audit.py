"""``hpcai audit show|verify``: read the audit log and check its hash chain."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _tags(tags: Any) -> str:
    if not isinstance(tags, dict) or not tags:
        return "-"
    return ", ".join(f"{k}={'|'.join(v) if isinstance(v, list) else v}" for k, v in tags.items())


def run_show(args: argparse.Namespace) -> int:
    from . import audit

    path = args.log or audit.log_path()
    records = audit.read(path)
    if args.tail is not None:
        records = records[-args.tail :] if args.tail > 0 else []
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    if not records:
        print(f"audit log {path}: no records")
        return 0
    rows = [("seq", "time (UTC)", "user@host", "operation", "tags", "bytes", "from -> to", "decision", "rule")]
    for r in records:
        decision = str(r.get("decision", "-"))
        if r.get("effect") == "audit":
            decision += " (audit)"
        rows.append(
            (
                str(r.get("seq", "?")),
                str(r.get("time", ""))[:19].replace("T", " "),
                f"{r.get('user', '?')}@{r.get('host', '?')}",
                str(r.get("operation", "-")),
                _tags(r.get("tags")),
                f"{r.get('bytes', 0):,}" if isinstance(r.get("bytes"), int) else "-",
                f"{r.get('source') or '-'} -> {r.get('destination') or '-'}",
                decision,
                str(r.get("rule") or ("reason: " + str(r.get("reason")) if r.get("operation") == "untag" else "-")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"audit log {path}: {len(records)} record(s)")
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from . import audit

    res = audit.verify(args.log, anchor=args.anchor)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": res.ok,
                    "path": res.path,
                    "count": res.count,
                    "first_bad_index": res.first_bad_index,
                    "reason": res.reason,
                    "head_hash": res.head_hash,
                },
                indent=2,
            )
        )
    elif res.ok:
        print(f"audit log {res.path}: OK, {res.count} record(s), chain intact")
        if res.head_hash:
            print(f"head: {res.head_hash} (publish it and check later with --anchor)")
        if res.reason:
            print(f"note: {res.reason}")
    else:
        print(f"audit log {res.path}: FAILED at {res.reason}", file=sys.stderr)
    return 0 if res.ok else 4


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="show and verify the audit log")
    asub = p.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    s = asub.add_parser("show", help="print the audit records")
    s.add_argument("--log", help="audit log file (default: [audit] path, $HPCAI_AUDIT_LOG, or the state dir)")
    s.add_argument("--tail", type=int, metavar="N", help="only the last N records")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=run_show)
    v = asub.add_parser("verify", help="check the hash chain (exit 0 intact, 4 tampered, naming the first bad record)")
    v.add_argument("--log", help="audit log file (default: as for show)")
    v.add_argument("--anchor", metavar="HASH", help="a head hash published earlier that must still be in the log")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.set_defaults(func=run_verify)
