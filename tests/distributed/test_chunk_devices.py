"""Chunks on worker-local devices: each worker's own ``[dask] chunk_device`` decides where the
chunks it holds live (the EU worker keeps them on ``jax:cpu:1``, the US worker on ``jax:cpu:2``,
the worker without hpcai configuration on ``numpy:cpu``). Chunks from several workers meet in
one task (reductions, rechunk, matmul) on the device of the worker that runs it; covered data
still never reaches the US or the unconfigured worker; the embedded cluster keeps its chunks
on this process's chunk device; and a chunk device is decided like any device."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
pytest.importorskip("jax")

import hpcai as xp  # noqa: E402
import hpcai.distributed as hd  # noqa: E402
from hpcai.errors import ConfigError, ResidencyError  # noqa: E402

if TYPE_CHECKING:
    from conftest import Cluster

DEVICES = {"eu": "jax:cpu:1", "us": "jax:cpu:2", "bare": "numpy:cpu"}
PERSONAL = {"classification": frozenset({"personal"})}


@pytest.fixture(scope="module")
def cluster_extra() -> Mapping[str, str]:
    return {name: f'[dask]\nchunk_device = "{dev}"\n' for name, dev in DEVICES.items() if name != "bare"}


@pytest.fixture(scope="module")
def cluster_env() -> dict[str, str]:
    return {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}


@pytest.fixture
def on_cluster(cluster: Cluster, tmp_path: Path) -> Cluster:
    """This process is the EU client of the cluster (its chunks: numpy:cpu)."""
    cluster.configure_eu_client(tmp_path)
    return cluster



def _held_devices_fn() -> Any:
    """A function (pickled by value: the workers cannot import this module) that lists the
    devices of the hpcai Arrays the worker it runs on holds."""

    def held(dask_worker: Any = None) -> list[str]:
        import hpcai

        return sorted({str(v.device) for v in dask_worker.data.values() if isinstance(v, hpcai.Array)})

    return held


def _devices_held(c: Cluster) -> dict[str, list[str]]:
    names = {a: n for n, a in c.addr().items()}
    return {names[a]: v for a, v in c.client.run(_held_devices_fn()).items()}


def _host(n: int = 64) -> Any:
    return xp.reshape(xp.arange(float(n * n)) / 100.0, (n, n))


def test_each_worker_keeps_its_chunks_on_its_own_device(on_cluster: Cluster) -> None:
    h = _host()
    d = xp.dask.from_array(h, chunks=(16, 16))  # untagged: spread over every worker
    kept = xp.dask.persist(xp.sin(d) * 2.0 + d)
    held = _devices_held(on_cluster)
    assert {n for n, v in held.items() if v} >= {"eu", "us"}, held  # chunks on several workers
    for name, devs in held.items():
        assert set(devs) <= {DEVICES[name]}, (name, devs)
    # chunks from several workers (several devices) meet in reductions, rechunk and matmul
    hn = np.asarray(h)
    want = np.sin(hn) * 2.0 + hn
    s = xp.sum(kept, axis=0).to_device("numpy:cpu")
    np.testing.assert_allclose(np.asarray(s), want.sum(axis=0), rtol=1e-12)
    r = xp.dask.rechunk(kept, (64, 8)).to_device("numpy:cpu")
    np.testing.assert_allclose(np.asarray(r), want, rtol=1e-12)
    m = xp.matmul(kept, d).to_device("numpy:cpu")
    np.testing.assert_allclose(np.asarray(m), want @ hn, rtol=1e-10)
    assert str(m.device) == "numpy:cpu"


def test_covered_chunks_live_on_the_eu_workers_device_only(on_cluster: Cluster) -> None:
    x = xp.tag(_host(), classification="personal")
    d = xp.dask.from_array(x, chunks=(16, 16))
    y = xp.dask.persist(xp.matmul(d * 0.5, d))
    held = _devices_held(on_cluster)
    assert held["eu"] == ["jax:cpu:1"], held
    out = xp.sum(y, axis=1).to_device("numpy:cpu")
    assert dict(out.tags) == PERSONAL
    hn = np.asarray(xp.untag(x, "classification", reason="test"))
    np.testing.assert_allclose(np.asarray(xp.untag(out, "classification", reason="test")),
                               ((hn * 0.5) @ hn).sum(axis=1), rtol=1e-10)
    on_cluster.assert_never_outside_eu()


def test_the_embedded_cluster_keeps_chunks_on_this_process_chunk_device(tmp_path: Path) -> None:
    xp.configure(data={"dask": {"chunk_device": "jax:cpu:2", "n_workers": 2}})
    try:
        h = _host(32)
        d = xp.dask.persist(xp.dask.from_array(h, chunks=(8, 8)) + 1.0)
        held = xp.dask.client().run(_held_devices_fn())
        assert len(held) == 2 and all(v == ["jax:cpu:2"] for v in held.values()), held
        s = xp.sum(d, axis=0).to_device("numpy:cpu")
        np.testing.assert_allclose(np.asarray(s), (np.asarray(h) + 1.0).sum(axis=0), rtol=1e-12)
    finally:
        xp.dask.close()


def test_a_chunk_device_is_decided_like_any_device(tmp_path: Path) -> None:
    """The worker's rule resources follow its chunk device's attributes, and data arriving there
    is decided for them: a chunk device configured outside the EU advertises no EU rule."""
    rules = tomllib.loads(
        '[site]\ncountry = "DE"\njurisdiction = "EU"\n'
        '[[policy.rules]]\nname = "gdpr-personal"\nmatch = "classification=personal"\ncompute = "jurisdiction=EU"\n'
    )
    audit = {"path": str(tmp_path / "a.jsonl")}
    xp.configure(data={**rules, "audit": audit, "dask": {"chunk_device": "jax:cpu:1"}})
    assert hd.worker_resources() == {hd.RESOURCE_PREFIX + "gdpr-personal": hd.RESOURCE_AMOUNT}
    covered = xp.tag(xp.ones(3), classification="personal")
    header, frames = hd._serialize(covered)
    y = hd._deserialize(dict(header), [bytes(frames[0])])
    assert isinstance(y, xp.Array) and str(y.device) == "jax:cpu:1" and dict(y.tags) == PERSONAL
    us_device = {"jax:cpu:1": {"attributes": {"country": "US", "jurisdiction": "US"}}}
    xp.configure(data={**rules, "audit": audit, "dask": {"chunk_device": "jax:cpu:1"}, "devices": us_device})
    assert hd.worker_resources() == {}
    refused = hd._deserialize(dict(header), [bytes(frames[0])])
    assert isinstance(refused, hd.RefusedData)
    with pytest.raises(ResidencyError, match="gdpr-personal"):
        refused + 1
    with pytest.raises(ResidencyError, match="gdpr-personal"):
        hd.land(np.ones(3), covered._tags)
    assert str(hd.land(np.ones(3), None).device) == "jax:cpu:1"  # untagged data lands there


def test_a_chunk_device_this_process_lacks_is_named() -> None:
    xp.configure(data={"dask": {"chunk_device": "jax:cpu:9"}})
    with pytest.raises(ConfigError, match=r"chunk_device = 'jax:cpu:9'"):
        hd.chunk_device()
    xp.configure(data={"dask": {"chunk_device": "dask"}})
    with pytest.raises(ConfigError, match="cannot hold this process's chunks"):
        hd.chunk_device()
    with pytest.raises(ConfigError, match="chunk_device"):
        xp.configure(data={"dask": {"chunk_device": 3}})


@pytest.mark.parametrize(("toml", "message"), [
    ('[dask]\nchunk_device = "jax:cpu:9"\n', "[dask] chunk_device = 'jax:cpu:9'"),
    ("[policy\n", "invalid TOML"),
], ids=["missing-chunk-device", "invalid-config"])
def test_a_worker_that_cannot_use_its_configuration_does_not_start(
    cluster: Cluster, tmp_path: Path, toml: str, message: str
) -> None:
    """The preload reads the worker's configuration before it registers: a chunk device the
    worker lacks, or an invalid configuration, stops it, naming the problem. (distributed logs a preload's exception and starts the
    worker anyway: such a worker would join and refuse every chunk sent to it.)"""
    import os
    import subprocess
    import sys

    cfg = tmp_path / "bad.toml"
    cfg.write_text(cluster.sites["eu"] + cluster.rules + toml)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCAI_")}
    env.update(HPCAI_CONFIG=str(cfg), HPCAI_STATE_DIR=str(tmp_path / "state"),
               XLA_FLAGS="--xla_force_host_platform_device_count=4")
    before = sorted(cluster.addr())
    out = subprocess.run(
        [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(cluster.sched),
         "--name", "bad", "--nthreads", "1", "--preload", "hpcai.distributed", "--no-dashboard",
         "--host", "127.0.0.1"],  # with its nanny, as `dask worker` starts by default
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert out.returncode != 0
    assert "hpcai: this worker cannot start: " in out.stderr and message in out.stderr, out.stderr[-2000:]
    assert sorted(cluster.addr()) == before  # it never joined
