"""``hpcai demo``: an end-to-end tour on embedded defaults (no files or servers needed)."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _title(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 70 - len(text)))


def section_arrays(workdir: Path) -> None:
    """Devices, computing where the data lives, explicit moves and the transfer log."""
    import hpcai as xp
    from hpcai.errors import DeviceMismatchError, TransferForbiddenError, UnsupportedDtypeError

    _title("devices")
    for d in xp.all_devices():
        s = d.spec
        extra = f" preset={s.preset}" if s.preset else ""
        print(f"  {d!s:12} backend={s.backend:9} kind={s.kind}{extra}")

    _title("compute on the host, move explicitly, compute on an accelerator")
    n = 512
    rng = np.random.default_rng(0)
    a = xp.asarray(rng.standard_normal((n, n)))
    print(f"  a: {a.shape} {a.dtype} on {a.device}")
    with xp.transfers() as log:
        g = a.to_device("emulated:0")  # the only ways data moves are explicit
        c = g @ g.T + 1.0  # computed on emulated:0, stays there
        h = c.to_device("emulated:1")
        back = xp.asarray(h, device="numpy:cpu")
    print(f"  c = g @ g.T + 1 computed on {c.device}; result back on {back.device}")
    print("  transfer log:")
    for line in log.table().splitlines():
        print("    " + line)
    print(
        f"  {len(log)} moves, {log.total_bytes / 2**20:.1f} MiB, wall {log.wall_seconds * 1e3:.2f} ms, "
        f"modelled on PCIe Gen5 {log.modelled_seconds * 1e3:.2f} ms"
    )
    ref = np.asarray(a) @ np.asarray(a).T + 1.0
    print(f"  max |device - host| = {float(xp.max(xp.abs(back - xp.asarray(ref)))):.2e}")

    _title("nothing moves implicitly")
    try:
        _ = a + g
    except DeviceMismatchError as exc:
        print(f"  refused: {exc}")
    try:
        np.asarray(g)
    except TypeError as exc:
        print(f"  refused: {exc}")
    with xp.transfers(forbid=True):
        _ = g * 2.0  # computing is fine
        try:
            g.to_device("numpy:cpu")
        except TransferForbiddenError as exc:
            print(f"  refused: {exc}")

    _title("capabilities: an accelerator without FP64")
    x32 = xp.asarray([1.0, 2.0, 3.0], device="emulated:2")
    print(f"  default float on emulated:2 (gaudi3): {x32.dtype}")
    try:
        xp.asarray(np.ones(3), device="emulated:2")
    except UnsupportedDtypeError as exc:
        print(f"  refused: {exc}")


#: The demo's sections, in order; later parts of hpcai add theirs here.
SECTIONS: list[Callable[[Path], None]] = [section_arrays]

#: The embedded configuration the demo runs with.
DEMO_CONFIG: dict[str, Any] = {
    "devices": {"emulated:2": {"preset": "gaudi3", "memory": "8 GiB"}},
}


def run(args: argparse.Namespace) -> int:
    import hpcai as xp

    with tempfile.TemporaryDirectory(prefix="hpcai-demo-") as tmp:
        workdir = Path(tmp)
        xp.configure(data=DEMO_CONFIG)
        try:
            for section in SECTIONS:
                section(workdir)
        finally:
            xp.configure(data={})
    print("\ndemo finished.")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="an end-to-end tour on embedded defaults")
    p.set_defaults(func=run)
