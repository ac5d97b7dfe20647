"""The subprocess cluster the distributed tests share: a scheduler, an EU worker, a US worker and
a worker without hpcai configuration, each with its own HPCAI_CONFIG (or none), every worker
started with ``--preload hpcai.distributed`` and recording the covered data it holds."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import hpcai as xp

distributed = pytest.importorskip("distributed")

import hpcai.distributed as hd  # noqa: E402

RULES = """
[[policy.rules]]
name = "gdpr-personal"
match = "classification=personal"
compute = "jurisdiction=EU"
"""
SITES = {
    "eu": '[site]\ncountry = "DE"\njurisdiction = "EU"\nprovider = "onprem"\n',
    "us": '[site]\ncountry = "US"\njurisdiction = "US"\nprovider = "hyperscaler"\n',
}


class Cluster:
    #: The rules every configured process has, and the [site] of each configured worker.
    rules = RULES
    sites = SITES

    def __init__(self, tmp: Path, extra: str | Mapping[str, str] = "",
                 env: Mapping[str, str] | None = None) -> None:
        """*extra*: TOML appended to each configured worker's configuration (e.g. endpoints), or
        a mapping from worker name (``eu``, ``us``) to its own TOML; *env*: variables set in
        every worker's environment (e.g. its own S3 secret)."""
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        worker_env = env
        self.sched = tmp / "scheduler.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HPCAI_")}
        self.procs["scheduler"] = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--scheduler-file", str(self.sched), "--no-dashboard"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "scheduler.log", "wb"), cwd=tmp,
            start_new_session=True,  # its own process group: close() ends it at once
        )
        for name in ("eu", "us", "bare"):
            wenv = dict(env, **(worker_env or {}), HPCAI_STATE_DIR=str(tmp / f"state-{name}"))
            if name in SITES:
                cfg = tmp / f"{name}.toml"
                more = extra if isinstance(extra, str) else extra.get(name, "")
                cfg.write_text(SITES[name] + RULES + f'[audit]\npath = "{tmp / f"audit-{name}.jsonl"}"\n' + more)
                wenv["HPCAI_CONFIG"] = str(cfg)
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(self.sched),
                 "--name", name, "--nthreads", "2", "--preload", "hpcai.distributed", "--no-dashboard",
                 "--host", "127.0.0.1"],
                env=wenv, stdout=subprocess.DEVNULL, stderr=open(tmp / f"{name}.log", "wb"),
                cwd=tmp,  # (from the repository root, `python -m` would import the source tree's hpcai/)
                start_new_session=True,  # the nanny and its worker process: one group, ended together
            )
        self.client: Any = None
        try:
            deadline = time.time() + 60
            while not self.sched.exists():
                if time.time() > deadline:
                    raise RuntimeError("the scheduler did not start: " + (tmp / "scheduler.log").read_text()[-2000:])
                time.sleep(0.1)
            time.sleep(0.3)
            # not the default client: the process's other dask computations must not reach this cluster
            self.client = distributed.Client(scheduler_file=str(self.sched), timeout=30, set_as_default=False)
            try:
                self.client.wait_for_workers(3, timeout=90)
            except Exception as exc:
                logs = "\n".join(f"--- {n}.log\n" + (tmp / f"{n}.log").read_text()[-1500:] for n in ("eu", "us", "bare"))
                raise RuntimeError(f"the workers did not start: {exc}\n{logs}") from None
            self.client.register_plugin(hd.CoveredDataRecorder())
        except BaseException:
            self.close()
            raise

    def addr(self) -> dict[str, str]:
        """The workers the scheduler has now, by name. Asked of the scheduler directly:
        ``Client.scheduler_info()`` returns the client's cached identity, which its periodic
        refresh (no per-worker information) can replace between the fetch and the read, so it
        once listed no worker at all."""
        info = self.client.sync(self.client.scheduler.identity, n_workers=-1)
        return {w["name"]: a for a, w in info["workers"].items()}

    def seen(self) -> dict[str, list[Any]]:
        names = {a: n for n, a in self.addr().items()}
        return {names[a]: v for a, v in self.client.run(hd.CoveredDataRecorder.seen).items()}

    def assert_never_outside_eu(self, *, all_alive: bool = True) -> None:
        """No covered value ever entered the US worker or the unconfigured one (the recorder's
        log since the cluster started); *all_alive*: and all three workers are up."""
        seen = self.seen()
        assert seen["us"] == [] and seen["bare"] == [], {k: v[-2:] for k, v in seen.items()}
        if all_alive:
            assert sorted(self.addr()) == ["bare", "eu", "us"]  # every worker is alive

    def configure_eu_client(self, tmp_path: Path, extra: str = "", *, timeout: float = 3) -> None:
        """This process becomes the EU client of the cluster: the EU site, the workers' rules
        plus *extra* TOML of its own, an audit log in *tmp_path*, and the dask device connected
        to this cluster's scheduler (waiting up to *timeout* seconds for an allowed worker)."""
        import tomllib

        address = json.loads(self.sched.read_text())["address"]
        data = tomllib.loads(SITES["eu"] + RULES + extra)
        xp.configure(data={**data, "audit": {"path": str(tmp_path / "audit.jsonl")},
                           "dask": {"scheduler": address, "timeout": timeout}})

    def close(self) -> None:
        """End every process of the cluster at once (SIGKILL to each process group: a graceful
        close of nannies and workers takes ~8 s, and nothing of the cluster outlives the tests)."""
        if self.client is not None:
            self.client.close()
        for p in reversed(list(self.procs.values())):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        for p in self.procs.values():
            p.wait(20)


@pytest.fixture(scope="module")
def cluster_extra() -> str | Mapping[str, str]:
    """TOML appended to each configured worker's configuration (or per worker name); a module
    overrides this fixture (e.g. to return ``onprem_endpoint``) to give its cluster's workers
    more configuration."""
    return ""


@pytest.fixture(scope="module")
def onprem_endpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``[endpoints.onprem]``: a POSIX directory at an EU on-prem site, as TOML for the workers'
    configuration (through ``cluster_extra``) and the client's."""
    root = tmp_path_factory.mktemp("onprem")
    return (f'[endpoints.onprem]\nurl = "file://{root}"\n'
            '[endpoints.onprem.attributes]\ncountry = "DE"\njurisdiction = "EU"\nprovider = "onprem"\n')


@pytest.fixture(scope="module")
def cluster_env() -> dict[str, str]:
    """Environment variables for every worker of the module's cluster (a module overrides this
    fixture, e.g. to give the workers their own S3 secret)."""
    return {}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, cluster_extra: str | Mapping[str, str],
            cluster_env: dict[str, str]) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"), extra=cluster_extra, env=cluster_env)
    try:
        yield c
    finally:
        xp.dask.close()  # the dask device's client (if a test connected it) before the cluster
        c.close()


@pytest.fixture
def eu_client(tmp_path: Path) -> None:
    """This process (the client) is in the EU, under the same rules."""
    import tomllib

    data = tomllib.loads(SITES["eu"] + RULES)
    xp.configure(data={**data, "audit": {"path": str(tmp_path / "audit.jsonl")}})
