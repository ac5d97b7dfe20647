"""``hpcai audit show|verify|anchor|keygen``: read the audit log, check its chain, anchor its head."""

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
                str(r.get("rule") or ("reason: " + str(r.get("reason")) if r.get("operation") in ("untag", "untaint") else "-")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"audit log {path}: {len(records)} record(s)")
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from . import audit

    res = audit.verify(args.log, anchor=args.anchor, allow_empty=args.allow_empty)
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
                    "keyed": res.keyed,
                    "key_id": res.key_id,
                    "anchors": res.anchors,
                    "notes": list(res.notes),
                },
                indent=2,
            )
        )
    elif res.ok:
        chain = f"keyed chain intact (key id {res.key_id})" if res.keyed else "chain intact but UNKEYED"
        print(f"audit log {res.path}: OK, {res.count} record(s), {chain}")
        if res.anchors:
            print(f"anchors: {res.anchors} checked, all still in the log")
        if res.head_hash:
            print(f"head: {res.head_hash} (publish it with `hpcai audit anchor --to PATH`, check with --anchor PATH)")
        for note in res.notes:
            print(f"note: {note}")
    else:
        sep = " at " if res.first_bad_index is not None else ": "
        print(f"audit log {res.path}: FAILED{sep}{res.reason}", file=sys.stderr)
    return 0 if res.ok else 4


def run_anchor(args: argparse.Namespace) -> int:
    from . import audit

    rec = audit.anchor(args.to, path=args.log)
    if args.json:
        print(json.dumps(rec, indent=2))
    else:
        print(f"anchored audit log {rec['log']} at {rec['count']} record(s), head {rec['hash']}, in {args.to}")
        print(f"check later with: hpcai audit verify --log {rec['log']} --anchor {args.to}")
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import audit

    key = audit.generate_key_file(args.file)
    path = Path(args.file).expanduser().absolute()
    if args.json:
        print(json.dumps({"ok": True, "key_file": str(path), "key_id": key.kid}, indent=2))
        return 0
    print(f"wrote a new audit key to {path} (mode 0600, key id {key.kid})")
    print(f"use it with HPCAI_AUDIT_KEY_FILE={path} or [audit] key_file = \"{path}\", and start a new log with it")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="show, verify and anchor the audit log")
    asub = p.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    s = asub.add_parser("show", help="print the audit records")
    s.add_argument("--log", help="audit log file (default: [audit] path, $HPCAI_AUDIT_LOG, or the state dir)")
    s.add_argument("--tail", type=int, metavar="N", help="only the last N records")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=run_show)
    v = asub.add_parser(
        "verify",
        help="check the chain, head and anchors (exit 0 intact, 4 tampered or missing, naming the first bad record)",
    )
    v.add_argument("--log", help="audit log file (default: as for show)")
    v.add_argument(
        "--anchor", metavar="PATH|URL|HASH",
        help="an anchor file or hpcai:// URL written by `hpcai audit anchor` (or a head hash published earlier): "
        "every anchored record must still be in the log at its position",
    )
    v.add_argument(
        "--allow-empty", action="store_true",
        help="a missing log (and head) is fine: nothing was recorded yet (by default it fails)",
    )
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.set_defaults(func=run_verify)
    a = asub.add_parser("anchor", help="publish the current head (count, last hash, time) to a second place")
    a.add_argument("--to", required=True, metavar="PATH|URL", help="anchor file (appended to) or hpcai://endpoint/path")
    a.add_argument("--log", help="audit log file (default: as for show)")
    a.add_argument("--json", action="store_true", help="machine-readable output")
    a.set_defaults(func=run_anchor)
    k = asub.add_parser("keygen", help="write a new random audit key file (mode 0600; never overwrites)")
    k.add_argument("file", help="the key file to create")
    k.set_defaults(func=run_keygen)
