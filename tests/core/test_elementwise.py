"""Elementwise functions on every device: results against NumPy, the standard's special
cases (2024.12), dtype groups, locality errors, Python scalar operands, tag propagation and
the operators that route through the namespace (``//``, ``%``, ``**``, ``<<``, ``>>``)."""

from __future__ import annotations

import inspect
import math
import operator
import typing
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import hpcai as xp
from hpcai import _elementwise
from hpcai.errors import (
    DeviceMismatchError,
    DTypeError,
    ForeignArrayError,
    InvalidArgumentError,
)
from hpcai.testing import to_numpy

# Special-case inputs make NumPy's reference computations warn; the values are what is tested.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

inf = math.inf
nan = math.nan

# The elementwise functions of the 2024.12 standard (its elementwise_functions.py __all__).
SPEC_FUNCTIONS = [
    "abs", "acos", "acosh", "add", "asin", "asinh", "atan", "atan2", "atanh", "bitwise_and",
    "bitwise_left_shift", "bitwise_invert", "bitwise_or", "bitwise_right_shift", "bitwise_xor",
    "ceil", "clip", "conj", "copysign", "cos", "cosh", "divide", "equal", "exp", "expm1",
    "floor", "floor_divide", "greater", "greater_equal", "hypot", "imag", "isfinite", "isinf",
    "isnan", "less", "less_equal", "log", "log1p", "log2", "log10", "logaddexp", "logical_and",
    "logical_not", "logical_or", "logical_xor", "maximum", "minimum", "multiply", "negative",
    "nextafter", "not_equal", "positive", "pow", "real", "reciprocal", "remainder", "round",
    "sign", "signbit", "sin", "sinh", "square", "sqrt", "subtract", "tan", "tanh", "trunc",
]  # fmt: skip

BOOL = ["bool"]
INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
REAL_FLOAT = ["float32", "float64"]
COMPLEX = ["complex64", "complex128"]
FLOATING = REAL_FLOAT + COMPLEX
REAL_NUMERIC = INTS + REAL_FLOAT
NUMERIC = REAL_NUMERIC + COMPLEX
ALL = BOOL + NUMERIC
INT_OR_BOOL = INTS + BOOL

# The dtype group each function accepts (as the standard's "should have ... data type").
UNARY: dict[str, list[str]] = {
    "abs": NUMERIC, "acos": FLOATING, "acosh": FLOATING, "asin": FLOATING, "asinh": FLOATING,
    "atan": FLOATING, "atanh": FLOATING, "bitwise_invert": INT_OR_BOOL, "ceil": REAL_NUMERIC,
    "conj": NUMERIC, "cos": FLOATING, "cosh": FLOATING, "exp": FLOATING, "expm1": FLOATING,
    "floor": REAL_NUMERIC, "imag": COMPLEX, "isfinite": NUMERIC, "isinf": NUMERIC,
    "isnan": NUMERIC, "log": FLOATING, "log1p": FLOATING, "log2": FLOATING, "log10": FLOATING,
    "logical_not": BOOL, "negative": NUMERIC, "positive": NUMERIC, "real": NUMERIC,
    "reciprocal": FLOATING, "round": NUMERIC, "sign": NUMERIC, "signbit": REAL_FLOAT,
    "sin": FLOATING, "sinh": FLOATING, "square": NUMERIC, "sqrt": FLOATING, "tan": FLOATING,
    "tanh": FLOATING, "trunc": REAL_NUMERIC,
}  # fmt: skip
BINARY: dict[str, list[str]] = {
    "add": NUMERIC, "atan2": REAL_FLOAT, "bitwise_and": INT_OR_BOOL,
    "bitwise_left_shift": INTS, "bitwise_or": INT_OR_BOOL, "bitwise_right_shift": INTS,
    "bitwise_xor": INT_OR_BOOL, "copysign": REAL_FLOAT, "divide": NUMERIC, "equal": ALL,
    "floor_divide": REAL_NUMERIC, "greater": REAL_NUMERIC, "greater_equal": REAL_NUMERIC,
    "hypot": REAL_FLOAT, "less": REAL_NUMERIC, "less_equal": REAL_NUMERIC,
    "logaddexp": REAL_FLOAT, "logical_and": BOOL, "logical_or": BOOL, "logical_xor": BOOL,
    "maximum": REAL_NUMERIC, "minimum": REAL_NUMERIC, "multiply": NUMERIC,
    "nextafter": REAL_FLOAT, "not_equal": ALL, "pow": NUMERIC, "remainder": REAL_NUMERIC,
    "subtract": NUMERIC,
}  # fmt: skip
GROUPS: dict[str, list[str]] = {**UNARY, **BINARY, "clip": REAL_NUMERIC}

# Real inputs inside each function's domain (outside it both sides give NaN; tested below).
DOMAIN: dict[str, tuple[float, float]] = {
    "acos": (-0.95, 0.95), "asin": (-0.95, 0.95), "atanh": (-0.95, 0.95), "acosh": (1.05, 5.0),
    "log": (0.1, 5.0), "log2": (0.1, 5.0), "log10": (0.1, 5.0), "sqrt": (0.1, 5.0),
    "log1p": (-0.9, 5.0), "pow": (0.1, 3.0),
}  # fmt: skip
SHIFTS = ("bitwise_left_shift", "bitwise_right_shift")
NONZERO_DIVISOR = ("divide", "floor_divide", "remainder")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _one_device_per_kind() -> list[str]:
    """One device of each (backend, kind, preset, native dtypes): elementwise results do not
    depend on a device's index, so jax:cpu:1..3 would repeat jax:cpu:0's work."""
    seen: set[tuple[Any, ...]] = set()
    names = []
    for d in xp.all_devices():
        if d.backend == "dask":  # lazy graphs on a cluster: tests/distributed/test_dask_device.py
            continue
        spec = d.spec
        key = (
            spec.backend,
            spec.kind,
            getattr(spec, "preset", None),
            frozenset(spec.native_dtypes),
        )
        if key not in seen:
            seen.add(key)
            names.append(str(d))
    return names


@pytest.fixture(params=_one_device_per_kind())
def device(request: pytest.FixtureRequest) -> str:
    """This module's device parameter (overrides the suite-wide fixture, see above)."""
    return str(request.param)


def supported(device: str, names: list[str]) -> list[str]:
    """The dtypes of *names* that *device* supports natively."""
    have = xp.__array_namespace_info__().dtypes(device=device)
    return [n for n in names if n in have]


def sample(name: str, dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A first operand for function *name* with values in its domain."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dt.kind == "u":
        return rng.integers(0, 20, shape).astype(dt)
    if dt.kind == "i":
        return rng.integers(-20, 20, shape).astype(dt)
    lo, hi = DOMAIN.get(name, (-5.0, 5.0))
    v = rng.uniform(lo, hi, shape)
    if dt.kind == "c":
        v = v + 1j * rng.uniform(lo, hi, shape)
    return v.astype(dt)


def sample_x2(
    name: str, dtype: str, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """A second operand for *name*: shift counts in range, nonzero divisors, small integer powers."""
    dt = np.dtype(dtype)
    if name in SHIFTS:
        return rng.integers(0, dt.itemsize * 8, shape).astype(dt)
    if name == "pow" and dt.kind in "iu":
        return rng.integers(0, 4, shape).astype(dt)
    if name in NONZERO_DIVISOR and dt.kind != "b":
        sign = 1 if dt.kind == "u" else rng.choice([-1, 1], shape)
        if dt.kind in "iu":
            return (rng.integers(1, 10, shape) * sign).astype(dt)
        v = rng.uniform(0.5, 5.0, shape) * sign
        if dt.kind == "c":
            v = v + 1j * rng.uniform(0.5, 5.0, shape)
        return v.astype(dt)
    return sample(name, dtype, shape, rng)


def assert_matches(res: Any, expected: Any, device: str, *, any_float: bool = False) -> None:
    """*res* is an hpcai Array on *device* equal to NumPy's *expected* (dtype, shape, values).

    ``any_float``: the standard only asks for a real floating-point dtype (true division of
    integers), so any one is accepted and values are compared at single precision.
    """
    assert res.__class__ is xp.Array
    assert str(res.device) == device
    got = to_numpy(res)
    want = np.asarray(expected)
    if any_float:
        assert got.dtype in (np.float32, np.float64), (
            f"dtype {got.dtype} is not real floating-point"
        )
        got, want = got.astype(np.float32), want.astype(np.float32)
    assert got.dtype == want.dtype, f"dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    if got.dtype.kind in "fc":
        single = got.dtype in (np.float32, np.complex64)
        np.testing.assert_allclose(
            got,
            want,
            rtol=1e-5 if single else 1e-12,
            atol=1e-6 if single else 1e-13,
            equal_nan=True,
        )
    else:
        np.testing.assert_array_equal(got, want)


def assert_exact(res: Any, expected: list[float], device: str) -> None:
    """Values equal the standard's, NaN for NaN, and zeros and infinities with their sign."""
    assert str(res.device) == device
    got = to_numpy(res).astype(np.float64)
    want = np.asarray(expected, dtype=np.float64)
    assert got.shape == want.shape
    for i, (g, w) in enumerate(zip(got.ravel(), want.ravel(), strict=True)):
        if math.isnan(w):
            assert math.isnan(g), f"element {i}: got {g}, want NaN"
        else:
            assert g == w and math.copysign(1, g) == math.copysign(1, w), (
                f"element {i}: got {g!r}, want {w!r}"
            )


def other_device(device: str) -> str:
    return "emulated:0" if device != "emulated:0" else "numpy:cpu"


def scalar_for(name: str, dtype: str) -> bool | int | float | complex:
    """A Python scalar of the kind the standard pairs with arrays of *dtype*."""
    kind = np.dtype(dtype).kind
    if kind == "b":
        return True
    if kind in "iu":
        return 2 if name in SHIFTS or name == "pow" else 3
    if kind == "f":
        return 1.5
    return 1.5 - 0.5j


# --------------------------------------------------------------------------------------------
# the namespace: every function, with the standard's signature
# --------------------------------------------------------------------------------------------
def test_every_spec_function_is_defined_and_exported() -> None:
    assert sorted(_elementwise.__all__) == sorted(SPEC_FUNCTIONS)
    assert sorted(GROUPS) == sorted(SPEC_FUNCTIONS)
    for name in SPEC_FUNCTIONS:
        f = getattr(xp, name)
        assert f is getattr(_elementwise, name)
        assert inspect.isfunction(f) and f.__module__ == "hpcai._elementwise"
        assert f.__doc__ and f.__doc__.strip(), name
        assert name in xp.__all__


@pytest.mark.parametrize("name", SPEC_FUNCTIONS)
def test_signature(name: str) -> None:
    sig = inspect.signature(getattr(xp, name))
    params = list(sig.parameters.values())
    hints = inspect.get_annotations(getattr(xp, name), eval_str=True)
    assert "return" in hints
    if name in UNARY:
        assert [p.name for p in params] == ["x"]
        assert params[0].kind is inspect.Parameter.POSITIONAL_ONLY
    elif name in BINARY:
        assert [p.name for p in params] == ["x1", "x2"]
        assert all(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in params)
        for hint in (hints["x1"], hints["x2"]):  # an array or a Python scalar (2024.12)
            args = typing.get_args(hint)
            assert xp.Array in args and set(args) & {bool, int, float, complex}
    else:  # clip(x, /, min=None, max=None)
        assert [p.name for p in params] == ["x", "min", "max"]
        assert params[0].kind is inspect.Parameter.POSITIONAL_ONLY
        assert params[1].default is None and params[2].default is None
    assert all(p.name in hints for p in params)


# --------------------------------------------------------------------------------------------
# results against NumPy on every device
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_matches_numpy(name: str, device: str) -> None:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    f = getattr(xp, name)
    ref = getattr(np, name)
    for dtype in supported(device, UNARY[name]):
        for shape in [(3, 4), ()]:
            a = sample(name, dtype, shape, rng)
            assert_matches(f(xp.asarray(a, device=device)), ref(a), device)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_matches_numpy(name: str, device: str) -> None:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    f = getattr(xp, name)
    ref = getattr(np, name)
    for dtype in supported(device, BINARY[name]):
        loose = name == "divide" and dtype in INTS
        a = sample(name, dtype, (3, 4), rng)
        b = sample_x2(name, dtype, (4,), rng)  # broadcasts against a
        res = f(xp.asarray(a, device=device), xp.asarray(b, device=device))
        assert_matches(res, ref(a, b), device, any_float=loose)
        a0, b0 = sample(name, dtype, (), rng), sample_x2(name, dtype, (), rng)
        r0 = f(xp.asarray(a0, device=device), xp.asarray(b0, device=device))
        assert r0.shape == ()
        assert_matches(r0, ref(a0, b0), device, any_float=loose)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_python_scalar_operands(name: str, device: str) -> None:
    rng = np.random.default_rng(7)
    f = getattr(xp, name)
    ref = getattr(np, name)
    for dtype in supported(device, BINARY[name]):
        loose = name == "divide" and dtype in INTS
        s = scalar_for(name, dtype)
        a = sample(name, dtype, (5,), rng)
        assert_matches(f(xp.asarray(a, device=device), s), ref(a, s), device, any_float=loose)
        b = sample_x2(name, dtype, (5,), rng)
        assert_matches(f(s, xp.asarray(b, device=device)), ref(s, b), device, any_float=loose)
        # NumPy scalars act as the Python scalars they hold
        s_np = np.asarray(s).astype(dtype)[()]
        assert_matches(f(xp.asarray(a, device=device), s_np), ref(a, s), device, any_float=loose)


@pytest.mark.parametrize(
    ("name", "d1", "d2"),
    [
        ("add", "int8", "int16"),
        ("multiply", "uint8", "int8"),
        ("subtract", "float32", "float64"),
        ("divide", "float32", "complex64"),
        ("equal", "int32", "float64"),
        ("maximum", "uint16", "int32"),
        ("bitwise_or", "uint8", "uint32"),
        ("floor_divide", "int16", "int32"),
        ("pow", "float32", "float64"),
    ],
)
def test_binary_type_promotion(name: str, d1: str, d2: str, device: str) -> None:
    if len(supported(device, [d1, d2])) < 2:
        pytest.skip(f"{device} lacks {d1} or {d2}")
    rng = np.random.default_rng(3)
    a, b = sample(name, d1, (4,), rng), sample_x2(name, d2, (4,), rng)
    res = getattr(xp, name)(xp.asarray(a, device=device), xp.asarray(b, device=device))
    assert_matches(res, getattr(np, name)(a, b), device)


def test_complex_results_have_the_right_precision(device: str) -> None:
    for cdt, rdt in (("complex64", "float32"), ("complex128", "float64")):
        if not supported(device, [cdt]):
            continue
        z = xp.asarray(np.array([3 + 4j, -1 - 2j], dtype=cdt), device=device)
        for name in ("abs", "real", "imag"):
            assert getattr(xp, name)(z).dtype == np.dtype(rdt)
        assert_matches(xp.abs(z), np.array([5.0, math.sqrt(5)], dtype=rdt), device)
        assert_matches(xp.real(z), np.array([3.0, -1.0], dtype=rdt), device)
        assert_matches(xp.imag(z), np.array([4.0, -2.0], dtype=rdt), device)
        assert_matches(xp.conj(z), np.array([3 - 4j, -1 + 2j], dtype=cdt), device)


def test_real_and_conj_accept_real_arrays(device: str) -> None:
    a = np.array([1.5, -2.0])
    x = xp.asarray(a, device=device)
    assert_matches(xp.real(x), a, device)
    assert_matches(xp.conj(x), a, device)
    assert_matches(xp.real(xp.asarray([1, 2], device=device)), np.array([1, 2]), device)


# --------------------------------------------------------------------------------------------
# the standard's special cases where NumPy deviates (corrected) ...
# --------------------------------------------------------------------------------------------
# (x1, x2, result) from the standard's floor_divide special cases
FLOOR_DIVIDE_CASES = [
    (nan, 2.0, nan), (2.0, nan, nan),
    (inf, inf, nan), (inf, -inf, nan), (-inf, inf, nan), (-inf, -inf, nan),
    (0.0, 0.0, nan), (0.0, -0.0, nan), (-0.0, 0.0, nan), (-0.0, -0.0, nan),
    (0.0, 2.0, 0.0), (-0.0, 2.0, -0.0), (0.0, -2.0, -0.0), (-0.0, -2.0, 0.0),
    (2.0, 0.0, inf), (2.0, -0.0, -inf), (-2.0, 0.0, -inf), (-2.0, -0.0, inf),
    (inf, 2.0, inf), (inf, -2.0, -inf), (-inf, 2.0, -inf), (-inf, -2.0, inf),
    (2.0, inf, 0.0), (2.0, -inf, -0.0), (-2.0, inf, -0.0), (-2.0, -inf, 0.0),
    (7.0, 2.0, 3.0), (-7.0, 2.0, -4.0), (7.0, -2.0, -4.0), (-7.0, -2.0, 3.0),
]  # fmt: skip

# (x1, x2, result) from the standard's remainder special cases
REMAINDER_CASES = [
    (nan, 2.0, nan), (2.0, nan, nan),
    (inf, inf, nan), (inf, -inf, nan), (-inf, inf, nan), (-inf, -inf, nan),
    (0.0, 0.0, nan), (0.0, -0.0, nan), (-0.0, 0.0, nan), (-0.0, -0.0, nan),
    (0.0, 2.0, 0.0), (-0.0, 2.0, 0.0), (0.0, -2.0, -0.0), (-0.0, -2.0, -0.0),
    (2.0, 0.0, nan), (2.0, -0.0, nan), (-2.0, 0.0, nan), (-2.0, -0.0, nan),
    (inf, 2.0, nan), (inf, -2.0, nan), (-inf, 2.0, nan), (-inf, -2.0, nan),
    (2.0, inf, 2.0), (2.0, -inf, -inf), (-2.0, inf, inf), (-2.0, -inf, -2.0),
    (7.0, -2.0, -1.0), (-7.0, 2.0, 1.0), (7.5, 2.0, 1.5),
]  # fmt: skip

# (x1, x2, result) from the standard's pow special cases
POW_CASES = [
    (1.0, nan, 1.0), (2.0, nan, nan), (nan, 0.0, 1.0), (nan, -0.0, 1.0), (nan, 2.0, nan),
    (2.0, inf, inf), (-2.0, inf, inf), (2.0, -inf, 0.0), (-2.0, -inf, 0.0),
    (1.0, inf, 1.0), (-1.0, inf, 1.0), (-1.0, -inf, 1.0), (1.0, 3.0, 1.0),
    (0.5, inf, 0.0), (-0.5, inf, 0.0), (0.5, -inf, inf), (-0.5, -inf, inf),
    (inf, 2.0, inf), (inf, 0.5, inf), (inf, -2.0, 0.0), (inf, -0.5, 0.0),
    (-inf, 3.0, -inf), (-inf, 2.0, inf), (-inf, 0.5, inf),
    (-inf, -3.0, -0.0), (-inf, -2.0, 0.0), (-inf, -0.5, 0.0),
    (0.0, 2.0, 0.0), (0.0, 0.5, 0.0), (0.0, -2.0, inf), (0.0, -0.5, inf),
    (-0.0, 3.0, -0.0), (-0.0, 2.0, 0.0), (-0.0, 0.5, 0.0),
    (-0.0, -3.0, -inf), (-0.0, -2.0, inf), (-0.0, -0.5, inf),
    (-2.0, 0.5, nan), (-2.0, 1.5, nan), (4.0, 0.5, 2.0), (-2.0, 3.0, -8.0),
]  # fmt: skip


def _forms(device: str, dtype: str, cases: list[tuple[float, float, float]]):
    """The cases as (x1, x2, expected) in three forms: two arrays, array and scalar, scalar and array."""
    a = np.array([c[0] for c in cases], dtype=dtype)
    b = np.array([c[1] for c in cases], dtype=dtype)
    want = [c[2] for c in cases]
    yield xp.asarray(a, device=device), xp.asarray(b, device=device), want
    for i, (p, q, w) in enumerate(cases):
        yield xp.asarray(a[i : i + 1], device=device), q, [w]
        yield p, xp.asarray(b[i : i + 1], device=device), [w]


@pytest.mark.parametrize(
    ("fname", "op", "cases"),
    [
        ("floor_divide", operator.floordiv, FLOOR_DIVIDE_CASES),
        ("remainder", operator.mod, REMAINDER_CASES),
        ("pow", operator.pow, POW_CASES),
    ],
)
def test_special_cases_follow_the_standard(
    fname: str, op: Callable[[Any, Any], Any], cases: list[tuple[float, float, float]], device: str
) -> None:
    f = getattr(xp, fname)
    for dtype in supported(device, REAL_FLOAT):
        for x1, x2, want in _forms(device, dtype, cases):
            res = f(x1, x2)
            assert res.dtype == np.dtype(dtype)
            assert_exact(res, want, device)
            assert_exact(op(x1, x2), want, device)  # the operator (reflected when x1 is a scalar)


@pytest.mark.parametrize("dtype", REAL_FLOAT)
def test_pow_half_exponent_as_0d_array(dtype: str, device: str) -> None:
    if not supported(device, [dtype]):
        pytest.skip(f"{device} lacks {dtype}")
    x = xp.asarray(np.array([-0.0, -inf, 0.0, inf, 4.0, -1.0], dtype=dtype), device=device)
    want = [0.0, inf, 0.0, inf, 2.0, nan]
    for half in (
        xp.asarray(np.array(0.5, dtype=dtype), device=device),
        xp.asarray(np.array([0.5], dtype=dtype), device=device),
    ):
        assert_exact(xp.pow(x, half), want, device)
        assert_exact(x**half, want, device)


def test_pow_half_exponent_on_ordinary_values(device: str) -> None:
    # positive inputs need no correction (and get none); NaN and negatives stay NaN
    a = np.array([4.0, 0.25, 2.0, 1e300])
    assert_matches(xp.pow(xp.asarray(a, device=device), 0.5), np.sqrt(a), device)
    assert_exact(xp.pow(xp.asarray([nan, -4.0, 9.0], device=device), 0.5), [nan, nan, 3.0], device)
    assert xp.pow(xp.asarray(np.zeros(0), device=device), 0.5).shape == (0,)


def test_floor_divide_infinities_mixed_with_finite_values(device: str) -> None:
    # only some elements need the correction; the others keep NumPy's exact floor division
    a = np.array([inf, 7.0, -inf, 1.0, -1.0, 1.0, 0.3])
    b = np.array([2.0, 2.0, 3.0, -inf, inf, 0.1, 0.1])
    res = xp.floor_divide(xp.asarray(a, device=device), xp.asarray(b, device=device))
    # 1 // 0.1 is 9.0, as in Python: finite operands keep exact floor division
    assert_exact(res, [inf, 3.0, -inf, -0.0, -0.0, 9.0, 2.0], device)
    # an integer array divided by an infinite scalar promotes to floating point
    res = xp.floor_divide(xp.asarray([3, -3], device=device), -inf)
    assert_exact(res, [-0.0, 0.0], device)


def test_integer_floor_divide_and_remainder_follow_python(device: str) -> None:
    vals = [-7, -1, 0, 5, 9]
    divs = [2, -3, 4, -1, 7]
    x1 = xp.asarray(vals, dtype=xp.int32, device=device)
    x2 = xp.asarray(divs, dtype=xp.int32, device=device)
    assert to_numpy(xp.floor_divide(x1, x2)).tolist() == [
        a // b for a, b in zip(vals, divs, strict=True)
    ]
    assert to_numpy(xp.remainder(x1, x2)).tolist() == [
        a % b for a, b in zip(vals, divs, strict=True)
    ]


def test_integer_pow(device: str) -> None:
    x = xp.asarray([2, -3, 0, 1], dtype=xp.int64, device=device)
    assert to_numpy(xp.pow(x, 3)).tolist() == [8, -27, 0, 1]
    assert to_numpy(xp.pow(2, xp.asarray([0, 1, 10], device=device))).tolist() == [1, 2, 1024]
    assert xp.pow(xp.asarray([2], dtype=xp.uint8, device=device), 3).dtype == xp.uint8
    with pytest.raises(
        InvalidArgumentError, match=r"xp\.pow: an integer base .* negative integer exponent"
    ):
        xp.pow(x, -1)
    with pytest.raises(InvalidArgumentError, match="negative integer exponent"):
        x **= -2
    # with an array of exponents the standard leaves the negative ones unspecified: NumPy
    # refuses (a clear error), JAX computes; the other elements must be right either way
    try:
        r = x ** xp.asarray([1, -1, 2, 3], device=device)
    except InvalidArgumentError as exc:
        assert "negative integer exponent" in str(exc)
    else:
        got = to_numpy(r)
        assert got.dtype == np.int64 and got[[0, 2, 3]].tolist() == [2, 0, 1]


@pytest.mark.parametrize("dtype", ["int8", "int16", "int64", "uint8", "uint64"])
def test_shifts_of_any_size_follow_python(dtype: str, device: str) -> None:
    """Left shifts append zeros (wrapping to the dtype); right shifts floor-divide by 2**n."""
    bits = np.dtype(dtype).itemsize * 8
    signed = np.dtype(dtype).kind == "i"
    vals = [1, 5, -3, -128] if signed else [1, 5, 200, 255]
    shifts = [0, 1, bits - 1, bits, bits + 1, 100]

    def wrap(v: int) -> int:
        v %= 2**bits
        return v - 2**bits if signed and v >= 2 ** (bits - 1) else v

    x = xp.asarray(np.array(vals, dtype=dtype), device=device)
    for s in shifts:
        assert to_numpy(xp.bitwise_left_shift(x, s)).tolist() == [wrap(v << s) for v in vals], s
        assert to_numpy(xp.bitwise_right_shift(x, s)).tolist() == [v >> s for v in vals], s
        sa = xp.asarray(np.full(len(vals), s, dtype=dtype), device=device)
        assert to_numpy(x << sa).tolist() == [wrap(v << s) for v in vals], s
        assert to_numpy(x >> sa).tolist() == [v >> s for v in vals], s


def test_negative_scalar_shift_is_rejected(device: str) -> None:
    x = xp.asarray([1, 2], device=device)
    for f in (xp.bitwise_left_shift, xp.bitwise_right_shift):
        with pytest.raises(
            InvalidArgumentError,
            match=r"xp\.bitwise_.*_shift: the shift amount must be >= 0, got -1",
        ):
            f(x, -1)
    with pytest.raises(InvalidArgumentError, match="shift amount"):
        x << -2
    with pytest.raises(InvalidArgumentError, match="shift amount"):
        x >>= np.int64(-1)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# ... and special cases NumPy already gets right (kept right)
# --------------------------------------------------------------------------------------------
def test_copysign_and_signbit_see_signed_zeros_and_nans(device: str) -> None:
    neg_nan = -np.float64(nan)  # NaN with the sign bit set
    mags = np.array([2.0, 2.0, 2.0, 2.0, 2.0, 2.0, nan, nan, nan, nan, nan])
    signs = np.array([-1.0, -0.0, 0.0, 1.0, neg_nan, nan, -1.0, -0.0, 0.0, neg_nan, nan])
    res = xp.copysign(xp.asarray(mags, device=device), xp.asarray(signs, device=device))
    got = to_numpy(res)
    np.testing.assert_array_equal(
        np.signbit(got), [True, True, False, False, True, False, True, True, False, True, False]
    )
    np.testing.assert_array_equal(np.abs(got[:6]), 2.0)
    assert np.isnan(got[6:]).all()
    x = xp.asarray(np.array([0.0, -0.0, inf, -inf, 1.5, -1.5, nan, neg_nan]), device=device)
    assert to_numpy(xp.signbit(x)).tolist() == [False, True, False, True, False, True, False, True]


def test_maximum_minimum_propagate_nan(device: str) -> None:
    a = xp.asarray([nan, 1.0, 2.0, -inf], device=device)
    b = xp.asarray([1.0, nan, 3.0, 0.0], device=device)
    assert_exact(xp.maximum(a, b), [nan, nan, 3.0, 0.0], device)
    assert_exact(xp.minimum(a, b), [nan, nan, 2.0, -inf], device)
    assert_exact(xp.maximum(a, nan), [nan] * 4, device)


def test_sign_of_real_and_complex(device: str) -> None:
    got = to_numpy(xp.sign(xp.asarray([-2.5, -0.0, 0.0, 3.0, nan, -inf], device=device)))
    # the standard asks for "0" (either sign) at zero
    np.testing.assert_array_equal(got, [-1.0, 0.0, 0.0, 1.0, nan, -1.0])
    ints = xp.asarray([-5, 0, 7], dtype=xp.int8, device=device)
    assert to_numpy(xp.sign(ints)).tolist() == [-1, 0, 1]
    z = to_numpy(
        xp.sign(xp.asarray([3 + 4j, 0j, -2j, complex(nan, 1.0), complex(1.0, nan)], device=device))
    )
    np.testing.assert_allclose(z[:3], [0.6 + 0.8j, 0j, -1j])
    assert (
        np.isnan(z[3].real) and np.isnan(z[3].imag) and np.isnan(z[4].real) and np.isnan(z[4].imag)
    )


def test_round_halves_to_even_and_keeps_dtype(device: str) -> None:
    x = xp.asarray([0.5, 1.5, 2.5, -0.5, -2.5, -0.0, inf, nan, 2.4], device=device)
    assert_exact(xp.round(x), [0.0, 2.0, 2.0, -0.0, -2.0, -0.0, inf, nan, 2.0], device)
    assert_matches(xp.round(xp.asarray([1.5 + 2.5j], device=device)), np.array([2 + 2j]), device)
    for fn in (xp.round, xp.ceil, xp.floor, xp.trunc):
        r = fn(xp.asarray([3, -4], dtype=xp.int16, device=device))
        assert r.dtype == xp.int16 and to_numpy(r).tolist() == [3, -4]


def test_rounding_functions_return_integral_floats_unchanged(device: str) -> None:
    """x_i.is_integer() -> x_i, up to the largest float32 (what the official suite cannot
    check reliably on a float32-only device; see ci/conformance-skips.txt)."""
    big = np.array([2.0**24 + 2, 2.0**60, -(2.0**100), float(np.finfo(np.float32).max), 7.0, -0.0], np.float32)
    x = xp.asarray(big, device=device)
    for fn in (xp.round, xp.ceil, xp.floor, xp.trunc):
        r = fn(x)
        assert r.dtype == xp.float32
        np.testing.assert_array_equal(to_numpy(r), big)
        assert np.signbit(to_numpy(r)[-1])


def test_rounding_functions_keep_signed_zeros(device: str) -> None:
    x = xp.asarray([-0.0, 0.0, -0.4, 0.4, -inf, nan], device=device)
    assert_exact(xp.ceil(x), [-0.0, 0.0, -0.0, 1.0, -inf, nan], device)
    assert_exact(xp.floor(x), [-0.0, 0.0, -1.0, 0.0, -inf, nan], device)
    assert_exact(xp.trunc(x), [-0.0, 0.0, -0.0, 0.0, -inf, nan], device)


def test_hypot_logaddexp_nextafter_atan2_special_cases(device: str) -> None:
    a = xp.asarray([inf, nan, -inf, 0.0, nan, 3.0], device=device)
    b = xp.asarray([nan, -inf, 1.0, -3.0, 1.0, 4.0], device=device)
    assert_exact(xp.hypot(a, b), [inf, inf, inf, 3.0, nan, 5.0], device)
    a = xp.asarray([inf, inf, 1.0, nan, -inf], device=device)
    b = xp.asarray([-inf, 1.0, inf, inf, -inf], device=device)
    assert_exact(xp.logaddexp(a, b), [inf, inf, inf, nan, -inf], device)
    assert_exact(
        xp.nextafter(
            xp.asarray([-0.0, 0.0, nan], device=device), xp.asarray([0.0, -0.0, 1.0], device=device)
        ),
        [0.0, -0.0, nan],
        device,
    )
    assert to_numpy(xp.nextafter(xp.asarray([1.0], device=device), 2.0))[0] == np.nextafter(
        1.0, 2.0
    )
    y = xp.asarray([0.0, -0.0, 0.0, -0.0, 1.0, -1.0], device=device)
    x = xp.asarray([1.0, 1.0, -0.0, -0.0, inf, inf], device=device)
    assert_exact(xp.atan2(y, x), [0.0, -0.0, math.pi, -math.pi, 0.0, -0.0], device)


def test_domain_errors_give_nan_and_infinities(device: str) -> None:
    assert_exact(xp.sqrt(xp.asarray([-1.0, -0.0, inf], device=device)), [nan, -0.0, inf], device)
    assert_exact(
        xp.log(xp.asarray([-1.0, 0.0, -0.0, 1.0], device=device)), [nan, -inf, -inf, 0.0], device
    )
    assert_exact(xp.log1p(xp.asarray([-2.0, -1.0, -0.0], device=device)), [nan, -inf, -0.0], device)
    assert_exact(xp.acos(xp.asarray([2.0, 1.0], device=device)), [nan, 0.0], device)
    assert_exact(xp.atanh(xp.asarray([-1.0, 1.0, 2.0], device=device)), [-inf, inf, nan], device)
    assert_exact(xp.expm1(xp.asarray([-inf, -0.0], device=device)), [-1.0, -0.0], device)
    assert_exact(xp.tanh(xp.asarray([inf, -inf, -0.0], device=device)), [1.0, -1.0, -0.0], device)
    assert_exact(
        xp.reciprocal(xp.asarray([0.0, -0.0, inf, 4.0], device=device)),
        [inf, -inf, 0.0, 0.25],
        device,
    )
    assert_exact(xp.abs(xp.asarray([-0.0, -inf], device=device)), [0.0, inf], device)


def test_comparisons_with_nan_and_signed_zero(device: str) -> None:
    a = xp.asarray([nan, 0.0, inf, 1.0], device=device)
    b = xp.asarray([nan, -0.0, inf, 2.0], device=device)
    assert to_numpy(xp.equal(a, b)).tolist() == [False, True, True, False]
    assert to_numpy(xp.not_equal(a, b)).tolist() == [True, False, False, True]
    assert to_numpy(xp.less(a, b)).tolist() == [False, False, False, True]
    assert to_numpy(xp.greater_equal(a, b)).tolist() == [False, True, True, False]
    z = xp.asarray([complex(1, nan), 1 + 2j], device=device)
    assert to_numpy(xp.equal(z, 1 + 2j)).tolist() == [False, True]
    assert to_numpy(xp.isnan(z)).tolist() == [True, False]
    assert to_numpy(xp.isinf(xp.asarray([complex(nan, inf)], device=device))).tolist() == [True]
    assert to_numpy(xp.isfinite(xp.asarray([1, 2], device=device))).tolist() == [True, True]


# --------------------------------------------------------------------------------------------
# complex special cases (C99 Annex G as the standard states them), corrected where a backend
# deviates: NumPy's expm1 and tanh, jax.numpy's inverse and hyperbolic functions and log1p
# --------------------------------------------------------------------------------------------
PM = "±"  # a part whose sign the standard leaves unspecified (the value is still checked)
HALF_PI = math.pi / 2

# function -> [(x, (real part, imaginary part))]; a part may be (PM, value)
COMPLEX_CASES: dict[str, list[tuple[complex, tuple[Any, Any]]]] = {
    "expm1": [
        (complex(0.0, 0.0), (0.0, 0.0)), (complex(-0.0, 0.0), (0.0, 0.0)),
        (complex(-0.0, -0.0), (0.0, -0.0)), (complex(inf, 0.0), (inf, 0.0)),
        (complex(inf, -0.0), (inf, -0.0)), (complex(nan, 0.0), (nan, 0.0)),
        (complex(1000.0, 0.0), (inf, 0.0)),  # exp(a) * sin(0) must not be inf * 0
        (complex(-inf, inf), (-1.0, (PM, 0.0))), (complex(-inf, nan), (-1.0, (PM, 0.0))),
        (complex(inf, inf), ((PM, inf), nan)), (complex(inf, nan), ((PM, inf), nan)),
        (complex(-inf, 2.0), (-1.0, 0.0)), (complex(-inf, 4.0), (-1.0, -0.0)),  # -1 + 0*cis(b)
        (complex(1.0, inf), (nan, nan)), (complex(1.0, nan), (nan, nan)),
        (complex(nan, 1.0), (nan, nan)), (complex(nan, nan), (nan, nan)),
    ],
    "tanh": [
        (complex(inf, 2.0), (1.0, 0.0)), (complex(inf, -2.0), (1.0, -0.0)),  # sin(4) < 0
        (complex(-inf, 2.0), (-1.0, 0.0)), (complex(inf, 1e30), (1.0, 0.0)),
        (complex(inf, 0.0), (1.0, 0.0)), (complex(inf, inf), (1.0, (PM, 0.0))),
        (complex(inf, nan), (1.0, (PM, 0.0))), (complex(0.0, inf), (0.0, nan)),
        (complex(0.0, nan), (0.0, nan)), (complex(-0.0, nan), (-0.0, nan)),
        (complex(nan, 0.0), (nan, 0.0)), (complex(nan, -0.0), (nan, -0.0)),
        (complex(nan, 1.0), (nan, nan)), (complex(1.0, inf), (nan, nan)),
        (complex(1.0, nan), (nan, nan)),
    ],
    "sinh": [
        (complex(0.0, inf), ((PM, 0.0), nan)), (complex(0.0, nan), ((PM, 0.0), nan)),
        (complex(inf, inf), ((PM, inf), nan)), (complex(inf, nan), ((PM, inf), nan)),
        (complex(nan, 0.0), (nan, 0.0)), (complex(nan, -0.0), (nan, -0.0)),
        (complex(nan, 1.0), (nan, nan)), (complex(1.0, inf), (nan, nan)),
        (complex(1.0, nan), (nan, nan)), (complex(inf, 0.0), (inf, 0.0)),
    ],
    "cosh": [
        (complex(0.0, inf), (nan, (PM, 0.0))), (complex(0.0, nan), (nan, (PM, 0.0))),
        (complex(inf, inf), ((PM, inf), nan)), (complex(inf, nan), (inf, nan)),
        (complex(nan, 0.0), (nan, (PM, 0.0))), (complex(nan, 1.0), (nan, nan)),
        (complex(1.0, inf), (nan, nan)), (complex(1.0, nan), (nan, nan)),
        (complex(inf, 0.0), (inf, 0.0)),
    ],
    "acos": [
        (complex(0.0, nan), (HALF_PI, nan)), (complex(-0.0, nan), (HALF_PI, nan)),
        (complex(2.0, nan), (nan, nan)), (complex(1e30, nan), (nan, nan)),
        (complex(inf, nan), (nan, (PM, inf))), (complex(nan, inf), (nan, -inf)),
        (complex(nan, 1.0), (nan, nan)), (complex(nan, nan), (nan, nan)),
        (complex(0.0, inf), (HALF_PI, -inf)),
    ],
    "acosh": [
        (complex(0.0, nan), (nan, (PM, HALF_PI))), (complex(1e30, nan), (nan, nan)),
        (complex(2.0, nan), (nan, nan)), (complex(inf, nan), (inf, nan)),
        (complex(-inf, nan), (inf, nan)), (complex(nan, inf), (inf, nan)),
        (complex(nan, 1.0), (nan, nan)), (complex(nan, nan), (nan, nan)),
    ],
    "asinh": [
        (complex(nan, 0.0), (nan, 0.0)), (complex(nan, 1e30), (nan, nan)),
        (complex(nan, -1e30), (nan, nan)), (complex(1.0, nan), (nan, nan)),
        (complex(inf, nan), (inf, nan)), (complex(nan, inf), ((PM, inf), nan)),
        (complex(nan, nan), (nan, nan)),
    ],
    "atanh": [
        (complex(0.0, nan), (0.0, nan)), (complex(-0.0, nan), (-0.0, nan)),
        (complex(inf, nan), (0.0, nan)), (complex(0.5, nan), (nan, nan)),
        (complex(1e30, nan), (nan, nan)), (complex(nan, 0.0), (nan, nan)),
        (complex(nan, 1.0), (nan, nan)), (complex(nan, nan), (nan, nan)),
        (complex(nan, inf), ((PM, 0.0), HALF_PI)), (complex(nan, -inf), ((PM, 0.0), -HALF_PI)),
    ],
    "log1p": [
        (complex(inf, nan), (inf, nan)), (complex(-inf, nan), (inf, nan)),
        (complex(nan, inf), (inf, nan)), (complex(nan, -inf), (inf, nan)),
        (complex(1.0, nan), (nan, nan)), (complex(nan, 1.0), (nan, nan)),
    ],
}  # fmt: skip


def _assert_part(got: float, want: Any, rtype: type, where: str) -> None:
    any_sign = isinstance(want, tuple)
    w = float(rtype(want[1] if any_sign else want))  # pi/2 rounded as the dtype rounds it
    if math.isnan(w):
        assert math.isnan(got), f"{where}: got {got!r}, want NaN"
    elif any_sign:
        assert abs(got) == w, f"{where}: got {got!r}, want ±{w!r}"
    else:
        assert got == w and math.copysign(1, got) == math.copysign(1, w), (
            f"{where}: got {got!r}, want {w!r}"
        )


@pytest.mark.parametrize("fname", sorted(COMPLEX_CASES))
def test_complex_special_cases_follow_the_standard(fname: str, device: str) -> None:
    cases = COMPLEX_CASES[fname]
    f = getattr(xp, fname)
    for dtype in supported(device, COMPLEX):
        rtype = np.float32 if dtype == "complex64" else np.float64
        a = np.array([z for z, _ in cases], dtype=dtype)
        res = f(xp.asarray(a, device=device))
        assert res.dtype == np.dtype(dtype) and str(res.device) == device
        got = to_numpy(res)
        # also one element at a time (0-d arrays), where NumPy's ufuncs return scalars
        single = [complex(to_numpy(f(xp.asarray(a[i], device=device)))) for i in range(len(a))]
        for i, (z, (wr, wi)) in enumerate(cases):
            for g in (complex(got[i]), single[i]):
                where = f"{fname}({z}) [{dtype}] = {g}"
                _assert_part(g.real, wr, rtype, where + " real part")
                _assert_part(g.imag, wi, rtype, where + " imaginary part")


NUMPY_NAMES = {"acos": "arccos", "acosh": "arccosh", "asinh": "arcsinh", "atanh": "arctanh"}


@pytest.mark.parametrize("fname", sorted(COMPLEX_CASES))
def test_complex_corrections_keep_ordinary_values(fname: str, device: str) -> None:
    # elements beside special ones keep the backend's values
    rng = np.random.default_rng(5)
    for dtype in supported(device, COMPLEX):
        a = (rng.uniform(-2, 2, 8) + 1j * rng.uniform(-2, 2, 8)).astype(dtype)
        a[3] = complex(inf, 2.0)
        a[5] = complex(nan, 0.0)
        got = to_numpy(getattr(xp, fname)(xp.asarray(a, device=device)))
        want = getattr(np, NUMPY_NAMES.get(fname, fname))(a)
        keep = [0, 1, 2, 4, 6, 7]
        tol = 1e-5 if dtype == "complex64" else 1e-12
        np.testing.assert_allclose(got[keep], want[keep], rtol=tol, atol=tol)


def test_sign_of_zero_is_positive_zero(device: str) -> None:
    # the standard's "0" and "0 + 0j" for zeros of any sign
    for dtype in supported(device, REAL_FLOAT):
        assert_exact(
            xp.sign(xp.asarray(np.array([-0.0, 0.0], dtype=dtype), device=device)),
            [0.0, 0.0],
            device,
        )
    for dtype in supported(device, COMPLEX):
        z = np.array(
            [complex(0.0, 0.0), complex(-0.0, 0.0), complex(0.0, -0.0), complex(-0.0, -0.0)],
            dtype=dtype,
        )
        got = to_numpy(xp.sign(xp.asarray(z, device=device)))
        assert got.dtype == np.dtype(dtype)
        assert not np.signbit(got.real).any() and not np.signbit(got.imag).any(), got
        assert (got == 0).all()


# --------------------------------------------------------------------------------------------
# clip
# --------------------------------------------------------------------------------------------
def test_clip_matches_numpy_for_ordered_bounds(device: str) -> None:
    rng = np.random.default_rng(11)
    for dtype in supported(device, REAL_NUMERIC):
        a = sample("clip", dtype, (3, 4), rng)
        lo, hi = (2, 9) if np.dtype(dtype).kind == "u" else (-3, 4)
        x = xp.asarray(a, device=device)
        assert_matches(xp.clip(x, lo, hi), np.clip(a, lo, hi), device)
        assert_matches(xp.clip(x, lo), np.clip(a, lo, None), device)
        assert_matches(xp.clip(x, max=hi), np.clip(a, None, hi), device)
        lows = np.array([lo, lo + 1, lo + 2, lo + 3], dtype=dtype)
        assert_matches(
            xp.clip(x, xp.asarray(lows, device=device), hi), np.clip(a, lows, hi), device
        )


def test_clip_keeps_the_dtype_of_x(device: str) -> None:
    x = xp.asarray(np.array([-100, 0, 100], dtype=np.int8), device=device)
    # bounds outside int8: no clipping, no overflow
    assert_matches(xp.clip(x, -1000, 1000), np.array([-100, 0, 100], dtype=np.int8), device)
    assert_matches(xp.clip(x, 50, 1000), np.array([50, 50, 100], dtype=np.int8), device)
    # array bounds of another dtype are cast to x's dtype
    hi = xp.asarray(np.array([10, 10, 10], dtype=np.int64), device=device)
    assert_matches(xp.clip(x, None, hi), np.array([-100, 0, 10], dtype=np.int8), device)
    f = xp.asarray(np.array([0.25, 5.0], dtype=np.float32), device=device)
    assert_matches(xp.clip(f, 0.5, 2.0), np.array([0.5, 2.0], dtype=np.float32), device)


def test_clip_nan_and_crossed_bounds(device: str) -> None:
    x = xp.asarray([nan, 1.0, 5.0, 9.0], device=device)
    assert_exact(xp.clip(x, 2.0, 6.0), [nan, 2.0, 5.0, 6.0], device)
    assert_exact(xp.clip(x, nan, 6.0), [nan] * 4, device)
    assert_exact(
        xp.clip(x, 2.0, xp.asarray([6.0, nan, 6.0, 6.0], device=device)),
        [nan, nan, 5.0, 6.0],
        device,
    )
    # min > max: the standard's maximum(minimum(x, max), min) gives min
    assert_exact(xp.clip(x, 7.0, 3.0), [nan, 7.0, 7.0, 7.0], device)


def test_clip_large_arrays_take_the_one_pass_path_with_the_same_values(device: str) -> None:
    rng = np.random.default_rng(17)
    a = rng.uniform(-10, 10, 20_000)
    a[::997] = nan
    x = xp.asarray(a, device=device)
    want = np.maximum(np.minimum(a, 4.0), -3.0)
    assert_matches(xp.clip(x, -3.0, 4.0), want, device)
    assert_matches(xp.clip(x, -3, 4), want, device)
    assert_exact(xp.clip(x, 5.0, 1.0)[1:4], [5.0] * 3, device)  # crossed bounds: still min
    i = xp.asarray(rng.integers(-100, 100, 20_000).astype(np.int16), device=device)
    assert_matches(xp.clip(i, -5, 7), np.clip(to_numpy(i), -5, 7), device)


def test_clip_without_bounds_returns_a_copy(device: str) -> None:
    x = xp.asarray([1.0, 2.0], device=device)
    r = xp.clip(x)
    assert r is not x
    r[0] = 99.0
    assert to_numpy(x).tolist() == [1.0, 2.0]


def test_clip_errors(device: str) -> None:
    x = xp.asarray([1, 2, 3], device=device)
    with pytest.raises(DTypeError, match=r"xp\.clip: min=0\.5 is a float but x has integer dtype"):
        xp.clip(x, 0.5)
    with pytest.raises(DTypeError, match=r"xp\.clip: max must be"):
        xp.clip(x, None, "3")  # type: ignore[arg-type]
    with pytest.raises(DTypeError, match=r"xp\.clip"):
        xp.clip(xp.asarray([1j], device=device), 0, 1)
    with pytest.raises(DeviceMismatchError, match=other_device(device)):
        xp.clip(x, xp.asarray([0, 0, 0], device=other_device(device)))
    with pytest.raises(ForeignArrayError):
        xp.clip(x, np.zeros(3, dtype=np.int64))  # type: ignore[arg-type]
    # the bound array itself is never modified
    lo = xp.asarray(np.array([-1000, 0, 5], dtype=np.int64), device=device)
    res = xp.clip(xp.asarray(np.array([1, 2, 3], dtype=np.int8), device=device), lo)
    assert_matches(res, np.array([1, 2, 5], dtype=np.int8), device)  # -1000 saturates, never wraps
    assert to_numpy(lo).tolist() == [-1000, 0, 5]


# --------------------------------------------------------------------------------------------
# errors: dtype groups, devices, foreign arrays
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SPEC_FUNCTIONS)
def test_dtypes_outside_the_group_raise(name: str) -> None:
    f = getattr(xp, name)
    outside = [d for d in ALL if d not in GROUPS[name]]
    for dtype in outside:
        x = xp.asarray(np.zeros(2, dtype=dtype))
        with pytest.raises(
            DTypeError, match=rf"xp\.{name}: x1? must have an? [\w -]+ dtype, got {dtype}"
        ):
            if name in BINARY:
                f(x, x)
            else:
                f(x)
        if name in BINARY:  # the array next to a scalar is checked as well
            with pytest.raises(DTypeError, match=rf"xp\.{name}"):
                f(1, x)


@pytest.mark.parametrize("name", [*sorted(BINARY), "clip"])
def test_mixing_devices_raises(name: str, device: str) -> None:
    dtype = next(d for d in ["float64", "int64", "bool"] if d in GROUPS[name])
    other = other_device(device)
    x = xp.asarray(np.ones(3, dtype=dtype), device=device)
    y = xp.asarray(np.ones(3, dtype=dtype), device=other)
    with pytest.raises(
        DeviceMismatchError, match=rf"xp\.{name}: operands live on different devices"
    ) as info:
        getattr(xp, name)(x, y)
    assert device in str(info.value) and other in str(info.value)
    with pytest.raises(DeviceMismatchError):
        getattr(xp, name)(y, x)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_foreign_and_unsupported_operands_raise(name: str, device: str) -> None:
    f = getattr(xp, name)
    x = xp.asarray([1.0, 2.0], device=device)
    with pytest.raises(ForeignArrayError, match="xp.asarray"):
        f(x, np.ones(2))
    with pytest.raises(ForeignArrayError):
        f(np.ones(2), x)
    with pytest.raises(DTypeError, match=rf"xp\.{name}"):
        f(1, 2)
    with pytest.raises(DTypeError):
        f(x, "a")


def test_unary_functions_reject_non_arrays() -> None:
    with pytest.raises(DTypeError, match=r"xp\.sin: expected an hpcai Array"):
        xp.sin(1.0)  # type: ignore[arg-type]
    with pytest.raises(ForeignArrayError):
        xp.exp(np.ones(2))  # type: ignore[arg-type]


def test_broadcast_errors_are_shape_errors(device: str) -> None:
    from hpcai.errors import ShapeError

    a = xp.asarray([1.0, 2.0, 3.0], device=device)
    b = xp.asarray([1.0, 2.0], device=device)
    for f in (xp.add, xp.floor_divide, xp.pow, xp.atan2):
        with pytest.raises(ShapeError, match=rf"xp\.{f.__name__}"):
            f(a, b)


# --------------------------------------------------------------------------------------------
# residency tags flow into every result
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SPEC_FUNCTIONS)
def test_tags_propagate(name: str, device: str) -> None:
    dtype = supported(device, GROUPS[name])[-1]
    rng = np.random.default_rng(5)
    a = sample(name, dtype, (3,), rng)
    x = xp.asarray(a, device=device, tags={"origin": "DE"})
    f = getattr(xp, name)
    if name in UNARY:
        assert f(x).tags == {"origin": frozenset({"DE"})}
        assert f(xp.asarray(a, device=device)).tags == {}
        return
    if name == "clip":
        lo = xp.asarray(a, device=device, tags={"origin": "FR", "owner": "lab"})
        assert f(x).tags == {"origin": frozenset({"DE"})}
        assert f(x, lo).tags == {"origin": frozenset({"DE", "FR"}), "owner": frozenset({"lab"})}
        return
    y = xp.asarray(sample_x2(name, dtype, (3,), rng), device=device, tags={"origin": "FR"})
    assert f(x, y).tags == {"origin": frozenset({"DE", "FR"})}
    s = scalar_for(name, dtype)
    assert f(x, s).tags == {"origin": frozenset({"DE"})}
    assert f(s, y).tags == {"origin": frozenset({"FR"})}
    assert f(xp.asarray(a, device=device), xp.asarray(to_numpy(y), device=device)).tags == {}


# --------------------------------------------------------------------------------------------
# the operators that go through these functions
# --------------------------------------------------------------------------------------------
OPERATORS = [
    (operator.floordiv, operator.ifloordiv, "floor_divide"),
    (operator.mod, operator.imod, "remainder"),
    (operator.pow, operator.ipow, "pow"),
    (operator.lshift, operator.ilshift, "bitwise_left_shift"),
    (operator.rshift, operator.irshift, "bitwise_right_shift"),
]


@pytest.mark.parametrize(("op", "iop", "name"), OPERATORS, ids=[o[2] for o in OPERATORS])
def test_operators_match_numpy(
    op: Callable[[Any, Any], Any], iop: Callable[[Any, Any], Any], name: str, device: str
) -> None:
    rng = np.random.default_rng(13)
    dtypes = supported(device, ["int8", "int64", "uint16"] + ([] if name in SHIFTS else REAL_FLOAT))
    for dtype in dtypes:
        a = sample(name, dtype, (2, 3), rng)
        b = sample_x2(name, dtype, (3,), rng)
        s = scalar_for(name, dtype)
        x = xp.asarray(a, device=device, tags={"origin": "DE"})
        y = xp.asarray(b, device=device)
        assert_matches(op(x, y), op(a, b), device)
        assert_matches(op(x, s), op(a, s), device)
        assert_matches(op(s, y), op(s, b), device)  # reflected: the scalar is x1
        yt = xp.asarray(b, device=device, tags={"origin": "DE"})
        assert op(s, y).tags == {} and op(s, yt).tags == {"origin": frozenset({"DE"})}
        # in place: same object, same dtype, NumPy's values
        z = xp.asarray(a.copy(), device=device)
        ident = id(z)
        z = iop(z, y)
        assert id(z) == ident
        assert_matches(z, op(a, b), device)
        z = iop(z, s)
        assert id(z) == ident
        assert_matches(z, op(op(a, b), s), device)
        t = xp.asarray(a.copy(), device=device)
        t = iop(t, xp.asarray(b, device=device, tags={"origin": "FR"}))
        assert t.tags == {"origin": frozenset({"FR"})}


def test_inplace_operators_keep_the_dtype(device: str) -> None:
    x = xp.asarray([5, 7], device=device)
    with pytest.raises(DTypeError, match="in-place"):
        x //= 2.5
    with pytest.raises(DTypeError, match="in-place"):
        x **= 0.5
    assert to_numpy(x).tolist() == [5, 7]


def test_inplace_special_cases(device: str) -> None:
    x = xp.asarray([-0.0, -inf, 4.0], device=device)
    x **= 0.5
    assert_exact(x, [0.0, inf, 2.0], device)
    y = xp.asarray([inf, -2.0], device=device)
    y //= xp.asarray([3.0, inf], device=device)
    assert_exact(y, [inf, -0.0], device)
    z = xp.asarray([1.0, -1.0], device=device)
    z //= -inf
    assert_exact(z, [-0.0, 0.0], device)


def test_operators_refuse_other_devices(device: str) -> None:
    x = xp.asarray([4, 8], device=device)
    y = xp.asarray([1, 2], device=other_device(device))
    for op in (operator.floordiv, operator.mod, operator.pow, operator.lshift, operator.rshift):
        with pytest.raises(DeviceMismatchError):
            op(x, y)
    with pytest.raises(DeviceMismatchError):
        x //= y
    assert to_numpy(x).tolist() == [4, 8]
