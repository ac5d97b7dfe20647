"""Data type functions of the Array API standard (chapter "Data Type Functions").

Type promotion follows the standard's lattice (not NumPy's value-based or cross-kind
rules) wherever the standard defines it; where it leaves a combination unspecified
(integer with floating point, ``uint64`` with a signed integer, bool with numbers) hpcai
gives what the backend computes, i.e. NumPy's promotion. Since 2024.12 promotion also
depends on the device: on a device without FP64, ``float64`` is not a reachable result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hpcai.backends._base import LOW_PRECISION_FLOATS

from ._array import Array, _translate, _wrap
from ._device import Device, DeviceLike, resolve_device
from ._dtypes import (
    _boolean_dtypes,
    _complex_floating_dtypes,
    _integer_dtypes,
    _real_floating_dtypes,
    _signed_integer_dtypes,
    _unsigned_integer_dtypes,
)
from ._helpers import as_array, device_default_dtype, normalize_dtype, same_device
from ._transfer import move
from .errors import DTypeError, InvalidArgumentError, UnsupportedDtypeError

__all__ = ["astype", "can_cast", "finfo", "iinfo", "isdtype", "result_type"]

DType = np.dtype[Any]
_SCALARS = (bool, int, float, complex)
_FP64 = frozenset({"float64", "complex128"})
#: Floating-point extension dtypes (ml_dtypes, float16) that count as "real floating".
_EXT_REAL_FLOATING = LOW_PRECISION_FLOATS
_KINDS = (
    "bool",
    "signed integer",
    "unsigned integer",
    "integral",
    "real floating",
    "complex floating",
    "numeric",
)
_INT_BY_SIZE: dict[int, DType] = {1: np.dtype("int8"), 2: np.dtype("int16"), 4: np.dtype("int32"), 8: np.dtype("int64")}
_FLOAT_BY_SIZE: dict[int, DType] = {4: np.dtype("float32"), 8: np.dtype("float64")}
_COMPLEX_BY_SIZE: dict[int, DType] = {4: np.dtype("complex64"), 8: np.dtype("complex128")}


# --------------------------------------------------------------------------------------------
# helpers shared with the creation and info chapters
# --------------------------------------------------------------------------------------------
def device_supports(device: Device, dtype: DType) -> bool:
    """Whether arrays of *dtype* can live on *device* (natively, or FP64 under emulation)."""
    name = dtype.name
    if name in device.spec.native_dtypes:
        return True
    return name in _FP64 and device.spec.precision == "emulate"


def _unsupported(fname: str, device: Device, dtype: DType) -> UnsupportedDtypeError:
    spec = device.spec
    if dtype.name in _FP64:
        fix = 'use float32/complex64, or set precision = "emulate" for this device in the config'
    else:
        fix = f"use one of: {', '.join(sorted(spec.native_dtypes))}"
    return UnsupportedDtypeError(f"xp.{fname}: {spec.name} has no native {dtype.name} support; {fix}")


def _dtype_of(fname: str, obj: Any, argname: str) -> tuple[DType, Device | None]:
    """The dtype of an Array or a dtype argument, and the Array's device (else None)."""
    if obj.__class__ is Array:
        return obj._data.dtype, obj._device  # type: ignore[no-any-return]
    if isinstance(obj, np.dtype):
        return obj, None
    if isinstance(obj, _SCALARS) or obj is None:
        raise DTypeError(f"xp.{fname}: {argname} must be a dtype or an hpcai Array, got {obj!r}")
    if hasattr(obj, "__array_namespace__") or hasattr(obj, "__array__"):
        as_array(fname, obj)  # raises ForeignArrayError
    return normalize_dtype(fname, obj), None


def _std_kind(d: DType) -> str:
    """'b', 'i', 'u', 'f', 'c' for standard dtypes; '' for extensions."""
    if d in _boolean_dtypes:
        return "b"
    if d in _signed_integer_dtypes:
        return "i"
    if d in _unsigned_integer_dtypes:
        return "u"
    if d in _real_floating_dtypes:
        return "f"
    if d in _complex_floating_dtypes:
        return "c"
    return ""


def _promote(a: DType, b: DType) -> DType | None:
    """The standard's promotion of two dtypes, or None where the standard leaves it unspecified."""
    if a == b:
        return a
    ka, kb = _std_kind(a), _std_kind(b)
    if not ka or not kb or ka == "b" or kb == "b":
        return None
    if ka in "iu" and kb in "iu":
        if ka == kb:
            return a if a.itemsize >= b.itemsize else b
        signed, unsigned = (a, b) if ka == "i" else (b, a)
        if unsigned.itemsize < signed.itemsize:
            return signed
        if unsigned.itemsize == 8:
            return None
        return _INT_BY_SIZE[2 * unsigned.itemsize]
    if ka in "fc" and kb in "fc":
        size = max(a.itemsize // (2 if ka == "c" else 1), b.itemsize // (2 if kb == "c" else 1))
        return _COMPLEX_BY_SIZE[size] if "c" in (ka, kb) else _FLOAT_BY_SIZE[size]
    return None


def _promote_any(fname: str, a: DType, b: DType) -> DType:
    """Standard promotion; implementation-defined (NumPy's) where the standard is silent."""
    r = _promote(a, b)
    if r is not None:
        return r
    try:
        return np.result_type(a, b)
    except Exception as exc:
        raise DTypeError(f"xp.{fname}: no common data type for {a} and {b} ({exc})") from None


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------
def astype(x: Array, dtype: Any, /, *, copy: bool = True, device: DeviceLike | None = None) -> Array:
    """Cast *x* to *dtype* (irrespective of promotion rules), optionally onto another device.

    ``copy=False`` returns *x* itself when nothing changes. ``device=`` moves the data
    through the one movement path (recorded and policy-checked), casting on whichever
    side supports the target dtype. Complex to real casts are refused: take ``xp.real``
    or ``xp.imag`` first.

    >>> import hpcai as xp
    >>> xp.astype(xp.asarray([1.7, -2.2]), xp.int32)
    Array([ 1, -2], dtype=int32, device='numpy:cpu')
    """
    x = as_array("astype", x)
    dt = normalize_dtype("astype", dtype)
    if dt is None:
        raise DTypeError("xp.astype: dtype is required, got None; pass e.g. xp.float32")
    src_dt = x._data.dtype
    if src_dt.kind == "c" and dt.kind not in "cb":
        raise DTypeError(
            f"xp.astype: casting complex ({src_dt}) to real ({dt}) would discard the imaginary part; "
            "cast xp.real(x) or xp.imag(x) instead"
        )
    src = x._device
    dst = src if device is None else resolve_device(device)
    if not device_supports(dst, dt):
        raise _unsupported("astype", dst, dt)
    if dst is src:
        return _cast(x, dt, copy)
    if device_supports(src, dt):
        return move(_cast(x, dt, False), dst, op="astype")
    return _cast(move(x, dst, op="astype"), dt, False)


def _cast(x: Array, dt: DType, copy: bool) -> Array:
    if x._data.dtype == dt and not copy:
        return x
    dev = x._device
    try:
        data = dev._ns.astype(x._data, dt, copy=copy)
    except Exception as exc:
        raise _translate("xp.astype", exc) from None
    out = _wrap(data, dev, x._tags)
    if not data.shape and getattr(x, "_weak", False):
        out._weak = True  # a cast weak scalar is still the program's constant
    return out


def can_cast(from_: Array | Any, to: Any, /) -> bool:
    """Whether *from_* (a dtype or an array) can be cast to *to* under the standard's promotion rules.

    For an array the answer also accounts for its device: nothing casts to ``float64`` on a
    device without FP64.

    >>> import hpcai as xp
    >>> xp.can_cast(xp.int8, xp.int32), xp.can_cast(xp.float64, xp.float32)
    (True, False)
    """
    f, dev = _dtype_of("can_cast", from_, "from_")
    if to is None or to.__class__ is Array or isinstance(to, _SCALARS):
        raise DTypeError(f"xp.can_cast: `to` must be a dtype, got {to!r:.60}")
    t = normalize_dtype("can_cast", to)
    if dev is not None and not device_supports(dev, t):
        return False
    if f == t:
        return True
    if _std_kind(f) and _std_kind(t):
        r = _promote(f, t)
        return r is not None and r == t
    return bool(np.can_cast(f, t, casting="safe"))


@dataclass(frozen=True)
class finfo_object:
    """Machine limits of a floating-point dtype (the standard's ``finfo`` object)."""

    bits: int
    eps: float
    max: float
    min: float
    smallest_normal: float
    dtype: DType


@dataclass(frozen=True)
class iinfo_object:
    """Machine limits of an integer dtype (the standard's ``iinfo`` object)."""

    bits: int
    max: int
    min: int
    dtype: DType


def finfo(type: Array | Any, /) -> finfo_object:
    """Machine limits of a floating-point dtype (for complex dtypes: of their components).

    >>> import hpcai as xp
    >>> xp.finfo(xp.float32).bits, xp.finfo(xp.complex128).dtype
    (32, dtype('float64'))
    """
    dt, _ = _dtype_of("finfo", type, "type")
    if dt.kind not in "fc" and dt.name not in _EXT_REAL_FLOATING:
        raise DTypeError(f"xp.finfo: needs a floating-point dtype, got {dt}; use xp.iinfo for integers")
    try:
        fi: Any = np.finfo(dt)
    except Exception:
        try:
            import ml_dtypes

            fi = ml_dtypes.finfo(dt)
        except Exception as exc:
            raise DTypeError(f"xp.finfo: no machine limits known for {dt} ({exc})") from None
    return finfo_object(
        bits=int(fi.bits),
        eps=float(fi.eps),
        max=float(fi.max),
        min=float(fi.min),
        smallest_normal=float(fi.smallest_normal),
        dtype=np.dtype(fi.dtype),
    )


def iinfo(type: Array | Any, /) -> iinfo_object:
    """Machine limits of an integer dtype.

    >>> import hpcai as xp
    >>> xp.iinfo(xp.int8).min, xp.iinfo(xp.uint16).max
    (-128, 65535)
    """
    dt, _ = _dtype_of("iinfo", type, "type")
    if dt not in _integer_dtypes:
        raise DTypeError(f"xp.iinfo: needs an integer dtype, got {dt}; use xp.finfo for floating point")
    ii = np.iinfo(dt)
    return iinfo_object(bits=int(ii.bits), max=int(ii.max), min=int(ii.min), dtype=dt)


def _is_kind(dt: DType, kind: str) -> bool:
    k = dt.kind
    if kind == "bool":
        return k == "b"
    if kind == "signed integer":
        return k == "i"
    if kind == "unsigned integer":
        return k == "u"
    if kind == "integral":
        return k in "iu"
    if kind == "real floating":
        return k == "f" or dt.name in _EXT_REAL_FLOATING
    if kind == "complex floating":
        return k == "c"
    if kind == "numeric":
        return k in "iufc" or dt.name in _EXT_REAL_FLOATING
    raise InvalidArgumentError(
        f"xp.isdtype: unknown kind {kind!r}; expected a dtype or one of: {', '.join(map(repr, _KINDS))}"
    )


def isdtype(dtype: Any, kind: Any) -> bool:
    """Whether *dtype* is of *kind*: a dtype, a kind name, or a tuple of these.

    Kind names: ``'bool'``, ``'signed integer'``, ``'unsigned integer'``, ``'integral'``,
    ``'real floating'``, ``'complex floating'``, ``'numeric'``. Extension dtypes
    (``float16``, ``bfloat16``, float8) count as ``'real floating'``.

    >>> import hpcai as xp
    >>> xp.isdtype(xp.int8, ("integral", xp.float32)), xp.isdtype(xp.float64, "complex floating")
    (True, False)
    """
    if dtype.__class__ is Array:
        raise DTypeError("xp.isdtype: takes a dtype, got an array; pass x.dtype")
    dt = normalize_dtype("isdtype", dtype)
    if dt is None:
        raise DTypeError("xp.isdtype: dtype must be a data type, got None")
    if isinstance(kind, tuple):
        return any(_isdtype_one(dt, k) for k in kind)
    return _isdtype_one(dt, kind)


def _isdtype_one(dt: DType, kind: Any) -> bool:
    if isinstance(kind, str):
        return _is_kind(dt, kind)
    if isinstance(kind, np.dtype):
        return dt == kind
    if kind.__class__ is Array or kind is None or isinstance(kind, (tuple, *_SCALARS)):
        raise DTypeError(
            f"xp.isdtype: kind must be a dtype, a kind name or a tuple of these, got {kind!r:.60}"
        )
    return bool(dt == normalize_dtype("isdtype", kind))


def result_type(*arrays_and_dtypes: Array | Any | bool | int | float | complex) -> DType:
    """The dtype that type promotion gives for arrays, dtypes and Python scalars.

    Python scalars are "weak" (2024.12): they take the kind of the other operands, so
    ``result_type(int8_array, 1) == int8`` and ``result_type(float32, 1j) == complex64``.
    Arrays must share one device; its dtype support is taken into account.

    >>> import hpcai as xp
    >>> xp.result_type(xp.int8, xp.uint8), xp.result_type(xp.float32, 1.0)
    (dtype('int16'), dtype('float32'))
    """
    arrays: list[Array] = []
    dtypes: list[DType] = []
    scalars: list[bool | int | float | complex] = []
    for a in arrays_and_dtypes:
        if a.__class__ is Array:
            arrays.append(a)
            dtypes.append(a._data.dtype)
        elif isinstance(a, _SCALARS):
            scalars.append(a)
        else:
            dt, _ = _dtype_of("result_type", a, "each argument")
            dtypes.append(dt)
    if not dtypes:
        raise DTypeError(
            "xp.result_type: needs at least one array or dtype"
            + (f"; got only Python scalars {scalars!r:.60}" if scalars else "")
        )
    dev: Device | None = None
    if arrays:
        _, dev, _ = same_device("result_type", arrays)
    out = dtypes[0]
    for d in dtypes[1:]:
        out = _promote_any("result_type", out, d)
    default_float = np.dtype("float64") if dev is None else device_default_dtype(dev, "real floating")
    for s in scalars:
        out = _scalar_promote(out, s, default_float)
    if dev is not None and not device_supports(dev, out):
        raise _unsupported("result_type", dev, out)
    return out


def _scalar_promote(dt: DType, s: bool | int | float | complex, default_float: DType) -> DType:
    """Promotion of a dtype with a weak Python scalar (cross-kind: the default dtype of the scalar's kind)."""
    k = dt.kind
    if isinstance(s, bool):
        return dt
    if isinstance(s, int):
        return dt if k in "iufc" or dt.name in _EXT_REAL_FLOATING else np.dtype("int64")
    if isinstance(s, float):
        if k in "fc" or dt.name in _EXT_REAL_FLOATING:
            return dt
        return default_float
    if k == "c":
        return dt
    if k == "f" and dt.itemsize in _COMPLEX_BY_SIZE:
        return _COMPLEX_BY_SIZE[dt.itemsize]
    return _COMPLEX_BY_SIZE[default_float.itemsize]
