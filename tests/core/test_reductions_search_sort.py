"""Statistical, searching, sorting, set and utility functions, on every device, against NumPy."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hpcai as xp
from hpcai.errors import (
    AxisError,
    DeviceMismatchError,
    DTypeError,
    ForeignArrayError,
    InvalidArgumentError,
    ScalarOverflowError,
    ShapeError,
)
from hpcai.testing import to_numpy

RNG = np.random.default_rng(1234)


def other_device(device: str) -> str:
    return "emulated:1" if device != "emulated:1" else "numpy:cpu"


def tagged(a: np.ndarray, device: str, value: str = "a") -> xp.Array:
    return xp.asarray(a, device=device, tags={"origin": value})


def assert_same(r: xp.Array, expected: Any, device: str, dtype: Any = None, **tol: Any) -> None:
    """*r* lives on *device*, has *dtype* (default: expected's) and equals *expected*."""
    assert str(r.device) == device
    assert r.dtype == (np.dtype(dtype) if dtype is not None else np.asarray(expected).dtype)
    got = to_numpy(r)
    assert got.shape == np.shape(expected)
    np.testing.assert_allclose(got, expected, **tol)


# --------------------------------------------------------------------------------------------
# sum / prod / cumulative
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dtype", "acc"),
    [
        ("int8", "int64"),
        ("int16", "int64"),
        ("int32", "int64"),
        ("int64", "int64"),
        ("uint8", "uint64"),
        ("uint32", "uint64"),
        ("uint64", "uint64"),
        ("float32", "float32"),
        ("float64", "float64"),
        ("complex64", "complex64"),
        ("bool", "int64"),
    ],
)
def test_sum_prod_accumulation_dtypes(device: str, dtype: str, acc: str) -> None:
    a = (RNG.integers(0, 4, size=(3, 4)) + (1j if dtype.startswith("complex") else 0)).astype(dtype)
    x = xp.asarray(a, device=device)
    assert_same(xp.sum(x), np.sum(a, dtype=acc), device, acc, rtol=1e-6)
    assert_same(xp.prod(x, axis=0), np.prod(a, axis=0, dtype=acc), device, acc, rtol=1e-6)
    assert_same(
        xp.sum(x, axis=1, keepdims=True),
        np.sum(a, axis=1, keepdims=True, dtype=acc),
        device,
        acc,
        rtol=1e-6,
    )
    assert_same(
        xp.cumulative_sum(x, axis=1), np.cumsum(a, axis=1, dtype=acc), device, acc, rtol=1e-6
    )
    assert_same(
        xp.cumulative_prod(x, axis=0), np.cumprod(a, axis=0, dtype=acc), device, acc, rtol=1e-6
    )


def test_sum_prod_axes_and_explicit_dtype(device: str) -> None:
    a = RNG.standard_normal((2, 3, 4))
    x = xp.asarray(a, device=device)
    assert_same(xp.sum(x, axis=(0, 2)), a.sum(axis=(0, 2)), device, rtol=1e-12)
    assert_same(
        xp.prod(x, axis=-1, keepdims=True), a.prod(axis=-1, keepdims=True), device, rtol=1e-12
    )
    i = xp.asarray(np.array([100, 100, 100], dtype=np.int8), device=device)
    assert_same(xp.sum(i, dtype=xp.int16), np.array(300, np.int16), device)
    assert_same(xp.sum(i, dtype="float32"), np.array(300.0, np.float32), device)
    f32 = xp.asarray(np.array([1.5, 2.5], np.float32), device=device)
    assert_same(xp.sum(f32, dtype=xp.float64), np.array(4.0), device)


def test_explicit_dtype_is_the_result_dtype(device: str) -> None:
    """The standard casts x to an explicit dtype first: the result has exactly that dtype."""
    u = xp.asarray(np.array([200, 100], np.uint8), device=device)
    assert xp.sum(u, dtype=xp.uint8).dtype == xp.uint8
    assert_same(xp.sum(u, dtype=xp.uint8), np.array(44, np.uint8), device)  # (200 + 100) mod 256
    assert_same(xp.prod(u, dtype=xp.uint8), np.array(32, np.uint8), device)  # 20000 mod 256
    i = xp.asarray(np.array([-1, 3], np.int8), device=device)
    assert_same(xp.sum(i, dtype=xp.uint8), np.array(2, np.uint8), device)  # 255 + 3 mod 256
    assert_same(
        xp.cumulative_sum(i, dtype=xp.uint8, include_initial=True), np.array([0, 255, 2], np.uint8), device
    )
    assert_same(xp.sum(i, dtype=xp.int8), np.array(2, np.int8), device)


def test_vecdot_keeps_narrow_integer_dtypes(device: str) -> None:
    a = np.array([[200, 3], [1, 2]], np.uint8)
    b = np.array([2, 1], np.uint8)
    x1, x2 = xp.asarray(a, device=device), xp.asarray(b, device=device)
    want = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.uint8)  # modular, like uint8 arithmetic
    assert_same(xp.vecdot(x1, x2), want, device)
    assert_same(xp.linalg.vecdot(x1, x2), want, device)


def test_sum_prod_empty_and_errors(device: str) -> None:
    e = xp.asarray(np.zeros((0, 3)), device=device)
    assert_same(xp.sum(e), np.array(0.0), device)
    assert_same(xp.prod(e, axis=0), np.ones(3), device)
    x = xp.asarray(np.array([1.5, 2.5]), device=device)
    with pytest.raises(DTypeError, match=r"xp.sum: cannot accumulate float64 values in int32"):
        xp.sum(x, dtype=xp.int32)
    with pytest.raises(DTypeError, match="xp.prod: cannot accumulate complex128"):
        xp.prod(xp.asarray(np.array([1j]), device=device), dtype=xp.float64)
    with pytest.raises(DTypeError, match="not a data type"):
        xp.sum(x, dtype="float99")
    with pytest.raises(AxisError, match="xp.sum"):
        xp.sum(x, axis=2)
    with pytest.raises(ForeignArrayError):
        xp.sum(np.ones(3))  # type: ignore[arg-type]


def test_cumulative_include_initial_and_axis_rules(device: str) -> None:
    a = RNG.integers(1, 5, size=(2, 3)).astype(np.int32)
    x = xp.asarray(a, device=device)
    s = xp.cumulative_sum(x, axis=1, include_initial=True)
    expected = np.concatenate(
        [np.zeros((2, 1), np.int64), np.cumsum(a, axis=1, dtype=np.int64)], axis=1
    )
    assert_same(s, expected, device, "int64")
    p = xp.cumulative_prod(x, axis=0, include_initial=True)
    expected = np.concatenate(
        [np.ones((1, 3), np.int64), np.cumprod(a, axis=0, dtype=np.int64)], axis=0
    )
    assert_same(p, expected, device, "int64")
    v = xp.asarray(np.array([1.0, 2.0, 3.0]), device=device)
    assert_same(xp.cumulative_sum(v), np.array([1.0, 3.0, 6.0]), device)
    assert_same(xp.cumulative_sum(v[:0], include_initial=True), np.array([0.0]), device)
    with pytest.raises(InvalidArgumentError, match="axis is required for a 2-d array"):
        xp.cumulative_sum(x)
    with pytest.raises(InvalidArgumentError, match="at least one dimension"):
        xp.cumulative_prod(xp.asarray(np.float64(2.0), device=device))
    with pytest.raises(AxisError):
        xp.cumulative_sum(v, axis=1)


# --------------------------------------------------------------------------------------------
# max / min / mean / std / var
# --------------------------------------------------------------------------------------------
def test_max_min_match_numpy_and_propagate_nan(device: str) -> None:
    a = RNG.standard_normal((3, 4)).astype(np.float32)
    x = xp.asarray(a, device=device)
    assert_same(xp.max(x), a.max(), device)
    assert_same(xp.min(x, axis=0), a.min(axis=0), device)
    assert_same(xp.max(x, axis=(0, 1), keepdims=True), a.max(axis=(0, 1), keepdims=True), device)
    i = xp.asarray(np.array([3, -7, 2], np.int16), device=device)
    assert_same(xp.min(i), np.array(-7, np.int16), device)
    n = xp.asarray(np.array([1.0, np.nan, 3.0]), device=device)
    assert math.isnan(float(xp.max(n))) and math.isnan(float(xp.min(n)))


def test_max_min_errors(device: str) -> None:
    with pytest.raises(
        DTypeError, match="xp.max: x must have a real-valued dtype, got complex128; complex"
    ):
        xp.max(xp.asarray(np.array([1j]), device=device))
    with pytest.raises(
        InvalidArgumentError, match="xp.min: cannot take the minimum over zero elements"
    ):
        xp.min(xp.asarray(np.zeros((2, 0)), device=device), axis=1)
    # Reducing along a non-empty axis of an array with an empty axis is fine.
    assert to_numpy(xp.max(xp.asarray(np.zeros((0, 2)), device=device), axis=1)).shape == (0,)


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
def test_mean_keeps_floating_dtype(device: str, dtype: str) -> None:
    a = (RNG.standard_normal((4, 5)) + (1j if dtype.startswith("complex") else 0)).astype(dtype)
    x = xp.asarray(a, device=device)
    assert_same(xp.mean(x), a.mean(), device, dtype, rtol=1e-5)
    assert_same(
        xp.mean(x, axis=1, keepdims=True), a.mean(axis=1, keepdims=True), device, dtype, rtol=1e-5
    )


def test_mean_of_integers_and_empty(device: str) -> None:
    x = xp.asarray(np.array([1, 2, 4], np.int32), device=device)
    assert_same(xp.mean(x), np.array(7 / 3), device, "float64")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = xp.mean(xp.asarray(np.zeros((0,)), device=device))
    assert math.isnan(float(r))


@pytest.mark.parametrize("correction", [0, 1, 1.5])
def test_std_var_match_numpy(device: str, correction: float) -> None:
    a = RNG.standard_normal((4, 6))
    x = xp.asarray(a, device=device)
    assert_same(xp.var(x, correction=correction), a.var(ddof=correction), device, rtol=1e-12)
    assert_same(
        xp.std(x, axis=0, correction=correction), a.std(axis=0, ddof=correction), device, rtol=1e-12
    )
    assert_same(
        xp.var(x, axis=(0, 1), correction=correction, keepdims=True),
        a.var(axis=(0, 1), ddof=correction, keepdims=True),
        device,
        rtol=1e-12,
    )
    f = xp.asarray(a.astype(np.float32), device=device)
    assert xp.std(f).dtype == xp.float32


def test_std_var_special_cases_and_errors(device: str) -> None:
    x = xp.asarray(np.array([[1.0, 5.0], [2.0, 9.0]]), device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = xp.var(x, axis=0, correction=2)  # N - correction == 0 -> NaN (NumPy gives inf here)
        s = xp.std(x, correction=7)
    assert np.isnan(to_numpy(r)).all() and r.shape == (2,)
    assert math.isnan(float(s))
    assert_same(
        xp.var(xp.asarray(np.array([1, 3]), device=device)), np.array(1.0), device, "float64"
    )
    with pytest.raises(DTypeError, match="xp.std: x must have a real-valued dtype, got complex128"):
        xp.std(xp.asarray(np.array([1j]), device=device))
    with pytest.raises(InvalidArgumentError, match="correction must be an int or float"):
        xp.var(x, correction="1")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# searching
# --------------------------------------------------------------------------------------------
def test_argmax_argmin(device: str) -> None:
    a = np.array([[3, 9, 9, 1], [7, 7, 0, 0]], np.int16)
    x = xp.asarray(a, device=device)
    assert_same(xp.argmax(x), np.array(np.argmax(a)), device, "int64")
    assert_same(xp.argmin(x, axis=1), np.argmin(a, axis=1), device, "int64")
    assert_same(
        xp.argmax(x, axis=0, keepdims=True), np.argmax(a, axis=0, keepdims=True), device, "int64"
    )
    assert (
        int(xp.argmax(xp.asarray(np.array([1.0, 5.0, 5.0]), device=device))) == 1
    )  # first occurrence
    with pytest.raises(DTypeError, match="xp.argmin"):
        xp.argmin(xp.asarray(np.array([1j]), device=device))
    with pytest.raises(InvalidArgumentError, match="xp.argmax: x is empty"):
        xp.argmax(xp.asarray(np.zeros(0), device=device))
    with pytest.raises(InvalidArgumentError, match="axis must be an int or None"):
        xp.argmax(x, axis=(0, 1))  # type: ignore[arg-type]


def test_count_nonzero_and_nonzero(device: str) -> None:
    a = np.array([[0, 1, 2], [3, 0, 0]])
    x = xp.asarray(a, device=device)
    assert_same(xp.count_nonzero(x), np.array(3), device, "int64")
    assert_same(xp.count_nonzero(x, axis=0), np.count_nonzero(a, axis=0), device, "int64")
    assert_same(
        xp.count_nonzero(x, axis=(0, 1), keepdims=True),
        np.count_nonzero(a, axis=(0, 1), keepdims=True),
        device,
        "int64",
    )
    c = xp.asarray(np.array([0j, 1j, 0j]), device=device)
    assert int(xp.count_nonzero(c)) == 1
    rows, cols = xp.nonzero(x)
    er, ec = np.nonzero(a)
    assert_same(rows, er, device, "int64")
    assert_same(cols, ec, device, "int64")
    (only,) = xp.nonzero(c)
    assert to_numpy(only).tolist() == [1]
    with pytest.raises(ShapeError, match="xp.nonzero: x is 0-d"):
        xp.nonzero(xp.asarray(np.float64(1.0), device=device))


@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_matches_numpy(device: str, side: Any) -> None:
    a = np.array([1.0, 2.0, 2.0, 3.0, 5.0])
    v = np.array([[0.0, 2.0], [2.5, 9.0]])
    x1 = xp.asarray(a, device=device)
    r = xp.searchsorted(x1, xp.asarray(v, device=device), side=side)
    assert_same(r, np.searchsorted(a, v, side=side), device, "int64")
    perm = RNG.permutation(a.size)
    unsorted = a[perm]
    sorter = np.argsort(unsorted)
    r = xp.searchsorted(
        xp.asarray(unsorted, device=device),
        xp.asarray(v, device=device),
        side=side,
        sorter=xp.asarray(sorter, device=device),
    )
    assert_same(r, np.searchsorted(unsorted, v, side=side, sorter=sorter), device, "int64")
    assert int(xp.searchsorted(x1, 2.0, side=side)) == int(np.searchsorted(a, 2.0, side=side))


def test_searchsorted_errors(device: str) -> None:
    x1 = xp.asarray(np.array([1.0, 2.0]), device=device)
    with pytest.raises(ShapeError, match="x1 must be 1-d"):
        xp.searchsorted(xp.asarray(np.ones((2, 2)), device=device), x1)
    with pytest.raises(InvalidArgumentError, match="side must be 'left' or 'right'"):
        xp.searchsorted(x1, x1, side="middle")  # type: ignore[arg-type]
    with pytest.raises(DeviceMismatchError, match=device):
        xp.searchsorted(x1, xp.asarray(np.array([1.0]), device=other_device(device)))
    with pytest.raises(DTypeError, match="sorter must have an integer dtype"):
        xp.searchsorted(x1, x1, sorter=x1)
    with pytest.raises(ShapeError, match="sorter must have x1's shape"):
        xp.searchsorted(x1, x1, sorter=xp.asarray(np.array([0]), device=device))
    with pytest.raises(DTypeError, match="x2 must have a real-valued dtype"):
        xp.searchsorted(x1, xp.asarray(np.array([1j]), device=device))


def test_where_arrays_and_scalars(device: str) -> None:
    a = np.array([-1.5, 2.0, -3.0], np.float32)
    b = np.array([10.0, 20.0, 30.0], np.float32)
    x = xp.asarray(a, device=device)
    y = xp.asarray(b, device=device)
    cond = x > 0
    assert_same(xp.where(cond, x, y), np.where(a > 0, a, b), device, "float32")
    assert_same(xp.where(cond, x, 0.5), np.where(a > 0, a, np.float32(0.5)), device, "float32")
    assert_same(xp.where(cond, 7, y), np.where(a > 0, np.float32(7), b), device, "float32")
    i = xp.asarray(np.array([1, 2, 3], np.int8), device=device)
    assert_same(xp.where(cond, i, -4), np.array([-4, 2, -4], np.int8), device, "int8")
    # broadcasting condition against a row
    m = xp.asarray(np.array([[True], [False]]), device=device)
    assert_same(xp.where(m, y, x), np.where(np.array([[True], [False]]), b, a), device, "float32")


def test_where_errors(device: str) -> None:
    x = xp.asarray(np.array([1, 2, 3], np.int8), device=device)
    cond = x > 1
    with pytest.raises(DTypeError, match="condition must have a boolean dtype, got int8"):
        xp.where(x, x, x)
    with pytest.raises(DTypeError, match="both Python scalars"):
        xp.where(cond, 1, 2)
    with pytest.raises(ScalarOverflowError, match="1000 does not fit"):
        xp.where(cond, x, 1000)
    with pytest.raises(DeviceMismatchError, match=other_device(device)):
        xp.where(cond, x, xp.asarray(np.array([1, 2, 3], np.int8), device=other_device(device)))
    with pytest.raises(ForeignArrayError):
        xp.where(cond, x, np.ones(3))  # type: ignore[arg-type]
    with pytest.raises(DTypeError, match="expected an hpcai Array, got str"):
        xp.where(cond, x, "a")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# sorting
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("descending", [False, True])
def test_sort_argsort_match_numpy(device: str, descending: bool) -> None:
    a = RNG.integers(0, 5, size=(4, 7)).astype(np.float32)
    x = xp.asarray(a, device=device)
    expected = np.sort(a, axis=-1)
    if descending:
        expected = expected[..., ::-1]
    assert_same(xp.sort(x, descending=descending), expected, device)
    e0 = np.sort(a, axis=0)[::-1] if descending else np.sort(a, axis=0)
    assert_same(xp.sort(x, axis=0, descending=descending), e0, device)
    idx = xp.argsort(x, axis=1, descending=descending)
    assert idx.dtype == xp.int64 and str(idx.device) == device
    np.testing.assert_array_equal(np.take_along_axis(a, to_numpy(idx), axis=1), expected)


def test_stable_sort_keeps_order_of_equal_keys(device: str) -> None:
    keys = np.array([2, 1, 2, 1, 3, 2])
    x = xp.asarray(keys, device=device)
    assert to_numpy(xp.argsort(x)).tolist() == [1, 3, 0, 2, 5, 4]
    # Stable descending keeps equal keys in input order too (not reversed).
    assert to_numpy(xp.argsort(x, descending=True)).tolist() == [4, 0, 2, 5, 1, 3]
    b = xp.asarray(np.array([True, False, True]), device=device)
    assert to_numpy(xp.sort(b)).tolist() == [False, True, True]


def test_sort_errors(device: str) -> None:
    with pytest.raises(DTypeError, match="xp.sort: x must have a real-valued dtype, got complex64"):
        xp.sort(xp.asarray(np.array([1j], np.complex64), device=device))
    with pytest.raises(InvalidArgumentError, match="0-d"):
        xp.argsort(xp.asarray(np.float64(1.0), device=device))
    with pytest.raises(AxisError):
        xp.sort(xp.asarray(np.ones(3), device=device), axis=1)
    with pytest.raises(InvalidArgumentError, match="descending must be True or False"):
        xp.sort(xp.asarray(np.ones(3), device=device), descending="yes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# set functions
# --------------------------------------------------------------------------------------------
def test_unique_all_matches_numpy(device: str) -> None:
    a = np.array([[3, 1, 3], [2, 1, 3]], np.int16)
    x = xp.asarray(a, device=device)
    r = xp.unique_all(x)
    assert type(r).__name__ == "UniqueAllResult"
    assert r._fields == ("values", "indices", "inverse_indices", "counts")
    vals, idx, inv, cnt = np.unique(a, return_index=True, return_inverse=True, return_counts=True)
    assert_same(r.values, vals, device, "int16")
    assert_same(r.indices, idx, device, "int64")
    assert_same(r.inverse_indices, inv.reshape(a.shape), device, "int64")
    assert_same(r.counts, cnt, device, "int64")
    rebuilt = to_numpy(r.values)[to_numpy(r.inverse_indices)]
    np.testing.assert_array_equal(rebuilt, a)
    np.testing.assert_array_equal(a.ravel()[to_numpy(r.indices)], to_numpy(r.values))


def test_unique_nan_and_signed_zero_semantics(device: str) -> None:
    a = np.array([np.nan, 0.0, -0.0, np.nan, 1.0, 1.0])
    x = xp.asarray(a, device=device)
    vals, counts = xp.unique_counts(x)
    v = to_numpy(vals)
    c = to_numpy(counts)
    assert np.isnan(v).sum() == 2  # every NaN is distinct ...
    assert c[np.isnan(v)].tolist() == [1, 1]  # ... with a count of one
    assert c[v == 0].tolist() == [2]  # signed zeros are one value
    assert c[v == 1].tolist() == [2]
    assert to_numpy(xp.unique_values(x)).size == 4
    z = np.array([complex(np.nan, 1), complex(np.nan, 1), 1 + 0j])
    assert to_numpy(xp.unique_values(xp.asarray(z, device=device))).size == 3
    inv = xp.unique_inverse(x)
    assert inv.inverse_indices.shape == a.shape
    rebuilt = to_numpy(inv.values)[to_numpy(inv.inverse_indices)]
    np.testing.assert_array_equal(np.isnan(rebuilt), np.isnan(a))
    np.testing.assert_array_equal(rebuilt[~np.isnan(a)], a[~np.isnan(a)])


def test_unique_results_are_hpcai_arrays_with_tags(device: str) -> None:
    x = tagged(np.array([2.0, 2.0, 5.0]), device)
    for part in (
        *xp.unique_all(x),
        *xp.unique_counts(x),
        *xp.unique_inverse(x),
        xp.unique_values(x),
    ):
        assert isinstance(part, xp.Array)
        assert str(part.device) == device
        assert dict(part.tags) == {"origin": frozenset({"a"})}
    with pytest.raises(ForeignArrayError):
        xp.unique_values(np.ones(3))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# utility functions
# --------------------------------------------------------------------------------------------
def test_all_any(device: str) -> None:
    a = np.array([[1.0, np.nan, -np.inf], [0.0, 2.0, 3.0]])
    x = xp.asarray(a, device=device)
    assert_same(xp.all(x, axis=1), np.all(a, axis=1), device, "bool")
    assert_same(
        xp.any(x == 0, axis=0, keepdims=True), np.any(a == 0, axis=0, keepdims=True), device, "bool"
    )
    assert bool(xp.all(x[0])) is True  # NaN and infinities are truthy
    e = xp.asarray(np.zeros((0,)), device=device)
    assert bool(xp.all(e)) is True and bool(xp.any(e)) is False
    c = xp.asarray(np.array([0j, 1j]), device=device)
    assert bool(xp.any(c)) is True and bool(xp.all(c)) is False
    with pytest.raises(AxisError):
        xp.any(x, axis=5)


def test_diff_matches_numpy(device: str) -> None:
    a = RNG.integers(-5, 5, size=(3, 6)).astype(np.int32)
    x = xp.asarray(a, device=device)
    assert_same(xp.diff(x), np.diff(a), device, "int32")
    assert_same(xp.diff(x, axis=0, n=2), np.diff(a, axis=0, n=2), device, "int32")
    assert_same(xp.diff(x, n=0), a, device, "int32")
    pre = np.zeros((3, 1), np.int32)
    app = np.ones((3, 2), np.int32)
    r = xp.diff(x, prepend=xp.asarray(pre, device=device), append=xp.asarray(app, device=device))
    assert_same(r, np.diff(a, prepend=pre, append=app), device, "int32")
    assert_same(xp.diff(x, axis=1, prepend=0), np.diff(a, axis=1, prepend=0), device, "int32")  # type: ignore[arg-type]


def test_diff_errors(device: str) -> None:
    x = xp.asarray(np.array([1.0, 2.0]), device=device)
    with pytest.raises(DTypeError, match="xp.diff: x must have a numeric dtype, got bool"):
        xp.diff(xp.asarray(np.array([True, False]), device=device))
    with pytest.raises(InvalidArgumentError, match="n must be a non-negative int"):
        xp.diff(x, n=-1)
    with pytest.raises(DeviceMismatchError):
        xp.diff(x, append=xp.asarray(np.array([1.0]), device=other_device(device)))
    with pytest.raises(AxisError):
        xp.diff(x, axis=3)


# --------------------------------------------------------------------------------------------
# tags and devices
# --------------------------------------------------------------------------------------------
def test_results_carry_union_of_input_tags(device: str) -> None:
    x = tagged(np.array([3.0, 1.0, 2.0]), device, "a")
    y = tagged(np.array([0.0, 5.0, 1.0]), device, "b")
    both = {"origin": frozenset({"a", "b"})}
    only_a = {"origin": frozenset({"a"})}
    for r in (
        xp.sum(x),
        xp.mean(x),
        xp.max(x),
        xp.argmax(x),
        xp.sort(x),
        xp.argsort(x),
        xp.cumulative_sum(x),
        xp.diff(x),
        xp.count_nonzero(x),
        xp.all(x),
        *xp.nonzero(x),
    ):
        assert dict(r.tags) == only_a
    assert dict(xp.where(y > 0, x, 0.0).tags) == both
    assert (
        dict(xp.where(xp.asarray(np.array([True, False, True]), device=device), x, y).tags) == both
    )
    assert dict(xp.searchsorted(xp.sort(x), y).tags) == both
    assert dict(xp.diff(x, append=y).tags) == both
    assert dict(xp.sum(xp.asarray(np.ones(2), device=device)).tags) == {}


def test_reductions_stay_on_device_and_refuse_foreign_devices(device: str) -> None:
    x = xp.asarray(np.arange(6.0).reshape(2, 3), device=device)
    with xp.transfers(forbid=True):
        for r in (xp.sum(x), xp.std(x), xp.var(x, axis=0), xp.unique_values(x), xp.sort(x)):
            assert str(r.device) == device


# --------------------------------------------------------------------------------------------
# a device without FP64
# --------------------------------------------------------------------------------------------
def test_default_float_on_device_without_fp64(config) -> None:
    config('[devices."emulated:2"]\npreset = "gaudi3"\n')
    x = xp.asarray(np.array([1, 2, 4], np.int32), device="emulated:2")
    m = xp.mean(x)
    assert m.dtype == xp.float32 and str(m.device) == "emulated:2"
    np.testing.assert_allclose(to_numpy(m), 7 / 3, rtol=1e-6)
    assert xp.var(x).dtype == xp.float32
    assert xp.sum(x).dtype == xp.int64


# --------------------------------------------------------------------------------------------
# properties against NumPy
# --------------------------------------------------------------------------------------------
_float_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64]),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5),
    elements={"allow_nan": False, "allow_infinity": False, "min_value": -1e3, "max_value": 1e3},
)


@settings(max_examples=40, deadline=None)
@given(a=_float_arrays, data=st.data())
def test_property_reductions_match_numpy(a: np.ndarray, data: st.DataObject) -> None:
    axis = data.draw(st.none() | st.integers(-a.ndim, a.ndim - 1), label="axis")
    keepdims = data.draw(st.booleans(), label="keepdims")
    x = xp.asarray(a, device="emulated:0")
    tol: dict[str, Any] = (
        {"rtol": 1e-4, "atol": 1e-3} if a.dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-9}
    )
    for fn, ref in (
        (xp.sum, np.sum),
        (xp.mean, np.mean),
        (xp.max, np.max),
        (xp.min, np.min),
        (xp.var, np.var),
    ):
        r = fn(x, axis=axis, keepdims=keepdims)
        assert r.dtype == a.dtype
        np.testing.assert_allclose(to_numpy(r), ref(a, axis=axis, keepdims=keepdims), **tol)


@settings(max_examples=40, deadline=None)
@given(
    a=hnp.arrays(
        np.int16, hnp.array_shapes(min_dims=1, max_dims=2, max_side=8), elements=st.integers(-4, 4)
    )
)
def test_property_sort_unique_search_match_numpy(a: np.ndarray) -> None:
    x = xp.asarray(a, device="emulated:1")
    np.testing.assert_array_equal(to_numpy(xp.sort(x)), np.sort(a))
    np.testing.assert_array_equal(to_numpy(xp.argsort(x)), np.argsort(a, kind="stable"))
    np.testing.assert_array_equal(to_numpy(xp.unique_values(x)), np.unique(a))
    flat = np.sort(a.ravel())
    np.testing.assert_array_equal(
        to_numpy(xp.searchsorted(xp.asarray(flat, device="emulated:1"), x, side="right")),
        np.searchsorted(flat, a, side="right"),
    )
