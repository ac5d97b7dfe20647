"""Data types: NumPy ``dtype`` objects, for users and inside.

``xp.float64`` is ``numpy.dtype("float64")``, as the dtypes of NumPy, JAX, CuPy and dask
are: the standard asks only for ``==`` between dtypes, and being NumPy dtypes lets
libraries that reason about dtypes the NumPy way (xarray's fill values and promotion,
pandas, ``np.issubdtype``) take hpcai arrays. NumPy's equality is lenient
(``np.dtype("float64") == "float64"`` and ``== None`` are ``True``): compare with the
namespace's dtypes or use ``xp.isdtype``.

Dtype groups are module-level frozensets of NumPy dtypes, so checking membership is one
hash lookup.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np

DTypeGroup: TypeAlias = "frozenset[np.dtype[Any]]"

__all__ = [
    "DType",
    "bool",
    "complex64",
    "complex128",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
]

#: The class of hpcai's data types: they are NumPy ``dtype`` objects, as in NumPy, JAX,
#: CuPy and dask, so code that inspects ``x.dtype`` the NumPy way (``dtype.kind``,
#: ``dtype.type``, ``np.issubdtype``, xarray's and pandas' dtype logic) works on hpcai
#: arrays unchanged. ``x.dtype == xp.float64`` and ``xp.isdtype`` are the portable tests.
DType = np.dtype


# NumPy dtype objects: what the implementation computes with (backends take these).
_np_bool: np.dtype[Any] = np.dtype("bool")
_np_int8: np.dtype[Any] = np.dtype("int8")
_np_int16: np.dtype[Any] = np.dtype("int16")
_np_int32: np.dtype[Any] = np.dtype("int32")
_np_int64: np.dtype[Any] = np.dtype("int64")
_np_uint8: np.dtype[Any] = np.dtype("uint8")
_np_uint16: np.dtype[Any] = np.dtype("uint16")
_np_uint32: np.dtype[Any] = np.dtype("uint32")
_np_uint64: np.dtype[Any] = np.dtype("uint64")
_np_float32: np.dtype[Any] = np.dtype("float32")
_np_float64: np.dtype[Any] = np.dtype("float64")
_np_complex64: np.dtype[Any] = np.dtype("complex64")
_np_complex128: np.dtype[Any] = np.dtype("complex128")

# The public objects: ``xp.float64`` and friends.
bool = _np_bool
int8 = _np_int8
int16 = _np_int16
int32 = _np_int32
int64 = _np_int64
uint8 = _np_uint8
uint16 = _np_uint16
uint32 = _np_uint32
uint64 = _np_uint64
float32 = _np_float32
float64 = _np_float64
complex64 = _np_complex64
complex128 = _np_complex128

_signed_integer_dtypes: DTypeGroup = frozenset({_np_int8, _np_int16, _np_int32, _np_int64})
_unsigned_integer_dtypes: DTypeGroup = frozenset({_np_uint8, _np_uint16, _np_uint32, _np_uint64})
_integer_dtypes: DTypeGroup = _signed_integer_dtypes | _unsigned_integer_dtypes
_boolean_dtypes: DTypeGroup = frozenset({_np_bool})
_real_floating_dtypes: DTypeGroup = frozenset({_np_float32, _np_float64})
_complex_floating_dtypes: DTypeGroup = frozenset({_np_complex64, _np_complex128})
_floating_dtypes: DTypeGroup = _real_floating_dtypes | _complex_floating_dtypes
_integer_or_boolean_dtypes: DTypeGroup = _integer_dtypes | _boolean_dtypes
_real_numeric_dtypes: DTypeGroup = _integer_dtypes | _real_floating_dtypes
_numeric_dtypes: DTypeGroup = _real_numeric_dtypes | _complex_floating_dtypes
_all_dtypes: DTypeGroup = _numeric_dtypes | _boolean_dtypes

#: Human-readable names of the groups, for error messages.
GROUP_NAMES: dict[DTypeGroup, str] = {
    _signed_integer_dtypes: "signed integer",
    _unsigned_integer_dtypes: "unsigned integer",
    _integer_dtypes: "integer",
    _boolean_dtypes: "boolean",
    _real_floating_dtypes: "real floating-point",
    _complex_floating_dtypes: "complex floating-point",
    _floating_dtypes: "floating-point",
    _integer_or_boolean_dtypes: "integer or boolean",
    _real_numeric_dtypes: "real numeric",
    _numeric_dtypes: "numeric",
    _all_dtypes: "any standard",
}

#: Standard dtypes by name (extensions such as bfloat16 are added by hpcai.precision).
DTYPES_BY_NAME: dict[str, np.dtype[Any]] = {d.name: d for d in _all_dtypes}

# Extension dtypes (not in the standard's groups): bfloat16 and float8 from ml_dtypes, when
# installed (``pip install hpcai[precision]``). They are NumPy dtypes too, so every backend
# that stores NumPy-compatible dtypes (NumPy, emulated, JAX) can hold them.
try:
    import ml_dtypes as _ml_dtypes
except ImportError:  # pragma: no cover - ml_dtypes is an optional dependency
    _extension_dtypes: frozenset[np.dtype[Any]] = frozenset()
else:
    _extension_dtypes = frozenset(
        np.dtype(t) for t in (_ml_dtypes.bfloat16, _ml_dtypes.float8_e4m3fn, _ml_dtypes.float8_e5m2)
    )
    bfloat16 = np.dtype(_ml_dtypes.bfloat16)
    float8_e4m3fn = np.dtype(_ml_dtypes.float8_e4m3fn)
    float8_e5m2 = np.dtype(_ml_dtypes.float8_e5m2)
    __all__ += ["bfloat16", "float8_e4m3fn", "float8_e5m2"]
    DTYPES_BY_NAME.update({d.name: d for d in _extension_dtypes})
