"""The backend contract (:class:`Backend`, an abstract base class with capability properties),
the value objects backends describe their devices with, and :func:`wrap` / :func:`unwrap`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from hpcai._array import Array
    from hpcai._device import Device
    from hpcai._tags import TagSet

__all__ = [
    "ALL_DTYPES",
    "FP64_DTYPES",
    "LOW_PRECISION_FLOATS",
    "ML_DTYPES",
    "Backend",
    "CostModel",
    "DeviceSpec",
    "as_backend_class",
    "check_export",
    "location_attributes",
    "unwrap",
    "wrap",
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


class _AdoptAll:
    """Default :attr:`Backend.native_type`: no array is of this type, so every result is adopted."""


class Backend(ABC):
    """The backend contract: what a backend provides and what it can do. Subclass it.

    A backend owns native arrays of one library (``numpy.ndarray``, ``jax.Array``,
    ``cupy.ndarray``, ...). The core never calls the library directly and never branches
    on a backend's name: it asks the backend for the array-api-compat namespace of a
    device, for the few operations that depend on where memory lives (creation, adoption
    of results, transfers), and reads the **capabilities** below to decide what it does.

    Abstract (every backend implements them): :meth:`device_specs`, :meth:`namespace`,
    :meth:`from_host`, :meth:`to_host`, :meth:`dlpack_device`, plus the class attributes
    ``name`` and ``install_hint``. Everything else has a default that is right for an
    eager library whose arrays live in their own memory.

    Native arrays become :class:`hpcai.Array` through :func:`hpcai.backends.wrap` (and
    are read back with :func:`hpcai.backends.unwrap`), never by building an Array by hand.
    See ``docs/backends.md`` for a walk-through.

    >>> from hpcai.backends import Backend, get_backend
    >>> isinstance(get_backend("numpy"), Backend), get_backend("numpy").host_memory
    (True, True)
    """

    #: The backend's name: the first part of its device names (``"<name>:..."``).
    name: ClassVar[str]
    #: What to ``pip install`` when the library is missing.
    install_hint: ClassVar[str]

    #: The native array type results are expected to have: a result of exactly this class
    #: is wrapped as is, anything else goes through :meth:`adopt` (the default adopts all).
    #: A backend may replace it per instance once it knows its devices.
    native_type: type = _AdoptAll

    # -- capabilities -----------------------------------------------------------------------
    #: Arrays are ``numpy.ndarray`` in ordinary host memory that NumPy may share: ``__array__``
    #: works, moves to and from other host-memory devices are zero-copy, host data is wrapped
    #: without a copy. Only the host backend (``numpy``) says yes; an accelerator, or
    #: NumPy-backed memory that must never be shared (``emulated``), says no.
    host_memory: ClassVar[bool] = False
    #: ``__dlpack__`` may hand out the native array's own buffer (the library's
    #: ``__dlpack__``). False: exports to the host are copies made by the movement path
    #: (policy-checked and recorded) and flagged as copies; nothing else is exported.
    zero_copy_export: ClassVar[bool] = True
    #: :meth:`transfer`, :meth:`to_host` and :meth:`from_host` accept ``stream=`` (the
    #: standard's ``to_device(..., stream=)``); without it a stream is refused.
    supports_stream: ClassVar[bool] = False
    #: :meth:`jit` compiles functions of this backend's arrays (``xp.jit``); without it
    #: ``xp.jit`` runs the function unchanged.
    supports_jit: ClassVar[bool] = False
    #: The namespace's ``linalg`` raises on singular / non-positive-definite input by
    #: itself (as NumPy does). False: the core checks results for inf/NaN from finite input.
    linalg_raises: ClassVar[bool] = False
    #: ``(module, install hint)`` of a module with SciPy's special functions (same names
    #: and arguments) computing on this backend's native arrays, for ``xp.special``. None:
    #: ``numpy.ndarray`` data uses ``scipy.special``, other data has no special functions.
    special_functions: ClassVar[tuple[str, str] | None] = None
    #: Python-level loops over cache-sized blocks pay off (eager libraries computing in
    #: memory: NumPy, CuPy). False for libraries that compile or fuse whole-array
    #: expressions (JAX) or build lazy graphs (Dask), where one whole-array pass is better.
    cache_blocking: ClassVar[bool] = True
    #: The devices are simulations computed on the host (emulated accelerators): wall-clock
    #: times are the host's, not the device's, so timings and energy come from the cost
    #: model (:attr:`DeviceSpec.cost`, the preset) and never from measurement.
    simulated: ClassVar[bool] = False
    #: The backend places data by residency policy itself and needs the data's tags to move
    #: it (``dask`` scatters the chunks of tagged data only to workers whose own site allows
    #: them, and computes them back only there): moves to and from its devices go through
    #: :meth:`move_tagged` instead of :meth:`transfer` / :meth:`to_host` / :meth:`from_host`.
    places_by_tags: ClassVar[bool] = False

    # -- discovery ----------------------------------------------------------------------------
    def available(self) -> bool:
        """Whether the backend's library imports and has at least one device."""
        return True

    def unavailable_reason(self) -> str | None:
        """Why :meth:`available` is false (shown by ``hpcai devices``), or ``None``."""
        return None

    @abstractmethod
    def device_specs(self, config: Mapping[str, Any]) -> list[DeviceSpec]:
        """The devices of this backend, given the whole validated configuration mapping."""

    # -- computing ------------------------------------------------------------------------------
    @abstractmethod
    def namespace(self, device: Device) -> Any:
        """The array-api-compat namespace that computes on *device*."""

    def adopt(self, device: Device, native: Any) -> Any:
        """Accept a freshly computed native object as an array of *device*.

        Called on every result whose class is not :attr:`native_type` (scalars from 0-d
        operations, results of backends that check every result). The default keeps
        arrays of :attr:`native_type` and brings anything else through host memory.
        """
        if isinstance(native, self.native_type):
            return native
        return self.from_host(np.asarray(native), device, copy=None)

    def create(self, device: Device, fname: str, *args: Any, **kwargs: Any) -> Any:
        """Call creation function *fname* of the namespace with allocation on *device*."""
        return self.adopt(device, getattr(self.namespace(device), fname)(*args, **kwargs))

    def setitem(self, device: Device, native: Any, key: Any, value: Any) -> Any:
        """``native[key] = value``; return the (possibly new, for immutable libraries) array."""
        native[key] = value
        return native

    def is_native(self, obj: Any) -> bool:
        """Whether *obj* is a native array of this backend's library."""
        return isinstance(obj, self.native_type)

    def device_of(self, native: Any) -> Device | None:
        """The device a foreign native array of this library lives on (``xp.asarray`` of
        a JAX or CuPy array keeps it where it is); ``None``: not adopted that way."""
        return None

    def memory_used(self, device: Device) -> int | None:
        """Bytes currently held by arrays on *device*, or ``None`` when the backend does not
        account its memory (the default). Emulated devices account every array."""
        return None

    def chunks(self, native: Any) -> tuple[tuple[int, ...], ...] | None:
        """The chunk sizes along each axis of a chunked (distributed) array, dask's form
        (``((2, 2), (3,))``), or ``None`` for an array held whole (the default). xarray treats
        an array with chunks as chunked and asks its chunk manager to compute it."""
        c = getattr(native, "chunks", None)
        if isinstance(c, tuple) and all(isinstance(a, tuple) for a in c):
            return c
        return None

    def synchronize(self, device: Device, native: Any) -> None:
        """Wait until the computation that produces *native* is complete, so that wall-clock
        timings measure it (asynchronous libraries: JAX, CuPy). Default: nothing to wait for."""
        return None

    def full_precision_matmul(self, ns: Any, x1: Any, x2: Any) -> Any:
        """``x1 @ x2`` for float32 operands at full float32 precision (no TF32 or bfloat16
        passes), as the exact products of FP64 emulation (``hpcai.precision``) need."""
        return ns.matmul(x1, x2)

    def jit(self, f: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any], Device], Any]:
        """Compile *f* (only when :attr:`supports_jit`).

        Returns ``call(args, kwargs, device)``: runs the compiled *f* on the call's
        arguments, whose Arrays all live on this backend (``device`` is the first one's),
        and returns what *f* returns, with Arrays on their devices and with their tags.
        """
        raise NotImplementedError(f"backend {self.name!r} has no jit (supports_jit is False)")

    # -- movement -------------------------------------------------------------------------------
    @abstractmethod
    def from_host(self, host: np.ndarray, device: Device, *, copy: bool | None) -> Any:
        """Bring a host NumPy array onto *device* (``copy=True``: never alias *host*)."""

    @abstractmethod
    def to_host(self, native: Any, device: Device) -> np.ndarray:
        """Copy (or view, where memory is shared) a native array into host memory."""

    def transfer(self, native: Any, src: Device, dst: Device) -> Any:
        """Move between two devices of this backend, or return ``NotImplemented`` (the
        default) to go through host memory."""
        return NotImplemented

    def move_tagged(
        self, native: Any, src: Device, dst: Device, tags: TagSet | None, *, prepared: Any = None
    ) -> Any:
        """Move *native* from *src* to *dst* (one of them a device of this backend) knowing the
        data's *tags*, and return the native array on *dst* (only when :attr:`places_by_tags`).

        The core has decided the move under the policy already (nothing moved yet); the
        backend may refuse further (:class:`~hpcai.errors.ResidencyError`) before any byte moves.
        *prepared* is what :meth:`prepare_move` returned for this move.
        """
        raise NotImplementedError(f"backend {self.name!r} does not place data by tags (places_by_tags is False)")

    def prepare_move(self, native: Any, src: Device, dst: Device, tags: TagSet | None) -> Any:
        """Start work that a move of *native* off this backend's device *src* needs *before* the
        move is decided, so that it overlaps with the decision and its audit record; ``None``
        (the default) when there is none. Nothing may reach *dst* here: a cluster may start
        computing a lazy result where the data lives, but hands it over only in
        :meth:`move_tagged`. :meth:`cancel_prepared` is called if the move is refused."""
        return None

    def cancel_prepared(self, prepared: Any) -> None:
        """Abandon what :meth:`prepare_move` started (the move was refused)."""
        return None

    @abstractmethod
    def dlpack_device(self, device: Device) -> tuple[int, int]:
        """The DLPack ``(device_type, device_id)`` of *device*."""

    def __repr__(self) -> str:
        return f"<hpcai backend {getattr(self, 'name', '?')!r} ({type(self).__module__}.{type(self).__qualname__})>"


#: Members a plugin written against the earlier ``Protocol`` form of the contract has.
_PROTOCOL_MEMBERS = (
    "name",
    "install_hint",
    "native_type",
    "available",
    "device_specs",
    "namespace",
    "adopt",
    "create",
    "from_host",
    "to_host",
    "transfer",
    "setitem",
    "dlpack_device",
    "is_native",
)


def as_backend_class(cls: type) -> type[Backend] | None:
    """*cls* as a :class:`Backend` subclass, or ``None`` when it is not a backend.

    A subclass is returned as is. A class written against the earlier ``Protocol`` form of
    the contract (every member present, no base class) gets the contract's defaults for
    what it lacks (capabilities, :meth:`Backend.device_of`, ...) through a subclass that
    puts its own members first.
    """
    if isinstance(cls, type) and issubclass(cls, Backend):
        return cls
    if not isinstance(cls, type) or not all(hasattr(cls, m) for m in _PROTOCOL_MEMBERS if m != "native_type"):
        return None
    try:
        return type(cls.__name__, (cls, Backend), {"__module__": cls.__module__, "__qualname__": cls.__qualname__})
    except TypeError:  # a metaclass that cannot be combined with ABCMeta
        return None


# --------------------------------------------------------------------------------------------
# wrapping native arrays: the one way backends make and read hpcai Arrays
# --------------------------------------------------------------------------------------------
_array_module: Any = None


def _arrays() -> Any:
    global _array_module
    if _array_module is None:
        from hpcai import _array

        _array_module = _array
    return _array_module


def wrap(native: Any, device: Device, tags: TagSet | None = None, *, adopt: bool = True) -> Array:
    """An :class:`hpcai.Array` around *native* on *device*, carrying *tags*.

    For backends (a pytree rebuild, a compiled function's outputs): user code makes
    Arrays with ``xp.asarray``. With ``adopt=True`` the value goes through the device's
    :meth:`Backend.adopt` as every computed result does; ``adopt=False`` stores it as given
    (tracers inside a compiled function, placeholders of a library's tree utilities).
    *tags* are an Array's tags as :func:`unwrap` gives them; nothing here moves data or
    decides policy, so a backend calls :func:`hpcai.residency.check_placement` first where
    data arrives from outside.

    >>> import numpy as np, hpcai as xp
    >>> from hpcai.backends import wrap
    >>> wrap(np.arange(3), xp.resolve_device("numpy:cpu"))
    Array([0, 1, 2], dtype=int64, device='numpy:cpu')
    """
    m = _arrays()
    if adopt:
        return m._wrap(native, device, tags)  # type: ignore[no-any-return]
    a = m._object_new(m.Array)
    a._data = native
    a._device = device
    a._tags = tags
    return a  # type: ignore[no-any-return]


def unwrap(x: Array) -> tuple[Any, Device, TagSet | None]:
    """``(native, device, tags)`` of an :class:`hpcai.Array`, for backends.

    The native array is the Array's own data, handed out without an export decision: a
    backend that lets it leave hpcai (a pytree flatten outside a trace) calls
    :func:`check_export` first.
    """
    return x._data, x._device, x._tags


def check_export(x: Array, op: str) -> None:
    """The export decision for values of *x* that a backend lets leave hpcai (*op* names
    the way out, e.g. ``"pytree flatten"``): raises
    :class:`~hpcai.errors.ResidencyError` when the policy refuses, audits covered data."""
    from hpcai._transfer import check_export as _check

    _check(x, op)


def location_attributes(config: Mapping[str, Any], device_name: str) -> Mapping[str, str]:
    """``[site]`` attributes overridden by ``[devices."<name>"].attributes`` (read-only)."""
    attrs: dict[str, str] = dict(config.get("site", {}))
    attrs.update(config.get("devices", {}).get(device_name, {}).get("attributes", {}))
    return MappingProxyType(attrs)
