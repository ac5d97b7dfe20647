"""Utility functions of the Array API standard (chapter "Utility Functions")."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _tags
from ._array import Array, _mismatch, _translate, _wrap
from ._dtypes import _complex_floating_dtypes, _numeric_dtypes
from ._helpers import as_array
from ._statistical_functions import _require, fail
from .errors import InvalidArgumentError

__all__ = ["all", "any", "diff"]

_SCALARS = (bool, int, float, complex)
Axis = int | tuple[int, ...] | None


def _logical(fname: str, x: Any, axis: Axis, keepdims: bool) -> Array:
    if x.__class__ is not Array:
        x = as_array(fname, x)
    a = x._data
    ns = x._device._ns
    try:
        if a.dtype in _complex_floating_dtypes:
            # A complex element is truthy when either component is non-zero (some backends
            # look at the real part only).
            a = ns.not_equal(a, 0)
        r = getattr(ns, fname)(a, axis=axis, keepdims=keepdims)
    except Exception as exc:
        raise fail(fname, exc, a.ndim, axis) from None
    return _wrap(r, x._device, x._tags)


def all(x: Array, /, *, axis: Axis = None, keepdims: bool = False) -> Array:
    """Whether every element is truthy along *axis* (True for empty input); a bool array.

    >>> import hpcai as xp
    >>> bool(xp.all(xp.asarray([1.0, float("nan"), -2.0])))
    True
    """
    return _logical("all", x, axis, keepdims)


def any(x: Array, /, *, axis: Axis = None, keepdims: bool = False) -> Array:
    """Whether some element is truthy along *axis* (False for empty input); a bool array.

    >>> import hpcai as xp
    >>> xp.any(xp.asarray([[0, 0], [0, 3]]), axis=1)
    Array([False,  True], dtype=bool, device='numpy:cpu')
    """
    return _logical("any", x, axis, keepdims)


def diff(
    x: Array,
    /,
    *,
    axis: int = -1,
    n: int = 1,
    prepend: Array | None = None,
    append: Array | None = None,
) -> Array:
    """The *n*-th forward difference ``out[i] = x[i+1] - x[i]`` along *axis*.

    *prepend*/*append* are joined to *x* along *axis* first (they may also be Python
    scalars, an extension; arrays of another dtype are promoted).

    >>> import hpcai as xp
    >>> xp.diff(xp.asarray([1, 4, 9, 16]))
    Array([3, 5, 7], dtype=int64, device='numpy:cpu')
    """
    x = _require(
        "diff",
        x,
        _numeric_dtypes,
        "a numeric",
        "for booleans use xp.not_equal(x[1:], x[:-1]) or convert with xp.astype",
    )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidArgumentError(f"xp.diff: n must be a non-negative int, got {n!r}")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise InvalidArgumentError(f"xp.diff: axis must be an int, got {axis!r}")
    if x._data.ndim == 0:
        raise InvalidArgumentError("xp.diff: x is 0-d; differences need at least one dimension")
    dev = x._device
    tags = x._tags
    kwargs: dict[str, Any] = {}
    for name, v in (("prepend", prepend), ("append", append)):
        if v is None:
            continue
        if v.__class__ is Array:
            if v._device is not dev:
                raise _mismatch("xp.diff", dev, v._device)
            kwargs[name] = v._data
            tags = _tags.union(tags, v._tags)
        elif isinstance(v, _SCALARS):
            # A Python scalar takes x's dtype (it is broadcast along the other axes).
            try:
                kwargs[name] = dev._ns.asarray(v, dtype=x._data.dtype)
            except Exception as exc:
                raise _translate("xp.diff", exc) from None
        else:
            as_array("diff", v)
    try:
        r = dev._ns.diff(x._data, axis=int(axis), n=int(n), **kwargs)
    except Exception as exc:
        raise fail("diff", exc, x._data.ndim, int(axis)) from None
    return _wrap(r, dev, tags)
