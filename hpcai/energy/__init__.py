"""Energy and CO2: meters, power and carbon-intensity models, tracking and budgets.

Measured and modelled figures are kept apart and labelled in the data itself:

* **measured** — read from a hardware counter: RAPL through powercap (host CPU packages),
  NVML (``pip install nvidia-ml-py``) or AMD SMI for GPUs;
* **modelled** — a power figure × a time: board power of emulated presets, or host CPU
  seconds × watts per core where no meter is readable (the reason is in the entry).

Carbon intensity (g CO2e/kWh) comes from ``[energy.carbon]`` in the configuration (per
device, ``site`` or ``country`` attribute, optional ``pue``); without one a device has no
grams figure — there is no silent world average.

>>> import hpcai as xp
>>> with xp.energy.track() as e:
...     _ = xp.sum(xp.ones(1000))
>>> e.modelled[0]["basis"]
'modelled'
"""

from __future__ import annotations

from ._meters import AmdSmiMeter, MeterStatus, NvmlMeter, RaplMeter, discover, rapl_delta
from ._model import BOARD_POWER, Intensity, Power, carbon_intensity, grams, power
from ._track import Budget, EnergyReport, EnergyWarning, budget, track

__all__ = [
    "BOARD_POWER",
    "AmdSmiMeter",
    "Budget",
    "EnergyReport",
    "EnergyWarning",
    "Intensity",
    "MeterStatus",
    "NvmlMeter",
    "Power",
    "RaplMeter",
    "budget",
    "carbon_intensity",
    "discover",
    "grams",
    "power",
    "rapl_delta",
    "track",
]
