"""Storage on Dask workers (hpcai.storage._dask): ``load(url, device="dask")`` reads the chunks on
the workers and ``save`` of a ``dask``-device array writes them there, on the real subprocess
cluster of conftest.py (an EU worker, a US worker and a worker without hpcai configuration, each
with its own configuration and environment) and on the embedded in-process cluster.

Each configured worker knows the endpoints from its own configuration (a POSIX directory and a
moto S3 bucket, both EU) and its S3 credentials from its own environment, with values the
client does not have: the graph carries neither."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
pytest.importorskip("zarr")

import cloudpickle  # noqa: E402
import dask.array as da  # noqa: E402
import hpcai.storage as st  # noqa: E402

import hpcai as xp  # noqa: E402
from hpcai.errors import InvalidArgumentError, ResidencyError  # noqa: E402

if TYPE_CHECKING:
    from conftest import Cluster

KEY_ENV, SECRET_ENV = "DASKTEST_S3_KEY", "DASKTEST_S3_SECRET"
WORKER_SECRET = "worker-own-secret-5f1d"
CLIENT_SECRET = "client-only-secret-9c2e"
BUCKET = "dask-eu"
#: A rule only this client has: no worker advertises it.
CLIENT_ONLY = """
[[policy.rules]]
name = "secret-onprem"
match = "classification=secret"
compute = "jurisdiction=EU & provider=onprem"
"""
PERSONAL = {"classification": frozenset({"personal"})}


def _endpoints(root: Path, s3_url: str) -> str:
    return f"""
[endpoints.eu]
url = "file://{root}"
attributes = {{ country = "DE", jurisdiction = "EU", provider = "onprem" }}

[endpoints.s3eu]
url = "s3://{BUCKET}"
options = {{ endpoint_url = "{s3_url}", client_kwargs = {{ region_name = "us-east-1" }} }}
credentials = {{ key_env = "{KEY_ENV}", secret_env = "{SECRET_ENV}" }}
attributes = {{ country = "DE", jurisdiction = "EU", provider = "onprem" }}
retry = {{ attempts = 3, initial_delay = 0.05, max_delay = 0.5 }}
"""


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    srv = st.start_s3_server([BUCKET])
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def storage_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("posix-eu")


@pytest.fixture(scope="module")
def cluster_extra(s3: Any, storage_root: Path) -> str:
    """The configured workers know the endpoints."""
    return _endpoints(storage_root, s3.url)


@pytest.fixture(scope="module")
def cluster_env() -> dict[str, str]:
    """The workers' own S3 secret, in their own environment (this process uses another one)."""
    return {KEY_ENV: "worker-key", SECRET_ENV: WORKER_SECRET}



@pytest.fixture
def on_cluster(cluster: Cluster, s3: Any, storage_root: Path, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """This process is the EU client of the cluster (the workers' rules plus one of its own), with
    the same endpoints and S3 credentials of its own."""
    monkeypatch.setenv(KEY_ENV, "client-key")
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    cluster.configure_eu_client(tmp_path, CLIENT_ONLY + _endpoints(storage_root, s3.url))
    return cluster


def _data(n: int = 32) -> Any:
    return xp.reshape(xp.arange(float(n * n)), (n, n)) / 7.0


def _records(c: Cluster, worker: str, dataset: str) -> list[dict[str, Any]]:
    path = c.tmp / f"audit-{worker}.jsonl"
    if not path.exists():
        return []
    out = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in out if r.get("dataset") == dataset]



def _reader(y: Any) -> Any:
    from hpcai.storage._dask import ChunkReader

    readers = {t.func for t in dict(y._data.__dask_graph__()).values() if isinstance(getattr(t, "func", None), ChunkReader)}
    assert len(readers) == 1
    return readers.pop()


# -- reading -------------------------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["eu", "s3eu"], ids=["posix", "s3"])
def test_load_reads_the_chunks_on_the_allowed_worker(on_cluster: Cluster, endpoint: str) -> None:
    h = _data()
    url = f"hpcai://{endpoint}/read/{endpoint}.zarr"
    st.save(xp.tag(h, classification="personal"), url, chunks=(8, 8))
    y = st.load(url, device="dask")
    assert y.device == "dask" and dict(y.tags) == PERSONAL and isinstance(y._data, da.Array)
    assert y._data.numblocks == (4, 4) and isinstance(y._data._meta, xp.Array)
    out = (xp.sum(y * 2.0, axis=0), y[3:20, 5:9])
    got = [v.to_device("numpy:cpu") for v in out]
    hn = np.asarray(h)
    for v, want in zip(got, (2.0 * hn.sum(axis=0), hn[3:20, 5:9])):
        assert dict(v.tags) == PERSONAL and v.device == "numpy:cpu"
        np.testing.assert_allclose(np.asarray(xp.untag(v, "classification", reason="test")), want, rtol=1e-12)
    # other chunks than the stored ones: each task reads its region
    z = st.load(url, device="dask", chunks=(16, 32))
    assert z._data.chunks == ((16, 16), (32,))
    np.testing.assert_allclose(np.asarray(xp.untag(z.to_device("numpy:cpu"), "classification", reason="t")), hn)
    seen = on_cluster.seen()
    assert seen["eu"]  # the chunks were read (and computed on) there
    on_cluster.assert_never_outside_eu()
    # the EU worker decided for its own site once per (dataset version, tags, policy), not per chunk
    recs = [r for r in _records(on_cluster, "eu", url) if r["operation"] == "dask-load"]
    assert recs and all(r["decision"] == "allow" for r in recs)
    assert len(recs) == len({r["policy_hash"] for r in recs}) <= 2  # its own policy, the carried rules


def test_a_denied_worker_asked_to_read_refuses_and_stays_alive(on_cluster: Cluster) -> None:
    url = "hpcai://eu/read/pinned.zarr"
    st.save(xp.tag(_data(16), classification="personal"), url, chunks=(8, 8))
    reader = _reader(st.load(url, device="dask"))
    c = xp.dask.client()
    addr = on_cluster.addr()
    for worker, why in (("us", "gdpr-personal"), ("bare", "gdpr-personal")):
        fut = c.submit(reader, (slice(0, 8), slice(0, 8)), workers=[addr[worker]], allow_other_workers=False,
                       pure=False)
        with pytest.raises(ResidencyError, match=why) as info:
            fut.result(timeout=60)
        assert f"dask worker '{worker}'" in str(info.value)
    assert [r["decision"] for r in _records(on_cluster, "us", url) if r["operation"] == "dask-load"] == ["deny"]
    assert c.run(lambda: 1, workers=[addr["us"], addr["bare"]]) == {addr["us"]: 1, addr["bare"]: 1}
    # the same reader on the EU worker: the chunk, tagged
    ok = c.submit(reader, (slice(0, 8), slice(0, 8)), workers=[addr["eu"]], allow_other_workers=False, pure=False)
    r = ok.result(timeout=60)
    assert isinstance(r, xp.Array) and dict(r.tags) == PERSONAL and r.shape == (8, 8)
    on_cluster.assert_never_outside_eu()


def test_the_graph_holds_no_credentials(on_cluster: Cluster) -> None:
    url = "hpcai://s3eu/read/secret-free.zarr"
    h = _data(16)
    st.save(xp.tag(h, classification="personal"), url, chunks=(4, 16))  # written with this process's secret
    y = st.load(url, device="dask")
    blob = cloudpickle.dumps(dict(y._data.__dask_graph__())) + pickle.dumps(_reader(y))
    for secret in (CLIENT_SECRET, WORKER_SECRET, "client-key", "worker-key"):
        assert secret.encode() not in blob
    assert b"s3eu" in blob  # the endpoint, by name
    # each worker resolved its own credentials from its own environment (moto accepts any)
    r = (y + 0.0).to_device("numpy:cpu")
    np.testing.assert_allclose(np.asarray(xp.untag(r, "classification", reason="test")), np.asarray(h))
    on_cluster.assert_never_outside_eu()


def test_load_refuses_before_any_task_when_no_worker_may_read(on_cluster: Cluster) -> None:
    url = "hpcai://eu/read/secret.zarr"
    st.save(xp.tag(_data(8), classification="secret"), url)
    with pytest.raises(ResidencyError, match="secret-onprem"):
        st.load(url, device="dask")
    with pytest.raises(InvalidArgumentError, match="load"):
        st.open(url, device="dask")


# -- writing -------------------------------------------------------------------------------------
def _versions(endpoint: str, rel: str) -> list[str]:
    fs = st.filesystem(endpoint)
    return sorted(e.rsplit("/", 1)[-1] for e in fs.ls(rel, detail=False) if e.rsplit("/", 1)[-1].startswith("v"))


@pytest.mark.parametrize("endpoint", ["eu", "s3eu"], ids=["posix", "s3"])
def test_save_from_the_dask_device_round_trips_and_publishes_one_version(on_cluster: Cluster, endpoint: str) -> None:
    h = _data()
    rel = f"write/{endpoint}.zarr"
    url = f"hpcai://{endpoint}/{rel}"
    d = xp.dask.from_array(xp.tag(h, classification="personal"), chunks=(8, 16))
    v = st.save(xp.sin(d) + 1.0, url, dims=("y", "x"), attrs={"units": "K"})
    assert _versions(endpoint, rel) == [v]
    back = st.load(url)
    assert dict(back.tags) == PERSONAL
    want = np.sin(np.asarray(h)) + 1.0
    np.testing.assert_allclose(np.asarray(xp.untag(back, "classification", reason="test")), want, rtol=1e-12)
    h2 = st.open(url)
    assert h2.version == v and h2.chunks == (8, 16)
    # zarr chunks other than the dask chunks: rechunked on the workers, then written
    v2 = st.save(d * 2.0, url, chunks=(16, 32))
    assert st.open(url).chunks == (16, 32) and st.open(url).version == v2
    np.testing.assert_allclose(np.asarray(xp.untag(st.load(url), "classification", reason="t")), 2 * np.asarray(h))
    # and read back onto the dask device: a full round trip on the workers
    r = xp.max(xp.abs(st.load(url, device="dask") - d * 2.0)).to_device("numpy:cpu")
    assert float(xp.untag(r, "classification", reason="t")) == 0.0
    on_cluster.assert_never_outside_eu()


def test_a_failing_chunk_write_publishes_nothing(on_cluster: Cluster) -> None:
    from hpcai.backends.dask import _as_native

    from hpcai._array import _wrap

    rel = "write/failing.zarr"
    url = f"hpcai://eu/{rel}"
    good = xp.dask.from_array(xp.tag(xp.arange(10.0), classification="personal"), chunks=4)  # chunks (4, 4, 2)
    v1 = st.save(good, url)
    # the last block's task fails on its worker (an hpcai reshape to the wrong size), after the
    # other blocks' chunks were written into the new version
    g = good._data
    bad_native = _as_native(da.map_blocks(xp.reshape, g * 3.0, shape=(4,), dtype=g.dtype, meta=g._meta))
    bad = _wrap(bad_native, good._device, good._tags)
    with pytest.raises(Exception, match="reshape"):
        st.save(bad, url, chunks=(4,))
    assert _versions("eu", rel) == [v1]  # the partial version is gone
    assert st.open(url).version == v1
    np.testing.assert_allclose(np.asarray(xp.untag(st.load(url), "classification", reason="t")), np.arange(10.0))
    # a new dataset whose only save fails leaves no pointer and no version
    with pytest.raises(Exception, match="reshape"):
        st.save(bad, "hpcai://eu/write/never.zarr", chunks=(4,))
    fs = st.filesystem("eu")
    assert not fs.exists("write/never.zarr/zarr.json") and _versions("eu", "write/never.zarr") == []
    on_cluster.assert_never_outside_eu()


# -- the embedded cluster -------------------------------------------------------------------------
def test_load_and_save_on_the_embedded_cluster(config: Any, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    config(f'[site]\njurisdiction = "EU"\n[audit]\npath = "{tmp_path / "audit.jsonl"}"\n'
           '[[policy.rules]]\nname = "gdpr-personal"\nmatch = "classification=personal"\ncompute = "jurisdiction=EU"\n'
           f'[endpoints.scratch]\nurl = "file://{root}"\nattributes = {{ jurisdiction = "EU" }}\n')
    try:
        h = xp.reshape(xp.arange(60.0), (6, 10))
        st.save(xp.tag(h, classification="personal"), "hpcai://scratch/a.zarr", chunks=(4, 5))
        y = st.load("hpcai://scratch/a.zarr", device="dask")
        assert xp.dask.client().cluster is not None and dict(y.tags) == PERSONAL
        assert y._data.chunks == ((4, 2), (5, 5))
        v = st.save(y * 10.0, "hpcai://scratch/b.zarr")
        back = st.load("hpcai://scratch/b.zarr")
        assert dict(back.tags) == PERSONAL and st.open("hpcai://scratch/b.zarr").version == v
        np.testing.assert_allclose(np.asarray(xp.untag(back, "classification", reason="t")), 10 * np.asarray(h))
        with pytest.raises(InvalidArgumentError, match="chunks"):
            st.load("hpcai://scratch/a.zarr", chunks=(2, 2))
        # 0-d and boolean arrays
        st.save(xp.asarray(3.5), "hpcai://scratch/s.zarr")
        st.save(st.load("hpcai://scratch/s.zarr", device="dask") * 2.0, "hpcai://scratch/s2.zarr")
        assert float(st.load("hpcai://scratch/s2.zarr")) == 7.0
        m = np.arange(12).reshape(3, 4) % 3 == 0
        st.save(xp.dask.from_array(xp.asarray(m), chunks=(2, 3)), "hpcai://scratch/m.zarr")
        assert np.asarray(st.load("hpcai://scratch/m.zarr", device="dask").to_device("numpy:cpu")).tolist() == m.tolist()
    finally:
        xp.dask.close()


# -- spilling to a worker's local disk -------------------------------------------------------------
SPILL_RULE = """
[[policy.rules]]
name = "onprem-disks"
match = "classification=personal"
store = "provider=onprem"
"""


def test_spilling_covered_data_is_a_store_decision_for_the_site(config: Any, tmp_path: Path) -> None:
    from distributed.spill import SpillBuffer

    import hpcai.spill as hs

    audit = tmp_path / "audit.jsonl"
    site = '[site]\njurisdiction = "EU"\nprovider = "{}"\n[audit]\npath = "' + str(audit) + '"\n'
    config(site.format("hyperscaler") + SPILL_RULE)
    buf = SpillBuffer(str(tmp_path / "spill"), target=1000)
    assert hs.install(buf) and hs.install(buf)  # idempotent
    covered = xp.tag(xp.ones(1000), classification="personal")  # 8000 bytes: above the target
    buf["covered"] = covered
    assert "covered" in buf.fast and "covered" not in buf.slow  # refused: kept in memory
    buf["plain"] = xp.ones(1000)
    buf["other"] = xp.tag(xp.ones(1000), origin="DE")  # not covered by a store rule
    assert "plain" in buf.slow and "other" in buf.slow and "covered" in buf.fast
    for _ in range(3):
        assert buf.evict() in (-1, 8000)
    assert "covered" in buf.fast
    spills = [json.loads(line) for line in audit.read_text().splitlines() if '"dask-spill"' in line]
    assert [(r["decision"], r["rule"]) for r in spills] == [("deny", "onprem-disks")]  # once, not per attempt
    assert not list((tmp_path / "spill").rglob("*covered*"))
    # below the target per value: a refused (oldest) key does not keep younger ones from spilling
    small = SpillBuffer(str(tmp_path / "spill2"), target=20000)
    hs.install(small)
    small["covered"] = covered
    for i in range(4):
        small[f"plain{i}"] = xp.ones(1000)
    assert "covered" in small.fast and {"plain0", "plain1"} <= set(small.slow)
    assert small.fast.total_weight <= 20000 + covered.nbytes + 64  # (an insertion stops at one refusal)
    # at an on-prem site the same value may be spilled, and comes back with its tags
    config(site.format("onprem") + SPILL_RULE)
    while "covered" in buf.fast:
        assert buf.evict() > 0
    back = buf["covered"]
    assert isinstance(back, xp.Array) and dict(back.tags) == PERSONAL


def test_the_spill_guard_installs_on_workers() -> None:
    import hpcai.spill as hs

    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, memory_limit="1 GiB",
                                       dashboard_address=":0")
    try:
        with distributed.Client(cluster, set_as_default=False) as c:
            c.register_plugin(hs.SpillGuard())
            kinds = c.run(lambda dask_worker: type(dask_worker.data.slow.data).__name__)
            assert list(kinds.values()) == ["GuardedSlow"]
    finally:
        cluster.close()
