"""The special-case rules of the Python Array API standard 2024.12 for elementwise functions.

Each rule takes Python inputs (``float`` for floating-point dtypes, ``int`` for integer
dtypes, ``bool`` for ``bool``, ``complex`` for complex dtypes) and returns the outcomes the
standard allows for that input (a tuple: any one of them conforms), or ``None`` where the
standard leaves the result unspecified (integer overflow, division by zero of integers,
shifts by a negative amount, ...) or where it only asks for an implementation-dependent
approximation that this table does not check.

The text of every rule follows the "Special cases" sections of
``array_api_stubs/_2024_12/elementwise_functions.py`` of data-apis/array-api. Where the
standard allows an alternative ("libraries may return NaN to match Python behavior") both
outcomes are listed. Where it only asks for "an implementation-dependent approximation"
to a value the outcome is :class:`Approx`.

Integer rules return Python's exact result; the caller skips inputs whose exact result
does not fit the dtype (overflow is unspecified).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Approx",
    "Exact",
    "NaN",
    "Outcome",
    "Expect",
    "BINARY",
    "CLIP",
    "COMPLEX_BINARY",
    "COMPLEX_UNARY",
    "UNARY",
    "KINDS",
    "WRAPPING",
    "bool_grid",
    "complex_grid",
    "float_grid",
    "int_grid",
    "matches",
]


# --------------------------------------------------------------------------------------------
# outcomes
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Exact:
    """This value exactly; a zero or an infinity must carry this sign unless ``any_sign``."""

    value: float | int | bool
    any_sign: bool = False


@dataclass(frozen=True)
class Approx:
    """An implementation-dependent approximation to ``value`` (a few ulps)."""

    value: float


@dataclass(frozen=True)
class NaN:
    """A NaN; ``sign`` 0 or 1 when the standard fixes its sign bit, else ``None``."""

    sign: int | None = None


@dataclass(frozen=True)
class Sign:
    """A non-NaN result whose sign bit is ``negative`` (the standard fixes only the sign)."""

    negative: bool


Outcome = Exact | Approx | NaN | Sign
#: Allowed outcomes: a tuple of real outcomes, or of (real part, imaginary part) pairs.
Expect = tuple[Any, ...]

_ANY_NAN = (NaN(),)
_PI = math.pi


def _e(v: float | int | bool, any_sign: bool = False) -> Expect:
    return (Exact(v, any_sign),)


def _zero(negative: bool) -> Expect:
    return (Exact(-0.0 if negative else 0.0),)


def _is_int(*xs: Any) -> bool:
    return all(isinstance(x, int) for x in xs)


def _neg(x: float) -> bool:
    """Sign bit set (``-0.0`` and negative NaNs included)."""
    return math.copysign(1.0, x) < 0


def _pz(x: float) -> bool:
    return x == 0 and not _neg(x)


def _nz(x: float) -> bool:
    return x == 0 and _neg(x)


def _fin(x: float) -> bool:
    return math.isfinite(x)


def _nzfin(x: float) -> bool:
    return math.isfinite(x) and x != 0


def _odd_int(x: float) -> bool:
    return math.isfinite(x) and x == math.floor(x) and math.fmod(x, 2.0) != 0


# --------------------------------------------------------------------------------------------
# matching
# --------------------------------------------------------------------------------------------
def _match_real(got: Any, outcome: Any, dtype: np.dtype[Any]) -> bool:
    if isinstance(outcome, NaN):
        if not (isinstance(got, float) and math.isnan(got)):
            return False
        return outcome.sign is None or int(_neg(got)) == outcome.sign
    if isinstance(outcome, Sign):
        return isinstance(got, float) and not math.isnan(got) and _neg(got) == outcome.negative
    if isinstance(outcome, Approx):
        if not isinstance(got, float) or math.isnan(got):
            return False
        with np.errstate(all="ignore"):
            want = float(np.asarray(outcome.value, dtype=dtype))
        if math.isinf(want) or math.isinf(got):
            return want == got
        eps = float(np.finfo(dtype).eps)
        return abs(got - want) <= 8 * eps * max(abs(want), float(np.finfo(dtype).smallest_normal))
    assert isinstance(outcome, Exact)
    v = outcome.value
    if isinstance(v, bool) or isinstance(got, bool):
        return type(got) is type(v) and got == v
    if isinstance(v, int) and not isinstance(got, float):
        return bool(got == v)
    if not isinstance(got, float):
        return False
    with np.errstate(all="ignore"):
        want = float(np.asarray(v, dtype=dtype))  # the value rounded to the result dtype
    if math.isnan(want):
        return math.isnan(got)
    if got != want:
        return False
    if (want == 0 or math.isinf(want)) and not outcome.any_sign:
        return _neg(got) == _neg(want)
    return True


def matches(got: Any, expect: Expect, dtype: np.dtype[Any]) -> bool:
    """Whether the Python value *got* (of a result with *dtype*) is one of the allowed outcomes."""
    if dtype.kind == "c":
        real_dt = np.dtype(np.float32 if dtype == np.complex64 else np.float64)
        return any(
            _match_real(got.real, re, real_dt) and _match_real(got.imag, im, real_dt)
            for re, im in expect
        )
    return any(_match_real(got, o, dtype) for o in expect)


# --------------------------------------------------------------------------------------------
# grids of special inputs
# --------------------------------------------------------------------------------------------
def float_grid(dtype: np.dtype[Any]) -> list[float]:
    """Signed zeros, infinities, NaNs of both signs, ±1, halves, tiny and huge values."""
    fi = np.finfo(dtype)
    tiny, huge = float(fi.smallest_normal), float(fi.max)
    base = [0.0, math.inf, 1.0, 0.5, 1.5, 2.0, 2.5, 3.0, tiny, huge]
    return [math.nan, math.copysign(math.nan, -1.0)] + [v for b in base for v in (b, -b)]


def int_grid(dtype: np.dtype[Any]) -> list[int]:
    """Small values and the dtype's extremes."""
    ii = np.iinfo(dtype)
    lo, hi = int(ii.min), int(ii.max)
    vals = {lo, lo + 1, -3, -2, -1, 0, 1, 2, 3, 7, hi - 1, hi}
    return sorted(v for v in vals if lo <= v <= hi)


def bool_grid() -> list[bool]:
    """Both booleans."""
    return [False, True]


def complex_grid() -> list[complex]:
    """Every pair of special components (real, imag)."""
    comps = [0.0, -0.0, math.inf, -math.inf, math.nan, 1.0, -1.0, 2.5]
    return [complex(a, b) for a in comps for b in comps]


# --------------------------------------------------------------------------------------------
# unary rules (real floating point, integers, booleans)
# --------------------------------------------------------------------------------------------
def abs_(x: Any) -> Expect | None:
    """abs: NaN -> NaN; -0 -> +0; -infinity -> +infinity; |x| otherwise (integer minimum: unspecified)."""
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return _e(-x if x < 0 else x)  # out of range for the minimum: skipped by the caller
    if math.isnan(x):
        return _ANY_NAN
    return _e(math.fabs(x))


def acos(x: float) -> Expect | None:
    """acos: NaN, |x| > 1 -> NaN; 1 -> +0."""
    if math.isnan(x) or x > 1 or x < -1:
        return _ANY_NAN
    if x == 1:
        return _e(0.0)
    return None


def acosh(x: float) -> Expect | None:
    """acosh: NaN, x < 1 -> NaN; 1 -> +0; +infinity -> +infinity."""
    if math.isnan(x) or x < 1:
        return _ANY_NAN
    if x == 1:
        return _e(0.0)
    if x == math.inf:
        return _e(math.inf)
    return None


def asin(x: float) -> Expect | None:
    """asin: NaN, |x| > 1 -> NaN; ±0 -> ±0."""
    if math.isnan(x) or x > 1 or x < -1:
        return _ANY_NAN
    if x == 0:
        return _e(x)
    return None


def asinh(x: float) -> Expect | None:
    """asinh: NaN -> NaN; ±0 -> ±0; ±infinity -> ±infinity."""
    if math.isnan(x):
        return _ANY_NAN
    if x == 0 or math.isinf(x):
        return _e(x)
    return None


def atan(x: float) -> Expect | None:
    """atan: NaN -> NaN; ±0 -> ±0; ±infinity -> ≈ ±π/2."""
    if math.isnan(x):
        return _ANY_NAN
    if x == 0:
        return _e(x)
    if math.isinf(x):
        return (Approx(math.copysign(_PI / 2, x)),)
    return None


def atanh(x: float) -> Expect | None:
    """atanh: NaN, |x| > 1 -> NaN; ±1 -> ±infinity; ±0 -> ±0."""
    if math.isnan(x) or x < -1 or x > 1:
        return _ANY_NAN
    if x in (1.0, -1.0):
        return _e(math.copysign(math.inf, x))
    if x == 0:
        return _e(x)
    return None


def bitwise_invert(x: Any) -> Expect | None:
    """bitwise_invert: flips every bit (two's complement for signed integers; ``not`` for bool)."""
    if isinstance(x, bool):
        return _e(not x)
    return _e(~x)  # unsigned: the caller wraps to the dtype's width


def _integral(x: Any, exact: Callable[[float], float]) -> Expect | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return _e(x)  # "If x_i is already integer-valued, the result is x_i" (same dtype)
    if math.isnan(x):
        return _ANY_NAN
    if math.isinf(x) or x == 0 or x == math.floor(x):
        return _e(x)
    r = exact(x)
    return _e(r, any_sign=(r == 0))  # the sign of a zero rounded from a non-zero is not fixed


def ceil(x: Any) -> Expect | None:
    """ceil: integer-valued (±0, ±infinity included) -> itself; NaN -> NaN; else the ceiling."""
    return _integral(x, lambda v: float(math.ceil(v)))


def floor(x: Any) -> Expect | None:
    """floor: integer-valued -> itself; NaN -> NaN; else the floor."""
    return _integral(x, lambda v: float(math.floor(v)))


def trunc(x: Any) -> Expect | None:
    """trunc: integer-valued -> itself; NaN -> NaN; else rounds toward zero."""
    return _integral(x, lambda v: float(math.trunc(v)))


def round_(x: Any) -> Expect | None:
    """round: integer-valued -> itself; NaN -> NaN; halfway cases round to even."""
    return _integral(x, lambda v: float(round(v)))


def cos(x: float) -> Expect | None:
    """cos: NaN, ±infinity -> NaN; ±0 -> 1."""
    if math.isnan(x) or math.isinf(x):
        return _ANY_NAN
    if x == 0:
        return _e(1.0)
    return None


def cosh(x: float) -> Expect | None:
    """cosh: NaN -> NaN; ±0 -> 1; ±infinity -> +infinity."""
    if math.isnan(x):
        return _ANY_NAN
    if x == 0:
        return _e(1.0)
    if math.isinf(x):
        return _e(math.inf)
    return None


def exp(x: float) -> Expect | None:
    """exp: NaN -> NaN; ±0 -> 1; +infinity -> +infinity; -infinity -> +0."""
    if math.isnan(x):
        return _ANY_NAN
    if x == 0:
        return _e(1.0)
    if x == math.inf:
        return _e(math.inf)
    if x == -math.inf:
        return _e(0.0)
    return None


def expm1(x: float) -> Expect | None:
    """expm1: NaN -> NaN; ±0 -> ±0; +infinity -> +infinity; -infinity -> -1."""
    if math.isnan(x):
        return _ANY_NAN
    if x == 0 or x == math.inf:
        return _e(x)
    if x == -math.inf:
        return _e(-1.0)
    return None


def _log_family(x: float) -> Expect | None:
    if math.isnan(x) or x < 0:
        return _ANY_NAN
    if x == 0:
        return _e(-math.inf)
    if x == 1:
        return _e(0.0)
    if x == math.inf:
        return _e(math.inf)
    return None


def log(x: float) -> Expect | None:
    """log: NaN, x < 0 -> NaN; ±0 -> -infinity; 1 -> +0; +infinity -> +infinity."""
    return _log_family(x)


def log2(x: float) -> Expect | None:
    """log2: as log."""
    return _log_family(x)


def log10(x: float) -> Expect | None:
    """log10: as log."""
    return _log_family(x)


def log1p(x: float) -> Expect | None:
    """log1p: NaN, x < -1 -> NaN; -1 -> -infinity; ±0 -> ±0; +infinity -> +infinity."""
    if math.isnan(x) or x < -1:
        return _ANY_NAN
    if x == -1:
        return _e(-math.inf)
    if x == 0 or x == math.inf:
        return _e(x)
    return None


def isfinite(x: Any) -> Expect | None:
    """isfinite: False for ±infinity and NaN, True otherwise."""
    if isinstance(x, bool):
        return None
    return _e(isinstance(x, int) or math.isfinite(x))


def isinf(x: Any) -> Expect | None:
    """isinf: True for ±infinity only."""
    if isinstance(x, bool):
        return None
    return _e(not isinstance(x, int) and math.isinf(x))


def isnan(x: Any) -> Expect | None:
    """isnan: True for NaN only."""
    if isinstance(x, bool):
        return None
    return _e(not isinstance(x, int) and math.isnan(x))


def logical_not(x: bool) -> Expect | None:
    """logical_not of a bool."""
    return _e(not x)


def negative(x: Any) -> Expect | None:
    """negative: -x (NaN -> NaN; integer minimum: unspecified)."""
    if isinstance(x, bool):
        return None
    if not isinstance(x, int) and math.isnan(x):
        return _ANY_NAN
    return _e(-x)


def positive(x: Any) -> Expect | None:
    """positive: x."""
    if isinstance(x, bool):
        return None
    if not isinstance(x, int) and math.isnan(x):
        return _ANY_NAN
    return _e(x)


def conj(x: Any) -> Expect | None:
    """conj of a real number is itself (2024.12 added real input)."""
    return positive(x) if not isinstance(x, int) else None


def real(x: Any) -> Expect | None:
    """real of a real floating-point number is itself."""
    return positive(x) if not isinstance(x, int) else None


def reciprocal(x: float) -> Expect | None:
    """reciprocal: as ``divide(1.0, x)``."""
    return divide(1.0, x)


def sign(x: Any) -> Expect | None:
    """sign: x < 0 -> -1; ±0 -> 0; x > 0 -> +1; NaN -> NaN."""
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return _e((x > 0) - (x < 0))
    if math.isnan(x):
        return _ANY_NAN
    if x == 0:
        return _e(0.0, any_sign=True)
    return _e(1.0 if x > 0 else -1.0)


def signbit(x: float) -> Expect | None:
    """signbit: whether the sign bit is set (-0, negatives, -infinity, NaNs with sign bit 1)."""
    return _e(_neg(x))


def sin(x: float) -> Expect | None:
    """sin: NaN, ±infinity -> NaN; ±0 -> ±0."""
    if math.isnan(x) or math.isinf(x):
        return _ANY_NAN
    if x == 0:
        return _e(x)
    return None


def sinh(x: float) -> Expect | None:
    """sinh: NaN -> NaN; ±0 -> ±0; ±infinity -> ±infinity."""
    if math.isnan(x):
        return _ANY_NAN
    if x == 0 or math.isinf(x):
        return _e(x)
    return None


def sqrt(x: float) -> Expect | None:
    """sqrt: NaN, x < 0 -> NaN; ±0 -> ±0; +infinity -> +infinity; correctly rounded otherwise."""
    if math.isnan(x) or x < 0:
        return _ANY_NAN
    return _e(math.sqrt(x) if x != 0 else x)


def square(x: Any) -> Expect | None:
    """square: as ``multiply(x, x)``."""
    if isinstance(x, bool):
        return None
    return multiply(x, x)


def tan(x: float) -> Expect | None:
    """tan: NaN, ±infinity -> NaN; ±0 -> ±0."""
    return sin(x)


def tanh(x: float) -> Expect | None:
    """tanh: NaN -> NaN; ±0 -> ±0; ±infinity -> ±1."""
    if math.isnan(x):
        return _ANY_NAN
    if x == 0:
        return _e(x)
    if math.isinf(x):
        return _e(math.copysign(1.0, x))
    return None


# --------------------------------------------------------------------------------------------
# binary rules
# --------------------------------------------------------------------------------------------
def add(x1: Any, x2: Any) -> Expect | None:
    """add: IEEE 754 sum with the standard's NaN, infinity and signed-zero cases."""
    if _is_int(x1, x2):
        return None if isinstance(x1, bool) or isinstance(x2, bool) else _e(x1 + x2)
    if math.isnan(x1) or math.isnan(x2):
        return _ANY_NAN
    if math.isinf(x1) and math.isinf(x2) and x1 != x2:
        return _ANY_NAN
    if x1 == 0 and x2 == 0:
        return _zero(_nz(x1) and _nz(x2))
    if x1 == 0:
        return _e(x2)
    if x2 == 0:
        return _e(x1)
    if _fin(x1) and _fin(x2) and x1 == -x2:
        return _e(0.0)
    return _e(x1 + x2)  # IEEE sum in double, rounded once to the dtype (innocuous double rounding)


def subtract(x1: Any, x2: Any) -> Expect | None:
    """subtract: ``x1 + (-x2)`` under the rules of add."""
    if _is_int(x1, x2):
        return None if isinstance(x1, bool) or isinstance(x2, bool) else _e(x1 - x2)
    return add(x1, -x2)


def multiply(x1: Any, x2: Any) -> Expect | None:
    """multiply: NaN and 0·infinity -> NaN; signs multiply; IEEE product otherwise."""
    if _is_int(x1, x2):
        return None if isinstance(x1, bool) or isinstance(x2, bool) else _e(x1 * x2)
    if math.isnan(x1) or math.isnan(x2):
        return _ANY_NAN
    if (math.isinf(x1) and x2 == 0) or (x1 == 0 and math.isinf(x2)):
        return _ANY_NAN
    negative = _neg(x1) != _neg(x2)
    if math.isinf(x1) or math.isinf(x2):
        return _e(-math.inf if negative else math.inf)
    p = x1 * x2
    if p == 0:
        return _zero(negative)
    return _e(p)


def divide(x1: Any, x2: Any) -> Expect | None:
    """divide: the standard's table of NaN, zero and infinity cases; IEEE quotient otherwise."""
    if _is_int(x1, x2):
        return None  # integer true division is implementation-dependent
    if math.isnan(x1) or math.isnan(x2):
        return _ANY_NAN
    if (math.isinf(x1) and math.isinf(x2)) or (x1 == 0 and x2 == 0):
        return _ANY_NAN
    negative = _neg(x1) != _neg(x2)
    if x1 == 0:
        return _zero(negative)
    if x2 == 0 or math.isinf(x1):
        return _e(-math.inf if negative else math.inf)
    if math.isinf(x2):
        return _zero(negative)
    q = x1 / x2
    return _zero(negative) if q == 0 else _e(q)


def floor_divide(x1: Any, x2: Any) -> Expect | None:
    """floor_divide: floor of the quotient; the standard's NaN, zero and infinity cases.

    ``±infinity // finite`` may be NaN and ``finite // ∓infinity`` may be ``-1.0`` (Python
    behaviour), as the standard's notes allow.
    """
    if _is_int(x1, x2):
        if isinstance(x1, bool) or isinstance(x2, bool) or x2 == 0:
            return None  # integer division by zero is unspecified
        return _e(x1 // x2)
    if math.isnan(x1) or math.isnan(x2):
        return _ANY_NAN
    if (math.isinf(x1) and math.isinf(x2)) or (x1 == 0 and x2 == 0):
        return _ANY_NAN
    negative = _neg(x1) != _neg(x2)
    if x1 == 0:
        return _zero(negative)
    if x2 == 0:
        return _e(-math.inf if negative else math.inf)
    if math.isinf(x1):
        return (Exact(-math.inf if negative else math.inf), NaN())
    if math.isinf(x2):
        return (Exact(-0.0), Exact(-1.0)) if negative else _e(0.0)
    q = x1 / x2
    if math.isinf(q):
        return _e(q)
    # floor(divide(x1, x2)) or Python's divmod-based result; a zero result carries the sign
    # rule (same signs -> positive, different signs -> negative)
    allowed = {float(math.floor(q)), float(x1 // x2)}
    return tuple(Exact(v) if v != 0 else Exact(-0.0 if negative else 0.0) for v in sorted(allowed))


def remainder(x1: Any, x2: Any) -> Expect | None:
    """remainder: Python's ``%`` (sign of the divisor); the standard's NaN, zero, infinity cases."""
    if _is_int(x1, x2):
        if isinstance(x1, bool) or isinstance(x2, bool) or x2 == 0:
            return None
        return _e(x1 % x2)
    if math.isnan(x1) or math.isnan(x2):
        return _ANY_NAN
    if math.isinf(x1) or (x1 == 0 and x2 == 0) or x2 == 0:
        return _ANY_NAN
    if x1 == 0:
        return _zero(_neg(x2))
    if math.isinf(x2):
        return _e(x1) if _neg(x1) == _neg(x2) else _e(x2)
    return _e(x1 % x2)


def pow_(x1: Any, x2: Any) -> Expect | None:
    """pow: the standard's C99-like table (1**NaN = 1, x**±0 = 1, (-0)**odd = -0, ...)."""
    if _is_int(x1, x2):
        if isinstance(x1, bool) or isinstance(x2, bool) or x2 < 0:
            return None  # negative integer exponents are unspecified
        if abs(x1) > 1 and x2 > 64:
            return None  # overflows every integer dtype (unspecified)
        return _e(x1**x2)
    if x1 == 1:
        return None if math.isnan(x2) else _e(1.0)  # 1 ** NaN is not a listed case
    if math.isnan(x2):
        return _ANY_NAN
    if x2 == 0:
        return _e(1.0)
    if math.isnan(x1):
        return _ANY_NAN
    if math.isinf(x2):
        a = abs(x1)
        if a == 1:
            return _e(1.0)
        big = a > 1
        return _e(math.inf if big == (x2 > 0) else 0.0)
    if x1 == math.inf:
        return _e(math.inf if x2 > 0 else 0.0)
    if x1 == -math.inf:
        odd = _odd_int(x2)
        if x2 > 0:
            return _e(-math.inf if odd else math.inf)
        return _e(-0.0 if odd else 0.0)
    if _pz(x1):
        return _e(0.0 if x2 > 0 else math.inf)
    if _nz(x1):
        odd = _odd_int(x2)
        if x2 > 0:
            return _e(-0.0 if odd else 0.0)
        return _e(-math.inf if odd else math.inf)
    if x1 < 0 and x2 != math.floor(x2):
        return _ANY_NAN
    return None


def atan2(x1: float, x2: float) -> Expect | None:
    """atan2: the standard's quadrant table for zeros and infinities."""
    if math.isnan(x1) or math.isnan(x2):
        return _ANY_NAN
    if x1 > 0 and x2 == 0:
        return (Approx(_PI / 2),)
    if x1 < 0 and x2 == 0:
        return (Approx(-_PI / 2),)
    if x1 == 0:
        if x2 > 0 or _pz(x2):
            return _e(x1)
        return (Approx(math.copysign(_PI, x1)),)
    if _fin(x1) and x2 == math.inf:
        return _zero(x1 < 0)
    if _fin(x1) and x2 == -math.inf:
        return (Approx(math.copysign(_PI, x1)),)
    if math.isinf(x1) and _fin(x2):
        return (Approx(math.copysign(_PI / 2, x1)),)
    if math.isinf(x1) and math.isinf(x2):
        return (Approx(math.copysign(_PI / 4 if x2 > 0 else 3 * _PI / 4, x1)),)
    return (Approx(math.atan2(x1, x2)),)


def copysign(x1: float, x2: float) -> Expect | None:
    """copysign: |x1| with the sign bit of x2 (a NaN x1 gives a NaN with that sign bit)."""
    negative = _neg(x2)
    if math.isnan(x1):
        return (NaN(int(negative)),)
    return _e(-math.fabs(x1) if negative else math.fabs(x1))


def hypot(x1: float, x2: float) -> Expect | None:
    """hypot: any infinity -> +infinity (even with NaN); ±0 -> |other|; NaN -> NaN."""
    if math.isinf(x1) or math.isinf(x2):
        return _e(math.inf)
    if x1 == 0:
        return _ANY_NAN if math.isnan(x2) else _e(math.fabs(x2))
    if x2 == 0:
        return _ANY_NAN if math.isnan(x1) else _e(math.fabs(x1))
    if math.isnan(x1) or math.isnan(x2):
        return _ANY_NAN
    return (Approx(math.hypot(x1, x2)),)


def logaddexp(x1: float, x2: float) -> Expect | None:
    """logaddexp: NaN -> NaN; +infinity with a non-NaN -> +infinity."""
    if math.isnan(x1) or math.isnan(x2):
        return _ANY_NAN
    if x1 == math.inf or x2 == math.inf:
        return _e(math.inf)
    if x1 == -math.inf and x2 == -math.inf:
        return None  # not a listed special case
    m = max(x1, x2)
    return (Approx(m + math.log1p(math.exp(-abs(x1 - x2)))),)


def maximum(x1: Any, x2: Any) -> Expect | None:
    """maximum: NaN propagates; the order of signed zeros is unspecified."""
    if _is_int(x1, x2):
        return None if isinstance(x1, bool) or isinstance(x2, bool) else _e(max(x1, x2))
    if math.isnan(x1) or math.isnan(x2):
        return _ANY_NAN
    if x1 == 0 and x2 == 0:
        return _e(0.0, any_sign=True)
    return _e(max(x1, x2))


def minimum(x1: Any, x2: Any) -> Expect | None:
    """minimum: NaN propagates; the order of signed zeros is unspecified."""
    if _is_int(x1, x2):
        return None if isinstance(x1, bool) or isinstance(x2, bool) else _e(min(x1, x2))
    if math.isnan(x1) or math.isnan(x2):
        return _ANY_NAN
    if x1 == 0 and x2 == 0:
        return _e(0.0, any_sign=True)
    return _e(min(x1, x2))


def nextafter(x1: float, x2: float) -> Expect | None:
    """nextafter: NaN -> NaN; -0 towards +0 -> +0; +0 towards -0 -> -0."""
    if math.isnan(x1) or math.isnan(x2):
        return _ANY_NAN
    if x1 == 0 and x2 == 0:
        return _e(x2)
    return None


def equal(x1: Any, x2: Any) -> Expect | None:
    """equal: IEEE equality (NaN unequal to everything, +0 == -0)."""
    return _e(bool(x1 == x2))


def not_equal(x1: Any, x2: Any) -> Expect | None:
    """not_equal: IEEE inequality."""
    return _e(bool(x1 != x2))


def less(x1: Any, x2: Any) -> Expect | None:
    """less: IEEE ordering (False with NaN)."""
    return None if isinstance(x1, bool) else _e(bool(x1 < x2))


def less_equal(x1: Any, x2: Any) -> Expect | None:
    """less_equal: IEEE ordering."""
    return None if isinstance(x1, bool) else _e(bool(x1 <= x2))


def greater(x1: Any, x2: Any) -> Expect | None:
    """greater: IEEE ordering."""
    return None if isinstance(x1, bool) else _e(bool(x1 > x2))


def greater_equal(x1: Any, x2: Any) -> Expect | None:
    """greater_equal: IEEE ordering."""
    return None if isinstance(x1, bool) else _e(bool(x1 >= x2))


def logical_and(x1: bool, x2: bool) -> Expect | None:
    """logical_and of bools."""
    return _e(x1 and x2)


def logical_or(x1: bool, x2: bool) -> Expect | None:
    """logical_or of bools."""
    return _e(x1 or x2)


def logical_xor(x1: bool, x2: bool) -> Expect | None:
    """logical_xor of bools."""
    return _e(x1 != x2)


def bitwise_and(x1: Any, x2: Any) -> Expect | None:
    """bitwise_and (two's complement)."""
    return _e(x1 and x2) if isinstance(x1, bool) else _e(x1 & x2)


def bitwise_or(x1: Any, x2: Any) -> Expect | None:
    """bitwise_or (two's complement)."""
    return _e(x1 or x2) if isinstance(x1, bool) else _e(x1 | x2)


def bitwise_xor(x1: Any, x2: Any) -> Expect | None:
    """bitwise_xor (two's complement)."""
    return _e(x1 != x2) if isinstance(x1, bool) else _e(x1 ^ x2)


def bitwise_left_shift(x1: int, x2: int) -> Expect | None:
    """bitwise_left_shift: appends x2 zeros (bits shifted out are lost; the caller wraps)."""
    if x2 < 0:
        return None  # the standard requires shift amounts >= 0
    return _e(x1 << x2)


def bitwise_right_shift(x1: int, x2: int) -> Expect | None:
    """bitwise_right_shift: arithmetic shift (floor division by a power of two)."""
    if x2 < 0:
        return None
    return _e(x1 >> x2)


def clip(x: Any, lo: Any, hi: Any) -> Expect | None:
    """clip: NaN in x, min or max -> NaN; else ``min(max(x, lo), hi)`` (lo <= hi only)."""
    if _is_int(x, lo, hi):
        return None if lo > hi else _e(min(max(x, lo), hi))
    if math.isnan(x) or math.isnan(lo) or math.isnan(hi):
        return _ANY_NAN
    if lo > hi:
        return None
    r = min(max(x, lo), hi)
    return _e(r, any_sign=(r == 0))


# --------------------------------------------------------------------------------------------
# complex rules (a few functions; the rest is implementation-dependent or left unchecked)
# --------------------------------------------------------------------------------------------
def _c(re: Any, im: Any) -> tuple[Any, Any]:
    def one(v: Any) -> Any:
        if isinstance(v, (Exact, Approx, NaN, Sign)):
            return v
        if isinstance(v, float) and math.isnan(v):
            return NaN()
        return Exact(v)

    return (one(re), one(im))


_ANY_ZERO = Exact(0.0, any_sign=True)
_ANY_INF = Exact(math.inf, any_sign=True)


def c_abs(z: complex) -> Expect | None:
    """abs of complex: infinity in either part -> +infinity; NaN -> NaN; a zero part -> |other|."""
    a, b = z.real, z.imag
    if math.isinf(a) or math.isinf(b):
        return _e(math.inf)
    if math.isnan(a) or math.isnan(b):
        return _ANY_NAN
    if a == 0:
        return _e(math.fabs(b))
    if b == 0:
        return _e(math.fabs(a))
    return (Approx(math.hypot(a, b)),)


def c_isnan(z: complex) -> Expect | None:
    """isnan of complex: a NaN part."""
    return _e(math.isnan(z.real) or math.isnan(z.imag))


def c_isinf(z: complex) -> Expect | None:
    """isinf of complex: an infinite part."""
    return _e(math.isinf(z.real) or math.isinf(z.imag))


def c_isfinite(z: complex) -> Expect | None:
    """isfinite of complex: both parts finite."""
    return _e(math.isfinite(z.real) and math.isfinite(z.imag))


def c_conj(z: complex) -> Expect | None:
    """conj: negates the imaginary part."""
    return (_c(z.real, -z.imag),)


def c_real(z: complex) -> Expect | None:
    """real: the real part."""
    return _e(z.real) if not math.isnan(z.real) else _ANY_NAN


def c_imag(z: complex) -> Expect | None:
    """imag: the imaginary part."""
    return _e(z.imag) if not math.isnan(z.imag) else _ANY_NAN


def c_round(z: complex) -> Expect | None:
    """round of complex: parts rounded independently (half to even)."""
    re, im = round_(z.real), round_(z.imag)
    assert re is not None and im is not None
    return ((re[0], im[0]),)


def c_sign(z: complex) -> Expect | None:
    """sign of complex: 0 for a zero; NaN + NaN j for a NaN part (others: not checked)."""
    a, b = z.real, z.imag
    if a == 0 and b == 0:
        return ((_ANY_ZERO, _ANY_ZERO),)
    if math.isnan(a) or math.isnan(b):
        return ((NaN(), NaN()),)
    if math.isfinite(a) and math.isfinite(b):
        r = math.hypot(a, b)
        return ((Approx(a / r) if a else _ANY_ZERO, Approx(b / r) if b else _ANY_ZERO),)
    return None


def _conj_sym(rule: Callable[[float, float], Expect | None], z: complex) -> Expect | None:
    """Apply a rule written for ``b >= +0`` (or NaN) to any ``z`` through ``f(conj z) = conj f(z)``."""
    a, b = z.real, z.imag
    if math.isnan(b) or not _neg(b):
        return rule(a, b)
    r = rule(a, -b)
    if r is None:
        return None
    out = []
    for re, im in r:
        if isinstance(im, Exact) and not isinstance(im.value, bool):
            im = Exact(-im.value, im.any_sign)
        elif isinstance(im, Approx):
            im = Approx(-im.value)
        out.append((re, im))
    return tuple(out)


def _sqrt_upper(a: float, b: float) -> Expect | None:
    if a == 0 and _pz(b):
        return (_c(0.0, 0.0),)
    if b == math.inf:
        return (_c(math.inf, math.inf),)
    if math.isfinite(a) and math.isnan(b):
        return (_c(math.nan, math.nan),)
    # Erratum: the 2024.12 table gives NaN + NaN j for -infinity + bj and +0 + infinity j for
    # +infinity + bj (b > 0 finite). The principal square root (and C99 csqrt, G.6.4.2) gives
    # +0 + infinity j and +infinity + 0j respectively. Both readings are accepted.
    if a == -math.inf and _fin(b) and b > 0:
        return (_c(math.nan, math.nan), _c(0.0, math.inf))
    if a == math.inf and _fin(b) and b > 0:
        return (_c(0.0, math.inf), _c(math.inf, 0.0))
    if a == -math.inf and math.isnan(b):
        return ((NaN(), _ANY_INF),)
    if a == math.inf and math.isnan(b):
        return (_c(math.inf, math.nan),)
    if math.isnan(a):
        return (_c(math.nan, math.nan),)
    return None


def c_sqrt(z: complex) -> Expect | None:
    """sqrt of complex: the standard's table (upper half-plane), conj-symmetric below."""
    return _conj_sym(_sqrt_upper, z)


def _log_upper(a: float, b: float) -> Expect | None:
    if _nz(a) and _pz(b):
        return ((Exact(-math.inf), Approx(_PI)),)
    if _pz(a) and _pz(b):
        return (_c(-math.inf, 0.0),)
    if _fin(a) and b == math.inf:
        return ((Exact(math.inf), Approx(_PI / 2)),)
    if _fin(a) and math.isnan(b):
        return (_c(math.nan, math.nan),)
    if a == -math.inf and _fin(b) and b > 0:
        return ((Exact(math.inf), Approx(_PI)),)
    if a == math.inf and _fin(b) and b > 0:
        return (_c(math.inf, 0.0),)
    if a == -math.inf and b == math.inf:
        return ((Exact(math.inf), Approx(3 * _PI / 4)),)
    if a == math.inf and b == math.inf:
        return ((Exact(math.inf), Approx(_PI / 4)),)
    if math.isinf(a) and math.isnan(b):
        return (_c(math.inf, math.nan),)
    if math.isnan(a) and _fin(b):
        return (_c(math.nan, math.nan),)
    if math.isnan(a) and b == math.inf:
        return (_c(math.inf, math.nan),)
    if math.isnan(a) and math.isnan(b):
        return (_c(math.nan, math.nan),)
    return None


def c_log(z: complex) -> Expect | None:
    """log of complex: the standard's table (upper half-plane), conj-symmetric below."""
    return _conj_sym(_log_upper, z)


def _exp_upper(a: float, b: float) -> Expect | None:
    if a == 0 and _pz(b):
        return (_c(1.0, 0.0),)
    if _fin(a) and (b == math.inf or math.isnan(b)):
        return (_c(math.nan, math.nan),)
    if a == math.inf and _pz(b):
        return (_c(math.inf, 0.0),)
    if a == -math.inf and _fin(b):
        return (_c(math.copysign(0.0, math.cos(b)), math.copysign(0.0, math.sin(b))),)
    if a == math.inf and _nzfin(b):
        return (_c(math.copysign(math.inf, math.cos(b)), math.copysign(math.inf, math.sin(b))),)
    if a == -math.inf and (b == math.inf or math.isnan(b)):
        return ((_ANY_ZERO, _ANY_ZERO),)
    if a == math.inf and (b == math.inf or math.isnan(b)):
        return ((_ANY_INF, NaN()),)
    if math.isnan(a) and _pz(b):
        return (_c(math.nan, 0.0),)
    if math.isnan(a) and (b != 0 or math.isnan(b)):
        return (_c(math.nan, math.nan),)
    return None


def c_exp(z: complex) -> Expect | None:
    """exp of complex: the standard's table (upper half-plane), conj-symmetric below."""
    return _conj_sym(_exp_upper, z)


def c_equal(z1: complex, z2: complex) -> Expect | None:
    """equal of complex: both parts equal; any NaN -> False."""
    return _e(bool(z1 == z2))


def c_not_equal(z1: complex, z2: complex) -> Expect | None:
    """not_equal of complex: either part unequal; any NaN -> True."""
    return _e(bool(z1 != z2))


def c_add(z1: complex, z2: complex) -> Expect | None:
    """add of complex: the real rules applied to each part independently."""
    re, im = add(z1.real, z2.real), add(z1.imag, z2.imag)
    assert re is not None and im is not None
    return ((re[0], im[0]),)


def c_subtract(z1: complex, z2: complex) -> Expect | None:
    """subtract of complex: the real rules applied to each part independently."""
    re, im = subtract(z1.real, z2.real), subtract(z1.imag, z2.imag)
    assert re is not None and im is not None
    return ((re[0], im[0]),)


# --------------------------------------------------------------------------------------------
# tables: function name -> rule, and the dtype kinds each function is checked on
# --------------------------------------------------------------------------------------------
UNARY: dict[str, Callable[[Any], Expect | None]] = {
    "abs": abs_,
    "acos": acos,
    "acosh": acosh,
    "asin": asin,
    "asinh": asinh,
    "atan": atan,
    "atanh": atanh,
    "bitwise_invert": bitwise_invert,
    "ceil": ceil,
    "conj": conj,
    "cos": cos,
    "cosh": cosh,
    "exp": exp,
    "expm1": expm1,
    "floor": floor,
    "isfinite": isfinite,
    "isinf": isinf,
    "isnan": isnan,
    "log": log,
    "log1p": log1p,
    "log2": log2,
    "log10": log10,
    "logical_not": logical_not,
    "negative": negative,
    "positive": positive,
    "real": real,
    "reciprocal": reciprocal,
    "round": round_,
    "sign": sign,
    "signbit": signbit,
    "sin": sin,
    "sinh": sinh,
    "sqrt": sqrt,
    "square": square,
    "tan": tan,
    "tanh": tanh,
    "trunc": trunc,
}

BINARY: dict[str, Callable[[Any, Any], Expect | None]] = {
    "add": add,
    "atan2": atan2,
    "bitwise_and": bitwise_and,
    "bitwise_left_shift": bitwise_left_shift,
    "bitwise_or": bitwise_or,
    "bitwise_right_shift": bitwise_right_shift,
    "bitwise_xor": bitwise_xor,
    "copysign": copysign,
    "divide": divide,
    "equal": equal,
    "floor_divide": floor_divide,
    "greater": greater,
    "greater_equal": greater_equal,
    "hypot": hypot,
    "less": less,
    "less_equal": less_equal,
    "logaddexp": logaddexp,
    "logical_and": logical_and,
    "logical_or": logical_or,
    "logical_xor": logical_xor,
    "maximum": maximum,
    "minimum": minimum,
    "multiply": multiply,
    "nextafter": nextafter,
    "not_equal": not_equal,
    "pow": pow_,
    "remainder": remainder,
    "subtract": subtract,
}

CLIP: Callable[[Any, Any, Any], Expect | None] = clip

COMPLEX_UNARY: dict[str, Callable[[complex], Expect | None]] = {
    "abs": c_abs,
    "conj": c_conj,
    "exp": c_exp,
    "imag": c_imag,
    "isfinite": c_isfinite,
    "isinf": c_isinf,
    "isnan": c_isnan,
    "log": c_log,
    "real": c_real,
    "round": c_round,
    "sign": c_sign,
    "sqrt": c_sqrt,
}

COMPLEX_BINARY: dict[str, Callable[[complex, complex], Expect | None]] = {
    "add": c_add,
    "equal": c_equal,
    "not_equal": c_not_equal,
    "subtract": c_subtract,
}

_FLOAT_ONLY = "f"
_REAL = "iuf"
_INT = "iu"
#: dtype kinds ('b' bool, 'i'/'u' integers, 'f' real floating, 'c' complex) checked per function.
KINDS: dict[str, str] = {
    "abs": _REAL + "c",
    "acos": _FLOAT_ONLY,
    "acosh": _FLOAT_ONLY,
    "asin": _FLOAT_ONLY,
    "asinh": _FLOAT_ONLY,
    "atan": _FLOAT_ONLY,
    "atanh": _FLOAT_ONLY,
    "bitwise_invert": "b" + _INT,
    "ceil": _REAL,
    "conj": "fc",
    "cos": _FLOAT_ONLY,
    "cosh": _FLOAT_ONLY,
    "exp": "fc",
    "expm1": _FLOAT_ONLY,
    "floor": _REAL,
    "imag": "c",
    "isfinite": _REAL + "c",
    "isinf": _REAL + "c",
    "isnan": _REAL + "c",
    "log": "fc",
    "log1p": _FLOAT_ONLY,
    "log2": _FLOAT_ONLY,
    "log10": _FLOAT_ONLY,
    "logical_not": "b",
    "negative": _REAL,
    "positive": _REAL,
    "real": "fc",
    "reciprocal": _FLOAT_ONLY,
    "round": _REAL + "c",
    "sign": _REAL + "c",
    "signbit": _FLOAT_ONLY,
    "sin": _FLOAT_ONLY,
    "sinh": _FLOAT_ONLY,
    "sqrt": "fc",
    "square": _REAL,
    "tan": _FLOAT_ONLY,
    "tanh": _FLOAT_ONLY,
    "trunc": _REAL,
    "add": _REAL + "c",
    "atan2": _FLOAT_ONLY,
    "bitwise_and": "b" + _INT,
    "bitwise_left_shift": _INT,
    "bitwise_or": "b" + _INT,
    "bitwise_right_shift": _INT,
    "bitwise_xor": "b" + _INT,
    "copysign": _FLOAT_ONLY,
    "divide": _FLOAT_ONLY,
    "equal": "b" + _REAL + "c",
    "floor_divide": _REAL,
    "greater": _REAL,
    "greater_equal": _REAL,
    "hypot": _FLOAT_ONLY,
    "less": _REAL,
    "less_equal": _REAL,
    "logaddexp": _FLOAT_ONLY,
    "logical_and": "b",
    "logical_or": "b",
    "logical_xor": "b",
    "maximum": _REAL,
    "minimum": _REAL,
    "multiply": _REAL,
    "nextafter": _FLOAT_ONLY,
    "not_equal": "b" + _REAL + "c",
    "pow": _REAL,
    "remainder": _REAL,
    "subtract": _REAL + "c",
    "clip": _REAL,
}

#: Integer results of these functions wrap to the dtype's width (bits shifted or flipped out
#: are lost); the other integer results are checked only when they fit the dtype.
WRAPPING: frozenset[str] = frozenset(
    {
        "bitwise_and",
        "bitwise_invert",
        "bitwise_left_shift",
        "bitwise_or",
        "bitwise_right_shift",
        "bitwise_xor",
    }
)
