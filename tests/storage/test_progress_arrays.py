"""Progress of ``save``/``load`` (and datasets) through fsspec's ``Callback`` (issue 12, item 3):
``set_size`` with the bytes first, then byte-level updates as chunks are written or read,
adding up to the total; on POSIX and on S3 (moto, or Ceph RGW when it plays on-prem)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
import hpcai.storage as st
import numpy as np
import pytest
from hpcai.storage.testing import EU

import hpcai as xp


class Recorder(fsspec.callbacks.Callback):
    """Every call in order: ("size", n) and ("update", value after it)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int | None]] = []

    def set_size(self, size: int | None) -> None:
        self.calls.append(("size", size))
        super().set_size(size)

    def relative_update(self, inc: int = 1) -> None:
        super().relative_update(inc)
        self.calls.append(("update", self.value))

    def check(self, total: int, at_least: int) -> None:
        assert self.calls[0] == ("size", total), self.calls[:3]  # the size comes first
        values = [v for k, v in self.calls[1:] if k == "update"]
        assert all(k == "update" for k, _ in self.calls[1:])
        assert len(values) >= at_least, values  # byte-level, not just 0 % and 100 %
        assert values == sorted(values) and len(set(values)) == len(values)
        assert values[-1] == total == self.value == self.size


@pytest.fixture(params=[pytest.param("posix", marks=pytest.mark.endpoint("posix")),
                        pytest.param("s3", marks=pytest.mark.endpoint("moto"))])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    import uuid

    if request.param == "s3":
        table = request.getfixturevalue("onprem_table")
    else:
        (tmp_path / "ep").mkdir()
        table = {"url": f"file://{tmp_path / 'ep'}", "attributes": EU}
    xp.configure(data={"endpoints": {"onprem": table}})
    prefix = f"p{uuid.uuid4().hex[:10]}"
    return lambda p: f"hpcai://onprem/{prefix}/{p}"


def test_save_and_load_report_bytes_per_chunk(url: Any) -> None:
    ref = np.arange(10 * 12, dtype=np.float64).reshape(10, 12)  # 960 bytes, 9 chunks of 4x5 (edges smaller)
    cb = Recorder()
    st.save(xp.asarray(ref), url("a.zarr"), chunks=(4, 5), callback=cb)
    cb.check(ref.nbytes, at_least=9)
    steps = np.diff([0] + [v for k, v in cb.calls if k == "update"])
    assert sorted(steps.tolist()) == sorted([4 * 5 * 8] * 4 + [4 * 2 * 8] * 2 + [2 * 5 * 8] * 2 + [2 * 2 * 8])
    cb = Recorder()
    y = st.load(url("a.zarr"), callback=cb)
    cb.check(ref.nbytes, at_least=9)
    np.testing.assert_array_equal(np.asarray(y._data), ref)
    cb = Recorder()
    st.load(url("a.zarr/a"), device="emulated:0", callback=fsspec.callbacks.Callback())
    st.save(xp.asarray(np.int8(3)), url("s.zarr"), callback=cb)  # 0-d: one chunk of one byte
    cb.check(1, at_least=1)


def test_empty_and_no_callback(url: Any) -> None:
    cb = Recorder()
    st.save(xp.zeros((0, 3)), url("e.zarr"), callback=cb)
    assert cb.calls == [("size", 0)]
    st.save(xp.ones(4), url("n.zarr"), callback=None)
    assert st.load(url("n.zarr"), callback=fsspec.callbacks.NoOpCallback()).shape == (4,)


def test_datasets_report_progress(url: Any) -> None:
    xr = pytest.importorskip("xarray")
    t = np.arange(6 * 8, dtype=np.float32).reshape(6, 8)
    ds = xr.Dataset({"t": (("y", "x"), xp.asarray(t))}, coords={"x": np.arange(8, dtype=np.int64)})
    cb = Recorder()
    st.save_dataset(ds, url("d.zarr"), encoding={"t": {"chunks": (2, 4)}}, callback=cb)
    cb.check(t.nbytes + 8 * 8, at_least=7)
    cb = Recorder()
    out = st.open_dataset(url("d.zarr"), callback=cb)
    cb.check(t.nbytes + 8 * 8, at_least=7)
    np.testing.assert_array_equal(np.asarray(out.t.data._data), t)
    more = xr.Dataset({"t": (("y", "x"), xp.asarray(np.ones((2, 8), dtype=np.float32)))}, coords={"x": np.arange(8)})
    cb = Recorder()
    st.save_dataset(more, url("d.zarr"), append_dim="y", callback=cb)  # the copied chunks count too
    cb.check(t.nbytes + 8 * 8 + 2 * 8 * 4 + 8 * 8, at_least=9)
