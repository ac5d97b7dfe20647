"""Datasets xarray opens (issue 12, item 4): stable names, dims and attrs, ``save_dataset`` /
``open_dataset`` with tags per variable, ``xr.open_zarr("hpcai://...")`` through the residency
checks, appends and region writes; on POSIX and on S3 (moto, or Ceph RGW when it plays on-prem)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import hpcai.storage as st
import numpy as np
import pytest
from hpcai.storage.testing import EU

import hpcai as xp
from hpcai._tags import as_mapping
from hpcai.errors import InvalidArgumentError, ResidencyError, StorageError

xr = pytest.importorskip("xarray")

PERSONAL = {"classification": frozenset({"personal"})}
US = {"country": "US", "jurisdiction": "US", "provider": "hyperscaler"}
RULES = [{"name": "gdpr-personal", "match": "classification=personal", "compute": "country=@eu", "store": "jurisdiction=EU"}]


class Place:
    """One test's endpoint ``onprem`` (POSIX or S3), its prefix, the policy and the audit log."""

    def __init__(self, kind: str, table: dict[str, Any], tmp: Path) -> None:
        import uuid

        self.kind = kind
        self.table = table
        self.audit_path = tmp / "audit.jsonl"
        self.prefix = f"d{uuid.uuid4().hex[:10]}"

    def configure(self, site: dict[str, str] | None = None) -> None:
        xp.configure(data={
            "site": site or EU,
            "groups": {"eu": ["AT", "BE", "DE", "FR", "NL"]},
            "devices": {"emulated:1": {"attributes": US}},
            "policy": {"rules": RULES},
            "endpoints": {"onprem": self.table},
            "audit": {"path": str(self.audit_path)},
        })

    def url(self, p: str) -> str:
        return f"hpcai://onprem/{self.prefix}/{p}"

    def path(self, p: str) -> str:
        return f"{self.prefix}/{p}"

    def audit(self) -> list[dict[str, Any]]:
        return list(xp.audit.read(self.audit_path)) if self.audit_path.exists() else []


@pytest.fixture(params=[pytest.param("posix", marks=pytest.mark.endpoint("posix")),
                        pytest.param("s3", marks=pytest.mark.endpoint("moto"))])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    if request.param == "s3":
        table = request.getfixturevalue("onprem_table")
    else:
        root = tmp_path / "onprem"
        root.mkdir()
        table = {"url": f"file://{root}", "attributes": EU}
    p = Place(request.param, table, tmp_path)
    p.configure()
    return p


def _np(a: Any) -> np.ndarray:
    return np.asarray(xp.asarray(a, device="numpy:cpu")._data) if a.__class__ is xp.Array else np.asarray(a)


def _open_zarr(url: str, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # xarray's "no consolidated metadata" fallback
        return xr.open_zarr(url, **kw)


# -- save: name, dims, attrs at a stable path ----------------------------------------------------
def test_saved_array_opens_in_xarray_with_dims_and_attrs(place: Place) -> None:
    ref = np.arange(20.0).reshape(4, 5)
    url = place.url("climate/t2m.zarr")
    v1 = st.save(xp.tag(xp.asarray(ref), classification="personal"), url, chunks=(2, 2),
                 dims=("lat", "lon"), attrs={"units": "K", "scale": np.float32(0.5), "levels": [1, 2]})
    ds = _open_zarr(url)
    assert list(ds.data_vars) == ["t2m"]  # the default name: the stem of the path
    assert ds.t2m.dims == ("lat", "lon") and ds.t2m.attrs == {"units": "K", "scale": 0.5, "levels": [1, 2]}
    np.testing.assert_array_equal(ds.t2m.values, ref)
    assert ds.attrs["hpcai"]["head"] == v1  # hpcai's bookkeeping, visible as a dataset attribute
    np.testing.assert_array_equal(xr.open_dataset(url, engine="zarr").t2m.values, ref)
    # the stable path, whatever the version
    y = st.load(f"{url}/t2m")
    np.testing.assert_array_equal(_np(y), ref)
    assert dict(y.tags) == PERSONAL
    v2 = st.save(xp.asarray(ref * 2), url, chunks=(2, 2), dims=("lat", "lon"))  # the name stays t2m
    assert v2 != v1
    np.testing.assert_array_equal(_np(st.load(f"{url}/t2m")), ref * 2)
    np.testing.assert_array_equal(_open_zarr(url).t2m.values, ref * 2)
    np.testing.assert_array_equal(st.open(f"{url}/t2m")[1:3, 0:2]._data, ref[1:3, 0:2] * 2)
    import dask.array as da
    import zarr

    np.testing.assert_array_equal(da.from_zarr(f"{url}/t2m").compute(), ref * 2)
    assert zarr.open_group(url, mode="r")["t2m"].attrs.asdict() == {}  # the second save gave no attrs
    # an explicit name; default dims
    st.save(xp.ones(3), place.url("run.zarr"), name="temperature")
    r = _open_zarr(place.url("run.zarr"))
    assert list(r.data_vars) == ["temperature"] and r.temperature.dims == ("dim_0",)


def test_save_arguments_are_checked(place: Place) -> None:
    url = place.url("a.zarr")
    with pytest.raises(InvalidArgumentError, match="dims"):
        st.save(xp.ones((2, 2)), url, dims=("x",))
    with pytest.raises(InvalidArgumentError, match="dims"):
        st.save(xp.ones((2, 2)), url, dims=("x", "x"))
    with pytest.raises(InvalidArgumentError, match="reserved"):
        st.save(xp.ones(2), url, attrs={"hpcai": 1})
    with pytest.raises(InvalidArgumentError, match="JSON"):
        st.save(xp.ones(2), url, attrs={"f": object()})
    for bad in ("a/b", ".hidden", "zarr.json", "v20260101T120000123Z-ab12cd34", ""):
        with pytest.raises(InvalidArgumentError, match="name"):
            st.save(xp.ones(2), url, name=bad)
    with pytest.raises(InvalidArgumentError, match="Callback"):
        st.save(xp.ones(2), url, callback=print)
    assert not st.filesystem("onprem").exists(place.path("a.zarr"))


# -- datasets: tags per variable, xarray round trip, residency ------------------------------------
def _dataset() -> Any:
    t2m = xp.tag(xp.asarray(np.arange(12.0).reshape(3, 4)), classification="personal")
    count = xp.asarray(np.array([5, 6, 7], dtype=np.int32))
    return xr.Dataset(
        {"t2m": (("time", "lat"), t2m, {"units": "K", "long_name": "2 m temperature"}),
         "count": (("time",), count)},
        coords={"time": [0, 1, 2], "lat": [50.0, 51.0, 52.0, 53.0], "station": ("lat", np.array([1, 2, 3, 4]))},
        attrs={"title": "ERA sample", "version": 3},
    )


def test_dataset_round_trip_through_xr_open_zarr(place: Place) -> None:
    url = place.url("obs.zarr")
    ds = _dataset()
    version = st.save_dataset(ds, url, encoding={"t2m": {"chunks": (2, 2)}})
    assert version.startswith("v")
    assert dict(st.tags(url)) == PERSONAL  # the dataset's tags: the union of its variables'
    # each variable's tags are stored with it
    fs = st.filesystem("onprem")
    for name, want in (("t2m", {"classification": ["personal"]}), ("count", {}), ("time", {}), ("station", {})):
        meta = json.loads(fs._run(fs._read_internal, place.path(f"obs.zarr/{version}/{name}/zarr.json")))
        assert meta["attributes"]["hpcai"]["tags"] == want, name
        if place.kind == "s3":  # and each of its objects carries them (S3 object tags and metadata)
            for f in fs.find(place.path(f"obs.zarr/{version}/{name}")):
                got = fs._run(fs._own_tags, f)
                assert dict(as_mapping(got)) == {k: frozenset(v) for k, v in want.items()}, f
    assert dict(st.taint()) == {}
    for opened in (_open_zarr(url), xr.open_dataset(url, engine="zarr")):
        assert set(opened.data_vars) == {"t2m", "count"}
        assert opened.t2m.dims == ("time", "lat") and opened.t2m.attrs == {"units": "K", "long_name": "2 m temperature"}
        np.testing.assert_array_equal(opened.t2m.values, np.arange(12.0).reshape(3, 4))
        np.testing.assert_array_equal(opened["count"].values, [5, 6, 7])
        assert list(opened.time.values) == [0, 1, 2] and list(opened.lat.values) == [50.0, 51.0, 52.0, 53.0]
        np.testing.assert_array_equal(opened.station.values, [1, 2, 3, 4])
        assert opened.attrs["title"] == "ERA sample" and opened.attrs["version"] == 3
        assert float(opened.t2m.sel(lat=51.0, time=2)) == 9.0
    assert dict(st.taint()) == PERSONAL  # raw reads of tagged data taint the process's later writes
    st.untaint(reason="test: the raw reads above are not written anywhere")
    # open_dataset: hpcai arrays on the device, each with its own tags
    out = st.open_dataset(url, device="emulated:0")
    assert out.t2m.data.__class__ is xp.Array and str(out.t2m.data.device) == "emulated:0"
    assert dict(out.t2m.data.tags) == PERSONAL and dict(out["count"].data.tags) == {}
    np.testing.assert_array_equal(_np(out.t2m.data), np.arange(12.0).reshape(3, 4))
    assert out["count"].data.dtype == xp.int32 and out.station.data.__class__ is xp.Array
    assert sorted(out.indexes) == ["lat", "time"] and float(out.t2m.sel(lat=53.0, time=0).data) == 3.0
    assert out.attrs == {"title": "ERA sample", "version": 3} and out.t2m.attrs["units"] == "K"
    assert dict(st.taint()) == {}  # hpcai's own reads carry the tags on the arrays instead
    # a variable alone, at its stable path
    y = st.load(f"{url}/count")
    assert dict(y.tags) == {} and _np(y).tolist() == [5, 6, 7]
    assert dict(st.load(f"{url}/t2m").tags) == PERSONAL
    with pytest.raises(InvalidArgumentError, match="open_dataset"):
        st.load(url)  # which variable?
    ops = [(r["operation"], r["op"], r["decision"]) for r in place.audit()]
    assert ("save_dataset", "store", "allow") in ops and ("open_dataset", "compute", "allow") in ops


def test_refused_reads_through_xarray_and_open_dataset(place: Place) -> None:
    import fsspec

    url = place.url("obs.zarr")
    st.save_dataset(_dataset(), url)
    st.save(xp.tag(xp.ones((2, 2)), classification="personal"), place.url("one.zarr"), dims=("y", "x"))
    cb = fsspec.callbacks.Callback()
    with pytest.raises(ResidencyError, match="emulated:1"):
        st.open_dataset(url, device="emulated:1", callback=cb)
    assert cb.size is None and cb.value == 0  # refused before anything was read
    with pytest.raises(ResidencyError, match="emulated:1"):
        st.load(f"{url}/t2m", device="emulated:1")
    st.load(f"{url}/count", device="emulated:1")  # an untagged variable may go there
    # raw reads decide for this host: moved to the US, xarray is refused too
    place.configure(site=US)
    for u in (url, place.url("one.zarr")):
        with pytest.raises(ResidencyError, match="gdpr-personal"):
            xr.open_zarr(u)
        with pytest.raises(ResidencyError, match="gdpr-personal"):
            xr.open_dataset(u, engine="zarr")
    with pytest.raises(ResidencyError):
        xr.open_zarr(url, consolidated=False)
    assert dict(st.taint()) == {}  # nothing was read
    denials = [(r["op"], r["destination"]) for r in place.audit() if r["decision"] == "deny"]
    assert ("compute", "emulated:1") in denials and ("compute", "numpy:cpu") in denials


def test_append_and_region(place: Place) -> None:
    url = place.url("series.zarr")
    lat = np.array([50.0, 51.0])
    first = xr.Dataset({"t": (("time", "lat"), xp.tag(xp.asarray(np.zeros((3, 2))), classification="personal"))},
                       coords={"time": [0, 1, 2], "lat": lat}, attrs={"title": "series"})
    v1 = st.save_dataset(first, url, encoding={"t": {"chunks": (2, 2)}})
    more = xr.Dataset({"t": (("time", "lat"), xp.asarray(np.ones((2, 2))))}, coords={"time": [3, 4], "lat": lat},
                      attrs={"title": "series", "appended": 1})
    v2 = st.save_dataset(more, url, append_dim="time")
    assert v2 != v1
    r = _open_zarr(url)
    np.testing.assert_array_equal(r.t.values[:, 0], [0, 0, 0, 1, 1])
    assert list(r.time.values) == [0, 1, 2, 3, 4]
    assert {k: v for k, v in r.attrs.items() if k != "hpcai"} == {"title": "series", "appended": 1}  # as to_zarr does
    out = st.open_dataset(url)
    assert dict(out.t.data.tags) == PERSONAL  # the appended data joined tagged data
    # a region overwrites part of the variables (a new version too)
    patch = xr.Dataset({"t": (("time", "lat"), xp.asarray(np.full((2, 2), 7.0)))})
    st.save_dataset(patch, url, region={"time": slice(1, 3)})
    np.testing.assert_array_equal(_open_zarr(url).t.values[:, 1], [0, 7, 7, 1, 1])
    assert dict(st.tags(url)) == PERSONAL
    versions = [p.rsplit("/", 1)[-1] for p in st.filesystem("onprem").ls(place.path("series.zarr"), detail=False)]
    assert len([v for v in versions if v.startswith("v")]) == 2  # versions stay two, as for save
    with pytest.raises(InvalidArgumentError, match="not both"):
        st.save_dataset(patch, url, append_dim="time", region={"time": slice(0, 1)})
    with pytest.raises(StorageError):
        st.save_dataset(patch, place.url("nothing.zarr"), region={"time": slice(0, 2)})
    # a refused append leaves the dataset as it was
    secret = more.copy()
    secret["t"] = (("time", "lat"), xp.tag(xp.asarray(np.ones((2, 2))), classification="personal"))
    xp.configure(data=_config_with_store_us(place))
    with pytest.raises(ResidencyError):
        st.save_dataset(secret, url, append_dim="time")
    place.configure()
    assert _open_zarr(url).t.shape == (5, 2)


def _config_with_store_us(place: Place) -> dict[str, Any]:
    """The same endpoint, now with US attributes: personal data may not be stored there."""
    table = {**place.table, "attributes": US}
    return {"site": EU, "groups": {"eu": ["DE"]}, "policy": {"rules": RULES}, "endpoints": {"onprem": table},
            "audit": {"path": str(place.audit_path)}}


# -- readers keep their version; the stable names are read-only -------------------------------------
def test_a_reader_keeps_the_version_it_opened(place: Place) -> None:
    url = place.url("p.zarr")
    st.save(xp.zeros((4, 4)), url, chunks=(2, 2))
    reader = _open_zarr(url)
    st.save(xp.ones((4, 4)), url, chunks=(2, 2))
    assert float(reader.p.values.max()) == 0.0  # the version it opened, never a mixture
    assert float(_open_zarr(url).p.values.max()) == 1.0  # a new reader sees the new one
    st.save(xp.full((4, 4), 2.0), url, chunks=(2, 2))  # its version is collected now
    with pytest.raises(StorageError, match="removed by later saves"):
        reader.p.load()  # an error, never fill values
    assert float(_open_zarr(url).p.values.max()) == 2.0
    # a reader that read the pointer and nothing else yet: its version goes before its first chunk
    import fsspec

    fs = fsspec.filesystem("hpcai")
    ds = url[len("hpcai://"):]
    fs.cat_file(f"{ds}/zarr.json")
    st.save(xp.full((4, 4), 3.0), url, chunks=(2, 2))
    st.save(xp.full((4, 4), 4.0), url, chunks=(2, 2))
    with pytest.raises(StorageError, match="removed by later saves"):
        fs.cat_file(f"{ds}/p/c/0/0")
    assert len(fsspec.filesystem("hpcai").cat_file(f"{ds}/p/c/0/0")) > 0  # a new reader reads the head


@pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")  # zarr, writing the copy below
def test_stable_names_and_the_pointer_are_read_only_through_hpcai_urls(place: Place) -> None:
    import fsspec

    url = place.url("p.zarr")
    st.save(xp.zeros((2, 4)), url, chunks=(2, 2), dims=("y", "x"))
    fs = fsspec.filesystem("hpcai")
    stable = url[len("hpcai://"):] + "/p"
    assert fs.isdir(stable) and fs.exists(f"{stable}/zarr.json")
    assert sorted(e.rsplit("/", 1)[-1] for e in fs.find(stable)) == ["0", "1", "zarr.json"]
    with pytest.raises(InvalidArgumentError, match="read-only stable name"):
        fs.pipe_file(f"{stable}/c/0/0", b"x")
    with pytest.raises(InvalidArgumentError, match="read-only stable name"):
        fs.rm(stable, recursive=True)
    with pytest.raises(InvalidArgumentError, match="commit pointer"):
        fs.pipe_file(url[len("hpcai://"):] + "/zarr.json", b"{}")
    more = xr.Dataset({"p": (("y", "x"), np.ones((1, 4)))})
    with pytest.raises(InvalidArgumentError, match="save_dataset"):
        more.to_zarr(url, append_dim="y", zarr_format=3)  # raw appends are refused, nothing written
    np.testing.assert_array_equal(_open_zarr(url).p.values, np.zeros((2, 4)))
    # what xarray read can be written elsewhere (the copied bookkeeping does not make a dataset)
    _open_zarr(url).to_zarr(place.url("copy.zarr"), zarr_format=3)
    np.testing.assert_array_equal(_open_zarr(place.url("copy.zarr")).p.values, np.zeros((2, 4)))


def test_datasets_saved_before_stable_names_still_open(place: Place) -> None:
    """A pointer in the first format (no layout, no consolidated metadata) loads and opens."""
    url = place.url("old.zarr")
    st.save(xp.arange(4.0), url)
    fs = st.filesystem("onprem")
    pointer = json.loads(fs._run(fs._read_internal, place.path("old.zarr/zarr.json")))
    h = pointer["attributes"]["hpcai"]
    pointer["attributes"]["hpcai"] = {k: h[k] for k in ("head", "versions", "tags", "shape", "dtype", "saved")}
    pointer["attributes"]["hpcai"]["format"] = "hpcai.dataset/1"
    del pointer["consolidated_metadata"]
    fs.pipe_file(place.path("old.zarr/zarr.json"), json.dumps(pointer).encode())
    assert _np(st.load(url)).tolist() == [0.0, 1.0, 2.0, 3.0]
    assert _np(st.open_dataset(url)["old"].data).tolist() == [0.0, 1.0, 2.0, 3.0]
    st.save(xp.arange(2.0), url)  # the next save writes the current format
    assert _np(_open_zarr(url)["old"].values).tolist() == [0.0, 1.0]
