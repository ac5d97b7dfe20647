"""Hypothesis properties: hpcai gives NumPy's results, on every device it is run on.

Inputs come from ``hypothesis.extra.array_api.make_strategies_namespace(hpcai)`` (so the
strategies exercise hpcai's own ``asarray``/``full``/``__setitem__``), are moved to the
device under test with ``to_device``, and every result is compared with NumPy's on the same
data: dtype, shape and values (NaN-equal). The functions delegate to NumPy, so most
comparisons are exact; linear algebra and FFT use a dtype-dependent tolerance.

Where the standard prescribes a special case that NumPy does not follow (``inf // 2`` is
``+inf``, ``(-0.0) ** 0.5`` is ``+0``), the inputs here stay clear of it: those cases are
checked against the standard by the official suite (``ci/conformance.sh``).
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.array_api import make_strategies_namespace

import hpcai as xp

xps = make_strategies_namespace(xp, api_version="2024.12")

DEVICES = ["numpy:cpu", "emulated:0"]
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
#: per-function elementwise tests are many; each gets fewer examples
FEW = settings(SETTINGS, max_examples=12)

pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.parametrize("device", DEVICES),
]

SHAPES = xps.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
NONEMPTY = xps.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
FLOAT = xps.floating_dtypes()
INEXACT = xps.floating_dtypes() | xps.complex_dtypes()
NUMERIC = xps.numeric_dtypes()
REAL = xps.real_dtypes()
INTEGER = xps.integer_dtypes() | xps.unsigned_integer_dtypes()


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def host(a: Any) -> np.ndarray:
    """A NumPy copy of an hpcai Array, wherever it lives."""
    assert isinstance(a, xp.Array), f"expected an hpcai Array, got {type(a).__name__}"
    return np.asarray(a.to_device("numpy:cpu"))


def on(a: Any, device: str) -> Any:
    """The drawn array (made on the default device) moved to *device*."""
    return a.to_device(device)


def same(
    got: Any,
    want: Any,
    device: str,
    *,
    rtol: float = 0.0,
    atol: float = 0.0,
    check_dtype: bool = True,
) -> None:
    """``got`` (an hpcai Array on *device*) has NumPy's ``want``: dtype, shape, values."""
    assert isinstance(got, xp.Array), f"expected an hpcai Array, got {type(got).__name__}"
    assert str(got.device) == device, f"result on {got.device}, expected {device}"
    g, w = host(got), np.asarray(want)
    assert g.shape == w.shape, f"shape {g.shape} != NumPy's {w.shape}"
    if check_dtype:
        assert g.dtype == w.dtype, f"dtype {g.dtype} != NumPy's {w.dtype}"
    if rtol == 0.0 and atol == 0.0:
        np.testing.assert_array_equal(g, w)
    else:
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True)


def tol(dtype: Any) -> float:
    """Relative tolerance for linear algebra and FFT in *dtype*'s precision."""
    return 2e-3 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-9


def quiet(fn: Callable[[], Any]) -> Any:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn()


@st.composite
def arrays_on(draw: Any, dtype: Any, shape: Any = SHAPES, **kw: Any) -> Any:
    """An hpcai array drawn by the hypothesis strategies (default device)."""
    dt = draw(dtype) if isinstance(dtype, st.SearchStrategy) else dtype
    sh = draw(shape) if isinstance(shape, st.SearchStrategy) else shape
    return draw(xps.arrays(dt, sh, **kw))


def axes_for(ndim: int) -> st.SearchStrategy[Any]:
    """``None``, one axis (possibly negative) or a tuple of distinct axes."""
    if ndim == 0:
        return st.just(None)
    return st.none() | st.integers(-ndim, ndim - 1) | xps.valid_tuple_axes(ndim)


# --------------------------------------------------------------------------------------------
# elementwise
# --------------------------------------------------------------------------------------------
def _expm1(a: np.ndarray) -> np.ndarray:
    """NumPy's expm1, except on the real axis of complex input: expm1(x ± 0j) = expm1(x) ± 0j.

    NumPy computes it as exp(x)·cis(0) - 1, which overflows to inf + NaN j for large x and
    rounds differently; the standard's cases (±0 + 0j -> 0 + 0j, +inf + 0j -> +inf + 0j) and
    exactness say the imaginary part stays a zero.
    """
    out = np.expm1(a)
    if a.dtype.kind == "c":
        on_axis = (a.imag == 0) & np.isfinite(a.real)
        out = np.where(on_axis, np.expm1(a.real) + 0j, out).astype(a.dtype)
        out.imag = np.where(on_axis, a.imag, out.imag)
        # the standard: expm1(-inf + bj) = -1 + 0·cis(b) (the zero's sign unspecified where b
        # is not finite); NumPy's complex64 formula rounds it to -1.0000001 (found by hypothesis)
        out = np.where(np.isneginf(a.real), np.asarray(-1 + 0j, dtype=a.dtype), out).astype(a.dtype)
    return out


UNARY: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "abs": (np.abs, NUMERIC),
    "acos": (np.arccos, INEXACT),
    "acosh": (np.arccosh, INEXACT),
    "asin": (np.arcsin, INEXACT),
    "asinh": (np.arcsinh, INEXACT),
    "atan": (np.arctan, INEXACT),
    "atanh": (np.arctanh, INEXACT),
    "bitwise_invert": (np.invert, INTEGER | xps.boolean_dtypes()),
    "ceil": (np.ceil, REAL),
    "conj": (np.conj, NUMERIC),
    "cos": (np.cos, INEXACT),
    "cosh": (np.cosh, INEXACT),
    "exp": (np.exp, INEXACT),
    "expm1": (_expm1, INEXACT),
    "floor": (np.floor, REAL),
    "imag": (np.imag, xps.complex_dtypes()),
    "isfinite": (np.isfinite, NUMERIC),
    "isinf": (np.isinf, NUMERIC),
    "isnan": (np.isnan, NUMERIC),
    "log": (np.log, INEXACT),
    "log1p": (np.log1p, INEXACT),
    "log2": (np.log2, INEXACT),
    "log10": (np.log10, INEXACT),
    "logical_not": (np.logical_not, xps.boolean_dtypes()),
    "negative": (np.negative, NUMERIC),
    "positive": (np.positive, NUMERIC),
    "real": (np.real, NUMERIC),
    "reciprocal": (np.reciprocal, INEXACT),
    "round": (np.round, NUMERIC),
    "sign": (np.sign, NUMERIC),
    "signbit": (np.signbit, FLOAT),
    "sin": (np.sin, INEXACT),
    "sinh": (np.sinh, INEXACT),
    "sqrt": (np.sqrt, INEXACT),
    "square": (np.square, NUMERIC),
    "tan": (np.tan, INEXACT),
    "tanh": (np.tanh, INEXACT),
    "trunc": (np.trunc, REAL),
}


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_expm1_of_minus_infinity_is_minus_one(device: str, dtype: str) -> None:
    """expm1(-inf + 77j) = -1 + 0j exactly (NumPy's complex64 gives -1.0000001; hypothesis
    found the difference)."""
    a = np.array([complex(-np.inf, 77.0), complex(-np.inf, -3.0)], dtype=dtype)
    got = host(xp.expm1(xp.asarray(a, device=device)))
    assert got.real.tolist() == [-1.0, -1.0] and got.imag.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("fname", sorted(UNARY))
@FEW
@given(data=st.data())
def test_unary(device: str, fname: str, data: Any) -> None:
    ref, dtypes = UNARY[fname]
    if fname == "sign":
        # complex sign of an infinite value: the standard says "as if x / |x|" (NaN), NumPy
        # gives a unit vector; the special cases are checked by the official suite.
        dt = data.draw(dtypes, label="dtype")
        a = data.draw(arrays_on(dt, elements=_finite(dt)), label="x")
    else:
        a = data.draw(arrays_on(dtypes), label="x")
    x = on(a, device)
    # complex sign is x / |x|: NumPy scales differently, so the last bit may differ
    rtol = (
        4 * float(np.finfo(a.dtype).eps)
        if fname == "sign" and a.dtype in (xp.complex64, xp.complex128)
        else 0.0
    )
    same(quiet(lambda: getattr(xp, fname)(x)), quiet(lambda: ref(host(a))), device, rtol=rtol)


def _finite(dt: Any) -> Any:
    return (
        xps.from_dtype(dt, allow_nan=False, allow_infinity=False)
        if np.dtype(dt).kind in "fc"
        else None
    )


#: name -> (NumPy reference, dtypes, restriction of x2's elements, no infinities)
BINARY: dict[str, tuple[Callable[[Any, Any], Any], Any]] = {
    "add": (np.add, NUMERIC),
    "atan2": (np.arctan2, FLOAT),
    "bitwise_and": (np.bitwise_and, INTEGER | xps.boolean_dtypes()),
    "bitwise_left_shift": (np.left_shift, INTEGER),
    "bitwise_or": (np.bitwise_or, INTEGER | xps.boolean_dtypes()),
    "bitwise_right_shift": (np.right_shift, INTEGER),
    "bitwise_xor": (np.bitwise_xor, INTEGER | xps.boolean_dtypes()),
    "copysign": (np.copysign, FLOAT),
    "divide": (np.divide, INEXACT),
    "equal": (np.equal, xps.scalar_dtypes()),
    "floor_divide": (np.floor_divide, REAL),
    "greater": (np.greater, REAL),
    "greater_equal": (np.greater_equal, REAL),
    "hypot": (np.hypot, FLOAT),
    "less": (np.less, REAL),
    "less_equal": (np.less_equal, REAL),
    "logaddexp": (np.logaddexp, FLOAT),
    "logical_and": (np.logical_and, xps.boolean_dtypes()),
    "logical_or": (np.logical_or, xps.boolean_dtypes()),
    "logical_xor": (np.logical_xor, xps.boolean_dtypes()),
    "maximum": (np.maximum, REAL),
    "minimum": (np.minimum, REAL),
    "multiply": (np.multiply, NUMERIC),
    "nextafter": (np.nextafter, FLOAT),
    "not_equal": (np.not_equal, xps.scalar_dtypes()),
    "pow": (np.power, NUMERIC),
    "remainder": (np.remainder, REAL),
    "subtract": (np.subtract, NUMERIC),
}


def _x2_elements(fname: str, dt: Any) -> Any:
    """Elements of the second operand that keep the comparison within the standard's scope."""
    d = np.dtype(dt)
    if fname in ("bitwise_left_shift", "bitwise_right_shift"):
        return st.integers(0, d.itemsize * 8 - 1)  # negative or too-wide shifts are unspecified
    if d.kind in "iu" and fname in ("floor_divide", "remainder"):
        return xps.from_dtype(dt).filter(lambda v: v != 0)  # integer division by zero: unspecified
    if d.kind in "iu" and fname == "pow":
        return st.integers(0, 5)  # negative integer exponents are unspecified
    if fname == "floor_divide":
        return _finite(dt)  # inf cases: the standard's +/-inf (checked by the official suite)
    return None


def _x1_elements(fname: str, dt: Any) -> Any:
    return _finite(dt) if fname == "floor_divide" else None


@pytest.mark.parametrize("fname", sorted(BINARY))
@FEW
@given(data=st.data())
def test_binary_broadcasting(device: str, fname: str, data: Any) -> None:
    ref, dtypes = BINARY[fname]
    dt = data.draw(dtypes, label="dtype")
    shapes = data.draw(xps.mutually_broadcastable_shapes(2, max_dims=3, max_side=3), label="shapes")
    a = data.draw(
        xps.arrays(dt, shapes.input_shapes[0], elements=_x1_elements(fname, dt)), label="x1"
    )
    b = data.draw(
        xps.arrays(dt, shapes.input_shapes[1], elements=_x2_elements(fname, dt)), label="x2"
    )
    got = quiet(lambda: getattr(xp, fname)(on(a, device), on(b, device)))
    same(got, quiet(lambda: ref(host(a), host(b))), device)
    assert got.shape == shapes.result_shape


@pytest.mark.parametrize("fname", sorted(BINARY))
@FEW
@given(data=st.data())
def test_binary_python_scalar(device: str, fname: str, data: Any) -> None:
    """A Python scalar operand takes the array's dtype, on either side."""
    ref, dtypes = BINARY[fname]
    dt = data.draw(dtypes, label="dtype")
    shape = data.draw(SHAPES, label="shape")
    el1, el2 = _x1_elements(fname, dt), _x2_elements(fname, dt)
    a = data.draw(xps.arrays(dt, shape, elements=el1), label="x1")
    b = data.draw(xps.arrays(dt, shape, elements=el2), label="x2")
    s1 = data.draw(el1 if el1 is not None else xps.from_dtype(dt), label="scalar x1")
    s2 = data.draw(el2 if el2 is not None else xps.from_dtype(dt), label="scalar x2")
    an, bn = host(a), host(b)
    # the scalar as a full array of the array's dtype (NumPy's scalar fast paths are not the reference)
    s1n, s2n = np.full(shape, s1, dtype=an.dtype), np.full(shape, s2, dtype=an.dtype)
    fn = getattr(xp, fname)
    same(quiet(lambda: fn(on(a, device), s2)), quiet(lambda: ref(an, s2n)), device)
    same(quiet(lambda: fn(s1, on(b, device))), quiet(lambda: ref(s1n, bn)), device)


OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": operator.truediv,
    "remainder": operator.mod,
    "less": operator.lt,
    "greater_equal": operator.ge,
    "equal": operator.eq,
    "not_equal": operator.ne,
}


@SETTINGS
@given(data=st.data())
def test_operators_and_inplace_match_functions(device: str, data: Any) -> None:
    fname = data.draw(st.sampled_from(sorted(OPERATORS)), label="op")
    dt = data.draw(
        REAL if fname in ("less", "greater_equal", "remainder") else INEXACT, label="dtype"
    )
    shape = data.draw(SHAPES, label="shape")
    a, b = data.draw(xps.arrays(dt, shape)), data.draw(xps.arrays(dt, shape))
    x, y = on(a, device), on(b, device)
    same(
        quiet(lambda: OPERATORS[fname](x, y)), host(quiet(lambda: getattr(xp, fname)(x, y))), device
    )
    if fname in ("add", "subtract", "multiply"):
        z = xp.asarray(x, copy=True)
        op = {"add": operator.iadd, "subtract": operator.isub, "multiply": operator.imul}[fname]
        z = quiet(lambda: op(z, y))
        # against NumPy's in-place operator: for 0-d complex64 NumPy's out-of-place product
        # takes its scalar path and may differ from the in-place ufunc loop in the last bit
        ref = np.array(host(a), copy=True)
        same(z, quiet(lambda: op(ref, host(b))), device)


@SETTINGS
@given(data=st.data())
def test_type_promotion_same_kind(device: str, data: Any) -> None:
    """Mixed dtypes of one kind promote as the standard's table (= NumPy's within a kind)."""
    kind = data.draw(st.sampled_from(["signed", "unsigned", "float", "complex", "float-complex"]))
    pick = {
        "signed": xps.integer_dtypes(),
        "unsigned": xps.unsigned_integer_dtypes(),
        "float": FLOAT,
        "complex": xps.complex_dtypes(),
        "float-complex": INEXACT,
    }[kind]
    d1, d2 = data.draw(pick), data.draw(pick)
    a, b = data.draw(xps.arrays(d1, (3,))), data.draw(xps.arrays(d2, (3,)))
    assert xp.result_type(d1, d2) == np.result_type(np.dtype(d1), np.dtype(d2))
    same(
        quiet(lambda: xp.add(on(a, device), on(b, device))),
        quiet(lambda: host(a) + host(b)),
        device,
    )
    same(
        quiet(lambda: xp.multiply(on(a, device), on(b, device))),
        quiet(lambda: host(a) * host(b)),
        device,
    )


@SETTINGS
@given(data=st.data())
def test_clip(device: str, data: Any) -> None:
    dt = data.draw(REAL, label="dtype")
    a = data.draw(xps.arrays(dt, NONEMPTY), label="x")
    lo = data.draw(xps.from_dtype(dt, allow_nan=False), label="min")
    hi = data.draw(xps.from_dtype(dt, allow_nan=False).filter(lambda v: v >= lo), label="max")
    x, xn = on(a, device), host(a)
    same(
        xp.clip(x, min=lo, max=hi),
        np.clip(xn, np.asarray(lo, xn.dtype), np.asarray(hi, xn.dtype)),
        device,
    )
    same(xp.clip(x, max=hi), np.minimum(xn, np.asarray(hi, xn.dtype)), device)
    same(xp.clip(x), xn, device)
    lo_arr = on(
        data.draw(xps.arrays(dt, x.shape, elements=xps.from_dtype(dt, allow_nan=False))), device
    )
    same(xp.clip(x, min=lo_arr), np.maximum(xn, host(lo_arr)), device)


# --------------------------------------------------------------------------------------------
# reductions
# --------------------------------------------------------------------------------------------
REDUCTIONS: dict[str, tuple[Callable[..., Any], Any]] = {
    "sum": (np.sum, NUMERIC),
    "prod": (np.prod, NUMERIC),
    "mean": (np.mean, INEXACT),
    "min": (np.min, REAL),
    "max": (np.max, REAL),
    "all": (np.all, xps.scalar_dtypes()),
    "any": (np.any, xps.scalar_dtypes()),
    "count_nonzero": (np.count_nonzero, xps.scalar_dtypes()),
}


@pytest.mark.parametrize("fname", sorted(REDUCTIONS))
@SETTINGS
@given(data=st.data())
def test_reduction(device: str, fname: str, data: Any) -> None:
    ref, dtypes = REDUCTIONS[fname]
    shape = data.draw(NONEMPTY if fname in ("min", "max") else SHAPES, label="shape")
    a = data.draw(arrays_on(dtypes, shape), label="x")
    axis = data.draw(axes_for(a.ndim), label="axis")
    keepdims = data.draw(st.booleans(), label="keepdims")
    want = quiet(lambda: np.asarray(ref(host(a), axis=axis, keepdims=keepdims)))
    if fname == "count_nonzero":
        want = want.astype(np.int64)
    got = quiet(lambda: getattr(xp, fname)(on(a, device), axis=axis, keepdims=keepdims))
    exact = np.dtype(a.dtype).kind not in "fc" or fname in (
        "min",
        "max",
        "all",
        "any",
        "count_nonzero",
    )
    same(got, want, device, rtol=0.0 if exact else tol(a.dtype) * 10, atol=0.0 if exact else 1e-6)


@pytest.mark.parametrize("fname", ["std", "var"])
@SETTINGS
@given(data=st.data())
def test_std_var(device: str, fname: str, data: Any) -> None:
    a = data.draw(
        arrays_on(
            FLOAT, NONEMPTY, elements={"allow_nan": False, "min_value": -1e3, "max_value": 1e3}
        )
    )
    axis = data.draw(axes_for(a.ndim), label="axis")
    correction = data.draw(st.sampled_from([0, 1, 0.5]), label="correction")
    keepdims = data.draw(st.booleans(), label="keepdims")
    want = quiet(lambda: getattr(np, fname)(host(a), axis=axis, ddof=correction, keepdims=keepdims))
    got = quiet(
        lambda: getattr(xp, fname)(
            on(a, device), axis=axis, correction=correction, keepdims=keepdims
        )
    )
    same(got, want, device, rtol=tol(a.dtype), atol=1e-3 if a.dtype == xp.float32 else 1e-9)


@pytest.mark.parametrize("fname", ["cumulative_sum", "cumulative_prod"])
@SETTINGS
@given(data=st.data())
def test_cumulative(device: str, fname: str, data: Any) -> None:
    a = data.draw(
        arrays_on(NUMERIC, xps.array_shapes(min_dims=1, max_dims=3, max_side=4)), label="x"
    )
    axis = data.draw(
        st.integers(-a.ndim, a.ndim - 1) if a.ndim > 1 else st.none() | st.just(0) | st.just(-1)
    )
    include_initial = data.draw(st.booleans(), label="include_initial")
    got = quiet(
        lambda: getattr(xp, fname)(on(a, device), axis=axis, include_initial=include_initial)
    )
    want = quiet(lambda: getattr(np, fname)(host(a), axis=axis, include_initial=include_initial))
    exact = np.dtype(a.dtype).kind not in "fc"
    same(got, want, device, rtol=0.0 if exact else tol(a.dtype) * 10, atol=0.0 if exact else 1e-6)


@SETTINGS
@given(data=st.data())
def test_diff(device: str, data: Any) -> None:
    a = data.draw(
        arrays_on(NUMERIC, xps.array_shapes(min_dims=1, max_dims=3, max_side=4)), label="x"
    )
    axis = data.draw(st.integers(-a.ndim, a.ndim - 1), label="axis")
    n = data.draw(st.integers(0, 3), label="n")
    assume(n <= a.shape[axis] or n == 0)
    with_pre = data.draw(st.booleans(), label="prepend")
    pre_shape = tuple(1 if i == axis % a.ndim else s for i, s in enumerate(a.shape))
    pre = data.draw(xps.arrays(a.dtype, pre_shape), label="prepend") if with_pre else None
    kw: dict[str, Any] = {"prepend": on(pre, device)} if pre is not None else {}
    got = quiet(lambda: xp.diff(on(a, device), axis=axis, n=n, **kw))
    want = quiet(
        lambda: np.diff(
            host(a), axis=axis, n=n, **({"prepend": host(pre)} if pre is not None else {})
        )
    )
    same(got, want, device)


# --------------------------------------------------------------------------------------------
# indexing
# --------------------------------------------------------------------------------------------
@SETTINGS
@given(data=st.data())
def test_basic_indexing(device: str, data: Any) -> None:
    a = data.draw(arrays_on(xps.scalar_dtypes(), SHAPES), label="x")
    idx = data.draw(xps.indices(a.shape, allow_newaxis=True), label="index")
    same(on(a, device)[idx], host(a)[idx], device)


@SETTINGS
@given(data=st.data())
def test_integer_array_indexing(device: str, data: Any) -> None:
    a = data.draw(arrays_on(xps.scalar_dtypes(), NONEMPTY), label="x")
    n = a.shape[0]
    ints = st.integers(-n, n - 1)
    i0 = data.draw(
        xps.arrays(xp.int64, xps.array_shapes(min_dims=1, max_dims=2, max_side=4), elements=ints)
    )
    x, xn = on(a, device), host(a)
    same(x[on(i0, device)], xn[host(i0)], device)
    if a.ndim >= 2:
        m = a.shape[1]
        i1 = data.draw(xps.arrays(xp.int64, i0.shape, elements=st.integers(-m, m - 1)))
        same(x[on(i0, device), on(i1, device)], xn[host(i0), host(i1)], device)
        same(x[on(i0, device), ...], xn[host(i0), ...], device)


@SETTINGS
@given(data=st.data())
def test_boolean_mask_indexing(device: str, data: Any) -> None:
    a = data.draw(arrays_on(xps.scalar_dtypes(), NONEMPTY), label="x")
    k = data.draw(st.integers(1, a.ndim), label="mask dims")
    mask = data.draw(xps.arrays(xp.bool, a.shape[:k]), label="mask")
    same(on(a, device)[on(mask, device)], host(a)[host(mask)], device)
    same(on(a, device)[on(mask, device), ...], host(a)[host(mask), ...], device)


@SETTINGS
@given(data=st.data())
def test_setitem(device: str, data: Any) -> None:
    dt = data.draw(xps.scalar_dtypes(), label="dtype")
    a = data.draw(xps.arrays(dt, NONEMPTY), label="x")
    idx = data.draw(xps.indices(a.shape, allow_newaxis=False), label="index")
    x, xn = xp.asarray(on(a, device), copy=True), host(a).copy()
    target_shape = xn[idx].shape
    if data.draw(st.booleans(), label="scalar value"):
        v = data.draw(xps.from_dtype(dt), label="value")
        x[idx] = v
        xn[idx] = v
    else:
        # a trailing part of the target shape, some sides replaced by 1: broadcasts into it
        k = data.draw(st.integers(0, len(target_shape)), label="leading dims dropped")
        vshape = tuple(1 if data.draw(st.booleans()) else n for n in target_shape[k:])
        v = data.draw(xps.arrays(dt, vshape), label="value")
        x[idx] = on(v, device)
        xn[idx] = host(v)
    same(x, xn, device)
    # boolean-mask assignment
    mask = data.draw(xps.arrays(xp.bool, a.shape), label="mask")
    s = data.draw(xps.from_dtype(dt), label="fill")
    x[on(mask, device)] = s
    xn[host(mask)] = s
    same(x, xn, device)


@SETTINGS
@given(data=st.data())
def test_take_and_take_along_axis(device: str, data: Any) -> None:
    a = data.draw(arrays_on(xps.scalar_dtypes(), NONEMPTY), label="x")
    axis = data.draw(st.integers(-a.ndim, a.ndim - 1), label="axis")
    n = a.shape[axis]
    ind = data.draw(
        xps.arrays(xp.int64, st.integers(0, 5).map(lambda k: (k,)), elements=st.integers(-n, n - 1))
    )
    same(
        xp.take(on(a, device), on(ind, device), axis=axis),
        np.take(host(a), host(ind), axis=axis),
        device,
    )
    along_shape = tuple(
        data.draw(st.integers(0, 4)) if i == axis % a.ndim else s for i, s in enumerate(a.shape)
    )
    ind2 = data.draw(xps.arrays(xp.int64, along_shape, elements=st.integers(-n, n - 1)))
    same(
        xp.take_along_axis(on(a, device), on(ind2, device), axis=axis),
        np.take_along_axis(host(a), host(ind2), axis=axis),
        device,
    )


# --------------------------------------------------------------------------------------------
# set, sort, search
# --------------------------------------------------------------------------------------------
def _np_unique(xn: np.ndarray) -> Any:
    """NumPy's unique with the standard's NaN semantics (every NaN is distinct)."""
    return np.unique(
        xn, return_index=True, return_inverse=True, return_counts=True, equal_nan=False
    )


@SETTINGS
@given(data=st.data())
def test_unique_functions(device: str, data: Any) -> None:
    a = data.draw(arrays_on(REAL, SHAPES), label="x")
    xn = host(a)
    x = on(a, device)
    values, index, inverse, counts = _np_unique(xn)
    ua = xp.unique_all(x)
    same(ua.values, values, device)
    same(ua.indices, index.astype(np.int64), device)
    same(ua.inverse_indices, inverse.reshape(xn.shape).astype(np.int64), device)
    same(ua.counts, counts.astype(np.int64), device)
    uc = xp.unique_counts(x)
    same(uc.values, values, device)
    same(uc.counts, counts.astype(np.int64), device)
    ui = xp.unique_inverse(x)
    same(ui.values, values, device)
    same(ui.inverse_indices, inverse.reshape(xn.shape).astype(np.int64), device)
    same(xp.unique_values(x), values, device)
    # the defining identity: values[inverse] reproduces x
    same(xp.take(ui.values, xp.reshape(ui.inverse_indices, (-1,))), xn.reshape(-1), device)


@SETTINGS
@given(data=st.data())
def test_sort_argsort_stable(device: str, data: Any) -> None:
    dt = data.draw(REAL, label="dtype")
    lo = 0 if np.dtype(dt).kind == "u" else -3
    small = xps.from_dtype(dt, min_value=lo, max_value=3)  # many ties (NaN excluded by the bounds)
    a = data.draw(xps.arrays(dt, NONEMPTY, elements=small), label="x")
    axis = data.draw(st.integers(-a.ndim, a.ndim - 1), label="axis")
    descending = data.draw(st.booleans(), label="descending")
    x, xn = on(a, device), host(a)
    order = np.argsort(xn, axis=axis, kind="stable")
    if descending:
        # stable descending: larger first, ties keep their original order
        flipped = np.flip(xn, axis=axis)
        n = xn.shape[axis]
        order = n - 1 - np.flip(np.argsort(flipped, axis=axis, kind="stable"), axis=axis)
    same(
        xp.argsort(x, axis=axis, descending=descending, stable=True), order.astype(np.int64), device
    )
    same(
        xp.sort(x, axis=axis, descending=descending, stable=True),
        np.take_along_axis(xn, order, axis=axis),
        device,
    )


@SETTINGS
@given(data=st.data())
def test_searchsorted(device: str, data: Any) -> None:
    dt = data.draw(REAL, label="dtype")
    a = data.draw(
        xps.arrays(
            dt,
            xps.array_shapes(min_dims=1, max_dims=1, max_side=8),
            elements=xps.from_dtype(dt, allow_nan=False),
        )
    )
    v = data.draw(xps.arrays(dt, SHAPES, elements=xps.from_dtype(dt, allow_nan=False)), label="x2")
    side = data.draw(st.sampled_from(["left", "right"]), label="side")
    sorted_np = np.sort(host(a))
    x1 = xp.asarray(sorted_np, device=device)
    same(
        xp.searchsorted(x1, on(v, device), side=side),
        np.searchsorted(sorted_np, host(v), side=side).astype(np.int64),
        device,
    )
    # with a sorter
    perm = np.argsort(host(a), kind="stable")
    got = xp.searchsorted(
        on(a, device), on(v, device), side=side, sorter=xp.asarray(perm, device=device)
    )
    same(got, np.searchsorted(host(a), host(v), side=side, sorter=perm).astype(np.int64), device)


@pytest.mark.parametrize("fname", ["argmax", "argmin"])
@SETTINGS
@given(data=st.data())
def test_argmax_argmin(device: str, fname: str, data: Any) -> None:
    dt = data.draw(REAL, label="dtype")
    a = data.draw(xps.arrays(dt, NONEMPTY, elements=xps.from_dtype(dt, allow_nan=False)), label="x")
    axis = data.draw(st.none() | st.integers(-a.ndim, a.ndim - 1), label="axis")
    keepdims = data.draw(st.booleans(), label="keepdims")
    want = getattr(np, fname)(host(a), axis=axis, keepdims=keepdims)
    same(
        getattr(xp, fname)(on(a, device), axis=axis, keepdims=keepdims),
        np.asarray(want, dtype=np.int64),
        device,
    )


@SETTINGS
@given(data=st.data())
def test_nonzero_where_count(device: str, data: Any) -> None:
    a = data.draw(
        arrays_on(xps.scalar_dtypes(), xps.array_shapes(min_dims=1, max_dims=3, max_side=4)),
        label="x",
    )
    got = xp.nonzero(on(a, device))
    want = np.nonzero(host(a))
    assert isinstance(got, tuple) and len(got) == len(want)
    for g, w in zip(got, want):
        same(g, w.astype(np.int64), device)
    shapes = data.draw(xps.mutually_broadcastable_shapes(3, max_dims=3, max_side=3), label="shapes")
    dt = data.draw(xps.scalar_dtypes(), label="dtype")
    c = data.draw(xps.arrays(xp.bool, shapes.input_shapes[0]), label="condition")
    x1 = data.draw(xps.arrays(dt, shapes.input_shapes[1]), label="x1")
    x2 = data.draw(xps.arrays(dt, shapes.input_shapes[2]), label="x2")
    same(
        xp.where(on(c, device), on(x1, device), on(x2, device)),
        np.where(host(c), host(x1), host(x2)),
        device,
    )
    s = data.draw(xps.from_dtype(dt), label="scalar")
    same(
        xp.where(on(c, device), on(x1, device), s),
        np.where(host(c), host(x1), np.asarray(s, dtype=dt)),
        device,
    )


# --------------------------------------------------------------------------------------------
# linear algebra
# --------------------------------------------------------------------------------------------
LA_DTYPES = st.sampled_from([xp.float32, xp.float64])
UNIT = st.floats(-1, 1, width=32)


@st.composite
def well_conditioned(draw: Any, batch: bool = True, spd: bool = False) -> np.ndarray:
    """A diagonally dominant (or symmetric positive definite) matrix, possibly batched."""
    dt = draw(LA_DTYPES)
    n = draw(st.integers(1, 4))
    bshape = draw(st.sampled_from([(), (2,), (2, 1)])) if batch else ()
    m = host(draw(xps.arrays(dt, bshape + (n, n), elements=UNIT)))
    eye = np.eye(n, dtype=m.dtype)
    if spd:
        return (m @ np.swapaxes(m, -1, -2) + n * eye).astype(m.dtype)
    return (m + 2 * n * eye).astype(m.dtype)


@SETTINGS
@given(data=st.data())
def test_matmul_tensordot_vecdot(device: str, data: Any) -> None:
    dt = data.draw(st.sampled_from([xp.float32, xp.float64, xp.complex128]), label="dtype")
    n, k, m = (data.draw(st.integers(1, 4)) for _ in range(3))
    batch = data.draw(xps.mutually_broadcastable_shapes(2, max_dims=2, max_side=3), label="batch")
    a = data.draw(xps.arrays(dt, batch.input_shapes[0] + (n, k), elements=UNIT))
    b = data.draw(xps.arrays(dt, batch.input_shapes[1] + (k, m), elements=UNIT))
    same(
        xp.matmul(on(a, device), on(b, device)), host(a) @ host(b), device, rtol=tol(dt), atol=1e-5
    )
    same(on(a, device) @ on(b, device), host(a) @ host(b), device, rtol=tol(dt), atol=1e-5)
    v = data.draw(xps.arrays(dt, (k,), elements=UNIT))
    same(
        xp.matmul(on(a, device), on(v, device)), host(a) @ host(v), device, rtol=tol(dt), atol=1e-5
    )
    # tensordot over the last axis of a and the first of b (2-D)
    a2, b2 = host(a).reshape(-1, n, k)[0], host(b).reshape(-1, k, m)[0]
    same(
        xp.tensordot(xp.asarray(a2, device=device), xp.asarray(b2, device=device), axes=1),
        np.tensordot(a2, b2, axes=1),
        device,
        rtol=tol(dt),
        atol=1e-5,
    )
    same(
        xp.tensordot(
            xp.asarray(a2, device=device), xp.asarray(a2, device=device), axes=([0, 1], [0, 1])
        ),
        np.tensordot(a2, a2, axes=([0, 1], [0, 1])),
        device,
        rtol=tol(dt),
        atol=1e-5,
    )
    # vecdot conjugates its first argument
    c = data.draw(xps.arrays(dt, host(a).shape, elements=UNIT))
    want = np.sum(np.conj(host(a)) * host(c), axis=-1)
    same(xp.vecdot(on(a, device), on(c, device)), want, device, rtol=tol(dt), atol=1e-5)


@SETTINGS
@given(data=st.data())
def test_linalg_solve_inv_det(device: str, data: Any) -> None:
    a = data.draw(well_conditioned())
    x = xp.asarray(a, device=device)
    r = tol(a.dtype)
    same(xp.linalg.inv(x), np.linalg.inv(a), device, rtol=r, atol=r)
    same(xp.linalg.det(x), np.linalg.det(a), device, rtol=r)
    sd = xp.linalg.slogdet(x)
    ws, wl = np.linalg.slogdet(a)
    same(sd.sign, ws, device)
    same(sd.logabsdet, wl, device, rtol=r, atol=r)
    b = host(data.draw(xps.arrays(a.dtype, a.shape[:-1] + (2,), elements=UNIT)))
    sol = xp.linalg.solve(x, xp.asarray(b, device=device))
    same(sol, np.linalg.solve(a, b), device, rtol=r, atol=r)
    # the solution solves the system
    np.testing.assert_allclose(a @ host(sol), b, rtol=r, atol=r * 10)
    same(xp.linalg.matrix_power(x, 3), np.linalg.matrix_power(a, 3), device, rtol=r, atol=r * 100)
    same(xp.linalg.trace(x), np.trace(a, axis1=-2, axis2=-1), device, rtol=r, atol=r)
    same(xp.linalg.diagonal(x, offset=0), np.diagonal(a, axis1=-2, axis2=-1), device)
    same(xp.linalg.matrix_rank(x), np.linalg.matrix_rank(a), device)


@SETTINGS
@given(data=st.data())
def test_linalg_cholesky_eigh(device: str, data: Any) -> None:
    a = data.draw(well_conditioned(spd=True))
    x = xp.asarray(a, device=device)
    r = tol(a.dtype)
    upper = data.draw(st.booleans(), label="upper")
    same(
        xp.linalg.cholesky(x, upper=upper),
        np.linalg.cholesky(a, upper=upper),
        device,
        rtol=r,
        atol=r,
    )
    w, v = xp.linalg.eigh(x)
    same(w, np.linalg.eigvalsh(a), device, rtol=r, atol=r * 10)
    same(xp.linalg.eigvalsh(x), np.linalg.eigvalsh(a), device, rtol=r, atol=r * 10)
    # A v = v diag(w), v orthonormal
    vn, wn = host(v), host(w)
    np.testing.assert_allclose(a @ vn, vn * wn[..., None, :], rtol=r * 10, atol=r * 100)
    eye = np.broadcast_to(np.eye(a.shape[-1]), a.shape)
    np.testing.assert_allclose(np.swapaxes(vn, -1, -2) @ vn, eye, atol=r * 100)


@SETTINGS
@given(data=st.data())
def test_linalg_qr_svd_norms(device: str, data: Any) -> None:
    dt = data.draw(LA_DTYPES, label="dtype")
    shape = data.draw(st.sampled_from([(3, 2), (2, 3), (4, 4), (2, 3, 2)]), label="shape")
    a = host(data.draw(xps.arrays(dt, shape, elements=UNIT)))
    x = xp.asarray(a, device=device)
    r = tol(dt)
    q, rr = xp.linalg.qr(x)
    qn, rn = host(q), host(rr)
    np.testing.assert_allclose(qn @ rn, a, rtol=r * 10, atol=r * 10)
    assert np.allclose(np.triu(rn), rn)
    same(q, np.linalg.qr(a)[0], device, rtol=r, atol=r * 10)
    u, s, vh = xp.linalg.svd(x, full_matrices=False)
    np.testing.assert_allclose(
        (host(u) * host(s)[..., None, :]) @ host(vh), a, rtol=r * 10, atol=r * 10
    )
    same(s, np.linalg.svd(a, compute_uv=False), device, rtol=r, atol=r * 10)
    same(xp.linalg.svdvals(x), np.linalg.svd(a, compute_uv=False), device, rtol=r, atol=r * 10)
    cutoff = max(a.shape[-2:]) * float(np.finfo(a.dtype).eps)  # the standard's default rtol
    same(xp.linalg.pinv(x), np.linalg.pinv(a, rtol=cutoff), device, rtol=r * 100, atol=r * 100)
    for ordv in (None, 1, 2, math.inf, -math.inf, 0):
        want = np.linalg.norm(a.reshape(-1), ord=ordv if ordv is not None else 2)
        same(
            xp.linalg.vector_norm(x, ord=2 if ordv is None else ordv),
            np.asarray(want, dtype=dt),
            device,
            rtol=r,
            atol=r,
        )
    for ordm in ("fro", "nuc", 1, -1, 2, math.inf):
        want = np.linalg.norm(a, ord=ordm, axis=(-2, -1))
        same(
            xp.linalg.matrix_norm(x, ord=ordm),
            np.asarray(want, dtype=dt),
            device,
            rtol=r * 10,
            atol=r,
        )


@SETTINGS
@given(data=st.data())
def test_linalg_outer_cross(device: str, data: Any) -> None:
    dt = data.draw(LA_DTYPES, label="dtype")
    a = host(data.draw(xps.arrays(dt, st.integers(1, 4).map(lambda k: (k,)), elements=UNIT)))
    b = host(data.draw(xps.arrays(dt, st.integers(1, 4).map(lambda k: (k,)), elements=UNIT)))
    same(
        xp.linalg.outer(xp.asarray(a, device=device), xp.asarray(b, device=device)),
        np.outer(a, b),
        device,
        rtol=tol(dt),
    )
    c = host(data.draw(xps.arrays(dt, (2, 3), elements=UNIT)))
    d = host(data.draw(xps.arrays(dt, (2, 3), elements=UNIT)))
    same(
        xp.linalg.cross(xp.asarray(c, device=device), xp.asarray(d, device=device)),
        np.cross(c, d),
        device,
        rtol=tol(dt),
        atol=1e-6,
    )


# --------------------------------------------------------------------------------------------
# FFT
# --------------------------------------------------------------------------------------------
NORMS = st.sampled_from(["backward", "ortho", "forward"])


@SETTINGS
@given(data=st.data())
def test_fft_ifft(device: str, data: Any) -> None:
    dt = data.draw(xps.complex_dtypes(), label="dtype")
    width: Literal[64, 128] = 64 if dt == xp.complex64 else 128
    elements = st.complex_numbers(
        max_magnitude=10, allow_nan=False, allow_infinity=False, width=width
    )
    a = data.draw(
        xps.arrays(dt, xps.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=elements)
    )
    norm = data.draw(NORMS, label="norm")
    axis = data.draw(st.integers(-a.ndim, a.ndim - 1), label="axis")
    n = data.draw(st.none() | st.integers(1, 6), label="n")
    x, xn = on(a, device), host(a)
    r = tol(dt)
    f = xp.fft.fft(x, n=n, axis=axis, norm=norm)
    same(f, np.fft.fft(xn, n=n, axis=axis, norm=norm), device, rtol=r, atol=r * 10)
    same(
        xp.fft.ifft(x, n=n, axis=axis, norm=norm),
        np.fft.ifft(xn, n=n, axis=axis, norm=norm),
        device,
        rtol=r,
        atol=r * 10,
    )
    # round trip
    same(
        xp.fft.ifft(xp.fft.fft(x, axis=axis, norm=norm), axis=axis, norm=norm),
        xn,
        device,
        rtol=r * 10,
        atol=r * 100,
    )
    same(xp.fft.fftn(x, norm=norm), np.fft.fftn(xn, norm=norm), device, rtol=r, atol=r * 100)
    same(xp.fft.ifftn(xp.fft.fftn(x, norm=norm), norm=norm), xn, device, rtol=r * 10, atol=r * 100)
    axes = data.draw(xps.valid_tuple_axes(a.ndim, min_size=1), label="axes")
    same(xp.fft.fftshift(x, axes=axes), np.fft.fftshift(xn, axes=axes), device)
    same(xp.fft.ifftshift(x, axes=axes), np.fft.ifftshift(xn, axes=axes), device)
    same(xp.fft.fftshift(x), np.fft.fftshift(xn), device)


@SETTINGS
@given(data=st.data())
def test_rfft_irfft_hfft(device: str, data: Any) -> None:
    dt = data.draw(FLOAT, label="dtype")
    a = data.draw(
        xps.arrays(
            dt,
            xps.array_shapes(min_dims=1, max_dims=2, min_side=2, max_side=6),
            elements={
                "allow_nan": False,
                "allow_infinity": False,
                "min_value": -10,
                "max_value": 10,
            },
        )
    )
    norm = data.draw(NORMS, label="norm")
    x, xn = on(a, device), host(a)
    r = tol(dt)
    n = xn.shape[-1]
    f = xp.fft.rfft(x, norm=norm)
    same(f, np.fft.rfft(xn, norm=norm), device, rtol=r, atol=r * 10)
    same(xp.fft.irfft(f, n=n, norm=norm), xn, device, rtol=r * 10, atol=r * 100)
    same(
        xp.fft.irfft(f, n=n, norm=norm),
        np.fft.irfft(np.fft.rfft(xn, norm=norm), n=n, norm=norm),
        device,
        rtol=r,
        atol=r * 10,
    )
    same(xp.fft.rfftn(x, norm=norm), np.fft.rfftn(xn, norm=norm), device, rtol=r, atol=r * 100)
    axes = tuple(range(xn.ndim))  # the standard: axes must be given with s
    same(
        xp.fft.irfftn(xp.fft.rfftn(x, norm=norm), s=xn.shape, axes=axes, norm=norm),
        xn,
        device,
        rtol=r * 10,
        atol=r * 100,
    )
    same(xp.fft.ihfft(x, norm=norm), np.fft.ihfft(xn, norm=norm), device, rtol=r, atol=r * 10)
    same(
        xp.fft.hfft(xp.fft.ihfft(x, norm=norm), n=n, norm=norm),
        xn,
        device,
        rtol=r * 10,
        atol=r * 100,
    )


@SETTINGS
@given(
    n=st.integers(1, 12),
    d=st.sampled_from([1.0, 0.5, 2.5]),
    dtype=st.sampled_from([None, xp.float32, xp.float64]),
)
def test_fftfreq(device: str, n: int, d: float, dtype: Any) -> None:
    want_dt = np.float64 if dtype is None else dtype
    same(
        xp.fft.fftfreq(n, d=d, dtype=dtype, device=device),
        np.fft.fftfreq(n, d=d).astype(want_dt),
        device,
        rtol=1e-6,
    )
    same(
        xp.fft.rfftfreq(n, d=d, dtype=dtype, device=device),
        np.fft.rfftfreq(n, d=d).astype(want_dt),
        device,
        rtol=1e-6,
    )


# --------------------------------------------------------------------------------------------
# creation
# --------------------------------------------------------------------------------------------
@SETTINGS
@given(
    start=st.integers(-20, 20),
    stop=st.none() | st.integers(-20, 20),
    step=st.integers(-4, 4).filter(lambda s: s != 0),
    dtype=st.sampled_from([None, xp.int8, xp.int32, xp.int64, xp.float32, xp.float64]),
)
def test_arange_integers(device: str, start: int, stop: int | None, step: int, dtype: Any) -> None:
    want = np.arange(start, stop, step) if stop is not None else np.arange(start)
    assume(
        dtype is None
        or np.dtype(dtype).kind == "f"
        or (want.size == 0 or (want.min() >= -128 and want.max() <= 127))
    )
    args = (start, stop) if stop is not None else (start,)
    kw = {"step": step} if stop is not None else {}
    got = xp.arange(*args, dtype=dtype, device=device, **kw)
    same(got, want.astype(np.int64 if dtype is None else dtype), device)


@SETTINGS
@given(
    start=st.floats(-10, 10),
    length=st.floats(0, 20),
    step=st.sampled_from([0.25, 0.5, 1.0, 1.5, -0.5, -1.25]),
)
def test_arange_floats(device: str, start: float, length: float, step: float) -> None:
    stop = start + math.copysign(length, step)
    same(xp.arange(start, stop, step, device=device), np.arange(start, stop, step), device)


@SETTINGS
@given(
    start=st.floats(-100, 100) | st.integers(-100, 100),
    stop=st.floats(-100, 100) | st.integers(-100, 100),
    num=st.integers(0, 20),
    endpoint=st.booleans(),
    dtype=st.sampled_from([None, xp.float32, xp.float64]),
)
def test_linspace(
    device: str, start: float, stop: float, num: int, endpoint: bool, dtype: Any
) -> None:
    want = np.linspace(start, stop, num, endpoint=endpoint).astype(
        np.float64 if dtype is None else dtype
    )
    got = xp.linspace(start, stop, num, endpoint=endpoint, dtype=dtype, device=device)
    same(got, want, device, rtol=1e-6 if dtype == xp.float32 else 1e-12, atol=1e-5)


@SETTINGS
@given(
    n=st.integers(0, 6),
    m=st.none() | st.integers(0, 6),
    k=st.integers(-7, 7),
    dtype=st.sampled_from([None, xp.bool, xp.int16, xp.float32, xp.complex64]),
)
def test_eye(device: str, n: int, m: int | None, k: int, dtype: Any) -> None:
    want = np.eye(n, m, k=k, dtype=np.float64 if dtype is None else dtype)
    same(xp.eye(n, m, k=k, dtype=dtype, device=device), want, device)


@SETTINGS
@given(
    shape=xps.array_shapes(min_dims=0, max_dims=3, max_side=4) | st.integers(0, 5),
    fill=st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.complex_numbers(max_magnitude=1e6),
)
def test_full_zeros_ones_empty(device: str, shape: Any, fill: Any) -> None:
    want = np.full(shape, fill)  # NumPy's default dtypes for Python scalars are the standard's
    same(xp.full(shape, fill, device=device), want, device)
    same(xp.zeros(shape, device=device), np.zeros(shape), device)
    same(xp.ones(shape, dtype=xp.int32, device=device), np.ones(shape, dtype=np.int32), device)
    e = xp.empty(shape, dtype=xp.float32, device=device)
    assert e.shape == np.zeros(shape).shape and e.dtype == xp.float32 and str(e.device) == device
    base = xp.full(shape, fill, device=device)
    same(xp.zeros_like(base), np.zeros_like(want), device)
    same(xp.ones_like(base), np.ones_like(want), device)
    same(xp.full_like(base, fill), np.full_like(want, fill), device)
    assert xp.empty_like(base).shape == want.shape and str(xp.empty_like(base).device) == device


@SETTINGS
@given(data=st.data())
def test_meshgrid(device: str, data: Any) -> None:
    dt = data.draw(NUMERIC, label="dtype")
    k = data.draw(st.integers(1, 3), label="count")
    arrs = [
        data.draw(xps.arrays(dt, st.integers(0, 4).map(lambda s: (s,))), label=f"x{i}")
        for i in range(k)
    ]
    indexing = data.draw(st.sampled_from(["xy", "ij"]), label="indexing")
    got = xp.meshgrid(*[on(a, device) for a in arrs], indexing=indexing)
    want = np.meshgrid(*[host(a) for a in arrs], indexing=indexing)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        same(g, w, device)


@SETTINGS
@given(data=st.data())
def test_tril_triu(device: str, data: Any) -> None:
    a = data.draw(
        arrays_on(xps.scalar_dtypes(), xps.array_shapes(min_dims=2, max_dims=3, max_side=4)),
        label="x",
    )
    k = data.draw(st.integers(-4, 4), label="k")
    same(xp.tril(on(a, device), k=k), np.tril(host(a), k=k), device)
    same(xp.triu(on(a, device), k=k), np.triu(host(a), k=k), device)


@SETTINGS
@given(data=st.data())
def test_asarray_nested_and_copy(device: str, data: Any) -> None:
    a = data.draw(
        arrays_on(
            xps.scalar_dtypes(), xps.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
        ),
        label="x",
    )
    xn = host(a)
    got = xp.asarray(xn.tolist(), dtype=a.dtype, device=device)
    same(got, xn, device)
    c = xp.asarray(got, copy=True)
    idx = (0,) * c.ndim
    new = (
        xn.dtype.type(not xn[idx])
        if xn.dtype.kind == "b"
        else xn.dtype.type(0 if xn[idx] != 0 else 1)
    )
    c[idx] = xp.asarray(new, device=device)
    same(got, xn, device)  # the copy does not alias
    assert host(c)[idx] == new
    same(xp.asarray(got), xn, device)


# --------------------------------------------------------------------------------------------
# manipulation
# --------------------------------------------------------------------------------------------
@SETTINGS
@given(data=st.data())
def test_reshape(device: str, data: Any) -> None:
    a = data.draw(arrays_on(xps.scalar_dtypes(), SHAPES), label="x")
    shape = list(data.draw(st.permutations(list(a.shape)), label="permuted dims"))
    shape = shape + [1] * data.draw(st.integers(0, 2))
    if shape and data.draw(st.booleans(), label="infer") and all(s != 0 for s in shape):
        shape[data.draw(st.integers(0, len(shape) - 1))] = -1
    same(xp.reshape(on(a, device), tuple(shape)), np.reshape(host(a), tuple(shape)), device)
    same(xp.reshape(on(a, device), (-1,)), host(a).reshape(-1), device)


@SETTINGS
@given(data=st.data())
def test_concat_stack(device: str, data: Any) -> None:
    dt = data.draw(xps.scalar_dtypes(), label="dtype")
    shape = data.draw(NONEMPTY, label="shape")
    k = data.draw(st.integers(1, 3), label="arrays")
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    arrs = []
    for i in range(k):
        sh = list(shape)
        sh[axis] = data.draw(st.integers(0, 3), label=f"len{i}")
        arrs.append(data.draw(xps.arrays(dt, tuple(sh))))
    same(
        xp.concat([on(a, device) for a in arrs], axis=axis),
        np.concatenate([host(a) for a in arrs], axis=axis),
        device,
    )
    same(
        xp.concat([on(a, device) for a in arrs], axis=None),
        np.concatenate([host(a).reshape(-1) for a in arrs]),
        device,
    )
    same_shape = [data.draw(xps.arrays(dt, shape)) for _ in range(k)]
    s_axis = data.draw(st.integers(-len(shape) - 1, len(shape)), label="stack axis")
    same(
        xp.stack([on(a, device) for a in same_shape], axis=s_axis),
        np.stack([host(a) for a in same_shape], axis=s_axis),
        device,
    )


@SETTINGS
@given(data=st.data())
def test_permute_flip_roll_moveaxis(device: str, data: Any) -> None:
    a = data.draw(arrays_on(xps.scalar_dtypes(), NONEMPTY), label="x")
    x, xn = on(a, device), host(a)
    perm = tuple(data.draw(st.permutations(range(a.ndim)), label="perm"))
    same(xp.permute_dims(x, perm), np.transpose(xn, perm), device)
    faxis = data.draw(axes_for(a.ndim), label="flip axis")
    same(xp.flip(x, axis=faxis), np.flip(xn, axis=faxis), device)
    raxis = data.draw(
        st.none() | st.integers(-a.ndim, a.ndim - 1) | xps.valid_tuple_axes(a.ndim, min_size=1),
        label="roll axis",
    )
    if isinstance(raxis, tuple):
        shift: Any = tuple(data.draw(st.integers(-5, 5)) for _ in raxis)
    else:
        shift = data.draw(st.integers(-5, 5), label="shift")
    same(xp.roll(x, shift, axis=raxis), np.roll(xn, shift, axis=raxis), device)
    src, dst = (
        data.draw(st.integers(-a.ndim, a.ndim - 1)),
        data.draw(st.integers(-a.ndim, a.ndim - 1)),
    )
    same(xp.moveaxis(x, src, dst), np.moveaxis(xn, src, dst), device)


@SETTINGS
@given(data=st.data())
def test_squeeze_expand_dims(device: str, data: Any) -> None:
    shape = data.draw(
        xps.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=3), label="shape"
    )
    a = data.draw(arrays_on(xps.scalar_dtypes(), shape), label="x")
    x, xn = on(a, device), host(a)
    ones = [i for i, s in enumerate(shape) if s == 1]
    if ones:
        axes = tuple(data.draw(st.lists(st.sampled_from(ones), min_size=1, unique=True)))
        same(xp.squeeze(x, axis=axes), np.squeeze(xn, axis=axes), device)
        same(xp.squeeze(x, axis=ones[0]), np.squeeze(xn, axis=ones[0]), device)
    e = data.draw(st.integers(-a.ndim - 1, a.ndim), label="expand axis")
    same(xp.expand_dims(x, axis=e), np.expand_dims(xn, e), device)


@SETTINGS
@given(data=st.data())
def test_tile_repeat_unstack(device: str, data: Any) -> None:
    a = data.draw(arrays_on(xps.scalar_dtypes(), NONEMPTY), label="x")
    x, xn = on(a, device), host(a)
    reps = tuple(data.draw(st.lists(st.integers(0, 3), min_size=0, max_size=4), label="reps"))
    same(xp.tile(x, reps), np.tile(xn, reps), device)
    axis = data.draw(st.none() | st.integers(-a.ndim, a.ndim - 1), label="repeat axis")
    k = data.draw(st.integers(0, 3), label="repeats")
    same(xp.repeat(x, k, axis=axis), np.repeat(xn, k, axis=axis), device)
    length = xn.size if axis is None else xn.shape[axis]
    counts = data.draw(xps.arrays(xp.int64, (length,), elements=st.integers(0, 3)), label="counts")
    same(
        xp.repeat(x, on(counts, device), axis=axis), np.repeat(xn, host(counts), axis=axis), device
    )
    uaxis = data.draw(st.integers(-a.ndim, a.ndim - 1), label="unstack axis")
    parts = xp.unstack(x, axis=uaxis)
    want = list(np.moveaxis(xn, uaxis, 0))
    assert isinstance(parts, tuple) and len(parts) == len(want)
    for g, w in zip(parts, want):
        same(g, w, device)


@SETTINGS
@given(data=st.data())
def test_broadcast_to_and_arrays(device: str, data: Any) -> None:
    a = data.draw(arrays_on(xps.scalar_dtypes(), SHAPES), label="x")
    other = data.draw(
        xps.broadcastable_shapes(a.shape, max_dims=4, min_side=0, max_side=3), label="other shape"
    )
    target = np.broadcast_shapes(a.shape, other)
    same(xp.broadcast_to(on(a, device), target), np.broadcast_to(host(a), target), device)
    b = data.draw(xps.arrays(a.dtype, other), label="y")
    got = xp.broadcast_arrays(on(a, device), on(b, device))
    want = np.broadcast_arrays(host(a), host(b))
    assert len(got) == 2
    for g, w in zip(got, want):
        same(g, w, device)


@SETTINGS
@given(data=st.data())
def test_astype(device: str, data: Any) -> None:
    src = data.draw(xps.scalar_dtypes(), label="from")
    dst = data.draw(xps.scalar_dtypes(), label="to")
    assume(
        not (np.dtype(src).kind == "c" and np.dtype(dst).kind != "c")
    )  # complex -> real: unspecified
    el = _finite(src)
    a = data.draw(xps.arrays(src, SHAPES, elements=el))
    xn = host(a)
    if np.dtype(dst).kind in "iu" and np.dtype(src).kind in "iuf":
        ii = np.iinfo(dst)  # out-of-range casts to integers are unspecified
        assume(all(ii.min <= v <= ii.max for v in xn.reshape(-1).tolist()))
    same(quiet(lambda: xp.astype(on(a, device), dst)), quiet(lambda: xn.astype(dst)), device)
