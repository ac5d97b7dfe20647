"""The inspection namespace of the Array API standard: ``xp.__array_namespace_info__()``.

Answers are per device: an FP64-less accelerator lists no ``float64`` among its dtypes
and defaults to ``float32``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _dtypes
from ._device import Device, DeviceLike, all_devices, resolve_device
from ._device import default_device as _default_device
from ._dtypes import DType
from ._helpers import device_default_dtype
from .errors import DTypeError, InvalidArgumentError

__all__ = ["__array_namespace_info__"]

#: The standard dtypes, in the standard's order.
_STANDARD: tuple[np.dtype[Any], ...] = tuple(
    getattr(_dtypes, f"_np_{name}")
    for name in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                 "float32", "float64", "complex64", "complex128")
)
_KIND_OF: dict[str, frozenset[str]] = {
    "bool": frozenset("b"),
    "signed integer": frozenset("i"),
    "unsigned integer": frozenset("u"),
    "integral": frozenset("iu"),
    "real floating": frozenset("f"),
    "complex floating": frozenset("c"),
    "numeric": frozenset("iufc"),
}


class Info:
    """Inspection utilities: devices, default device, dtypes and default dtypes per device.

    >>> import hpcai as xp
    >>> info = xp.__array_namespace_info__()
    >>> info.default_dtypes(device="numpy:cpu")["real floating"]
    dtype('float64')
    """

    __slots__ = ()

    def capabilities(self) -> dict[str, Any]:
        """Boolean indexing and data-dependent shapes are supported; at most 64 dimensions (NumPy's limit)."""
        return {"boolean indexing": True, "data-dependent shapes": True, "max dimensions": 64}

    def default_device(self) -> Device:
        """The default device (``$HPCAI_DEVICE``, else ``default_device`` in config, else ``numpy:cpu``)."""
        return _default_device()

    def devices(self) -> list[Device]:
        """Every available hpcai device; each is accepted as ``device=`` by the creation functions."""
        return all_devices()

    def default_dtypes(self, *, device: DeviceLike | None = None) -> dict[str, DType]:
        """Default dtypes of *device* (float32/complex64 on a device without FP64)."""
        dev = resolve_device(device)
        return {
            "real floating": device_default_dtype(dev, "real floating"),
            "complex floating": device_default_dtype(dev, "complex floating"),
            "integral": device_default_dtype(dev, "integral"),
            "indexing": device_default_dtype(dev, "indexing"),
        }

    def dtypes(
        self,
        *,
        device: DeviceLike | None = None,
        kind: str | tuple[str, ...] | None = None,
    ) -> dict[str, DType]:
        """The standard dtypes *device* supports, optionally only those of *kind* (a name or a tuple)."""
        from ._data_type_functions import device_supports

        dev = resolve_device(device)
        if kind is None:
            kinds = frozenset("biufc")
        elif isinstance(kind, str):
            kinds = _kind_letters(kind)
        elif isinstance(kind, tuple):
            kinds = frozenset().union(*(_kind_letters(k) for k in kind))
        else:
            raise DTypeError(f"dtypes: kind must be a kind name or a tuple of them, got {kind!r:.60}")
        return {d.name: d for d in _STANDARD if d.kind in kinds and device_supports(dev, d)}

    def __repr__(self) -> str:
        return "<hpcai array namespace info>"


def _kind_letters(kind: Any) -> frozenset[str]:
    if not isinstance(kind, str):
        raise DTypeError(f"dtypes: each kind must be a string, got {kind!r:.60}")
    letters = _KIND_OF.get(kind)
    if letters is None:
        raise InvalidArgumentError(f"dtypes: unknown kind {kind!r}; expected one of: {', '.join(map(repr, _KIND_OF))}")
    return letters


_INFO = Info()


def __array_namespace_info__() -> Info:
    """The namespace's inspection object (devices, default device, dtypes, capabilities).

    >>> import hpcai as xp
    >>> "float64" in xp.__array_namespace_info__().dtypes(device="numpy:cpu")
    True
    """
    return _INFO
