"""hpcai's scheduler plugin on the real subprocess cluster (scheduler + EU worker + US worker +
an unconfigured worker): tasks inherit the rule restriction of their covered inputs (a raw
``client.compute`` without ``resources=`` stays on the EU worker), forced work stealing moves
no covered task off it, and retiring the only EU worker is refused, naming the rule, with the
data still there and nothing covered on the other workers. Its own cluster: the last test
tries to retire the EU worker."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

import dask.array as da  # noqa: E402

import hpcai as xp  # noqa: E402
import hpcai.distributed as hd  # noqa: E402
from hpcai.errors import ResidencyError  # noqa: E402

PERSONAL = {"classification": frozenset({"personal"})}


@pytest.fixture(autouse=True)
def _eu_on_the_cluster(cluster: Any, tmp_path: Path) -> None:
    cluster.configure_eu_client(tmp_path, timeout=5)




def _running_again(c: Any, address: str) -> None:
    deadline = time.time() + 30
    while c.scheduler_info()["workers"][address]["status"] != "running":
        assert time.time() < deadline, c.scheduler_info()["workers"][address]["status"]
        time.sleep(0.05)


def _covered(n: int = 32, chunks: int = 8) -> Any:
    x = xp.tag(xp.reshape(xp.arange(float(n * n)), (n, n)) / 100.0, classification="personal")
    return xp.dask.from_array(x, chunks=(chunks, chunks))


def test_the_scheduler_knows_what_scattered_chunks_need(cluster: Any) -> None:
    d = _covered()
    keys = [str(f.key) for f in distributed.futures_of(d._data)]
    c = xp.dask.client()
    needs = c.run_on_scheduler(lambda dask_scheduler, ks=keys: sorted(
        {json.dumps(hd._rule_needs(t)) for t in dask_scheduler.tasks.values() if str(t.key) in ks}))
    assert needs == [json.dumps({"hpcai-rule-gdpr-personal": 1.0})]


def test_a_raw_compute_without_resources_stays_on_allowed_workers(cluster: Any) -> None:
    """No ``resources=``: the plugin gives every task the restriction of its covered inputs."""
    d = _covered(64, 8)  # 64 chunks
    g = (xp.sin(d) * 2.0 + d)._data
    c = xp.dask.client()
    out = c.compute(da.Array(g.dask, g.name, g.chunks, meta=g._meta)).result(timeout=60)
    assert dict(out.tags) == PERSONAL and out.shape == (64, 64)
    cluster.assert_never_outside_eu(all_alive=False)


def test_forced_work_stealing_moves_no_covered_task(cluster: Any) -> None:
    c = xp.dask.client()
    d = _covered(32, 4)  # 64 chunks on the EU worker
    slow = d._data.map_blocks(lambda b: (time.sleep(0.05), b * 2.0)[1], meta=d._data._meta)
    fut = c.compute(slow)
    deadline = time.time() + 60
    while not fut.done() and time.time() < deadline:  # the stealing extension balances, often
        c.run_on_scheduler(lambda dask_scheduler: dask_scheduler.extensions["stealing"].balance())
        time.sleep(0.02)
    out = fut.result(timeout=60)
    assert dict(out.tags) == PERSONAL
    cluster.assert_never_outside_eu(all_alive=False)


def test_retiring_the_only_allowed_worker_is_refused_naming_the_rule(cluster: Any) -> None:
    d = xp.dask.persist(_covered(16, 8) * 3.0)
    futures = distributed.futures_of(d._data)
    deadline = time.time() + 60
    while not all(f.status == "finished" for f in futures):
        assert time.time() < deadline
        time.sleep(0.05)
    eu = cluster.addr()["eu"]
    c = xp.dask.client()
    with pytest.raises(ResidencyError, match="gdpr-personal") as info:
        xp.dask.retire_workers([eu])
    assert eu in str(info.value) and "nowhere to go" in str(info.value)
    _running_again(c, eu)  # (a retirement that gives up restores the status in a round trip)
    assert c.retire_workers(workers=[eu]) == {}  # distributed's own call: not retired either
    _running_again(c, eu)
    assert "eu" in cluster.addr()  # still there, still holding the data
    r = d.to_device("numpy:cpu")
    assert dict(r.tags) == PERSONAL and float(xp.sum(r)) == pytest.approx(3.0 * sum(range(256)) / 100.0)
    cluster.assert_never_outside_eu(all_alive=False)
