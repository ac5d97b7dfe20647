"""Searching functions of the Array API standard (chapter "Searching Functions")."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from . import _tags
from ._array import Array, _mismatch, _translate, _weak_on, _wrap
from ._device import Device
from ._dtypes import _boolean_dtypes, _integer_dtypes, _real_numeric_dtypes
from ._helpers import as_array, device_default_dtype
from ._statistical_functions import _require, fail
from ._tags import TagSet
from .errors import DTypeError, InvalidArgumentError, ScalarOverflowError, ShapeError

__all__ = ["argmax", "argmin", "count_nonzero", "nonzero", "searchsorted", "where"]

_SCALARS = (bool, int, float, complex)
_ORDERABLE = _real_numeric_dtypes | _boolean_dtypes
_NO_ORDER = "complex numbers have no order; search xp.abs(x) or xp.real(x) instead"


def _index_result(r: Any, device: Device, tags: TagSet | None) -> Array:
    """Wrap an index result, making sure it has the default index dtype."""
    idx = device_default_dtype(device, "indexing")
    if getattr(r, "dtype", idx) != idx:
        r = device._ns.astype(device._ns.asarray(r), idx)
    return _wrap(r, device, tags)


def _arg_extremum(fname: str, x: Any, axis: int | None, keepdims: bool) -> Array:
    x = _require(fname, x, _ORDERABLE, "a real-valued", _NO_ORDER)
    a = x._data
    if a.size == 0:
        raise InvalidArgumentError(
            f"xp.{fname}: x is empty (shape {tuple(a.shape)}), so there is no extremum to locate; "
            "check the array is non-empty first"
        )
    if axis is not None and not isinstance(axis, int):
        raise InvalidArgumentError(f"xp.{fname}: axis must be an int or None, got {axis!r}")
    try:
        r = getattr(x._device._ns, fname)(a, axis=axis, keepdims=keepdims)
    except Exception as exc:
        raise fail(fname, exc, a.ndim, axis) from None
    return _index_result(r, x._device, x._tags)


def argmax(x: Array, /, *, axis: int | None = None, keepdims: bool = False) -> Array:
    """Index of the first maximum (over the flattened array when *axis* is None).

    >>> import hpcai as xp
    >>> int(xp.argmax(xp.asarray([3, 9, 9, 1])))
    1
    """
    return _arg_extremum("argmax", x, axis, keepdims)


def argmin(x: Array, /, *, axis: int | None = None, keepdims: bool = False) -> Array:
    """Index of the first minimum (over the flattened array when *axis* is None).

    >>> import hpcai as xp
    >>> xp.argmin(xp.asarray([[3, 1], [0, 4]]), axis=1)
    Array([1, 0], dtype=int64, device='numpy:cpu')
    """
    return _arg_extremum("argmin", x, axis, keepdims)


def count_nonzero(
    x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
) -> Array:
    """Number of non-zero elements over *axis* (complex: either component non-zero).

    >>> import hpcai as xp
    >>> int(xp.count_nonzero(xp.asarray([0, 1, 0, 5])))
    2
    """
    if x.__class__ is not Array:
        x = as_array("count_nonzero", x)
    try:
        r = x._device._ns.count_nonzero(x._data, axis=axis, keepdims=keepdims)
    except Exception as exc:
        raise fail("count_nonzero", exc, x._data.ndim, axis) from None
    return _index_result(r, x._device, x._tags)


def nonzero(x: Array, /) -> tuple[Array, ...]:
    """Indices of the non-zero elements, one index array per dimension, in row-major order.

    >>> import hpcai as xp
    >>> rows, cols = xp.nonzero(xp.asarray([[0, 2], [3, 0]]))
    >>> rows
    Array([0, 1], dtype=int64, device='numpy:cpu')
    """
    if x.__class__ is not Array:
        x = as_array("nonzero", x)
    if x._data.ndim == 0:
        raise ShapeError(
            "xp.nonzero: x is 0-d; nonzero needs at least one dimension. Use bool(x) for a 0-d test "
            "or xp.reshape(x, (1,)) first"
        )
    dev = x._device
    try:
        parts = dev._ns.nonzero(x._data)
    except Exception as exc:
        raise _translate("xp.nonzero", exc) from None
    return tuple(_index_result(p, dev, x._tags) for p in parts)


def searchsorted(
    x1: Array,
    x2: Array | int | float,
    /,
    *,
    side: Literal["left", "right"] = "left",
    sorter: Array | None = None,
) -> Array:
    """Indices at which the values *x2* would be inserted into the sorted 1-d *x1*.

    ``side="left"`` gives ``x1[i-1] < v <= x1[i]``, ``side="right"`` gives
    ``x1[i-1] <= v < x1[i]``. *sorter* holds indices that sort an unsorted *x1*. A Python
    scalar *x2* is accepted too (an extension; the result is then 0-d).

    >>> import hpcai as xp
    >>> xp.searchsorted(xp.asarray([1.0, 2.0, 3.0]), xp.asarray([2.0, 2.5]))
    Array([1, 2], dtype=int64, device='numpy:cpu')
    """
    x1 = _require("searchsorted", x1, _ORDERABLE, "a real-valued", _NO_ORDER)
    dev = x1._device
    if x1._data.ndim != 1:
        raise ShapeError(
            f"xp.searchsorted: x1 must be 1-d, got shape {x1.shape}; flatten it with xp.reshape(x1, (-1,)) and sort it"
        )
    if side not in ("left", "right"):
        raise InvalidArgumentError(f"xp.searchsorted: side must be 'left' or 'right', got {side!r}")
    tags = x1._tags
    if isinstance(x2, _SCALARS) and not isinstance(x2, complex):
        v: Any = x2
    else:
        x2 = as_array("searchsorted", x2)
        if x2._device is not dev:
            raise _mismatch("xp.searchsorted", dev, x2._device)
        if x2._data.dtype not in _ORDERABLE:
            raise DTypeError(
                f"xp.searchsorted: x2 must have a real-valued dtype, got {x2._data.dtype}; {_NO_ORDER}"
            )
        v = x2._data
        tags = _tags.union(tags, x2._tags)
    s = None
    if sorter is not None:
        sorter = as_array("searchsorted", sorter)
        if sorter._device is not dev:
            raise _mismatch("xp.searchsorted", dev, sorter._device)
        if sorter._data.dtype not in _integer_dtypes:
            raise DTypeError(
                f"xp.searchsorted: sorter must have an integer dtype, got {sorter._data.dtype}; pass xp.argsort(x1)"
            )
        if tuple(sorter._data.shape) != tuple(x1._data.shape):
            raise ShapeError(
                f"xp.searchsorted: sorter must have x1's shape {x1.shape}, got {sorter.shape}; pass xp.argsort(x1)"
            )
        s = sorter._data
        tags = _tags.union(tags, sorter._tags)
    try:
        r = dev._ns.searchsorted(x1._data, v, side=side, sorter=s)
    except Exception as exc:
        raise _translate("xp.searchsorted", exc) from None
    return _index_result(r, dev, tags)


def _check_scalar_range(v1: Any, v2: Any) -> None:
    """A Python int mixed with an integer array must fit the array's dtype (else it would wrap)."""
    arr, scalar = (v1, v2) if hasattr(v1, "dtype") else (v2, v1)
    if isinstance(scalar, int) and not isinstance(scalar, bool) and arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        if not info.min <= scalar <= info.max:
            raise ScalarOverflowError(
                f"xp.where: the Python int {scalar} does not fit the other operand's dtype {arr.dtype} "
                f"(range {info.min}..{info.max}); convert the array first, e.g. xp.astype(x, xp.int64)"
            )


def where(
    condition: Array,
    x1: Array | bool | int | float | complex,
    x2: Array | bool | int | float | complex,
    /,
) -> Array:
    """Elements of *x1* where *condition* is True, else of *x2* (broadcast together).

    Either of *x1*, *x2* (not both) may be a Python scalar; it then takes the other
    operand's dtype where the kinds are compatible, as the standard specifies.

    >>> import hpcai as xp
    >>> x = xp.asarray([-1.0, 2.0, -3.0])
    >>> xp.where(x > 0, x, 0.0)
    Array([0., 2., 0.], dtype=float64, device='numpy:cpu')
    """
    if condition.__class__ is not Array:
        condition = as_array("where", condition)
    dev = condition._device
    if condition._data.dtype not in _boolean_dtypes:
        raise DTypeError(
            f"xp.where: condition must have a boolean dtype, got {condition._data.dtype}; "
            "build it with a comparison such as `x != 0`"
        )
    tags = condition._tags
    natives = []
    arrays = 0
    for name, v in (("x1", x1), ("x2", x2)):
        if v.__class__ is Array:
            if v._device is not dev:
                v = _weak_on("xp.where", v, dev)
            natives.append(v._data)
            tags = _tags.union(tags, v._tags)
            arrays += 1
        elif isinstance(v, _SCALARS):
            natives.append(v)
        elif isinstance(v, np.generic):
            natives.append(v.item())
        else:
            as_array("where", v)
            raise DTypeError(
                f"xp.where: {name} must be an hpcai Array or a Python scalar, got {type(v).__name__}"
            )
    if arrays == 0:
        raise DTypeError(
            "xp.where: x1 and x2 are both Python scalars; at least one must be an hpcai Array, "
            "e.g. xp.where(c, xp.asarray(x1, device=c.device), x2)"
        )
    if arrays == 1:
        _check_scalar_range(natives[0], natives[1])
    try:
        r = dev._ns.where(condition._data, natives[0], natives[1])
    except Exception as exc:
        raise _translate("xp.where", exc) from None
    return _wrap(r, dev, tags)
