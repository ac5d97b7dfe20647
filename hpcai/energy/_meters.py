"""Energy meters: RAPL through powercap, NVML (``nvidia-ml-py``) and AMD SMI (``amdsmi``).

Every meter reads a cumulative counter; a measurement is the difference of two readings.

* **RAPL** (``/sys/class/powercap/intel-rapl:N/energy_uj``, Intel and AMD CPUs): the
  counter wraps at ``max_energy_range_uj``; a reading lower than the previous one means it
  wrapped once (a block longer than one wrap period — about half an hour at 150 W for the
  usual 262 kJ range — cannot be told apart: sample more often). Since CVE-2020-8694 the
  files are readable by root only: a permission error says so and how to grant access.
* **NVML**: ``nvmlDeviceGetTotalEnergyConsumption`` (millijoules since the driver loaded,
  updated about every 10 ms; Volta and later). Optional: ``pip install nvidia-ml-py``.
* **AMD SMI**: ``amdsmi_get_energy_count``. Optional: the ``amdsmi`` package of ROCm.

A meter that is not there is reported with the reason, never silently skipped.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hpcai.errors import MeterError

__all__ = ["AmdSmiMeter", "Meter", "MeterStatus", "NvmlMeter", "RaplMeter", "discover", "rapl_delta"]

POWERCAP = Path("/sys/class/powercap")
_ZONE_RE = re.compile(r"^intel-rapl:[0-9]+$")


class Meter(Protocol):
    """A cumulative energy counter per channel (joules)."""

    name: str

    def channels(self) -> list[str]: ...

    def read(self) -> dict[str, float]:
        """Counter values in joules, by channel."""
        ...

    def delta(self, start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
        """Joules spent between two readings, by channel."""
        ...


def rapl_delta(start_uj: int, end_uj: int, max_range_uj: int) -> int:
    """Microjoules between two RAPL readings, across at most one wraparound.

    >>> rapl_delta(100, 350, 1000)
    250
    >>> rapl_delta(900, 50, 1000)   # wrapped: 100 to the top, then 50
    150
    """
    if end_uj >= start_uj:
        return end_uj - start_uj
    return max_range_uj - start_uj + end_uj


_PERM_HINT = (
    "RAPL energy counters are readable by root only since CVE-2020-8694; grant read access "
    "(e.g. a udev rule or `sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj`) "
    "or run as root; until then host energy is modelled"
)


class RaplMeter:
    """Package (and psys) energy from the powercap tree under *root*."""

    name = "rapl"

    def __init__(self, root: str | os.PathLike[str] = POWERCAP) -> None:
        self.root = Path(root)
        self._zones: dict[str, tuple[Path, int]] = {}
        if not self.root.is_dir():
            raise MeterError(f"RAPL: no powercap tree at {self.root} (not Linux, a VM, or no RAPL driver)")
        for d in sorted(self.root.iterdir()):
            if not _ZONE_RE.match(d.name) or not (d / "energy_uj").exists():
                continue
            try:
                label = (d / "name").read_text().strip() or d.name
                max_range = int((d / "max_energy_range_uj").read_text())
            except PermissionError:
                raise MeterError(f"RAPL: {d}: permission denied; {_PERM_HINT}") from None
            except (OSError, ValueError) as exc:
                raise MeterError(f"RAPL: {d}: unreadable zone ({exc})") from None
            self._zones[f"{label}:{d.name.split(':')[1]}"] = (d / "energy_uj", max_range)
        if not self._zones:
            raise MeterError(f"RAPL: no intel-rapl:N zones under {self.root} (a VM or a CPU without RAPL)")
        self.read_uj()  # fail now, with the clear message, rather than at the end of a block

    def channels(self) -> list[str]:
        return list(self._zones)

    def read_uj(self) -> dict[str, int]:
        out = {}
        for ch, (path, _) in self._zones.items():
            try:
                out[ch] = int(path.read_text())
            except PermissionError:
                raise MeterError(f"RAPL: {path}: permission denied; {_PERM_HINT}") from None
            except (OSError, ValueError) as exc:
                raise MeterError(f"RAPL: {path}: cannot read the counter ({exc})") from None
        return out

    def read(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.read_uj().items()}

    def delta(self, start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
        return {
            ch: rapl_delta(int(start[ch]), int(end[ch]), self._zones[ch][1]) / 1e6 for ch in self._zones if ch in start
        }


class NvmlMeter:
    """GPU energy through NVML (``pip install nvidia-ml-py``)."""

    name = "nvml"

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError:
            raise MeterError("NVML: nvidia-ml-py is not installed (pip install 'hpcai[energy]')") from None
        try:
            pynvml.nvmlInit()
            n = pynvml.nvmlDeviceGetCount()
            self._handles = {f"gpu:{i}": pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(n)}
        except Exception as exc:  # pynvml raises NVMLError subclasses of Exception
            raise MeterError(f"NVML: no NVIDIA driver or device ({exc})") from None
        if not self._handles:
            raise MeterError("NVML: no NVIDIA GPU found")
        self._nvml: Any = pynvml
        self.read()

    def channels(self) -> list[str]:
        return list(self._handles)

    def read(self) -> dict[str, float]:
        try:
            return {ch: self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1e3 for ch, h in self._handles.items()}
        except Exception as exc:
            raise MeterError(f"NVML: cannot read the energy counter (Volta or later needed): {exc}") from None

    def delta(self, start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
        return {ch: end[ch] - start[ch] for ch in start if ch in end}


class AmdSmiMeter:
    """AMD GPU energy through AMD SMI (the ``amdsmi`` package of ROCm)."""

    name = "amdsmi"

    def __init__(self) -> None:
        try:
            import amdsmi
        except ImportError:
            raise MeterError("AMD SMI: the amdsmi package (ROCm) is not installed") from None
        try:
            amdsmi.amdsmi_init()
            handles = amdsmi.amdsmi_get_processor_handles()
        except Exception as exc:
            raise MeterError(f"AMD SMI: no AMD driver or device ({exc})") from None
        if not handles:
            raise MeterError("AMD SMI: no AMD GPU found")
        self._amd: Any = amdsmi
        self._handles = {f"gpu:{i}": h for i, h in enumerate(handles)}
        self.read()

    def channels(self) -> list[str]:
        return list(self._handles)

    def read(self) -> dict[str, float]:
        out = {}
        try:
            for ch, h in self._handles.items():
                info = self._amd.amdsmi_get_energy_count(h)
                res = float(info.get("counter_resolution", 1.0))
                out[ch] = float(info.get("energy_accumulator", 0)) * res / 1e6
        except Exception as exc:
            raise MeterError(f"AMD SMI: cannot read the energy counter: {exc}") from None
        return out

    def delta(self, start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
        return {ch: end[ch] - start[ch] for ch in start if ch in end}


@dataclass(frozen=True)
class MeterStatus:
    """Whether a meter works here, and why not."""

    name: str
    available: bool
    reason: str
    meter: Any = None


def discover(powercap: str | os.PathLike[str] | None = None) -> list[MeterStatus]:
    """Every meter kind, working or with the reason it does not (``$HPCAI_POWERCAP`` overrides the root)."""
    root = powercap or os.environ.get("HPCAI_POWERCAP") or POWERCAP
    out = []
    for name, make in (("rapl", lambda: RaplMeter(root)), ("nvml", NvmlMeter), ("amdsmi", AmdSmiMeter)):
        try:
            m = make()
        except MeterError as exc:
            out.append(MeterStatus(name, False, str(exc)))
        else:
            out.append(MeterStatus(name, True, f"channels: {', '.join(m.channels())}", m))
    return out
