"""Creation functions of the Array API standard (chapter "Creation Functions").

Every allocation goes through ``device._backend.create(device, fname, ...)``, so devices
that account memory (emulated accelerators) charge it and refuse what does not fit.
Default floating dtypes are per device: ``float32`` on a device without FP64.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from . import _memory
from ._array import Array, _translate, _wrap
from ._device import Device, DeviceLike, all_devices, resolve_device
from ._dtypes import DTYPES_BY_NAME, _all_dtypes
from ._helpers import as_array, device_default_dtype, normalize_dtype, same_device
from ._tags import make_tags, union
from ._transfer import move
from .errors import (
    DLPackUnsupportedError,
    DTypeError,
    InvalidArgumentError,
    ScalarOverflowError,
    ShapeError,
)

__all__ = [
    "arange",
    "asarray",
    "empty",
    "empty_like",
    "eye",
    "from_dlpack",
    "full",
    "full_like",
    "linspace",
    "meshgrid",
    "ones",
    "ones_like",
    "tril",
    "triu",
    "zeros",
    "zeros_like",
]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_SCALARS = (bool, int, float, complex)


def _foreign_to_array(obj: Any) -> Array | None:
    """Wrap a foreign native array (NumPy, JAX, CuPy, ...) on the device it already lives on."""
    from hpcai.backends import backend_infos, get_backend

    if isinstance(obj, np.ndarray):
        # The caller keeps its array: writes of tagged values into this memory are exports.
        _memory.mark_foreign(obj)
        return _wrap(obj, resolve_device("numpy:cpu"), None)
    if isinstance(obj, (*_SCALARS, list, tuple)):
        return None
    all_devices()  # backends learn their devices when the device table is built
    for name, info in backend_infos().items():
        if not info.installed:
            continue
        # e.g. JAX arrays are jaxlib objects, CuPy's are cupy objects
        if not type(obj).__module__.startswith(info.requires or name):
            continue
        backend = get_backend(name)
        if backend.is_native(obj):
            dev = backend.device_of(obj)  # None: the backend does not adopt foreign arrays
            if dev is not None:
                return _wrap(obj, dev, None)
    return None


def _supports(dev: Device, dtype: Any) -> bool:
    from ._data_type_functions import device_supports

    return device_supports(dev, dtype)


def _check_result_dtype(fname: str, dtype: np.dtype[Any]) -> None:
    if dtype in _all_dtypes:  # fast path; extensions (bfloat16, ...) are looked up by name
        return
    if dtype.name not in DTYPES_BY_NAME:
        raise DTypeError(
            f"xp.{fname}: the input has data type {dtype}, which hpcai does not support; "
            f"pass dtype= one of {', '.join(sorted(DTYPES_BY_NAME))} (arrays of other libraries: "
            "xp.from_dlpack)"
        )


def _is_python_data(obj: Any) -> bool:
    """Whether *obj* is a Python scalar or a (nested) list/tuple: the default dtypes apply."""
    return isinstance(obj, (_SCALARS, list, tuple))


def _has_only_ints(obj: Any) -> bool:
    if isinstance(obj, (list, tuple)):
        return all(_has_only_ints(o) for o in obj)
    return isinstance(obj, int)


def _check_python_ints(obj: Any, host: np.ndarray) -> None:
    """Python ints that do not fit the default integer dtype (int64) are an error, not a silent float."""
    k = host.dtype.kind
    if isinstance(obj, int) and not isinstance(obj, bool):
        if not _INT64_MIN <= obj <= _INT64_MAX:
            raise ScalarOverflowError(
                f"xp.asarray: Python int {obj} does not fit the default integer dtype int64; "
                "pass dtype=xp.uint64 (if it fits) or a float"
            )
        return
    if k == "u" or k == "O" or (k == "f" and host.size and bool(np.max(np.abs(host)) >= 2.0**63)):
        if k == "O" or _has_only_ints(obj):
            raise ScalarOverflowError(
                "xp.asarray: the input holds Python ints outside the int64 range; "
                "pass dtype=xp.uint64 (if they fit) or use floats"
            )


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
    new_tags = make_tags(tags, fname="xp.asarray") if tags else None
    src: Array | None = obj if obj.__class__ is Array else _foreign_to_array(obj)
    if src is not None:
        dst = src._device if device is None else resolve_device(device)
        if new_tags is not None:  # the new tags are checked before anything moves, like existing ones
            from .residency import check_placement

            src = _wrap(src._data, src._device, union(src._tags, new_tags))
            if dst is src._device:
                check_placement(src._tags, dst, operation="xp.asarray", nbytes=src.nbytes)
        if dtype is not None and src._data.dtype != dtype:
            if copy is False:
                raise InvalidArgumentError(
                    f"xp.asarray: copy=False but converting {src._data.dtype} to {dtype} needs a copy; "
                    "pass copy=None"
                )
            if dst is src._device or _supports(src._device, dtype):
                # Cast where the data is, then move the (already fresh) result.
                out = move(_astype(src, dtype), dst, op="asarray")
            else:
                out = _astype(move(src, dst, op="asarray"), dtype)
        else:
            out = move(src, dst, op="asarray", copy=copy)
        _check_result_dtype("asarray", out._data.dtype)
        if new_tags is not None:
            out = _wrap(out._data, out._device, union(out._tags, new_tags))
        return out
    if obj.__class__ is list or obj.__class__ is tuple:
        found = _arrays_in(obj, [])
        if found:
            return _asarray_of_arrays(obj, found, dtype, device, copy, new_tags)
    dev = resolve_device(device)
    if copy is False:
        if not (isinstance(obj, (memoryview, bytearray)) or hasattr(obj, "__buffer__") or hasattr(obj, "__array_interface__")):
            raise InvalidArgumentError(
                f"xp.asarray: copy=False is impossible for {type(obj).__name__} input (it is not a buffer); "
                "pass copy=None"
            )
        if not dev.is_host:
            raise InvalidArgumentError(
                f"xp.asarray: copy=False but {dev} has its own memory, so the data must be copied there; "
                "pass copy=None"
            )
    if new_tags is not None and dev._backend.places_by_tags:
        # a device that places data by its tags (a cluster) receives tagged data by a move
        host_array = asarray(obj, dtype=dtype, device=resolve_device("numpy:cpu"), copy=copy, tags=tags)
        return move(host_array, dev, op="asarray")
    if new_tags is not None:  # tagged data may only be created where the policy allows it
        from .residency import check_placement

        check_placement(new_tags, dev, operation="xp.asarray")
    try:
        if dev.is_host:
            data = dev._backend.create(dev, "asarray", obj, dtype=dtype, copy=copy)
            host = data
            if not _is_python_data(obj) and getattr(data, "base", None) is not None:
                _memory.mark_foreign(data)  # a caller's buffer, wrapped without a copy
        else:
            host = np.asarray(obj, dtype=dtype)
        if dtype is None and _is_python_data(obj):
            _check_python_ints(obj, host)
        _check_result_dtype("asarray", host.dtype)
        if not dev.is_host:
            if dtype is None and _is_python_data(obj) and host.dtype.kind in "fc" and not _supports(dev, host.dtype):
                kind = "real floating" if host.dtype.kind == "f" else "complex floating"
                host = host.astype(device_default_dtype(dev, kind))
            data = dev._backend.from_host(host, dev, copy=True)
    except Exception as exc:
        raise _translate("xp.asarray", exc) from None
    out = _wrap(data, dev, new_tags)
    if device is None and new_tags is None and dev._host and isinstance(obj, (*_SCALARS, np.generic)):
        out._weak = True  # a weak scalar: joins operations on any device like the scalar itself
    return out


def _arrays_in(seq: list[Any] | tuple[Any, ...], out: list[Array]) -> list[Array]:
    """The hpcai Arrays inside a nested list/tuple (the type scan runs at C speed)."""
    types = set(map(type, seq))
    if Array in types:
        out.extend(o for o in seq if o.__class__ is Array)
    if list in types or tuple in types:
        for o in seq:
            if o.__class__ is list or o.__class__ is tuple:
                _arrays_in(o, out)
    return out


def _scalars_in(seq: list[Any] | tuple[Any, ...], out: list[Any]) -> list[Any]:
    """Everything but Arrays and sequences inside a nested list/tuple."""
    for o in seq:
        if o.__class__ is list or o.__class__ is tuple:
            _scalars_in(o, out)
        elif o.__class__ is not Array:
            out.append(o)
    return out


def _asarray_of_arrays(
    obj: list[Any] | tuple[Any, ...],
    arrays: list[Array],
    dtype: np.dtype[Any] | None,
    device: DeviceLike | None,
    copy: bool | None,
    new_tags: Any,
) -> Array:
    """``asarray`` of a nested sequence holding hpcai Arrays (e.g. ``[x[0], x[1]]``).

    The result is built where the arrays live (they must share one device), carries the
    union of their tags, and reaches another ``device=`` only through :func:`move`: a
    movement like any other, policy-checked and recorded. Nothing goes through host
    memory implicitly.
    """
    if copy is False:
        raise InvalidArgumentError(
            "xp.asarray: copy=False is impossible for a sequence of arrays (the result is new memory); "
            "pass copy=None"
        )
    _, src, tags = same_device("asarray", arrays)
    tags = union(tags, new_tags)
    dst = src if device is None else resolve_device(device)
    if new_tags is not None and dst is src:
        from .residency import check_placement

        check_placement(tags, dst, operation="xp.asarray")
    if dtype is None:
        from ._data_type_functions import result_type

        scalars = {type(s): s for s in _scalars_in(obj, []) if isinstance(s, _SCALARS)}
        dtype = normalize_dtype("asarray", result_type(*arrays, *scalars.values()))
    ns = src._ns
    backend = src._backend
    dt = dtype

    def build(o: Any) -> Any:
        if o.__class__ is Array:
            d = o._data
            return d if d.dtype == dt else ns.astype(d, dt)
        if o.__class__ is list or o.__class__ is tuple:
            if not o:
                return backend.create(src, "asarray", [], dtype=dt)
            return ns.stack([build(e) for e in o])
        if isinstance(o, (*_SCALARS, np.generic)):
            return backend.create(src, "asarray", o, dtype=dt)
        raise DTypeError(
            f"xp.asarray: a sequence of arrays may also hold Python scalars, got {type(o).__name__}"
        )

    try:
        data = build(obj)
    except Exception as exc:
        raise _translate("xp.asarray", exc) from None
    _check_result_dtype("asarray", data.dtype)
    out = _wrap(data, src, tags)
    if dst is not src:
        out = move(out, dst, op="asarray")
    return out


def _astype(x: Array, dtype: np.dtype[Any]) -> Array:
    dev = x._device
    try:
        data = dev._ns.astype(x._data, dtype, copy=True)
    except Exception as exc:
        raise _translate("xp.asarray", exc) from None
    return _wrap(data, dev, x._tags)


def _shape(fname: str, shape: int | Sequence[int]) -> tuple[int, ...]:
    """Validate a shape argument: an int or a sequence of non-negative ints."""
    if shape.__class__ is tuple and all(s.__class__ is int and s >= 0 for s in shape):  # type: ignore[union-attr]
        return shape  # type: ignore[return-value]
    items = shape if isinstance(shape, (tuple, list)) else (shape,)
    out = []
    for s in items:
        if isinstance(s, (bool, np.bool_)) or not hasattr(s, "__index__"):
            raise InvalidArgumentError(
                f"xp.{fname}: shape must be an int or a tuple of ints, got {shape!r:.60}"
            )
        out.append(operator.index(s))
    if any(s < 0 for s in out):
        raise InvalidArgumentError(f"xp.{fname}: shape must be non-negative, got {tuple(out)}")
    return tuple(out)


def _create(fname: str, dev: Device, *args: Any, **kwargs: Any) -> Any:
    """Allocate through the device's backend (memory accounting, dtype checks), translating errors."""
    try:
        return dev._backend.create(dev, fname, *args, **kwargs)
    except Exception as exc:
        raise _translate(f"xp.{fname}", exc) from None


def _dtype_or_default(fname: str, dtype: Any, dev: Device, kind: str) -> np.dtype[Any]:
    dt = normalize_dtype(fname, dtype)
    return dt if dt is not None else device_default_dtype(dev, kind)


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
    dt = _dtype_or_default("zeros", dtype, dev, "real floating")
    shp = _shape("zeros", shape)
    return _wrap(_create("zeros", dev, shp, dtype=dt), dev, None)


def ones(
    shape: int | tuple[int, ...],
    *,
    dtype: Any = None,
    device: DeviceLike | None = None,
) -> Array:
    """An array of ones of *shape* on *device* (default dtype: the device's default float).

    >>> import hpcai as xp
    >>> xp.ones(3, dtype=xp.int32)
    Array([1, 1, 1], dtype=int32, device='numpy:cpu')
    """
    dev = resolve_device(device)
    dt = _dtype_or_default("ones", dtype, dev, "real floating")
    shp = _shape("ones", shape)
    return _wrap(_create("ones", dev, shp, dtype=dt), dev, None)


def empty(
    shape: int | tuple[int, ...],
    *,
    dtype: Any = None,
    device: DeviceLike | None = None,
) -> Array:
    """An array of *shape* on *device* whose values the standard leaves unspecified.

    hpcai fills it with zeros: freed memory can still hold another array's values (covered
    data included), and handing those out as a fresh, untagged array would move them
    without a decision. NumPy (calloc), the emulated devices and CuPy get zeroed memory
    cheaply; JAX has no uninitialised arrays at all.

    >>> import hpcai as xp
    >>> xp.empty((2, 2), device="emulated:0").shape
    (2, 2)
    """
    dev = resolve_device(device)
    dt = _dtype_or_default("empty", dtype, dev, "real floating")
    shp = _shape("empty", shape)
    return _wrap(_create("zeros", dev, shp, dtype=dt), dev, None)


def _arg_tags(*args: Any) -> Any:
    """The union of the tags of the 0-d Arrays among scalar arguments (``eye(n, k=x[0])``).

    Their values shape the result (where the ones of ``eye`` are, the values of
    ``arange``), so the result derives from them and carries their tags.
    """
    tags = None
    for a in args:
        if a.__class__ is Array:
            tags = union(tags, a._tags)
    return tags


def _fill_tags(fname: str, fill_value: Any, dev: Device) -> Any:
    """The tags a 0-d Array *fill_value* brings into an array made on *dev*.

    Its value becomes data of the new array, so its tags go with it; reading it from
    another device is a movement, decided like one (nothing is created when denied).
    """
    if fill_value.__class__ is not Array:
        return None
    if fill_value._device is not dev:
        from ._transfer import check_move

        check_move(fill_value, fill_value._device, dev, f"xp.{fname}")
    return fill_value._tags


def _fill_kind(fname: str, fill_value: Any) -> tuple[bool | int | float | complex, str]:
    """The Python value of *fill_value* and its kind letter ('b', 'i', 'f', 'c')."""
    if fill_value.__class__ is Array:
        if fill_value.ndim != 0:
            raise ShapeError(f"xp.{fname}: fill_value must be a scalar, got an array of shape {fill_value.shape}")
        fill_value = fill_value._device._backend.to_host(fill_value._data, fill_value._device).item()
    elif isinstance(fill_value, np.generic):
        fill_value = fill_value.item()
    if isinstance(fill_value, bool):
        return fill_value, "b"
    if isinstance(fill_value, int):
        return fill_value, "i"
    if isinstance(fill_value, float):
        return fill_value, "f"
    if isinstance(fill_value, complex):
        return fill_value, "c"
    raise DTypeError(
        f"xp.{fname}: fill_value must be a bool, int, float or complex, got {type(fill_value).__name__} {fill_value!r:.60}"
    )


_KIND_RANK = {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}


def _fill_dtype(fname: str, value: Any, vkind: str, dtype: Any, dev: Device) -> np.dtype[Any]:
    dt = normalize_dtype(fname, dtype)
    if dt is None:
        if vkind == "b":
            return np.dtype("bool")
        if vkind == "i":
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise ScalarOverflowError(
                    f"xp.{fname}: fill_value {value} does not fit the default integer dtype int64; pass dtype="
                )
            return device_default_dtype(dev, "integral")
        return device_default_dtype(dev, "real floating" if vkind == "f" else "complex floating")
    rank = _KIND_RANK.get(dt.kind, 2)
    if vkind != "b" and _KIND_RANK[vkind] > rank:
        raise DTypeError(
            f"xp.{fname}: fill_value {value!r} ({type(value).__name__}) cannot be stored in {dt} without "
            f"losing information; pass a {dt} value or choose another dtype"
        )
    return dt


def full(
    shape: int | tuple[int, ...],
    fill_value: bool | int | float | complex,
    *,
    dtype: Any = None,
    device: DeviceLike | None = None,
) -> Array:
    """An array of *shape* filled with *fill_value*; the dtype follows the value's Python type by default.

    >>> import hpcai as xp
    >>> xp.full((2,), 7)
    Array([7, 7], dtype=int64, device='numpy:cpu')
    """
    dev = resolve_device(device)
    tags = _fill_tags("full", fill_value, dev)
    value, vkind = _fill_kind("full", fill_value)
    dt = _fill_dtype("full", value, vkind, dtype, dev)
    shp = _shape("full", shape)
    return _wrap(_create("full", dev, shp, value, dtype=dt), dev, tags)


def _like_target(fname: str, x: Any, dtype: Any, device: DeviceLike | None) -> tuple[Array, Device, np.dtype[Any]]:
    x = as_array(fname, x)
    dev = x._device if device is None else resolve_device(device)
    dt = normalize_dtype(fname, dtype)
    return x, dev, (x._data.dtype if dt is None else dt)


def zeros_like(x: Array, /, *, dtype: Any = None, device: DeviceLike | None = None) -> Array:
    """Zeros with the shape of *x*, on x's device with x's dtype and residency tags by default.

    >>> import hpcai as xp
    >>> xp.zeros_like(xp.asarray([1, 2]))
    Array([0, 0], dtype=int64, device='numpy:cpu')
    """
    x, dev, dt = _like_target("zeros_like", x, dtype, device)
    return _wrap(_create("zeros", dev, x.shape, dtype=dt), dev, x._tags)


def ones_like(x: Array, /, *, dtype: Any = None, device: DeviceLike | None = None) -> Array:
    """Ones with the shape of *x*, on x's device with x's dtype and residency tags by default.

    >>> import hpcai as xp
    >>> xp.ones_like(xp.asarray([1.5, 2.5]), dtype=xp.int8)
    Array([1, 1], dtype=int8, device='numpy:cpu')
    """
    x, dev, dt = _like_target("ones_like", x, dtype, device)
    return _wrap(_create("ones", dev, x.shape, dtype=dt), dev, x._tags)


def empty_like(x: Array, /, *, dtype: Any = None, device: DeviceLike | None = None) -> Array:
    """An array with the shape of *x*, on x's device with x's dtype and tags by default.

    Like :func:`empty`, the values are zeros: memory is never handed out uninitialised.

    >>> import hpcai as xp
    >>> xp.empty_like(xp.ones((2, 3)), device="emulated:0").shape
    (2, 3)
    """
    x, dev, dt = _like_target("empty_like", x, dtype, device)
    return _wrap(_create("zeros", dev, x.shape, dtype=dt), dev, x._tags)


def full_like(
    x: Array,
    /,
    fill_value: bool | int | float | complex,
    *,
    dtype: Any = None,
    device: DeviceLike | None = None,
) -> Array:
    """*fill_value* with the shape of *x*, on x's device with x's dtype and tags by default.

    >>> import hpcai as xp
    >>> xp.full_like(xp.zeros(2), 0.5)
    Array([0.5, 0.5], dtype=float64, device='numpy:cpu')
    """
    x, dev, _ = _like_target("full_like", x, dtype, device)
    tags = union(x._tags, _fill_tags("full_like", fill_value, dev))
    value, vkind = _fill_kind("full_like", fill_value)
    dt = _fill_dtype("full_like", value, vkind, x._data.dtype if dtype is None else dtype, dev)
    return _wrap(_create("full", dev, x.shape, value, dtype=dt), dev, tags)


def _real_number(fname: str, name: str, v: Any) -> int | float:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise DTypeError(f"xp.{fname}: {name} must be an int or a float, got {type(v).__name__} {v!r:.60}")
    return v


def arange(
    start: int | float,
    /,
    stop: int | float | None = None,
    step: int | float = 1,
    *,
    dtype: Any = None,
    device: DeviceLike | None = None,
) -> Array:
    """Evenly spaced values in ``[start, stop)``; ints give int64, any float the device's default float.

    >>> import hpcai as xp
    >>> xp.arange(1, 7, 2)
    Array([1, 3, 5], dtype=int64, device='numpy:cpu')
    """
    dev = resolve_device(device)
    a = _real_number("arange", "start", start)
    b = None if stop is None else _real_number("arange", "stop", stop)
    s = _real_number("arange", "step", step)
    if s == 0:
        raise InvalidArgumentError("xp.arange: step must not be 0")
    vals = (a, s) if b is None else (a, b, s)
    if dtype is None:
        kind = "integral" if all(isinstance(v, int) for v in vals) else "real floating"
        dt = device_default_dtype(dev, kind)
    else:
        dt = normalize_dtype("arange", dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        for v in vals:
            if isinstance(v, int) and not info.min <= v <= info.max:
                raise ScalarOverflowError(f"xp.arange: {v} does not fit {dt}; pass a wider dtype")
    return _wrap(_create("arange", dev, a, b, s, dtype=dt), dev, _arg_tags(start, stop, step))


def eye(
    n_rows: int,
    n_cols: int | None = None,
    /,
    *,
    k: int = 0,
    dtype: Any = None,
    device: DeviceLike | None = None,
) -> Array:
    """A 2-D array with ones on the ``k``-th diagonal and zeros elsewhere.

    >>> import hpcai as xp
    >>> xp.eye(2, 3, k=1, dtype=xp.int8)[0]
    Array([0, 1, 0], dtype=int8, device='numpy:cpu')
    """
    dev = resolve_device(device)
    rows = _nonneg_int("eye", "n_rows", n_rows)
    cols = rows if n_cols is None else _nonneg_int("eye", "n_cols", n_cols)
    kk = _int_arg("eye", "k", k)
    dt = _dtype_or_default("eye", dtype, dev, "real floating")
    return _wrap(_create("eye", dev, rows, cols, k=kk, dtype=dt), dev, _arg_tags(n_rows, n_cols, k))


def _int_arg(fname: str, name: str, v: Any) -> int:
    if isinstance(v, bool):
        raise DTypeError(f"xp.{fname}: {name} must be an int, got a bool")
    try:
        return operator.index(v)
    except TypeError:
        raise DTypeError(f"xp.{fname}: {name} must be an int, got {type(v).__name__} {v!r:.60}") from None


def _nonneg_int(fname: str, name: str, v: Any) -> int:
    n = _int_arg(fname, name, v)
    if n < 0:
        raise InvalidArgumentError(f"xp.{fname}: {name} must be non-negative, got {n}")
    return n


def linspace(
    start: int | float | complex,
    stop: int | float | complex,
    /,
    num: int,
    *,
    dtype: Any = None,
    device: DeviceLike | None = None,
    endpoint: bool = True,
) -> Array:
    """*num* evenly spaced numbers over ``[start, stop]`` (``[start, stop)`` with ``endpoint=False``).

    >>> import hpcai as xp
    >>> xp.linspace(0, 1, 5)
    Array([0.  , 0.25, 0.5 , 0.75, 1.  ], dtype=float64, device='numpy:cpu')
    """
    dev = resolve_device(device)
    n = _nonneg_int("linspace", "num", num)
    vals = []
    for name, v in (("start", start), ("stop", stop)):
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, (int, float, complex)):
            raise DTypeError(f"xp.linspace: {name} must be an int, float or complex, got {type(v).__name__} {v!r:.60}")
        vals.append(v)
    if not isinstance(endpoint, (bool, np.bool_)):
        raise DTypeError(f"xp.linspace: endpoint must be a bool, got {endpoint!r:.60}")
    is_complex = any(isinstance(v, complex) for v in vals)
    dt = _dtype_or_default("linspace", dtype, dev, "complex floating" if is_complex else "real floating")
    if is_complex and dt.kind != "c":
        raise DTypeError(f"xp.linspace: complex start/stop need a complex dtype, got {dt}")
    data = _create("linspace", dev, vals[0], vals[1], n, dtype=dt, endpoint=bool(endpoint))
    return _wrap(data, dev, _arg_tags(start, stop, num))


def meshgrid(*arrays: Array, indexing: Literal["xy", "ij"] = "xy") -> list[Array]:
    """Coordinate matrices from 1-D coordinate vectors (``'xy'``: Cartesian, ``'ij'``: matrix indexing).

    >>> import hpcai as xp
    >>> X, Y = xp.meshgrid(xp.asarray([1, 2, 3]), xp.asarray([4, 5]))
    >>> X.shape
    (2, 3)
    """
    if indexing not in ("xy", "ij"):
        raise InvalidArgumentError(f"xp.meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    if not arrays:
        return []
    natives, dev, tags = same_device("meshgrid", arrays)
    for i, a in enumerate(natives):
        if a.ndim != 1:
            raise ShapeError(f"xp.meshgrid: every array must be 1-D, array {i} has shape {tuple(a.shape)}")
    dtypes = {a.dtype for a in natives}
    if len(dtypes) > 1:
        raise DTypeError(
            f"xp.meshgrid: all arrays must have the same dtype, got {', '.join(sorted(map(str, dtypes)))}; "
            "cast them with xp.astype first"
        )
    try:
        out = dev._ns.meshgrid(*natives, indexing=indexing)
    except Exception as exc:
        raise _translate("xp.meshgrid", exc) from None
    return [_wrap(o, dev, tags) for o in out]


def _matrix_op(fname: str, x: Any, k: int) -> Array:
    x = as_array(fname, x)
    kk = _int_arg(fname, "k", k)
    if x._data.ndim < 2:
        raise ShapeError(f"xp.{fname}: needs an array of at least 2 dimensions (a stack of matrices), got shape {x.shape}")
    dev = x._device
    try:
        r = getattr(dev._ns, fname)(x._data, k=kk)
    except Exception as exc:
        raise _translate(f"xp.{fname}", exc) from None
    return _wrap(r, dev, union(x._tags, _arg_tags(k)))


def tril(x: Array, /, *, k: int = 0) -> Array:
    """The lower triangle of a matrix (or a stack of them): elements above diagonal *k* are zeroed.

    >>> import hpcai as xp
    >>> xp.tril(xp.ones((2, 2), dtype=xp.int8))[0]
    Array([1, 0], dtype=int8, device='numpy:cpu')
    """
    return _matrix_op("tril", x, k)


def triu(x: Array, /, *, k: int = 0) -> Array:
    """The upper triangle of a matrix (or a stack of them): elements below diagonal *k* are zeroed.

    >>> import hpcai as xp
    >>> xp.triu(xp.ones((2, 2), dtype=xp.int8))[1]
    Array([0, 1], dtype=int8, device='numpy:cpu')
    """
    return _matrix_op("triu", x, k)


def from_dlpack(x: object, /, *, device: DeviceLike | None = None, copy: bool | None = None) -> Array:
    """An Array holding the data of *x*, any object implementing DLPack (or an hpcai Array).

    Host data (NumPy, or any producer on a CPU) is imported zero-copy onto ``numpy:cpu``
    unless ``copy=True``; ``device=`` then moves it through the movement path (recorded
    and policy-checked). ``copy=False`` refuses anything that would need a copy. An
    hpcai Array never goes through its capsule: it is moved directly.

    >>> import numpy as np, hpcai as xp
    >>> xp.from_dlpack(np.arange(3), device="emulated:0").device
    Device('emulated:0')
    """
    if x.__class__ is Array:
        dst = x._device if device is None else resolve_device(device)  # type: ignore[attr-defined]
        return move(x, dst, op="from_dlpack", copy=copy)  # type: ignore[arg-type]
    dst_dev = None if device is None else resolve_device(device)
    if not hasattr(x, "__dlpack__"):
        raise DLPackUnsupportedError(
            f"xp.from_dlpack: {type(x).__module__}.{type(x).__name__} does not implement DLPack "
            "(no __dlpack__ method); use xp.asarray for Python sequences and buffers"
        )
    native_src = None if isinstance(x, np.ndarray) else _foreign_to_array(x)
    if native_src is not None:
        # An array of another installed backend stays on its own device unless asked otherwise.
        dst = native_src._device if dst_dev is None else dst_dev
        return move(native_src, dst, op="from_dlpack", copy=copy)
    host_dev = resolve_device("numpy:cpu")
    dst = host_dev if dst_dev is None else dst_dev
    if copy is False and dst is not host_dev:
        raise InvalidArgumentError(
            f"xp.from_dlpack: copy=False but the data is host memory and was asked for on {dst}; "
            "a move between devices needs a copy (pass copy=None or True)"
        )
    host_copy = copy if dst is host_dev else None
    try:
        host = np.from_dlpack(x, copy=host_copy)
    except BufferError as exc:
        raise BufferError(f"xp.from_dlpack: {type(x).__name__} cannot be read from the host: {exc}") from None
    except ValueError as exc:
        raise InvalidArgumentError(f"xp.from_dlpack: {exc}") from None
    except Exception as exc:
        raise _translate("xp.from_dlpack", exc) from None
    _check_result_dtype("from_dlpack", host.dtype)
    arr = _wrap(host, host_dev, None)
    if dst is host_dev:
        if host_copy is not True:
            _memory.mark_foreign(host)  # the producer keeps this memory
        return arr
    return move(arr, dst, op="from_dlpack")
