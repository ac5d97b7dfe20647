"""zarr writes of hpcai Arrays (``ds.to_zarr("hpcai://...")``): the values go with their tags.

xarray's ``to_zarr`` hands each variable's data to ``zarr.Array.__setitem__``, and zarr wraps
it with ``NDBuffer.from_ndarray_like`` before encoding chunks; zarr's writers need a NumPy
array there. :class:`NDBuffer` (installed as zarr's ``ndbuffer`` class when the ``hpcai://``
protocol is first used, unless another one is configured) converts an hpcai Array at that
point, and only for a write to an ``hpcai://`` store:

1. the store of the write is looked up in zarr's ``_set_selection`` frame (the one caller of
   ``from_ndarray_like`` for values given by the user); if it is not an ``hpcai://`` store,
   a tagged Array is refused (its tags would be lost), before any chunk is written;
2. the Array's tags are added to that store's filesystem (``HpcaiFileSystem.tags``), so every
   chunk written after it carries them and is decided (``store``) and stored with them,
   exactly like ``hpcai.storage.filesystem(..., tags=...)`` writes;
3. the values reach host memory by a move (``to_device("numpy:cpu")``: measured, checked,
   audited) when the Array lives elsewhere.

If zarr stops calling from ``_set_selection`` the store is not found, so tagged values are
refused (fail closed; ``tests/core/test_xarray.py`` would show it).
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

import numpy as np

from hpcai._array import Array
from hpcai._tags import to_text, union
from hpcai.errors import ResidencyError

try:
    from zarr.core.buffer import cpu as _cpu
except ImportError:  # pragma: no cover - zarr is a dependency of hpcai.storage
    _cpu = None  # type: ignore[assignment]

__all__ = ["NDBuffer", "install"]

#: zarr's own default ``ndbuffer`` settings (ours replaces only these).
_DEFAULTS = ("zarr.buffer.cpu.NDBuffer", "zarr.core.buffer.cpu.NDBuffer")


def _target_store() -> Any:
    """The zarr store of the ``_set_selection`` call this conversion belongs to (else None)."""
    f: FrameType | None = sys._getframe(2)
    for _ in range(12):
        if f is None:
            return None
        if f.f_code.co_name == "_set_selection" and "store_path" in f.f_locals:
            return getattr(f.f_locals["store_path"], "store", None)
        f = f.f_back
    return None


def _hpcai_fs(store: Any) -> Any:
    from ._filesystem import HpcaiFileSystem

    fs = getattr(store, "fs", None)
    return fs if isinstance(fs, HpcaiFileSystem) else None


def host_values_for_zarr(x: Array) -> np.ndarray:
    """*x*'s values for a zarr write, its tags added to the target ``hpcai://`` store."""
    fs = _hpcai_fs(_target_store())
    if fs is None:
        if x._tags:
            tags = to_text(x._tags)
            raise ResidencyError(
                f"zarr: refusing to write an hpcai Array tagged {{{tags}}} to a store outside hpcai://; "
                "its tags would be lost. Write it through hpcai://<endpoint>/<path> (ds.to_zarr accepts "
                "that URL) or with hpcai.storage.save_dataset / save"
            )
    elif x._tags:
        fs.tags = union(fs.tags, x._tags)  # every chunk written from now on carries them
    host = x if x._device.is_host else x.to_device("numpy:cpu")
    return np.asarray(host._data)


if _cpu is not None:

    class NDBuffer(_cpu.NDBuffer):
        """zarr's CPU ``NDBuffer`` that also takes hpcai Arrays (see the module's docstring)."""

        @classmethod
        def from_ndarray_like(cls, ndarray_like: Any) -> Any:
            if ndarray_like.__class__ is Array:
                ndarray_like = host_values_for_zarr(ndarray_like)
            return super().from_ndarray_like(ndarray_like)


def install() -> None:
    """Make :class:`NDBuffer` zarr's ``ndbuffer`` class, unless another one is configured."""
    if _cpu is None:
        return
    import zarr
    from zarr.registry import register_ndbuffer

    if zarr.config.get("ndbuffer") not in _DEFAULTS:
        return
    register_ndbuffer(NDBuffer)
    zarr.config.set({"ndbuffer": f"{NDBuffer.__module__}.{NDBuffer.__qualname__}"})
