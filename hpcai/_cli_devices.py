"""``hpcai devices``: the devices this machine offers, and backends that are missing."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._config import format_size


def _rows() -> list[dict[str, Any]]:
    from ._device import all_devices, unavailable_backends

    rows: list[dict[str, Any]] = []
    for d in all_devices():
        s = d.spec
        rows.append(
            {
                "device": s.name,
                "backend": s.backend,
                "kind": s.kind + (f" ({s.preset})" if s.preset else ""),
                "memory": s.memory,
                "native_dtypes": sorted(s.native_dtypes),
                "precision": s.precision,
                "attributes": dict(s.attributes),
                "status": "available",
            }
        )
    for name, hint in unavailable_backends().items():
        rows.append(
            {
                "device": f"{name}:*",
                "backend": name,
                "kind": "-",
                "memory": None,
                "native_dtypes": [],
                "precision": "-",
                "attributes": {},
                "status": f"unavailable: {hint}",
            }
        )
    return rows


def _dtypes_summary(names: list[str]) -> str:
    if not names:
        return "-"
    fp64 = "float64" in names
    low = [n for n in names if n in ("bfloat16", "float16") or n.startswith("float8")]
    return ("fp64" if fp64 else "no-fp64") + (", " + ", ".join(low) if low else "")


def run(args: argparse.Namespace) -> int:
    rows = _rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("device", "backend", "kind", "memory", "native dtypes", "status")
    table = [header]
    for r in rows:
        table.append(
            (r["device"], r["backend"], r["kind"], format_size(r["memory"]), _dtypes_summary(r["native_dtypes"]), r["status"])
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("devices", help="list devices and backends")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
