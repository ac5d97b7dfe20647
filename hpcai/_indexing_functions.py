"""Indexing functions of the Array API standard (chapter "Indexing Functions").

The indices are hpcai integer arrays on the same device as the data; the result carries
the residency tags of both.
"""

from __future__ import annotations

import operator
from typing import Any

from ._array import Array, _translate, _wrap
from ._dtypes import _integer_dtypes
from ._helpers import same_device
from .errors import AxisError, DTypeError, InvalidArgumentError, ShapeError

__all__ = ["take", "take_along_axis"]


def _axis(fname: str, axis: Any, ndim: int) -> int:
    if isinstance(axis, bool) or not hasattr(axis, "__index__") or axis.__class__ is Array:
        raise DTypeError(f"xp.{fname}: axis must be an int, got {type(axis).__name__} {axis!r:.60}")
    a = operator.index(axis)
    if not -ndim <= a < ndim:
        raise AxisError(f"xp.{fname}: axis {a} is out of range for an array with {ndim} dimensions")
    return a + ndim if a < 0 else a


def _operands(fname: str, x: Any, indices: Any) -> tuple[Any, Any, Any, Any]:
    if indices.__class__ is not Array and x.__class__ is Array:
        raise DTypeError(
            f"xp.{fname}: indices must be an hpcai integer array, got {type(indices).__name__}; "
            f"wrap them with xp.asarray(indices, device=\"{x.device}\")"
        )
    (data, idx), dev, tags = same_device(fname, [x, indices])
    if idx.dtype not in _integer_dtypes:
        raise DTypeError(f"xp.{fname}: indices must have an integer dtype, got {idx.dtype}")
    return data, idx, dev, tags


def take(x: Array, indices: Array, /, *, axis: int | None = None) -> Array:
    """Elements of *x* at the 1-D integer *indices* along *axis* (negative indices count from the end).

    *axis* may be omitted only for 1-D *x*.

    >>> import hpcai as xp
    >>> xp.take(xp.asarray([10, 20, 30]), xp.asarray([2, -3]))
    Array([30, 10], dtype=int64, device='numpy:cpu')
    """
    data, idx, dev, tags = _operands("take", x, indices)
    if idx.ndim != 1:
        raise ShapeError(f"xp.take: indices must be 1-D, got shape {tuple(idx.shape)}")
    if data.ndim == 0:
        raise ShapeError("xp.take: x must have at least one dimension, got a 0-d array")
    if axis is None:
        if data.ndim != 1:
            raise InvalidArgumentError(
                f"xp.take: axis is required for a {data.ndim}-D array (shape {tuple(data.shape)})"
            )
        ax = 0
    else:
        ax = _axis("take", axis, data.ndim)
    try:
        r = dev._ns.take(data, idx, axis=ax)
    except Exception as exc:
        raise _translate("xp.take", exc) from None
    return _wrap(r, dev, tags)


def take_along_axis(x: Array, indices: Array, /, *, axis: int = -1) -> Array:
    """Pick values of *x* at *indices* along *axis*, as produced by ``argsort`` (same rank as *x*).

    >>> import hpcai as xp
    >>> x = xp.asarray([[3, 1, 2]])
    >>> xp.take_along_axis(x, xp.argsort(x, axis=1), axis=1)
    Array([[1, 2, 3]], dtype=int64, device='numpy:cpu')
    """
    data, idx, dev, tags = _operands("take_along_axis", x, indices)
    if idx.ndim != data.ndim:
        raise ShapeError(
            f"xp.take_along_axis: indices must have the same rank as x ({data.ndim}), got {idx.ndim}"
        )
    ax = _axis("take_along_axis", axis, data.ndim)
    try:
        r = dev._ns.take_along_axis(data, idx, axis=ax)
    except Exception as exc:
        raise _translate("xp.take_along_axis", exc) from None
    return _wrap(r, dev, tags)
