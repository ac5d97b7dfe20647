"""The one configuration loader.

Configuration is two layers:

* the **site configuration**: ``$HPCAI_SITE_CONFIG`` if set, else
  ``/etc/hpcai/hpcai.toml`` if it exists. It is what the machine's operators declare
  and it cannot be weakened by anything a user writes: its rules always apply, its rule
  and group names cannot be redefined, location attributes (``[site]``, device and
  endpoint ``attributes``) come from it alone, and its ``[audit]`` path wins;
* the **user / project configuration**, in order: ``configure(path)`` or
  ``configure(data=...)``, else the file named by ``$HPCAI_CONFIG``, else
  ``./hpcai.toml``, else the ``[tool.hpcai]`` table of ``./pyproject.toml``, else the
  embedded defaults. It extends the site layer (see :func:`_merge` for each table);
  whatever it tries to override is ignored with a :class:`ConfigWarning` and listed in
  ``Config.ignored``.

Every value is validated when loaded; an error names the file, the key and what was
expected. Nothing falls back silently to a permissive default: a site file that is named
but missing, unreadable or invalid is an error, never "no site configuration".
"""

from __future__ import annotations

import os
import re
import threading
import tomllib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import ConfigError

__all__ = [
    "SITE_CONFIG",
    "Config",
    "ConfigWarning",
    "Derived",
    "configure",
    "format_size",
    "get_config",
    "parse_size",
    "site_config_path",
]

#: The site configuration file read when ``$HPCAI_SITE_CONFIG`` is not set.
SITE_CONFIG = Path("/etc/hpcai/hpcai.toml")


class ConfigWarning(UserWarning):
    """Part of a user or project configuration was ignored (it would weaken the site's)."""

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
    """A validated configuration: the effective tables plus where they came from.

    ``data`` is the effective configuration (the site layer with the user / project layer
    merged in); ``source`` names it for messages (``"SITE + USER"`` when both layers are
    present). ``site`` is the site configuration file (``None`` without one), ``layers``
    every source, site first, and ``ignored`` what the user / project layer tried to change
    and was not allowed to (one sentence each, naming the file and the key).
    """

    data: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<embedded defaults>"
    site: str | None = None
    layers: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    def section(self, name: str) -> dict[str, Any]:
        """A top-level table, ``{}`` when absent."""
        value = self.data.get(name, {})
        return value if isinstance(value, dict) else {}

    @property
    def default_device(self) -> str | None:
        value = self.data.get("default_device")
        return value if isinstance(value, str) else None

    @property
    def sources(self) -> tuple[str, ...]:
        """Every source of this configuration, the site configuration first."""
        return self.layers or (self.source,)


def _validate_sections(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a configuration must be a table, got {type(data).__name__}")
    for key, value in data.items():
        validator = _SECTIONS.get(key)
        if validator is None:
            known = ", ".join(sorted(_SECTIONS))
            raise ConfigError(f"{source}: unknown top-level key {key!r}; expected one of: {known}")
        out[key] = validator(value, source, key)
    return out


def _run_checks(data: Mapping[str, Any], source: str) -> None:
    for check in _CHECKS:
        check(data, source)


def validate(data: Mapping[str, Any], source: str) -> Config:
    """Validate raw TOML data of one layer and return a :class:`Config` (no site layer)."""
    out = _validate_sections(data, source)
    _run_checks(out, source)
    return Config(out, source)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a TOML configuration file") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read the configuration file (permission denied)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8 ({exc.reason})") from None


# --------------------------------------------------------------------------------------------
# the site layer
# --------------------------------------------------------------------------------------------
def site_config_path() -> Path | None:
    """The site configuration file: ``$HPCAI_SITE_CONFIG``, else ``/etc/hpcai/hpcai.toml`` if present.

    A file named by ``$HPCAI_SITE_CONFIG`` must exist (a missing one is an error when
    loading, never "no site configuration"); ``/etc/hpcai/hpcai.toml`` applies whenever
    anything exists at that path (a directory or an unreadable file there is an error too).
    """
    env = os.environ.get("HPCAI_SITE_CONFIG")
    if env:
        p = Path(env).expanduser().absolute()
        if p != SITE_CONFIG and os.path.lexists(SITE_CONFIG):
            warnings.warn(
                f"$HPCAI_SITE_CONFIG={env} replaces the site configuration {SITE_CONFIG} (policy records "
                "name the site file in force)",
                ConfigWarning,
                stacklevel=4,
            )
        return p
    if os.path.lexists(SITE_CONFIG):
        return SITE_CONFIG
    return None


def _load_site() -> Config | None:
    p = site_config_path()
    if p is None:
        return None
    if not os.path.lexists(p):
        raise ConfigError(
            f"{p}: site configuration file not found ($HPCAI_SITE_CONFIG names it); create it or fix the "
            "variable: hpcai does not run without the site configuration it was told to apply"
        )
    return validate(_read_toml(p), str(p))


# --------------------------------------------------------------------------------------------
# merging the user / project layer into the site layer
# --------------------------------------------------------------------------------------------
#: Tables in which the user / project layer wins (no residency meaning).
_USER_WINS = frozenset({"default_device", "precision"})

_ATTRS_WHY = "location attributes come only from the site configuration"


def _merge(site: Config, user: Mapping[str, Any], user_source: str) -> tuple[dict[str, Any], list[str]]:
    """The site layer's tables with the user / project layer's merged in, and what was ignored.

    What "cannot weaken" means, table by table (the user layer *extends*, never replaces):

    * ``[[policy.rules]]``: every site rule applies; user rules are added after them; a user
      rule named like a site rule is ignored (adding rules can only restrict: data must
      satisfy every covering rule, so no added rule can allow what a site rule refuses);
    * ``[groups]``: user groups are added; one named like a site group is ignored (site
      rules always read the site's members);
    * ``[site]`` and ``attributes`` of ``[devices.*]`` and ``[endpoints.*]``: ignored
      entirely: whoever could set an attribute could satisfy a rule, so only the site
      describes places (a place it does not describe has no attributes and fails closed);
    * ``[endpoints.NAME]`` defined by the site: the user's table of that name is ignored
      (its URL is part of what the site described); new user endpoints are added without
      attributes;
    * ``[devices.NAME]``: other keys (preset, memory, precision, costs) merge, the user's
      winning; ``attributes`` as above;
    * ``[audit]``: when the site has one, it is the site's entirely (a user can neither move
      the trail nor choose its key); otherwise the user's applies;
    * ``default_device`` and ``[precision]``: the user's value wins (no residency meaning);
    * any other table (``[dask]``, sections registered later): keys are added, keys the site
      sets are kept (conservative: a table of unknown meaning is treated as the site's).
    """
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in site.data.items()}
    notes: list[str] = []
    where = f"site configuration {site.source}"

    def ignore(what: str, why: str) -> None:
        notes.append(f"{user_source}: {what} ignored: {why} ({where})")

    for key, value in user.items():
        if key == "policy":
            site_rules = list((out.get("policy") or {}).get("rules", []))
            by_name = {r["name"]: r for r in site_rules}
            added = []
            for r in value.get("rules", []):
                clash = by_name.get(r["name"])
                if clash is None:
                    added.append(r)
                elif clash != r:
                    ignore(
                        f'[[policy.rules]] "{r["name"]}"',
                        "a site rule has this name; user and project configuration add rules but "
                        "cannot replace or relax site rules (give the rule another name to add it)",
                    )
            out["policy"] = {"rules": site_rules + added}
        elif key == "groups":
            groups = dict(out.get("groups") or {})
            for name, members in value.items():
                if name not in groups:
                    groups[name] = members
                elif groups[name] != members:
                    ignore(f"[groups] {name}", "the site defines this group and its rules read the site's members")
            out["groups"] = groups
        elif key == "site":
            if value and value != out.get("site"):
                ignore("[site]", _ATTRS_WHY)
        elif key == "devices":
            devices = {n: dict(spec) for n, spec in (out.get("devices") or {}).items()}
            for name, spec in value.items():
                spec = dict(spec)
                attrs = spec.pop("attributes", None)
                mine = devices.get(name, {})
                if attrs is not None and attrs != mine.get("attributes"):
                    ignore(f'[devices."{name}"].attributes', _ATTRS_WHY)
                devices[name] = {**mine, **spec}
            out["devices"] = devices
        elif key == "endpoints":
            endpoints = dict(out.get("endpoints") or {})
            for name, table in value.items():
                if name in endpoints:
                    if table != endpoints[name]:
                        ignore(f"[endpoints.{name}]", "the site defines this endpoint (where it is and what it is)")
                    continue
                table = dict(table)
                if table.pop("attributes", None):
                    ignore(f"[endpoints.{name}].attributes", _ATTRS_WHY)
                endpoints[name] = table
            out["endpoints"] = endpoints
        elif key == "audit":
            if out.get("audit"):  # the site's trail: where it goes and how it is keyed
                if value and value != out["audit"]:
                    ignore("[audit]", "the site decides where its audit trail goes and how it is keyed")
            else:
                out["audit"] = value
        elif key in _USER_WINS or key not in out:
            out[key] = value
        elif isinstance(out[key], dict) and isinstance(value, dict):
            table = out[key]
            for k, v in value.items():
                if k not in table:
                    table[k] = v
                elif table[k] != v:
                    ignore(f"[{key}] {k}", "the site sets it")
        elif out[key] != value:
            ignore(key, "the site sets it")
    return out, notes


def _compose(site: Config | None, data: Mapping[str, Any], source: str) -> Config:
    """Validate a user / project layer and merge it into the site layer (if any)."""
    sections = _validate_sections(data, source)
    if site is None:
        _run_checks(sections, source)
        return Config(sections, source)
    merged, notes = _merge(site, sections, source)
    _run_checks(merged, source)  # site parts were checked alone; errors here are the user layer's
    layers = (site.source,) if source.startswith("<embedded") else (site.source, source)
    for note in notes:
        warnings.warn(note, ConfigWarning, stacklevel=3)
    return Config(merged, " + ".join(layers), site=site.source, layers=layers, ignored=tuple(notes))


def _user_layer(path: str | os.PathLike[str] | None) -> tuple[dict[str, Any], str]:
    """The raw user / project layer and its source: *path*, ``$HPCAI_CONFIG``, ./hpcai.toml, ..."""
    if path is not None:
        p = Path(path)
        data = _read_toml(p)
        if p.name == "pyproject.toml":
            data = _expect_table(data.get("tool", {}).get("hpcai", {}), str(p), "tool.hpcai")
        return data, str(p)
    env = os.environ.get("HPCAI_CONFIG")
    if env:
        return _user_layer(env)
    local = Path("hpcai.toml")
    if local.is_file():
        return _read_toml(local), str(local.resolve())
    pyproject = Path("pyproject.toml")
    if pyproject.is_file():
        data = _read_toml(pyproject).get("tool", {}).get("hpcai")
        if data is not None:
            return _expect_table(data, str(pyproject), "tool.hpcai"), f"{pyproject.resolve()} [tool.hpcai]"
    return {}, "<embedded defaults>"


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the site configuration and the user / project configuration (*path* or discovered)."""
    site = _load_site()
    return _compose(site, *_user_layer(path))


_lock = threading.RLock()
_current: Config | None = None
_listeners: list[Callable[[], None]] = []
#: Called as ``hook(old, new, via)`` before a configuration is applied; raising refuses it.
_change_hooks: list[Callable[[Config | None, Config, str], None]] = []


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


def on_change(hook: Callable[[Config | None, Config, str], None]) -> None:
    """Register ``hook(old, new, via)``, run by :func:`configure` before *new* is applied.

    *old* is the active configuration (``None`` if none was loaded yet), *via* says how
    the change was asked for. A hook that raises refuses the change (the residency policy
    uses this: a policy change that cannot be written to the audit log does not happen).
    """
    _change_hooks.append(hook)


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
    """Replace the user / project configuration (the site configuration always stays).

    ``configure("project.toml")`` loads a file, ``configure(data={...})`` takes a mapping
    (validated the same way), ``configure()`` re-runs discovery. The site configuration
    (``$HPCAI_SITE_CONFIG`` or ``/etc/hpcai/hpcai.toml``) is read again each time and stays
    underneath whatever is given: ``configure(data={})`` leaves exactly the site's policy.
    Devices, policies and endpoints are rebuilt from the new configuration. A change of the
    residency policy is written to the audit log before it applies.

    >>> import hpcai
    >>> cfg = hpcai.configure(data={"default_device": "numpy:cpu"})
    """
    global _current
    with _lock:
        site = _load_site()
        if data is not None:
            if not isinstance(data, Mapping):
                raise ConfigError(f"configure(data=...): expected a mapping of tables, got {type(data).__name__}")
            cfg = _compose(site, dict(data), "<configure(data=...)>")
            via = "xp.configure(data=...)"
        else:
            cfg = _compose(site, *_user_layer(path))
            via = f"xp.configure({str(path)!r})" if path is not None else "xp.configure()"
        for hook in list(_change_hooks):
            hook(_current, cfg, via)
        _current = cfg
    for cb in list(_listeners):
        cb()
    return cfg
