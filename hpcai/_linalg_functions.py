"""Linear-algebra functions of the main namespace (chapter "Linear Algebra Functions").

``matmul`` is on the hot path (``x @ y``), so it does the minimum: check operands,
call :func:`_matmul_native`, wrap. :func:`_matmul_native` is the single place where a
device's precision policy (e.g. FP64 emulation on devices without FP64) takes over a
matrix product; everything that multiplies matrices through ``@``/``xp.matmul`` passes
through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _tags
from ._array import Array, _mismatch, _translate, _wrap
from ._device import Device
from ._dtypes import _numeric_dtypes
from ._helpers import as_array
from .errors import AxisError, DTypeError, InvalidArgumentError, ShapeError

__all__ = ["matmul", "matrix_transpose", "tensordot", "vecdot"]


def _matmul_native(a: Any, b: Any, device: Device) -> Any:
    """Multiply two native arrays on *device*: the one hook for precision policies.

    Today this is the backend's own ``@``. A precision policy (``native``, ``emulate``,
    ``error``) for devices without fast FP64 replaces the product here, so ``@``,
    ``xp.matmul`` and ``xp.linalg.matmul`` all follow it.
    """
    if device.spec.precision == "emulate":
        from .precision import _policy_matmul

        return _policy_matmul(a, b, device)
    return a @ b


def _pair(fname: str, x1: Any, x2: Any) -> tuple[Any, Any, Device, _tags.TagSet | None]:
    """Natives, device and tags of two numeric Arrays on one device."""
    if x1.__class__ is not Array:
        x1 = as_array(fname, x1)
    if x2.__class__ is not Array:
        x2 = as_array(fname, x2)
    dev = x1._device
    if x2._device is not dev:
        raise _mismatch(f"xp.{fname}", dev, x2._device)
    a, b = x1._data, x2._data
    if a.dtype not in _numeric_dtypes or b.dtype not in _numeric_dtypes:
        _numeric_error(fname, a.dtype, b.dtype)
    return a, b, dev, _tags.union(x1._tags, x2._tags)


def _numeric_error(fname: str, d1: Any, d2: Any) -> None:
    bad, name = (d1, "x1") if d1 not in _numeric_dtypes else (d2, "x2")
    raise DTypeError(
        f"xp.{fname}: {name} must have a numeric dtype, got {bad}; convert it with xp.astype({name}, xp.float64)"
    )


def matmul(x1: Array, x2: Array, /) -> Array:
    """Matrix product of two arrays (``x1 @ x2``), with NumPy's rules for 1-d operands and stacks.

    >>> import hpcai as xp
    >>> a = xp.asarray([[1.0, 2.0], [3.0, 4.0]])
    >>> a @ xp.asarray([1.0, 1.0])
    Array([3., 7.], dtype=float64, device='numpy:cpu')
    """
    if x1.__class__ is not Array or x2.__class__ is not Array:
        if isinstance(x2, (bool, int, float, complex)) or isinstance(
            x1, (bool, int, float, complex)
        ):
            raise DTypeError(
                "xp.matmul: both operands must be arrays (matmul is not defined for Python scalars); "
                "use `*` to scale an array"
            )
        return _matmul_checked(x1, x2)
    dev = x1._device
    if x2._device is not dev:
        raise _mismatch("xp.matmul", dev, x2._device)
    a = x1._data
    b = x2._data
    if a.dtype not in _numeric_dtypes or b.dtype not in _numeric_dtypes:
        _numeric_error("matmul", a.dtype, b.dtype)
    try:
        r = _matmul_native(a, b, dev)
    except Exception as exc:
        raise _matmul_error(a, b, exc) from None
    t1 = x1._tags
    t2 = x2._tags
    return _wrap(r, dev, t1 if t2 is None or t2 is t1 else _tags.union(t1, t2))


def _matmul_checked(x1: Any, x2: Any) -> Array:
    a, b, dev, tags = _pair("matmul", x1, x2)
    try:
        r = _matmul_native(a, b, dev)
    except Exception as exc:
        raise _matmul_error(a, b, exc) from None
    return _wrap(r, dev, tags)


def _matmul_error(a: Any, b: Any, exc: BaseException) -> BaseException:
    """A readable error for a failed product (shape problems are checked only after failing)."""
    s1, s2 = tuple(a.shape), tuple(b.shape)
    if not s1 or not s2:
        return ShapeError(
            f"xp.matmul: operands must have at least one dimension, got shapes {s1} and {s2}; use `*` for scalars"
        )
    k1 = s1[-1]
    k2 = s2[0] if len(s2) == 1 else s2[-2]
    if k1 != k2:
        return ShapeError(
            f"xp.matmul: shapes {s1} and {s2} do not align: x1's last dimension ({k1}) must equal "
            f"x2's {'only' if len(s2) == 1 else 'second-to-last'} dimension ({k2})"
        )
    try:
        np.broadcast_shapes(s1[:-2], s2[:-2])
    except ValueError:
        return ShapeError(
            f"xp.matmul: the batch dimensions of shapes {s1} and {s2} do not broadcast"
        )
    return _translate("xp.matmul", exc)


def matrix_transpose(x: Array, /) -> Array:
    """Transpose the last two axes of *x* (a matrix or a stack of matrices).

    >>> import hpcai as xp
    >>> xp.matrix_transpose(xp.asarray([[1, 2, 3]])).shape
    (3, 1)
    """
    if x.__class__ is not Array:
        x = as_array("matrix_transpose", x)
    if x._data.ndim < 2:
        raise ShapeError(
            f"xp.matrix_transpose: x must have at least 2 dimensions, got shape {x.shape}; "
            "a 1-d vector has no matrix transpose (use xp.reshape for a column vector)"
        )
    try:
        r = x._device._ns.matrix_transpose(x._data)
    except Exception as exc:
        raise _translate("xp.matrix_transpose", exc) from None
    return _wrap(r, x._device, x._tags)


def tensordot(
    x1: Array,
    x2: Array,
    /,
    *,
    axes: int | tuple[Sequence[int], Sequence[int]] = 2,
) -> Array:
    """Sum products over the last *axes* axes of *x1* and first of *x2* (or the given axis pairs).

    >>> import hpcai as xp
    >>> a = xp.asarray([[1.0, 2.0], [3.0, 4.0]])
    >>> float(xp.tensordot(a, a, axes=2))
    30.0
    """
    a, b, dev, tags = _pair("tensordot", x1, x2)
    if isinstance(axes, bool):
        raise InvalidArgumentError(
            f"xp.tensordot: axes must be an int or a pair of axis sequences, got {axes!r}"
        )
    if isinstance(axes, int):
        if axes < 0:
            raise InvalidArgumentError(
                f"xp.tensordot: an int axes must be non-negative, got {axes}"
            )
        if axes > a.ndim or axes > b.ndim:
            raise ShapeError(
                f"xp.tensordot: axes={axes} contracts more axes than the operands have "
                f"(shapes {tuple(a.shape)} and {tuple(b.shape)})"
            )
    else:
        try:
            ax1, ax2 = (tuple(int(i) for i in s) for s in axes)
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                f"xp.tensordot: axes must be an int or a pair of axis sequences, got {axes!r}"
            ) from None
        if len(ax1) != len(ax2):
            raise ShapeError(
                f"xp.tensordot: the two axis sequences differ in length: {ax1} and {ax2}"
            )
        for i, j in zip(ax1, ax2):
            if not (-a.ndim <= i < a.ndim) or not (-b.ndim <= j < b.ndim):
                raise AxisError(
                    f"xp.tensordot: axis pair ({i}, {j}) is out of range for shapes {tuple(a.shape)} and {tuple(b.shape)}"
                )
            if a.shape[i] != b.shape[j]:
                raise ShapeError(
                    f"xp.tensordot: contracted axes differ in size: x1 axis {i} has {a.shape[i]}, "
                    f"x2 axis {j} has {b.shape[j]} (contracted axes are never broadcast)"
                )
        axes = (ax1, ax2)
    try:
        r = dev._ns.tensordot(a, b, axes=axes)
    except Exception as exc:
        raise _translate("xp.tensordot", exc) from None
    return _wrap(r, dev, tags)


def vecdot(x1: Array, x2: Array, /, *, axis: int = -1) -> Array:
    """Dot products ``sum(conj(x1) * x2)`` along *axis*, broadcasting the other axes.

    *axis* counts from the end (``-1`` is the last axis); it is never broadcast, so both
    operands must have the same size along it.

    >>> import hpcai as xp
    >>> xp.vecdot(xp.asarray([[1.0, 2.0], [3.0, 4.0]]), xp.asarray([1.0, 1.0]))
    Array([3., 7.], dtype=float64, device='numpy:cpu')
    """
    a, b, dev, tags = _pair("vecdot", x1, x2)
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise InvalidArgumentError(f"xp.vecdot: axis must be an int, got {axis!r}")
    n = min(a.ndim, b.ndim)
    if axis >= 0 and a.ndim == b.ndim:
        axis -= a.ndim
    if not (-n <= axis <= -1):
        raise AxisError(
            f"xp.vecdot: axis {axis} is out of range for shapes {tuple(a.shape)} and {tuple(b.shape)}; "
            f"use a negative axis in [-{n}, -1]"
        )
    if a.shape[axis] != b.shape[axis]:
        raise ShapeError(
            f"xp.vecdot: x1 has {a.shape[axis]} elements along axis {axis}, x2 has {b.shape[axis]}; "
            "they must match (the contracted axis is never broadcast)"
        )
    try:
        r = dev._ns.vecdot(a, b, axis=axis)
        if r.dtype != a.dtype and a.dtype == b.dtype:
            # NumPy accumulates narrow integers in a wider type; the standard's result has
            # the operands' dtype. Integer sums are modular, so narrowing after the sum
            # gives the same values as accumulating in the narrow type.
            r = r.astype(a.dtype)
    except Exception as exc:
        raise _translate("xp.vecdot", exc) from None
    return _wrap(r, dev, tags)
