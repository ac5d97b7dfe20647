"""The host backend: NumPy arrays in ordinary host memory, device ``numpy:cpu``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import array_api_compat.numpy as compat_np
import numpy as np

from ._base import Backend, DeviceSpec, location_attributes

if TYPE_CHECKING:
    from hpcai._device import Device

__all__ = ["NumpyBackend"]

_ndarray = np.ndarray
_asarray = np.asarray


class NumpyBackend(Backend):
    """NumPy on the host CPU. Arrays are exported zero-copy through ``__array__``/DLPack."""

    name: ClassVar[str] = "numpy"
    install_hint: ClassVar[str] = "pip install numpy"
    native_type: type = np.ndarray

    host_memory: ClassVar[bool] = True
    zero_copy_export: ClassVar[bool] = True
    linalg_raises: ClassVar[bool] = True
    special_functions: ClassVar[tuple[str, str] | None] = ("scipy.special", "pip install scipy")
    cache_blocking: ClassVar[bool] = True

    def available(self) -> bool:
        return True

    def device_specs(self, config: Mapping[str, Any]) -> list[DeviceSpec]:
        return [
            DeviceSpec(
                name="numpy:cpu",
                backend="numpy",
                kind="cpu",
                attributes=location_attributes(config, "numpy:cpu"),
            )
        ]

    def namespace(self, device: Device) -> Any:
        return compat_np

    def adopt(self, device: Device, native: Any) -> Any:
        # Operations on 0-d arrays return NumPy scalars; the standard wants 0-d arrays.
        if native.__class__ is _ndarray:
            return native
        return _asarray(native)

    def create(self, device: Device, fname: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(compat_np, fname)(*args, **kwargs)

    def from_host(self, host: np.ndarray, device: Device, *, copy: bool | None) -> Any:
        if copy:
            return np.array(host, copy=True)
        return host

    def to_host(self, native: Any, device: Device) -> np.ndarray:
        return native  # type: ignore[no-any-return]

    def transfer(self, native: Any, src: Device, dst: Device) -> Any:
        return NotImplemented

    def setitem(self, device: Device, native: Any, key: Any, value: Any) -> Any:
        native[key] = value
        return native

    def dlpack_device(self, device: Device) -> tuple[int, int]:
        return (1, 0)  # kDLCPU

    def is_native(self, obj: Any) -> bool:
        return isinstance(obj, (np.ndarray, np.generic))
