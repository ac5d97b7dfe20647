"""Creation functions of the Array API standard (chapter "Creation Functions")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._array import Array, _translate, _wrap
from ._device import Device, DeviceLike, resolve_device
from ._helpers import device_default_dtype, normalize_dtype
from ._tags import make_tags, union
from ._transfer import move
from .errors import InvalidArgumentError

__all__ = ["asarray", "zeros"]


def _foreign_to_array(obj: Any) -> Array | None:
    """Wrap a foreign native array (NumPy, JAX, CuPy, ...) on the device it already lives on."""
    from hpcai.backends import backend_infos, get_backend

    if isinstance(obj, np.ndarray):
        return _wrap(obj, resolve_device("numpy:cpu"), None)
    for name, info in backend_infos().items():
        if not info.installed or name in ("numpy", "emulated"):
            continue
        mod = type(obj).__module__.split(".", 1)[0]
        if mod != (info.requires or name):
            continue
        backend = get_backend(name)
        if backend.is_native(obj):
            dev = backend.device_of(obj)  # type: ignore[attr-defined]
            return _wrap(obj, dev, None)
    return None


def _default_float(dev: Device, host: np.ndarray, dtype: Any) -> Any:
    """Python floats/complexes take the device's default floating dtype (float32 without FP64)."""
    if dtype is None and host.dtype.kind in "fc" and not dev.spec.has_fp64:
        kind = "real floating" if host.dtype.kind == "f" else "complex floating"
        return device_default_dtype(dev, kind)
    return dtype


def asarray(
    obj: Any,
    /,
    *,
    dtype: Any = None,
    device: DeviceLike | None = None,
    copy: bool | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Array:
    """Convert *obj* to an hpcai Array on *device* (default: the configured default device).

    *obj* may be an hpcai Array, a NumPy/JAX/CuPy array, a Python scalar, a nested
    sequence or a buffer. ``copy=True`` always copies, ``copy=False`` never does (and
    raises if it would have to), ``copy=None`` copies only when needed. Bringing data
    from another device is a movement: recorded by ``xp.transfers()`` and policy-checked.
    ``tags`` (an hpcai extension) adds residency tags.

    >>> import hpcai as xp
    >>> xp.asarray([1, 2, 3], device="emulated:0").device
    Device('emulated:0')
    """
    dtype = normalize_dtype("asarray", dtype)
    new_tags = make_tags(tags) if tags else None
    src: Array | None = obj if obj.__class__ is Array else _foreign_to_array(obj)
    if src is not None:
        dst = src._device if device is None else resolve_device(device)
        out = move(src, dst, op="asarray", copy=copy)
        copied = out is not src
        if dtype is not None and out._data.dtype != dtype:
            if copy is False:
                raise InvalidArgumentError(
                    f"xp.asarray: copy=False but converting {out._data.dtype} to {dtype} needs a copy"
                )
            try:
                data = out._device._ns.astype(out._data, dtype, copy=True)
            except Exception as exc:
                raise _translate("xp.asarray", exc) from None
            out = _wrap(data, out._device, out._tags)
        elif copy and not copied:
            out = move(src, dst, op="asarray", copy=True)
        if new_tags is not None:
            out = _wrap(out._data, out._device, union(out._tags, new_tags))
        return out
    dev = resolve_device(device)
    if copy is False and not isinstance(obj, (memoryview, bytearray)):
        if not (hasattr(obj, "__buffer__") or hasattr(obj, "__array_interface__")):
            raise InvalidArgumentError(
                f"xp.asarray: copy=False is impossible for {type(obj).__name__} input; pass copy=None"
            )
    try:
        if dev.is_host:
            data = dev._backend.create(dev, "asarray", obj, dtype=dtype, copy=copy)
        else:
            host = np.asarray(obj, dtype=dtype)
            dt = _default_float(dev, host, dtype)
            if dt is not None and host.dtype != dt:
                host = host.astype(dt)
            data = dev._backend.from_host(host, dev, copy=True)
    except Exception as exc:
        raise _translate("xp.asarray", exc) from None
    return _wrap(data, dev, new_tags)


def _shape(fname: str, shape: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        out = tuple(int(s) for s in shape)  # type: ignore[union-attr]
    except TypeError:
        raise InvalidArgumentError(f"xp.{fname}: shape must be an int or a tuple of ints, got {shape!r}") from None
    if any(s < 0 for s in out):
        raise InvalidArgumentError(f"xp.{fname}: shape must be non-negative, got {out}")
    return out


def zeros(
    shape: int | tuple[int, ...],
    *,
    dtype: Any = None,
    device: DeviceLike | None = None,
) -> Array:
    """An array of zeros of *shape* on *device*.

    >>> import hpcai as xp
    >>> xp.zeros((2, 3)).shape
    (2, 3)
    """
    dev = resolve_device(device)
    dt = normalize_dtype("zeros", dtype) or device_default_dtype(dev, "real floating")
    shp = _shape("zeros", shape)
    try:
        data = dev._backend.create(dev, "zeros", shp, dtype=dt)
    except Exception as exc:
        raise _translate("xp.zeros", exc) from None
    return _wrap(data, dev, None)
