"""The ``[energy]`` configuration section, carbon intensity and device power models.

Carbon intensity (g CO2e per kWh) comes only from the configuration — per device, per
``site`` attribute or per ``country`` attribute, most specific first — optionally times a
PUE. A device with none configured has *no* figure (``None``, with the reason): there is
no silent world average.

Power while computing, in watts, per device: ``[energy.power]`` when configured, else the
public board power of an emulated preset (H100 SXM5 700 W, MI300X 750 W, Gaudi 3 OAM
900 W), else for host CPUs ``cpu_watts_per_core`` × cores (an assumption, labelled so).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpcai import _config
from hpcai.errors import ConfigError

if TYPE_CHECKING:
    from hpcai._device import Device

__all__ = ["BOARD_POWER", "Intensity", "Power", "carbon_intensity", "grams", "power"]

#: Public board power of the emulated presets, watts (TDP / TBP from the vendors' sheets).
BOARD_POWER: dict[str, tuple[float, str]] = {
    "h100": (700.0, "NVIDIA H100 SXM5 max TDP 700 W"),
    "mi300x": (750.0, "AMD Instinct MI300X peak board power 750 W"),
    "gaudi3": (900.0, "Intel Gaudi 3 OAM (HL-325L) TDP 900 W"),
}
#: Assumed watts per busy CPU core when nothing better is known (labelled as an assumption).
DEFAULT_WATTS_PER_CORE = 10.0
#: Assumed watts of a GPU that has neither a meter nor an [energy.power] entry.
DEFAULT_GPU_WATTS = 300.0

_ACTIONS = ("raise", "warn")


def _number(v: Any, where: str, key: str, *, positive: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (positive and v == 0):
        raise ConfigError(f"{where}: {key} must be a {'positive' if positive else 'non-negative'} number, got {v!r}")
    return float(v)


def _validate_energy(value: Any, where: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table, got {type(value).__name__} {value!r}")
    known = ("budget", "carbon", "cpu_watts_per_core", "power", "pue")
    for k, v in value.items():
        kk = f"{key}.{k}"
        if k not in known:
            raise ConfigError(f"{where}: unknown key {kk}; expected one of: {', '.join(known)}")
        if k == "pue":
            if _number(v, where, kk) < 1.0:
                raise ConfigError(f"{where}: {kk} (power usage effectiveness) must be >= 1.0, got {v!r}")
        elif k == "cpu_watts_per_core":
            _number(v, where, kk)
        elif k == "power":
            if not isinstance(v, dict):
                raise ConfigError(f"{where}: [{kk}] must be a table device name -> watts, got {v!r}")
            for dev, w in v.items():
                _number(w, where, f'{kk}."{dev}"')
        elif k == "carbon":
            if not isinstance(v, dict):
                raise ConfigError(
                    f"{where}: [{kk}] must be a table with 'country', 'site' and/or 'device' tables of g/kWh, got {v!r}"
                )
            for level, table in v.items():
                if level not in ("country", "site", "device"):
                    raise ConfigError(
                        f"{where}: unknown key {kk}.{level}; expected 'country', 'site' or 'device' (tables of g/kWh)"
                    )
                if not isinstance(table, dict):
                    raise ConfigError(f"{where}: {kk}.{level} must be a table name -> g CO2e/kWh, got {table!r}")
                for name, g in table.items():
                    _number(g, where, f'{kk}.{level}."{name}" (g CO2e/kWh)', positive=False)
        elif k == "budget":
            if not isinstance(v, dict):
                raise ConfigError(f"{where}: [{kk}] must be a table (joules, co2_g, action), got {v!r}")
            for bk, bv in v.items():
                if bk in ("joules", "co2_g"):
                    _number(bv, where, f"{kk}.{bk}")
                elif bk == "action":
                    if bv not in _ACTIONS:
                        raise ConfigError(f"{where}: {kk}.action must be 'raise' or 'warn', got {bv!r}")
                else:
                    raise ConfigError(f"{where}: unknown key {kk}.{bk}; expected joules, co2_g or action")
    return dict(value)


_config.register_section("energy", _validate_energy)


def section() -> Mapping[str, Any]:
    """The active ``[energy]`` table."""
    return _config.get_config().section("energy")


@dataclass(frozen=True)
class Intensity:
    """Carbon intensity of the electricity a device uses (``g_per_kwh`` is ``None`` when unknown)."""

    g_per_kwh: float | None
    pue: float
    basis: str

    def grams(self, joules: float) -> float | None:
        """Grams CO2e for *joules* at the device (``None`` when the intensity is unknown)."""
        if self.g_per_kwh is None:
            return None
        return joules / 3.6e6 * self.g_per_kwh * self.pue


def carbon_intensity(device: Device | str) -> Intensity:
    """The configured carbon intensity of *device* (device, then site, then country entry).

    >>> import hpcai as xp
    >>> xp.energy.carbon_intensity("numpy:cpu").g_per_kwh is None   # nothing configured
    True
    """
    from hpcai._device import resolve_device

    dev = resolve_device(device)
    sec = section()
    carbon = sec.get("carbon", {})
    pue = float(sec.get("pue", 1.0))
    pue_note = f" × PUE {pue:g}" if pue != 1.0 else ""
    name = dev.spec.name
    if name in carbon.get("device", {}):
        return Intensity(float(carbon["device"][name]), pue, f'[energy.carbon.device] "{name}"{pue_note}')
    attrs = dev.spec.attributes
    site = attrs.get("site")
    if site is not None and site in carbon.get("site", {}):
        return Intensity(float(carbon["site"][site]), pue, f'[energy.carbon.site] "{site}"{pue_note}')
    country = attrs.get("country")
    if country is not None and country in carbon.get("country", {}):
        return Intensity(float(carbon["country"][country]), pue, f'[energy.carbon.country] "{country}"{pue_note}')
    what = f"country={country}" if country else "no country attribute"
    return Intensity(
        None,
        pue,
        f"no carbon intensity configured for {name} ({what}; add it under [energy.carbon]); "
        "no world average is assumed",
    )


def grams(device: Device | str, joules: float) -> float | None:
    """Grams CO2e for *joules* spent on *device* (``None`` when its intensity is unknown)."""
    return carbon_intensity(device).grams(joules)


@dataclass(frozen=True)
class Power:
    """Modelled power of a device while it computes, and where the figure comes from."""

    watts: float
    basis: str


def _cores() -> int:
    return os.cpu_count() or 1


def power(device: Device | str) -> Power:
    """The modelled power of *device* while computing (always a model: see :mod:`hpcai.energy`).

    >>> import hpcai as xp
    >>> xp.energy.power("emulated:0").watts
    700.0
    """
    from hpcai._device import resolve_device

    dev = resolve_device(device)
    sec = section()
    name = dev.spec.name
    conf = sec.get("power", {})
    if name in conf:
        return Power(float(conf[name]), f'[energy.power] "{name}"')
    if dev._backend.simulated and dev.spec.preset in BOARD_POWER:
        w, why = BOARD_POWER[dev.spec.preset]
        return Power(w, f"board power of preset {dev.spec.preset} ({why})")
    if dev.spec.kind == "cpu":
        per = float(sec.get("cpu_watts_per_core", DEFAULT_WATTS_PER_CORE))
        src = "[energy] cpu_watts_per_core" if "cpu_watts_per_core" in sec else "assumed (set [energy] cpu_watts_per_core)"
        return Power(per * _cores(), f"{per:g} W per core × {_cores()} cores, {src}")
    return Power(DEFAULT_GPU_WATTS, f"assumed {DEFAULT_GPU_WATTS:g} W (set [energy.power] \"{name}\")")
