"""Tags that follow memory: writes of tagged values into memory that other arrays share.

Residency tags live on Arrays, and most Arrays own their memory. Some share it: NumPy-backed
views (``x[1:]``, ``x.mT``, reshapes), ``xp.tag(x, ...)`` (same data, more tags) and a
zero-copy ``xp.asarray`` of a caller's NumPy array. A write of tagged values into one of
them (``v[...] = x``, ``v += x``) puts covered values into memory the others read too, so
the write must tag them as well, and a write into memory that belongs to the caller hands
the values to a raw NumPy object: an export.

:func:`written` is called before every in-place write of tagged values. It

* refuses (as an export decision, audited when covered) a write into a caller's buffer
  where the policy refuses the export of those tags;
* adds the tags to every live Array that shares the written memory. Arrays that may share
  it are found once per memory block and new tag set (a scan of the live Arrays); a block
  that nothing else references is recognised from its reference count and costs nothing.

JAX arrays are immutable (a write makes a new array) and CuPy arrays keep ``.base`` like
NumPy's, so the same rule covers them; only NumPy-style ``base`` chains are followed.
"""

from __future__ import annotations

import gc
import sys
import weakref
from typing import TYPE_CHECKING, Any

from . import _tags

if TYPE_CHECKING:
    from ._array import Array
    from ._tags import TagSet

__all__ = ["mark_foreign", "root", "written"]

#: Memory blocks that belong to a caller (zero-copy xp.asarray): id -> weak reference.
_foreign: dict[int, weakref.ref[Any]] = {}
#: Tags already spread to the Arrays sharing a block: id -> (weak reference, tags).
_spread: dict[int, tuple[weakref.ref[Any], TagSet]] = {}


def root(data: Any) -> Any:
    """The array that owns *data*'s memory (following ``.base``), or None for arrays without views."""
    base = getattr(data, "base", None)
    if base is None:
        return data if hasattr(data, "base") else None
    r = data
    while base is not None and hasattr(base, "base") and base.__class__ is not memoryview:
        r = base
        base = r.base
    return r


def _forget(table: dict[int, Any], key: int) -> Any:
    return lambda _ref: table.pop(key, None)


def mark_foreign(data: Any) -> None:
    """Record that *data*'s memory belongs to a caller (it was wrapped without a copy)."""
    r = root(data)
    if r is None:
        return
    key = id(r)
    try:
        _foreign[key] = weakref.ref(r, _forget(_foreign, key))
    except TypeError:  # not weak-referenceable: nothing to follow
        pass


def is_foreign(data: Any) -> bool:
    """Whether *data* shares memory with an array a caller handed in without a copy."""
    if not _foreign:
        return False
    r = root(data)
    ref = _foreign.get(id(r)) if r is not None else None
    return ref is not None and ref() is r


def written(target: Array, tags: TagSet | None, op: str) -> None:
    """Before writing values tagged *tags* into *target*'s memory in place: decide and spread."""
    if tags is None:
        return
    data = target._data
    r = root(data)
    if r is None:
        return
    if _foreign and is_foreign(data):
        from . import _transfer
        from ._array import _wrap

        _transfer.check_export(_wrap(data, target._device, tags), f"{op} (into a caller's NumPy buffer)")
    key = id(r)
    seen = _spread.get(key)
    if seen is not None and seen[0]() is r and tags <= seen[1]:
        return
    # References to the block when only *target* holds it: target._data (or a view's
    # .base), the locals `data` and `r` here, and getrefcount's argument.
    alone = 4 if data is r else 3
    if sys.getrefcount(r) <= alone:
        return
    _share(r, tags)
    spread = tags if seen is None or seen[0]() is not r else seen[1] | tags
    try:
        _spread[key] = (weakref.ref(r, _forget(_spread, key)), spread)
    except TypeError:
        pass


def _share(r: Any, tags: TagSet) -> None:
    """Add *tags* to every live Array whose memory is the block *r*."""
    from ._array import Array

    for obj in gc.get_objects():
        if obj.__class__ is Array:
            d = obj._data
            if d is r or (getattr(d, "base", None) is not None and root(d) is r):
                obj._tags = _tags.union(obj._tags, tags)
