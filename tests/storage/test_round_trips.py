"""Requests that ``save``/``load`` make on an S3 endpoint (issue 12, deliverable 6: throughput).

Each request to an object store is a round trip: ``load`` reads the pointer and the version's
metadata once each (with the tags stored next to them, concurrently), serves that metadata to
zarr instead of reading it again, and reads each chunk with one GET (no size lookup first);
``save`` does not look for metadata under its fresh version, and removes the version it drops
while it lists the dataset for abandoned ones. Observed on the real client against the test
server (moto, or Ceph RGW when it plays on-prem): every call of s3fs's request method is
recorded, then passed on unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import hpcai.storage as st
import numpy as np
import pytest
import s3fs.core
from hpcai.storage import _arrays

import hpcai as xp

pytestmark = pytest.mark.endpoint("moto")


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """``(operation, key)`` of every S3 request made while the test runs."""
    seen: list[tuple[str, str]] = []
    orig = s3fs.core.S3FileSystem._call_s3

    async def recording(self: Any, method: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((method if isinstance(method, str) else getattr(method, "__name__", str(method)), str(kwargs.get("Key", ""))))
        return await orig(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.core.S3FileSystem, "_call_s3", recording)
    yield seen


@pytest.fixture
def url(onprem_table: dict[str, Any]) -> str:
    xp.configure(data={"endpoints": {"onprem": onprem_table}})
    return f"hpcai://onprem/rt{uuid.uuid4().hex[:10]}/x.zarr"


def _version_of(url: str) -> str:
    v = st.open(url).version
    assert v is not None
    return v


def test_load_reads_metadata_once_and_each_chunk_with_one_request(url: str, requests: list[tuple[str, str]]) -> None:
    ref = np.arange(64.0).reshape(8, 8)
    st.save(xp.tag(xp.asarray(ref), origin="DE"), url, chunks=(4, 4))  # 4 chunks
    version = _version_of(url)
    requests.clear()
    y = st.load(url)
    np.testing.assert_array_equal(np.asarray(y), ref)
    assert sorted(y.tags["origin"]) == ["DE"]
    gets = [k for op, k in requests if op == "get_object"]
    heads = [k for op, k in requests if op == "head_object"]
    meta = [k for k in gets if k.endswith(f"{version}/zarr.json")]
    chunks = [k for k in gets if f"{version}/c/" in k]
    assert len(meta) == 1, gets  # resolved once, then served to zarr
    assert sorted(chunks) == sorted({k for k in chunks}) and len(chunks) == 4, gets
    assert not [k for k in heads if "/c/" in k], heads  # no size lookup before a chunk read
    # the tags stored with the pointer and with the version's metadata were still read
    tagged = {k for op, k in requests if op == "get_object_tagging"}
    assert any(k.endswith("x.zarr/zarr.json") for k in tagged) and any(k.endswith(f"{version}/zarr.json") for k in tagged), tagged


def test_save_writes_without_looking_under_its_new_version(url: str, requests: list[tuple[str, str]]) -> None:
    x = xp.tag(xp.asarray(np.ones((6, 6))), origin="DE")
    st.save(x, url, chunks=(3, 3))
    first = _version_of(url)
    st.save(x, url, chunks=(3, 3))
    second = _version_of(url)
    requests.clear()
    st.save(x, url, chunks=(3, 3))
    during = list(requests)
    third = _version_of(url)
    reads_under_new = [(op, k) for op, k in during if f"/{third}/" in k and op in ("get_object", "head_object", "get_object_tagging")]
    assert reads_under_new == [], reads_under_new
    # the version the pointer dropped is gone, the two it lists remain, the data reads back
    fs = st.filesystem("onprem")
    rel = url[len("hpcai://onprem/"):]
    names = {str(e).rsplit("/", 1)[-1] for e in fs.ls(rel, detail=False)}
    assert first not in names and {second, third} <= names, names
    assert any(op in ("delete_objects", "delete_object") for op, _ in during), during
    np.testing.assert_array_equal(np.asarray(st.load(url)), np.ones((6, 6)))
    assert sorted(st.load(url).tags["origin"]) == ["DE"]


def test_small_chunks_bound() -> None:
    def meta(shape: list[int], dtype: str = "float64") -> dict[str, Any]:
        return {"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": shape}}, "data_type": dtype}

    limit = _arrays.SMALL_CHUNK_BYTES
    assert _arrays._small_chunks(meta([limit // 8]))
    assert not _arrays._small_chunks(meta([limit // 8 + 1]))
    assert _arrays._small_chunks(meta([limit], "uint8"))
    assert not _arrays._small_chunks(meta([0]))
    assert not _arrays._small_chunks(None)
    assert not _arrays._small_chunks({"chunk_grid": {"name": "rectilinear"}, "data_type": "float64"})
