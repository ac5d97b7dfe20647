"""The Backend protocol and the value objects backends describe their devices with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from hpcai._device import Device

__all__ = [
    "ALL_DTYPES",
    "FP64_DTYPES",
    "LOW_PRECISION_FLOATS",
    "ML_DTYPES",
    "Backend",
    "CostModel",
    "DeviceSpec",
    "location_attributes",
]

#: Names of the standard dtypes (plus the extensions hpcai knows about).
ALL_DTYPES: frozenset[str] = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float32",
        "float64",
        "complex64",
        "complex128",
        # extensions (ml_dtypes): stored and cast natively by NumPy, emulated devices and JAX
        "bfloat16",
        "float8_e4m3fn",
        "float8_e5m2",
    }
)
FP64_DTYPES: frozenset[str] = frozenset({"float64", "complex128"})
#: The ml_dtypes extensions: a backend whose library has no such dtypes leaves them out.
ML_DTYPES: frozenset[str] = frozenset({"bfloat16", "float8_e4m3fn", "float8_e5m2"})
#: Real floating-point types below float32 that hpcai knows: float16 and the ml_dtypes ones.
LOW_PRECISION_FLOATS: frozenset[str] = ML_DTYPES | {"float16"}


@dataclass(frozen=True)
class CostModel:
    """A first-order performance model of a device.

    ``link_bandwidth`` and ``link_latency`` describe the host link (bytes/s, seconds),
    ``memory_bandwidth`` the device memory (bytes/s) and ``flops`` the peak rate per dtype
    name (FLOP/s). All methods return *modelled* seconds.
    """

    link_bandwidth: float = float("inf")
    link_latency: float = 0.0
    memory_bandwidth: float = float("inf")
    flops: Mapping[str, float] = field(default_factory=dict)

    def transfer_seconds(self, nbytes: int) -> float:
        """Modelled time to move *nbytes* over the host link."""
        if self.link_bandwidth == float("inf"):
            return 0.0
        return self.link_latency + nbytes / self.link_bandwidth

    def memory_seconds(self, nbytes: int) -> float:
        """Modelled time to stream *nbytes* through device memory."""
        if self.memory_bandwidth == float("inf"):
            return 0.0
        return nbytes / self.memory_bandwidth

    def matmul_seconds(self, m: int, n: int, k: int, dtype: str) -> float:
        """Modelled time of an ``(m, k) @ (k, n)`` product at peak rate for *dtype*."""
        rate = self.flops.get(dtype)
        if not rate:
            return float("inf")
        return 2.0 * m * n * k / rate


@dataclass(frozen=True)
class DeviceSpec:
    """What a backend says about one of its devices."""

    name: str
    backend: str
    kind: str  # "cpu", "gpu", "tpu", "emulated"
    index: int = 0
    memory: int | None = None  # bytes; None = unknown/unbounded
    native_dtypes: frozenset[str] = ALL_DTYPES
    preset: str | None = None
    precision: str = "native"  # "native" | "emulate" | "error"
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    cost: CostModel = field(default_factory=CostModel)
    handle: Any = None  # backend-private (e.g. the jax.Device)

    @property
    def has_fp64(self) -> bool:
        return "float64" in self.native_dtypes


@runtime_checkable
class Backend(Protocol):
    """What every backend provides. One module per backend implements it.

    A backend owns native arrays of one library (``numpy.ndarray``, ``jax.Array``,
    ``cupy.ndarray``, ...). The core never calls the library directly: it asks the
    backend for the array-api-compat namespace of a device and for the few operations
    that depend on where memory lives (creation, adoption of results, transfers).

    Optional members, looked up with ``getattr`` so that backends without them still
    satisfy the protocol:

    * ``device_of(native) -> Device``: the device a foreign native array lives on (used by
      ``xp.asarray``/``xp.from_dlpack`` for JAX and CuPy arrays);
    * ``unavailable_reason() -> str | None``: why ``available()`` is false, shown by
      ``hpcai devices``;
    * ``supports_stream: ClassVar[bool]``: ``transfer``, ``to_host`` and ``from_host``
      accept ``stream=`` (the standard's ``to_device(..., stream=)``).
    """

    name: ClassVar[str]
    #: What to ``pip install`` when the library is missing.
    install_hint: ClassVar[str]

    def available(self) -> bool:
        """Whether the backend's library imports and has at least one device."""
        ...

    def device_specs(self, config: Mapping[str, Any]) -> list[DeviceSpec]:
        """The devices of this backend, given the whole validated configuration mapping."""
        ...

    def namespace(self, device: Device) -> Any:
        """The array-api-compat namespace that computes on *device*."""
        ...

    @property
    def native_type(self) -> type:
        """The native array type results are expected to have (fast-path check)."""
        ...

    def adopt(self, device: Device, native: Any) -> Any:
        """Accept a freshly computed native object as an array of *device*.

        Called on every result whose type is not :attr:`native_type` (scalars from
        0-d operations) and, for backends that account memory, on every result.
        """
        ...

    def create(self, device: Device, fname: str, *args: Any, **kwargs: Any) -> Any:
        """Call creation function *fname* of the namespace with allocation on *device*."""
        ...

    def from_host(self, host: np.ndarray, device: Device, *, copy: bool | None) -> Any:
        """Bring a host NumPy array onto *device*."""
        ...

    def to_host(self, native: Any, device: Device) -> np.ndarray:
        """Copy (or view, where memory is shared) a native array into host memory."""
        ...

    def transfer(self, native: Any, src: Device, dst: Device) -> Any:
        """Move between two devices of this backend, or return ``NotImplemented``."""
        ...

    def setitem(self, device: Device, native: Any, key: Any, value: Any) -> Any:
        """``native[key] = value``; return the (possibly new, for immutable libraries) array."""
        ...

    def dlpack_device(self, device: Device) -> tuple[int, int]:
        """The DLPack ``(device_type, device_id)`` of *device*."""
        ...

    def is_native(self, obj: Any) -> bool:
        """Whether *obj* is a native array of this backend's library."""
        ...


def location_attributes(config: Mapping[str, Any], device_name: str) -> Mapping[str, str]:
    """``[site]`` attributes overridden by ``[devices."<name>"].attributes`` (read-only)."""
    attrs: dict[str, str] = dict(config.get("site", {}))
    attrs.update(config.get("devices", {}).get(device_name, {}).get("attributes", {}))
    return MappingProxyType(attrs)
