"""Storage throughput: hpcai.storage vs raw zarr (and Icechunk), on the same servers and disk.

    python benchmarks/storage.py [--size-mib 128] [--repeat 5] [--chunk-mib 2]
                                 [--rgw DIR | --rgw start] [--no-icechunk]

Saves and loads one float64 array (128 MiB by default), interleaved in one run, on each
place: ``moto`` (a moto S3 server in its own process), ``rgw`` (a Ceph RGW: ``--rgw DIR``
names one started with ``ci/rgw.sh start DIR``; ``--rgw start`` starts and stops one),
and ``posix`` (a local directory). On each place, three ways:

* ``hpcai``    — ``hpcai.storage.save/load`` (residency-checked, audited, versioned),
* ``zarr``     — raw zarr v3 (``FsspecStore`` on s3fs, or ``LocalStore``), same bucket/tree,
* ``icechunk`` — a peer: zarr v3 on an Icechunk repository (one commit per save), same place
  (``pip install icechunk``; left out without it or with ``--no-icechunk``),

with the same chunks and codecs (zstd level 1 + crc32c) everywhere, a residency policy
that covers the data (so every save and load is decided and audited), and prints median
throughputs, the hpcai/raw ratios (target >= 0.9), hpcai/icechunk, and the policy cost per
operation. Timings are noisy on shared machines: read the ratios, not the absolute figures.
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


def _rgw(arg: str | None, work: Path) -> tuple[dict[str, str] | None, Callable[[], None]]:
    """The RGW to measure: ``(settings, stop)``; settings from ``DIR/env`` written by ``ci/rgw.sh start``."""
    if arg is None:
        return None, lambda: None
    script = Path(__file__).resolve().parent.parent / "ci" / "rgw.sh"
    stop: Callable[[], None] = lambda: None  # noqa: E731
    if arg == "start":
        d = work / "rgw"
        out = subprocess.run([str(script), "start", str(d)], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"Ceph RGW could not be started, left out: {out.stderr.strip().splitlines()[-1:]}")
            return None, stop
        stop = lambda: subprocess.run([str(script), "stop", str(d)], capture_output=True)  # noqa: E731
        arg = str(d)
    env: dict[str, str] = {}
    for line in (Path(arg) / "env").read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            k, _, v = line[len("export "):].partition("=")
            env[k] = v.strip("'\"")
    return env, stop


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=128)
    ap.add_argument("--chunk-mib", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rgw", metavar="DIR|start", help="also measure a Ceph RGW (ci/rgw.sh start DIR), or start one")
    ap.add_argument("--no-icechunk", action="store_true", help="leave the Icechunk peer out")
    args = ap.parse_args(argv)

    warnings.simplefilter("ignore")
    os.environ.setdefault("ICECHUNK_LOG", "error")  # its one-line warning about local commits is not news here
    import hpcai.storage as st
    import s3fs
    import zarr
    from zarr.codecs import Crc32cCodec, ZstdCodec
    from zarr.storage import FsspecStore, LocalStore

    import hpcai as xp
    from hpcai import residency

    try:
        import icechunk
    except ImportError:
        icechunk = None
    if args.no_icechunk:
        icechunk = None

    proc, url = _start_server()
    work = Path(tempfile.mkdtemp(prefix="hpcai-bench-"))
    rgw, stop_rgw = _rgw(args.rgw, work)
    os.environ["HPCAI_BENCH_KEY"] = "bench-access-key"
    os.environ["HPCAI_BENCH_SECRET"] = "bench-secret-key"
    # name: (endpoint url, key, secret, region); moto accepts any keys
    servers: dict[str, tuple[str, str, str, str]] = {"moto": (url, "bench-access-key", "bench-secret-key", "us-east-1")}
    if rgw is not None:
        os.environ["HPCAI_BENCH_RGW_KEY"] = rgw["HPCAI_RGW_ACCESS_KEY"]
        os.environ["HPCAI_BENCH_RGW_SECRET"] = rgw["HPCAI_RGW_SECRET_KEY"]
        servers["rgw"] = (rgw["HPCAI_RGW_ENDPOINT"], rgw["HPCAI_RGW_ACCESS_KEY"], rgw["HPCAI_RGW_SECRET_KEY"],
                          rgw.get("HPCAI_RGW_REGION", "us-east-1"))
    try:
        (work / "posix").mkdir()
        eu = {"country": "DE", "jurisdiction": "EU", "provider": "onprem"}
        endpoints: dict[str, Any] = {"posix": {"url": f"file://{work / 'posix'}", "attributes": eu}}
        fss: dict[str, Any] = {}
        for name, (ep_url, key, secret, region) in servers.items():
            envs = ("HPCAI_BENCH_KEY", "HPCAI_BENCH_SECRET") if name == "moto" else ("HPCAI_BENCH_RGW_KEY", "HPCAI_BENCH_RGW_SECRET")
            endpoints[name] = {"url": f"s3://{BUCKET}", "attributes": eu,
                               "options": {"endpoint_url": ep_url, "client_kwargs": {"region_name": region}},
                               "credentials": {"key_env": envs[0], "secret_env": envs[1]}}
            fss[name] = s3fs.S3FileSystem(endpoint_url=ep_url, key=key, secret=secret, asynchronous=True,
                                          client_kwargs={"region_name": region})
            if name != "moto":
                sync_fs = s3fs.S3FileSystem(endpoint_url=ep_url, key=key, secret=secret, client_kwargs={"region_name": region})
                if not sync_fs.exists(BUCKET):
                    sync_fs.mkdir(BUCKET)
        xp.configure(data={
            "site": eu,
            "endpoints": endpoints,
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
        places = [*servers, "posix"]
        print(f"array {host.shape} float64 = {nbytes / 2**20:.0f} MiB, chunks {chunks} "
              f"({chunk_bytes(chunks) / 2**20:.1f} MiB, {rows // crow * 1} chunks), zstd(1)+crc32c, "
              f"{args.repeat} interleaved repeats; places: moto S3 at {url} (own process)"
              + (f", Ceph RGW {rgw.get('HPCAI_RGW_VERSION', '')} at {servers['rgw'][0]}" if rgw else "")
              + f", POSIX {work / 'posix'}"
              + ("; Icechunk " + icechunk.__version__ if icechunk is not None else "; Icechunk not installed (left out)"))

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

        def ice_repo(place: str) -> Any:
            if place == "posix":
                storage = icechunk.local_filesystem_storage(str(work / "posix" / "ice"))
            else:
                ep_url, key, secret, region = servers[place]
                storage = icechunk.s3_storage(bucket=BUCKET, prefix="ice", endpoint_url=ep_url, allow_http=True,
                                              force_path_style=True, region=region, access_key_id=key,
                                              secret_access_key=secret)
            cfg = icechunk.RepositoryConfig.default()
            if place == "rgw":  # RGW 16.2 answers 412 to every If-Match (see docs/rgw.md)
                cfg.storage = icechunk.StorageSettings(unsafe_use_conditional_update=False)
            return icechunk.Repository.open_or_create(storage, config=cfg)

        def ice_save(repo: Any) -> None:
            session = repo.writable_session("main")
            a = zarr.create_array(session.store, name="x", shape=host.shape, dtype=host.dtype, chunks=chunks,
                                  compressors=codecs, overwrite=True, config={"write_empty_chunks": True})
            a[...] = host
            session.commit("bench")

        def ice_load(repo: Any) -> None:
            y = np.asarray(zarr.open_array(repo.readonly_session("main").store, path="x", mode="r")[...])
            assert y.shape == host.shape

        cases: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
        for place in places:
            u = f"hpcai://{place}/hp.zarr"
            cases[f"hpcai {place}"] = ((lambda u=u: st.save(x, u, chunks=chunks)), (lambda u=u: hp_load(u)))
            if place == "posix":
                raw = str(work / "posix" / "raw.zarr")
                cases["zarr posix"] = ((lambda raw=raw: raw_save(LocalStore(raw))),
                                       (lambda raw=raw: raw_load(LocalStore(raw, read_only=True))))
            else:
                f = fss[place]
                cases[f"zarr {place}"] = ((lambda f=f: raw_save(FsspecStore(f, path=f"{BUCKET}/raw.zarr"))),
                                          (lambda f=f: raw_load(FsspecStore(f, path=f"{BUCKET}/raw.zarr", read_only=True))))
            if icechunk is not None:
                try:
                    repo = ice_repo(place)
                    ice_save(repo)
                except Exception as exc:  # a peer that cannot run on this server is reported, not fatal
                    print(f"icechunk on {place}: cannot run ({type(exc).__name__}: {str(exc)[:200]}); left out")
                else:
                    cases[f"icechunk {place}"] = ((lambda r=repo: ice_save(r)), (lambda r=repo: ice_load(r)))
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

        print(f"\n{'':16}{'save MiB/s':>12}{'load MiB/s':>12}   (median; min..max seconds)")
        for name in cases:
            s, lo = times[(name, "save")], times[(name, "load")]
            print(f"{name:16}{mibs(name, 'save'):12.1f}{mibs(name, 'load'):12.1f}   "
                  f"save {min(s):.2f}..{max(s):.2f} s, load {min(lo):.2f}..{max(lo):.2f} s")
        for peer, target in (("zarr", 0.9), ("icechunk", None)):
            rows_out = []
            for where in places:
                if f"{peer} {where}" not in cases:
                    continue
                for op in ("save", "load"):
                    h, r = times[(f"hpcai {where}", op)], times[(f"{peer} {where}", op)]
                    paired = statistics.median(b / a for a, b in zip(h, r))  # runs next to each other
                    best = min(r) / min(h)
                    med = statistics.median(r) / statistics.median(h)
                    cpu_ratio = statistics.median(cpu[(f"{peer} {where}", op)]) / statistics.median(cpu[(f"hpcai {where}", op)])
                    flag = "" if target is None else ("ok" if paired >= target else "BELOW TARGET")
                    rows_out.append(f"  {where:6}{op:6}{paired:13.2f}x{best:10.2f}x{med:7.2f}x{cpu_ratio:9.2f}x   {flag}")
            if rows_out:
                print(f"\nthroughput ratio hpcai / {peer}" + (f" (target >= {target}):" if target else " (a peer; >1: hpcai faster):"))
                print(f"  {'':12}{'paired median':>14}{'best-of-n':>11}{'median':>8}{'CPU time':>10}")
                print("\n".join(rows_out))
        print("  (paired: median over repeats of peer time / hpcai time measured back to back; CPU time: peer / hpcai "
              "CPU seconds of this process, insensitive to other load on the machine)")

        # the policy's own cost per operation: one decision plus one audit record
        ep = st.get_endpoint("moto")
        k = 200
        t0 = time.perf_counter()
        for _ in range(k):
            residency.decide("store", x._tags, ep.attributes, destination="moto")
        t_decide = (time.perf_counter() - t0) / k
        t0 = time.perf_counter()
        for _ in range(k):
            residency.enforce("store", x._tags, ep.attributes, destination="moto", nbytes=nbytes, dataset="bench", operation="bench")
        t_enforce = (time.perf_counter() - t0) / k
        best_save = min(min(times[(f"hpcai {p}", "save")]) for p in places)
        print(f"\npolicy overhead per save/load: decision {t_decide * 1e6:.1f} us + audit record "
              f"{(t_enforce - t_decide) * 1e6:.0f} us = {t_enforce * 1e3:.2f} ms "
              f"({t_enforce / best_save * 100:.2f}% of the fastest hpcai save); per chunk: none "
              "(the save's decision covers its chunks)")
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.terminate()
        proc.wait(10)
        stop_rgw()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


def chunk_bytes(chunks: tuple[int, int]) -> int:
    """Bytes in one float64 chunk."""
    return chunks[0] * chunks[1] * 8


if __name__ == "__main__":
    sys.exit(main())
