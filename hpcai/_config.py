"""The one configuration loader.

Configuration comes from, in order: the file named by ``$HPCAI_CONFIG``, else
``./hpcai.toml``, else the ``[tool.hpcai]`` table of ``./pyproject.toml``, else the
embedded defaults. Every value is validated when loaded; an error names the file, the
key and what was expected. Nothing falls back silently to a permissive default.
"""

from __future__ import annotations

import os
import re
import threading
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import ConfigError

__all__ = ["Config", "Derived", "configure", "format_size", "get_config", "parse_size"]

_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "pb": 10**15,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "pib": 2**50,
}

#: Top-level keys the loader knows; each maps to a validator of its value.
_Validator = Callable[[Any, str, str], Any]


def parse_size(value: object, *, where: str = "<value>", key: str = "size") -> int:
    """Parse a byte size such as ``"8 GiB"``, ``"80GB"`` or ``1024`` into bytes.

    >>> parse_size("8 GiB")
    8589934592
    """
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be a size like '8 GiB' or a number of bytes, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{where}: {key} must be non-negative, got {value}")
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            unit = (m.group(2) or "B").lower()
            return int(float(m.group(1)) * _UNITS[unit])
    raise ConfigError(
        f"{where}: {key} must be a size like '8 GiB', '512 MB' or a number of bytes, got {value!r}"
    )


def format_size(n: int | None) -> str:
    """A byte count for people: ``"512 B"``, ``"1.5 MiB"``, ``"80.0 GiB"``; ``None`` gives ``"-"``.

    >>> format_size(3 * 2**29)
    '1.5 GiB'
    """
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _expect_table(value: Any, where: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table, got {type(value).__name__} {value!r}")
    return value


def _expect_str(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, got {type(value).__name__} {value!r}")
    return value


def _expect_str_table(value: Any, where: str, key: str) -> dict[str, str]:
    table = _expect_table(value, where, key)
    for k, v in table.items():
        _expect_str(v, where, f"{key}.{k}")
    return dict(table)


_DEVICE_KEYS = {
    "preset": "a preset name such as 'h100', 'mi300x' or 'gaudi3'",
    "memory": "a size such as '8 GiB'",
    "precision": "one of 'native', 'emulate', 'error'",
    "attributes": "a table of location attributes, e.g. { country = 'DE' }",
    "native_dtypes": "a list of dtype names",
    "link_bandwidth": "bytes per second (number) for the host link",
    "link_latency": "seconds (number) per host-link transfer",
    "memory_bandwidth": "bytes per second (number)",
    "flops": "a table dtype name -> FLOP/s",
}


def _validate_devices(value: Any, where: str, key: str) -> dict[str, dict[str, Any]]:
    table = _expect_table(value, where, key)
    out: dict[str, dict[str, Any]] = {}
    for name, spec in table.items():
        spec = _expect_table(spec, where, f'devices."{name}"')
        for k, v in spec.items():
            dk = f'devices."{name}".{k}'
            if k not in _DEVICE_KEYS:
                known = ", ".join(sorted(_DEVICE_KEYS))
                raise ConfigError(f"{where}: unknown key {dk}; expected one of: {known}")
            if k == "memory":
                parse_size(v, where=where, key=dk)
            elif k in ("preset",):
                _expect_str(v, where, dk)
            elif k == "precision":
                if v not in ("native", "emulate", "error"):
                    raise ConfigError(f"{where}: {dk} must be {_DEVICE_KEYS[k]}, got {v!r}")
            elif k == "attributes":
                _expect_str_table(v, where, dk)
            elif k == "native_dtypes":
                if not isinstance(v, list) or not all(isinstance(d, str) for d in v):
                    raise ConfigError(f"{where}: {dk} must be {_DEVICE_KEYS[k]}, got {v!r}")
            elif k in ("link_bandwidth", "link_latency", "memory_bandwidth"):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                    raise ConfigError(f"{where}: {dk} must be a positive number ({_DEVICE_KEYS[k]}), got {v!r}")
            elif k == "flops":
                ft = _expect_table(v, where, dk)
                for fk, fv in ft.items():
                    if isinstance(fv, bool) or not isinstance(fv, (int, float)) or fv <= 0:
                        raise ConfigError(f"{where}: {dk}.{fk} must be a positive number, got {fv!r}")
        out[name] = dict(spec)
    return out


def _validate_default_device(value: Any, where: str, key: str) -> str:
    return _expect_str(value, where, key)


def _validate_any_table(value: Any, where: str, key: str) -> dict[str, Any]:
    return dict(_expect_table(value, where, key))


_SECTIONS: dict[str, _Validator] = {
    "default_device": _validate_default_device,
    "devices": _validate_devices,
    "site": lambda v, w, k: _expect_str_table(v, w, k),
    "groups": _validate_any_table,
    "policy": _validate_any_table,
    "audit": _validate_any_table,
    "endpoints": _validate_any_table,
    "dask": _validate_any_table,
    "precision": _validate_any_table,
}


def register_section(name: str, validator: _Validator) -> None:
    """Let a subsystem (policy, storage, dask, ...) validate its own top-level section."""
    _SECTIONS[name] = validator


#: Checks over the whole validated configuration (sections that refer to each other).
_CHECKS: list[Callable[[Mapping[str, Any], str], None]] = []


def register_check(check: Callable[[Mapping[str, Any], str], None]) -> None:
    """Let a subsystem check the whole configuration (e.g. rules naming ``[groups]``).

    ``check(data, source)`` runs after every section validated and raises
    :class:`~hpcai.errors.ConfigError` to reject the configuration before it is applied.
    """
    _CHECKS.append(check)


@dataclass(frozen=True)
class Config:
    """A validated configuration: the raw tables plus where they came from."""

    data: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<embedded defaults>"

    def section(self, name: str) -> dict[str, Any]:
        """A top-level table, ``{}`` when absent."""
        value = self.data.get(name, {})
        return value if isinstance(value, dict) else {}

    @property
    def default_device(self) -> str | None:
        value = self.data.get("default_device")
        return value if isinstance(value, str) else None


def validate(data: Mapping[str, Any], source: str) -> Config:
    """Validate raw TOML data and return a :class:`Config`."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        validator = _SECTIONS.get(key)
        if validator is None:
            known = ", ".join(sorted(_SECTIONS))
            raise ConfigError(f"{source}: unknown top-level key {key!r}; expected one of: {known}")
        out[key] = validator(value, source, key)
    for check in _CHECKS:
        check(out, source)
    return Config(out, source)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Load configuration from *path*, or discover it as described in the module docs."""
    if path is not None:
        p = Path(path)
        data = _read_toml(p)
        if p.name == "pyproject.toml":
            data = data.get("tool", {}).get("hpcai", {})
        return validate(data, str(p))
    env = os.environ.get("HPCAI_CONFIG")
    if env:
        return load(env)
    local = Path("hpcai.toml")
    if local.is_file():
        return validate(_read_toml(local), str(local.resolve()))
    pyproject = Path("pyproject.toml")
    if pyproject.is_file():
        data = _read_toml(pyproject).get("tool", {}).get("hpcai")
        if data is not None:
            return validate(_expect_table(data, str(pyproject), "tool.hpcai"), f"{pyproject.resolve()} [tool.hpcai]")
    return Config()


_lock = threading.RLock()
_current: Config | None = None
_listeners: list[Callable[[], None]] = []


def get_config() -> Config:
    """The active configuration (loaded on first use)."""
    global _current
    cfg = _current
    if cfg is None:
        with _lock:
            if _current is None:
                _current = load()
            cfg = _current
    return cfg


def on_reconfigure(callback: Callable[[], None]) -> None:
    """Register *callback* to run whenever :func:`configure` replaces the configuration."""
    _listeners.append(callback)


T = TypeVar("T")


class Derived(Generic[T]):
    """A value built from the active configuration on first use and dropped by :func:`configure`.

    ``get()`` builds it once (thread-safe: one builder runs, the others wait for its value)
    and then returns it; every ``configure`` drops it, runs *on_reset* if given, and the
    next ``get()`` builds it again from the new configuration. Devices, endpoints and the
    residency policy are each one of these.
    """

    __slots__ = ("_build", "_lock", "_on_reset", "_value")

    def __init__(self, build: Callable[[], T], on_reset: Callable[[], None] | None = None) -> None:
        self._build = build
        self._on_reset = on_reset
        self._value: T | None = None
        self._lock = threading.RLock()
        on_reconfigure(self.reset)

    def get(self) -> T:
        """The value for the active configuration."""
        v = self._value
        if v is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
                v = self._value
        return v

    def reset(self) -> None:
        """Forget the value (the next :meth:`get` builds it again)."""
        with self._lock:
            self._value = None
            if self._on_reset is not None:
                self._on_reset()


def configure(
    path: str | os.PathLike[str] | None = None, *, data: Mapping[str, Any] | None = None
) -> Config:
    """Replace the active configuration.

    ``configure("site.toml")`` loads a file, ``configure(data={...})`` takes a mapping
    (validated the same way), ``configure()`` re-runs discovery. Devices, policies and
    endpoints are rebuilt from the new configuration.

    >>> import hpcai
    >>> cfg = hpcai.configure(data={"default_device": "numpy:cpu"})
    """
    global _current
    with _lock:
        if data is not None:
            cfg = validate(dict(data), "<configure(data=...)>")
        else:
            cfg = load(path)
        _current = cfg
    for cb in list(_listeners):
        cb()
    return cfg
