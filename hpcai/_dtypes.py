"""Data types: :class:`DType` objects for users, NumPy ``dtype`` objects inside.

The public dtypes (``xp.float64``, ``x.dtype``) are interned :class:`DType` objects with
exact equality (the standard asks for ``==`` between dtypes; a NumPy dtype also says
``np.dtype("float64") == None`` is ``True``). Inside the implementation, and towards the
backends (NumPy, JAX and CuPy all use NumPy dtypes), dtypes are NumPy ``dtype`` objects:
``normalize_dtype`` converts at the boundary, :func:`public` converts back.

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

_bool = bool


class DType:
    """An hpcai data type: ``xp.float64``, ``x.dtype``, the values of ``info.dtypes()``.

    One object per data type (interned), so ``is`` and ``==`` agree. ``==`` is exact: a
    DType equals itself and the NumPy ``dtype`` it stands for, nothing else, so
    ``xp.float64 == None`` and ``xp.float64 == "float64"`` are ``False`` (a NumPy dtype
    coerces both and would say ``True``). It hashes like that NumPy dtype, so either can
    look up a dict keyed by the other.

    Interoperability: ``numpy.dtype(xp.float64)`` (and so NumPy, JAX and CuPy functions
    given ``dtype=xp.float64``) gets the NumPy dtype through the :attr:`dtype` attribute.

    >>> import hpcai as xp
    >>> xp.float64 == xp.asarray([1.0]).dtype, xp.float64 == None, xp.float64.itemsize
    (True, False, 8)
    """

    __slots__ = ("_hash", "_np", "kind", "name")

    _np: np.dtype[Any]
    _hash: int
    #: The standard's name of the type (``"float64"``).
    name: str
    #: NumPy's one-letter kind code: ``b`` bool, ``i``/``u`` (un)signed integer, ``f`` real
    #: floating (``V`` for the ml_dtypes extensions), ``c`` complex.
    kind: str

    def __new__(cls, *args: object, **kwargs: object) -> DType:
        raise TypeError("hpcai.DType cannot be constructed; use the namespace's dtypes, e.g. xp.float64")

    @classmethod
    def _make(cls, np_dtype: np.dtype[Any]) -> DType:
        d = object.__new__(cls)
        object.__setattr__(d, "_np", np_dtype)
        object.__setattr__(d, "_hash", hash(np_dtype))
        object.__setattr__(d, "name", np_dtype.name)
        object.__setattr__(d, "kind", np_dtype.kind)
        return d

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("hpcai dtypes are immutable")

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes a DType lacks: NumPy-only ones (``type``, ``char``,
        # ``str``, ...) that code written for NumPy dtypes reads. Still an AttributeError (so
        # ``hasattr`` answers False), but one that says what to do instead.
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(
            f"hpcai.{self._np.name} has no attribute {name!r}: hpcai dtypes are not NumPy dtypes, so code "
            f"that needs NumPy's dtype.{name} cannot take hpcai arrays without exporting them. "
            "To write an xarray Dataset of hpcai arrays (ds.to_zarr / to_netcdf need NumPy), use "
            'hpcai.storage.save_dataset(ds, "hpcai://<endpoint>/<path>"), which stores the tags with each '
            "variable; for other NumPy-only code move explicitly: x.to_device(\"numpy:cpu\") (see docs/xarray.md)"
        )

    @property
    def dtype(self) -> np.dtype[Any]:
        """The NumPy dtype this type stands for (what ``numpy.dtype(self)`` returns)."""
        return self._np

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return self._np.itemsize

    def __eq__(self, other: object) -> _bool:
        if other is self:
            return True
        if other.__class__ is DType:
            return self._np == other._np  # type: ignore[attr-defined, no-any-return]
        if isinstance(other, np.dtype):
            return _bool(self._np == other)
        return False

    def __ne__(self, other: object) -> _bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"hpcai.{self.name}"

    def __str__(self) -> str:
        return self.name

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_by_name, (self.name,))

    def __copy__(self) -> DType:
        return self

    def __deepcopy__(self, memo: object) -> DType:
        return self


_PUBLIC: dict[np.dtype[Any], DType] = {}


def public(np_dtype: np.dtype[Any]) -> DType:
    """The interned hpcai DType of a NumPy dtype."""
    try:
        return _PUBLIC[np_dtype]
    except KeyError:
        d = _PUBLIC[np_dtype] = DType._make(np_dtype)
        return d


def _by_name(name: str) -> DType:
    """Unpickle a DType by name (the receiving process's interned object)."""
    return public(DTYPES_BY_NAME[name])


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
bool = public(_np_bool)
int8 = public(_np_int8)
int16 = public(_np_int16)
int32 = public(_np_int32)
int64 = public(_np_int64)
uint8 = public(_np_uint8)
uint16 = public(_np_uint16)
uint32 = public(_np_uint32)
uint64 = public(_np_uint64)
float32 = public(_np_float32)
float64 = public(_np_float64)
complex64 = public(_np_complex64)
complex128 = public(_np_complex128)

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
    bfloat16 = public(np.dtype(_ml_dtypes.bfloat16))
    float8_e4m3fn = public(np.dtype(_ml_dtypes.float8_e4m3fn))
    float8_e5m2 = public(np.dtype(_ml_dtypes.float8_e5m2))
    __all__ += ["bfloat16", "float8_e4m3fn", "float8_e5m2"]
    DTYPES_BY_NAME.update({d.name: d for d in _extension_dtypes})
