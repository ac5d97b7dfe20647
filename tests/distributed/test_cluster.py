"""Residency on a real Dask cluster of processes: a scheduler, an EU worker, a US worker and a
worker without hpcai configuration, each with its own HPCAI_CONFIG (or none). Covered data
must never be held by the US or the unconfigured worker, whichever path it takes."""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the shared subprocess cluster, tests/distributed/conftest.py
    from conftest import Cluster

distributed = pytest.importorskip("distributed")

import hpcai as xp  # noqa: E402
import hpcai.distributed as hd  # noqa: E402
from hpcai.errors import ResidencyError  # noqa: E402


@pytest.fixture(autouse=True)
def _eu(eu_client: None) -> None:
    """This process (the client) is in the EU, under the same rules."""


def _personal(n: int = 64) -> Any:
    return xp.tag(xp.reshape(xp.arange(float(n * n)), (n, n)), classification="personal")


def test_workers_advertise_the_rules_their_own_site_satisfies(cluster: Cluster) -> None:
    res = {w["name"]: w["resources"] for w in cluster.client.scheduler_info()["workers"].values()}
    assert res == {"eu": {"hpcai-rule-gdpr-personal": hd.RESOURCE_AMOUNT}, "us": {}, "bare": {}}
    assert hd.resources_for(_personal()) == {"hpcai-rule-gdpr-personal": 1.0}
    assert hd.resources_for(xp.ones(3)) == {}


def test_a_pipeline_runs_on_allowed_workers_and_keeps_its_tags(cluster: Cluster) -> None:
    c = cluster.client
    x = _personal()
    res = hd.resources_for(x)
    fx = c.scatter(x, workers=[cluster.addr()["eu"]], hash=False)
    # many small tasks: idle workers would steal them if the restriction did not hold
    parts = [c.submit(lambda a, i: a * i + 1.0, fx, i, resources=res, pure=False) for i in range(40)]
    total = c.submit(lambda ps: xp.sum(xp.stack([xp.sum(p) for p in ps])), parts, resources=res)
    mm = c.submit(lambda a: a @ a.T, fx, resources=res)
    out, m = total.result(timeout=60), mm.result(timeout=60)
    assert dict(out.tags) == {"classification": frozenset({"personal"})} and str(out.device) == "numpy:cpu"
    ref = sum(float(xp.sum(x * i + 1.0)) for i in range(40))
    assert abs(float(out) - ref) < 1e-6 * abs(ref)
    assert dict(m.tags) == {"classification": frozenset({"personal"})} and m.shape == (64, 64)
    placed = {ws for ws in c.who_has(parts).values() for ws in ws}
    assert placed == {cluster.addr()["eu"]}
    cluster.assert_never_outside_eu()


@pytest.mark.parametrize("worker", ["us", "bare"])
def test_scatter_to_a_denied_worker_lands_as_a_refusal(cluster: Cluster, worker: str) -> None:
    """The US worker's own policy refuses; the unconfigured worker refuses by the rules that
    travel with the data (it has no [site], so jurisdiction=EU cannot hold)."""
    c = cluster.client
    f = c.scatter(_personal(8), workers=[cluster.addr()[worker]], hash=False)
    kind = c.run(lambda dask_worker, k=f.key: type(dask_worker.data[k]).__name__, workers=[cluster.addr()[worker]])
    assert list(kind.values()) == ["RefusedData"]
    with pytest.raises(ResidencyError, match="gdpr-personal"):
        c.submit(lambda a: a + 1, f, workers=[cluster.addr()[worker]], pure=False).result(timeout=60)
    cluster.assert_never_outside_eu()


def test_dependency_fetch_and_replicate_to_a_denied_worker_are_refused(cluster: Cluster) -> None:
    c = cluster.client
    addr = cluster.addr()
    f = c.scatter(_personal(8), workers=[addr["eu"]], hash=False)
    for worker in ("us", "bare"):
        g = c.submit(lambda a: a * 2, f, workers=[addr[worker]], allow_other_workers=False, pure=False)
        with pytest.raises(ResidencyError, match="refused on arrival"):
            g.result(timeout=60)
    c.replicate([f], n=3)
    kinds = c.run(lambda dask_worker, k=f.key: type(dask_worker.data[k]).__name__ if k in dask_worker.data else None)
    names = {a: n for n, a in addr.items()}
    kinds = {names[a]: k for a, k in kinds.items()}
    assert kinds["eu"] == "Array" and kinds["us"] in ("RefusedData", None) and kinds["bare"] in ("RefusedData", None)
    cluster.assert_never_outside_eu()


def test_covered_data_embedded_in_a_graph_fails_closed(cluster: Cluster) -> None:
    """The scheduler unpickles graphs; it has no hpcai configuration, so the carried rules refuse
    the embedded data there: a data-less placeholder takes its place, the task fails with a
    ResidencyError naming the rule (not distributed's bare deserialization error), no worker
    receives the data, and every process stays up."""
    c = cluster.client
    fut = c.submit(lambda a: a + 1, _personal(8), workers=[cluster.addr()["us"]], pure=False)
    with pytest.raises(ResidencyError, match="gdpr-personal") as info:
        fut.result(timeout=60)
    assert "refused on arrival" in str(info.value)
    cluster.assert_never_outside_eu()
    # the same graph sent to the EU worker fails the same way: it was refused at the scheduler
    fut = c.submit(lambda a: a + 1, _personal(8), workers=[cluster.addr()["eu"]], pure=False)
    with pytest.raises(ResidencyError, match="gdpr-personal"):
        fut.result(timeout=60)
    assert c.run_on_scheduler(lambda: 1) == 1


def test_untagged_data_goes_anywhere(cluster: Cluster) -> None:
    c = cluster.client
    f = c.scatter(xp.ones(5), workers=[cluster.addr()["us"]], hash=False)
    assert float(c.submit(lambda a: xp.sum(a), f, workers=[cluster.addr()["us"]]).result(timeout=60)) == 5.0


def test_kill_9_of_the_eu_worker_mid_run_and_the_job_completes(cluster: Cluster) -> None:
    """The nanny restarts the killed worker; its preload advertises the rule again, so the
    restricted tasks wait for it (never run on the US worker) and complete."""
    c = cluster.client
    res = hd.resources_for(_personal(2))
    # made by a task (not scattered, so recomputable): the job survives the worker's death
    make = c.submit(lambda: xp.tag(xp.reshape(xp.arange(1024.0), (32, 32)), classification="personal"),
                    resources=res, pure=False)
    slow = [c.submit(lambda a, i: (__import__("time").sleep(0.1), a + i)[1], make, i, resources=res, pure=False)
            for i in range(20)]
    time.sleep(0.5)
    pids = c.run(os.getpid, workers=[cluster.addr()["eu"]])
    os.kill(next(iter(pids.values())), signal.SIGKILL)
    results = c.gather(slow, errors="raise")
    assert len(results) == 20 and all(dict(r.tags) == {"classification": frozenset({"personal"})} for r in results)
    cluster.assert_never_outside_eu()
