"""``xp.energy.track()`` (joules and grams per device, measured and modelled apart) and budgets."""

from __future__ import annotations

import contextvars
import json
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpcai import _config
from hpcai.errors import EnergyBudgetError, InvalidArgumentError

from ._meters import MeterStatus, discover
from ._model import carbon_intensity, power, section

if TYPE_CHECKING:
    from hpcai._device import Device

__all__ = ["Budget", "EnergyReport", "EnergyWarning", "budget", "track"]


class EnergyWarning(UserWarning):
    """A predicted run goes past an energy or CO2 budget whose action is ``"warn"``."""


@dataclass
class EnergyReport:
    """Joules and grams per device over one ``track()`` block.

    ``measured`` and ``modelled`` are separate lists of entries, each labelled with its
    ``basis`` and where the figure comes from; they are never added together (their totals
    are :attr:`measured_joules` and :attr:`modelled_joules`). ``reasons`` says why each
    missing meter is missing.
    """

    seconds: float = 0.0
    measured: list[dict[str, Any]] = field(default_factory=list)
    modelled: list[dict[str, Any]] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def measured_joules(self) -> float:
        return sum(e["joules"] for e in self.measured)

    @property
    def modelled_joules(self) -> float:
        return sum(e["joules"] for e in self.modelled)

    def to_json(self) -> str:
        """The report as JSON (``{"kind": "hpcai-energy-report", ...}``)."""
        return json.dumps(self.to_dict(), indent=1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "hpcai-energy-report",
            "version": 1,
            "seconds": self.seconds,
            "measured": self.measured,
            "modelled": self.modelled,
            "totals": {"measured_joules": self.measured_joules, "modelled_joules": self.modelled_joules},
            "meters_missing": self.reasons,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_json` to *path* (read back by ``hpcai energy report PATH``)."""
        p = Path(path)
        p.write_text(self.to_json())
        return p

    @classmethod
    def from_dict(cls, doc: Any, where: str = "<report>") -> EnergyReport:
        if not isinstance(doc, dict) or doc.get("kind") != "hpcai-energy-report":
            raise InvalidArgumentError(
                f"{where}: not an hpcai energy report (expected the JSON that EnergyReport.save() writes)"
            )
        try:
            return cls(float(doc["seconds"]), list(doc["measured"]), list(doc["modelled"]), dict(doc["meters_missing"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"{where}: malformed energy report ({type(exc).__name__}: {exc})") from None

    def table(self) -> str:
        """Measured and modelled entries in two labelled blocks."""
        from hpcai._advisor import format_table

        lines = []
        for title, entries in (("MEASURED", self.measured), ("MODELLED", self.modelled)):
            lines.append(f"{title} ({len(entries)} entries; not to be added to the other block)")
            rows = [("device", "seconds", "joules", "g CO2e", "from")]
            for e in entries:
                g = e.get("grams")
                rows.append(
                    (
                        str(e["device"]),
                        f"{e.get('seconds', 0.0):.4f}",
                        f"{e['joules']:.3f}",
                        "n/a" if g is None else f"{g:.4f}",
                        str(e.get("source", "")),
                    )
                )
            lines.append(format_table(rows) if entries else "  (none)")
            for e in entries:
                if e.get("reason"):
                    lines.append(f"  {e['device']}: {e['reason']}")
        if self.reasons:
            lines.append("why not measured:")
            lines.extend(f"  {k}: {v}" for k, v in self.reasons.items())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


class _Tracker:
    __slots__ = ("meters", "runs", "start", "t0", "cpu0")

    def __init__(self, meters: list[MeterStatus]) -> None:
        self.meters = meters
        self.start = {m.name: m.meter.read() for m in meters if m.available}
        self.runs: dict[str, list[float]] = {}  # device -> [seconds, modelled seconds]
        self.t0 = time.perf_counter()
        self.cpu0 = time.process_time()


_trackers: contextvars.ContextVar[tuple[_Tracker, ...]] = contextvars.ContextVar("hpcai_energy", default=())


def note_run(device: Device, seconds: float) -> None:
    """Tell every open ``track()`` block that *device* computed for *seconds* (called by ``xp.run``)."""
    for t in _trackers.get():
        t.runs.setdefault(device.spec.name, [0.0])[0] += seconds


def _entry(device: str, joules: float, basis: str, source: str, seconds: float, reason: str = "") -> dict[str, Any]:
    inten = carbon_intensity("numpy:cpu" if device == "host" else device)
    return {
        "device": device,
        "basis": basis,
        "seconds": seconds,
        "joules": joules,
        "grams": inten.grams(joules),
        "g_per_kwh": inten.g_per_kwh,
        "carbon_basis": inten.basis,
        "source": source,
        "reason": reason,
    }


@contextmanager
def track(*, powercap: str | os.PathLike[str] | None = None) -> Iterator[EnergyReport]:
    """Measure (where a meter exists) or model the energy and CO2 of the block, per device.

    Host CPUs: RAPL when readable, else modelled as process CPU seconds × watts per core.
    GPUs: NVML / AMD SMI when present. Emulated devices: board power × modelled seconds of
    the ``xp.run`` calls inside the block. The report is filled in when the block ends.

    >>> import hpcai as xp
    >>> with xp.energy.track() as e:
    ...     _ = xp.run(xp.matmul, xp.ones((64, 64)), xp.ones((64, 64)), device="emulated:0")
    >>> [m["device"] for m in e.modelled]
    ['host', 'emulated:0']
    """
    report = EnergyReport()
    t = _Tracker(discover(powercap))
    token = _trackers.set(_trackers.get() + (t,))
    try:
        yield report
    finally:
        _trackers.reset(token)
        _finish(t, report)


def _finish(t: _Tracker, report: EnergyReport) -> None:
    wall = time.perf_counter() - t.t0
    cpu = time.process_time() - t.cpu0
    report.seconds = wall
    host_measured = False
    gpu_measured = False
    for m in t.meters:
        if not m.available:
            report.reasons[m.name] = m.reason
            continue
        end = m.meter.read()
        for ch, j in m.meter.delta(t.start[m.name], end).items():
            dev = "host" if m.name == "rapl" else f"{m.name}:{ch}"
            report.measured.append(_entry(dev, j, "measured", f"{m.name} counter {ch}", wall))
        host_measured |= m.name == "rapl"
        gpu_measured |= m.name in ("nvml", "amdsmi")
    if not host_measured:
        p = power("numpy:cpu")
        cores = os.cpu_count() or 1
        joules = p.watts / cores * cpu
        why = report.reasons.get("rapl", "no host meter")
        report.modelled.append(
            _entry(
                "host",
                joules,
                "modelled",
                f"process CPU time {cpu:.3f} s × {p.watts / cores:g} W per core ({p.basis})",
                cpu,
                f"modelled, not measured: {why}",
            )
        )
    from hpcai._device import resolve_device

    for name, (secs,) in t.runs.items():
        used: Device = resolve_device(name)
        if used.spec.kind == "cpu":
            continue  # host devices are covered by the host entry above
        if used.spec.kind == "gpu" and gpu_measured:
            continue
        p = power(used)
        emulated = used._backend.simulated
        why = (
            "emulated device: no hardware, so no meter; modelled seconds from its cost model"
            if emulated
            else f"modelled, not measured: {report.reasons.get('nvml', '')} {report.reasons.get('amdsmi', '')}".strip()
        )
        report.modelled.append(
            _entry(name, p.watts * secs, "modelled", f"{secs:.6f} s × {p.watts:g} W ({p.basis})", secs, why)
        )


# --------------------------------------------------------------------------------------------
# budgets
# --------------------------------------------------------------------------------------------
@dataclass
class Budget:
    """An energy / CO2 allowance; ``xp.run`` refuses (or warns about) a predicted excess."""

    joules: float | None
    co2_g: float | None
    action: str = "raise"
    source: str = "xp.energy.budget()"
    spent_joules: float = 0.0
    spent_g: float = 0.0
    warned: bool = False

    def check(self, device: str, joules: float, grams: float | None, basis: str) -> None:
        """Refuse (``raise``) or warn once (``warn``) if the predicted figures exceed what is left."""
        over = []
        if self.joules is not None and self.spent_joules + joules > self.joules:
            over.append(
                f"{joules:.4g} J predicted on {device} with {self.spent_joules:.4g} J of {self.joules:.4g} J spent"
            )
        if self.co2_g is not None:
            if grams is None:
                over.append(f"a CO2 budget is set but {device} has no carbon intensity configured")
            elif self.spent_g + grams > self.co2_g:
                over.append(f"{grams:.4g} g CO2e predicted on {device} with {self.spent_g:.4g} g of {self.co2_g:.4g} g spent")
        if not over:
            return
        msg = f"energy budget ({self.source}): " + "; ".join(over) + f" (basis: {basis})"
        if self.action == "raise":
            raise EnergyBudgetError(msg + "; nothing was moved or run. Raise the budget or choose a cheaper device")
        if not self.warned:
            self.warned = True
            warnings.warn(msg, EnergyWarning, stacklevel=4)

    def spend(self, joules: float, grams: float | None) -> None:
        self.spent_joules += joules
        if grams is not None:
            self.spent_g += grams


_budgets: contextvars.ContextVar[tuple[Budget, ...]] = contextvars.ContextVar("hpcai_budgets", default=())


def _validate_budget(joules: Any, co2_g: Any, action: Any) -> None:
    for name, v in (("joules", joules), ("co2_g", co2_g)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
            raise InvalidArgumentError(f"energy.budget({name}=...): expected a positive number or None, got {v!r}")
    if joules is None and co2_g is None:
        raise InvalidArgumentError("energy.budget(): give joules=..., co2_g=... or both")
    if action not in ("raise", "warn"):
        raise InvalidArgumentError(f"energy.budget(action=...): expected 'raise' or 'warn', got {action!r}")


@contextmanager
def budget(*, joules: float | None = None, co2_g: float | None = None, action: str = "raise") -> Iterator[Budget]:
    """Cap the predicted energy / CO2 of the ``xp.run`` calls inside the block.

    A run whose predicted figures would pass the cap is refused before any byte moves
    (``action="raise"``, :class:`~hpcai.errors.EnergyBudgetError` stating the basis) or
    warned about once (``action="warn"``).

    >>> import hpcai as xp
    >>> with xp.energy.budget(joules=1e-9):
    ...     xp.run(xp.matmul, xp.ones((8, 8)), xp.ones((8, 8)), device="emulated:0")
    Traceback (most recent call last):
    hpcai.errors.EnergyBudgetError: ...
    """
    _validate_budget(joules, co2_g, action)
    b = Budget(None if joules is None else float(joules), None if co2_g is None else float(co2_g), action)
    token = _budgets.set(_budgets.get() + (b,))
    try:
        yield b
    finally:
        _budgets.reset(token)


def _config_budget() -> Budget | None:
    b = section().get("budget")
    if not b or ("joules" not in b and "co2_g" not in b):
        return None
    return Budget(b.get("joules"), b.get("co2_g"), b.get("action", "raise"), "[energy.budget] of the configuration")


_from_config: _config.Derived[list[Budget | None]] = _config.Derived(lambda: [_config_budget()])


def active_budgets() -> tuple[Budget, ...]:
    """The budgets that apply now: the configuration's, then every open ``budget()`` block."""
    cfg = _from_config.get()[0]
    blocks = _budgets.get()
    return (cfg, *blocks) if cfg is not None else blocks
