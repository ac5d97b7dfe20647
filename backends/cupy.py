"""The CuPy backend: one hpcai device per GPU CuPy sees, ``cupy:0``, ``cupy:1``, ...

The backend is available only where ``cupy.is_available()`` holds: CuPy imports on
machines without a GPU or driver, and then the backend is listed by ``hpcai devices`` as
unavailable, with the reason, instead of failing later.

Placement follows CuPy's *current device*:

* creation functions and every namespace function of ``cupy:i`` run under
  ``with cupy.cuda.Device(i)``, so their results are allocated on GPU ``i``;
* operators on arrays (``x + y``) run on CuPy's current device. With one GPU that is
  always the array's; with several, a result that CuPy computed on another GPU (through
  peer access) is copied to the array's GPU before it is returned, so hpcai's locality
  holds. Make the GPU current (``with cupy.cuda.Device(i):``) around operator-heavy code
  to avoid those copies.

Movement: ``cupy:i -> cupy:j`` is a peer copy (``cudaMemcpyPeerAsync``, ordered after the
work already queued on the source GPU); host <-> GPU copies use ``ndarray.set``/``get``.
``to_device(..., stream=s)`` enqueues the copy on ``s`` (a ``cupy.cuda.Stream``, or a raw
stream pointer as in DLPack: ``1`` legacy default, ``2`` per-thread default) and returns
without waiting for it, as the standard intends; without ``stream`` the copy is complete
when ``to_device`` returns. Copies to host memory always complete before returning.
"""

from __future__ import annotations

import functools
import importlib
import threading
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hpcai.errors import InvalidArgumentError, UnknownDeviceError

from ._base import ALL_DTYPES, ML_DTYPES, Backend, DeviceSpec, location_attributes

if TYPE_CHECKING:
    from hpcai._device import Device

__all__ = ["CupyBackend"]

cupy: Any = None
compat_cp: Any = None
_IMPORT_ERROR: str | None = None
try:
    cupy = importlib.import_module("cupy")
    compat_cp = importlib.import_module("array_api_compat.cupy")
except Exception as _exc:  # CuPy installed but its CUDA libraries are not loadable
    cupy = compat_cp = None
    _IMPORT_ERROR = f"{type(_exc).__name__}: {_exc}"

_KDL_CUDA = 2
_KDL_ROCM = 10


class _AdoptAlways:
    """Sentinel native type: with several GPUs every result's device is checked by adopt()."""


class _OnDevice:
    """A namespace whose functions run with one GPU current (CuPy allocates on the current GPU).

    Attributes are looked up once and cached on the instance: functions are wrapped to
    enter ``cupy.cuda.Device(i)``, sub-namespaces (``linalg``, ``fft``) are wrapped the same
    way, and everything else (dtypes, constants) is passed through.
    """

    def __init__(self, ns: Any, index: int) -> None:
        self._ns = ns
        self._index = index
        self._gpu = cupy.cuda.Device(index)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._ns, name)
        out: Any
        if isinstance(attr, types.ModuleType):
            out = _OnDevice(attr, self._index)
        elif callable(attr) and not isinstance(attr, type):
            out = _on_gpu(attr, self._gpu)
        else:
            out = attr
        self.__dict__[name] = out
        return out

    def __repr__(self) -> str:
        return f"<{self._ns.__name__} on cupy:{self._index}>"


def _on_gpu(fn: Callable[..., Any], gpu: Any) -> Callable[..., Any]:
    """*fn* called with *gpu* as CuPy's current device."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with gpu:
            return fn(*args, **kwargs)

    return call


def _as_stream(stream: Any, index: int) -> Any:
    """A CuPy stream object for the standard's ``stream=`` argument (``None``: current stream)."""
    if stream is None:
        return cupy.cuda.get_current_stream()
    if isinstance(stream, cupy.cuda.stream.BaseStream):
        return stream
    if isinstance(stream, int) and not isinstance(stream, bool):
        if stream == 1:
            return cupy.cuda.Stream.null
        if stream == 2:
            return cupy.cuda.Stream.ptds
        if stream > 2:
            return cupy.cuda.ExternalStream(stream, index)
    raise InvalidArgumentError(
        f"to_device: stream must be a cupy.cuda.Stream or a CUDA stream pointer (1 = legacy "
        f"default, 2 = per-thread default, or a pointer > 2), got {stream!r}"
    )


class CupyBackend(Backend):
    """CuPy on every GPU it sees; allocation under the device, peer copies between GPUs."""

    name: ClassVar[str] = "cupy"
    install_hint: ClassVar[str] = (
        "pip install 'hpcai[cupy]' (or cupy-cuda12x); CuPy also needs an NVIDIA GPU with its driver"
    )
    #: ``to_device(..., stream=)`` is honoured by this backend.
    supports_stream: ClassVar[bool] = True
    zero_copy_export: ClassVar[bool] = True
    linalg_raises: ClassVar[bool] = False  # singular input gives inf/NaN: the core checks
    special_functions: ClassVar[tuple[str, str] | None] = (
        "cupyx.scipy.special",
        "pip install cupy-cuda12x",
    )
    cache_blocking: ClassVar[bool] = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._namespaces: dict[int, _OnDevice] = {}
        self.native_type = cupy.ndarray if cupy is not None else _AdoptAlways

    # -- discovery ------------------------------------------------------------------------------
    def unavailable_reason(self) -> str | None:
        """Why the backend cannot be used here, or ``None`` when it can."""
        if _IMPORT_ERROR is not None:
            return f"cupy is installed but does not import ({_IMPORT_ERROR})"
        if not cupy.is_available():
            return "cupy imports but finds no usable GPU (cupy.is_available() is False)"
        return None

    def available(self) -> bool:
        return self.unavailable_reason() is None

    def device_specs(self, config: Mapping[str, Any]) -> list[DeviceSpec]:
        if not self.available():
            return []
        count = int(cupy.cuda.runtime.getDeviceCount())
        specs = []
        for i in range(count):
            props = cupy.cuda.runtime.getDeviceProperties(i)
            name = f"cupy:{i}"
            specs.append(
                DeviceSpec(
                    name=name,
                    backend="cupy",
                    kind="gpu",
                    index=i,
                    memory=int(props["totalGlobalMem"]),
                    # CuPy has no bfloat16/float8 dtypes (ml_dtypes' are NumPy-only)
                    native_dtypes=ALL_DTYPES - ML_DTYPES,
                    attributes=location_attributes(config, name),
                    handle=cupy.cuda.Device(i),
                )
            )
        with self._lock:
            self._count = count
        # With several GPUs an operator may compute on another GPU: check every result.
        self.native_type = cupy.ndarray if count <= 1 else _AdoptAlways
        return specs

    # -- protocol -------------------------------------------------------------------------------
    def namespace(self, device: Device) -> Any:
        i = device.spec.index
        ns = self._namespaces.get(i)
        if ns is None:
            ns = self._namespaces[i] = _OnDevice(compat_cp, i)
        return ns

    def adopt(self, device: Device, native: Any) -> Any:
        i = device.spec.index
        if isinstance(native, cupy.ndarray):
            if native.device.id == i:
                return native
            with cupy.cuda.Device(i):  # computed on another GPU: bring the result home
                return native.copy()
        with cupy.cuda.Device(i):
            return cupy.asarray(native)

    def create(self, device: Device, fname: str, *args: Any, **kwargs: Any) -> Any:
        with cupy.cuda.Device(device.spec.index):
            return getattr(compat_cp, fname)(*args, **kwargs)

    def from_host(
        self, host: np.ndarray, device: Device, *, copy: bool | None, stream: Any = None
    ) -> Any:
        i = device.spec.index
        src = np.ascontiguousarray(host)
        with cupy.cuda.Device(i):
            s = _as_stream(stream, i)
            out = cupy.empty(src.shape, dtype=src.dtype)
            if src.size:
                out.set(src, stream=s)
            if stream is None:
                s.synchronize()
        return out

    def to_host(self, native: Any, device: Device, stream: Any = None) -> np.ndarray:
        i = device.spec.index
        with cupy.cuda.Device(i):
            s = _as_stream(stream, i)
            out: np.ndarray = native.get(stream=s, blocking=True)
        return out

    def transfer(self, native: Any, src: Device, dst: Device, stream: Any = None) -> Any:
        si, di = src.spec.index, dst.spec.index
        with cupy.cuda.Device(si):
            contiguous = cupy.ascontiguousarray(native)
            ready = cupy.cuda.Event(block=False, disable_timing=True)
            ready.record(cupy.cuda.get_current_stream())
        nbytes = int(contiguous.nbytes)
        with cupy.cuda.Device(di):
            s = _as_stream(stream, di)
            out = cupy.empty(contiguous.shape, dtype=contiguous.dtype)
            s.wait_event(ready)
            if nbytes:
                cupy.cuda.runtime.memcpyPeerAsync(
                    out.data.ptr, di, contiguous.data.ptr, si, nbytes, s.ptr
                )
            # Without a stream the copy is complete on return; with one, wait only when a
            # temporary contiguous copy must outlive the call.
            if stream is None or contiguous is not native:
                s.synchronize()
        return out

    def setitem(self, device: Device, native: Any, key: Any, value: Any) -> Any:
        with cupy.cuda.Device(device.spec.index):
            native[key] = value
        return native

    def dlpack_device(self, device: Device) -> tuple[int, int]:
        kind = _KDL_ROCM if cupy is not None and cupy.cuda.runtime.is_hip else _KDL_CUDA
        return (kind, device.spec.index)

    def synchronize(self, device: Device, native: Any) -> None:
        cupy.cuda.Device(device.spec.index).synchronize()

    def is_native(self, obj: Any) -> bool:
        return cupy is not None and isinstance(obj, cupy.ndarray)

    def device_of(self, native: Any) -> Device:
        """The hpcai device a (foreign) CuPy array lives on (``xp.asarray`` of a CuPy array)."""
        from hpcai._device import resolve_device

        name = f"cupy:{int(native.device.id)}"
        try:
            return resolve_device(name)
        except UnknownDeviceError:
            raise UnknownDeviceError(
                f"xp.asarray: the CuPy array lives on GPU {native.device.id}, which hpcai does not list; "
                "run `hpcai devices` to see the GPUs hpcai found"
            ) from None
