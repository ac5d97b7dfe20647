"""Storage throughput: hpcai.storage vs raw zarr, on the same S3 server and the same disk.

    python benchmarks/storage.py [--size-mib 128] [--repeat 5] [--chunk-mib 2]

Saves and loads one float64 array (128 MiB by default) four ways, interleaved in one run:

* ``hpcai s3``   — ``hpcai.storage.save/load`` on an S3 endpoint (a moto server),
* ``zarr s3``    — raw zarr v3 with ``FsspecStore`` on s3fs, same server, same bucket,
* ``hpcai posix``— ``hpcai.storage.save/load`` on a POSIX endpoint,
* ``zarr posix`` — raw zarr v3 with ``LocalStore`` in the same directory tree,

with the same chunks and codecs (zstd level 1 + crc32c) everywhere, a residency policy
that covers the data (so every save and load is decided and audited), and prints median
throughputs, the hpcai/raw ratios (target >= 0.9) and the policy cost per operation.
The moto server runs in a separate process so that it does not share the client's GIL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BUCKET = "bench"


def _start_server() -> tuple[subprocess.Popen[str], str]:
    code = (
        "import sys, time\n"
        "from hpcai.storage import start_s3_server\n"
        f"s = start_s3_server([{BUCKET!r}])\n"
        "print(s.url, flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit("could not start the moto S3 server (pip install 'moto[server]')")
    return proc, url


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (all threads of this process) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=128)
    ap.add_argument("--chunk-mib", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    warnings.simplefilter("ignore")
    import hpcai.storage as st
    import s3fs
    import zarr
    from zarr.codecs import Crc32cCodec, ZstdCodec
    from zarr.storage import FsspecStore, LocalStore

    import hpcai as xp
    from hpcai import residency

    proc, url = _start_server()
    work = Path(tempfile.mkdtemp(prefix="hpcai-bench-"))
    os.environ["HPCAI_BENCH_KEY"] = "bench-access-key"
    os.environ["HPCAI_BENCH_SECRET"] = "bench-secret-key"
    try:
        (work / "posix").mkdir()
        eu = {"country": "DE", "jurisdiction": "EU", "provider": "onprem"}
        xp.configure(data={
            "site": eu,
            "endpoints": {
                "s3": {"url": f"s3://{BUCKET}", "options": {"endpoint_url": url, "client_kwargs": {"region_name": "us-east-1"}},
                       "credentials": {"key_env": "HPCAI_BENCH_KEY", "secret_env": "HPCAI_BENCH_SECRET"}, "attributes": eu},
                "posix": {"url": f"file://{work / 'posix'}", "attributes": eu},
            },
            "policy": {"rules": [{"name": "eu-only", "match": "residency=eu", "store": "jurisdiction=EU", "compute": "jurisdiction=EU"}]},
            "audit": {"path": str(work / "audit.jsonl")},
        })
        n = args.size_mib * 2**20 // 8
        cols = 4096
        rows = n // cols
        crow = max(1, int(args.chunk_mib * 2**20 // 8 // cols))
        chunks = (crow, cols)
        host = np.random.default_rng(0).standard_normal((rows, cols))
        x = xp.tag(xp.asarray(host), residency="eu")
        nbytes = host.nbytes
        codecs = [ZstdCodec(level=1), Crc32cCodec()]
        fs = s3fs.S3FileSystem(endpoint_url=url, key="bench-access-key", secret="bench-secret-key", asynchronous=True,
                               client_kwargs={"region_name": "us-east-1"})
        print(f"array {host.shape} float64 = {nbytes / 2**20:.0f} MiB, chunks {chunks} "
              f"({chunk_bytes(chunks) / 2**20:.1f} MiB, {rows // crow * 1} chunks), zstd(1)+crc32c, "
              f"moto S3 at {url} (own process), {args.repeat} interleaved repeats")

        def raw_save(store: Any) -> None:
            a = zarr.create_array(store, shape=host.shape, dtype=host.dtype, chunks=chunks, compressors=codecs,
                                  overwrite=True, config={"write_empty_chunks": True})
            a[...] = host

        def raw_load(store: Any) -> None:
            y = np.asarray(zarr.open_array(store, mode="r")[...])
            assert y.shape == host.shape

        def hp_load(u: str) -> None:
            y = st.load(u)
            assert y.shape == host.shape and "residency" in y.tags

        cases: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
            "hpcai s3": (lambda: st.save(x, "hpcai://s3/hp.zarr", chunks=chunks), lambda: hp_load("hpcai://s3/hp.zarr")),
            "zarr s3": (lambda: raw_save(FsspecStore(fs, path=f"{BUCKET}/raw.zarr")),
                        lambda: raw_load(FsspecStore(fs, path=f"{BUCKET}/raw.zarr", read_only=True))),
            "hpcai posix": (lambda: st.save(x, "hpcai://posix/hp.zarr", chunks=chunks), lambda: hp_load("hpcai://posix/hp.zarr")),
            "zarr posix": (lambda: raw_save(LocalStore(str(work / "posix" / "raw.zarr"))),
                           lambda: raw_load(LocalStore(str(work / "posix" / "raw.zarr"), read_only=True))),
        }
        times: dict[tuple[str, str], list[float]] = {(c, op): [] for c in cases for op in ("save", "load")}
        cpu: dict[tuple[str, str], list[float]] = {(c, op): [] for c in cases for op in ("save", "load")}
        for save_fn, load_fn in cases.values():  # warm-up: sessions, imports, first objects
            save_fn()
            load_fn()
        for _ in range(args.repeat):
            for name, (save_fn, load_fn) in cases.items():
                for op, fn in (("save", save_fn), ("load", load_fn)):
                    wall, c = _timed(fn)
                    times[(name, op)].append(wall)
                    cpu[(name, op)].append(c)

        def mibs(name: str, op: str, how: Callable[[list[float]], float] = statistics.median) -> float:
            return nbytes / 2**20 / how(times[(name, op)])

        print(f"\n{'':14}{'save MiB/s':>12}{'load MiB/s':>12}   (median; min..max seconds)")
        for name in cases:
            s, lo = times[(name, "save")], times[(name, "load")]
            print(f"{name:14}{mibs(name, 'save'):12.1f}{mibs(name, 'load'):12.1f}   "
                  f"save {min(s):.2f}..{max(s):.2f} s, load {min(lo):.2f}..{max(lo):.2f} s")
        print("\nthroughput ratio hpcai / raw zarr (target >= 0.9):")
        print(f"  {'':12}{'paired median':>14}{'best-of-n':>11}{'median':>8}{'CPU time':>10}")
        for where in ("s3", "posix"):
            for op in ("save", "load"):
                h, r = times[(f"hpcai {where}", op)], times[(f"zarr {where}", op)]
                paired = statistics.median(b / a for a, b in zip(h, r))  # runs next to each other
                best = min(r) / min(h)
                med = statistics.median(r) / statistics.median(h)
                cpu_ratio = statistics.median(cpu[(f"zarr {where}", op)]) / statistics.median(cpu[(f"hpcai {where}", op)])
                flag = "ok" if paired >= 0.9 else "BELOW TARGET"
                print(f"  {where:6}{op:6}{paired:13.2f}x{best:10.2f}x{med:7.2f}x{cpu_ratio:9.2f}x   {flag}")
        print("  (paired: median over repeats of raw time / hpcai time measured back to back; CPU time: raw / hpcai "
              "CPU seconds of this process, insensitive to other load on the machine)")

        # the policy's own cost per operation: one decision plus one audit record
        ep = st.get_endpoint("s3")
        k = 200
        t0 = time.perf_counter()
        for _ in range(k):
            residency.decide("store", x._tags, ep.attributes, destination="s3")
        t_decide = (time.perf_counter() - t0) / k
        t0 = time.perf_counter()
        for _ in range(k):
            residency.enforce("store", x._tags, ep.attributes, destination="s3", nbytes=nbytes, dataset="bench", operation="bench")
        t_enforce = (time.perf_counter() - t0) / k
        best_save = min(min(times[("hpcai s3", "save")]), min(times[("hpcai posix", "save")]))
        print(f"\npolicy overhead per save/load: decision {t_decide * 1e6:.1f} us + audit record "
              f"{(t_enforce - t_decide) * 1e6:.0f} us = {t_enforce * 1e3:.2f} ms "
              f"({t_enforce / best_save * 100:.2f}% of the fastest hpcai save); per chunk: none "
              "(the save's decision covers its chunks)")
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.terminate()
        proc.wait(10)
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


def chunk_bytes(chunks: tuple[int, int]) -> int:
    """Bytes in one float64 chunk."""
    return chunks[0] * chunks[1] * 8


if __name__ == "__main__":
    sys.exit(main())
