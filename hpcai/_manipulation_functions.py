"""Manipulation functions of the Array API standard (chapter "Manipulation Functions").

Each function checks its arguments (so bad axes, shapes and devices give clear
:mod:`hpcai.errors`), calls the device's array-api-compat namespace and wraps the result
with the inputs' residency tags. Functions taking several arrays require one device.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._array import Array, _translate, _wrap
from ._dtypes import _integer_dtypes, _unsigned_integer_dtypes
from ._helpers import as_array, call, same_device
from .errors import AxisError, DTypeError, InvalidArgumentError, ShapeError

__all__ = [
    "broadcast_arrays",
    "broadcast_to",
    "concat",
    "expand_dims",
    "flip",
    "moveaxis",
    "pad",
    "permute_dims",
    "repeat",
    "reshape",
    "roll",
    "sliding_window_view",
    "squeeze",
    "stack",
    "tile",
    "unstack",
]


# --------------------------------------------------------------------------------------------
# argument checking
# --------------------------------------------------------------------------------------------
def _int(fname: str, name: str, v: Any) -> int:
    if isinstance(v, (bool, np.bool_)) or not hasattr(v, "__index__") or v.__class__ is Array:
        raise DTypeError(f"xp.{fname}: {name} must be an int, got {type(v).__name__} {v!r:.60}")
    return operator.index(v)


def _ints(fname: str, name: str, v: Any, *, allow_int: bool = True) -> tuple[int, ...]:
    """A tuple of ints (a single int too, when *allow_int*)."""
    if isinstance(v, (tuple, list)):
        return tuple(_int(fname, name, e) for e in v)
    if allow_int:
        return (_int(fname, name, v),)
    raise DTypeError(f"xp.{fname}: {name} must be a tuple of ints, got {type(v).__name__} {v!r:.60}")


def _axis(fname: str, axis: Any, ndim: int, *, extra: int = 0) -> int:
    """Normalise one axis for an array of *ndim* dims (*extra* new axes allowed: expand_dims/stack)."""
    a = _int(fname, "axis", axis)
    n = ndim + extra
    if not -n <= a < n:
        raise AxisError(
            f"xp.{fname}: axis {a} is out of range for {'a result' if extra else 'an array'} "
            f"with {n} dimensions (valid: {-n} to {n - 1})"
        )
    return a + n if a < 0 else a


def _axes(fname: str, axis: Any, ndim: int) -> tuple[int, ...]:
    out = tuple(_axis(fname, a, ndim) for a in _ints(fname, "axis", axis))
    if len(set(out)) != len(out):
        raise InvalidArgumentError(f"xp.{fname}: repeated axis in {axis!r}")
    return out


def _arrays(fname: str, arrays: Any) -> Sequence[Array]:
    if arrays.__class__ is Array or not isinstance(arrays, (tuple, list)):
        raise DTypeError(
            f"xp.{fname}: expected a tuple or list of arrays, got {type(arrays).__name__}; "
            f"e.g. xp.{fname}((a, b))"
        )
    if not arrays:
        raise InvalidArgumentError(f"xp.{fname}: needs at least one array, got an empty {type(arrays).__name__}")
    return arrays


def _apply(fname: str, x: Any, *args: Any, **kwargs: Any) -> Array:
    """Call namespace function *fname* on ``x`` and wrap the result with x's device and tags."""
    x = as_array(fname, x)
    return _wrap(call(fname, x, *args, **kwargs), x._device, x._tags)


def _call_many(fname: str, natives: Sequence[Any], dev: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return getattr(dev._ns, fname)(natives, *args, **kwargs)
    except Exception as exc:
        raise _translate(f"xp.{fname}", exc) from None


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------
def broadcast_arrays(*arrays: Array) -> list[Array]:
    """Broadcast arrays against each other; all must live on one device.

    >>> import hpcai as xp
    >>> [a.shape for a in xp.broadcast_arrays(xp.ones((2, 1)), xp.ones(3))]
    [(2, 3), (2, 3)]
    """
    if not arrays:
        return []
    natives, dev, tags = same_device("broadcast_arrays", arrays)
    try:
        out = dev._ns.broadcast_arrays(*natives)
    except Exception as exc:
        raise _translate("xp.broadcast_arrays", exc) from None
    return [_wrap(o, dev, tags) for o in out]


def broadcast_to(x: Array, /, shape: tuple[int, ...]) -> Array:
    """Broadcast *x* to *shape* (a read-only view where the backend has views).

    >>> import hpcai as xp
    >>> xp.broadcast_to(xp.asarray([1, 2]), (3, 2)).shape
    (3, 2)
    """
    shp = _ints("broadcast_to", "shape", shape)
    if any(s < 0 for s in shp):
        raise ShapeError(f"xp.broadcast_to: shape must be non-negative, got {shp}")
    return _apply("broadcast_to", x, shp)


def concat(arrays: tuple[Array, ...] | list[Array], /, *, axis: int | None = 0) -> Array:
    """Join arrays along an existing axis (``axis=None``: flatten first); dtypes promote.

    >>> import hpcai as xp
    >>> xp.concat((xp.asarray([1, 2]), xp.asarray([3]))).shape
    (3,)
    """
    natives, dev, tags = same_device("concat", _arrays("concat", arrays))
    if axis is not None:
        for i, a in enumerate(natives):
            if a.ndim == 0:
                raise ShapeError(f"xp.concat: array {i} is 0-dimensional; 0-d arrays cannot be joined (use xp.stack)")
        axis = _axis("concat", axis, natives[0].ndim)
        first = tuple(natives[0].shape)
        for i, a in enumerate(natives[1:], 1):
            shp = tuple(a.shape)
            if len(shp) != len(first) or any(p != q for j, (p, q) in enumerate(zip(shp, first)) if j != axis):
                raise ShapeError(
                    f"xp.concat: array {i} has shape {shp}, array 0 has shape {first}; shapes must match "
                    f"except along axis {axis}"
                )
    return _wrap(_call_many("concat", natives, dev, axis=axis), dev, tags)


def expand_dims(x: Array, /, axis: int | tuple[int, ...]) -> Array:
    """Insert a size-one axis at *axis* (valid: ``-x.ndim - 1`` to ``x.ndim``).

    A tuple of axes is accepted as an extension.

    >>> import hpcai as xp
    >>> xp.expand_dims(xp.ones((2, 3)), axis=-1).shape
    (2, 3, 1)
    """
    x = as_array("expand_dims", x)
    axes = _ints("expand_dims", "axis", axis)
    norm = tuple(_axis("expand_dims", a, x.ndim, extra=len(axes)) for a in axes)
    if len(set(norm)) != len(norm):
        raise InvalidArgumentError(f"xp.expand_dims: repeated axis in {axis!r}")
    return _apply("expand_dims", x, norm if isinstance(axis, (tuple, list)) else norm[0])


def flip(x: Array, /, *, axis: int | tuple[int, ...] | None = None) -> Array:
    """Reverse the order of elements along *axis* (all axes when ``None``).

    >>> import hpcai as xp
    >>> xp.flip(xp.asarray([1, 2, 3]))
    Array([3, 2, 1], dtype=int64, device='numpy:cpu')
    """
    x = as_array("flip", x)
    ax = None if axis is None else _axes("flip", axis, x.ndim)
    return _apply("flip", x, axis=ax)


def moveaxis(x: Array, source: int | tuple[int, ...], destination: int | tuple[int, ...], /) -> Array:
    """Move axes *source* to positions *destination*, keeping the order of the others.

    >>> import hpcai as xp
    >>> xp.moveaxis(xp.ones((2, 3, 4)), 0, -1).shape
    (3, 4, 2)
    """
    x = as_array("moveaxis", x)
    src = _axes("moveaxis", source, x.ndim)
    dst = _axes("moveaxis", destination, x.ndim)
    if len(src) != len(dst):
        raise InvalidArgumentError(
            f"xp.moveaxis: source {source!r} and destination {destination!r} must name as many axes"
        )
    return _apply("moveaxis", x, src, dst)


_PAD_MODES = ("constant", "edge", "linear_ramp", "maximum", "mean", "median", "minimum", "reflect", "symmetric", "wrap", "empty")
_PAD_OPTIONS = ("constant_values", "end_values", "stat_length", "reflect_type")


def _pad_scalars(name: str, v: Any) -> Any:
    """A pad option as Python scalars (nested tuples kept); arrays of any kind are refused."""
    if isinstance(v, (tuple, list)):
        return tuple(_pad_scalars(name, e) for e in v)
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (bool, int, float, complex, str)):
        return v
    raise DTypeError(
        f"xp.pad: {name} must be a Python scalar or a tuple of them, got {type(v).__name__}; "
        "for a value held in an array convert it explicitly with float(...)"
    )


def pad(
    x: Array,
    /,
    pad_width: int | tuple[int, int] | Sequence[tuple[int, int]],
    mode: str = "constant",
    **kwargs: Any,
) -> Array:
    """Pad *x* with *pad_width* elements before/after each axis (an extension; NumPy's ``pad``).

    *pad_width* is an int, a ``(before, after)`` pair, or one pair per axis; *mode* is one of
    NumPy's (``"constant"`` with ``constant_values=``, ``"edge"``, ``"reflect"``, ``"wrap"``,
    ...), computed by the device's own namespace. xarray's ``rolling`` and ``pad`` use it.

    >>> import hpcai as xp
    >>> xp.pad(xp.asarray([1, 2]), (1, 2), constant_values=9)
    Array([9, 1, 2, 9, 9], dtype=int64, device='numpy:cpu')
    """
    x = as_array("pad", x)
    if mode not in _PAD_MODES:
        raise InvalidArgumentError(f"xp.pad: mode must be one of {', '.join(_PAD_MODES)}; got {mode!r}")
    unknown = sorted(set(kwargs) - set(_PAD_OPTIONS))
    if unknown:
        raise InvalidArgumentError(f"xp.pad: unexpected option(s) {', '.join(unknown)}; valid: {', '.join(_PAD_OPTIONS)}")
    if isinstance(pad_width, (tuple, list)):
        widths: Any = tuple(
            _ints("pad", "pad_width", w) if isinstance(w, (tuple, list)) else _int("pad", "pad_width", w) for w in pad_width
        )
    else:
        widths = _int("pad", "pad_width", pad_width)
    flat = [w for p in (widths if isinstance(widths, tuple) else (widths,)) for w in (p if isinstance(p, tuple) else (p,))]
    if any(w < 0 for w in flat):
        raise InvalidArgumentError(f"xp.pad: pad_width must be non-negative, got {pad_width!r}")
    options = {k: _pad_scalars(k, v) for k, v in kwargs.items() if v is not None}
    return _apply("pad", x, widths, mode=mode, **options)


def sliding_window_view(
    x: Array, /, window_shape: int | Sequence[int], axis: int | Sequence[int] | None = None
) -> Array:
    """Every window of *window_shape* along *axis* (an extension; NumPy's ``sliding_window_view``).

    The windowed axes shrink to ``n - w + 1`` and one axis of length ``w`` per window is
    appended, as in NumPy (an axis may repeat). On host-memory NumPy devices the result is a
    read-only view; elsewhere (JAX, CuPy, emulated accelerators without NumPy's strides) it is
    gathered with ``take`` on the device, so it costs ``w`` times the memory. It stays on
    *x*'s device with *x*'s tags; xarray's ``rolling`` uses it as
    ``xp.lib.stride_tricks.sliding_window_view``.

    >>> import hpcai as xp
    >>> w = xp.lib.stride_tricks.sliding_window_view(xp.arange(5), 3)
    >>> w.shape, xp.sum(w, axis=1)
    ((3, 3), Array([3, 6, 9], dtype=int64, device='numpy:cpu'))
    """
    fname = "sliding_window_view"
    x = as_array(fname, x)
    windows = _ints(fname, "window_shape", window_shape)
    if axis is None:
        axes = tuple(range(x.ndim))
        if len(windows) != x.ndim:
            raise InvalidArgumentError(
                f"xp.{fname}: window_shape {tuple(windows)} must have one entry per axis of the "
                f"{x.ndim}-d input when axis is None; pass axis= for fewer"
            )
    else:
        axes = tuple(_axis(fname, a, x.ndim) for a in _ints(fname, "axis", axis))
        if len(axes) != len(windows):
            raise InvalidArgumentError(
                f"xp.{fname}: window_shape {tuple(windows)} and axis {tuple(axes)} must have the same length"
            )
    shape = list(x.shape)
    for ax, w in zip(axes, windows):
        if w < 0:
            raise InvalidArgumentError(f"xp.{fname}: window_shape cannot hold negative values, got {tuple(windows)}")
        if shape[ax] is None or w > shape[ax]:
            raise InvalidArgumentError(
                f"xp.{fname}: a window of {w} does not fit axis {ax} of length {shape[ax]} (shape {x.shape})"
            )
        shape[ax] -= w - 1
    dev = x._device
    ns = dev._ns
    native = x._data
    try:
        if dev.is_host and isinstance(native, np.ndarray):
            r = np.lib.stride_tricks.sliding_window_view(native, tuple(windows), axis=axes)
        else:
            try:
                take, reshape, moveaxis = ns.take, ns.reshape, ns.moveaxis
            except Exception:
                raise InvalidArgumentError(
                    f"xp.{fname}: not supported on {dev} (its namespace has no take); "
                    'compute first with x.to_device("numpy:cpu")'
                ) from None
            r = native
            for ax, w in zip(axes, windows):
                m = r.shape[ax] - w + 1
                index = (np.arange(m)[:, None] + np.arange(w)[None, :]).reshape(-1)
                r = take(r, dev._backend.from_host(index, dev, copy=True), axis=ax)
                r = reshape(r, (*r.shape[:ax], m, w, *r.shape[ax + 1 :]))
                r = moveaxis(r, ax + 1, -1)
    except Exception as exc:
        raise _translate(f"xp.{fname}", exc) from None
    return _wrap(r, dev, x._tags)


def permute_dims(x: Array, /, axes: tuple[int, ...]) -> Array:
    """Permute the axes of *x*: *axes* is a permutation of ``(0, ..., x.ndim - 1)``.

    >>> import hpcai as xp
    >>> xp.permute_dims(xp.ones((2, 3, 4)), (2, 0, 1)).shape
    (4, 2, 3)
    """
    x = as_array("permute_dims", x)
    ax = _ints("permute_dims", "axes", axes, allow_int=False)
    norm = tuple(_axis("permute_dims", a, x.ndim) for a in ax)
    if len(norm) != x.ndim or sorted(norm) != list(range(x.ndim)):
        raise InvalidArgumentError(
            f"xp.permute_dims: axes {tuple(ax)} is not a permutation of the {x.ndim} axes of an array "
            f"of shape {x.shape}"
        )
    return _apply("permute_dims", x, norm)


def repeat(x: Array, repeats: int | Array, /, *, axis: int | None = None) -> Array:
    """Repeat each element *repeats* times (an int, or an integer array of per-element counts).

    With ``axis=None`` the array is flattened first. An array of counts is a
    data-dependent shape: the result's size is known only once the counts are read.

    >>> import hpcai as xp
    >>> xp.repeat(xp.asarray([1, 2]), 2)
    Array([1, 1, 2, 2], dtype=int64, device='numpy:cpu')
    """
    x = as_array("repeat", x)
    ax = None if axis is None else _axis("repeat", axis, x.ndim)
    n = x.size if ax is None else x.shape[ax]
    if repeats.__class__ is Array:
        natives, dev, tags = same_device("repeat", [x, repeats])  # type: ignore[list-item]
        r = natives[1]
        if r.dtype not in _integer_dtypes:
            raise DTypeError(f"xp.repeat: repeats must have an integer dtype, got {r.dtype}")
        if r.ndim > 1 or (r.ndim == 1 and r.shape[0] not in (1, n)):
            raise ShapeError(
                f"xp.repeat: repeats must be an int or a 1-D array of length 1 or {n}, got shape {tuple(r.shape)}"
            )
        if r.dtype in _unsigned_integer_dtypes:
            r = dev._ns.astype(r, np.dtype("int64"))
        try:
            out = dev._ns.repeat(natives[0], r, axis=ax)
        except Exception as exc:
            raise _translate("xp.repeat", exc) from None
        return _wrap(out, dev, tags)
    k = _int("repeat", "repeats", repeats)
    if k < 0:
        raise InvalidArgumentError(f"xp.repeat: repeats must be non-negative, got {k}")
    return _apply("repeat", x, k, axis=ax)


def reshape(x: Array, /, shape: tuple[int, ...], *, copy: bool | None = None) -> Array:
    """Give *x* a new shape (one entry may be ``-1``); ``copy=False`` refuses to copy, ``True`` always copies.

    >>> import hpcai as xp
    >>> xp.reshape(xp.arange(6), (2, -1)).shape
    (2, 3)
    """
    x = as_array("reshape", x)
    shp = _ints("reshape", "shape", shape)
    if sum(1 for s in shp if s == -1) > 1 or any(s < -1 for s in shp):
        raise ShapeError(f"xp.reshape: shape {shp} is invalid; at most one -1 and no other negative sizes")
    if copy not in (None, True, False):
        raise DTypeError(f"xp.reshape: copy must be True, False or None, got {copy!r:.60}")
    known = 1
    for s in shp:
        if s != -1:
            known *= s
    size = x.size
    if (-1 not in shp and known != size) or (-1 in shp and (known == 0 or size % known)):
        raise ShapeError(f"xp.reshape: cannot reshape an array of shape {x.shape} (size {size}) into {shp}")
    dev = x._device
    try:
        r = dev._ns.reshape(x._data, shp, copy=copy)
    except Exception as exc:
        if copy is False:
            raise InvalidArgumentError(
                f"xp.reshape: copy=False but reshaping {x.shape} to {shp} needs a copy (the data is not "
                "contiguous in the needed order); pass copy=None"
            ) from None
        raise _translate("xp.reshape", exc) from None
    return _wrap(r, dev, x._tags)


def roll(
    x: Array,
    /,
    shift: int | tuple[int, ...],
    *,
    axis: int | tuple[int, ...] | None = None,
) -> Array:
    """Shift elements along *axis* with wrap-around (``axis=None``: over the flattened array).

    >>> import hpcai as xp
    >>> xp.roll(xp.asarray([1, 2, 3]), 1)
    Array([3, 1, 2], dtype=int64, device='numpy:cpu')
    """
    x = as_array("roll", x)
    sh = _ints("roll", "shift", shift)
    if axis is None:
        if isinstance(shift, (tuple, list)) and len(sh) != 1:
            raise InvalidArgumentError(
                f"xp.roll: a tuple shift {shift!r} needs a tuple axis of the same length"
            )
        return _apply("roll", x, sh[0], axis=None)
    ax = tuple(_axis("roll", a, x.ndim) for a in _ints("roll", "axis", axis))
    if isinstance(shift, (tuple, list)):
        if not isinstance(axis, (tuple, list)) or len(ax) != len(sh):
            raise InvalidArgumentError(
                f"xp.roll: shift {shift!r} and axis {axis!r} must be tuples of the same length"
            )
        return _apply("roll", x, sh, axis=ax)
    return _apply("roll", x, sh[0], axis=ax if isinstance(axis, (tuple, list)) else ax[0])


def squeeze(x: Array, /, axis: int | tuple[int, ...]) -> Array:
    """Remove the size-one axes *axis*; naming an axis of another size is an error.

    >>> import hpcai as xp
    >>> xp.squeeze(xp.ones((1, 3, 1)), axis=(0, 2)).shape
    (3,)
    """
    x = as_array("squeeze", x)
    ax = _axes("squeeze", axis, x.ndim)
    for a in ax:
        if x.shape[a] != 1:
            raise ShapeError(
                f"xp.squeeze: axis {a} has size {x.shape[a]}, only size-one axes can be removed (shape {x.shape})"
            )
    return _apply("squeeze", x, axis=ax)


def stack(arrays: tuple[Array, ...] | list[Array], /, *, axis: int = 0) -> Array:
    """Join arrays of one shape along a new axis; dtypes promote.

    >>> import hpcai as xp
    >>> xp.stack((xp.ones(3), xp.zeros(3)), axis=1).shape
    (3, 2)
    """
    natives, dev, tags = same_device("stack", _arrays("stack", arrays))
    shapes = {tuple(a.shape) for a in natives}
    if len(shapes) > 1:
        raise ShapeError(f"xp.stack: all arrays must have the same shape, got {sorted(shapes)}")
    ax = _axis("stack", axis, natives[0].ndim, extra=1)
    return _wrap(_call_many("stack", natives, dev, axis=ax), dev, tags)


def tile(x: Array, repetitions: tuple[int, ...], /) -> Array:
    """Repeat the whole of *x* ``repetitions[i]`` times along each axis.

    >>> import hpcai as xp
    >>> xp.tile(xp.asarray([1, 2]), (2,))
    Array([1, 2, 1, 2], dtype=int64, device='numpy:cpu')
    """
    reps = _ints("tile", "repetitions", repetitions, allow_int=False)
    if any(r < 0 for r in reps):
        raise InvalidArgumentError(f"xp.tile: repetitions must be non-negative, got {reps}")
    return _apply("tile", x, reps)


def unstack(x: Array, /, *, axis: int = 0) -> tuple[Array, ...]:
    """Split *x* along *axis* into a tuple of arrays, one per index.

    >>> import hpcai as xp
    >>> [a.shape for a in xp.unstack(xp.ones((2, 3)), axis=1)]
    [(2,), (2,), (2,)]
    """
    x = as_array("unstack", x)
    if x.ndim == 0:
        raise ShapeError("xp.unstack: needs an array with at least one dimension, got a 0-d array")
    ax = _axis("unstack", axis, x.ndim)
    out = call("unstack", x, axis=ax)
    dev, tags = x._device, x._tags
    return tuple(_wrap(o, dev, tags) for o in out)

