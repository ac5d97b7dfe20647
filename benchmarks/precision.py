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
from hpcai.testing import exact_matmul, phi_matrix

U = 2.0**-53


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
            a = phi_matrix(rng, (n, n), phi)
            b = phi_matrix(rng, (n, n), phi)
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
