"""Emulated accelerators: devices that do not exist on this machine, made real enough to test.

An emulated device has

* its own memory space: NumPy arrays that are never aliased with host memory (data is
  copied on the way in and out, ``__array__`` refuses, ``__dlpack__`` exports a recorded
  copy to the host, never a view: DLPack sees ``kDLCPU`` with copy-only export);
* capacity accounting: every array it holds is charged to the device and returned when
  the array is freed; going past capacity raises :class:`OutOfDeviceMemoryError`;
* a capability set: the dtypes it computes on natively (``gaudi3`` has no FP64);
* a cost model: host-link bandwidth and latency, memory bandwidth and peak FLOP/s per
  dtype, from which movements get *modelled* seconds.

Presets come from public spec sheets (dense, without sparsity):

========  ==========  ===========  =======================================================
preset    memory      mem. BW      peak (dense)
========  ==========  ===========  =======================================================
h100      80 GB       3.35 TB/s    FP64 34 TF (67 TF tensor), FP32 67 TF, BF16 989 TF,
                                   FP8/INT8 1979 T  (NVIDIA H100 SXM5 datasheet)
mi300x    192 GB      5.3 TB/s     FP64 81.7 TF (163.4 TF matrix), FP32 163.4 TF,
                                   BF16 1307 TF, FP8/INT8 2615 T  (AMD MI300X datasheet)
gaudi3    128 GB      3.7 TB/s     no FP64; FP32 229 TF, BF16/FP8 1835 TF (MME)
                                   (Intel Gaudi 3 white paper)
========  ==========  ===========  =======================================================

All three attach to the host through PCIe Gen5 x16 (64 GB/s per direction); a transfer is
modelled as ``10 µs + bytes / 64 GB/s``. Configuration may override any figure::

    [devices."emulated:2"]
    preset = "gaudi3"
    memory = "8 GiB"
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import array_api_compat.numpy as compat_np
import numpy as np

from hpcai._config import format_size, parse_size
from hpcai.errors import ConfigError, OutOfDeviceMemoryError, UnsupportedDtypeError

from ._base import (
    ALL_DTYPES,
    FP64_DTYPES,
    LOW_PRECISION_FLOATS,
    Backend,
    CostModel,
    DeviceSpec,
    location_attributes,
)

if TYPE_CHECKING:
    from hpcai._device import Device

__all__ = ["PRESETS", "EmulatedBackend", "Preset"]

_LOWP = LOW_PRECISION_FLOATS

_PCIE5_X16 = 64e9
_LINK_LATENCY = 10e-6


@dataclass(frozen=True)
class Preset:
    """Spec-sheet figures of an accelerator model."""

    name: str
    description: str
    memory: int
    memory_bandwidth: float
    flops: Mapping[str, float]
    native_dtypes: frozenset[str]
    link_bandwidth: float = _PCIE5_X16
    link_latency: float = _LINK_LATENCY


PRESETS: dict[str, Preset] = {
    "h100": Preset(
        name="h100",
        description="NVIDIA H100 SXM5 80 GB",
        memory=80 * 10**9,
        memory_bandwidth=3.35e12,
        flops={
            "float64": 67e12,  # FP64 tensor core; 34 TF vector
            "complex128": 34e12,
            "float32": 67e12,
            "complex64": 67e12,
            "float16": 989.5e12,
            "bfloat16": 989.5e12,
            "float8_e4m3fn": 1979e12,
            "float8_e5m2": 1979e12,
            "int8": 1979e12,
        },
        native_dtypes=ALL_DTYPES | _LOWP,
    ),
    "mi300x": Preset(
        name="mi300x",
        description="AMD Instinct MI300X 192 GB",
        memory=192 * 10**9,
        memory_bandwidth=5.3e12,
        flops={
            "float64": 163.4e12,  # FP64 matrix; 81.7 TF vector
            "complex128": 81.7e12,
            "float32": 163.4e12,
            "complex64": 163.4e12,
            "float16": 1307.4e12,
            "bfloat16": 1307.4e12,
            "float8_e4m3fn": 2614.9e12,
            "float8_e5m2": 2614.9e12,
            "int8": 2614.9e12,
        },
        native_dtypes=ALL_DTYPES | _LOWP,
    ),
    "gaudi3": Preset(
        name="gaudi3",
        description="Intel Gaudi 3 128 GB (no FP64)",
        memory=128 * 10**9,
        memory_bandwidth=3.7e12,
        flops={
            "float32": 229e12,
            "complex64": 229e12,
            "float16": 1835e12,
            "bfloat16": 1835e12,
            "float8_e4m3fn": 1835e12,
            "float8_e5m2": 1835e12,
            "int8": 1835e12,
        },
        native_dtypes=(ALL_DTYPES - FP64_DTYPES) | _LOWP,
    ),
}

#: The emulated devices that exist without any configuration.
DEFAULT_DEVICES: dict[str, str] = {"emulated:0": "h100", "emulated:1": "mi300x"}

_NAME_RE = re.compile(r"^emulated:(0|[1-9][0-9]*)$")


class _Pool:
    """Capacity accounting for one emulated device."""

    __slots__ = ("capacity", "live", "lock", "used")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self.live: dict[int, int] = {}
        self.lock = threading.Lock()

    def check(self, nbytes: int, device: str) -> None:
        if self.used + nbytes > self.capacity:
            raise OutOfDeviceMemoryError(
                f"{device}: allocating {format_size(nbytes)} exceeds capacity "
                f"({format_size(self.used)} of {format_size(self.capacity)} in use); free arrays with `del`, "
                "move some to another device, or raise `memory` for this device in the config"
            )

    def charge(self, arr: np.ndarray, device: str) -> None:
        key = id(arr)
        nbytes = int(arr.nbytes)
        with self.lock:
            if key in self.live:
                return
            self.check(nbytes, device)
            self.used += nbytes
            self.live[key] = nbytes
        weakref.finalize(arr, self._release, key)

    def _release(self, key: int) -> None:
        with self.lock:
            nbytes = self.live.pop(key, 0)
            self.used -= nbytes


def _root(arr: np.ndarray) -> np.ndarray:
    """The array that owns the memory *arr* views (itself when it owns its data)."""
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


class _AdoptAlways:
    """Sentinel native type: no real array is ever of this type, so every result is adopted."""


class EmulatedBackend(Backend):
    """Emulated accelerators backed by NumPy, with memory accounting and a cost model."""

    name: ClassVar[str] = "emulated"
    install_hint: ClassVar[str] = "pip install numpy"
    native_type: type = _AdoptAlways

    #: A separate memory space: NumPy-backed, but never shared with host memory or exported
    #: zero-copy (``__array__`` refuses, ``__dlpack__`` exports a recorded copy).
    host_memory: ClassVar[bool] = False
    zero_copy_export: ClassVar[bool] = False
    linalg_raises: ClassVar[bool] = True
    special_functions: ClassVar[tuple[str, str] | None] = ("scipy.special", "pip install scipy")
    cache_blocking: ClassVar[bool] = True
    #: Computed by NumPy on the host: wall times are the host's; the cost model is the device's.
    simulated: ClassVar[bool] = True

    def __init__(self) -> None:
        self._pools: dict[str, _Pool] = {}

    def available(self) -> bool:
        return True

    def device_specs(self, config: Mapping[str, Any]) -> list[DeviceSpec]:
        dev_cfg: Mapping[str, Any] = config.get("devices", {})
        names = dict(DEFAULT_DEVICES)
        for name in dev_cfg:
            if name.startswith("emulated"):
                if not _NAME_RE.match(name):
                    raise ConfigError(
                        f"[devices.\"{name}\"]: emulated device names have the form 'emulated:<n>', e.g. 'emulated:2'"
                    )
                names.setdefault(name, "h100")
        specs = []
        for name in sorted(names, key=lambda n: int(n.split(":")[1])):
            entry = dev_cfg.get(name, {})
            preset_name = entry.get("preset", names[name])
            if preset_name not in PRESETS:
                raise ConfigError(
                    f"[devices.\"{name}\"].preset: unknown preset {preset_name!r}; expected one of {', '.join(PRESETS)}"
                )
            p = PRESETS[preset_name]
            memory = parse_size(entry["memory"], key=f'devices."{name}".memory') if "memory" in entry else p.memory
            flops = dict(p.flops)
            flops.update(entry.get("flops", {}))
            native = frozenset(entry["native_dtypes"]) if "native_dtypes" in entry else p.native_dtypes
            cost = CostModel(
                link_bandwidth=float(entry.get("link_bandwidth", p.link_bandwidth)),
                link_latency=float(entry.get("link_latency", p.link_latency)),
                memory_bandwidth=float(entry.get("memory_bandwidth", p.memory_bandwidth)),
                flops=flops,
            )
            specs.append(
                DeviceSpec(
                    name=name,
                    backend="emulated",
                    kind="emulated",
                    index=int(name.split(":")[1]),
                    memory=memory,
                    native_dtypes=native,
                    preset=preset_name,
                    precision=entry.get("precision", "native"),
                    attributes=location_attributes(config, name),
                    cost=cost,
                )
            )
            self._pools[name] = _Pool(memory)
        return specs

    # -- memory accounting ------------------------------------------------------------------
    def pool(self, device: Device) -> _Pool:
        pool = self._pools.get(device.spec.name)
        if pool is None:
            pool = self._pools[device.spec.name] = _Pool(device.spec.memory or 2**62)
        return pool

    def memory_used(self, device: Device) -> int:
        """Bytes currently held by arrays on *device*."""
        return self.pool(device).used

    def _check_dtype(self, device: Device, dtype: Any) -> None:
        name = np.dtype(dtype).name
        if name not in device.spec.native_dtypes:
            spec = device.spec
            if name in FP64_DTYPES and spec.precision == "emulate":
                return  # FP64 emulation (hpcai.precision): guarded float64 storage
            hint = (
                f"use float32 (or complex64), or set precision = \"emulate\" for this device in the config "
                f"(it is {spec.precision!r})"
                if name in FP64_DTYPES
                else f"use one of: {', '.join(sorted(spec.native_dtypes))}"
            )
            raise UnsupportedDtypeError(
                f"{spec.name} (preset {spec.preset}) has no native {name} support; {hint}"
            )

    # -- protocol -----------------------------------------------------------------------------
    def namespace(self, device: Device) -> Any:
        return compat_np

    def adopt(self, device: Device, native: Any) -> Any:
        if native.__class__ is not np.ndarray:
            native = np.asarray(native)
        if native.dtype.name not in device.spec.native_dtypes:
            self._check_dtype(device, native.dtype)
            if native.dtype.name in FP64_DTYPES:  # precision = "emulate"
                from hpcai._ozaki import guard

                native = guard(native, device.spec.name)
        self.pool(device).charge(_root(native), device.spec.name)
        return native

    def create(self, device: Device, fname: str, *args: Any, **kwargs: Any) -> Any:
        dtype = kwargs.get("dtype")
        if dtype is not None:
            self._check_dtype(device, dtype)
        if fname in ("zeros", "ones", "empty", "full") and args:
            shape = args[0]
            shape = (shape,) if isinstance(shape, int) else tuple(shape)
            itemsize = np.dtype(dtype).itemsize if dtype is not None else 8
            n = itemsize
            for s in shape:
                n *= max(int(s), 0)
            self.pool(device).check(n, device.spec.name)
        return self.adopt(device, getattr(compat_np, fname)(*args, **kwargs))

    def from_host(self, host: np.ndarray, device: Device, *, copy: bool | None) -> Any:
        self._check_dtype(device, host.dtype)
        self.pool(device).check(int(host.nbytes), device.spec.name)
        # A separate memory space: always a private copy, never a view of host memory.
        return self.adopt(device, np.array(host, copy=True, order="K"))

    def to_host(self, native: Any, device: Device) -> np.ndarray:
        return np.array(native, copy=True, order="K")

    def transfer(self, native: Any, src: Device, dst: Device) -> Any:
        return self.from_host(native, dst, copy=True)

    def setitem(self, device: Device, native: Any, key: Any, value: Any) -> Any:
        native[key] = value
        return native

    def dlpack_device(self, device: Device) -> tuple[int, int]:
        # Emulated memory is host memory that hpcai never shares: consumers see kDLCPU
        # (the standard has no type for an emulated device; DLPack's kDLExtDev is not
        # among the standard's valid values) and exports are copies (see __dlpack__).
        return (1, 0)

    def is_native(self, obj: Any) -> bool:
        return False
