"""Sorting functions of the Array API standard (chapter "Sorting Functions")."""

from __future__ import annotations

from typing import Any

from ._array import Array, _wrap
from ._dtypes import _boolean_dtypes, _real_numeric_dtypes
from ._helpers import device_default_dtype
from ._statistical_functions import _require, fail
from .errors import InvalidArgumentError

__all__ = ["argsort", "sort"]

_ORDERABLE = _real_numeric_dtypes | _boolean_dtypes
_NO_ORDER = "complex numbers have no order; sort by xp.abs(x) or xp.real(x) instead"


def _check(fname: str, x: Any, axis: int, descending: bool, stable: bool) -> Array:
    x = _require(fname, x, _ORDERABLE, "a real-valued", _NO_ORDER)
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise InvalidArgumentError(f"xp.{fname}: axis must be an int, got {axis!r}")
    if x._data.ndim == 0:
        raise InvalidArgumentError(
            f"xp.{fname}: x is 0-d and has no axis to sort along; reshape it first, e.g. xp.reshape(x, (1,))"
        )
    for name, flag in (("descending", descending), ("stable", stable)):
        if flag is not True and flag is not False:
            raise InvalidArgumentError(f"xp.{fname}: {name} must be True or False, got {flag!r}")
    return x


def argsort(x: Array, /, *, axis: int = -1, descending: bool = False, stable: bool = True) -> Array:
    """Indices that sort *x* along *axis*; ``stable=True`` keeps equal elements in input order.

    A stable descending sort also keeps equal elements in input order (it is not the
    reversed ascending sort).

    >>> import hpcai as xp
    >>> xp.argsort(xp.asarray([3, 1, 2, 1]), descending=True)
    Array([0, 2, 1, 3], dtype=int64, device='numpy:cpu')
    """
    x = _check("argsort", x, axis, descending, stable)
    dev = x._device
    try:
        r = dev._ns.argsort(x._data, axis=axis, descending=descending, stable=stable)
    except Exception as exc:
        raise fail("argsort", exc, x._data.ndim, axis) from None
    idx = device_default_dtype(dev, "indexing")
    if r.dtype != idx:
        r = dev._ns.astype(r, idx)
    return _wrap(r, dev, x._tags)


def sort(x: Array, /, *, axis: int = -1, descending: bool = False, stable: bool = True) -> Array:
    """A sorted copy of *x* along *axis* (ascending unless ``descending=True``).

    >>> import hpcai as xp
    >>> xp.sort(xp.asarray([3.0, 1.0, 2.0]), descending=True)
    Array([3., 2., 1.], dtype=float64, device='numpy:cpu')
    """
    x = _check("sort", x, axis, descending, stable)
    try:
        r = x._device._ns.sort(x._data, axis=axis, descending=descending, stable=stable)
    except Exception as exc:
        raise fail("sort", exc, x._data.ndim, axis) from None
    return _wrap(r, x._device, x._tags)
