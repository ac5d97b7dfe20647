"""Elementwise functions of the Python Array API standard (2024.12).

Each function checks its dtype group, calls the device's array-api-compat namespace and
wraps the result with the union of its inputs' residency tags (see :mod:`hpcai._helpers`).
Binary functions accept a Python scalar for one operand.

Where a backend deviates from the standard's special cases (NumPy's and JAX's
``floor_divide`` with infinities, JAX's signed zeros in ``floor_divide`` and ``remainder``,
NumPy's ``pow`` with the exponent 0.5) the result is corrected with array operations of the
same namespace. Which corrections a namespace needs is found once, by trying those special
cases on it (:func:`_quirks`), so a backend that gets them right pays nothing.

NumPy's complex ``expm1`` (``expm1(a)*cos(b) - 2*sin(b/2)**2 + exp(a)*sin(b)*1j`` gives
NaN for infinite parts and ``inf * 0``) and ``tanh`` (C99's ``1 + 0*sin(2b) j`` at
``a = +inf``, where the standard asks for ``1 + 0j``) are corrected the same way.

Deviations of one backend's compiler rather than of an array library (XLA's division by a
broadcast divisor as a multiplication by its reciprocal, ``jax.numpy``'s complex special
values) are corrected in that backend's namespace instead (``hpcai.backends._jax_numpy``),
with traceable expressions that also hold inside ``xp.jit``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _tags
from ._array import _INT64_MAX, Array, _translate, _weak_on, _wide_int, _wrap
from ._dtypes import (
    _all_dtypes,
    _boolean_dtypes,
    _complex_floating_dtypes,
    _floating_dtypes,
    _integer_dtypes,
    _integer_or_boolean_dtypes,
    _numeric_dtypes,
    _real_floating_dtypes,
    _real_numeric_dtypes,
)
from ._helpers import as_array, binary, binary_operands, check_dtype, unary
from ._tags import TagSet
from .errors import DTypeError, InvalidArgumentError

__all__ = [
    "abs",
    "acos",
    "acosh",
    "add",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "bitwise_and",
    "bitwise_invert",
    "bitwise_left_shift",
    "bitwise_or",
    "bitwise_right_shift",
    "bitwise_xor",
    "ceil",
    "clip",
    "conj",
    "copysign",
    "cos",
    "cosh",
    "divide",
    "equal",
    "exp",
    "expm1",
    "floor",
    "floor_divide",
    "greater",
    "greater_equal",
    "hypot",
    "imag",
    "isfinite",
    "isinf",
    "isnan",
    "less",
    "less_equal",
    "log",
    "log1p",
    "log2",
    "log10",
    "logaddexp",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "maximum",
    "minimum",
    "multiply",
    "negative",
    "nextafter",
    "not_equal",
    "positive",
    "pow",
    "real",
    "reciprocal",
    "remainder",
    "round",
    "sign",
    "signbit",
    "sin",
    "sinh",
    "sqrt",
    "square",
    "subtract",
    "tan",
    "tanh",
    "trunc",
]

_ALL = _all_dtypes
_BOOL = _boolean_dtypes
_COMPLEX = _complex_floating_dtypes
_FLOATING = _floating_dtypes
_INTEGER = _integer_dtypes
_INT_OR_BOOL = _integer_or_boolean_dtypes
_NUMERIC = _numeric_dtypes
_REAL_FLOATING = _real_floating_dtypes
_REAL_NUMERIC = _real_numeric_dtypes

_SCALARS = (bool, int, float, complex)
_IINFO: dict[np.dtype, tuple[int, int]] = {
    d: (int(np.iinfo(d).min), int(np.iinfo(d).max)) for d in _INTEGER
}

Numeric = Array | int | float | complex
Real = Array | int | float


# --------------------------------------------------------------------------------------------
# private plumbing for the functions that correct backend results
# --------------------------------------------------------------------------------------------
_QUIRKS: dict[int, frozenset[str]] = {}


def _quirks(ns: Any) -> frozenset[str]:
    """The corrections namespace *ns* needs, found on first use by trying special cases on it."""
    q = _QUIRKS.get(id(ns))
    if q is None:
        q = _QUIRKS[id(ns)] = _probe(ns)
    return q


def _probe(ns: Any) -> frozenset[str]:
    """Run the special cases that backends are known to get wrong; name those that fail.

    A namespace that computes with hpcai's own functions (the ``dask`` device's, chunk by
    chunk) follows the standard already and says so: ``follows_hpcai_special_cases = True``.
    """
    if getattr(ns, "follows_hpcai_special_cases", False):
        return frozenset()
    inf = math.inf
    nan = math.nan

    def arr(*v: float) -> Any:
        return ns.asarray(list(v), dtype=ns.float32)

    def carr(*v: complex) -> Any:
        return ns.asarray(list(v), dtype=ns.complex64)

    checks: dict[str, tuple[Callable[[], Any], list[complex]]] = {
        # floor(x1 / x2) where an operand is infinite (NumPy and JAX give NaN and -1)
        "floor_divide_inf": (
            lambda: ns.floor_divide(arr(inf, 1.0, -1.0), arr(2.0, -inf, inf)),
            [inf, -0.0, -0.0],
        ),
        # a zero quotient has the sign of x1 / x2 (JAX gives +0 for -0 // 2, -0 for -1 // -1.5)
        "floor_divide_zero": (
            lambda: ns.floor_divide(arr(-0.0, 0.0, -1.0), arr(2.0, -2.0, -1.5)),
            [-0.0, -0.0, 0.0],
        ),
        # a zero remainder has the sign of x2, as in Python (JAX uses the sign of x1)
        "remainder_zero": (
            lambda: ns.remainder(arr(-0.0, 0.0, 4.0), arr(2.0, -2.0, -2.0)),
            [0.0, -0.0, -0.0],
        ),
        # x**0.5 of -0 is +0 and of -inf is +inf (NumPy computes sqrt(x))
        "pow_half": (lambda: ns.pow(arr(-0.0, -inf), 0.5), [0.0, inf]),
        # complex expm1 with an infinite real part or a zero imaginary part (NumPy gives NaN
        # parts from inf * 0 and inf - inf, and -0 at -0 + 0j)
        "expm1_complex": (
            lambda: ns.expm1(
                carr(complex(inf, 0.0), complex(nan, 0.0), complex(-0.0, 0.0), complex(-inf, inf))
            ),
            [complex(inf, 0.0), complex(nan, 0.0), 0j, complex(-1.0, 0.0)],
        ),
        # complex tanh(±inf + bj) is ±1 + 0j with the sign of b (C99 and NumPy: of sin(2b))
        "tanh_complex": (
            lambda: ns.tanh(carr(complex(inf, 2.0), complex(-inf, -2.0))),
            [complex(1.0, 0.0), complex(-1.0, -0.0)],
        ),
    }
    needed = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (run, want) in checks.items():
            try:
                got = [complex(v) for v in run()]
                ok = all(_same(g, complex(w)) for g, w in zip(got, want, strict=True))
            except Exception:  # a backend that cannot even run the case gets the correction
                ok = False
            if not ok:
                needed.add(name)
    return frozenset(needed)


def _same(g: complex, w: complex) -> bool:
    """Whether *g* is *w* part by part: zeros with their sign, NaN matching any NaN."""
    return all(
        (math.isnan(u) and math.isnan(v))
        or (u == v and math.copysign(1.0, u) == math.copysign(1.0, v))
        for u, v in ((g.real, w.real), (g.imag, w.imag))
    )


def _from_parts(ns: Any, like: Any, re: Any, im: Any) -> Any:
    """The complex array with parts *re* and *im*, of *like*'s dtype and shape.

    The parts are written into a new array: ``re + im * 1j`` would turn an infinite ``im``
    into a NaN real part (``inf * 1j`` is ``nan + infj``).
    """
    out = ns.empty_like(like)
    out.real = re
    out.imag = im
    return out


def _any(ns: Any, m: Any) -> bool:
    """Whether any element of the bool array *m* is true (a shortcut: nothing to correct).

    Inside ``xp.jit`` *m* is traced and has no value yet: then the answer is ``True``, and
    the correction is compiled into the program.
    """
    try:
        return bool(m.any()) if hasattr(m, "any") else bool(ns.any(m))
    except TypeError:  # jax.errors.ConcretizationTypeError: a traced value
        return True


def _isinf(ns: Any, v: Any) -> Any:
    """``isinf`` of a native array, or a Python bool for a Python scalar."""
    if isinstance(v, _SCALARS):
        return isinstance(v, float) and math.isinf(v)
    return ns.isinf(v)


def _is_half(b: Any) -> bool:
    """Whether the exponent is the single value 0.5 (NumPy then takes a ``sqrt`` shortcut)."""
    if isinstance(b, _SCALARS):
        return b.__class__ is float and b == 0.5
    return bool(b.size == 1 and b.dtype.kind == "f" and float(b.reshape(())) == 0.5)


def _check_shift(fname: str, shift: Any) -> None:
    """A negative scalar shift is invalid input (the standard requires shifts >= 0)."""
    if isinstance(shift, (int, np.integer)) and not isinstance(shift, bool) and shift < 0:
        raise InvalidArgumentError(
            f"xp.{fname}: the shift amount must be >= 0, got {shift}; "
            f"use the opposite shift for a negative amount"
        )


# --------------------------------------------------------------------------------------------
# the functions, in the standard's order
# --------------------------------------------------------------------------------------------
def abs(x: Array, /) -> Array:
    """Absolute value of each element; complex input gives the (real) magnitude."""
    return unary("abs", x, _NUMERIC)


def acos(x: Array, /) -> Array:
    """Principal value of the inverse cosine, in radians."""
    return unary("acos", x, _FLOATING)


def acosh(x: Array, /) -> Array:
    """Inverse hyperbolic cosine."""
    return unary("acosh", x, _FLOATING)


def add(x1: Numeric, x2: Numeric, /) -> Array:
    """Sum of each pair of elements; one operand may be a Python scalar.

    >>> import hpcai as xp
    >>> xp.add(xp.asarray([1.0, 2.0]), 1)
    Array([2., 3.], dtype=float64, device='numpy:cpu')
    """
    return binary("add", x1, x2, _NUMERIC)


def asin(x: Array, /) -> Array:
    """Principal value of the inverse sine, in radians."""
    return unary("asin", x, _FLOATING)


def asinh(x: Array, /) -> Array:
    """Inverse hyperbolic sine."""
    return unary("asinh", x, _FLOATING)


def atan(x: Array, /) -> Array:
    """Principal value of the inverse tangent, in radians."""
    return unary("atan", x, _FLOATING)


def atan2(x1: Real, x2: Real, /) -> Array:
    """Inverse tangent of ``x1/x2`` with the quadrant chosen by both signs (``x1`` is y)."""
    return binary("atan2", x1, x2, _REAL_FLOATING)


def atanh(x: Array, /) -> Array:
    """Inverse hyperbolic tangent."""
    return unary("atanh", x, _FLOATING)


def bitwise_and(x1: Array | int | bool, x2: Array | int | bool, /) -> Array:
    """Bitwise AND of integer or boolean elements."""
    return binary("bitwise_and", x1, x2, _INT_OR_BOOL)


def bitwise_left_shift(x1: Array | int, x2: Array | int, /) -> Array:
    """Shift the bits of ``x1`` left by ``x2`` (>= 0); shifts past the width give 0."""
    if x2.__class__ is not Array:
        _check_shift("bitwise_left_shift", x2)
    return binary("bitwise_left_shift", x1, x2, _INTEGER)


def bitwise_invert(x: Array, /) -> Array:
    """Flip every bit of integer or boolean elements."""
    return unary("bitwise_invert", x, _INT_OR_BOOL)


def bitwise_or(x1: Array | int | bool, x2: Array | int | bool, /) -> Array:
    """Bitwise OR of integer or boolean elements."""
    return binary("bitwise_or", x1, x2, _INT_OR_BOOL)


def bitwise_right_shift(x1: Array | int, x2: Array | int, /) -> Array:
    """Arithmetic (sign-propagating) right shift of ``x1`` by ``x2`` (>= 0): floor division by 2**x2."""
    if x2.__class__ is not Array:
        _check_shift("bitwise_right_shift", x2)
    return binary("bitwise_right_shift", x1, x2, _INTEGER)


def bitwise_xor(x1: Array | int | bool, x2: Array | int | bool, /) -> Array:
    """Bitwise XOR of integer or boolean elements."""
    return binary("bitwise_xor", x1, x2, _INT_OR_BOOL)


def ceil(x: Array, /) -> Array:
    """Smallest integer-valued number not less than each element (same dtype)."""
    return unary("ceil", x, _REAL_NUMERIC)


def _clip_bound(name: str, bound: Any, x: Array, tags: TagSet | None) -> tuple[Any, TagSet | None]:
    """A clip bound as a native (cast to ``x``'s dtype) or Python scalar; ``None`` if it has no effect."""
    if bound is None:
        return None, tags
    dt = x._data.dtype
    if bound.__class__ is Array:
        if bound._device is not x._device:
            bound = _weak_on("xp.clip", bound, x._device)
        v = bound._data
        if v.dtype != dt:
            if v.dtype not in _REAL_NUMERIC:
                check_dtype("clip", bound, _REAL_NUMERIC, name)
            ns = x._device._ns
            try:
                # an integer bound of a wider dtype saturates (never wraps) when narrowed
                if dt.kind in "iu" and v.dtype.kind in "iu":
                    (lo, hi), (vlo, vhi) = _IINFO[dt], _IINFO[v.dtype]
                    if vlo < lo:
                        v = ns.maximum(v, lo)
                    if vhi > hi:
                        v = ns.minimum(v, hi)
                v = ns.astype(v, dt)
            except Exception as exc:
                raise _translate("xp.clip", exc) from None
        return v, _tags.union(tags, bound._tags)
    if isinstance(bound, np.generic):
        bound = bound.item()
    if isinstance(bound, bool) or not isinstance(bound, (int, float)):
        if (
            hasattr(bound, "__array_namespace__")
            or hasattr(bound, "__array__")
            or hasattr(bound, "__dlpack__")
        ):
            as_array("clip", bound)  # a foreign array: says how to convert it
        raise DTypeError(
            f"xp.clip: {name} must be an int, a float, an hpcai Array or None, "
            f"got {type(bound).__name__} {bound!r:.40}"
        )
    if dt.kind in "iu":
        if isinstance(bound, float):
            raise DTypeError(
                f"xp.clip: {name}={bound!r} is a float but x has integer dtype {dt}; "
                f"pass an int bound, or convert x with xp.astype(x, xp.float64)"
            )
        lo, hi = _IINFO[dt]
        if (name == "min" and bound <= lo) or (name == "max" and bound >= hi):
            return None, tags  # the bound cannot clip anything
        if bound < lo:
            bound = lo
        elif bound > hi:
            bound = hi
        if bound > _INT64_MAX:
            return _wide_int(bound, x), tags
    return bound, tags


def clip(
    x: Array, /, min: Array | int | float | None = None, max: Array | int | float | None = None
) -> Array:
    """Clamp each element to ``[min, max]``; the result keeps ``x``'s dtype.

    Computed as ``maximum(minimum(x, max), min)``, so a NaN in ``x``, ``min`` or ``max``
    gives NaN and where ``min > max`` the result is ``min``. Bounds may be scalars,
    arrays on ``x``'s device, or ``None`` (no bound).

    >>> import hpcai as xp
    >>> xp.clip(xp.asarray([-2, 0, 5]), 0, 3)
    Array([0, 0, 3], dtype=int64, device='numpy:cpu')
    """
    if x.__class__ is not Array:
        x = as_array("clip", x)
    data = x._data
    if data.dtype not in _REAL_NUMERIC:
        check_dtype("clip", x, _REAL_NUMERIC)
    lo, tags = _clip_bound("min", min, x, x._tags)
    hi, tags = _clip_bound("max", max, x, tags)
    dev = x._device
    ns = dev._ns
    try:
        if lo is None and hi is None:
            r = ns.asarray(data, copy=True)
        elif (
            data.size >= _CLIP_ONE_PASS
            and isinstance(lo, (int, float))
            and isinstance(hi, (int, float))
            and lo <= hi
        ):
            r = ns.clip(data, lo, hi)  # ordered scalar bounds: the same values in one pass
        else:
            r = data
            if hi is not None:
                r = ns.minimum(r, hi)
            if lo is not None:
                r = ns.maximum(r, lo)
    except Exception as exc:
        raise _translate("xp.clip", exc) from None
    return _wrap(r, dev, tags)


#: From this size on, clip with ordered scalar bounds calls the backend's one-pass ``clip``
#: (whose call costs a few microseconds more than ``minimum`` and ``maximum``).
_CLIP_ONE_PASS = 8192


def conj(x: Array, /) -> Array:
    """Complex conjugate of each element (real input is returned unchanged in value)."""
    return unary("conj", x, _NUMERIC)


def copysign(x1: Real, x2: Real, /) -> Array:
    """Magnitude of ``x1`` with the sign bit of ``x2`` (including -0 and signed NaN)."""
    return binary("copysign", x1, x2, _REAL_FLOATING)


def cos(x: Array, /) -> Array:
    """Cosine of each element (radians)."""
    return unary("cos", x, _FLOATING)


def cosh(x: Array, /) -> Array:
    """Hyperbolic cosine."""
    return unary("cosh", x, _FLOATING)


def divide(x1: Numeric, x2: Numeric, /) -> Array:
    """True division; the result has a floating-point dtype."""
    return binary("divide", x1, x2, _NUMERIC)


def equal(x1: Numeric | bool, x2: Numeric | bool, /) -> Array:
    """Elementwise ``x1 == x2`` (NaN compares unequal), as a bool array."""
    return binary("equal", x1, x2, _ALL)


def exp(x: Array, /) -> Array:
    """Exponential ``e**x``."""
    return unary("exp", x, _FLOATING)


def expm1(x: Array, /) -> Array:
    """``exp(x) - 1``, accurate for small ``x``.

    For complex ``x = a + bj`` the standard's special values hold where NumPy's formula gives
    NaN: ``expm1(a ± 0j)`` is ``expm1(a) ± 0j`` (``+0`` at ``a = ±0``, ``inf + 0j`` at
    ``a = inf``, ``NaN + 0j`` at ``a = NaN``), ``expm1(+inf + bj)`` with ``b`` infinite or
    NaN is ``inf + NaN j`` and ``expm1(-inf + bj)`` is ``-1 ± 0j``.
    """
    if (
        x.__class__ is Array
        and x._data.dtype.kind == "c"
        and "expm1_complex" in _quirks(x._device._ns)
    ):
        return _complex_expm1(x)
    return unary("expm1", x, _FLOATING)


def _complex_expm1(x: Array) -> Array:
    """Complex ``expm1`` with the standard's values where the real part is infinite or the
    imaginary part is zero; other elements keep the backend's result."""
    ns = x._device._ns
    a = x._data
    try:
        with np.errstate(all="ignore"):  # inf * 0 and overflow in the backend's formula
            r = ns.expm1(a)
            re, im = ns.real(a), ns.imag(a)
            zero_im = im == 0
            inf_re = ns.isinf(re)
            if _any(ns, zero_im | inf_re):
                rr, ri = ns.real(r), ns.imag(r)
                # expm1(a ± 0j) = expm1(a) ± 0j, exactly (no exp(a) * 0 = NaN for large a)
                rr = ns.where(zero_im, ns.where(re == 0, 0.0, ns.expm1(re)), rr)
                ri = ns.where(zero_im, im, ri)
                # (+inf, inf or NaN) -> (inf, NaN); (-inf, b) -> -1 + 0 * cis(b): the
                # backend's imaginary part exp(-inf) * sin(b) = ±0 holds for finite b, and
                # ±0 with b's sign (conj symmetry) stands in for infinite or NaN b
                bad_im = ~ns.isfinite(im)
                pinf = (re == math.inf) & bad_im
                ninf = re == -math.inf
                rr = ns.where(pinf, math.inf, ns.where(ninf, -1.0, rr))
                ri = ns.where(pinf, math.nan, ns.where(ninf & bad_im, ns.copysign(0.0, im), ri))
                r = _from_parts(ns, r, rr, ri)
    except Exception as exc:
        raise _translate("xp.expm1", exc) from None
    return _wrap(r, x._device, x._tags)


def floor(x: Array, /) -> Array:
    """Greatest integer-valued number not greater than each element (same dtype)."""
    return unary("floor", x, _REAL_NUMERIC)


def floor_divide(x1: Real, x2: Real, /) -> Array:
    """Division rounded towards -infinity (the ``//`` operator).

    Where an operand is infinite the standard's ``floor(x1 / x2)`` is returned (e.g.
    ``inf // 2`` is ``inf`` and ``1 // -inf`` is ``-0``), where NumPy gives NaN or -1;
    a zero result has the sign of ``x1 / x2`` (``-1.0 // -1.5`` is ``+0``).

    >>> import hpcai as xp
    >>> xp.floor_divide(xp.asarray([7, -7]), 2)
    Array([ 3, -4], dtype=int64, device='numpy:cpu')
    """
    a, b, dev, tags = binary_operands("floor_divide", x1, x2, _REAL_NUMERIC)
    ns = dev._ns
    try:
        r = ns.floor_divide(a, b)
        if r.dtype.kind == "f":
            q = _quirks(ns)
            if "floor_divide_inf" in q:
                ia = _isinf(ns, a)
                ib = _isinf(ns, b)
                if ia is True or ib is True:
                    r = ns.floor(ns.divide(a, b))
                else:
                    m = ib if ia is False else ia if ib is False else ia | ib
                    if m is not False and _any(ns, m):
                        r = ns.where(m, ns.floor(ns.divide(a, b)), r)
            if "floor_divide_zero" in q:
                m = r == 0
                if _any(ns, m):
                    r = ns.where(m, ns.copysign(r, ns.divide(a, b)), r)
    except Exception as exc:
        raise _translate("xp.floor_divide", exc) from None
    return _wrap(r, dev, tags)


def greater(x1: Real, x2: Real, /) -> Array:
    """Elementwise ``x1 > x2``, as a bool array."""
    return binary("greater", x1, x2, _REAL_NUMERIC)


def greater_equal(x1: Real, x2: Real, /) -> Array:
    """Elementwise ``x1 >= x2``, as a bool array."""
    return binary("greater_equal", x1, x2, _REAL_NUMERIC)


def hypot(x1: Real, x2: Real, /) -> Array:
    """``sqrt(x1**2 + x2**2)`` without undue overflow or underflow."""
    return binary("hypot", x1, x2, _REAL_FLOATING)


def imag(x: Array, /) -> Array:
    """Imaginary component of complex elements, as a real array of the same precision."""
    return unary("imag", x, _COMPLEX)


def isfinite(x: Array, /) -> Array:
    """Whether each element is finite (neither infinite nor NaN)."""
    return unary("isfinite", x, _NUMERIC)


def isinf(x: Array, /) -> Array:
    """Whether each element is +infinity or -infinity (either component for complex)."""
    return unary("isinf", x, _NUMERIC)


def isnan(x: Array, /) -> Array:
    """Whether each element is NaN (either component for complex)."""
    return unary("isnan", x, _NUMERIC)


def less(x1: Real, x2: Real, /) -> Array:
    """Elementwise ``x1 < x2``, as a bool array."""
    return binary("less", x1, x2, _REAL_NUMERIC)


def less_equal(x1: Real, x2: Real, /) -> Array:
    """Elementwise ``x1 <= x2``, as a bool array."""
    return binary("less_equal", x1, x2, _REAL_NUMERIC)


def log(x: Array, /) -> Array:
    """Natural logarithm."""
    return unary("log", x, _FLOATING)


def log1p(x: Array, /) -> Array:
    """``log(1 + x)``, accurate for small ``x``."""
    return unary("log1p", x, _FLOATING)


def log2(x: Array, /) -> Array:
    """Base-2 logarithm."""
    return unary("log2", x, _FLOATING)


def log10(x: Array, /) -> Array:
    """Base-10 logarithm."""
    return unary("log10", x, _FLOATING)


def logaddexp(x1: Real, x2: Real, /) -> Array:
    """``log(exp(x1) + exp(x2))`` without overflow."""
    return binary("logaddexp", x1, x2, _REAL_FLOATING)


def logical_and(x1: Array | bool, x2: Array | bool, /) -> Array:
    """Logical AND of boolean elements."""
    return binary("logical_and", x1, x2, _BOOL)


def logical_not(x: Array, /) -> Array:
    """Logical NOT of boolean elements."""
    return unary("logical_not", x, _BOOL)


def logical_or(x1: Array | bool, x2: Array | bool, /) -> Array:
    """Logical OR of boolean elements."""
    return binary("logical_or", x1, x2, _BOOL)


def logical_xor(x1: Array | bool, x2: Array | bool, /) -> Array:
    """Logical XOR of boolean elements."""
    return binary("logical_xor", x1, x2, _BOOL)


def maximum(x1: Real, x2: Real, /) -> Array:
    """Larger of each pair of elements; NaN if either is NaN."""
    return binary("maximum", x1, x2, _REAL_NUMERIC)


def minimum(x1: Real, x2: Real, /) -> Array:
    """Smaller of each pair of elements; NaN if either is NaN."""
    return binary("minimum", x1, x2, _REAL_NUMERIC)


def multiply(x1: Numeric, x2: Numeric, /) -> Array:
    """Product of each pair of elements."""
    return binary("multiply", x1, x2, _NUMERIC)


def negative(x: Array, /) -> Array:
    """Numerical negative ``-x``."""
    return unary("negative", x, _NUMERIC)


def nextafter(x1: Real, x2: Real, /) -> Array:
    """Next representable floating-point value after ``x1`` towards ``x2``."""
    return binary("nextafter", x1, x2, _REAL_FLOATING)


def not_equal(x1: Numeric | bool, x2: Numeric | bool, /) -> Array:
    """Elementwise ``x1 != x2`` (NaN compares unequal), as a bool array."""
    return binary("not_equal", x1, x2, _ALL)


def positive(x: Array, /) -> Array:
    """Numerical positive ``+x`` (a new array with the same values)."""
    return unary("positive", x, _NUMERIC)


def pow(x1: Numeric, x2: Numeric, /) -> Array:
    """``x1`` raised to the power ``x2`` (the ``**`` operator).

    An integer base with a negative integer exponent raises
    :class:`~hpcai.errors.InvalidArgumentError` (the result is no integer).

    >>> import hpcai as xp
    >>> xp.pow(xp.asarray([1.0, 4.0]), 0.5)
    Array([1., 2.], dtype=float64, device='numpy:cpu')
    """
    a, b, dev, tags = binary_operands("pow", x1, x2, _NUMERIC)
    ns = dev._ns
    if b.__class__ is int and b < 0 and a.__class__ not in _SCALARS and a.dtype.kind in "iu":
        raise InvalidArgumentError(_POW_NEGATIVE)
    try:
        r = ns.pow(a, b)
        # NumPy computes x**0.5 as sqrt(x): sqrt(-0) is -0 and sqrt(-inf) NaN, where the
        # standard wants +0 and +inf.
        if (
            a.__class__ not in _SCALARS
            and a.dtype.kind == "f"
            and _is_half(b)
            and "pow_half" in _quirks(ns)
            and a.size
            and not float(a.min() if hasattr(a, "min") else ns.min(a)) > 0  # else no -0, no -inf
        ):
            r = ns.add(r, 0.0)  # -0 becomes +0
            m = a == -math.inf
            if _any(ns, m):
                r = ns.where(m, ns.negative(a), r)
    except Exception as exc:
        text = str(exc).lower()
        if "integer" in text and "negative" in text:
            raise InvalidArgumentError(_POW_NEGATIVE) from None
        raise _translate("xp.pow", exc) from None
    return _wrap(r, dev, tags)


_POW_NEGATIVE = (
    "xp.pow: an integer base cannot be raised to a negative integer exponent (the result "
    "is not an integer); convert the base first, e.g. xp.pow(xp.astype(x1, xp.float64), x2)"
)


def real(x: Array, /) -> Array:
    """Real component of each element (real input is returned unchanged in value)."""
    return unary("real", x, _NUMERIC)


def reciprocal(x: Array, /) -> Array:
    """``1 / x`` for floating-point elements."""
    return unary("reciprocal", x, _FLOATING)


def remainder(x1: Real, x2: Real, /) -> Array:
    """Remainder of floor division, with the sign of ``x2`` (the ``%`` operator, as in Python).

    >>> import hpcai as xp
    >>> xp.remainder(xp.asarray([7, -7]), 3)
    Array([1, 2], dtype=int64, device='numpy:cpu')
    """
    a, b, dev, tags = binary_operands("remainder", x1, x2, _REAL_NUMERIC)
    ns = dev._ns
    try:
        r = ns.remainder(a, b)
        if r.dtype.kind == "f" and "remainder_zero" in _quirks(ns):
            s = b if isinstance(b, _SCALARS) or b.dtype == r.dtype else ns.astype(b, r.dtype)
            r = ns.where(r == 0, ns.copysign(r, s), r)
    except Exception as exc:
        raise _translate("xp.remainder", exc) from None
    return _wrap(r, dev, tags)


def round(x: Array, /) -> Array:
    """Round to the nearest integer-valued number, halves to even (same dtype)."""
    return unary("round", x, _NUMERIC)


def sign(x: Array, /) -> Array:
    """-1, 0 or +1 for real elements; ``x / |x|`` (0 at 0) for complex elements."""
    if x.__class__ is Array and x._data.dtype.kind == "c":
        return _complex_sign(x)
    return unary("sign", x, _NUMERIC)


def _complex_sign(x: Array) -> Array:
    """Complex sign as ``x / |x|`` with a real divisor, so subnormal moduli stay exact.

    Dividing by ``|x|`` as a complex number (what the backends do) overflows for subnormal
    moduli (``0+1e-311j`` gave ``nan+infj``); dividing the parts by the real modulus does
    not. A zero of any signs gives ``0 + 0j`` (the standard's value), and non-finite moduli
    keep the backend's ``x / |x|`` special cases.
    """
    ns = x._device._ns
    a = x._data
    try:
        r = ns.abs(a)
        finite = ns.isfinite(r)
        zero = r == 0
        safe = ns.where(zero | ~finite, ns.ones_like(r), r)
        unit = ns.real(a) / safe + (ns.imag(a) / safe) * 1j
        with np.errstate(all="ignore"):  # the masked-out lanes of the fallback may overflow
            out = ns.where(zero, ns.zeros_like(a), ns.where(finite, unit, ns.sign(a)))
    except Exception as exc:
        raise _translate("xp.sign", exc) from None
    return _wrap(out, x._device, x._tags)


def signbit(x: Array, /) -> Array:
    """Whether the sign bit is set (true for -0, negative numbers and negative NaN)."""
    return unary("signbit", x, _REAL_FLOATING)


def sin(x: Array, /) -> Array:
    """Sine of each element (radians)."""
    return unary("sin", x, _FLOATING)


def sinh(x: Array, /) -> Array:
    """Hyperbolic sine."""
    return unary("sinh", x, _FLOATING)


def square(x: Array, /) -> Array:
    """``x * x`` for each element."""
    return unary("square", x, _NUMERIC)


def sqrt(x: Array, /) -> Array:
    """Principal square root."""
    return unary("sqrt", x, _FLOATING)


def subtract(x1: Numeric, x2: Numeric, /) -> Array:
    """Difference ``x1 - x2`` of each pair of elements."""
    return binary("subtract", x1, x2, _NUMERIC)


def tan(x: Array, /) -> Array:
    """Tangent of each element (radians)."""
    return unary("tan", x, _FLOATING)


def tanh(x: Array, /) -> Array:
    """Hyperbolic tangent.

    For complex ``x = a + bj`` with infinite ``a`` the result is ``±1 ± 0j`` with the signs
    of ``a`` and ``b``, as the standard asks (C99, and NumPy, give the imaginary zero the
    sign of ``sin(2b)``).
    """
    if (
        x.__class__ is Array
        and x._data.dtype.kind == "c"
        and "tanh_complex" in _quirks(x._device._ns)
    ):
        return _complex_tanh(x)
    return unary("tanh", x, _FLOATING)


def _complex_tanh(x: Array) -> Array:
    """Complex ``tanh`` with ``tanh(±inf + bj) = ±1 + copysign(0, b) j``."""
    ns = x._device._ns
    a = x._data
    try:
        r = ns.tanh(a)
        re = ns.real(a)
        inf_re = ns.isinf(re)
        if _any(ns, inf_re):
            rr = ns.where(inf_re, ns.sign(re), ns.real(r))
            ri = ns.where(inf_re, ns.copysign(0.0, ns.imag(a)), ns.imag(r))
            r = _from_parts(ns, r, rr, ri)
    except Exception as exc:
        raise _translate("xp.tanh", exc) from None
    return _wrap(r, x._device, x._tags)


def trunc(x: Array, /) -> Array:
    """Round towards zero to an integer-valued number (same dtype)."""
    return unary("trunc", x, _REAL_NUMERIC)
