"""Statistical functions of the Array API standard (chapter "Statistical Functions").

Sums and products accumulate in the dtypes the standard prescribes: floating inputs keep
their dtype, narrower integers widen to the device's default integer dtype (unsigned ones
to the unsigned integer of the same width), booleans count in the default integer dtype.
Integer inputs to ``mean``/``std``/``var`` compute in the device's default floating dtype.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ._array import Array, _translate, _wrap
from ._dtypes import (
    _boolean_dtypes,
    _floating_dtypes,
    _numeric_dtypes,
    _real_numeric_dtypes,
    _unsigned_integer_dtypes,
)
from ._helpers import as_array, device_default_dtype, normalize_dtype
from .errors import AxisError, DTypeError, InvalidArgumentError

__all__ = [
    "cumulative_prod",
    "cumulative_sum",
    "max",
    "mean",
    "min",
    "prod",
    "std",
    "sum",
    "var",
]

Axis = int | tuple[int, ...] | None

#: Inputs that ``sum``/``prod``/``cumulative_*`` accept: numbers, and booleans (which count).
_ACCUMULABLE = _numeric_dtypes | _boolean_dtypes
#: Inputs that ``max``/``min`` accept: anything with a total order.
_ORDERABLE = _real_numeric_dtypes | _boolean_dtypes
#: Inputs that ``mean`` accepts (integers and booleans compute in the default float dtype).
_MEANABLE = _numeric_dtypes | _boolean_dtypes
#: Inputs that ``std``/``var`` accept.
_VARIABLE = _real_numeric_dtypes | _boolean_dtypes


# --------------------------------------------------------------------------------------------
# shared helpers (also used by hpcai.linalg.trace)
# --------------------------------------------------------------------------------------------
def _require(fname: str, x: Any, group: frozenset[Any], expected: str, fix: str) -> Array:
    """*x* as an Array whose dtype is in *group*, else a :class:`DTypeError` naming the fix."""
    if x.__class__ is not Array:
        x = as_array(fname, x)
    if x._data.dtype not in group:
        raise DTypeError(f"xp.{fname}: x must have {expected} dtype, got {x._data.dtype}; {fix}")
    return x


#: Kinds in the order in which casting keeps values: an integer sum may be taken in any
#: integer type (the standard casts x to *dtype* first; integer arithmetic is modular),
#: but not a floating sum in an integer type nor a complex one in a real type.
_KIND_RANK = {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}


def accumulation_dtype(fname: str, x: Array, dtype: Any) -> Any:
    """The dtype a sum/product of *x* is computed in; ``None`` means "x's own dtype".

    Follows the standard: floating inputs keep their dtype; integers narrower than the
    default integer widen to it (unsigned ones to the unsigned integer of the same width);
    booleans count in the default integer dtype. An explicit *dtype* is what the result
    has: *x* is cast to it first, as the standard says; it must be numeric and may not
    drop a component (int -> float and int8 -> uint8 are fine, float -> int is not).
    """
    xdt = x._data.dtype
    if dtype is None:
        if xdt.kind in "fc":
            return None
        default = device_default_dtype(x._device, "integral")
        if xdt.kind == "b":
            return default
        if xdt.itemsize >= default.itemsize:
            return None
        if xdt in _unsigned_integer_dtypes:
            return np.dtype(f"uint{default.itemsize * 8}")
        return default
    dt = normalize_dtype(fname, dtype)
    if dt not in _numeric_dtypes:
        raise DTypeError(
            f"xp.{fname}: dtype must be a numeric data type, got {dt}; e.g. dtype=xp.int64 or xp.float64"
        )
    if _KIND_RANK[dt.kind] < _KIND_RANK[xdt.kind]:
        raise DTypeError(
            f"xp.{fname}: cannot accumulate {xdt} values in {dt} (the cast drops the "
            f"{'imaginary part' if xdt.kind == 'c' else 'fractional part'}); pass a dtype of the same kind "
            f"or wider, or convert x first with xp.astype(x, {dt.name})"
        )
    return dt


def _reduced_count(shape: tuple[int, ...], axis: Axis) -> int | None:
    """How many elements each reduction result combines; ``None`` if *axis* is invalid."""
    if axis is None:
        return math.prod(shape)
    axes = (axis,) if isinstance(axis, int) else axis
    n = len(shape)
    try:
        return math.prod(shape[a] for a in axes if -n <= a < n)
    except TypeError:
        return None


def _bad_axis(ndim: int, axis: Any) -> int | None:
    """The first entry of *axis* outside ``[-ndim, ndim)``, or ``None`` if all are valid."""
    if axis is None:
        return None
    for a in (axis,) if isinstance(axis, int) else axis if isinstance(axis, tuple) else ():
        if isinstance(a, int) and not -ndim <= a < ndim:
            return a
    return None


def fail(fname: str, exc: BaseException, ndim: int, axis: Any) -> BaseException:
    """Translate a backend failure; an out-of-range *axis* is an :class:`AxisError` on every backend.

    Called only after the backend raised, so checking the axes costs nothing on success.
    """
    bad = _bad_axis(ndim, axis)
    if bad is not None:
        return AxisError(
            f"xp.{fname}: axis {bad} is out of range for an array with {ndim} dimension(s); "
            f"valid axes are {-ndim}..{ndim - 1}"
        )
    return _translate(f"xp.{fname}", exc)


def _floating_input(fname: str, x: Array) -> Any:
    """The native data of *x*, cast to the device's default float dtype if it is integral."""
    a = x._data
    if a.dtype in _floating_dtypes:
        return a
    fdt = device_default_dtype(x._device, "real floating")
    try:
        return x._device._ns.astype(a, fdt)
    except Exception as exc:
        raise _translate(f"xp.{fname}", exc) from None


# --------------------------------------------------------------------------------------------
# cumulative
# --------------------------------------------------------------------------------------------
def _cumulative(fname: str, x: Any, axis: int | None, dtype: Any, include_initial: bool) -> Array:
    x = _require(fname, x, _ACCUMULABLE, "a numeric", "convert it with xp.astype(x, xp.float64)")
    a = x._data
    if a.ndim == 0:
        raise InvalidArgumentError(
            f"xp.{fname}: x must have at least one dimension, got a 0-d array; reshape it first, e.g. xp.reshape(x, (1,))"
        )
    if axis is None:
        if a.ndim > 1:
            raise InvalidArgumentError(
                f"xp.{fname}: axis is required for a {a.ndim}-d array (got axis=None); pass e.g. axis=0"
            )
        axis = 0
    dt = accumulation_dtype(fname, x, dtype)
    ns = x._device._ns
    try:
        r = getattr(ns, fname)(a, axis=axis, dtype=dt, include_initial=include_initial)
    except Exception as exc:
        raise fail(fname, exc, a.ndim, axis) from None
    return _wrap(r, x._device, x._tags)


def cumulative_sum(
    x: Array,
    /,
    *,
    axis: int | None = None,
    dtype: Any = None,
    include_initial: bool = False,
) -> Array:
    """Cumulative sum along *axis* (required when ``x.ndim > 1``).

    ``include_initial=True`` prepends the additive identity, so the axis grows by one.

    >>> import hpcai as xp
    >>> xp.cumulative_sum(xp.asarray([1, 2, 3]), include_initial=True)
    Array([0, 1, 3, 6], dtype=int64, device='numpy:cpu')
    """
    return _cumulative("cumulative_sum", x, axis, dtype, include_initial)


def cumulative_prod(
    x: Array,
    /,
    *,
    axis: int | None = None,
    dtype: Any = None,
    include_initial: bool = False,
) -> Array:
    """Cumulative product along *axis* (required when ``x.ndim > 1``).

    ``include_initial=True`` prepends the multiplicative identity, so the axis grows by one.

    >>> import hpcai as xp
    >>> xp.cumulative_prod(xp.asarray([1.0, 2.0, 3.0]))
    Array([1., 2., 6.], dtype=float64, device='numpy:cpu')
    """
    return _cumulative("cumulative_prod", x, axis, dtype, include_initial)


# --------------------------------------------------------------------------------------------
# reductions
# --------------------------------------------------------------------------------------------
def _extremum(fname: str, x: Any, axis: Axis, keepdims: bool) -> Array:
    x = _require(
        fname,
        x,
        _ORDERABLE,
        "a real-valued",
        "complex numbers have no order; reduce xp.abs(x) or xp.real(x) instead",
    )
    a = x._data
    if a.size == 0:
        n = _reduced_count(tuple(a.shape), axis)
        if n == 0:
            raise InvalidArgumentError(
                f"xp.{fname}: cannot take the {fname}imum over zero elements (shape {tuple(a.shape)}, "
                f"axis={axis!r}); the result has no identity. Check the array is non-empty first"
            )
    try:
        r = getattr(x._device._ns, fname)(a, axis=axis, keepdims=keepdims)
    except Exception as exc:
        raise fail(fname, exc, a.ndim, axis) from None
    return _wrap(r, x._device, x._tags)


def max(x: Array, /, *, axis: Axis = None, keepdims: bool = False) -> Array:
    """Maximum of *x* over *axis* (all axes by default); NaNs propagate.

    >>> import hpcai as xp
    >>> xp.max(xp.asarray([[1, 5], [7, 2]]), axis=1)
    Array([5, 7], dtype=int64, device='numpy:cpu')
    """
    return _extremum("max", x, axis, keepdims)


def min(x: Array, /, *, axis: Axis = None, keepdims: bool = False) -> Array:
    """Minimum of *x* over *axis* (all axes by default); NaNs propagate.

    >>> import hpcai as xp
    >>> xp.min(xp.asarray([[1, 5], [7, 2]]), axis=0)
    Array([1, 2], dtype=int64, device='numpy:cpu')
    """
    return _extremum("min", x, axis, keepdims)


def sum(x: Array, /, *, axis: Axis = None, dtype: Any = None, keepdims: bool = False) -> Array:
    """Sum of *x* over *axis*; narrow integers accumulate in the default integer dtype.

    >>> import hpcai as xp
    >>> xp.sum(xp.asarray([1, 2, 3], dtype=xp.int8)).dtype
    hpcai.int64
    """
    if x.__class__ is not Array or x._data.dtype not in _ACCUMULABLE:
        x = _require(
            "sum", x, _ACCUMULABLE, "a numeric", "convert it with xp.astype(x, xp.float64)"
        )
    a = x._data
    dt = None if dtype is None and a.dtype.kind in "fc" else accumulation_dtype("sum", x, dtype)
    try:
        r = x._device._ns.sum(a, axis=axis, dtype=dt, keepdims=keepdims)
    except Exception as exc:
        raise fail("sum", exc, a.ndim, axis) from None
    return _wrap(r, x._device, x._tags)


def prod(x: Array, /, *, axis: Axis = None, dtype: Any = None, keepdims: bool = False) -> Array:
    """Product of *x* over *axis*; narrow integers accumulate in the default integer dtype.

    >>> import hpcai as xp
    >>> float(xp.prod(xp.asarray([1.5, 2.0, 4.0])))
    12.0
    """
    x = _require("prod", x, _ACCUMULABLE, "a numeric", "convert it with xp.astype(x, xp.float64)")
    dt = accumulation_dtype("prod", x, dtype)
    try:
        r = x._device._ns.prod(x._data, axis=axis, dtype=dt, keepdims=keepdims)
    except Exception as exc:
        raise fail("prod", exc, x._data.ndim, axis) from None
    return _wrap(r, x._device, x._tags)


def mean(x: Array, /, *, axis: Axis = None, keepdims: bool = False) -> Array:
    """Arithmetic mean over *axis*; NaN over zero elements, as the standard specifies.

    Floating inputs keep their dtype; integer and boolean inputs are averaged in the
    device's default floating dtype.

    >>> import hpcai as xp
    >>> float(xp.mean(xp.asarray([1.0, 2.0, 6.0])))
    3.0
    """
    x = _require("mean", x, _MEANABLE, "a numeric", "convert it with xp.astype(x, xp.float64)")
    a = _floating_input("mean", x)
    ns = x._device._ns
    try:
        if a.size == 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                r = ns.mean(a, axis=axis, keepdims=keepdims)
        else:
            r = ns.mean(a, axis=axis, keepdims=keepdims)
    except Exception as exc:
        raise fail("mean", exc, a.ndim, axis) from None
    return _wrap(r, x._device, x._tags)


def _spread(fname: str, x: Any, axis: Axis, correction: float, keepdims: bool) -> Array:
    x = _require(
        fname,
        x,
        _VARIABLE,
        "a real-valued",
        "for complex data reduce xp.abs(x - xp.mean(x)) ** 2 instead",
    )
    if isinstance(correction, bool) or not isinstance(correction, (int, float)):
        raise InvalidArgumentError(
            f"xp.{fname}: correction must be an int or float, got {correction!r}"
        )
    a = _floating_input(fname, x)
    ns = x._device._ns
    n = _reduced_count(tuple(a.shape), axis)
    try:
        if n is not None and n - correction <= 0:
            # The standard defines the result as NaN; NumPy agrees but warns.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                r = getattr(ns, fname)(a, axis=axis, correction=correction, keepdims=keepdims)
            r = ns.full_like(r, math.nan)
        else:
            r = getattr(ns, fname)(a, axis=axis, correction=correction, keepdims=keepdims)
    except Exception as exc:
        raise fail(fname, exc, a.ndim, axis) from None
    return _wrap(r, x._device, x._tags)


def std(
    x: Array, /, *, axis: Axis = None, correction: int | float = 0.0, keepdims: bool = False
) -> Array:
    """Standard deviation over *axis* with divisor ``N - correction`` (Bessel: ``correction=1``).

    >>> import hpcai as xp
    >>> float(xp.std(xp.asarray([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])))
    2.0
    """
    return _spread("std", x, axis, correction, keepdims)


def var(
    x: Array, /, *, axis: Axis = None, correction: int | float = 0.0, keepdims: bool = False
) -> Array:
    """Variance over *axis* with divisor ``N - correction``; NaN when ``N - correction <= 0``.

    >>> import hpcai as xp
    >>> float(xp.var(xp.asarray([1.0, 2.0, 3.0, 4.0])))
    1.25
    """
    return _spread("var", x, axis, correction, keepdims)
