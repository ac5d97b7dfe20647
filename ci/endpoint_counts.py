"""One line for ci/test.sh: how many storage tests ran against each kind of endpoint.

Usage: ``python ci/endpoint_counts.py MAIN.json RGW.json [WHY-RGW-WAS-SKIPPED]``. Each JSON
file is what tests/storage/conftest.py writes to ``$HPCAI_TEST_ENDPOINT_COUNTS`` (``{"moto":
{"passed": n, ...}, "POSIX": {...}, "Ceph RGW": {...}}``); a missing file means that pass
did not run storage tests. moto and POSIX come from the main pass, Ceph RGW from the RGW pass.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _read(path: str) -> dict[str, dict[str, int]]:
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else {}


def _fmt(counts: dict[str, int]) -> str:
    extra = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()) if outcome != "passed" and n)
    return f"{counts.get('passed', 0)} passed" + (f" ({extra})" if extra else "")


def summary(main: dict[str, dict[str, int]], rgw: dict[str, dict[str, int]], skipped: str = "") -> str:
    """``== storage tests per endpoint: moto 150 passed; POSIX 90 passed; Ceph RGW 80 passed``."""
    parts = [f"moto {_fmt(main.get('moto', {}))}", f"POSIX {_fmt(main.get('POSIX', {}))}"]
    if rgw:
        parts.append(f"Ceph RGW {_fmt(rgw.get('Ceph RGW', {}))}")
    else:
        parts.append(f"Ceph RGW not run ({skipped or 'no storage tests ran'})")
    return "== storage tests per endpoint: " + "; ".join(parts)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: endpoint_counts.py MAIN.json RGW.json [WHY-RGW-WAS-SKIPPED]")
    print(summary(_read(sys.argv[1]), _read(sys.argv[2]), sys.argv[3] if len(sys.argv) == 4 else ""))
