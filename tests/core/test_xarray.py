"""hpcai Arrays inside xarray (issue 13, item 4, without Dask).

Every operation runs on ``numpy:cpu``, ``emulated:0`` and ``jax:cpu:0`` on tagged data, under
``xp.transfers(forbid=True)`` (no movement) and a policy that audits every export of the
tags: the result must be an hpcai Array on the same device with the same tags, nothing
moved and nothing exported; its values must match xarray on NumPy. Operations that xarray
can only do with NumPy dtypes must refuse without exporting anything.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hpcai as xp

xr = pytest.importorskip("xarray")
pd = pytest.importorskip("pandas")

TAGS = {"handling": frozenset({"internal"})}
POLICY_RULES = [{"name": "internal-exports", "match": "handling=internal", "export": "false", "effect": "audit"}]


def _devices() -> list[Any]:
    out: list[Any] = ["numpy:cpu", "emulated:0"]
    jax_ok = any(str(d) == "jax:cpu:0" for d in xp.all_devices())
    out.append(pytest.param("jax:cpu:0", marks=pytest.mark.skipif(not jax_ok, reason="JAX is not installed")))
    return out


@pytest.fixture
def audit_log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "audit.jsonl"
    xp.configure(data={"policy": {"rules": POLICY_RULES}, "audit": {"path": str(path)}})
    yield path
    xp.configure(data={})


def _exports(path: Path) -> list[dict[str, Any]]:
    return [r for r in xp.audit.read(path) if r.get("op") == "export"] if path.exists() else []


def _data() -> np.ndarray:
    data = np.arange(24.0).reshape(6, 4)
    data[1, 2] = np.nan
    data[4, 0] = np.nan
    return data


def _da(values: Any) -> Any:
    time = pd.date_range("2000-01-01", periods=6, freq="12h")
    return xr.DataArray(values, dims=("time", "x"), coords={"time": time, "x": np.arange(4.0)}, name="v")


def _host(a: Any) -> np.ndarray:
    """The values of a result (after the checks: this export is explicit and audited)."""
    if a.__class__ is xp.Array:
        return np.asarray(a.to_device("numpy:cpu"))
    return np.asarray(a)


#: Operations that keep the hpcai Array, its device and its tags.
KEEPS: dict[str, Callable[[Any], Any]] = {
    "arithmetic": lambda d: (d * 2 + d) / 3 - 1,
    "arithmetic_broadcast": lambda d: d - d.isel(time=0),
    "isel": lambda d: d.isel(time=slice(1, 4), x=[0, 2]),
    "sel": lambda d: d.sel(x=1.0),
    "sel_list": lambda d: d.sel(x=[0.0, 3.0]),
    "xr_where": lambda d: xr.where(d > 3, d, d * 0),
    "concat": lambda d: xr.concat([d, d.isel(time=slice(0, 2))], dim="time"),
    "transpose": lambda d: d.T,
    "stack": lambda d: d.stack(z=("time", "x")),
    "diff": lambda d: d.diff("time"),
    "clip": lambda d: d.clip(1, 5),
    "isnull": lambda d: d.isnull(),
    "count": lambda d: d.count("time"),
    "sum": lambda d: d.sum(),
    "sum_dim": lambda d: d.sum("time"),
    "sum_noskip": lambda d: d.sum("time", skipna=False),
    "mean": lambda d: d.mean(),
    "mean_dim": lambda d: d.mean("time"),
    "mean_noskip": lambda d: d.mean("x", skipna=False),
    "std": lambda d: d.std("time"),
    "var_ddof1": lambda d: d.var("time", ddof=1),
    "max": lambda d: d.max("time"),
    "min": lambda d: d.min(),
    "prod": lambda d: d.prod("x"),
    "median": lambda d: d.median("time"),
    "argmax": lambda d: d.argmax("time"),
    "argmin": lambda d: d.argmin("x"),
    "cumsum": lambda d: d.cumsum("time"),
    "cumprod": lambda d: d.cumprod("x"),
    "groupby_mean": lambda d: d.groupby("x").mean(),
    "groupby_time": lambda d: d.groupby("time.day").max(),
    "groupby_bins": lambda d: d.groupby_bins("x", [0, 1.5, 4]).sum(),
    "resample": lambda d: d.resample(time="1D").mean(),
    "coarsen": lambda d: d.coarsen(time=2).mean(),
    "dataset_mean": lambda d: d.to_dataset().mean("time")["v"],
    # missing-value fills: xarray's NumPy dtype logic, and a fill value that xarray makes with
    # xp.asarray(np.nan) on the default device (a weak scalar, so it joins any device)
    "where_without_other": lambda d: d.where(d > 3),
    "where_scalar_other": lambda d: d.where(d > 3, 0.0),
    "fillna": lambda d: d.fillna(-1.0),
    "shift": lambda d: d.shift(time=1),
    "sum_min_count": lambda d: d.sum("time", min_count=1),
    "pad": lambda d: d.pad(time=(1, 2)),
    "rolling_mean": lambda d: d.rolling(time=3).mean(),
    "rolling_max": lambda d: d.rolling(time=2).max(),
    "rolling_sum_centred": lambda d: d.rolling(time=3, center=True, min_periods=1).sum(),
    "rolling_2d_std": lambda d: d.rolling(time=2, x=2).std(),
    "rolling_construct": lambda d: d.rolling(time=3).construct("window"),
    "dataset_rolling": lambda d: d.to_dataset().rolling(time=2).mean()["v"],
    "dataset_groupby": lambda d: d.to_dataset().groupby("time.day").std()["v"],
}


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("name", sorted(KEEPS))
def test_operation_keeps_type_device_and_tags(name: str, device: str, audit_log: Path) -> None:
    op = KEEPS[name]
    d = _da(xp.asarray(_data(), device=device, tags=TAGS))
    before = len(_exports(audit_log))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with xp.transfers(forbid=True) as log:
            r = op(d)
        expected = op(_da(_data()))
    assert len(log) == 0
    assert len(_exports(audit_log)) == before, "an xarray path exported covered data"
    assert isinstance(r.data, xp.Array), f"{name} returned {type(r.data).__name__}"
    assert r.data.device == xp.resolve_device(device)
    assert dict(r.data.tags) == TAGS
    np.testing.assert_allclose(_host(r.data), np.asarray(expected.data), equal_nan=True)


@pytest.mark.parametrize("device", _devices())
def test_dataset_with_several_variables(device: str, audit_log: Path) -> None:
    t = xp.asarray(_data(), device=device, tags=TAGS)
    u = xp.asarray(_data() * 2, device=device)  # untagged
    ds = xr.Dataset({"t": (("time", "x"), t), "u": (("time", "x"), u)}, coords={"x": np.arange(4.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with xp.transfers(forbid=True):
            m = (ds.t + ds.u).mean("time")
            s = ds.std("x")
    assert dict(m.data.tags) == TAGS and m.data.device == xp.resolve_device(device)
    assert dict(s.t.data.tags) == TAGS and s.u.data.tags == {}
    assert _exports(audit_log) == []


# --------------------------------------------------------------------------------------------
# what xarray cannot do with hpcai arrays: it refuses, and nothing leaves
# --------------------------------------------------------------------------------------------
#: xarray's ``interp`` interpolates with NumPy/SciPy, not through the array's namespace.
def test_interp_is_an_export_on_the_host_and_refused_elsewhere(audit_log: Path) -> None:
    for device in ("emulated:0", "jax:cpu:0"):
        if not any(str(d) == device for d in xp.all_devices()):
            continue
        d = _da(xp.asarray(_data(), device=device, tags=TAGS))
        with xp.transfers(forbid=True) as log, pytest.raises(TypeError, match="implicitly"):
            d.interp(x=[0.5, 1.5])
        assert len(log) == 0 and _exports(audit_log) == []
    # in host memory, NumPy reads the array through __array__: an export, decided and audited
    d = _da(xp.asarray(_data(), tags=TAGS))
    r = d.interp(x=[0.5, 1.5])
    assert isinstance(r.data, np.ndarray)
    exports = _exports(audit_log)
    assert exports and all(e["tags"] == {"handling": ["internal"]} for e in exports)


def _zarr_endpoints(tmp_path: Path, audit_log: Path) -> tuple[Path, Path]:
    eu, us = tmp_path / "eu", tmp_path / "us"
    eu.mkdir()
    us.mkdir()
    rules = [*POLICY_RULES, {"name": "internal-stays-in-eu", "match": "handling=internal", "store": "jurisdiction=EU"}]
    xp.configure(data={
        "policy": {"rules": rules},
        "audit": {"path": str(audit_log)},
        "endpoints": {
            "eu": {"url": f"file://{eu}", "attributes": {"jurisdiction": "EU"}},
            "us": {"url": f"file://{us}", "attributes": {"jurisdiction": "US"}},
        },
    })
    return eu, us


def _chunk_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and "c" in p.relative_to(root).parts]


@pytest.mark.parametrize("device", _devices())
def test_to_zarr_through_hpcai_stores_the_tags_with_the_chunks(device: str, audit_log: Path, tmp_path: Path) -> None:
    import hpcai.storage as st

    eu, us = _zarr_endpoints(tmp_path, audit_log)
    t = xp.asarray(_data(), device=device, tags=TAGS)
    ds = xr.Dataset({"t": (("time", "x"), t)}, coords={"x": np.arange(4.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with xp.transfers() as log:
            ds.to_zarr("hpcai://eu/raw.zarr", zarr_format=3, consolidated=False)
    # the values reached the host by a logged move only where they did not live there
    assert len(log) == (0 if xp.resolve_device(device).is_host else 1)
    chunks = _chunk_files(eu / "raw.zarr" / "t")
    assert chunks, "no chunk was written"
    for c in chunks:  # every chunk object carries the tags, stored next to it
        rel = c.relative_to(eu).as_posix()
        assert dict(st.tags(f"hpcai://eu/{rel}")) == TAGS, rel
    back = xr.open_zarr("hpcai://eu/raw.zarr", consolidated=False)
    np.testing.assert_array_equal(back.t.values, _data())
    st.untaint(reason="test: the raw read above is not written anywhere")
    # a store the policy forbids for these tags refuses the chunks: none is written
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(xp.errors.ResidencyError, match="internal-stays-in-eu"):
            ds.to_zarr("hpcai://us/raw.zarr", zarr_format=3, consolidated=False)
    assert _chunk_files(us / "raw.zarr" / "t") == []  # (the untagged coordinate "x" may be there)
    # a store outside hpcai:// would drop the tags: refused before any chunk
    with pytest.raises(xp.errors.ResidencyError, match="outside hpcai://"):
        ds.to_zarr(tmp_path / "plain.zarr", zarr_format=3, consolidated=False)
    assert not (tmp_path / "plain.zarr" / "t").exists() or _chunk_files(tmp_path / "plain.zarr" / "t") == []
    assert _exports(audit_log) == []


def test_to_zarr_of_untagged_hpcai_arrays_writes_anywhere(audit_log: Path, tmp_path: Path) -> None:
    u = xp.asarray(_data(), device="emulated:0")
    ds = xr.Dataset({"u": (("time", "x"), u)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(tmp_path / "plain.zarr", zarr_format=3, consolidated=False)
    np.testing.assert_array_equal(xr.open_zarr(tmp_path / "plain.zarr", consolidated=False).u.values, _data())


@pytest.mark.parametrize("device", _devices())
def test_save_dataset_keeps_tags_per_variable(device: str, audit_log: Path, tmp_path: Path) -> None:
    import hpcai.storage as st

    _zarr_endpoints(tmp_path, audit_log)
    t = xp.asarray(_data(), device=device, tags=TAGS)
    ds = xr.Dataset({"t": (("time", "x"), t)}, coords={"x": np.arange(4.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        st.save_dataset(ds, "hpcai://eu/obs.zarr")
        back = st.open_dataset("hpcai://eu/obs.zarr", device=device)
    assert isinstance(back.t.data, xp.Array) and dict(back.t.data.tags) == TAGS
    assert back.t.data.device == xp.resolve_device(device)


# --------------------------------------------------------------------------------------------
# the namespace extensions themselves
# --------------------------------------------------------------------------------------------
NAN_FUNCTIONS = {
    "nansum": {},
    "nanprod": {},
    "nanmean": {},
    "nanvar": {"ddof": 1},
    "nanstd": {},
    "nanmax": {},
    "nanmin": {},
    "nanmedian": {},
}


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("fname", sorted(NAN_FUNCTIONS))
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
def test_nan_reductions_match_numpy(fname: str, axis: Any, device: str) -> None:
    a = _data()
    x = xp.asarray(a, device=device, tags=TAGS)
    kw = NAN_FUNCTIONS[fname]
    with xp.transfers(forbid=True):
        r = getattr(xp, fname)(x, axis=axis, **kw)
        k = getattr(xp, fname)(x, axis=axis, keepdims=True, **kw)
    assert r.device == x.device and dict(r.tags) == TAGS and k.ndim == 2
    np.testing.assert_allclose(_host(r), getattr(np, fname)(a, axis=axis, **kw))


@pytest.mark.parametrize("device", _devices())
def test_nan_arg_and_cumulative(device: str) -> None:
    a = _data()
    x = xp.asarray(a, device=device, tags=TAGS)
    with xp.transfers(forbid=True):
        out = {
            "nanargmax": xp.nanargmax(x, axis=0),
            "nanargmin": xp.nanargmin(x, axis=1),
            "nancumsum": xp.nancumsum(x, axis=0),
            "nancumprod": xp.nancumprod(x, axis=1),
        }
    assert out["nanargmax"].dtype == xp.int64
    for r in out.values():
        assert r.device == x.device and dict(r.tags) == TAGS
    np.testing.assert_array_equal(_host(out["nanargmax"]), np.nanargmax(a, axis=0))
    np.testing.assert_array_equal(_host(out["nanargmin"]), np.nanargmin(a, axis=1))
    np.testing.assert_allclose(_host(out["nancumsum"]), np.nancumsum(a, axis=0))
    np.testing.assert_allclose(_host(out["nancumprod"]), np.nancumprod(a, axis=1))


def test_nan_functions_check_their_arguments() -> None:
    from hpcai.errors import DTypeError, InvalidArgumentError

    x = xp.asarray([[1.0, float("nan")], [2.0, 3.0]])
    with pytest.raises(InvalidArgumentError, match="axis is required"):
        xp.nancumsum(x)
    with pytest.raises(InvalidArgumentError, match="empty"):
        xp.nanmax(xp.zeros((0,)))
    with pytest.raises(DTypeError, match="real-valued"):
        xp.nanmax(xp.asarray([1j]))
    with pytest.raises(InvalidArgumentError, match="not both"):
        xp.nanstd(x, ddof=1, correction=1)
    with pytest.raises(InvalidArgumentError, match="out="):
        xp.nansum(x, out=x)
    assert float(xp.nanvar(x, correction=1)) == pytest.approx(np.nanvar([1.0, 2.0, 3.0], ddof=1))


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize(
    ("width", "kw"),
    [
        (1, {}),
        ((1, 2), {"constant_values": 7.5}),
        (((0, 1), (2, 0)), {"mode": "edge"}),
        (((1, 1), (1, 1)), {"mode": "reflect"}),
        (((2, 0), (0, 0)), {"mode": "wrap"}),
        (((1, 0), (0, 2)), {"constant_values": ((1, 2), (3, 4))}),
    ],
)
def test_pad_matches_numpy(width: Any, kw: dict[str, Any], device: str) -> None:
    a = np.arange(12.0).reshape(3, 4)
    x = xp.asarray(a, device=device, tags=TAGS)
    with xp.transfers(forbid=True):
        r = xp.pad(x, width, **kw)
    assert r.device == x.device and dict(r.tags) == TAGS
    np.testing.assert_array_equal(_host(r), np.pad(a, width, **kw))


def test_pad_checks_its_arguments() -> None:
    from hpcai.errors import DTypeError, InvalidArgumentError

    x = xp.ones((2, 2))
    with pytest.raises(InvalidArgumentError, match="mode"):
        xp.pad(x, 1, mode="bogus")
    with pytest.raises(InvalidArgumentError, match="non-negative"):
        xp.pad(x, -1)
    with pytest.raises(InvalidArgumentError, match="unexpected option"):
        xp.pad(x, 1, fill=3)
    with pytest.raises(DTypeError, match="Python scalar"):
        xp.pad(x, 1, constant_values=xp.asarray(1.0))


@pytest.mark.parametrize("device", _devices())
def test_numpy_index_arrays_index_on_the_device(device: str) -> None:
    x = xp.asarray(np.arange(10.0), device=device, tags=TAGS)
    with xp.transfers(forbid=True):
        r = x[np.asarray([3, 1, 1])]
        m = x[np.arange(10) % 3 == 0]
    assert r.device == x.device and dict(r.tags) == TAGS
    np.testing.assert_array_equal(_host(r), [3.0, 1.0, 1.0])
    np.testing.assert_array_equal(_host(m), [0.0, 3.0, 6.0, 9.0])
    with pytest.raises(xp.errors.ForeignArrayError):
        x[np.asarray([0.5])]  # a float array is not an index


@pytest.mark.parametrize("device", _devices())
def test_copy_and_deepcopy_stay_on_the_device(device: str, audit_log: Path) -> None:
    import copy

    x = xp.asarray([1.0, 2.0], device=device, tags=TAGS)
    da = _da(xp.asarray(_data(), device=device, tags=TAGS))
    with xp.transfers(forbid=True):
        copies = [copy.copy(x), copy.deepcopy(x), copy.deepcopy({"k": x})["k"]]
        d = da.copy(deep=True)
    assert _exports(audit_log) == []
    assert isinstance(d.data, xp.Array) and dict(d.data.tags) == TAGS
    for y in copies:
        assert y is not x and y.device == x.device and dict(y.tags) == TAGS
        np.testing.assert_array_equal(_host(y), [1.0, 2.0])
