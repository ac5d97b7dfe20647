"""The placement advisor: ``xp.advise`` ranks devices for a kernel, ``xp.run`` runs it there.

For a call ``fn(*args)`` the advisor considers every device (or those given), and for each:

1. **may it?** — the residency policy's ``compute`` decision for the arguments' tags (a
   denied device is listed with the rule that denies it and never chosen), its dtype
   capability (float64 on an FP64-less device only under ``precision = "emulate"``,
   costed as the Ozaki products it will run) and its free memory;
2. **how long?** — compute seconds from, in order: the run-time history of this exact
   footprint (median of recent samples), a regression over the operation's other sizes
   (inside its fitted range only), a roofline of the device description; emulated devices
   are always modelled (their wall time is the host's). Transfer seconds for the arguments
   that are elsewhere: measured moves in the history, else the link cost model;
3. **what does it cost?** — joules = modelled power × predicted seconds; grams = joules ×
   the configured carbon intensity (× PUE), ``None`` where none is configured.

Every figure carries its basis. The devices are ranked by ``objective`` (``"time"``,
``"energy"`` or ``"co2"``); within 1 % of the best, the device already holding the data
wins. Moves done by ``xp.run`` are ordinary ``to_device`` moves: checked, audited, logged.
"""

from __future__ import annotations

import math
import operator
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from . import _config, _record, _tags
from ._array import Array
from ._device import Device, DeviceLike, all_devices, resolve_device
from ._history import MOVED_IN, Entry, HistoryStore, store
from .errors import InvalidArgumentError, PlacementError, ResidencyError
from .residency import current_policy

__all__ = ["OBJECTIVES", "Advice", "Row", "advise", "format_table", "run"]

OBJECTIVES = ("time", "energy", "co2")
#: Relative difference under which two devices tie (the one holding the data wins).
TIE = 0.01
_FP64 = frozenset({"float64", "complex128"})
_RATE_ORDER = ("complex128", "float64", "complex64", "float32", "float16", "bfloat16")


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart (the first row is the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


# --------------------------------------------------------------------------------------------
# per-device constants (rebuilt on configure)
# --------------------------------------------------------------------------------------------
#: Entries kept per device in each of :class:`_Dev`'s memo tables before it is emptied.
_FACTS_LIMIT = 4096
_NO_HISTORY = "; no history for this footprint"


class _Dev:
    """What the advisor needs of a device, computed once per configuration."""

    __slots__ = (
        "_dtypes",
        "_moves",
        "_roofs",
        "bw",
        "copy_latency",
        "dev",
        "emulated",
        "flops",
        "g_per_j",
        "grams_basis",
        "host_bw",
        "joules_basis",
        "kind",
        "launch",
        "name",
        "power_basis",
        "roof_basis",
        "watts",
    )

    def __init__(self, dev: Device, adv: Mapping[str, Any]) -> None:
        from .energy import carbon_intensity, power

        self.dev = dev
        self.name = dev.spec.name
        self.kind = dev.spec.kind
        self.emulated = dev._backend.simulated
        cost = dev.spec.cost
        cores = os.cpu_count() or 1
        host_flops = float(adv.get("host_flops", cores * 2.5e9 * 16))
        host_bw = float(adv.get("host_memory_bandwidth", 20e9))
        self.host_bw = host_bw
        self.copy_latency = float(adv.get("host_copy_latency", 20e-6))
        # facts of this configuration, kept across history changes (see the methods below)
        self._roofs: dict[tuple[str, bool, str], tuple[float, str]] = {}
        self._dtypes: dict[tuple[str, ...], tuple[bool, str | None]] = {}
        self._moves: dict[tuple[str, int], tuple[float, str]] = {}
        if cost.flops:
            self.flops = dict(cost.flops)
            self.bw = cost.memory_bandwidth
            self.launch = 5e-6
            self.roof_basis = f"roofline ({dev.spec.preset or 'device'} description)"
        else:
            self.flops = {
                "float64": host_flops,
                "complex128": host_flops / 2,
                "float32": 2 * host_flops,
                "complex64": host_flops,
                "float16": 2 * host_flops,
                "bfloat16": 2 * host_flops,
            }
            self.bw = host_bw
            self.launch = 2e-6 if dev.is_host else 10e-6
            src = "[advisor]" if "host_flops" in adv else "assumed"
            self.roof_basis = f"roofline (host CPU: {host_flops / 1e9:.0f} GFLOP/s fp64, {host_bw / 1e9:.0f} GB/s, {src})"
        p = power(dev)
        self.watts = p.watts
        self.power_basis = p.basis
        self.joules_basis = f"modelled: {p.watts:g} W ({p.basis}) × predicted seconds"
        inten = carbon_intensity(dev)
        self.g_per_j = None if inten.g_per_kwh is None else inten.g_per_kwh * inten.pue / 3.6e6
        self.grams_basis = inten.basis

    def roofline(
        self, fp: _record.Footprint, emulate_fp64: bool, note: str = ""
    ) -> tuple[float, str]:
        """:func:`_roofline` of *fp* here, its basis followed by *note* (memoised: it depends
        on the configuration only); an emulated device's basis says it is modelled."""
        key = (fp.key, emulate_fp64, note)
        hit = self._roofs.get(key)
        if hit is None:
            if len(self._roofs) >= _FACTS_LIMIT:
                self._roofs.clear()
            t, basis = _roofline(self, fp, emulate_fp64)
            if self.emulated:
                basis = "modelled, " + basis + "; emulated device: its wall time is the host's"
            hit = self._roofs[key] = (t, basis + note)
        return hit

    def dtype_support(self, dtypes: tuple[str, ...]) -> tuple[bool, str | None]:
        """``(emulate float64, reason the dtypes cannot run here or None)`` (memoised)."""
        hit = self._dtypes.get(dtypes)
        if hit is None:
            spec = self.dev.spec
            emulate = False
            reason = None
            for dt in dtypes:
                if dt not in spec.native_dtypes:
                    if dt in _FP64 and spec.precision == "emulate":
                        emulate = True
                    else:
                        hint = (
                            ' (set precision = "emulate" for it to run float64 through the Ozaki scheme)'
                            if dt in _FP64
                            else ""
                        )
                        reason = f"no native {dt}; precision = {spec.precision!r}{hint}"
                        break
            if len(self._dtypes) >= _FACTS_LIMIT:
                self._dtypes.clear()
            hit = self._dtypes[dtypes] = (emulate, reason)
        return hit

    def modelled_transfer(self, src: Device, nbytes: int) -> tuple[float, str]:
        """Modelled seconds to move *nbytes* from *src* here, and the basis naming the source."""
        key = (src.spec.name, nbytes)
        hit = self._moves.get(key)
        if hit is None:
            if src.spec.kind == "cpu" and self.kind == "cpu":
                sec = self.copy_latency + nbytes / self.host_bw
                basis = "modelled (host memory copy; no measured move of this size)"
            else:
                sec = src.spec.cost.transfer_seconds(nbytes) + self.dev.spec.cost.transfer_seconds(
                    nbytes
                )
                basis = "modelled (link cost model)"
            if len(self._moves) >= _FACTS_LIMIT:
                self._moves.clear()
            hit = self._moves[key] = (sec, f"{src}: {basis}")
        return hit


def _build_devs() -> dict[str, _Dev]:
    adv = _config.get_config().section("advisor")
    return {d.spec.name: _Dev(d, adv) for d in all_devices()}


_devs: _config.Derived[dict[str, _Dev]] = _config.Derived(_build_devs)


def _dev_info(dev: Device) -> _Dev:
    table = _devs.get()
    info = table.get(dev.spec.name)
    if info is None or info.dev is not dev:
        info = table[dev.spec.name] = _Dev(dev, _config.get_config().section("advisor"))
    return info


# --------------------------------------------------------------------------------------------
# the advice
# --------------------------------------------------------------------------------------------
class Row(NamedTuple):
    """One device in an :class:`Advice`: allowed with predictions, or excluded with the reason."""

    device: str
    allowed: bool
    excluded: str | None
    rule: str | None
    compute_seconds: float
    compute_basis: str
    transfer_seconds: float
    transfer_basis: str
    moved_bytes: int
    joules: float
    joules_basis: str
    grams: float | None
    grams_basis: str
    holds_data: bool
    remeasure: bool
    score: float

    @property
    def seconds(self) -> float:
        """Predicted compute + transfer seconds."""
        return self.compute_seconds + self.transfer_seconds


class Advice:
    """A ranked table of devices for one kernel call (see :func:`advise`).

    ``rows`` lists the allowed devices best first, then the excluded ones with the reason
    (and the rule, for a policy denial). ``choice`` is the chosen :class:`Device`.
    """

    __slots__ = ("footprint", "objective", "rows")

    def __init__(self, footprint: _record.Footprint, objective: str, rows: list[Row]) -> None:
        self.footprint = footprint
        self.objective = objective
        self.rows = rows

    @property
    def choice(self) -> Device:
        """The best allowed device; :class:`~hpcai.errors.PlacementError` when none is."""
        r = self.rows[0] if self.rows else None
        if r is None or not r.allowed:
            why = (
                "; ".join(f"{x.device}: {x.excluded}" for x in self.rows) or "no candidate devices"
            )
            cls = ResidencyError if self.rows and all(x.rule for x in self.rows) else PlacementError
            raise cls(f"advise({self.footprint.op}): no device may run this call ({why})")
        return resolve_device(r.device)

    @property
    def allowed(self) -> list[Row]:
        return [r for r in self.rows if r.allowed]

    @property
    def excluded(self) -> list[Row]:
        return [r for r in self.rows if not r.allowed]

    def row(self, device: DeviceLike) -> Row:
        """The row of *device*."""
        name = str(resolve_device(device))
        for r in self.rows:
            if r.device == name:
                return r
        raise InvalidArgumentError(
            f"Advice.row: {name} was not a candidate; candidates: {[r.device for r in self.rows]}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The advice as plain data (every figure with its basis)."""
        return {
            "op": self.footprint.op,
            "footprint": self.footprint.key,
            "flops": self.footprint.flops,
            "bytes": self.footprint.nbytes,
            "objective": self.objective,
            "choice": self.rows[0].device if self.rows and self.rows[0].allowed else None,
            "rows": [r._asdict() for r in self.rows],
        }

    def table(self) -> str:
        """The ranked devices as a table, with the basis of every figure below it."""
        head = ("rank", "device", "compute ms", "transfer ms", "joules", "g CO2e", "status")
        rows: list[Sequence[str]] = [head]
        notes = []
        for i, r in enumerate(self.rows, 1):
            if r.allowed:
                g = "n/a" if r.grams is None else f"{r.grams:.3g}"
                status = "chosen" if i == 1 else ("holds data" if r.holds_data else "")
                if r.remeasure:
                    status = (status + ", re-measure").lstrip(", ")
                rows.append(
                    (
                        str(i),
                        r.device,
                        f"{r.compute_seconds * 1e3:.4g}",
                        f"{r.transfer_seconds * 1e3:.4g}",
                        f"{r.joules:.3g}",
                        g,
                        status,
                    )
                )
                notes.append(
                    f"  {r.device}: compute {r.compute_basis}; transfer {r.transfer_basis}; "
                    f"energy {r.joules_basis}; CO2 {r.grams_basis}"
                )
            else:
                rows.append(("-", r.device, "-", "-", "-", "-", f"excluded: {r.excluded}"))
        head_line = f"advice for {self.footprint.key} (objective: {self.objective}); energy figures are modelled"
        return "\n".join([head_line, format_table(rows), "basis:", *notes])

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        choice = self.rows[0].device if self.rows and self.rows[0].allowed else None
        return f"<Advice {self.footprint.op}: {choice} of {len(self.rows)} devices, objective={self.objective}>"

    def plot(self, path: str | os.PathLike[str] | None = None) -> Any:
        """A bar chart of the ranked devices: time split (compute / transfer) and joules.

        Needs matplotlib (``pip install 'hpcai[plot]'``); returns the Figure, saved to
        *path* when given.
        """
        try:
            import matplotlib

            if path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("Advice.plot needs matplotlib: pip install 'hpcai[plot]'") from None
        rows = self.allowed
        names = [r.device for r in rows][::-1]
        comp = [r.compute_seconds * 1e3 for r in rows][::-1]
        tran = [r.transfer_seconds * 1e3 for r in rows][::-1]
        joules = [r.joules for r in rows][::-1]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 0.5 * len(rows) + 1.5), sharey=True)
        ax1.barh(names, comp, label="compute", color="#4C72B0")
        ax1.barh(names, tran, left=comp, label="transfer", color="#DD8452")
        ax1.set_xlabel("predicted ms")
        ax1.legend(loc="lower right")
        ax2.barh(names, joules, color="#55A868")
        ax2.set_xlabel("joules (modelled)")
        fig.suptitle(
            f"{self.footprint.op}: objective {self.objective}, choice {self.rows[0].device if rows else '-'}"
        )
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig


# --------------------------------------------------------------------------------------------
# predictions
# --------------------------------------------------------------------------------------------
def _rate_dtype(dtypes: Iterable[str]) -> str:
    ds = set(dtypes)
    for d in _RATE_ORDER:
        if d in ds:
            return d
    return "float32"


def _ozaki_products(k: int) -> int:
    """Exact low-precision products an Ozaki-II float64 product over inner dimension *k* runs."""
    from . import _ozaki

    for n in range(2, _ozaki.MAX_MODULI + 1):
        if _ozaki._ozaki2_bits(n, k) >= 56:  # 53 bits plus margin for the data-dependent factor
            return n
    return _ozaki.MAX_MODULI


def _roofline(info: _Dev, fp: _record.Footprint, emulate_fp64: bool) -> tuple[float, str]:
    rate_dt = _rate_dtype(fp.dtypes)
    if emulate_fp64:
        f32 = info.flops.get("float32", 0.0)
        if fp.op in _record._MATMUL and len(fp.shapes) >= 2 and fp.shapes[0]:
            n = _ozaki_products(fp.shapes[0][-1])
            t = max(n * fp.flops / f32, (n + 2) * fp.nbytes / info.bw) + info.launch * n
            return t, f"{info.roof_basis}: {n} Ozaki-II float32 products (precision = 'emulate')"
        t = max(8 * max(fp.flops, 1.0) / f32, 8 * fp.nbytes / info.bw) + info.launch
        return (
            t,
            f"{info.roof_basis}: float64 emulated as ~8 float32 operations per element (precision = 'emulate')",
        )
    rate = info.flops.get(rate_dt) or info.flops.get("float32") or 1e12
    t = max(fp.flops / rate, fp.nbytes / info.bw) + info.launch
    return t, info.roof_basis


def _compute_uncached(
    st: HistoryStore, info: _Dev, fp: _record.Footprint, emulate_fp64: bool, moved_in: bool = False
) -> tuple[float, str, Entry | None]:
    """Compute seconds, basis and history entry; *moved_in*: whether (some of) the arguments
    are moved onto the device first (runs on just-moved arguments are measured apart: the
    history of that case first, the other case's next)."""
    if info.emulated or emulate_fp64:
        t, basis = info.roofline(fp, emulate_fp64)
        return t, basis, None
    h = st.device(info.name)
    if h.entries:
        for moved in ((True, False) if moved_in else (False, True)):
            e = h.entries.get(MOVED_IN + fp.key if moved else fp.key)
            if e is not None and e.samples:
                return e.median, (_AFTER_MOVE + e.basis if moved else e.basis), e
        for moved in ((True, False) if moved_in else (False, True)):
            group = MOVED_IN + fp.group if moved else fp.group
            fit = h.fit(group)
            if fit is not None:
                t_fit = fit.predict(fp.work)
                if t_fit is not None:
                    return t_fit, fit.basis, None
    t, basis = info.roofline(fp, False, _NO_HISTORY)
    return t, basis, None


_AFTER_MOVE = "on arguments just moved in: "


def _transfer_uncached(
    st: HistoryStore, src: Device, dst: _Dev, nbytes: int, first: bool = True
) -> tuple[float, str]:
    """Seconds to move *nbytes* from *src* to *dst*, and the basis (``"<source>: <how>"``).

    *first*: whether it is the call's first move, which pays the call's fixed cost of moving;
    a later one is predicted from the later moves of calls, else (pessimistically) from the
    first ones."""
    if not (dst.emulated or src._backend.simulated):
        h = st.device(dst.name)
        if not first:
            t = h.later.get(src.spec.name)
            if t is not None:
                p = t.predict(nbytes)
                if p is not None:
                    return p[0], f"{src}, a later move in the call: {p[1]}"
        t = h.transfers.get(src.spec.name)
        if t is not None:
            p = t.predict(nbytes)
            if p is not None:
                return p[0], f"{src}: {p[1]}"
    return dst.modelled_transfer(src, nbytes)


def _arrays(args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Array]:
    out = [a for a in args if isinstance(a, Array)]
    if kwargs:
        out += [v for v in kwargs.values() if isinstance(v, Array)]
    return out


_resolved: dict[Any, list[Device]] = {}
_ALL_DEVICES = object()
#: The device table _resolved was filled from (held, so that a new table is never taken for it).
_resolved_for: list[Any] = [None]


def _candidates(devices: Iterable[DeviceLike] | None) -> list[Device]:
    """The candidate devices (resolved once per request and device table)."""
    table = _devs.get()
    if _resolved_for[0] is not table:
        _resolved.clear()
        _resolved_for[0] = table
    if devices is None:
        hit0 = _resolved.get(_ALL_DEVICES)
        if hit0 is None:
            # a device that places data by policy on a cluster (dask) is chosen explicitly, never
            # automatically: advice does not start or measure a cluster
            hit0 = _resolved[_ALL_DEVICES] = [
                d for d in all_devices() if not d._backend.places_by_tags
            ]
        return hit0
    if isinstance(devices, (list, tuple)):
        try:
            hit = _resolved.get(tuple(devices))
        except TypeError:
            hit = None
        if hit is not None:
            return hit
    if isinstance(devices, (str, Device)):
        raise InvalidArgumentError(
            f"advise(devices=...): expected a list of devices, got the single device {devices!r}"
        )
    out = [resolve_device(d) for d in devices]
    if not out:
        raise InvalidArgumentError(
            "advise(devices=[]): give at least one candidate device (or None for all)"
        )
    if isinstance(devices, (list, tuple)) and all(isinstance(d, (str, Device)) for d in devices):
        if len(_resolved) > 256:
            _resolved.clear()
        _resolved[tuple(devices)] = out
    return out


# --------------------------------------------------------------------------------------------
# what advice is derived from, and its caches
# --------------------------------------------------------------------------------------------
#: Per candidate (see :func:`_facts`): device, its facts, name, float64 emulated, dtype
#: exclusion, prediction key, memory capacity, and the compute prediction where it depends
#: on the configuration alone (emulated devices, emulated float64), else None.
_Fact = tuple[
    Device,
    _Dev,
    str,
    bool,
    "str | None",
    tuple[str, str, bool],
    "int | None",
    "tuple[float, str, Entry | None, bool | None] | None",
]


class _State:
    """The history store, its version, the configuration and the residency policy that
    cached advice was derived from, with those caches.

    A change of any of the four (a sample arrives, a history file is read, ``xp.configure``,
    a new policy) makes :func:`_advise` start a fresh state, so nothing derived from the old
    ones is used again. The four are held by reference, never by ``id``: a replaced object
    cannot be mistaken for its successor at the same address. Facts derived from the
    configuration alone (rooflines, dtype capability, modelled moves) live on the
    per-configuration :class:`_Dev` objects and survive history changes.
    """

    __slots__ = (
        "candidates",
        "config",
        "facts",
        "memo",
        "moves",
        "policy",
        "predictions",
        "store",
        "version",
    )

    def __init__(
        self, st: HistoryStore | None, cfg: Any, pol: Any, previous: _State | None = None
    ) -> None:
        self.store = st
        self.version = -1 if st is None else st.version
        self.config = cfg
        self.policy = pol
        #: whole advice by call signature: (footprint, rows, memory checks, time-dependent checks)
        self.memo: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        #: compute predictions by (device, footprint key, float64 emulated[, True: the arguments
        #: are moved in]): seconds, basis,
        #: the history entry and its staleness where that does not depend on the time
        self.predictions: dict[
            tuple[Any, ...], tuple[float, str, Entry | None, bool | None]
        ] = {}
        #: transfer predictions: by (destination, (source, bytes), first move of the call) for
        #: one move, and by (destination, ((source, bytes), ...)) for all of a call's arguments
        self.moves: dict[tuple[Any, ...], tuple[float, str]] = {}
        #: the candidate devices and their facts, by the ``devices`` argument (a tuple or None),
        #: and per (footprint key, ``devices`` argument) what :func:`_facts` says: both derived
        #: from the configuration alone, so kept from the previous state where only the
        #: history changed
        self.candidates: dict[Any, list[tuple[Device, _Dev]]]
        self.facts: dict[tuple[str, Any], list[_Fact]]
        if previous is not None and previous.config is cfg and previous.policy is pol:
            self.candidates, self.facts = previous.candidates, previous.facts
        else:
            self.candidates, self.facts = {}, {}


_current_state = _State(None, None, None)
#: Memoised advice kept per state before the memo is emptied (distinct call signatures).
MEMO_LIMIT = 4096
_UNKEYED = object()
_op_names = _record._names


def _renew(st: HistoryStore, cfg: Any, pol: Any) -> _State:
    global _current_state
    s = _current_state = _State(st, cfg, pol, _current_state)
    return s


def _kw_signature(kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """The keywords' part of a memo key: array keywords as arrays are, the others by ``repr``
    (which is what their footprint records)."""
    return tuple(
        [
            (
                k,
                (v._data.dtype, v._data.shape, v._device.spec.name, v._tags)
                if isinstance(v, Array)
                else repr(v),
            )
            for k, v in kwargs.items()
        ]
    )


def _advise(
    fn: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    objective: str,
    devices: Iterable[DeviceLike] | None,
) -> Advice:
    if objective not in OBJECTIVES:
        raise InvalidArgumentError(
            f"advise(objective=...): expected one of {', '.join(OBJECTIVES)}, got {objective!r}"
        )
    if not callable(fn):
        raise InvalidArgumentError(
            f"advise(fn, ...): expected a callable, got {type(fn).__name__} {fn!r}"
        )
    rec = _record._active.get()
    if rec is not None and rec._raw:
        rec._settle()  # runs recorded so far count
    st = store()
    cfg = _config.get_config()
    pol = current_policy()
    s = _current_state
    if s.version != st.version or s.store is not st or s.config is not cfg or s.policy is not pol:
        s = _renew(st, cfg, pol)
    # The whole advice is memoised per state, by what it depends on besides the state: the
    # operation, the dtypes, shapes, devices and tags of the array arguments, the keywords,
    # the objective and the candidates. A hit is re-checked for what changes within a state:
    # the free memory of emulated devices and re-measure flags that depend on the time.
    if devices is None:
        dkey: Any = None
    elif type(devices) is list or type(devices) is tuple:
        dkey = tuple(devices)
    else:
        dkey = _UNKEYED  # an iterator (read once) or a mistake that _candidates names
    key: tuple[Any, ...] | None = None
    if dkey is not _UNKEYED:
        try:  # the operation's name, not the function: a key holds no closure alive
            op = _op_names[fn]
        except (KeyError, TypeError):
            op = _record.op_name(fn)
        sig = [op, objective, dkey]
        for a in args:
            if isinstance(a, Array):
                d = a._data
                sig += (d.dtype, d.shape, a._device.spec.name, a._tags)
        if kwargs:
            sig.append(_kw_signature(kwargs))
        key = tuple(sig)
        try:
            memo = s.memo.get(key)
        except TypeError:  # an unhashable device or keyword: no memo
            key = memo = None
            dkey = _UNKEYED
        if memo is not None:
            fp, rows, mem_checks, timed = memo
            ok = True
            if mem_checks:
                for dev, need, was in mem_checks:
                    if (
                        need > dev.spec.memory - int(dev._backend.memory_used(dev) or 0)
                    ) is not was:
                        ok = False
                        break
            if ok and timed:
                now = time.time()
                stale_after = float(cfg.section("advisor").get("stale_after", 600.0))
                ok = all(e.stale(now, stale_after) is flag for e, flag in timed)
            if ok:
                return Advice(fp, objective, list(rows))
    fp = _record.footprint(fn, args, kwargs)
    cands = s.candidates.get(dkey) if dkey is not _UNKEYED else None
    if cands is None:
        cands = [(dev, _dev_info(dev)) for dev in _candidates(devices)]
        if dkey is not _UNKEYED:
            if len(s.candidates) >= 256:
                s.candidates.clear()
            s.candidates[dkey] = cands
    rows, mem_checks, timed = _rank(
        st, s, fp, args, kwargs, objective, _facts(s, fp, dkey, cands), pol, cfg
    )
    if key is not None:
        if len(s.memo) >= MEMO_LIMIT:
            s.memo.clear()
        s.memo[key] = (fp, rows, mem_checks, timed)
    return Advice(fp, objective, list(rows))


def _facts(
    s: _State, fp: _record.Footprint, dkey: Any, cands: list[tuple[Device, _Dev]]
) -> list[_Fact]:
    """Per candidate, what depends on neither the history, nor where the arguments are,
    nor their tags, nor the objective (see :data:`_Fact`)."""
    key = (fp.key, dkey)
    facts = s.facts.get(key) if dkey is not _UNKEYED else None
    if facts is None:
        facts = []
        for dev, info in cands:
            emulate, reason = info.dtype_support(fp.dtypes)
            fixed = None
            if reason is None and (info.emulated or emulate):  # modelled, never from history
                t, basis = info.roofline(fp, emulate)
                fixed = (t, basis, None, False)
            ckey = (info.name, fp.key, emulate)
            facts.append((dev, info, info.name, emulate, reason, ckey, dev.spec.memory, fixed))
        if dkey is not _UNKEYED:
            if len(s.facts) >= MEMO_LIMIT:
                s.facts.clear()
            s.facts[key] = facts
    return facts


def _rank(
    st: HistoryStore,
    s: _State,
    fp: _record.Footprint,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    objective: str,
    facts: list[_Fact],
    pol: Any,
    cfg: Any,
) -> tuple[tuple[Row, ...], list[tuple[Device, int, bool]], list[tuple[Entry, bool]]]:
    """The rows of an advice, best first, and what a memo hit must re-check."""
    # where the data is: bytes per source device (the holder has the most), and its tags
    tags: _tags.TagSet | None = None
    where: dict[str, int] = {}
    sizes: list[tuple[Device, int, tuple[str, int]]] = []
    for a in _arrays(args, kwargs):
        at = a._tags
        if at is not None:
            tags = _tags.union(tags, at)
        nb = int(a._data.nbytes)
        src = a._device
        name = src.spec.name
        where[name] = where.get(name, 0) + nb
        sizes.append((src, nb, (name, nb)))
    check_policy = bool(pol.rules) and (tags is not None or pol.untagged_covered)
    holder = (
        (next(iter(where)) if len(where) == 1 else max(where, key=where.__getitem__))
        if where
        else None
    )
    in_bytes = sum(where.values())
    out_bytes = max(int(fp.nbytes) - in_bytes, 0)
    msig = tuple([m[2] for m in sizes])
    stale_after = float(cfg.section("advisor").get("stale_after", 600.0))
    now = time.time()
    preds = s.predictions
    moves = s.moves
    mem_checks: list[tuple[Device, int, bool]] = []
    timed: list[tuple[Entry, bool]] = []
    allowed: list[Row] = []
    excluded: list[Row] = []
    for dev, info, name, emulate, reason, ckey, capacity, fixed in facts:
        rule = None
        if check_policy:
            d = pol.decide_device("compute", tags, dev)
            if not d.allowed:
                reason, rule = f"denied by rule {d.rule!r}: {d.reason}", d.rule
        here = where.get(name, 0)
        incoming = in_bytes - here
        if capacity is not None and reason is None:
            used = 0
            need = incoming + out_bytes
            if info.emulated:
                used = int(dev._backend.memory_used(dev) or 0)
                mem_checks.append((dev, need, need > capacity - used))
            if need > capacity - used:
                reason = f"capacity: needs {need:,} bytes, {capacity - used:,} of {capacity:,} free"
        if reason is not None:
            excluded.append(
                _new_row(
                    Row,
                    (
                        name,
                        False,
                        reason,
                        rule,
                        math.nan,
                        "",
                        math.nan,
                        "",
                        0,
                        math.nan,
                        "",
                        None,
                        "",
                        name == holder,
                        False,
                        math.inf,
                    ),
                )
            )
            continue
        # runs on just-moved arguments are predicted apart
        pkey: tuple[Any, ...] = (*ckey, True) if incoming and fixed is None else ckey
        hit = fixed or preds.get(pkey)
        if hit is None:
            t, basis, entry = _compute_uncached(st, info, fp, emulate, bool(incoming))
            # an entry changes only with the history (a new state): its time-free staleness holds
            hit = preds[pkey] = (
                t,
                basis,
                entry,
                None if entry is None else entry.stale_regardless_of_time(),
            )
        comp, cbasis, entry, stale = hit
        if stale is None:
            stale = False
            if entry is not None:
                stale = entry.stale(now, stale_after)
                timed.append((entry, stale))
        tsec = 0.0
        tbasis = "none (data already there)"
        if incoming:
            # one move per array argument not on this device, in order, as xp.run makes them
            # (the first pays the call's fixed cost); with no argument on a device of this
            # name, every one moves and the sum is remembered
            mkey = (name, msig) if not here else None
            mv = moves.get(mkey) if mkey is not None else None
            if mv is None:
                bases: dict[str, None] = {}
                first = True
                for src, nb, skey in sizes:
                    if src is not dev:
                        tkey = (name, skey, first)
                        m = moves.get(tkey)
                        if m is None:
                            m = moves[tkey] = _transfer_uncached(st, src, info, nb, first)
                        first = False
                        tsec += m[0]
                        bases[m[1]] = None
                mv = (tsec, "; ".join(bases))
                if mkey is not None:
                    moves[mkey] = mv
            tsec, tbasis = mv
        joules = info.watts * (comp + tsec)
        grams = None if info.g_per_j is None else joules * info.g_per_j
        score = (
            comp + tsec
            if objective == "time"
            else joules
            if objective == "energy"
            else (math.inf if grams is None else grams)
        )
        allowed.append(
            _new_row(
                Row,
                (
                    name,
                    True,
                    None,
                    None,
                    comp,
                    cbasis,
                    tsec,
                    tbasis,
                    incoming,
                    joules,
                    info.joules_basis,
                    grams,
                    info.grams_basis,
                    name == holder,
                    stale,
                    score,
                ),
            )
        )
    allowed.sort(key=_score)
    if allowed:
        best = allowed[0].score
        if math.isfinite(best):
            for i, r in enumerate(allowed):
                if r.score > best * (1 + TIE):
                    break
                if r.holds_data:
                    if i:
                        allowed.insert(0, allowed.pop(i))
                    break
    return (*allowed, *excluded), mem_checks, timed


_score = operator.attrgetter("score")
#: Row construction without NamedTuple's Python-level ``__new__`` (rows are built per device).
_new_row = tuple.__new__


def advise(
    fn: Callable[..., Any],
    *args: Any,
    objective: str = "time",
    devices: Iterable[DeviceLike] | None = None,
    **kwargs: Any,
) -> Advice:
    """Rank the devices for ``fn(*args, **kwargs)`` by predicted time, energy or CO2.

    Nothing runs and nothing moves. Denied devices are listed with the rule that denies
    them; every figure says its basis (history, regression, roofline, modelled).

    >>> import hpcai as xp
    >>> a = xp.ones((256, 256))
    >>> adv = xp.advise(xp.matmul, a, a, devices=["numpy:cpu", "emulated:0"])
    >>> sorted(r.device for r in adv.rows)
    ['emulated:0', 'numpy:cpu']
    """
    return _advise(fn, args, kwargs, objective, devices)


def _move_args(
    args: Sequence[Any], kwargs: dict[str, Any], dev: Device
) -> tuple[list[Any], dict[str, Any], int, float, list[tuple[str, int, float]]]:
    """Move the array arguments that are elsewhere; each move is timed whole (call to ready)."""
    if not any(isinstance(a, Array) and a._device is not dev for a in (*args, *kwargs.values())):
        return list(args), kwargs, 0, 0.0, []
    moves: list[tuple[str, int, float]] = []

    def move(a: Any) -> Any:
        if not isinstance(a, Array) or a._device is dev:
            return a
        t0 = time.perf_counter()
        y = a.to_device(dev)
        _record.synchronize(y)
        moves.append((a._device.spec.name, int(a._data.nbytes), time.perf_counter() - t0))
        return y

    new_args = [move(a) for a in args]
    new_kw = {k: move(v) for k, v in kwargs.items()}
    return new_args, new_kw, sum(m[1] for m in moves), sum(m[2] for m in moves), moves


def run(
    fn: Callable[..., Any],
    *args: Any,
    device: DeviceLike = "auto",
    objective: str = "time",
    devices: Iterable[DeviceLike] | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``fn(*args, **kwargs)`` on *device*, or with ``device="auto"`` on :func:`advise`'s choice.

    Array arguments elsewhere are moved with ``to_device`` (policy-checked, audited, seen by
    ``xp.transfers()``) — after every active energy budget accepted the prediction. Inside
    ``xp.record()`` the call is recorded and its time feeds the history; a device whose
    history asks to be re-measured is run once more instead of the choice.

    >>> import hpcai as xp
    >>> float(xp.run(xp.sum, xp.ones(10), device="auto"))
    10.0
    """
    from .energy._track import active_budgets, note_run

    rec = _record._active.get()
    row: Row | None = None
    if isinstance(device, str) and device == "auto":
        adv = _advise(fn, args, kwargs, objective, devices)
        dev = adv.choice
        row = adv.rows[0]
        if rec is not None and rec.history:
            for r in adv.rows:
                if r.allowed and r.remeasure:
                    row, dev = r, resolve_device(r.device)
                    break
    else:
        if devices is not None:
            raise InvalidArgumentError("run(devices=...) is only for device='auto'")
        dev = resolve_device(device)
    budgets = active_budgets()
    if budgets:
        if row is None:
            row = _advise(fn, args, kwargs, objective, [dev]).rows[0]
        if row.allowed:
            for b in budgets:
                b.check(
                    dev.spec.name,
                    row.joules,
                    row.grams,
                    f"{row.joules_basis}; compute {row.compute_basis}",
                )
    new_args, new_kw, _, _, logged = _move_args(args, kwargs, dev)
    t0 = time.perf_counter()
    out = fn(*new_args, **new_kw)
    _record.synchronize(out)
    secs = time.perf_counter() - t0
    emulated = dev._backend.simulated
    modelled: float | None = None
    if emulated or rec is not None:
        descs, kw = _record.describe(new_args, new_kw)
        if emulated:
            fp = _record.footprint_of(_record.op_name(fn), descs, kw)
            emul64 = any(d in _FP64 and d not in dev.spec.native_dtypes for d in fp.dtypes)
            modelled = _roofline(_dev_info(dev), fp, emul64)[0]
        if rec is not None:
            # atoms only, no nested tuple (see Recorder): the moves follow, flattened
            rid = _record.run_id(_record.op_name(fn), descs, kw)
            if logged:
                rec._raw.append((rid, dev.spec.name, secs, modelled, *[x for m in logged for x in m]))
            else:
                rec._raw.append((rid, dev.spec.name, secs, modelled))
    busy = modelled if modelled is not None else secs
    note_run(dev, busy)
    if budgets:
        info = _dev_info(dev)
        j = info.watts * busy
        g = None if info.g_per_j is None else j * info.g_per_j
        for b in budgets:
            b.spend(j, g)
    return out
