"""Placement regret: the advisor's choice against the best device found by exhaustive measurement.

On the devices this machine has (``numpy:cpu`` and the JAX CPU devices; BLAS threads pinned
with threadpoolctl and recorded), for matrix products, elementwise operations, reductions
and FFTs at several sizes, with the data starting on ``numpy:cpu`` or on ``jax:cpu:1``:

1. **calibration** — inside ``xp.record()``, every kernel runs once on every device (warm-up:
   JIT compilation, caches; a sample too), then ``--calibrate`` rounds each run every
   (kernel, start, device) once in a fresh random order, through ``xp.run(device=...)``
   (moves included), which fills a fresh history;
2. **choice** — ``xp.advise(fn, *args, devices=...)`` ranks the devices from that history;
3. **exhaustive measurement** — afresh, ``--repeat`` rounds in the same manner time every
   device, moves and synchronisation included: ``t(d)`` is the median over the rounds.

The rounds interleave every kernel and device because this host's noise comes in bursts:
one kernel's run time switches between levels up to 4x apart for tens of calls at a time
(measured on the 2-core KVM guest), so timings taken back to back all fall in one burst.

Regret = ``t(choice) / min_d t(d) - 1``. The issue's targets: geometric mean <= 5 %, worst
<= 30 %. Also printed: the measurement's own disagreement (a perfect advisor that knew
the medians of the odd rounds, scored by the even rounds), the noise floor of the figure;
the time of 100 advise calls over 6 devices (target <= 1 ms); and the cost of recording per
``xp.run`` (on minus off; target <= 1.5 us) and when off.

Run: ``python benchmarks/placement.py [--calibrate N] [--repeat N] [--threads N] [--seed N]``.
"""

from __future__ import annotations

import argparse
import contextvars
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_ENABLE_X64", "1")

import hpcai as xp

DEVICES = ["numpy:cpu", "jax:cpu:0", "jax:cpu:1", "jax:cpu:2", "jax:cpu:3"]
STARTS = ["numpy:cpu", "jax:cpu:1"]


def _elementwise(a: xp.Array, b: xp.Array) -> xp.Array:
    return a * b + 1.0


def kernels() -> list[tuple[str, Callable[..., Any], Callable[[str], tuple[Any, ...]]]]:
    out: list[tuple[str, Callable[..., Any], Callable[[str], tuple[Any, ...]]]] = []

    def mats(n: int) -> Callable[[str], tuple[Any, ...]]:
        return lambda dev: (xp.ones((n, n), device=dev) * 0.5, xp.ones((n, n), device=dev) * 0.25)

    def vecs(n: int, k: int) -> Callable[[str], tuple[Any, ...]]:
        return lambda dev: tuple(xp.linspace(0, 1, n, device=dev) for _ in range(k))

    for n in (32, 128, 384):
        out.append((f"matmul {n}x{n}", xp.matmul, mats(n)))
    for n in (1_000, 100_000, 1_000_000):
        out.append((f"a*b+1 {n}", _elementwise, vecs(n, 2)))
    for n in (1_000, 1_000_000):
        out.append((f"sum {n}", xp.sum, vecs(n, 1)))
    for n in (1_024, 65_536):
        out.append((f"fft {n}", xp.fft.fft, vecs(n, 1)))
    return out


def _time_run(fn: Callable[..., Any], args: tuple[Any, ...], dev: str) -> float:
    t0 = time.perf_counter()
    xp.run(fn, *args, device=dev)
    return time.perf_counter() - t0


def regret(
    calibrate: int, repeat: int, seed: int = 0
) -> tuple[list[tuple[str, str, str, str, float, float]], list[float]]:
    """Rows (kernel, start, choice, best, t(choice), t(best)), and the measurement's own
    disagreement: per case, the regret of the best device of the odd rounds timed by the
    even rounds (what a perfect advisor calibrated by one half would score on the other)."""
    rng = random.Random(seed)
    cases = [
        (name, fn, start, make(start)) for name, fn, make in kernels() for start in STARTS
    ]
    runs = [(i, dev) for i in range(len(cases)) for dev in DEVICES]
    with xp.record() as rec:
        for i, dev in runs:  # warm-up (JIT compilation, caches): a sample too
            xp.run(cases[i][1], *cases[i][3], device=dev)
        # rounds over every (case, device) in a fresh random order, so that each device's
        # samples of a case are spread over the whole phase, not one burst of the host's noise
        for _ in range(calibrate):
            rng.shuffle(runs)
            for i, dev in runs:
                xp.run(cases[i][1], *cases[i][3], device=dev)
    print(f"calibration: {len(rec)} recorded runs; history in {os.environ['HPCAI_HISTORY_DIR']}")
    choices = [str(xp.advise(fn, *args, devices=DEVICES).choice) for _, fn, _, args in cases]
    times: list[dict[str, list[float]]] = [{d: [] for d in DEVICES} for _ in cases]
    for _ in range(repeat):
        rng.shuffle(runs)
        for i, dev in runs:
            times[i][dev].append(_time_run(cases[i][1], cases[i][3], dev))
    rows = []
    floor = []
    for (name, _, start, _), choice, ts in zip(cases, choices, times, strict=True):
        med = {d: statistics.median(v) for d, v in ts.items()}
        best = min(med, key=med.__getitem__)
        rows.append((name, start, choice, best, med[choice], med[best]))
        odd = {d: statistics.median(v[1::2]) for d, v in ts.items()}
        even = {d: statistics.median(v[0::2]) for d, v in ts.items()}
        floor.append(even[min(odd, key=odd.__getitem__)] / min(even.values()) - 1)
    return rows, floor


def advice_time(reps: int = 7) -> tuple[list[float], list[float]]:
    """Seconds of 100 advise calls (20 distinct, each asked 5 times) over 6 devices, *reps* times.

    Warm: every call is answered from the memo. Cold: the history's version is bumped first
    (as when any sample arrives), which drops every memoised advice and every prediction
    derived from the history, so the 20 distinct calls are ranked afresh (the rooflines and
    other facts of the configuration alone are kept) and their 80 repeats hit the new memo.
    """
    devs = [*DEVICES, "emulated:0"]
    calls = []
    for n in (16, 32, 64, 128, 256):
        a = xp.ones((n, n))
        calls += [(xp.matmul, (a, a)), (xp.add, (a, a)), (xp.sum, (a,)), (xp.multiply, (a, a))]
    calls = (calls * 5)[:100]
    for f, args in calls:
        xp.advise(f, *args, devices=devs)
    warm: list[float] = []
    cold: list[float] = []
    st = xp._history.store()
    for _ in range(reps):
        t0 = time.perf_counter()
        for f, args in calls:
            xp.advise(f, *args, devices=devs)
        warm.append(time.perf_counter() - t0)
        st.version += 1  # as if a sample had arrived: every memo is dropped
        t0 = time.perf_counter()
        for f, args in calls:
            xp.advise(f, *args, devices=devs)
        cold.append(time.perf_counter() - t0)
    return warm, cold


def recording_overhead(n: int = 20_000) -> tuple[float, float, float]:
    """(off, on, contextvar) seconds per xp.run of a trivial kernel; best of 3 batches."""
    a = xp.ones(4)

    def batch() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            xp.run(xp.negative, a, device="numpy:cpu")
        return (time.perf_counter() - t0) / n

    off = on = math.inf
    for _ in range(3):
        off = min(off, batch())
        with xp.record(history=False):
            on = min(on, batch())
    var: contextvars.ContextVar[Any] = contextvars.ContextVar("probe", default=None)
    t0 = time.perf_counter()
    for _ in range(n):
        var.get()
    cv = (time.perf_counter() - t0) / n
    return off, on, cv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--calibrate", type=int, default=31, help="calibration rounds (each runs every kernel on every device)"
    )
    ap.add_argument(
        "--repeat", type=int, default=101, help="timed rounds of the exhaustive measurement"
    )
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (pinned)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the rounds' random order")
    args = ap.parse_args(argv)
    os.environ.setdefault("HPCAI_HISTORY_DIR", tempfile.mkdtemp(prefix="hpcai-placement-"))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("threadpoolctl is not installed: BLAS threads not pinned", file=sys.stderr)
        limits: Any = None
    else:
        limits = threadpool_limits(args.threads, user_api="blas")
    ctx = xp._record.host_context()
    print(f"host: {ctx['cpus']} CPUs, BLAS threads {ctx['blas_threads']}, load {ctx['load_1min']}")
    rows, floor = regret(args.calibrate, args.repeat, args.seed)
    header = ("kernel", "data on", "advisor", "best", "t(advisor) ms", "t(best) ms", "regret")
    table = [header]
    regrets = []
    for name, start, choice, best, tc, tb in rows:
        r = tc / tb - 1
        regrets.append(r)
        table.append(
            (name, start, choice, best, f"{tc * 1e3:.3f}", f"{tb * 1e3:.3f}", f"{r * 100:.1f} %")
        )
    print(xp._advisor.format_table(table))
    gm = math.exp(sum(math.log1p(r) for r in regrets) / len(regrets)) - 1
    worst = max(regrets)
    print(
        f"regret: geometric mean {gm * 100:.2f} % (target <= 5 %), worst {worst * 100:.1f} % (target <= 30 %)"
    )
    fgm = math.exp(sum(math.log1p(r) for r in floor) / len(floor)) - 1
    print(
        f"the measurement's own disagreement (best of its odd rounds, timed by its even rounds): "
        f"geometric mean {fgm * 100:.2f} %, worst {max(floor) * 100:.1f} %"
    )
    # three spells of each timing, seconds apart: this host has slow spells (everything ~2x)
    # that last longer than one spell; each figure is the best, with the median beside it
    warms: list[float] = []
    colds: list[float] = []
    offs: list[float] = []
    ons: list[float] = []
    for _ in range(3):
        w, c = advice_time()
        warms += w
        colds += c
        off, on, cv = recording_overhead()
        offs.append(off)
        ons.append(on)
    warm, cold = min(warms), min(colds)
    print(
        f"advice, 100 calls x 6 devices: {warm * 1e3:.3f} ms memoised, {cold * 1e3:.3f} ms after a history change "
        f"(target <= 1 ms; best of {len(warms)}, medians {statistics.median(warms) * 1e3:.3f} and "
        f"{statistics.median(colds) * 1e3:.3f} ms)"
    )
    off, on = min(offs), min(ons)
    print(
        f"xp.run of a trivial kernel: {off * 1e6:.2f} us recording off, {on * 1e6:.2f} us on: "
        f"recording costs {(on - off) * 1e6:.2f} us per run (target <= 1.5 us); when off it costs one "
        f"context-variable read ({cv * 1e9:.0f} ns) per xp.run and nothing per Array operation"
    )
    if limits is not None:
        limits.restore_original_limits()
    met = gm <= 0.05 and worst <= 0.30 and max(warm, cold) <= 1e-3 and on - off <= 1.5e-6
    print("every target met" if met else "a target was missed")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
