"""Backends: one module per array library, found through the ``hpcai.backends`` entry points.

Built-in backends are declared in ``pyproject.toml`` like any plugin and also listed here
so that a source checkout works before installation. Each is imported only when first
needed; a backend whose library is missing is reported as unavailable with its install
hint, and a broken plugin raises :class:`hpcai.errors.PluginError` instead of vanishing.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any

from hpcai.errors import BackendUnavailableError, PluginError

from ._base import (
    ALL_DTYPES,
    FP64_DTYPES,
    Backend,
    CostModel,
    DeviceSpec,
    as_backend_class,
    check_export,
    location_attributes,
    unwrap,
    wrap,
)

__all__ = [
    "ALL_DTYPES",
    "FP64_DTYPES",
    "Backend",
    "BackendInfo",
    "CostModel",
    "DeviceSpec",
    "backend_infos",
    "check_export",
    "get_backend",
    "location_attributes",
    "register_backend",
    "unregister_backend",
    "unwrap",
    "wrap",
]

ENTRY_POINT_GROUP = "hpcai.backends"

#: name -> (dotted "module:Class", module that must be importable, install hint)
_BUILTINS: dict[str, tuple[str, str, str]] = {
    "numpy": ("hpcai.backends.numpy:NumpyBackend", "numpy", "pip install numpy"),
    "emulated": ("hpcai.backends.emulated:EmulatedBackend", "numpy", "pip install numpy"),
    "jax": ("hpcai.backends.jax:JaxBackend", "jax", "pip install 'hpcai[jax]' (or pip install jax)"),
    "cupy": ("hpcai.backends.cupy:CupyBackend", "cupy", "pip install 'hpcai[cupy]' (or pip install cupy-cuda12x)"),
    "dask": ("hpcai.backends.dask:DaskBackend", "distributed", "pip install 'hpcai[dask]' (or pip install distributed)"),
}


def _target_name(target: str | type) -> str:
    return target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"


@dataclass(frozen=True)
class BackendInfo:
    """A backend as the registry sees it, before or after import."""

    name: str
    target: str
    requires: str | None
    install_hint: str
    installed: bool

    def __repr__(self) -> str:
        state = "installed" if self.installed else f"missing ({self.install_hint})"
        return f"<backend {self.name!r} -> {self.target} [{state}]>"


_lock = threading.RLock()
_extra: dict[str, str | type] = {}
_loaded: dict[str, Backend] = {}
_entry_points_override: list[EntryPoint] | None = None


def register_backend(name: str, target: str | type[Backend], *, clobber: bool = False) -> None:
    """Register a backend: a :class:`Backend` subclass, or its dotted path
    ``"package.module:Class"`` (kept lazy: imported when a device of it is first needed).

    Installed packages declare backends through the ``hpcai.backends`` entry-point group
    instead; this is for code that defines one at run time (tests, notebooks). Call
    ``xp.configure()`` afterwards when the device table was built already.
    """
    if isinstance(target, type):
        if as_backend_class(target) is None:
            raise PluginError(
                f"register_backend: {target.__qualname__} does not implement the hpcai.backends.Backend "
                "protocol; subclass hpcai.backends.Backend"
            )
    elif not isinstance(target, str):
        raise PluginError(
            f"register_backend: target must be a Backend subclass or 'module:Class', got {type(target).__name__}"
        )
    with _lock:
        if not clobber and (name in _extra or name in _BUILTINS):
            raise PluginError(f"register_backend: a backend named {name!r} exists; pass clobber=True to replace it")
        _extra[name] = target
        _loaded.pop(name, None)


def unregister_backend(name: str) -> None:
    """Forget a backend registered with :func:`register_backend` (built-ins and entry points stay)."""
    with _lock:
        if name not in _extra:
            raise PluginError(f"unregister_backend: no backend {name!r} was registered with register_backend")
        del _extra[name]
        _loaded.pop(name, None)


def _entry_points() -> list[EntryPoint]:
    if _entry_points_override is not None:
        return list(_entry_points_override)
    return list(entry_points(group=ENTRY_POINT_GROUP))


def _set_entry_points_for_testing(eps: list[EntryPoint] | None) -> None:
    """Replace the discovered entry points (tests build fake ``EntryPoint`` objects)."""
    global _entry_points_override
    with _lock:
        _entry_points_override = eps
        _loaded.clear()


def _targets() -> dict[str, tuple[str | type, str | None, str]]:
    out: dict[str, tuple[str | type, str | None, str]] = {
        name: (target, req, hint) for name, (target, req, hint) in _BUILTINS.items()
    }
    seen: dict[str, str] = {}
    for ep in _entry_points():
        if ep.name in _BUILTINS:
            if ep.value == _BUILTINS[ep.name][0]:
                continue
            # A plugin never silently replaces a built-in backend.
            raise PluginError(
                f"backend {ep.name!r}: entry point {ep.value!r} clashes with the built-in backend "
                f"{_BUILTINS[ep.name][0]!r}; rename the plugin's entry point in group {ENTRY_POINT_GROUP!r}"
            )
        if ep.name in seen and seen[ep.name] != ep.value:
            raise PluginError(
                f"backend {ep.name!r}: two installed packages declare it ({seen[ep.name]!r} and "
                f"{ep.value!r}); uninstall one of them"
            )
        seen[ep.name] = ep.value
        out[ep.name] = (ep.value, None, f"reinstall the package that provides backend {ep.name!r}")
    for name, target in _extra.items():
        out[name] = (target, None, f"check that {_target_name(target)} is importable")
    return out


def backend_infos() -> MappingProxyType[str, BackendInfo]:
    """All known backends, keyed by name (read-only). Imports nothing but the metadata."""
    infos: dict[str, BackendInfo] = {}
    for name, (target, req, hint) in _targets().items():
        installed = True if req is None else importlib.util.find_spec(req) is not None
        infos[name] = BackendInfo(name, _target_name(target), req, hint, installed)
    return MappingProxyType(infos)


def _import_target(name: str, target: str | type) -> Backend:
    if isinstance(target, type):
        return _construct(name, _target_name(target), target)
    module_name, _, attr = target.partition(":")
    if not attr:
        raise PluginError(f"backend {name!r}: entry point {target!r} must have the form 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and missing != module_name and not module_name.startswith(missing + "."):
            # The plugin is there but a library it needs is not: unavailable, with the hint.
            raise BackendUnavailableError(
                f"backend {name!r} needs the {missing!r} module, which is not installed "
                f"(install it, or reinstall the package that provides backend {name!r})"
            ) from exc
        raise PluginError(
            f"backend {name!r}: its module {module_name!r} is not installed (entry point {target!r}); "
            "reinstall the package that provides it or remove the entry point"
        ) from exc
    except Exception as exc:  # a plugin that fails to import is an error, never silence
        raise PluginError(f"backend {name!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    try:
        cls: Any = getattr(module, attr)
    except AttributeError:
        raise PluginError(f"backend {name!r}: module {module_name!r} has no attribute {attr!r}") from None
    return _construct(name, target, cls)


def _construct(name: str, target: str, cls: Any) -> Backend:
    """An instance of backend class *cls*, checked against the contract."""
    bcls = as_backend_class(cls)
    if bcls is None:
        raise PluginError(
            f"backend {name!r}: {target} does not implement the hpcai.backends.Backend protocol; "
            "subclass hpcai.backends.Backend (see docs/backends.md)"
        )
    missing = sorted(getattr(bcls, "__abstractmethods__", ()))
    if missing or not isinstance(getattr(bcls, "name", None), str):
        what = ", ".join(missing) if missing else "the class attribute 'name'"
        raise PluginError(
            f"backend {name!r}: {target} does not implement the hpcai.backends.Backend protocol "
            f"(missing: {what}); see docs/backends.md"
        )
    try:
        backend = bcls()
    except Exception as exc:
        raise PluginError(f"backend {name!r}: constructing {target} failed: {type(exc).__name__}: {exc}") from exc
    return backend


def get_backend(name: str) -> Backend:
    """The backend called *name*, imported on first use.

    Raises :class:`BackendUnavailableError` (with the install hint) when its library is
    missing and :class:`PluginError` when the plugin itself is broken.
    """
    backend = _loaded.get(name)
    if backend is not None:
        return backend
    with _lock:
        backend = _loaded.get(name)
        if backend is not None:
            return backend
        targets = _targets()
        if name not in targets:
            known = ", ".join(sorted(targets))
            raise BackendUnavailableError(f"no backend named {name!r} is registered; known backends: {known}")
        target, req, hint = targets[name]
        if req is not None and importlib.util.find_spec(req) is None:
            raise BackendUnavailableError(f"backend {name!r} needs the {req!r} package: {hint}")
        backend = _import_target(name, target)
        _loaded[name] = backend
        return backend
