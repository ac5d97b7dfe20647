"""The ``dask`` device on a real subprocess cluster (scheduler + EU worker + US worker + a worker
without hpcai configuration, tests/distributed/conftest.py): an hpcai pipeline on covered data
never puts a covered value on the US or the unconfigured worker, with dask's optimisation and
fusion on and off, and the result carries its tags; with no allowed worker, moving onto the
device refuses before anything moves and a compute gives up within a bounded time, naming the
rule."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
import dask.array as da  # noqa: E402

import hpcai as xp  # noqa: E402
from hpcai.errors import ResidencyError  # noqa: E402

if TYPE_CHECKING:
    from conftest import Cluster

#: A rule only this client has: no worker advertises it.
CLIENT_ONLY = """
[[policy.rules]]
name = "secret-onprem"
match = "classification=secret"
compute = "jurisdiction=EU & provider=onprem"
"""
PERSONAL = {"classification": frozenset({"personal"})}


@pytest.fixture(autouse=True)
def _eu_on_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    """This process is the EU client of the cluster, under the workers' rules plus one of its own."""
    cluster.configure_eu_client(tmp_path, CLIENT_ONLY)



def _host(n: int = 64) -> Any:
    return xp.reshape(xp.arange(float(n * n)) / 100.0, (n, n))


def _chunk_holders(c: Cluster, x: Any) -> set[str]:
    names = {a: n for n, a in c.addr().items()}
    futures = x._data._hpcai_futures
    return {names[a] for ws in xp.dask.client().who_has(futures).values() for a in ws}



@pytest.mark.parametrize("fuse", [True, False], ids=["fusion-on", "fusion-off"])
def test_a_pipeline_on_covered_data_stays_on_allowed_workers(cluster: Cluster, fuse: bool) -> None:
    h = _host()
    x = xp.tag(h, classification="personal")
    with dask.config.set({"optimization.fuse.active": fuse}):
        d = xp.dask.from_array(x, chunks=(16, 16))
        assert d.device == "dask" and dict(d.tags) == PERSONAL and isinstance(d._data, da.Array)
        assert isinstance(d._data._meta, xp.Array) and d._data.numblocks == (4, 4)
        assert _chunk_holders(cluster, d) == {"eu"}  # scattered only where the rule allows
        y = xp.sin(d) * 2.0 + d  # elementwise (function and operators)
        col = xp.sum(y, axis=0)  # reduction
        m = d @ d.T  # matmul
        r = xp.dask.rechunk(y, (32, 64))  # rechunk
        z = xp.mean(r[8:40, ::2])  # slicing, reduction
        out = {k: v.to_device("numpy:cpu") for k, v in {"y": y, "col": col, "m": m, "r": r, "z": z}.items()}
    hn = np.asarray(h)
    want = {"y": np.sin(hn) * 2 + hn, "m": hn @ hn.T}
    want["col"] = want["y"].sum(axis=0)
    want["r"] = want["y"]
    want["z"] = want["y"][8:40, ::2].mean()
    for k, v in out.items():
        assert dict(v.tags) == PERSONAL and v.device == "numpy:cpu", k
        np.testing.assert_allclose(np.asarray(xp.untag(v, "classification", reason="test")), want[k], rtol=1e-12)
    cluster.assert_never_outside_eu()


def test_unoptimised_graphs_and_persist_stay_on_allowed_workers(cluster: Cluster) -> None:
    x = xp.tag(_host(32), classification="personal")
    d = xp.dask.from_array(x, chunks=(8, 8))
    p = xp.dask.persist(xp.exp(d) - 1.0)
    assert dict(p.tags) == PERSONAL and p.device == "dask"
    c = xp.dask.client()
    futures = distributed.futures_of(p._data)
    deadline = time.time() + 60  # (distributed.wait needs a default client; this cluster's is not)
    while not all(f.status == "finished" for f in futures):
        assert time.time() < deadline and not any(f.status == "error" for f in futures)
        time.sleep(0.05)
    holders = {a for ws in c.who_has(futures).values() for a in ws}
    assert holders == {cluster.addr()["eu"]}
    import hpcai.distributed as hd

    raw = c.compute(da.Array(p._data.dask, p._data.name, p._data.chunks, meta=p._data._meta),
                    resources=hd.resources_for(p), optimize_graph=False).result(timeout=60)
    assert dict(raw.tags) == PERSONAL
    cluster.assert_never_outside_eu()


def test_raw_compute_of_the_graph_on_a_denied_worker_is_refused_there(cluster: Cluster) -> None:
    """Bypassing hpcai (the underlying dask graph, pinned to the US worker): the chunks are refused
    on arrival, the user gets a clean ResidencyError and the worker stays up."""
    d = xp.dask.from_array(xp.tag(_host(16), classification="personal"), chunks=(8, 8))
    g = xp.sum(d * 3.0)._data
    c = xp.dask.client()
    for worker in ("us", "bare"):
        fut = c.compute(da.Array(g.dask, g.name, g.chunks, meta=g._meta), workers=[cluster.addr()[worker]],
                        allow_other_workers=False)
        with pytest.raises(ResidencyError, match="refused on arrival|gdpr-personal"):
            fut.result(timeout=60)
    cluster.assert_never_outside_eu()


def test_untagged_data_goes_to_every_worker(cluster: Cluster) -> None:
    d = xp.dask.from_array(_host(64), chunks=(8, 64))
    assert _chunk_holders(cluster, d) <= {"eu", "us", "bare"} and len(_chunk_holders(cluster, d)) >= 2
    assert float(xp.sum(d).to_device("numpy:cpu")) == pytest.approx(float(xp.sum(_host(64))))


def test_no_allowed_worker_refuses_before_anything_moves(cluster: Cluster) -> None:
    def keys() -> set[str]:
        held = xp.dask.client().run(lambda dask_worker: [str(k) for k in dask_worker.data])
        return {k for ks in held.values() for k in ks}

    before = keys()
    x = xp.tag(_host(8), classification="secret")
    t0 = time.monotonic()
    with pytest.raises(ResidencyError, match="secret-onprem") as info:
        x.to_device("dask")
    assert time.monotonic() - t0 < 5.0  # no wait: the advertised resources are read once
    assert "hpcai-rule-secret-onprem" in str(info.value) and "eu" in str(info.value)
    assert keys() - before == set()  # nothing was scattered (earlier tests' keys may be released meanwhile)


def test_a_compute_with_no_allowed_worker_gives_up_in_bounded_time(cluster: Cluster) -> None:
    """Data allowed on the EU worker, then tagged (lazily, on the device) with a rule no worker
    advertises: the compute refuses after [dask] timeout (3 s), naming the rule."""
    d = xp.dask.from_array(xp.tag(_host(8), classification="personal"), chunks=(4, 4))
    y = xp.tag(d + 1.0, classification="secret")
    t0 = time.monotonic()
    with pytest.raises(ResidencyError, match="secret-onprem"):
        y.to_device("numpy:cpu")
    assert time.monotonic() - t0 < 15.0
    cluster.assert_never_outside_eu()
