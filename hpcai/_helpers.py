"""Shared plumbing of the namespace functions: check, unwrap, call the backend, wrap.

Every public function in the namespace is a real ``def`` that calls one of these. They
check that inputs are hpcai Arrays on one device, validate dtype groups, call the
device's array-api-compat namespace, translate backend exceptions into
:mod:`hpcai.errors`, and wrap the result with the union of the inputs' tags.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _tags
from ._array import _INT64_MAX, Array, _foreign, _mismatch, _translate, _weak_pair, _wide_int, _wrap
from ._device import Device, resolve_device
from ._dtypes import DTYPES_BY_NAME, GROUP_NAMES
from ._tags import TagSet
from .errors import DTypeError

__all__ = [
    "as_array",
    "binary",
    "binary_operands",
    "call",
    "check_dtype",
    "device_default_dtype",
    "normalize_dtype",
    "same_device",
    "unary",
]

_SCALARS = (bool, int, float, complex)


def as_array(fname: str, x: Any) -> Array:
    """*x* if it is an hpcai Array, else a clear error."""
    if x.__class__ is Array:
        return x  # type: ignore[no-any-return]
    if hasattr(x, "__array_namespace__") or hasattr(x, "__array__") or hasattr(x, "__dlpack__"):
        raise _foreign(f"xp.{fname}", x, resolve_device(None))
    raise DTypeError(f"xp.{fname}: expected an hpcai Array, got {type(x).__name__} {x!r:.60}")


def check_dtype(fname: str, x: Array, group: frozenset[np.dtype], argname: str = "x") -> None:
    """Raise :class:`DTypeError` unless ``x.dtype`` is in *group*."""
    if x._data.dtype not in group:
        raise DTypeError(
            f"xp.{fname}: {argname} must have a {GROUP_NAMES.get(group, 'supported')} dtype, got {x._data.dtype}"
        )


def normalize_dtype(fname: str, dtype: Any) -> Any:
    """The NumPy dtype of an hpcai DType, a NumPy dtype or a name; ``None`` passes through."""
    if dtype is None:
        return None
    if isinstance(dtype, np.dtype):
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES_BY_NAME:
        return DTYPES_BY_NAME[dtype]
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"xp.{fname}: {dtype!r} is not a data type; use e.g. xp.float64") from None
    if d.name not in DTYPES_BY_NAME:
        raise DTypeError(f"xp.{fname}: unsupported data type {d}; supported: {', '.join(sorted(DTYPES_BY_NAME))}")
    return d


def device_default_dtype(device: Device, kind: str) -> np.dtype:
    """The default dtype of *kind* ('real floating', 'complex floating', 'integral', 'indexing')."""
    has64 = device.spec.has_fp64 or device.spec.precision == "emulate"
    if kind == "real floating":
        return np.dtype("float64" if has64 else "float32")
    if kind == "complex floating":
        return np.dtype("complex128" if has64 else "complex64")
    return np.dtype("int64")


def same_device(fname: str, arrays: Sequence[Array]) -> tuple[list[Any], Device, TagSet | None]:
    """Natives, common device and united tags of *arrays*; raise on mixed devices."""
    if not arrays:
        raise DTypeError(f"xp.{fname}: needs at least one array")
    natives = []
    first = as_array(fname, arrays[0])
    dev = first._device
    tags: TagSet | None = None
    for a in arrays:
        a = as_array(fname, a)
        if a._device is not dev:
            raise _mismatch(f"xp.{fname}", dev, a._device)
        natives.append(a._data)
        tags = _tags.union(tags, a._tags)
    return natives, dev, tags


def unary(fname: str, x: Any, group: frozenset[np.dtype] | None = None, **kwargs: Any) -> Array:
    """Apply the namespace function *fname* to one array (plus keyword options)."""
    if x.__class__ is not Array:
        x = as_array(fname, x)
    if group is not None and x._data.dtype not in group:
        check_dtype(fname, x, group)
    dev = x._device
    try:
        r = getattr(dev._ns, fname)(x._data, **kwargs)
    except Exception as exc:
        raise _translate(f"xp.{fname}", exc) from None
    return _wrap(r, dev, x._tags)


def call(fname: str, x: Any, *args: Any, group: frozenset[np.dtype] | None = None, **kwargs: Any) -> Any:
    """Apply namespace function *fname* to ``x`` and extra positional arguments; return the raw result."""
    if x.__class__ is not Array:
        x = as_array(fname, x)
    if group is not None and x._data.dtype not in group:
        check_dtype(fname, x, group)
    try:
        return getattr(x._device._ns, fname)(x._data, *args, **kwargs)
    except Exception as exc:
        raise _translate(f"xp.{fname}", exc) from None


def binary_operands(
    fname: str, x1: Any, x2: Any, group: frozenset[np.dtype] | None = None
) -> tuple[Any, Any, Device, TagSet | None]:
    """Natives (or a Python scalar), common device and united tags of a binary call, checked.

    One operand may be a Python scalar (NumPy scalars count as Python scalars); ints above
    the int64 range become 0-d arrays of the other operand's dtype where they fit.
    """
    c1 = x1.__class__ is Array
    c2 = x2.__class__ is Array
    if c1 and c2:
        if x2._device is not x1._device:
            x1, x2 = _weak_pair(f"xp.{fname}", x1, x2)
        dev = x1._device
        if group is not None:
            if x1._data.dtype not in group:
                check_dtype(fname, x1, group, "x1")
            if x2._data.dtype not in group:
                check_dtype(fname, x2, group, "x2")
        return x1._data, x2._data, dev, _tags.union(x1._tags, x2._tags)
    if c1:
        if isinstance(x2, np.generic) and not isinstance(x2, _SCALARS):
            x2 = x2.item()
        if isinstance(x2, _SCALARS):
            if group is not None and x1._data.dtype not in group:
                check_dtype(fname, x1, group, "x1")
            if x2.__class__ is int and x2 > _INT64_MAX:
                x2 = _wide_int(x2, x1)
            return x1._data, x2, x1._device, x1._tags
        as_array(fname, x2)
    elif c2:
        if isinstance(x1, np.generic) and not isinstance(x1, _SCALARS):
            x1 = x1.item()
        if isinstance(x1, _SCALARS):
            if group is not None and x2._data.dtype not in group:
                check_dtype(fname, x2, group, "x2")
            if x1.__class__ is int and x1 > _INT64_MAX:
                x1 = _wide_int(x1, x2)
            return x1, x2._data, x2._device, x2._tags
        as_array(fname, x1)
    raise DTypeError(
        f"xp.{fname}: expected hpcai Arrays (one of them may be a Python scalar), "
        f"got {type(x1).__name__} and {type(x2).__name__}"
    )


def binary(
    fname: str,
    x1: Any,
    x2: Any,
    group: frozenset[np.dtype] | None = None,
    **kwargs: Any,
) -> Array:
    """Apply a binary elementwise namespace function; one operand may be a Python scalar."""
    a, b, dev, tags = binary_operands(fname, x1, x2, group)
    try:
        r = getattr(dev._ns, fname)(a, b, **kwargs)
    except Exception as exc:
        raise _translate(f"xp.{fname}", exc) from None
    return _wrap(r, dev, tags)
