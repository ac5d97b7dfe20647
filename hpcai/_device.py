"""Devices: small immutable value objects, one interned instance per device name."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from . import _config
from .errors import BackendUnavailableError, HpcaiError, UnknownDeviceError

if TYPE_CHECKING:
    from hpcai.backends import Backend, DeviceSpec

__all__ = ["Device", "DeviceLike", "all_devices", "default_device", "resolve_device"]


class Device:
    """A place where array data lives: ``numpy:cpu``, ``emulated:0``, ``jax:cpu:1``, ``cupy:0``.

    Devices are interned (one object per name), so ``a.device is b.device`` is the fast
    equality test used on every operation. ``str(device)`` gives the name back, and the
    name is accepted everywhere a device is.

    >>> import hpcai as xp
    >>> str(xp.asarray([1.0], device="emulated:0").device)
    'emulated:0'
    """

    __slots__ = ("_adopt", "_backend", "_host", "_native_type", "_ns", "spec")

    spec: DeviceSpec
    _backend: Backend
    _ns: Any
    _native_type: type
    _adopt: Any
    _host: bool

    def __init__(self, spec: DeviceSpec, backend: Backend) -> None:
        self._refresh(spec, backend)

    def _refresh(self, spec: DeviceSpec, backend: Backend) -> None:
        """Take the device's current description (after ``xp.configure``), keeping its identity."""
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "_backend", backend)
        object.__setattr__(self, "_ns", None)
        object.__setattr__(self, "_native_type", backend.native_type)
        object.__setattr__(self, "_adopt", backend.adopt)
        object.__setattr__(self, "_host", bool(backend.host_memory))
        object.__setattr__(self, "_ns", backend.namespace(self))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Device objects are immutable")

    # -- identity ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The device string, e.g. ``"emulated:0"``."""
        return self.spec.name

    @property
    def backend(self) -> str:
        """The backend name (``"numpy"``, ``"emulated"``, ``"jax"``, ``"cupy"``, ...)."""
        return self.spec.backend

    @property
    def kind(self) -> str:
        """``"cpu"``, ``"gpu"``, ``"tpu"`` or ``"emulated"``."""
        return self.spec.kind

    @property
    def memory(self) -> int | None:
        """Memory capacity in bytes (``None`` when unbounded or unknown)."""
        return self.spec.memory

    @property
    def native_dtypes(self) -> frozenset[str]:
        """Names of the dtypes the device computes on natively."""
        return self.spec.native_dtypes

    @property
    def attributes(self) -> Mapping[str, str]:
        """Location attributes (country, jurisdiction, provider, ...) from configuration."""
        return self.spec.attributes

    @property
    def is_host(self) -> bool:
        """Whether arrays on this device live in ordinary host memory NumPy can read
        (the backend's ``host_memory`` capability)."""
        return self._host

    def __str__(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"Device({self.spec.name!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Device):
            return self.spec.name == other.spec.name
        if isinstance(other, str):
            return self.spec.name == other or (other == "cpu" and self.spec.name == "numpy:cpu")
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.spec.name)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (resolve_device, (self.spec.name,))


DeviceLike: TypeAlias = Device | str

#: Every Device ever made, by name: a device keeps its object across ``xp.configure`` (its
#: description is refreshed in place), so arrays made before and after still combine.
_interned: dict[str, Device] = {}
_unavailable: dict[str, str] = {}
#: Serialises the description of interned Devices (see :func:`_build_backend`).
_refresh_lock = threading.Lock()

_ALIASES = {"cpu": "numpy:cpu"}


def _build_backend(name: str, info: Any) -> dict[str, Device] | str:
    """The devices of one backend (interned), or the reason it has none."""
    from hpcai.backends import get_backend

    if not info.installed:
        return str(info.install_hint)
    try:
        backend = get_backend(name)
    except BackendUnavailableError as exc:
        return str(exc)
    if not backend.available():
        why = backend.unavailable_reason() or "no device available"
        return f"{name}: {why} ({backend.install_hint})"
    out: dict[str, Device] = {}
    # The interned Devices are shared: they are described from the configuration in force, read
    # under one lock, so the last description written is always the current one. (A caller may
    # hold a configuration that has since been replaced: a read left running in zarr's IO
    # thread after its caller was refused resolves the host device later.)
    with _refresh_lock:
        for spec in backend.device_specs(_config.get_config().data):
            dev = _interned.get(spec.name)
            if dev is None:
                dev = _interned[spec.name] = Device(spec, backend)
            else:
                dev._refresh(spec, backend)
            out[spec.name] = dev
    return out


def _build_table() -> dict[str, Device]:
    from hpcai.backends import backend_infos

    cfg = _config.get_config()
    dev_cfg = cfg.section("devices")
    table: dict[str, Device] = {}
    _unavailable.clear()
    partial = _partial.get()
    for name, info in backend_infos().items():
        built = partial.get(name)
        if built is None:
            built = _build_backend(name, info)
        if isinstance(built, str):
            _unavailable[name] = built
        else:
            table.update(built)
    # Config entries naming devices that no backend provides are an error, not ignored.
    for name in dev_cfg:
        if name not in table and name.split(":", 1)[0] not in _unavailable:
            raise UnknownDeviceError(
                f"{cfg.source}: [devices.\"{name}\"] names no device; known devices: {', '.join(table)}"
            )
    return table


#: Backends resolved one at a time (``resolve_device("numpy:cpu")`` needs no other backend, so
#: it imports no other library: JAX alone costs ~130 MB), before the whole table is built.
_partial: _config.Derived[dict[str, dict[str, Device] | str]] = _config.Derived(dict)


def _one_backend(name: str) -> Device | None:
    """*name*'s device from its own backend alone, where that backend is known and has it."""
    from hpcai.backends import backend_infos

    if _table._value is not None:
        return None
    bname = name.split(":", 1)[0]
    partial = _partial.get()
    built = partial.get(bname)
    cfg = _config.get_config()
    if built is None:
        info = backend_infos().get(bname)
        if info is None:
            return None
        built = partial[bname] = _build_backend(bname, info)
    if isinstance(built, str):
        return None
    # The whole table checks [devices] entries: a configured name of this backend that it
    # does not provide (a typo, a device that is not here) is reported through it.
    for k in cfg.section("devices"):
        if k.split(":", 1)[0] == bname and k not in built:
            return None
    return built.get(name)


_table: _config.Derived[dict[str, Device]] = _config.Derived(_build_table)
_devices = _table.get


def all_devices() -> list[Device]:
    """Every available device, in backend order."""
    return list(_devices().values())


def unavailable_backends() -> dict[str, str]:
    """Backends that are known but unusable here, with the reason / install hint."""
    _devices()
    return dict(_unavailable)


def resolve_device(device: DeviceLike | None) -> Device:
    """Turn a device string (or ``None`` for the default) into the interned :class:`Device`."""
    if device is None:
        return default_device()
    if device.__class__ is Device:
        return device  # type: ignore[return-value]
    if isinstance(device, str):
        name = _ALIASES.get(device, device)
        dev = _one_backend(name)
        if dev is not None:
            return dev
        table = _devices()
        dev = table.get(name)
        if dev is not None:
            return dev
        backend = name.split(":", 1)[0]
        if backend in _unavailable:
            raise UnknownDeviceError(
                f"device {device!r} is not available: {_unavailable[backend]}"
            )
        known = ", ".join(table)
        raise UnknownDeviceError(f"unknown device {device!r}; available devices: {known}")
    raise UnknownDeviceError(
        f"expected a device or a device string such as 'numpy:cpu', got {type(device).__name__} {device!r}"
    )


def _build_default() -> Device:
    name = os.environ.get("HPCAI_DEVICE") or _config.get_config().default_device or "numpy:cpu"
    try:
        return resolve_device(name)
    except HpcaiError as exc:
        src = "$HPCAI_DEVICE" if os.environ.get("HPCAI_DEVICE") else _config.get_config().source
        raise UnknownDeviceError(f"default device from {src}: {exc}") from None


_default: _config.Derived[Device] = _config.Derived(_build_default)


def default_device() -> Device:
    """The default device: ``$HPCAI_DEVICE``, else ``default_device`` in config, else ``numpy:cpu``."""
    return _default.get()
