"""FP64 emulation (Ozaki scheme) against native DGEMM: accuracy and time, in the same run.

Inputs are ``(U - 0.5) * exp(phi * N(0, 1))`` (U uniform, N normal) for phi in {0, 1, 4}
and n in {256, 1024}. The reference is the exact product, correctly rounded: the inputs
are scaled to integers (each row / column by a power of two), cut into 18-bit float64
slices, every slice product is an exact dgemm (sums stay below 2**53), and the levels are
added per entry with ``math.fsum`` (exactly rounded).

Printed per case: norm-wise error ``max|dC| / max(|A||B|)`` in units of u = 2**-53,
componentwise error ``max |dC| / (|A||B|)`` and the maximum relative error
``max |dC| / |C|`` for native DGEMM and for each emulation, the slices/moduli used, the
bits retained, and the time as a ratio to DGEMM (best of ``--repeat`` runs, interleaved).

    python benchmarks/precision.py            # n = 256 and 1024
    python benchmarks/precision.py --n 256 --repeat 5
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import hpcai as xp

U = 2.0**-53


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Correctly rounded ``a @ b`` from exact 18-bit slice products and math.fsum."""
    w = 18

    def split(x: np.ndarray, axis: int) -> tuple[list[tuple[np.ndarray, int]], np.ndarray]:
        nz = np.where(x != 0, np.abs(x), np.inf)
        mn = np.min(nz, axis=axis, keepdims=True)
        _, emin = np.frexp(np.where(np.isfinite(mn), mn, 1.0))
        _, emax = np.frexp(np.max(np.abs(x), axis=axis, keepdims=True))
        shift = 53 - emin
        rem = np.ldexp(x, shift)
        n = -(-(int(np.max(emax - emin)) + 54) // w)
        parts = []
        for d in range(n - 1, -1, -1):
            t = np.trunc(rem / 2.0 ** (w * d))
            parts.append((t, d))
            rem = rem - t * 2.0 ** (w * d)
        assert not np.any(rem), "slicing must be exact"
        return parts, shift

    pa, sa = split(a, 1)
    pb, sb = split(b, 0)
    assert a.shape[1] * 2.0 ** (2 * w) * len(pa) * len(pb) < 2.0**53
    levels: dict[int, np.ndarray] = {}
    for ta, da in pa:
        for tb, db in pb:
            levels[da + db] = levels.get(da + db, 0) + ta @ tb
    keys = sorted(levels)
    scale = -sa.astype(np.int64) - sb.astype(np.int64)  # (m, n)
    stack = [
        np.ldexp(levels[k], scale + w * k) for k in keys
    ]  # exact: integers scaled by powers of 2
    flat = np.stack([s.ravel() for s in stack], axis=1).tolist()
    return np.array([math.fsum(row) for row in flat]).reshape(a.shape[0], b.shape[1])


def timed(fn, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def errors(c: np.ndarray, ref: np.ndarray, absab: np.ndarray) -> tuple[float, float, float]:
    d = np.abs(c - ref)
    nz = ref != 0
    return (
        float(d.max() / absab.max()),
        float(np.max(d / absab)),
        float(np.max(d[nz] / np.abs(ref[nz]))),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--phi", type=float, nargs="+", default=[0.0, 1.0, 4.0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(2024)
    head = f"{'n':>5} {'phi':>4} {'method':<8} {'slices':>6} {'bits':>4} {'normwise/u':>10} {'compwise/u':>10} {'max rel':>9} {'time s':>8} {'x DGEMM':>8}"
    print(head)
    print("-" * len(head))
    for n in args.n:
        for phi in args.phi:
            a = (rng.random((n, n)) - 0.5) * np.exp(phi * rng.standard_normal((n, n)))
            b = (rng.random((n, n)) - 0.5) * np.exp(phi * rng.standard_normal((n, n)))
            ref = exact_matmul(a, b)
            absab = np.abs(a) @ np.abs(b)
            A, B = xp.asarray(a), xp.asarray(b)
            runs = {
                "dgemm": lambda a=a, b=b: a @ b,
                "auto": lambda A=A, B=B: xp.precision.matmul(A, B),
                "ozaki1": lambda A=A, B=B: xp.precision.matmul(A, B, method="ozaki1"),
                "ozaki2": lambda A=A, B=B: xp.precision.matmul(A, B, method="ozaki2"),
            }
            if n > 512:
                del runs["ozaki1"]  # scheme I needs S(S+1)/2 products: slow on CPUs
            times = {k: math.inf for k in runs}
            for _ in range(args.repeat):  # interleaved, best of
                for k, f in runs.items():
                    times[k] = min(times[k], timed(f, 1))
            for k in runs:
                if k == "dgemm":
                    c, slices, bits = a @ b, "-", "-"
                else:
                    arr, info = xp.precision.matmul(A, B, method=k, return_info=True)
                    c = np.asarray(arr)
                    slices, bits = (
                        f"{info.slices}" + ("m" if info.method == "ozaki2" else "s"),
                        str(info.bits_retained),
                    )
                    if k == "auto":
                        k = f"auto:{info.method[-1] if info.method != 'native' else 'n'}"
                nw, cw, mr = errors(c, ref, absab)
                ratio = times[k.split(":")[0]] / times["dgemm"]
                print(
                    f"{n:>5} {phi:>4g} {k:<8} {slices:>6} {bits:>4} {nw / U:>10.3f} {cw / U:>10.3f} {mr:>9.2e} "
                    f"{times[k.split(':')[0]]:>8.4f} {ratio:>8.1f}"
                )
    print(
        "u = 2**-53; 'm' = moduli (Ozaki II), 's' = int8 slices (Ozaki I); auto:2 = Ozaki II chosen"
    )


if __name__ == "__main__":
    main()
