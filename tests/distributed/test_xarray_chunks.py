"""The ``dask`` device as xarray's chunk manager (``chunked_array_type="hpcai"``), on the real
subprocess cluster (scheduler + EU worker + US worker + an unconfigured worker; every
configured process has the same POSIX endpoint): ``ds.chunk(...)`` and
``xr.open_zarr("hpcai://...", chunks=...)`` give dask-device hpcai Arrays with the data's tags,
chunks are read and computed only on the EU worker (the recorder sees no covered value on the
others), ``.compute()`` returns tagged host arrays, and what cannot keep the tags refuses."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
xr = pytest.importorskip("xarray")

import hpcai.storage as st  # noqa: E402

import hpcai as xp  # noqa: E402
from hpcai.errors import ResidencyError  # noqa: E402

#: A rule only the client has: no worker advertises it.
CLIENT_ONLY = """
[[policy.rules]]
name = "secret-onprem"
match = "classification=secret"
compute = "jurisdiction=EU & provider=onprem"
"""


@pytest.fixture(scope="module")
def cluster_extra(onprem_endpoint: str) -> str:
    """Every configured worker also knows the endpoint."""
    return onprem_endpoint


@pytest.fixture(autouse=True)
def _eu_client(cluster: Any, onprem_endpoint: str, tmp_path: Path) -> None:
    cluster.configure_eu_client(tmp_path, CLIENT_ONLY + onprem_endpoint)



def _covered_elsewhere(cluster: Any) -> dict[str, list[Any]]:
    return {k: v for k, v in cluster.seen().items() if k != "eu" and v}


def _field(n: int = 8) -> np.ndarray:
    return np.arange(float(n * 6)).reshape(n, 6) / 10.0


def test_chunk_gives_tagged_dask_device_arrays_computed_on_allowed_workers(cluster: Any) -> None:
    ref = _field()
    x = xp.tag(xp.asarray(ref), classification="personal")
    ds = xr.Dataset({"t": (("y", "x"), x)}, coords={"y": np.arange(8)})
    c = ds.chunk({"y": 2}, chunked_array_type="hpcai")
    d = c.t.data
    assert isinstance(d, xp.Array) and str(d.device) == "dask"
    assert c.t.chunks == ((2, 2, 2, 2), (6,))
    assert sorted(d.tags["classification"]) == ["personal"]
    m = (c.t * 2.0).mean("y")  # xarray's default skipna path (xp.nanmean): lazy until computed
    assert str(m.data.device) == "dask"
    out = m.compute()
    assert str(out.data.device) == "numpy:cpu" and sorted(out.data.tags["classification"]) == ["personal"]
    np.testing.assert_allclose(np.asarray(out.data), (ref * 2.0).mean(axis=0))
    assert float(c.t.sum(skipna=False).compute().data) == pytest.approx(ref.sum())
    assert _covered_elsewhere(cluster) == {}


def test_set_options_makes_hpcai_the_chunk_manager(cluster: Any) -> None:
    x = xp.tag(xp.asarray(_field()), classification="personal")
    with xr.set_options(chunk_manager="hpcai"):
        c = xr.DataArray(x, dims=("y", "x")).chunk({"y": 4})
    assert str(c.data.device) == "dask" and c.chunks == ((4, 4), (6,))
    np.testing.assert_allclose(np.asarray(c.max(skipna=False).compute().data), _field().max())


def test_open_zarr_reads_chunks_on_the_workers_with_the_stored_tags(cluster: Any) -> None:
    ref = _field(12)
    x = xp.tag(xp.asarray(ref), classification="personal")
    st.save_dataset(xr.Dataset({"t": (("y", "x"), x)}), "hpcai://onprem/t.zarr", encoding={"t": {"chunks": (3, 6)}})
    ds = xr.open_zarr("hpcai://onprem/t.zarr", chunks={"y": 3}, chunked_array_type="hpcai")
    d = ds.t.data
    assert isinstance(d, xp.Array) and str(d.device) == "dask"
    assert ds.t.chunks == ((3, 3, 3, 3), (6,))
    assert sorted(d.tags["classification"]) == ["personal"]  # the stored tags, looked up once
    out = ds.t.mean("x").compute()
    np.testing.assert_allclose(np.asarray(out.data), ref.mean(axis=1))
    assert sorted(out.data.tags["classification"]) == ["personal"]
    assert _covered_elsewhere(cluster) == {}
    # the chunks, as read on the EU worker, carry the stored tags themselves
    kept = xp.dask.persist(d)
    deadline = time.monotonic() + 30
    while True:
        read = [t for k, t in cluster.seen()["eu"] if "hpcai-read-" in k]
        if len(read) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(read) >= 4 and all(t == {"classification": ["personal"]} for t in read), cluster.seen()["eu"][-3:]
    del kept
    # the EU worker decided the reads itself, against its own [site], and audited them
    records = [json.loads(line) for line in (cluster.tmp / "audit-eu.jsonl").read_text().splitlines() if line.strip()]
    assert any(r.get("op") == "compute" and "t.zarr" in json.dumps(r) for r in records), records[-3:]


def test_no_allowed_worker_refuses_before_anything_moves(cluster: Any) -> None:
    x = xp.tag(xp.asarray(_field()), classification="secret")  # a rule no worker advertises
    with pytest.raises(ResidencyError, match="secret-onprem"):
        xr.DataArray(x, dims=("y", "x")).chunk({"y": 2}, chunked_array_type="hpcai")


def test_writing_chunked_data_through_xarray_keeps_the_tags(cluster: Any, tmp_path: Path, onprem_endpoint: str) -> None:
    x = xp.tag(xp.asarray(_field()), classification="personal")
    c = xr.Dataset({"t": (("y", "x"), x)}).chunk({"y": 2}, chunked_array_type="hpcai")
    # outside hpcai:// the tags would be lost: refused before any chunk is written
    with pytest.raises(ResidencyError, match="outside hpcai://"):
        c.to_zarr(str(tmp_path / "out.zarr"), consolidated=False)
    assert not (tmp_path / "out.zarr" / "t" / "c").exists()
    # through hpcai:// every chunk object is stored with the tags
    c.to_zarr("hpcai://onprem/chunked.zarr", consolidated=False)
    root = Path(onprem_endpoint.split('url = "file://')[1].split('"')[0])
    chunks = [p for p in (root / "chunked.zarr" / "t" / "c").rglob("*") if p.is_file()]
    assert chunks
    for p in chunks:
        rel = p.relative_to(root).as_posix()
        assert dict(st.tags(f"hpcai://onprem/{rel}")) == {"classification": frozenset({"personal"})}, rel
    np.testing.assert_array_equal(xr.open_zarr("hpcai://onprem/chunked.zarr", consolidated=False).t.values, _field())
    st.untaint(reason="test: the raw read above is not written anywhere")
    assert _covered_elsewhere(cluster) == {}
