"""Set functions of the Array API standard (chapter "Set Functions").

Uniqueness is value equality, as the standard specifies: every NaN (and every complex
value with a NaN component) is its own unique value with a count of one, while ``-0.0``
and ``+0.0`` are one value. Results are named tuples of hpcai Arrays carrying the input's
tags; the order of the unique values is ascending (NaNs last).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._array import Array, _translate, _wrap
from ._device import Device
from ._helpers import as_array, device_default_dtype
from ._tags import TagSet

__all__ = ["unique_all", "unique_counts", "unique_inverse", "unique_values"]


class UniqueAllResult(NamedTuple):
    """Result of :func:`unique_all`."""

    values: Array
    indices: Array
    inverse_indices: Array
    counts: Array


class UniqueCountsResult(NamedTuple):
    """Result of :func:`unique_counts`."""

    values: Array
    counts: Array


class UniqueInverseResult(NamedTuple):
    """Result of :func:`unique_inverse`."""

    values: Array
    inverse_indices: Array


def _native(fname: str, x: Any) -> tuple[Any, Array]:
    """Call the backend's *fname* on *x*; return its raw result and the checked input."""
    if x.__class__ is not Array:
        x = as_array(fname, x)
    try:
        return getattr(x._device._ns, fname)(x._data), x
    except Exception as exc:
        raise _translate(f"xp.{fname}", exc) from None


def _index(r: Any, device: Device, tags: TagSet | None) -> Array:
    idx = device_default_dtype(device, "indexing")
    if r.dtype != idx:
        r = device._ns.astype(r, idx)
    return _wrap(r, device, tags)


def unique_all(x: Array, /) -> UniqueAllResult:
    """Unique values of flattened *x*, their first indices, the inverse indices and counts.

    >>> import hpcai as xp
    >>> r = xp.unique_all(xp.asarray([3, 1, 3, 2]))
    >>> r.values, r.counts
    (Array([1, 2, 3], dtype=int64, device='numpy:cpu'), Array([1, 1, 2], dtype=int64, device='numpy:cpu'))
    """
    r, x = _native("unique_all", x)
    dev, t = x._device, x._tags
    return UniqueAllResult(
        _wrap(r.values, dev, t),
        _index(r.indices, dev, t),
        _index(dev._ns.reshape(r.inverse_indices, tuple(x._data.shape)), dev, t),
        _index(r.counts, dev, t),
    )


def unique_counts(x: Array, /) -> UniqueCountsResult:
    """Unique values of flattened *x* and how often each occurs.

    >>> import hpcai as xp
    >>> xp.unique_counts(xp.asarray([1.0, 1.0, 2.0])).counts
    Array([2, 1], dtype=int64, device='numpy:cpu')
    """
    r, x = _native("unique_counts", x)
    dev, t = x._device, x._tags
    return UniqueCountsResult(_wrap(r.values, dev, t), _index(r.counts, dev, t))


def unique_inverse(x: Array, /) -> UniqueInverseResult:
    """Unique values of flattened *x* and, shaped like *x*, the indices that rebuild it.

    >>> import hpcai as xp
    >>> xp.unique_inverse(xp.asarray([5, 7, 7, 5])).inverse_indices
    Array([0, 1, 1, 0], dtype=int64, device='numpy:cpu')
    """
    r, x = _native("unique_inverse", x)
    dev, t = x._device, x._tags
    inv = dev._ns.reshape(r.inverse_indices, tuple(x._data.shape))
    return UniqueInverseResult(_wrap(r.values, dev, t), _index(inv, dev, t))


def unique_values(x: Array, /) -> Array:
    """The unique values of flattened *x*, as a 1-d array of x's dtype.

    >>> import hpcai as xp
    >>> xp.unique_values(xp.asarray([2, 1, 2]))
    Array([1, 2], dtype=int64, device='numpy:cpu')
    """
    r, x = _native("unique_values", x)
    return _wrap(r, x._device, x._tags)
