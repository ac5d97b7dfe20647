"""Per-operation cost of hpcai against the raw library, measured in the same run.

    python benchmarks/dispatch.py [--quick] [--json]

For each operation (``x + y`` on untagged and on tagged arrays, ``xp.sum``, ``x @ y``, indexing) and size (1, 1e3, 1e6
elements) it times hpcai on ``numpy:cpu`` and raw NumPy (and, when JAX is installed, hpcai
on ``jax:cpu:0`` against raw ``jax.numpy``), alternating the two so that machine noise
hits both, and prints the ratio hpcai / raw and the time added per call. Absolute times
are noisy on shared machines; the ratios are what the project's targets are stated in:
``x + y`` at size 1 adds at most 0.35 us to raw NumPy (the goal is 0.3 us), at size 1e6 it
costs at most 1.05x.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import timeit
from collections.abc import Callable
from typing import Any

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import numpy as np

import hpcai as xp

SIZES = (1, 1_000, 1_000_000)


def _best(fn: Callable[[], Any], budget: float) -> float:
    """Best per-call seconds over several repeats, with ~budget seconds spent."""
    n = 1
    while True:
        t = timeit.timeit(fn, number=n)
        if t > budget / 20 or n > 1_000_000:
            break
        n *= 4
    return min(timeit.repeat(fn, number=n, repeat=7)) / n


def _pair(hp: Callable[[], Any], raw: Callable[[], Any], budget: float, rounds: int) -> tuple[float, float]:
    """Interleave measurements of the two callables and keep each one's best."""
    th, tr = math.inf, math.inf
    for _ in range(rounds):
        tr = min(tr, _best(raw, budget))
        th = min(th, _best(hp, budget))
    return th, tr


def _cases(size: int, xmod: Any, rawmod: Any, raw_from: Callable[[np.ndarray], Any],
           device: str, block: Callable[[Any], Any]) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(size)
    b = rng.standard_normal(size)
    n = max(1, round(math.sqrt(size)))
    m1 = rng.standard_normal((n, n))
    m2 = rng.standard_normal((n, n))
    ra, rb, rm1, rm2 = raw_from(a), raw_from(b), raw_from(m1), raw_from(m2)
    x, y = xmod.asarray(a, device=device), xmod.asarray(b, device=device)
    mx, my = xmod.asarray(m1, device=device), xmod.asarray(m2, device=device)
    # tagged operands (different tag sets, so the result's tags are a real union)
    tx = xmod.asarray(a, device=device, tags={"classification": "personal"})
    ty = xmod.asarray(b, device=device, tags={"origin": "DE"})
    i = size // 2
    return {
        "x + y": (lambda: block((x + y)._data), lambda: block(ra + rb)),
        "tagged x + y": (lambda: block((tx + ty)._data), lambda: block(ra + rb)),
        # on JAX, hpcai divides by a scalar where raw XLA multiplies by its reciprocal
        "x / y": (lambda: block((x / y)._data), lambda: block(ra / rb)),
        "x / 3.0": (lambda: block((x / 3.0)._data), lambda: block(ra / 3.0)),
        "sum(x)": (lambda: block(xmod.sum(x)._data), lambda: block(rawmod.sum(ra))),
        "x @ y": (lambda: block((mx @ my)._data), lambda: block(rm1 @ rm2)),
        "x[i]": (lambda: block(x[i]._data), lambda: block(ra[i])),
        "x[::2]": (lambda: block(x[::2]._data), lambda: block(ra[::2])),
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    budget = 0.02 if quick else 0.1
    rounds = 2 if quick else 3
    targets: list[tuple[str, Any, Callable[[np.ndarray], Any], str, Callable[[Any], Any]]] = [
        ("numpy", np, np.asarray, "numpy:cpu", lambda r: r)
    ]
    if any(str(d).startswith("jax:") for d in xp.all_devices()):
        import jax
        import jax.numpy as jnp

        dev0 = jax.devices("cpu")[0]
        targets.append(
            ("jax", jnp, lambda a: jax.device_put(a, dev0), "jax:cpu:0", lambda r: r.block_until_ready())
        )
    rows = []
    for lib, rawmod, raw_from, device, block in targets:
        for size in SIZES:
            for op, (hp, raw) in _cases(size, xp, rawmod, raw_from, device, block).items():
                hp()
                raw()
                th, tr = _pair(hp, raw, budget, rounds)
                rows.append(
                    {"library": lib, "op": op, "size": size, "ratio": th / tr, "added_us": (th - tr) * 1e6}
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter measurements")
    ap.add_argument("--json", action="store_true", help="print JSON rows")
    args = ap.parse_args(argv)
    rows = run(args.quick)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'library':8} {'op':12} {'size':>9} {'hpcai/raw':>10} {'added':>10}")
    for r in rows:
        print(f"{r['library']:8} {r['op']:12} {r['size']:>9,} {r['ratio']:>9.2f}x {r['added_us']:>8.2f}us")
    add1 = next(r for r in rows if r["library"] == "numpy" and r["op"] == "x + y" and r["size"] == 1)
    add6 = next(r for r in rows if r["library"] == "numpy" and r["op"] == "x + y" and r["size"] == 1_000_000)
    tag1 = next(r for r in rows if r["library"] == "numpy" and r["op"] == "tagged x + y" and r["size"] == 1)
    ok1 = add1["added_us"] <= 0.35
    ok6 = add6["ratio"] <= 1.05
    okt = tag1["added_us"] <= 1.0
    print(f"\nx + y, size 1:   {add1['ratio']:.2f}x, +{add1['added_us']:.2f} us  (target <= +0.35 us, goal +0.3 us): {'ok' if ok1 else 'MISSED'}")
    print(f"x + y, size 1e6: {add6['ratio']:.3f}x  (target <= 1.05x): {'ok' if ok6 else 'MISSED'}")
    print(f"tagged x + y, size 1: +{tag1['added_us']:.2f} us  (target <= +1 us): {'ok' if okt else 'MISSED'}")
    return 0 if (ok1 and ok6 and okt) else 1


if __name__ == "__main__":
    sys.exit(main())
