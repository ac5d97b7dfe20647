"""Conformance of hpcai with the Python Array API standard 2024.12: what the official suite does not check.

The measure of conformance is the standard's own suite, data-apis/array-api-tests, which
``ci/test.sh`` runs on ``numpy:cpu``, ``emulated:0``, an emulated gaudi3 and ``jax:cpu:0``
(``ci/conformance.sh``; its special-case tests cover every elementwise function). This
file keeps the checks that suite does not make:

* the surface: every name of the standard (taken from array_api_strict with
  ``api_version="2024.12"``) exists in ``hpcai``, ``hpcai.linalg``, ``hpcai.fft`` and on
  ``Array``, as a real function with type hints and a docstring;
* signatures: parameter names, kinds and defaults equal the standard's (hpcai's own
  keyword-only extensions are listed in ``EXTENSIONS``);
* the inspection namespace and the 0-d conversions on every device kind, named explicitly
  (the suite runs on one default device per run).
"""

from __future__ import annotations

import enum
import inspect
import math
import operator
from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import pytest

import hpcai as xp

strict = pytest.importorskip("array_api_strict")
strict.set_array_api_strict_flags(api_version="2024.12")

DEVICES = ["numpy:cpu", "emulated:0"]
if "jax:cpu:0" in {str(d) for d in xp.all_devices()}:
    DEVICES.append("jax:cpu:0")

#: Names array_api_strict exports that are not part of the standard's namespace.
STRICT_ONLY = {
    "ArrayAPIStrictFlags",
    "Device",
    "__version__",
    "get_array_api_strict_flags",
    "reset_array_api_strict_flags",
    "set_array_api_strict_flags",
}

#: hpcai's extra keyword-only parameters (the standard allows extensions of this form).
EXTENSIONS: dict[str, set[str]] = {
    "asarray": {"tags"},
}

#: Where array_api_strict's signature differs from the 2024.12 stubs, the stubs win.
#: ``to_device(self, device, /, *, stream=None)`` has a keyword-only stream in the standard.
SPEC_KEYWORD_ONLY: dict[str, set[str]] = {
    "Array.to_device": {"stream"},
}

#: Array members of the standard that are attributes (properties), not methods.
ARRAY_PROPERTIES = {"T", "mT", "device", "dtype", "ndim", "shape", "size"}

#: array_api_strict's Array members that the standard does not define.
STRICT_ARRAY_PRIVATE = {"__array__", "__buffer__", "__iter__", "__reduce__", "__hash__"}


# --------------------------------------------------------------------------------------------
# the reference list of names
# --------------------------------------------------------------------------------------------
def _is_newer_than_2024_12(fn: Any) -> bool:
    """array_api_strict exports 2025.12 additions too; under 2024.12 flags they refuse to run."""
    if not inspect.isfunction(fn):
        return False
    try:
        fn()
    except RuntimeError as exc:
        return "requires API version" in str(exc)
    except Exception:
        return False
    return False


def _top_level_names() -> list[str]:
    names = []
    for n in strict.__all__:
        if n in STRICT_ONLY or n in ("linalg", "fft"):
            continue
        if _is_newer_than_2024_12(getattr(strict, n)):
            continue
        names.append(n)
    return sorted(names)


def _extension_names(ext: str) -> list[str]:
    mod = getattr(strict, ext)
    return sorted(n for n in mod.__all__ if not _is_newer_than_2024_12(getattr(mod, n)))


def _array_members() -> list[str]:
    cls = type(strict.ones(1))
    out = []
    for n, v in vars(cls).items():
        if n in STRICT_ARRAY_PRIVATE or (n.startswith("_") and not n.startswith("__")):
            continue
        if n in ARRAY_PROPERTIES or (
            callable(v) and n not in {"__new__", "__init__", "__repr__", "__str__"}
        ):
            out.append(n)
    return sorted(out)


TOP = _top_level_names()
LINALG = _extension_names("linalg")
FFT = _extension_names("fft")
ARRAY_MEMBERS = _array_members()
TOP_FUNCTIONS = [n for n in TOP if inspect.isfunction(getattr(strict, n))]


def test_reference_list_is_the_2024_12_standard() -> None:
    """Sanity of the reference: 2025.12 additions are left out, the big chapters are in."""
    assert strict.__array_api_version__ == "2024.12"
    assert "isin" not in TOP and "broadcast_shapes" not in TOP
    for n in (
        "asarray",
        "matmul",
        "unique_all",
        "take_along_axis",
        "cumulative_prod",
        "nextafter",
        "diff",
    ):
        assert n in TOP
    assert {"solve", "eigh", "svd", "vector_norm"} <= set(LINALG)
    assert {"fft", "irfftn", "fftfreq", "ihfft"} <= set(FFT)
    assert {"__dlpack__", "to_device", "__setitem__", "mT", "__rpow__"} <= set(ARRAY_MEMBERS)


def test_api_version() -> None:
    assert xp.__array_api_version__ == "2024.12"
    x = xp.asarray([1.0], device="numpy:cpu")
    assert x.__array_namespace__() is xp
    assert x.__array_namespace__(api_version="2024.12") is xp
    with pytest.raises(Exception, match="1999.01"):
        x.__array_namespace__(api_version="1999.01")


# --------------------------------------------------------------------------------------------
# (a) names exist, are real functions with type hints and docstrings
# --------------------------------------------------------------------------------------------
def _check_function(qual: str, fn: Any, name: str) -> list[str]:
    problems = []
    if not inspect.isfunction(fn):
        problems.append(f"{qual} is {type(fn).__name__}, not a function")
        return problems
    if fn.__name__ != name:
        problems.append(f"{qual}.__name__ is {fn.__name__!r}")
    if not (fn.__doc__ or "").strip():
        problems.append(f"{qual} has no docstring")
    sig = inspect.signature(fn)
    for p in sig.parameters.values():
        if p.name != "self" and p.annotation is inspect.Parameter.empty:
            problems.append(f"{qual}: parameter {p.name} has no type hint")
    if sig.return_annotation is inspect.Signature.empty:
        problems.append(f"{qual}: no return type hint")
    return problems


@pytest.mark.parametrize("name", TOP)
def test_top_level_name(name: str) -> None:
    assert hasattr(xp, name), f"hpcai has no {name}"
    assert name in xp.__all__ or name.startswith("__"), f"{name} is missing from hpcai.__all__"
    ref = getattr(strict, name)
    obj = getattr(xp, name)
    if inspect.isfunction(ref):
        assert _check_function(f"xp.{name}", obj, name) == []
    elif isinstance(ref, float):
        assert isinstance(obj, float) and (obj == ref or (math.isnan(obj) and math.isnan(ref)))
    elif name == "newaxis":
        assert obj is None
    elif name == "__array_api_version__":
        assert obj == "2024.12"
    else:  # a dtype
        assert np.dtype(obj).name == name


@pytest.mark.parametrize(
    ("ext", "name"), [("linalg", n) for n in LINALG] + [("fft", n) for n in FFT]
)
def test_extension_name(ext: str, name: str) -> None:
    mod = getattr(xp, ext)
    assert hasattr(mod, name), f"hpcai.{ext} has no {name}"
    assert name in mod.__all__
    assert _check_function(f"xp.{ext}.{name}", getattr(mod, name), name) == []


@pytest.mark.parametrize("name", ARRAY_MEMBERS)
def test_array_member_exists(name: str) -> None:
    member = inspect.getattr_static(xp.Array, name, None)
    assert member is not None, f"Array has no {name}"
    if name in ARRAY_PROPERTIES:
        assert isinstance(member, property), f"Array.{name} should be a property"
        assert member.fget is not None and "return" in member.fget.__annotations__
    else:
        assert inspect.isfunction(member), f"Array.{name} is {type(member).__name__}"
        sig = inspect.signature(member)
        assert all(
            p.annotation is not inspect.Parameter.empty
            for p in sig.parameters.values()
            if p.name != "self"
        )
        assert sig.return_annotation is not inspect.Signature.empty


def _doc_of(member: Any) -> str:
    fn = member.fget if isinstance(member, property) else member
    return (getattr(fn, "__doc__", None) or "").strip()


_UNDOCUMENTED_MEMBERS = sorted(
    n for n in ARRAY_MEMBERS if not _doc_of(inspect.getattr_static(xp.Array, n, None))
)


def test_array_members_have_docstrings() -> None:
    assert _UNDOCUMENTED_MEMBERS == []


# --------------------------------------------------------------------------------------------
# (b) signatures
# --------------------------------------------------------------------------------------------
def _params(
    sig: inspect.Signature, keyword_only: Collection[str] = ()
) -> list[tuple[str, str, Any]]:
    out = []
    for p in sig.parameters.values():
        default = p.default
        if isinstance(default, enum.Enum) and type(default).__name__ == "Undef":
            default = (
                None  # array_api_strict's "not given" sentinel; the standard's default is None
            )
        kind = p.kind
        if p.name in keyword_only:
            kind = inspect.Parameter.KEYWORD_ONLY
        if p.name == "self":
            kind = inspect.Parameter.POSITIONAL_ONLY  # always passed positionally
        out.append(
            (p.name, kind.name, "<required>" if default is inspect.Parameter.empty else default)
        )
    return out


def _compare_signatures(qual: str, ref: Any, ours: Any) -> list[str]:
    name = qual.rsplit(".", 1)[-1]
    want = _params(inspect.signature(ref), SPEC_KEYWORD_ONLY.get(qual, set()))
    got = _params(inspect.signature(ours))
    extra_allowed = EXTENSIONS.get(name, set()) if not qual.startswith("Array.") else set()
    problems = []
    got_std = [g for g in got if g[0] not in extra_allowed]
    for g in got:
        if g[0] in extra_allowed and (g[1] != "KEYWORD_ONLY" or g[2] == "<required>"):
            problems.append(
                f"{qual}: extension {g[0]} must be keyword-only with a default, got {g}"
            )
    if got_std != want:
        problems.append(f"{qual}: {got_std} != standard {want}")
    return problems


SIGNATURE_CASES = (
    [(n, getattr(strict, n), n) for n in TOP_FUNCTIONS]
    + [(f"linalg.{n}", getattr(strict.linalg, n), ("linalg", n)) for n in LINALG]
    + [(f"fft.{n}", getattr(strict.fft, n), ("fft", n)) for n in FFT]
    + [
        (f"Array.{n}", getattr(type(strict.ones(1)), n), ("Array", n))
        for n in ARRAY_MEMBERS
        if n not in ARRAY_PROPERTIES
    ]
)


def _ours(where: Any) -> Any:
    if isinstance(where, str):
        return getattr(xp, where)
    scope, name = where
    if scope == "Array":
        return inspect.getattr_static(xp.Array, name)
    return getattr(getattr(xp, scope), name)


@pytest.mark.parametrize(
    ("qual", "ref", "where"), SIGNATURE_CASES, ids=[c[0] for c in SIGNATURE_CASES]
)
def test_signature(qual: str, ref: Any, where: Any) -> None:
    assert _compare_signatures(qual, ref, _ours(where)) == []


def test_signature_check_catches_differences() -> None:
    """The comparison is not vacuous: a renamed, re-kinded or re-defaulted parameter is reported."""

    def renamed(y: Any, /) -> Any: ...

    def keyword(x: Any, *, axis: int | None = None) -> Any: ...

    def defaulted(x: Any, /, *, axis: int | None = 0, keepdims: bool = False) -> Any: ...

    assert _compare_signatures("abs", strict.abs, renamed)
    assert _compare_signatures("abs", strict.abs, keyword)
    assert _compare_signatures("sum", strict.sum, defaulted)
    assert _compare_signatures("asarray", strict.asarray, xp.asarray) == []  # tags= is allowed


def test_info_signatures() -> None:
    ours, ref = type(xp.__array_namespace_info__()), type(strict.__array_namespace_info__())
    for n in ("capabilities", "default_device", "default_dtypes", "devices", "dtypes"):
        assert _params(inspect.signature(getattr(ours, n))) == _params(
            inspect.signature(getattr(ref, n))
        ), n
        assert (getattr(ours, n).__doc__ or "").strip(), n


# --------------------------------------------------------------------------------------------
# __array_namespace_info__
# --------------------------------------------------------------------------------------------
KIND_NAMES: list[str | tuple[str, ...]] = [
    "bool",
    "signed integer",
    "unsigned integer",
    "integral",
    "real floating",
    "complex floating",
    "numeric",
    ("bool", "real floating"),
    ("signed integer", "complex floating"),
]


@pytest.mark.parametrize("device", DEVICES)
def test_namespace_info(device: str) -> None:
    info = xp.__array_namespace_info__()
    ref = strict.__array_namespace_info__()
    devices = info.devices()
    assert isinstance(devices, (list, tuple)) and len(devices) >= 2
    assert device in [str(d) for d in devices]
    assert info.default_device() in devices
    for d in devices:
        # each listed device is usable as device=
        assert xp.zeros(2, device=d).device == d
    dev = xp.resolve_device(device)
    assert set(info.dtypes(device=dev)) == set(ref.dtypes())
    assert set(info.dtypes(device=device)) == set(ref.dtypes())
    for name, dt in info.dtypes(device=device).items():
        assert dt == getattr(xp, name)
    for kind in KIND_NAMES:
        assert set(info.dtypes(device=device, kind=kind)) == set(ref.dtypes(kind=kind)), kind
    with pytest.raises(Exception, match="kind"):
        info.dtypes(device=device, kind="floating-ish")
    defaults = info.default_dtypes(device=device)
    assert set(defaults) == {"real floating", "complex floating", "integral", "indexing"}
    assert defaults["real floating"] == xp.float64 and defaults["complex floating"] == xp.complex128
    assert defaults["integral"] == xp.int64 and defaults["indexing"] == xp.int64
    assert xp.asarray(1.5, device=device).dtype == defaults["real floating"]
    assert xp.asarray(1, device=device).dtype == defaults["integral"]
    assert xp.arange(3, device=device).dtype == defaults["integral"]
    caps = info.capabilities()
    assert set(caps) == {"boolean indexing", "data-dependent shapes", "max dimensions"}
    assert caps["boolean indexing"] is True and caps["data-dependent shapes"] is True
    assert caps["max dimensions"] is None or (
        isinstance(caps["max dimensions"], int) and caps["max dimensions"] >= 32
    )


def test_finfo_iinfo_match_numpy() -> None:
    for name in ("float32", "float64"):
        fi, ref = xp.finfo(getattr(xp, name)), np.finfo(name)
        assert (fi.bits, fi.eps, fi.max, fi.min, fi.smallest_normal) == (
            ref.bits,
            float(ref.eps),
            float(ref.max),
            float(ref.min),
            float(ref.smallest_normal),
        )
        assert fi.dtype == getattr(xp, name)
    assert xp.finfo(xp.complex64).dtype == xp.float32
    for name in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"):
        ii, ri = xp.iinfo(getattr(xp, name)), np.iinfo(name)
        assert (ii.bits, ii.min, ii.max) == (ri.bits, int(ri.min), int(ri.max))
        assert ii.dtype == getattr(xp, name)


# --------------------------------------------------------------------------------------------
# 0-d conversions: the special cases of __bool__, __int__, __float__, __complex__, __index__
# --------------------------------------------------------------------------------------------
_NEG_ZERO, _INF, _NAN = -0.0, math.inf, math.nan


def _same_value(got: Any, want: Any) -> bool:
    if isinstance(want, complex):
        return (
            isinstance(got, complex)
            and _same_value(got.real, want.real)
            and _same_value(got.imag, want.imag)
        )
    if isinstance(want, float) and math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    return (
        type(got) is type(want)
        and got == want
        and (not isinstance(want, float) or math.copysign(1, got) == math.copysign(1, want))
    )


CONVERSIONS: list[tuple[str, Any, Any, Any]] = [
    # (conversion, value, dtype, expected result or exception class)
    ("bool", _NAN, "float64", True),
    ("bool", _INF, "float64", True),
    ("bool", -_INF, "float32", True),
    ("bool", 0.0, "float64", False),
    ("bool", _NEG_ZERO, "float64", False),
    ("bool", 2.5, "float32", True),
    ("bool", 0, "int8", False),
    ("bool", -3, "int64", True),
    ("bool", True, "bool", True),
    ("bool", complex(0.0, 0.0), "complex128", False),
    ("bool", complex(_NEG_ZERO, 0.0), "complex64", False),
    ("bool", complex(0.0, _NAN), "complex128", True),
    ("bool", complex(0.0, 1.0), "complex128", True),
    ("int", True, "bool", 1),
    ("int", False, "bool", 0),
    ("int", 2.75, "float64", 2),
    ("int", -2.75, "float32", -2),
    ("int", _NEG_ZERO, "float64", 0),
    ("int", -7, "int16", -7),
    ("int", 2**63 - 1, "int64", 2**63 - 1),
    ("int", 2**64 - 1, "uint64", 2**64 - 1),
    ("int", _INF, "float64", OverflowError),
    ("int", -_INF, "float32", OverflowError),
    ("int", _NAN, "float64", ValueError),
    ("int", complex(1.0, 0.0), "complex128", TypeError),
    ("float", True, "bool", 1.0),
    ("float", False, "bool", 0.0),
    ("float", _NEG_ZERO, "float64", _NEG_ZERO),
    ("float", 0.1, "float32", float(np.float32(0.1))),
    ("float", 3, "int8", 3.0),
    ("float", complex(1.0, 0.0), "complex64", TypeError),
    ("complex", True, "bool", complex(1.0, 0.0)),
    ("complex", False, "bool", complex(0.0, 0.0)),
    ("complex", _INF, "float64", complex(_INF, 0.0)),
    ("complex", -_INF, "float64", complex(-_INF, 0.0)),
    ("complex", 2.5, "float32", complex(2.5, 0.0)),
    ("complex", complex(1.0, -2.0), "complex128", complex(1.0, -2.0)),
    ("index", 5, "int32", 5),
    ("index", 5, "uint8", 5),
    ("index", 5.0, "float64", TypeError),
]
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "bool": bool,
    "int": int,
    "float": float,
    "complex": complex,
    "index": operator.index,
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("conv", "value", "dtype", "want"),
    CONVERSIONS,
    ids=[f"{c[0]}({c[1]!r}:{c[2]})" for c in CONVERSIONS],
)
def test_scalar_conversion(device: str, conv: str, value: Any, dtype: str, want: Any) -> None:
    x = xp.asarray(np.asarray(value, dtype=dtype), device=device)
    assert x.ndim == 0
    if isinstance(want, type) and issubclass(want, Exception):
        with pytest.raises(want):
            _CONVERT[conv](x)
    else:
        got = _CONVERT[conv](x)
        assert _same_value(got, want), (
            f"{conv}({value!r}: {dtype}) gave {got!r}, the standard says {want!r}"
        )


@pytest.mark.parametrize("device", DEVICES)
def test_complex_of_nan_is_nan_nan(device: str) -> None:
    got = complex(xp.asarray(math.nan, device=device))
    assert math.isnan(got.real) and math.isnan(got.imag)
