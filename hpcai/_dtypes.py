"""Data types: hpcai's dtypes are NumPy ``dtype`` objects (JAX and CuPy use the same ones).

Dtype groups are module-level frozensets, so checking membership is one hash lookup.
"""

from __future__ import annotations

import numpy as np

__all__ = [
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

_bool = bool

bool = np.dtype("bool")  # noqa: A001
int8 = np.dtype("int8")
int16 = np.dtype("int16")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
uint8 = np.dtype("uint8")
uint16 = np.dtype("uint16")
uint32 = np.dtype("uint32")
uint64 = np.dtype("uint64")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
complex64 = np.dtype("complex64")
complex128 = np.dtype("complex128")

_signed_integer_dtypes = frozenset({int8, int16, int32, int64})
_unsigned_integer_dtypes = frozenset({uint8, uint16, uint32, uint64})
_integer_dtypes = _signed_integer_dtypes | _unsigned_integer_dtypes
_boolean_dtypes = frozenset({bool})
_real_floating_dtypes = frozenset({float32, float64})
_complex_floating_dtypes = frozenset({complex64, complex128})
_floating_dtypes = _real_floating_dtypes | _complex_floating_dtypes
_integer_or_boolean_dtypes = _integer_dtypes | _boolean_dtypes
_real_numeric_dtypes = _integer_dtypes | _real_floating_dtypes
_numeric_dtypes = _real_numeric_dtypes | _complex_floating_dtypes
_all_dtypes = _numeric_dtypes | _boolean_dtypes

#: Human-readable names of the groups, for error messages.
GROUP_NAMES: dict[frozenset[np.dtype], str] = {
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
DTYPES_BY_NAME: dict[str, np.dtype] = {d.name: d for d in _all_dtypes}
