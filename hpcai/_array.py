"""The Array: one thin ``__slots__`` wrapper around a backend-native array.

An Array holds three things: the native data (``numpy.ndarray``, ``jax.Array``,
``cupy.ndarray``, ...), the interned :class:`~hpcai.Device` it lives on, and its residency
tags. An operation unwraps, calls the backend, wraps; nothing else happens on the
compute path. Operations never move data: mixing devices raises
:class:`~hpcai.errors.DeviceMismatchError`.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable, Iterator
from types import EllipsisType, MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from . import _memory, _tags, _transfer
from ._device import Device, resolve_device
from ._dtypes import DType
from .errors import (
    ArrayIndexError,
    AxisError,
    DeviceMismatchError,
    DTypeError,
    ForeignArrayError,
    HpcaiError,
    InvalidArgumentError,
    LinAlgError,
    OutOfDeviceMemoryError,
    ResidencyError,
    ScalarOverflowError,
    ShapeError,
)

if TYPE_CHECKING:
    from ._tags import TagSet

__all__ = ["Array"]

_object_new = object.__new__
_SCALAR_TYPES = (bool, int, float, complex)
_API_VERSIONS = ("2021.12", "2022.12", "2023.12", "2024.12")

Scalar: TypeAlias = bool | int | float | complex
IndexKey: TypeAlias = "int | slice | EllipsisType | None | Array | tuple[Any, ...]"


# --------------------------------------------------------------------------------------------
# wrapping and error translation (used by every namespace function as well)
# --------------------------------------------------------------------------------------------
def _wrap(data: Any, device: Device, tags: TagSet | None) -> Array:
    """Wrap a native result computed on *device*. The only way Arrays are made."""
    if data.__class__ is not device._native_type:
        data = device._adopt(device, data)
    a = _object_new(Array)
    a._data = data
    a._device = device
    a._tags = tags
    return a


def _translate(fname: str, exc: BaseException) -> BaseException:
    """Turn a backend exception into the matching :mod:`hpcai.errors` class."""
    if isinstance(exc, HpcaiError):
        return exc
    msg = f"{fname}: {exc}"
    if isinstance(exc, np.linalg.LinAlgError) or type(exc).__name__ == "LinAlgError":
        return LinAlgError(msg)
    if isinstance(exc, np.exceptions.AxisError):
        return AxisError(msg)
    if isinstance(exc, IndexError):
        return ArrayIndexError(msg)
    if isinstance(exc, OverflowError):
        return ScalarOverflowError(msg)
    if isinstance(exc, TypeError):
        if "incompatible shapes" in str(exc):  # JAX reports broadcasting failures as TypeError
            return ShapeError(msg)
        return DTypeError(msg)
    if isinstance(exc, ValueError):
        text = str(exc).lower()
        if "shape" in text or "broadcast" in text or "dimension" in text or "axis" in text:
            return ShapeError(msg)
        return InvalidArgumentError(msg)
    if isinstance(exc, MemoryError):
        return OutOfDeviceMemoryError(msg)
    if isinstance(exc, ZeroDivisionError):
        return InvalidArgumentError(msg)
    return exc


def _mismatch(fname: str, a: Device, b: Device) -> DeviceMismatchError:
    return DeviceMismatchError(
        f"{fname}: operands live on different devices ({a} and {b}); hpcai never moves data "
        f"implicitly. Move one explicitly, e.g. `y = y.to_device(\"{a}\")`, then retry."
    )


def _weak_on(fname: str, v: Array, dev: Device) -> Array:
    """*v* on *dev* if it is a weak scalar; else the device-mismatch error is raised.

    A **weak scalar** is a 0-d untagged Array that ``xp.asarray`` made from a Python or
    NumPy scalar without a ``device=`` argument, on a host-memory default device (what
    libraries such as xarray do with a fill value: ``xp.asarray(np.nan)``). It joins an
    operation on any device the way the Python scalar it was made from would: its value is
    program text, not data with a location, so this is not a transfer and is not recorded
    by ``xp.transfers()``. Any operation's result is an ordinary Array; an Array made with
    ``device=`` or ``tags=``, or from data, never is a weak scalar.
    """
    if getattr(v, "_weak", False) and v._tags is None and v._device._host:
        return _wrap(dev._backend.from_host(v._data, dev, copy=True), dev, None)
    raise _mismatch(fname, dev, v._device)


def _weak_pair(fname: str, a: Array, b: Array) -> tuple[Array, Array]:
    """Two Arrays on different devices, brought together when one is a weak scalar."""
    if getattr(b, "_weak", False):
        return a, _weak_on(fname, b, a._device)
    if getattr(a, "_weak", False):
        return _weak_on(fname, a, b._device), b
    raise _mismatch(fname, a._device, b._device)


def _foreign(fname: str, obj: object, device: Device) -> ForeignArrayError:
    return ForeignArrayError(
        f"{fname}: cannot mix an hpcai Array with {type(obj).__module__}.{type(obj).__name__}; "
        f"convert it first with `xp.asarray(obj, device=\"{device}\")`"
    )


def _host_index(key: np.ndarray, device: Device) -> Any:
    """A NumPy integer or boolean index array, created on *device* as ``xp.asarray(key, device=...)`` would.

    Index positions are host values like the ints of a basic index (xarray's ``isel``,
    ``groupby`` and ``interp`` index with them); they carry no tags, so creating them on the
    indexed array's device is a creation, not a movement of data.
    """
    if device.is_host:
        return key
    return device._backend.from_host(key, device, copy=True)


_INT64_MAX = 2**63 - 1


def _wide_int(v: int, x: Array) -> Any:
    """A Python int beyond int64 as a 0-d array of ``x``'s uint64 dtype, else ``v`` unchanged.

    Some backends (JAX) parse a Python int as int64 and overflow on ``2**64 - 2`` even
    beside a uint64 array; as a uint64 operand the value gives the standard's result.
    """
    data = x._data
    if data.dtype == np.uint64 and v < 2**64:
        return x._device._ns.asarray(v, dtype=data.dtype)
    return v


def _operand(fname: str, self: Array, other: object) -> Any:
    """The native value of a scalar operand, or raise for foreign arrays / bad types."""
    if isinstance(other, _SCALAR_TYPES):
        if other.__class__ is int and other > _INT64_MAX:  # type: ignore[operator]
            return _wide_int(other, self)  # type: ignore[arg-type]
        return other
    if isinstance(other, np.generic):
        v = other.item()
        return _wide_int(v, self) if v.__class__ is int and v > _INT64_MAX else v
    if hasattr(other, "__array_namespace__") or hasattr(other, "__array__") or hasattr(other, "__dlpack__"):
        raise _foreign(fname, other, self._device)
    return NotImplemented


def _rebuild(host: np.ndarray, device: str, tags: TagSet | None, carried: dict[str, Any] | None = None) -> Array:
    """Unpickle an Array onto the device it was pickled from.

    The receiving process decides, under its own policy, whether data with these tags may
    be on that device (a placement decision, audited when covered), and the rules that
    covered the data where it was pickled (*carried*) must hold here too, so that a
    process without hpcai configuration does not accept everything; nothing is created
    when either refuses.
    """
    dev = resolve_device(device)
    from .residency._carried import check_arrival

    try:
        check_arrival(tags, dev, carried, operation="unpickle", nbytes=int(host.nbytes))
    except ResidencyError as exc:
        if not _unpickled_by_distributed():
            raise
        # A task or graph message of Dask distributed (the scheduler unpickles every graph):
        # raising here would surface as a bare "error during deserialization of the task graph"
        # (or kill a worker). A data-less placeholder lands instead; the task that uses it fails
        # with this refusal, naming the rule, and every process stays up.
        from ._tags import to_json
        from .distributed import _HOST, RefusedData

        return RefusedData(str(exc), to_json(tags), _HOST)  # type: ignore[return-value]
    if dev.is_host:
        return _wrap(host, dev, tags)
    return _wrap(dev._backend.from_host(host, dev, copy=True), dev, tags)


def _unpickled_by_distributed() -> bool:
    """Whether this unpickling runs inside Dask distributed's message handling (a frame of a
    ``distributed`` module on the stack; looked at only when a refusal is about to be raised)."""
    if "distributed" not in sys.modules:
        return False
    f: Any = sys._getframe(2)
    for _ in range(64):
        if f is None:
            return False
        mod = f.f_globals.get("__name__", "")
        if mod == "distributed" or mod.startswith("distributed."):
            return True
        f = f.f_back
    return False


# --------------------------------------------------------------------------------------------
class Array:
    """An n-dimensional array on one device, with residency tags.

    Arrays are made by the namespace (``xp.asarray``, ``xp.zeros``, operations ...), never
    by calling ``Array(...)``.

    >>> import hpcai as xp
    >>> x = xp.asarray([1.0, 2.0, 3.0])
    >>> (x * 2).device
    Device('numpy:cpu')
    """

    # ``_weak`` is set (True) only on a weak scalar: see :func:`_weak_pair`.
    __slots__ = ("__weakref__", "_data", "_device", "_tags", "_weak")

    _data: Any
    _device: Device
    _tags: TagSet | None
    _weak: bool

    # Make NumPy defer to our reflected operators instead of converting us.
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __new__(cls, *args: object, **kwargs: object) -> Array:
        raise TypeError(
            "hpcai.Array cannot be constructed directly; use xp.asarray(obj, device=...) "
            "or another creation function"
        )

    # -- attributes ------------------------------------------------------------------------
    @property
    def dtype(self) -> DType:
        """The data type, a NumPy ``dtype`` (``x.dtype == xp.float64``)."""
        return self._data.dtype  # type: ignore[no-any-return]

    @property
    def device(self) -> Device:
        """The device the data lives on."""
        return self._device

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape, a tuple of ints."""
        return tuple(self._data.shape)

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return int(self._data.ndim)

    @property
    def size(self) -> int:
        """The number of elements."""
        return int(self._data.size)

    @property
    def nbytes(self) -> int:
        """Bytes held by the array's elements (an extension of the standard)."""
        return int(self._data.nbytes)

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...]:
        """Chunk sizes along each axis, for arrays on a chunked device (``dask``); an extension.
        Other arrays have no such attribute (``hasattr(x, "chunks")`` is ``False``), so that
        xarray treats only distributed arrays as chunked."""
        c = self._device._backend.chunks(self._data)
        if c is None:
            raise AttributeError(f"an array on {self._device} is held whole and has no chunks (only chunked devices such as dask have)")
        return c

    @property
    def tags(self) -> MappingProxyType[str, frozenset[str]]:
        """Residency tags, a read-only mapping ``key -> frozenset of values``."""
        return _tags.as_mapping(self._tags)

    @property
    def T(self) -> Array:
        """Transpose of a 2-D array."""
        if self._data.ndim != 2:
            raise ShapeError(f"Array.T: defined for 2-D arrays only, got {self._data.ndim}-D; use x.mT or xp.permute_dims")
        return _wrap(self._data.T, self._device, self._tags)

    @property
    def mT(self) -> Array:
        """Transpose of the last two axes (a stack of matrices)."""
        if self._data.ndim < 2:
            raise ShapeError(f"Array.mT: needs at least 2 dimensions, got {self._data.ndim}")
        ns = self._device._ns
        return _wrap(ns.matrix_transpose(self._data), self._device, self._tags)

    def __array_namespace__(self, /, *, api_version: str | None = None) -> Any:
        """The namespace of this array: the ``hpcai`` module."""
        if api_version is not None and api_version not in _API_VERSIONS:
            raise InvalidArgumentError(
                f"__array_namespace__: unsupported api_version {api_version!r}; supported: {', '.join(_API_VERSIONS)}"
            )
        return sys.modules["hpcai"]

    # -- movement ---------------------------------------------------------------------------
    def to_device(self, device: Device | str, /, *, stream: Any = None) -> Array:
        """Return the array on *device*: the only way data moves (measured, checked, logged).

        >>> import hpcai as xp
        >>> xp.asarray([1, 2]).to_device("emulated:0").device
        Device('emulated:0')
        """
        from ._transfer import move

        return move(self, resolve_device(device), op="to_device", stream=stream)

    # -- binary operator machinery -------------------------------------------------------------
    def _binop(self, other: Any, op: Callable[[Any, Any], Any], fname: str) -> Array:
        if other.__class__ is Array:
            if other._device is not self._device:
                self, other = _weak_pair(fname, self, other)
            o = other._data
            t = _tags.union(self._tags, other._tags)
        else:
            o = _operand(fname, self, other)
            if o is NotImplemented:
                return NotImplemented  # type: ignore[no-any-return]
            t = self._tags
        try:
            r = op(self._data, o)
        except Exception as exc:
            raise _translate(fname, exc) from None
        return _wrap(r, self._device, t)

    def _rbinop(self, other: Any, op: Callable[[Any, Any], Any], fname: str) -> Array:
        o = _operand(fname, self, other)
        if o is NotImplemented:
            return NotImplemented  # type: ignore[no-any-return]
        try:
            r = op(o, self._data)
        except Exception as exc:
            raise _translate(fname, exc) from None
        return _wrap(r, self._device, self._tags)

    def _ibinop(self, other: Any, op: Callable[[Any, Any], Any], fname: str) -> Array:
        if other.__class__ is Array:
            if other._device is not self._device:
                other = _weak_on(fname, other, self._device)
            o = other._data
            t = _tags.union(self._tags, other._tags)
        else:
            o = _operand(fname, self, other)
            if o is NotImplemented:
                return NotImplemented  # type: ignore[no-any-return]
            t = self._tags
        if t is not None:  # tagged values are written into memory other arrays may share
            _memory.written(self, t, fname)
        data = self._data
        try:
            r = op(data, o)
        except Exception as exc:
            raise _translate(fname, exc) from None
        if r is not data:  # immutable backends (JAX) compute out of place
            if r.dtype != data.dtype or tuple(r.shape) != tuple(data.shape):
                raise DTypeError(
                    f"{fname}: in-place result would change {data.dtype}{tuple(data.shape)} to "
                    f"{r.dtype}{tuple(r.shape)}; in-place operations keep the left operand's dtype and shape"
                )
            self._data = self._device._adopt(self._device, r)
        self._tags = t
        return self

    def _fn2(self, other: Any, fname: str, reflected: bool = False) -> Array:
        """Operators whose NumPy behaviour deviates from the standard go through the namespace."""
        f = getattr(sys.modules["hpcai._elementwise"], fname)
        return f(other, self) if reflected else f(self, other)  # type: ignore[no-any-return]

    # arithmetic
    def __add__(self, other: Array | Scalar, /) -> Array:
        """``self + other``, elementwise (see :func:`hpcai.add`)."""
        return self._binop(other, operator.add, "__add__")

    def __sub__(self, other: Array | Scalar, /) -> Array:
        """``self - other``, elementwise (see :func:`hpcai.subtract`)."""
        return self._binop(other, operator.sub, "__sub__")

    def __mul__(self, other: Array | Scalar, /) -> Array:
        """``self * other``, elementwise (see :func:`hpcai.multiply`)."""
        return self._binop(other, operator.mul, "__mul__")

    def __truediv__(self, other: Array | Scalar, /) -> Array:
        """``self / other``, elementwise (see :func:`hpcai.divide`)."""
        return self._binop(other, self._device._ns.divide, "__truediv__")

    def __floordiv__(self, other: Array | Scalar, /) -> Array:
        """``self // other``, elementwise, with the standard's special cases (see :func:`hpcai.floor_divide`)."""
        return self._fn2(other, "floor_divide")

    def __mod__(self, other: Array | Scalar, /) -> Array:
        """``self % other``, elementwise, with the standard's special cases (see :func:`hpcai.remainder`)."""
        return self._fn2(other, "remainder")

    def __pow__(self, other: Array | Scalar, /) -> Array:
        """``self ** other``, elementwise (see :func:`hpcai.pow`)."""
        return self._fn2(other, "pow")

    def __matmul__(self, other: Array, /) -> Array:
        """``self @ other``, matrix product (see :func:`hpcai.matmul`)."""
        # A function-level import costs ~1.5 µs per call; the module is loaded by hpcai/__init__.
        return sys.modules["hpcai._linalg_functions"].matmul(self, other)  # type: ignore[no-any-return]

    def __and__(self, other: Array | int | bool, /) -> Array:
        """``self & other``, elementwise (see :func:`hpcai.bitwise_and`)."""
        return self._binop(other, operator.and_, "__and__")

    def __or__(self, other: Array | int | bool, /) -> Array:
        """``self | other``, elementwise (see :func:`hpcai.bitwise_or`)."""
        return self._binop(other, operator.or_, "__or__")

    def __xor__(self, other: Array | int | bool, /) -> Array:
        """``self ^ other``, elementwise (see :func:`hpcai.bitwise_xor`)."""
        return self._binop(other, operator.xor, "__xor__")

    def __lshift__(self, other: Array | int, /) -> Array:
        """``self << other``, elementwise (see :func:`hpcai.bitwise_left_shift`)."""
        return self._fn2(other, "bitwise_left_shift")

    def __rshift__(self, other: Array | int, /) -> Array:
        """``self >> other``, elementwise (see :func:`hpcai.bitwise_right_shift`)."""
        return self._fn2(other, "bitwise_right_shift")

    # comparisons
    def __eq__(self, other: object, /) -> Array:  # type: ignore[override]
        """``self == other``, elementwise; returns a boolean array."""
        return self._binop(other, operator.eq, "__eq__")

    def __ne__(self, other: object, /) -> Array:  # type: ignore[override]
        """``self != other``, elementwise; returns a boolean array."""
        return self._binop(other, operator.ne, "__ne__")

    def __lt__(self, other: Array | Scalar, /) -> Array:
        """``self < other``, elementwise; returns a boolean array."""
        return self._binop(other, operator.lt, "__lt__")

    def __le__(self, other: Array | Scalar, /) -> Array:
        """``self <= other``, elementwise; returns a boolean array."""
        return self._binop(other, operator.le, "__le__")

    def __gt__(self, other: Array | Scalar, /) -> Array:
        """``self > other``, elementwise; returns a boolean array."""
        return self._binop(other, operator.gt, "__gt__")

    def __ge__(self, other: Array | Scalar, /) -> Array:
        """``self >= other``, elementwise; returns a boolean array."""
        return self._binop(other, operator.ge, "__ge__")

    __hash__ = None  # type: ignore[assignment]

    # reflected
    def __radd__(self, other: Scalar, /) -> Array:
        """``other + self`` for a Python scalar ``other``."""
        return self._rbinop(other, operator.add, "__radd__")

    def __rsub__(self, other: Scalar, /) -> Array:
        """``other - self`` for a Python scalar ``other``."""
        return self._rbinop(other, operator.sub, "__rsub__")

    def __rmul__(self, other: Scalar, /) -> Array:
        """``other * self`` for a Python scalar ``other``."""
        return self._rbinop(other, operator.mul, "__rmul__")

    def __rtruediv__(self, other: Scalar, /) -> Array:
        """``other / self`` for a Python scalar ``other``."""
        return self._rbinop(other, self._device._ns.divide, "__rtruediv__")

    def __rfloordiv__(self, other: Scalar, /) -> Array:
        """``other // self`` for a Python scalar ``other``."""
        return self._fn2(other, "floor_divide", reflected=True)

    def __rmod__(self, other: Scalar, /) -> Array:
        """``other % self`` for a Python scalar ``other``."""
        return self._fn2(other, "remainder", reflected=True)

    def __rpow__(self, other: Scalar, /) -> Array:
        """``other ** self`` for a Python scalar ``other``."""
        return self._fn2(other, "pow", reflected=True)

    def __rmatmul__(self, other: Array, /) -> Array:
        """``other @ self``: only arrays take part in a matrix product."""
        o = _operand("__rmatmul__", self, other)
        if o is NotImplemented:
            return NotImplemented  # type: ignore[no-any-return]
        raise DTypeError("__rmatmul__: matmul needs two arrays, got a Python scalar")

    def __rand__(self, other: int | bool, /) -> Array:
        """``other & self`` for a Python scalar ``other``."""
        return self._rbinop(other, operator.and_, "__rand__")

    def __ror__(self, other: int | bool, /) -> Array:
        """``other | self`` for a Python scalar ``other``."""
        return self._rbinop(other, operator.or_, "__ror__")

    def __rxor__(self, other: int | bool, /) -> Array:
        """``other ^ self`` for a Python scalar ``other``."""
        return self._rbinop(other, operator.xor, "__rxor__")

    def __rlshift__(self, other: int, /) -> Array:
        """``other << self`` for a Python scalar ``other``."""
        return self._fn2(other, "bitwise_left_shift", reflected=True)

    def __rrshift__(self, other: int, /) -> Array:
        """``other >> self`` for a Python scalar ``other``."""
        return self._fn2(other, "bitwise_right_shift", reflected=True)

    # in-place
    def __iadd__(self, other: Array | Scalar, /) -> Array:
        """``self += other`` in place (dtype and shape of ``self`` are kept)."""
        return self._ibinop(other, operator.iadd, "__iadd__")

    def __isub__(self, other: Array | Scalar, /) -> Array:
        """``self -= other`` in place (dtype and shape of ``self`` are kept)."""
        return self._ibinop(other, operator.isub, "__isub__")

    def __imul__(self, other: Array | Scalar, /) -> Array:
        """``self *= other`` in place (dtype and shape of ``self`` are kept)."""
        return self._ibinop(other, operator.imul, "__imul__")

    def __itruediv__(self, other: Array | Scalar, /) -> Array:
        """``self /= other`` in place (dtype and shape of ``self`` are kept)."""
        if hasattr(self._data.__class__, "__itruediv__"):  # mutable natives divide in place
            return self._ibinop(other, operator.itruediv, "__itruediv__")
        return self._ibinop(other, self._device._ns.divide, "__itruediv__")

    def _inplace_via(self, other: Any, fname: str) -> Array:
        r = self._fn2(other, fname)
        return self._ibinop(r, _take_right, f"__i{fname}__")

    def __ifloordiv__(self, other: Array | Scalar, /) -> Array:
        """``self //= other`` in place (dtype and shape of ``self`` are kept)."""
        return self._inplace_via(other, "floor_divide")

    def __imod__(self, other: Array | Scalar, /) -> Array:
        """``self %= other`` in place (dtype and shape of ``self`` are kept)."""
        return self._inplace_via(other, "remainder")

    def __ipow__(self, other: Array | Scalar, /) -> Array:
        """``self **= other`` in place (dtype and shape of ``self`` are kept)."""
        return self._inplace_via(other, "pow")

    def __imatmul__(self, other: Array, /) -> Array:
        """``self @= other`` in place (dtype and shape of ``self`` are kept)."""
        r = self.__matmul__(other)
        return self._ibinop(r, _take_right, "__imatmul__")

    def __iand__(self, other: Array | int | bool, /) -> Array:
        """``self &= other`` in place (dtype and shape of ``self`` are kept)."""
        return self._ibinop(other, operator.iand, "__iand__")

    def __ior__(self, other: Array | int | bool, /) -> Array:
        """``self |= other`` in place (dtype and shape of ``self`` are kept)."""
        return self._ibinop(other, operator.ior, "__ior__")

    def __ixor__(self, other: Array | int | bool, /) -> Array:
        """``self ^= other`` in place (dtype and shape of ``self`` are kept)."""
        return self._ibinop(other, operator.ixor, "__ixor__")

    def __ilshift__(self, other: Array | int, /) -> Array:
        """``self <<= other`` in place (dtype and shape of ``self`` are kept)."""
        return self._inplace_via(other, "bitwise_left_shift")

    def __irshift__(self, other: Array | int, /) -> Array:
        """``self >>= other`` in place (dtype and shape of ``self`` are kept)."""
        return self._inplace_via(other, "bitwise_right_shift")

    # unary
    def _unop(self, op: Callable[[Any], Any], fname: str) -> Array:
        try:
            r = op(self._data)
        except Exception as exc:
            raise _translate(fname, exc) from None
        return _wrap(r, self._device, self._tags)

    def __neg__(self) -> Array:
        """``-self``, elementwise."""
        return self._unop(operator.neg, "__neg__")

    def __pos__(self) -> Array:
        """``+self``, elementwise."""
        return self._unop(operator.pos, "__pos__")

    def __abs__(self) -> Array:
        """``abs(self)``, elementwise (see :func:`hpcai.abs`)."""
        return self._unop(self._device._ns.abs, "__abs__")

    def __invert__(self) -> Array:
        """``~self``, elementwise (see :func:`hpcai.bitwise_invert`)."""
        return self._unop(operator.invert, "__invert__")

    # -- indexing ---------------------------------------------------------------------------
    def _key(self, key: Any, fname: str) -> tuple[Any, TagSet | None]:
        kc = key.__class__
        if kc is int or kc is slice or key is None or key is Ellipsis:
            return key, None
        if kc is Array:
            if key._device is not self._device:
                raise _mismatch(fname, self._device, key._device)
            return key._data, key._tags
        if kc is tuple:
            parts = []
            tags: TagSet | None = None
            for k in key:
                nk, kt = self._key(k, fname)
                parts.append(nk)
                tags = _tags.union(tags, kt)
            return tuple(parts), tags
        if isinstance(key, (bool, np.bool_)):
            return bool(key), None
        if isinstance(key, (int, np.integer)):
            return int(key), None
        if hasattr(key, "__index__") and not hasattr(key, "__array_namespace__"):
            return operator.index(key), None
        if kc is np.ndarray and key.dtype.kind in "iub":
            return _host_index(key, self._device), None
        if hasattr(key, "__array_namespace__") or hasattr(key, "__array__"):
            raise _foreign(fname, key, self._device)
        raise ArrayIndexError(
            f"{fname}: unsupported index {key!r} of type {type(key).__name__}; use integers, "
            "slices, ..., None, or hpcai integer/boolean arrays"
        )

    def __getitem__(self, key: IndexKey, /) -> Array:
        """``self[key]``: basic, integer-array and boolean-mask indexing; index arrays must share the device."""
        k, kt = self._key(key, "__getitem__")
        try:
            r = self._data[k]
        except Exception as exc:
            raise _translate("__getitem__", exc) from None
        return _wrap(r, self._device, _tags.union(self._tags, kt))

    def __setitem__(self, key: IndexKey, value: Array | Scalar, /) -> None:
        """``self[key] = value`` in place; ``value`` is a Python scalar or an array on the same device."""
        k, kt = self._key(key, "__setitem__")
        if value.__class__ is Array:
            if value._device is not self._device:  # type: ignore[union-attr]
                raise _mismatch("__setitem__", self._device, value._device)  # type: ignore[union-attr]
            v = value._data  # type: ignore[union-attr]
            vt = value._tags  # type: ignore[union-attr]
        else:
            v = _operand("__setitem__", self, value)
            if v is NotImplemented:
                raise DTypeError(f"__setitem__: value must be an hpcai Array or a Python scalar, got {type(value).__name__}")
            vt = None
        wt = _tags.union(kt, vt)
        if wt is not None:  # tagged values are written into memory other arrays may share
            _memory.written(self, wt, "__setitem__")
        dev = self._device
        try:
            self._data = dev._backend.setitem(dev, self._data, k, v)
        except Exception as exc:
            raise _translate("__setitem__", exc) from None
        self._tags = _tags.union(self._tags, wt)

    def __iter__(self) -> Iterator[Array]:
        """Iterate over the first axis."""
        if self._data.ndim == 0:
            raise DTypeError("iteration over a 0-d array")
        for i in range(self._data.shape[0]):
            yield self[i]

    def __len__(self) -> int:
        """Length of the first axis."""
        if self._data.ndim == 0:
            raise DTypeError("len() of a 0-d array")
        return int(self._data.shape[0])

    # -- conversion to Python scalars ------------------------------------------------------------
    def _scalar(self, conv: Callable[[Any], Any], fname: str) -> Any:
        if self._data.ndim != 0:
            raise ShapeError(f"{fname}: only 0-d arrays convert to Python scalars, got shape {self.shape}")
        # A Python number leaves hpcai's control (no device, no tags): an export, decided
        # (and, for covered data, audited) like __array__ and __dlpack__.
        _transfer.check_export(self, fname)
        try:
            return conv(self._data)
        except Exception as exc:
            raise _translate(fname, exc) from None

    def __bool__(self) -> bool:
        """Convert a 0-d array to a Python ``bool``."""
        return bool(self._scalar(bool, "__bool__"))

    def __int__(self) -> int:
        """Convert a 0-d real array to a Python ``int``."""
        if self._data.dtype.kind == "c":
            raise DTypeError("__int__: cannot convert a complex array to int")
        return int(self._scalar(int, "__int__"))

    def __float__(self) -> float:
        """Convert a 0-d real array to a Python ``float``."""
        if self._data.dtype.kind == "c":
            raise DTypeError("__float__: cannot convert a complex array to float; use xp.real first")
        return float(self._scalar(float, "__float__"))

    def __complex__(self) -> complex:
        """Convert a 0-d array to a Python ``complex`` (a real NaN gives ``nan+nanj``, per the standard)."""
        value = complex(self._scalar(complex, "__complex__"))
        if self._data.dtype.kind != "c" and value.real != value.real:
            return complex(float("nan"), float("nan"))
        return value

    def __index__(self) -> int:
        """Convert a 0-d integer array to a Python ``int`` for indexing."""
        if self._data.dtype.kind not in "iu":
            raise DTypeError(f"__index__: needs an integer array, got {self._data.dtype}")
        return int(self._scalar(operator.index, "__index__"))

    # -- export -----------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # Reached only for attributes an Array lacks. NumPy ndarray methods (``ravel``,
        # ``tobytes``, ``view``, ...) that code written for NumPy calls get an error that says
        # what to do instead; it is still an AttributeError, so ``hasattr`` answers False.
        if name.startswith("_") or name not in _NDARRAY_ONLY:
            raise AttributeError(f"'hpcai.Array' object has no attribute {name!r}")
        raise AttributeError(
            f"'hpcai.Array' object has no attribute {name!r}: it is a NumPy ndarray method, and hpcai "
            "arrays follow the Array API standard (use the namespace's functions, e.g. xp.reshape). Code "
            "that needs a NumPy array cannot take hpcai arrays without an explicit export: "
            "x.to_device(\"numpy:cpu\") then np.asarray(x) (a decided, audited export of tagged data). "
            "To write an xarray Dataset of hpcai arrays (ds.to_zarr/to_netcdf hand the arrays to "
            'NumPy-only writers), use hpcai.storage.save_dataset(ds, "hpcai://<endpoint>/<path>"), which '
            "stores each variable's tags (see docs/xarray.md)"
        )

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """NumPy conversion, for arrays in host memory only (other devices need an explicit ``to_device``)."""
        dev = self._device
        if not dev.is_host:
            raise TypeError(
                f"cannot convert an array on {dev} to a NumPy array implicitly (it does not live in "
                f"host memory); move it explicitly: `x.to_device(\"numpy:cpu\")`"
            )
        from . import _transfer

        _transfer.check_export(self, "__array__")
        if copy is None:
            return np.asarray(self._data, dtype=dtype)
        return np.array(self._data, dtype=dtype, copy=copy)

    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        """Export as a DLPack capsule: zero-copy for host data; other devices only on request, as a logged move."""
        from . import _transfer

        return _transfer.dlpack_export(self, stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)

    def __dlpack_device__(self) -> tuple[int, int]:
        """The DLPack ``(device_type, device_id)``: kDLCPU for host and emulated arrays (emulated ones export only copies)."""
        dev = self._device
        return dev._backend.dlpack_device(dev)

    # -- copying ------------------------------------------------------------------------------
    def __copy__(self) -> Array:
        """``copy.copy(x)``: a copy of the data on the same device, with the same tags (as NumPy's)."""
        from ._creation_functions import asarray

        return asarray(self, copy=True)

    def __deepcopy__(self, memo: dict[int, Any] | None = None, /) -> Array:
        """``copy.deepcopy(x)``: a copy of the data on the same device, with the same tags.

        Not an export: nothing leaves the device (xarray's ``copy(deep=True)``, alignment and
        ``interp`` deep-copy their variables). Without it ``deepcopy`` would pickle.
        """
        from ._creation_functions import asarray

        return asarray(self, copy=True)

    # -- pickling and repr ------------------------------------------------------------------------
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle support: the data is copied to the host and restored onto the same device.

        Pickled bytes hold the values outside hpcai's control, so pickling is an export
        (decided, audited for covered data, refused under ``export = "false"``). The tags
        travel inside the pickle, and unpickling is a placement decision in the receiving
        process, under its own policy (see :func:`_rebuild`).
        """
        dev = self._device
        _transfer.check_export(self, "pickle")
        host = dev._backend.to_host(self._data, dev)
        from .residency._carried import carried_rules

        carried = carried_rules(self._tags)
        if carried is None:
            return (_rebuild, (np.asarray(host), dev.spec.name, self._tags))
        return (_rebuild, (np.asarray(host), dev.spec.name, self._tags, carried))

    def __repr__(self) -> str:
        """A readable representation with dtype, device and tags.

        Values shown as text leave hpcai's control like any export: where the policy
        refuses the export of this array's tags (``export = "false"``), they are redacted.
        """
        dev = self._device
        try:
            if _transfer.export_refused(self):
                body = "<redacted: export of this data is refused by the residency policy>"
            else:
                body = np.array2string(np.asarray(dev._backend.to_host(self._data, dev)), separator=", ", threshold=20)
        except Exception:  # repr must never fail
            body = "..."
        tags = ""
        if self._tags:
            tags = ", tags={" + _tags.to_text(self._tags) + "}"
        return f"Array({body}, dtype={self._data.dtype}, device='{dev}'{tags})"


def _take_right(a: Any, b: Any) -> Any:
    """In-place helper: the result was computed already; write it into *a* where mutable."""
    if a.dtype != b.dtype:
        raise TypeError(f"in-place result has dtype {b.dtype}, the array has {a.dtype}")
    if isinstance(a, np.ndarray):
        if a.shape != b.shape:
            raise ValueError(f"in-place result has shape {b.shape}, the array has shape {a.shape}")
        a[...] = b
        return a
    return b


# --------------------------------------------------------------------------------------------
# the fast path of the binary operators
# --------------------------------------------------------------------------------------------
# ``x + y`` on two Arrays of one device is the hottest path of array code. The methods
# above define the operators (signature, docstring, the general path through ``_binop``);
# for the Array-with-Array case each is replaced by a function with the operator, the tag
# union and the wrapping written inline, which saves three Python calls (~100 ns of the
# ~400 ns that a generic version adds to a size-1 NumPy add). The code is generated from
# one template, so every operator has exactly the same checks.
_FAST_BINARY_OPERATORS = {
    "__add__": ("+", operator.add),
    "__sub__": ("-", operator.sub),
    "__mul__": ("*", operator.mul),
    "__and__": ("&", operator.and_),
    "__or__": ("|", operator.or_),
    "__xor__": ("^", operator.xor),
    "__eq__": ("==", operator.eq),
    "__ne__": ("!=", operator.ne),
    "__lt__": ("<", operator.lt),
    "__le__": ("<=", operator.le),
    "__gt__": (">", operator.gt),
    "__ge__": (">=", operator.ge),
}

_FAST_TEMPLATE = '''
def {name}(self, other, /):
    if other.__class__ is Array:
        dev = self._device
        if other._device is not dev:
            return self._binop(other, op, "{name}")
        t = self._tags
        ot = other._tags
        if ot is not None and ot is not t:
            t = ot if t is None else t | ot
        try:
            r = self._data {symbol} other._data
        except Exception as exc:
            raise _translate("{name}", exc) from None
        if r.__class__ is not dev._native_type:
            r = dev._adopt(dev, r)
        out = _object_new(Array)
        out._data = r
        out._device = dev
        out._tags = t
        return out
    return self._binop(other, op, "{name}")
'''


def _install_fast_binary_operators() -> None:
    for name, (symbol, op) in _FAST_BINARY_OPERATORS.items():
        scope = {
            "Array": Array,
            "_mismatch": _mismatch,
            "_translate": _translate,
            "_object_new": _object_new,
            "op": op,
        }
        exec(_FAST_TEMPLATE.format(name=name, symbol=symbol), scope)  # a fixed template, no user input
        fast: Any = scope[name]
        general = getattr(Array, name)
        fast.__doc__ = general.__doc__
        fast.__annotations__ = general.__annotations__
        fast.__qualname__ = f"Array.{name}"
        fast.__module__ = __name__
        setattr(Array, name, fast)


_install_fast_binary_operators()

#: ndarray attributes an Array does not have (for :meth:`Array.__getattr__`'s message).
_NDARRAY_ONLY = frozenset(n for n in dir(np.ndarray) if not n.startswith("_")) - frozenset(dir(Array))
