"""NaN-skipping reductions: documented extensions of the Array API standard.

``nansum``, ``nanmean``, ``nanmax``, ... reduce as their standard counterparts do but
ignore NaNs, with NumPy's semantics (an all-NaN slice gives NaN for ``nanmean``/``nanmax``,
0 for ``nansum``; ``nanargmax`` of an all-NaN slice is an error on NumPy and -1 on JAX).
xarray reaches them through ``__array_namespace__`` on its ``skipna`` path (the default
for floating data), so ``da.mean()``, ``da.std()``, ``da.max()``, ``da.cumsum()`` keep the
hpcai Array, its device and its tags instead of going through NumPy. Each one is computed by
the device's own namespace (NumPy, JAX, ...), on the device, like every other function.

Keyword names follow NumPy (``ddof`` for ``nanvar``/``nanstd``, ``dtype``) because that is
how xarray calls them; ``correction`` is accepted as the standard's name for ``ddof``.
"""

from __future__ import annotations

import warnings
from typing import Any

from ._array import Array, _wrap
from ._dtypes import _boolean_dtypes, _numeric_dtypes, _real_numeric_dtypes
from ._helpers import normalize_dtype
from ._searching_functions import _index_result
from ._statistical_functions import _floating_input, _require, fail
from .errors import InvalidArgumentError

__all__ = [
    "nanargmax",
    "nanargmin",
    "nancumprod",
    "nancumsum",
    "nanmax",
    "nanmean",
    "nanmedian",
    "nanmin",
    "nanprod",
    "nanstd",
    "nansum",
    "nanvar",
]

Axis = int | tuple[int, ...] | None

_NUMERIC = _numeric_dtypes | _boolean_dtypes
_ORDERABLE = _real_numeric_dtypes | _boolean_dtypes
_CONVERT = "convert it with xp.astype(x, xp.float64)"
_NO_ORDER = "complex numbers have no order; reduce xp.abs(x) or xp.real(x) instead"


def _run(fname: str, x: Array, a: Any, axis: Any, **kwargs: Any) -> Any:
    """Call the device namespace's *fname* on native *a*; NumPy's empty/all-NaN warnings are silenced."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return getattr(x._device._ns, fname)(a, axis=axis, **kwargs)
    except Exception as exc:
        raise fail(fname, exc, a.ndim, axis) from None


def _no_out(fname: str, out: Any) -> None:
    if out is not None:
        raise InvalidArgumentError(f"xp.{fname}: out= is not supported; hpcai functions return new arrays")


def _sum_like(fname: str, x: Any, axis: Axis, dtype: Any, keepdims: bool, out: Any) -> Array:
    _no_out(fname, out)
    x = _require(fname, x, _NUMERIC, "a numeric", _CONVERT)
    r = _run(fname, x, x._data, axis, dtype=normalize_dtype(fname, dtype), keepdims=keepdims)
    return _wrap(r, x._device, x._tags)


def nansum(x: Array, /, *, axis: Axis = None, dtype: Any = None, keepdims: bool = False, out: Any = None) -> Array:
    """Sum over *axis* treating NaNs as zero (an extension; NumPy's ``nansum``).

    >>> import hpcai as xp
    >>> float(xp.nansum(xp.asarray([1.0, xp.nan, 2.0])))
    3.0
    """
    return _sum_like("nansum", x, axis, dtype, keepdims, out)


def nanprod(x: Array, /, *, axis: Axis = None, dtype: Any = None, keepdims: bool = False, out: Any = None) -> Array:
    """Product over *axis* treating NaNs as one (an extension; NumPy's ``nanprod``).

    >>> import hpcai as xp
    >>> float(xp.nanprod(xp.asarray([2.0, xp.nan, 3.0])))
    6.0
    """
    return _sum_like("nanprod", x, axis, dtype, keepdims, out)


def nanmean(x: Array, /, *, axis: Axis = None, dtype: Any = None, keepdims: bool = False, out: Any = None) -> Array:
    """Mean over *axis* ignoring NaNs; NaN where a slice holds only NaNs (an extension).

    Integer inputs are averaged in the device's default floating dtype.

    >>> import hpcai as xp
    >>> float(xp.nanmean(xp.asarray([1.0, xp.nan, 3.0])))
    2.0
    """
    _no_out("nanmean", out)
    x = _require("nanmean", x, _NUMERIC, "a numeric", _CONVERT)
    a = _floating_input("nanmean", x)
    r = _run("nanmean", x, a, axis, dtype=normalize_dtype("nanmean", dtype), keepdims=keepdims)
    return _wrap(r, x._device, x._tags)


def _spread(fname: str, x: Any, axis: Axis, dtype: Any, ddof: float, correction: float | None, keepdims: bool, out: Any) -> Array:
    _no_out(fname, out)
    x = _require(fname, x, _ORDERABLE, "a real-valued", "for complex data reduce xp.abs(x - xp.nanmean(x)) ** 2")
    if correction is not None:
        if ddof:
            raise InvalidArgumentError(f"xp.{fname}: pass ddof or correction, not both (got {ddof!r} and {correction!r})")
        ddof = correction
    if isinstance(ddof, bool) or not isinstance(ddof, (int, float)):
        raise InvalidArgumentError(f"xp.{fname}: ddof must be an int or float, got {ddof!r}")
    a = _floating_input(fname, x)
    r = _run(fname, x, a, axis, dtype=normalize_dtype(fname, dtype), ddof=ddof, keepdims=keepdims)
    return _wrap(r, x._device, x._tags)


def nanvar(
    x: Array,
    /,
    *,
    axis: Axis = None,
    dtype: Any = None,
    ddof: int | float = 0,
    correction: int | float | None = None,
    keepdims: bool = False,
    out: Any = None,
) -> Array:
    """Variance over *axis* ignoring NaNs, divisor ``N - ddof`` (an extension; ``correction`` = ``ddof``).

    >>> import hpcai as xp
    >>> float(xp.nanvar(xp.asarray([1.0, xp.nan, 3.0])))
    1.0
    """
    return _spread("nanvar", x, axis, dtype, ddof, correction, keepdims, out)


def nanstd(
    x: Array,
    /,
    *,
    axis: Axis = None,
    dtype: Any = None,
    ddof: int | float = 0,
    correction: int | float | None = None,
    keepdims: bool = False,
    out: Any = None,
) -> Array:
    """Standard deviation over *axis* ignoring NaNs, divisor ``N - ddof`` (an extension).

    >>> import hpcai as xp
    >>> float(xp.nanstd(xp.asarray([1.0, xp.nan, 3.0])))
    1.0
    """
    return _spread("nanstd", x, axis, dtype, ddof, correction, keepdims, out)


def _extremum(fname: str, x: Any, axis: Axis, keepdims: bool, out: Any) -> Array:
    _no_out(fname, out)
    x = _require(fname, x, _ORDERABLE, "a real-valued", _NO_ORDER)
    a = x._data
    if a.size == 0:
        raise InvalidArgumentError(
            f"xp.{fname}: x is empty (shape {tuple(a.shape)}), the {fname[3:]}imum has no identity; "
            "check the array is non-empty first"
        )
    r = _run(fname, x, a, axis, keepdims=keepdims)
    return _wrap(r, x._device, x._tags)


def nanmax(x: Array, /, *, axis: Axis = None, keepdims: bool = False, out: Any = None) -> Array:
    """Maximum over *axis* ignoring NaNs; NaN where a slice holds only NaNs (an extension).

    >>> import hpcai as xp
    >>> float(xp.nanmax(xp.asarray([1.0, xp.nan, 3.0])))
    3.0
    """
    return _extremum("nanmax", x, axis, keepdims, out)


def nanmin(x: Array, /, *, axis: Axis = None, keepdims: bool = False, out: Any = None) -> Array:
    """Minimum over *axis* ignoring NaNs; NaN where a slice holds only NaNs (an extension).

    >>> import hpcai as xp
    >>> float(xp.nanmin(xp.asarray([1.0, xp.nan, 3.0])))
    1.0
    """
    return _extremum("nanmin", x, axis, keepdims, out)


def _arg(fname: str, x: Any, axis: int | None, keepdims: bool) -> Array:
    x = _require(fname, x, _ORDERABLE, "a real-valued", _NO_ORDER)
    a = x._data
    if a.size == 0:
        raise InvalidArgumentError(f"xp.{fname}: x is empty (shape {tuple(a.shape)}); there is nothing to locate")
    if axis is not None and not isinstance(axis, int):
        raise InvalidArgumentError(f"xp.{fname}: axis must be an int or None, got {axis!r}")
    kw = {"keepdims": True} if keepdims else {}
    return _index_result(_run(fname, x, a, axis, **kw), x._device, x._tags)


def nanargmax(x: Array, /, *, axis: int | None = None, keepdims: bool = False) -> Array:
    """Index of the first maximum ignoring NaNs (an extension; an all-NaN slice is an error on NumPy).

    >>> import hpcai as xp
    >>> int(xp.nanargmax(xp.asarray([xp.nan, 3.0, 1.0])))
    1
    """
    return _arg("nanargmax", x, axis, keepdims)


def nanargmin(x: Array, /, *, axis: int | None = None, keepdims: bool = False) -> Array:
    """Index of the first minimum ignoring NaNs (an extension).

    >>> import hpcai as xp
    >>> int(xp.nanargmin(xp.asarray([xp.nan, 3.0, 1.0])))
    2
    """
    return _arg("nanargmin", x, axis, keepdims)


def _cumulative(fname: str, x: Any, axis: int | None, dtype: Any, out: Any) -> Array:
    _no_out(fname, out)
    x = _require(fname, x, _NUMERIC, "a numeric", _CONVERT)
    if axis is None and x._data.ndim > 1:
        raise InvalidArgumentError(f"xp.{fname}: axis is required for a {x._data.ndim}-d array (got axis=None); pass e.g. axis=0")
    a = x._data
    if a.ndim == 0:
        raise InvalidArgumentError(f"xp.{fname}: x must have at least one dimension, got a 0-d array")
    r = _run(fname, x, a, 0 if axis is None else axis, dtype=normalize_dtype(fname, dtype))
    return _wrap(r, x._device, x._tags)


def nancumsum(x: Array, /, *, axis: int | None = None, dtype: Any = None, out: Any = None) -> Array:
    """Cumulative sum along *axis* treating NaNs as zero (an extension; axis required beyond 1-d).

    >>> import hpcai as xp
    >>> xp.nancumsum(xp.asarray([1.0, xp.nan, 2.0]))
    Array([1., 1., 3.], dtype=float64, device='numpy:cpu')
    """
    return _cumulative("nancumsum", x, axis, dtype, out)


def nancumprod(x: Array, /, *, axis: int | None = None, dtype: Any = None, out: Any = None) -> Array:
    """Cumulative product along *axis* treating NaNs as one (an extension).

    >>> import hpcai as xp
    >>> xp.nancumprod(xp.asarray([2.0, xp.nan, 3.0]))
    Array([2., 2., 6.], dtype=float64, device='numpy:cpu')
    """
    return _cumulative("nancumprod", x, axis, dtype, out)


def nanmedian(x: Array, /, *, axis: Axis = None, keepdims: bool = False, out: Any = None) -> Array:
    """Median over *axis* ignoring NaNs; NaN where a slice holds only NaNs (an extension).

    >>> import hpcai as xp
    >>> float(xp.nanmedian(xp.asarray([1.0, xp.nan, 3.0, 10.0])))
    3.0
    """
    _no_out("nanmedian", out)
    x = _require("nanmedian", x, _ORDERABLE, "a real-valued", _NO_ORDER)
    a = _floating_input("nanmedian", x)
    r = _run("nanmedian", x, a, axis, keepdims=keepdims)
    return _wrap(r, x._device, x._tags)
