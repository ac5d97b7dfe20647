"""Real servers for the storage tests: two moto S3 servers (EU on-prem, US cloud) and POSIX dirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hpcai.storage import S3Server, start_s3_server
from hpcai.storage.testing import EU, KEY, KEY_ENV, SECRET, SECRET_ENV, US, s3_table


@pytest.fixture(scope="session")
def s3_eu() -> Iterator[S3Server]:
    """The EU on-prem object store (a ThreadedMotoServer on 127.0.0.1, any free port)."""
    srv = start_s3_server(["research-eu"])
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def s3_us() -> Iterator[S3Server]:
    """The US cloud object store (a second ThreadedMotoServer)."""
    srv = start_s3_server(["cloud-us"])
    yield srv
    srv.stop()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return KEY, SECRET


@pytest.fixture
def onprem_table(s3_eu: S3Server, credentials: tuple[str, str]) -> dict[str, Any]:
    """[endpoints.onprem]: the EU on-prem S3 store."""
    return s3_table(s3_eu, "research-eu", EU)


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
