"""Faults against a real S3 server: it stops in the middle of a save, comes back, or not."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pytest
import zarr
from hpcai.storage import S3Server, filesystem, load, save, start_s3_server

import hpcai as xp
from hpcai.errors import EndpointUnreachableError, StorageError, StorageNotFoundError

pytestmark = pytest.mark.endpoint("moto")  # its own moto server, stopped and started by the tests

BUCKET = "fault-eu"
SHAPE, CHUNKS = (6400, 512), (64, 512)  # 100 chunks of 256 KiB


@pytest.fixture
def server() -> Iterator[S3Server]:
    srv = start_s3_server([BUCKET])
    yield srv
    srv.stop()


def _configure(server: S3Server, s3_table_factory: Any, eu_attributes: dict[str, str], **retry: Any) -> None:
    table = s3_table_factory(server, BUCKET, eu_attributes, retry=retry)
    xp.configure(data={"endpoints": {"faulty": table}})


def _client(server: S3Server) -> Any:
    return boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="y")


def _chunks_of_new_versions(server: S3Server, prefix: str, old: str) -> int:
    try:
        out = _client(server).list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/")
    except Exception:
        return 0
    return sum(1 for o in out.get("Contents", []) if "/c/" in o["Key"] and f"/{old}/" not in o["Key"])


def _data(value: float) -> Any:
    return xp.tag(xp.full(SHAPE, value), origin="DE")


def _save_in_thread(x: Any, url: str) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["version"] = save(x, url, chunks=CHUNKS)
        except BaseException as exc:  # recorded for the test to inspect
            outcome["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, outcome


def _stop_mid_save(server: S3Server, prefix: str, old: str, t: threading.Thread) -> int:
    deadline = time.monotonic() + 60
    n = 0
    while time.monotonic() < deadline:
        n = _chunks_of_new_versions(server, prefix, old)
        if n >= 10 or not t.is_alive():
            break
        time.sleep(0.005)
    assert t.is_alive() and 10 <= n < 100, f"the save was not caught in the middle ({n} of 100 chunks written)"
    server.stop()
    return n


def test_server_stops_mid_save_and_stays_down(server: S3Server, s3_table_factory: Any, eu_attributes: Any) -> None:
    _configure(server, s3_table_factory, eu_attributes, attempts=3, initial_delay=0.05, max_delay=0.2)
    prefix = f"p{uuid.uuid4().hex[:8]}"
    url = f"hpcai://faulty/{prefix}/x.zarr"
    v1 = save(_data(1.0), url, chunks=CHUNKS)
    t, outcome = _save_in_thread(_data(2.0), url)
    written = _stop_mid_save(server, prefix, v1, t)
    t.join(120)
    assert not t.is_alive()
    err = outcome.get("error")
    assert isinstance(err, EndpointUnreachableError), outcome
    assert "faulty" in str(err) and "not committed" in str(err) and v1 in str(err)
    server.start()
    y = load(url)
    assert float(xp.min(y)) == 1.0 == float(xp.max(y)) and y.shape == SHAPE
    # the half-written version is invisible: no zarr.json, so neither zarr nor load opens it
    fs = filesystem("faulty")
    partial = [p.rsplit("/", 1)[-1] for p in fs.ls(f"{prefix}/x.zarr", detail=False) if not p.endswith(v1) and "/v" in p]
    assert partial, f"expected the interrupted version's chunks ({written} written before the stop) to remain"
    for name in partial:
        assert not fs.exists(f"{prefix}/x.zarr/{name}/zarr.json")
        with pytest.raises(StorageNotFoundError):
            load(f"{url}/{name}")
        with pytest.raises(FileNotFoundError):
            zarr.open_array(f"{url}/{name}", mode="r")
    # the next save succeeds and becomes the only readable version
    v3 = save(_data(3.0), url, chunks=CHUNKS)
    assert v3 > v1 and float(xp.max(load(url))) == 3.0


def test_server_returns_during_save(server: S3Server, s3_table_factory: Any, eu_attributes: Any) -> None:
    _configure(server, s3_table_factory, eu_attributes, attempts=12, initial_delay=0.1, max_delay=1.0)
    prefix = f"p{uuid.uuid4().hex[:8]}"
    url = f"hpcai://faulty/{prefix}/x.zarr"
    v1 = save(_data(1.0), url, chunks=CHUNKS)
    t, outcome = _save_in_thread(_data(2.0), url)
    _stop_mid_save(server, prefix, v1, t)
    time.sleep(1.0)
    server.start()
    t.join(120)
    assert "error" not in outcome, outcome.get("error")
    v2 = outcome["version"]
    assert v2 > v1
    y = load(url)
    assert float(xp.min(y)) == 2.0 == float(xp.max(y))
    assert dict(y.tags) == {"origin": frozenset({"DE"})}


def test_readers_never_see_a_mixture(server: S3Server, s3_table_factory: Any, eu_attributes: Any) -> None:
    _configure(server, s3_table_factory, eu_attributes)
    url = f"hpcai://faulty/p{uuid.uuid4().hex[:8]}/mix.zarr"
    shape, chunks = (40, 64), (4, 64)
    save(xp.zeros(shape), url, chunks=chunks)
    seen: list[float] = []
    problems: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                a = np.asarray(load(url)._data)
            except BaseException as exc:
                problems.append(exc)
                return
            values = np.unique(a)
            if values.size != 1:
                problems.append(AssertionError(f"a reader saw a mixture of versions: {values}"))
                return
            seen.append(float(values[0]))

    r = threading.Thread(target=reader)
    r.start()
    try:
        for i in range(1, 6):
            save(xp.full(shape, float(i)), url, chunks=chunks)
            time.sleep(0.2)
    finally:
        stop.set()
        r.join(60)
    assert not problems, problems
    assert len(seen) >= 3 and set(seen) <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}
    assert seen == sorted(seen)  # versions only move forward


def test_transient_outage_is_retried(server: S3Server, s3_table_factory: Any, eu_attributes: Any) -> None:
    _configure(server, s3_table_factory, eu_attributes, attempts=10, initial_delay=0.1, max_delay=0.5)
    fs = filesystem("faulty")
    fs.pipe_file("blip.bin", b"still here")
    server.stop()
    threading.Timer(1.5, server.start).start()
    t0 = time.monotonic()
    assert fs.cat_file("blip.bin") == b"still here"
    assert time.monotonic() - t0 > 1.0  # it waited for the server rather than failing


def test_unreachable_endpoint_names_it(server: S3Server, s3_table_factory: Any, eu_attributes: Any,
                                       caplog: pytest.LogCaptureFixture) -> None:
    _configure(server, s3_table_factory, eu_attributes, attempts=2, initial_delay=0.01, max_delay=0.01)
    server.stop()
    try:
        with caplog.at_level("INFO", logger="hpcai.storage"), pytest.raises(EndpointUnreachableError) as info:
            filesystem("faulty").cat_file("anything.bin")
        msg = str(info.value)
        assert "'faulty'" in msg and server.url in msg and "2 attempt" in msg
        retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
        assert len(retries) == 1 and "faulty" in retries[0]
        with pytest.raises(StorageError, match="faulty"):
            load("hpcai://faulty/x.zarr")
    finally:
        server.start()
