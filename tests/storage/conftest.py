"""Real servers for the storage tests: two moto S3 servers (EU on-prem, US cloud), POSIX dirs,
and a Ceph RGW when ``HPCAI_TEST_RGW`` names one (``ci/rgw.sh start DIR``; see docs/rgw.md).

With ``HPCAI_TEST_RGW`` set, RGW plays the EU on-prem store (``s3_eu``, ``onprem_table``)
while moto plays the US cloud, and the ``TestCephRGW*`` conformance classes run; without
it they skip. Tests that reach RGW are marked ``rgw`` (``pytest tests/storage -m rgw``
runs just those). The run ends with the number of tests per endpoint kind (moto, POSIX,
Ceph RGW), also written as JSON to ``$HPCAI_TEST_ENDPOINT_COUNTS`` when that is set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hpcai.storage import S3Server, start_s3_server
from hpcai.storage.testing import (
    EU,
    KEY,
    KEY_ENV,
    RGW_ENV,
    SECRET,
    SECRET_ENV,
    US,
    RGWServer,
    rgw_from_env,
    s3_table,
)

#: Buckets the tests use on the EU store (moto or RGW).
EU_BUCKET = "research-eu"
RGW_SKIP = (f"no Ceph RGW: {RGW_ENV} is not set (start one with `ci/rgw.sh start DIR`, then "
            f"{RGW_ENV}=DIR pytest tests/storage -m rgw; ci/test.sh does both)")
COUNTS_ENV = "HPCAI_TEST_ENDPOINT_COUNTS"
KINDS = {"moto": "moto", "posix": "POSIX", "rgw": "Ceph RGW"}

_RGW: RGWServer | None = rgw_from_env()


# -- servers ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def rgw() -> RGWServer:
    """The Ceph RGW that ``HPCAI_TEST_RGW`` names (skips without it), with the tests' buckets."""
    if _RGW is None:
        pytest.skip(RGW_SKIP)
    try:
        _RGW.create_buckets([EU_BUCKET])
    except Exception as exc:  # a named server that does not answer is an error, never a skip
        pytest.fail(f"{RGW_ENV} names the Ceph RGW at {_RGW.url} ({_RGW.directory}), which fails: {exc}", pytrace=False)
    return _RGW


@pytest.fixture(scope="session")
def s3_eu_moto() -> Iterator[S3Server]:
    """The EU on-prem object store as a moto server (a ThreadedMotoServer on 127.0.0.1, any free port)."""
    srv = start_s3_server([EU_BUCKET])
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def s3_eu(request: pytest.FixtureRequest) -> Any:
    """The EU on-prem object store: Ceph RGW when ``HPCAI_TEST_RGW`` is set, else moto (``s3_eu_moto``)."""
    if _RGW is not None:
        return request.getfixturevalue("rgw")
    return request.getfixturevalue("s3_eu_moto")


@pytest.fixture(scope="session")
def s3_us() -> Iterator[S3Server]:
    """The US cloud object store (a second ThreadedMotoServer)."""
    srv = start_s3_server(["cloud-us"])
    yield srv
    srv.stop()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The S3 key and secret the endpoint tables take from the environment: RGW's user when
    RGW plays the EU store (moto accepts any), else the dummy ones."""
    key, secret = (_RGW.key, _RGW.secret) if _RGW is not None else (KEY, SECRET)
    monkeypatch.setenv(KEY_ENV, key)
    monkeypatch.setenv(SECRET_ENV, secret)
    return key, secret


# -- endpoint tables --------------------------------------------------------------------------
@pytest.fixture
def onprem_table(s3_eu: Any, credentials: tuple[str, str]) -> dict[str, Any]:
    """[endpoints.onprem]: the EU on-prem S3 store (RGW when ``HPCAI_TEST_RGW`` is set)."""
    return s3_table(s3_eu, EU_BUCKET, EU)


@pytest.fixture
def moto_onprem_table(s3_eu_moto: S3Server, credentials: tuple[str, str]) -> dict[str, Any]:
    """[endpoints.onprem] on moto, whatever plays the on-prem store in this run."""
    return s3_table(s3_eu_moto, EU_BUCKET, EU)


@pytest.fixture
def rgw_table(rgw: RGWServer, credentials: tuple[str, str]) -> dict[str, Any]:
    """[endpoints.onprem] on Ceph RGW (skips without ``HPCAI_TEST_RGW``)."""
    return s3_table(rgw, EU_BUCKET, EU)


@pytest.fixture
def cloud_table(s3_us: S3Server, credentials: tuple[str, str]) -> dict[str, Any]:
    """[endpoints.cloud]: the US cloud S3 store."""
    return s3_table(s3_us, "cloud-us", US)


@pytest.fixture
def s3_table_factory(credentials: tuple[str, str]) -> Any:
    """``s3_table(server, bucket, attributes, **extra)`` for tests that need their own endpoint."""
    return s3_table


@pytest.fixture
def eu_attributes() -> dict[str, str]:
    return dict(EU)


@pytest.fixture
def endpoints_data(onprem_table: dict[str, Any], cloud_table: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """``{"endpoints": ...}`` with onprem (EU S3), cloud (US S3) and scratch (EU POSIX)."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return {
        "endpoints": {
            "onprem": onprem_table,
            "cloud": cloud_table,
            "scratch": {"url": "file://" + str(scratch), "attributes": EU},
        }
    }


# -- which endpoints each test reaches, and the count per endpoint ----------------------------
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rgw: reaches the Ceph RGW named by HPCAI_TEST_RGW (added automatically)")
    config.addinivalue_line("markers", "endpoint(kind): the test reaches an endpoint of this kind (moto, posix, rgw)")


def endpoint_kinds(item: pytest.Item) -> set[str]:
    """The kinds of endpoint a test reaches, from its fixtures and ``endpoint`` marks."""
    names = set(getattr(item, "fixturenames", ()))
    kinds = {str(a) for m in item.iter_markers("endpoint") for a in m.args}
    if "rgw" in names or ("s3_eu" in names and _RGW is not None):
        kinds.add("rgw")
    if names & {"s3_eu_moto", "s3_us"} or ("s3_eu" in names and _RGW is None):
        kinds.add("moto")
    if "endpoints_data" in names:
        kinds.add("posix")
    return kinds


_kinds_by_id: dict[str, set[str]] = {}
_SKIP_LINE = next(i for i, line in enumerate(Path(__file__).read_text().splitlines()) if "pytest.skip(RGW_SKIP)" in line)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Report every skip for want of RGW at one place, so ``-ra`` folds them into one line."""
    rep = yield
    if rep.skipped and isinstance(rep.longrepr, tuple) and RGW_SKIP in str(rep.longrepr[2]):
        rep.longrepr = (__file__, _SKIP_LINE, rep.longrepr[2])
    return rep


@pytest.hookimpl(tryfirst=True)  # before -m selects on the marks added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here not in Path(str(item.path)).parents:
            continue
        kinds = endpoint_kinds(item)
        _kinds_by_id[item.nodeid] = kinds
        if "rgw" in kinds:
            item.add_marker(pytest.mark.rgw)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _kinds_by_id:
        return
    counts: dict[str, dict[str, int]] = {k: {} for k in KINDS}
    for outcome in ("passed", "failed", "error", "skipped", "xfailed", "xpassed"):
        seen: set[str] = set()
        for rep in terminalreporter.stats.get(outcome, ()):
            nodeid = getattr(rep, "nodeid", None)
            if nodeid not in _kinds_by_id or nodeid in seen:
                continue
            seen.add(nodeid)
            for kind in _kinds_by_id[nodeid]:
                counts[kind][outcome] = counts[kind].get(outcome, 0) + 1
    parts = []
    for kind, label in KINDS.items():
        c = counts[kind]
        extra = ", ".join(f"{n} {o}" for o, n in sorted(c.items()) if o != "passed" and n)
        parts.append(f"{label} {c.get('passed', 0)} passed" + (f" ({extra})" if extra else ""))
    terminalreporter.write_line("storage tests per endpoint: " + "; ".join(parts))
    out = os.environ.get(COUNTS_ENV)
    if out:
        Path(out).write_text(json.dumps({KINDS[k]: v for k, v in counts.items()}, sort_keys=True))
