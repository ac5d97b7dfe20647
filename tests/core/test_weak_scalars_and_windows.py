"""Weak scalars (``xp.asarray(2.0)`` joins any device like ``2.0``) and ``sliding_window_view``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hpcai as xp
from hpcai.errors import DeviceMismatchError, InvalidArgumentError

TAGS = {"handling": frozenset({"internal"})}


def _devices() -> list[Any]:
    out: list[Any] = ["emulated:0"]
    jax_ok = any(str(d) == "jax:cpu:1" for d in xp.all_devices())
    out.append(pytest.param("jax:cpu:1", marks=pytest.mark.skipif(not jax_ok, reason="JAX is not installed")))
    return out


def _host(a: xp.Array) -> np.ndarray:
    return np.asarray(a.to_device("numpy:cpu"))


# --------------------------------------------------------------------------------------------
# weak scalars
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", _devices())
def test_a_scalar_made_without_a_device_joins_any_device(device: str) -> None:
    x = xp.asarray([1.0, 5.0, 3.0], device=device, tags=TAGS)
    s = xp.asarray(2.0)  # what xarray does with a fill value
    f = xp.asarray(np.float32(4.0))
    with xp.transfers(forbid=True) as log:
        results = {
            "add": x + s,
            "radd": s + x,
            "sub_fn": xp.subtract(s, x),
            "cmp": x > s,
            "where_x2": xp.where(x > 2.0, x, s),
            "where_x1": xp.where(x > 2.0, s, x),
            "clip": xp.clip(x, s, f),
            "maximum": xp.maximum(x, s),
            "cast_then_where": xp.where(x > 2.0, x, xp.astype(f, xp.float64)),
        }
        y = xp.asarray([1.0, 5.0, 3.0], device=device)
        y += s
    assert len(log) == 0, "a weak scalar is not a transfer"
    for name, r in results.items():
        assert r.device == xp.resolve_device(device), name
        assert dict(r.tags) == TAGS, name
    np.testing.assert_array_equal(_host(results["add"]), [3.0, 7.0, 5.0])
    np.testing.assert_array_equal(_host(results["sub_fn"]), [1.0, -3.0, -1.0])
    np.testing.assert_array_equal(_host(results["where_x2"]), [2.0, 5.0, 3.0])
    np.testing.assert_array_equal(_host(results["clip"]), [2.0, 4.0, 3.0])
    np.testing.assert_array_equal(_host(y), [3.0, 7.0, 5.0])
    assert results["cmp"].dtype == xp.bool and results["add"].dtype == xp.float64


@pytest.mark.parametrize("device", _devices())
def test_only_weak_scalars_cross_devices(device: str) -> None:
    x = xp.asarray([1.0, 2.0], device=device)
    not_weak = {
        "explicit device": xp.asarray(2.0, device="numpy:cpu"),
        "tagged": xp.asarray(2.0, tags=TAGS),
        "from data": xp.asarray(np.asarray(2.0)),
        "one element": xp.asarray([2.0]),
        "computed": xp.asarray(2.0) * 1,
        "reduced": xp.sum(xp.asarray([2.0])),
    }
    for name, v in not_weak.items():
        with pytest.raises(DeviceMismatchError, match="different devices"):
            x + v
        with pytest.raises(DeviceMismatchError, match="different devices"):
            xp.where(x > 1.0, x, v)
        assert name


def test_weak_scalars_need_a_host_default_device(tmp_path: Path) -> None:
    xp.configure(data={"default_device": "emulated:1"})
    try:
        s = xp.asarray(2.0)
        assert s.device == xp.resolve_device("emulated:1")
        with pytest.raises(DeviceMismatchError):
            xp.asarray([1.0], device="emulated:0") + s
    finally:
        xp.configure(data={})


def test_tagged_data_never_becomes_weak_through_a_scalar_export() -> None:
    # float() of covered data is an export (decided, audited); making a scalar of the result
    # again is the program's constant: it carries no tags, as the exported value did not
    x = xp.asarray([3.0], tags=TAGS)
    s = xp.asarray(float(x[0]))
    assert s.tags == {} and (xp.asarray([1.0], device="emulated:0") + s).tags == {}


# --------------------------------------------------------------------------------------------
# sliding_window_view
# --------------------------------------------------------------------------------------------
CASES = [
    (3, None),
    ((2,), (1,)),
    ((2, 3), (2, 0)),
    ((2, 2), (1, 1)),
    ((3, 4, 5), None),
    (0, 1),
    ((1,), -1),
]


@pytest.mark.parametrize("device", ["numpy:cpu", *_devices()])
@pytest.mark.parametrize("window,axis", CASES)
def test_sliding_window_view_matches_numpy(device: str, window: Any, axis: Any) -> None:
    a = np.arange(60.0).reshape(3, 4, 5)
    if axis is None and isinstance(window, int):
        a = a[0, 0]
    x = xp.asarray(a, device=device, tags=TAGS)
    with xp.transfers(forbid=True) as log:
        r = xp.lib.stride_tricks.sliding_window_view(x, window, axis=axis)
    assert len(log) == 0
    e = np.lib.stride_tricks.sliding_window_view(a, window, axis=axis)
    assert r.shape == e.shape and r.device == x.device and dict(r.tags) == TAGS
    np.testing.assert_array_equal(_host(r), e)


def test_sliding_window_view_on_the_host_is_a_read_only_view() -> None:
    x = xp.asarray(np.arange(6.0))
    r = xp.sliding_window_view(x, 2)
    with pytest.raises(Exception, match="read-only|writeable|readonly"):
        r[0, 0] = 9.0
    assert float(x[0]) == 0.0


@pytest.mark.parametrize(
    "window,axis,match",
    [
        (7, 0, "does not fit"),
        ((-1,), 0, "negative"),
        ((2, 2), None, "one entry per axis"),
        ((2, 2), (0,), "same length"),
        (2, 3, "out of range"),
        (2.5, 0, "must be an int"),
    ],
)
def test_sliding_window_view_bad_arguments(window: Any, axis: Any, match: str) -> None:
    x = xp.asarray(np.arange(6.0))
    with pytest.raises((InvalidArgumentError, xp.errors.AxisError, xp.errors.DTypeError), match=match):
        xp.sliding_window_view(x, window, axis=axis)
