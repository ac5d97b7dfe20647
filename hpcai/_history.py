"""Run-time history per host and device, in the spirit of StarPU's sampling directory.

One versioned JSON file per device under ``<dir>/<host>/`` (``<dir>`` is
``$HPCAI_HISTORY_DIR``, else ``[advisor] history_dir``, else ``$XDG_CACHE_HOME/hpcai/history``).
Files are written atomically (a temporary file, then ``os.replace``) under an exclusive
lock file, merging what is on disk with what this process measured, so concurrent writers
lose nothing. A file that cannot be parsed is moved aside (``*.corrupt-<time>``) with a
warning and history starts afresh; a file of another format version is left alone.

Statistics are robust, and made to avoid StarPU's known traps:

* a prediction is the **median** of the last ``window`` samples, with the MAD as spread, so
  ten 1 ms samples and one 100 ms sample predict 1 ms (the 100 ms one is counted as an
  outlier, not averaged in);
* an entry that **keeps disagreeing** (``STREAK`` outliers in a row on the same side) is not
  trusted forever: it is flagged ``remeasure`` (``xp.run(device="auto")`` runs such a device
  to re-measure it), and when ``CONFIRMED`` outliers in a row confirm the new regime its
  older samples are dropped. Until then the old samples still predict, and a sample that
  agrees with them again clears the flag: a slow spell of a few seconds (this 2-core host
  has them) must not replace a window of good samples with its three slow ones;
* an entry whose median rose above twice its own best and which has not been sampled for
  ``stale_after`` seconds is flagged ``remeasure`` too, so one slow spell cannot starve a
  device for good (starpu#50);
* moves are kept **per size** (each byte count its own window, the least recently measured
  size dropped first), so many moves of large sizes never push a small size's moves out; a
  size not measured is interpolated between its two measured neighbours, never read off a
  line through every size (whose intercept the large sizes dominate);
* a **regression** ``log t = a + b log W`` (``W`` = flops, or bytes for memory-bound
  kernels) over an operation's footprints predicts unseen sizes, used only inside the range
  it was fitted on;
* there is no "not calibrated" warning: a prediction always states its basis instead.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import math
import os
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import _config
from .errors import ConfigError

__all__ = [
    "FORMAT",
    "VERSION",
    "DeviceHistory",
    "Entry",
    "HistoryStore",
    "HistoryWarning",
    "history_dir",
    "store",
]

FORMAT = "hpcai-history"
VERSION = 1
#: Samples kept per entry (the most recent).
WINDOW = 32
#: Samples before outliers are judged.
MIN_JUDGED = 5
#: Consecutive same-side outliers after which an entry is re-measured.
STREAK = 3
#: Samples of a new regime before the entry is trusted again.
MIN_TRUSTED = 5
#: Consecutive same-side outliers that confirm a new regime: the older samples are dropped.
CONFIRMED = STREAK + MIN_TRUSTED - 1
#: Prefix of the history key of a kernel footprint run right after (some of) its arguments were
#: moved onto the device: measured apart from runs on arguments already there (on the JAX
#: CPU devices, ``a * b + 1`` on 1000 float64 elements took ~0.1 ms on just-moved arguments
#: and ~0.03 ms on resident ones), and its own regression group.
MOVED_IN = "moved-in:"
#: Transfer samples kept per measured size, per (source, destination) (the most recent).
TRANSFER_WINDOW = 16
#: Measured sizes kept per (source, destination); the least recently measured is dropped.
TRANSFER_SIZES = 64


class HistoryWarning(UserWarning):
    """A history file was unusable (corrupt or of another version) and was set aside."""


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    h = n // 2
    return s[h] if n % 2 else 0.5 * (s[h - 1] + s[h])


class Entry:
    """The samples of one kernel footprint on one device, with robust statistics."""

    __slots__ = (
        "_basis",
        "_med",
        "best",
        "flops",
        "last",
        "n",
        "nbytes",
        "outliers",
        "remeasure",
        "remeasures",
        "samples",
        "spread",
        "streak",
    )

    def __init__(self, flops: float = 0.0, nbytes: float = 0.0) -> None:
        self.samples: list[float] = []
        self.n = 0
        self.outliers = 0
        self.streak = 0
        self.remeasure = False
        self.remeasures = 0
        self.best = math.inf
        self.last = 0.0
        self.flops = float(flops)
        self.nbytes = float(nbytes)
        self._med = math.nan
        self.spread = math.nan
        self._basis: str | None = None

    def _stats(self) -> None:
        self._basis = None
        s = self.samples
        if not s:
            self._med = self.spread = math.nan
            return
        med = _median(s)
        self._med = med
        self.spread = 1.4826 * _median([abs(x - med) for x in s]) if len(s) > 1 else 0.0

    @property
    def median(self) -> float:
        """Median of the recent samples (seconds); NaN without samples."""
        return self._med

    def add(self, seconds: float, when: float | None = None) -> bool:
        """Add one sample; return whether it was an outlier."""
        if not (seconds >= 0.0 and math.isfinite(seconds)):
            raise ValueError(
                f"history: a sample must be a finite number of seconds >= 0, got {seconds!r}"
            )
        s = self.samples
        outlier = False
        if len(s) >= MIN_JUDGED:
            med, spread = self._med, self.spread
            if abs(seconds - med) > max(5.0 * spread, 0.25 * med):
                outlier = True
                self.outliers += 1
                side = 1 if seconds > med else -1
                self.streak = self.streak + side if self.streak * side > 0 else side
            else:
                self.streak = 0
        run = abs(self.streak)
        if run == STREAK:
            # It keeps disagreeing: re-measure. The old regime still predicts until the new
            # one is confirmed: a spell of the host's noise (seconds long here) ends first.
            self.remeasure = True
            self.remeasures += 1
        elif run >= CONFIRMED:
            # Confirmed: only the new regime's samples are kept, and trusted.
            self.samples = s = s[-(run - 1) :]
            self.remeasure = False
            self.streak = 0
        elif run == 0 and self.remeasure and len(s) >= MIN_TRUSTED:
            self.remeasure = False  # it agrees again: that was a spell, the history stands
        s.append(float(seconds))
        if len(s) > WINDOW:
            del s[: len(s) - WINDOW]
        self.n += 1
        self.last = time.time() if when is None else when
        self._stats()
        if len(s) >= MIN_TRUSTED and not self.remeasure:
            self.best = min(self.best, self._med)
        return outlier

    @property
    def basis(self) -> str:
        """How a prediction from this entry was found, in words (made once per change)."""
        b = self._basis
        if b is None:
            b = self._basis = (
                f"history ({len(self.samples)} recent samples: median, spread {self.spread * 1e3:.3g} ms)"
            )
        return b

    def stale(self, now: float, stale_after: float) -> bool:
        """Whether this entry should be re-measured before it is trusted (see the module doc)."""
        if self.remeasure:
            return True
        return self._med > 2.0 * self.best and now - self.last > stale_after

    def stale_regardless_of_time(self) -> bool | None:
        """:meth:`stale` where the answer does not depend on the time; ``None`` where it does."""
        if self.remeasure:
            return True
        if self._med > 2.0 * self.best:
            return None
        return False

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "n": self.n,
            "outliers": self.outliers,
            "streak": self.streak,
            "remeasure": self.remeasure,
            "remeasures": self.remeasures,
            "best": None if math.isinf(self.best) else self.best,
            "last": self.last,
            "flops": self.flops,
            "bytes": self.nbytes,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Entry:
        e = cls(float(d.get("flops", 0.0)), float(d.get("bytes", 0.0)))
        e.samples = [float(x) for x in d["samples"]][-WINDOW:]
        e.n = int(d.get("n", len(e.samples)))
        e.outliers = int(d.get("outliers", 0))
        e.streak = int(d.get("streak", 0))
        e.remeasure = bool(d.get("remeasure", False))
        e.remeasures = int(d.get("remeasures", 0))
        best = d.get("best")
        e.best = math.inf if best is None else float(best)
        e.last = float(d.get("last", 0.0))
        e._stats()
        return e


class _Fit:
    """``log t = a + b log W`` over one operation's footprints, valid on ``[lo, hi]``."""

    __slots__ = ("a", "b", "basis", "hi", "lo", "points")

    def __init__(self, a: float, b: float, lo: float, hi: float, points: int) -> None:
        self.a, self.b, self.lo, self.hi, self.points = a, b, lo, hi, points
        #: How a prediction from this fit was found, in words (set by :meth:`DeviceHistory.fit`).
        self.basis = f"regression over {points} sizes (inside its fitted range)"

    def predict(self, w: float) -> float | None:
        if w <= 0 or not (self.lo <= w <= self.hi):
            return None
        return math.exp(self.a + self.b * math.log(w))


def _fit(entries: list[Entry]) -> _Fit | None:
    pts: dict[float, list[float]] = {}
    for e in entries:
        w = e.flops if e.flops > 0 else e.nbytes
        if w > 0 and e.samples and e.median > 0:
            pts.setdefault(w, []).append(e.median)
    if len(pts) < 3:
        return None
    xs = [math.log(w) for w in pts]
    ys = [math.log(_median(v)) for v in pts.values()]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return _Fit(my - b * mx, b, min(pts), max(pts), n)


class _Transfers:
    """Measured moves from one source device to this one, kept **per size** (as StarPU keeps
    its history per data size): each byte count has its own window of the last
    :data:`TRANSFER_WINDOW` seconds, and at most :data:`TRANSFER_SIZES` sizes are kept (the
    least recently measured size is dropped first). Moves of many large sizes therefore
    never push a small size's moves out, which a single window over all sizes did.

    A prediction is the median of the moves of that size; else, between two measured sizes,
    the straight line between their medians (exact for ``t = latency + bytes / bandwidth``,
    and local: the intercept is not dominated by the largest sizes as a fit over all sizes
    was); else, within 10 % beyond the smallest or largest measured size, that size's
    median; else nothing (the link model answers).
    """

    __slots__ = ("_predicted", "_sorted", "sizes")

    def __init__(self) -> None:
        #: seconds of the recent moves per byte count, least recently measured size first
        self.sizes: dict[int, list[float]] = {}
        self._sorted: list[int] | None = None
        self._predicted: dict[float, tuple[float, str] | None] = {}

    def add(self, nbytes: float, seconds: float) -> None:
        if not (nbytes >= 0 and math.isfinite(nbytes) and seconds >= 0.0 and math.isfinite(seconds)):
            raise ValueError(
                f"history: a move must be bytes >= 0 and finite seconds >= 0, got {nbytes!r}, {seconds!r}"
            )
        self._predicted.clear()
        b = int(nbytes)
        sizes = self.sizes
        s = sizes.pop(b, None)
        if s is None:
            s = []
            self._sorted = None
            if len(sizes) >= TRANSFER_SIZES:
                del sizes[next(iter(sizes))]  # the least recently measured size
        sizes[b] = s  # now the most recently measured
        s.append(float(seconds))
        if len(s) > TRANSFER_WINDOW:
            del s[0]

    @property
    def samples(self) -> list[tuple[int, float]]:
        """Every kept ``(bytes, seconds)``, least recently measured size first: adding them in
        this order rebuilds this state (that is how they are written and read)."""
        return [(b, t) for b, ts in self.sizes.items() for t in ts]

    def predict(self, nbytes: float) -> tuple[float, str] | None:
        """Seconds to move *nbytes*, and how it was found; ``None`` outside what was measured.

        Remembered per size until the next sample.
        """
        try:
            return self._predicted[nbytes]
        except KeyError:
            pass
        if len(self._predicted) >= 1024:
            self._predicted.clear()
        p = self._predicted[nbytes] = self._predict(nbytes)
        return p

    def _predict(self, nbytes: float) -> tuple[float, str] | None:
        sizes = self.sizes
        if not sizes:
            return None
        b = int(nbytes)
        s = sizes.get(b) if b == nbytes else None
        if s:
            return _median(s), f"history ({len(s)} moves of this size, median)"
        order = self._sorted
        if order is None:
            order = self._sorted = sorted(sizes)
        i = bisect.bisect_left(order, nbytes)
        if 0 < i < len(order):
            lo, hi = order[i - 1], order[i]
            slo, shi = sizes[lo], sizes[hi]
            tlo, thi = _median(slo), _median(shi)
            t = tlo + (thi - tlo) * (nbytes - lo) / (hi - lo)
            return t, (
                f"interpolated between moves of {lo:,} and {hi:,} bytes "
                f"({len(slo)} and {len(shi)} moves, medians)"
            )
        end = order[0] if i == 0 else order[-1]
        if abs(end - nbytes) <= 0.1 * max(nbytes, 1.0):
            s = sizes[end]
            return _median(s), f"history ({len(s)} moves of {end:,} bytes, within 10 % of this size, median)"
        return None


class DeviceHistory:
    """Everything recorded for one device on this host."""

    __slots__ = ("_fits", "_groups", "device", "entries", "later", "transfers")

    def __init__(self, device: str) -> None:
        self.device = device
        self.entries: dict[str, Entry] = {}
        #: by source: the first move of each call (it pays the call's fixed cost of moving,
        #: measured at 2x the next move of an 8 KB array on JAX CPU devices) ...
        self.transfers: dict[str, _Transfers] = {}
        #: ... and the second and later moves of a call (by source)
        self.later: dict[str, _Transfers] = {}
        self._groups: dict[str, list[Entry]] = {}
        self._fits: dict[str, _Fit | None] = {}

    def entry(self, key: str, group: str, flops: float, nbytes: float) -> Entry:
        e = self.entries.get(key)
        if e is None:
            e = self.entries[key] = Entry(flops, nbytes)
            self._groups.setdefault(group, []).append(e)
        self._fits.pop(group, None)
        return e

    def fit(self, group: str) -> _Fit | None:
        try:
            return self._fits[group]
        except KeyError:
            f = self._fits[group] = _fit(self._groups.get(group, []))
            if f is not None:
                f.basis = f"regression over {f.points} sizes of {group} (inside its fitted range)"
            return f

    def to_json(self, host: str) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "host": host,
            "device": self.device,
            "updated": time.time(),
            "kernels": {k: e.to_json() for k, e in self.entries.items()},
            "transfers": {src: [list(s) for s in t.samples] for src, t in self.transfers.items()},
            "later_transfers": {src: [list(s) for s in t.samples] for src, t in self.later.items()},
        }

    @classmethod
    def from_json(cls, device: str, doc: Any, where: str) -> DeviceHistory:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"{where}: not an hpcai history file (format {FORMAT!r} expected)")
        h = cls(device)
        for key, d in doc["kernels"].items():
            e = Entry.from_json(d)
            h.entries[key] = e
            h._groups.setdefault(_group_of(key), []).append(e)
        # files written before moves were told apart by their place in a call have every move
        # under "transfers" (read as first moves: pessimistic until newer samples replace them)
        for key, table in (("transfers", h.transfers), ("later_transfers", h.later)):
            for src, samples in doc.get(key, {}).items():
                t = table[src] = _Transfers()
                for b, s in samples:
                    t.add(b, s)
        return h


def _group_of(key: str) -> str:
    """The regression group of a footprint key: operation and dtypes (not shapes)."""
    return "|".join(key.split("|", 2)[:2])


def history_dir() -> Path:
    """Where history lives: ``$HPCAI_HISTORY_DIR``, ``[advisor] history_dir``, or the user cache."""
    env = os.environ.get("HPCAI_HISTORY_DIR")
    if env:
        return Path(env).expanduser()
    cfg = _config.get_config().section("advisor").get("history_dir")
    if cfg:
        return Path(str(cfg)).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hpcai" / "history"


def host_name() -> str:
    """This host's name as used in history paths (``[A-Za-z0-9._-]`` only)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in socket.gethostname()) or "host"


def _file_name(device: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in device) + ".json"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class HistoryStore:
    """The history of every device on this host, loaded lazily and written on :meth:`flush`.

    Samples added with :meth:`add_kernel` / :meth:`add_transfer` go into memory at once
    (predictions use them immediately) and are merged into the files by :meth:`flush`.
    """

    def __init__(self, directory: Path, host: str | None = None) -> None:
        self.directory = Path(directory)
        self.host = host or host_name()
        self._mem: dict[str, DeviceHistory] = {}
        self._pending: dict[str, list[tuple[Any, ...]]] = {}
        self._lock = threading.Lock()
        #: Bumped on every change (after it is made), so that predictions derived from the
        #: history can be cached: whoever changes entries directly bumps it too.
        self.version = 0

    def path(self, device: str) -> Path:
        """The history file of *device*."""
        return self.directory / self.host / _file_name(device)

    def _read(self, device: str) -> DeviceHistory:
        p = self.path(device)
        try:
            raw = p.read_text()
        except FileNotFoundError:
            return DeviceHistory(device)
        except OSError as exc:
            warnings.warn(
                f"{p}: cannot read run-time history ({exc}); starting without it",
                HistoryWarning,
                stacklevel=4,
            )
            return DeviceHistory(device)
        try:
            doc = json.loads(raw)
            if (
                isinstance(doc, dict)
                and doc.get("format") == FORMAT
                and doc.get("version") != VERSION
            ):
                warnings.warn(
                    f"{p}: history of format version {doc.get('version')!r}, this hpcai reads version {VERSION}; "
                    "it is left untouched and not used",
                    HistoryWarning,
                    stacklevel=4,
                )
                return DeviceHistory(device)
            return DeviceHistory.from_json(device, doc, str(p))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = p.with_name(f"{p.name}.corrupt-{int(time.time() * 1000)}")
            with contextlib.suppress(OSError):
                os.replace(p, aside)
            warnings.warn(
                f"{p}: corrupt run-time history ({type(exc).__name__}: {exc}); moved aside to {aside.name}, "
                "starting afresh",
                HistoryWarning,
                stacklevel=4,
            )
            return DeviceHistory(device)

    def device(self, device: str) -> DeviceHistory:
        """The in-memory history of *device* (read from its file on first use)."""
        h = self._mem.get(device)
        if h is None:
            with self._lock:
                h = self._mem.get(device)
                if h is None:
                    h = self._mem[device] = self._read(device)
                    self.version += 1
        return h

    def reload(self) -> None:
        """Forget what was read (pending samples are kept); files are read again on next use."""
        with self._lock:
            self._mem.clear()
            for device, pending in self._pending.items():
                h = self._mem[device] = self._read(device)
                _apply(h, pending)
            self.version += 1

    def add_kernel(
        self, device: str, key: str, seconds: float, flops: float, nbytes: float
    ) -> bool:
        """Record one run of a kernel footprint; returns whether it was an outlier."""
        when = time.time()
        rec = ("k", key, seconds, flops, nbytes, when)
        h = self.device(device)
        with self._lock:
            self._pending.setdefault(device, []).append(rec)
            try:
                return h.entry(key, _group_of(key), flops, nbytes).add(seconds, when)
            finally:
                self.version += 1  # after the change: advice cached meanwhile is dropped

    def add_transfer(
        self, source: str, destination: str, nbytes: int, seconds: float, first: bool = True
    ) -> None:
        """Record one measured move (kept in the destination's file); *first*: whether it was
        the first move of its call (the later ones are kept apart: see :class:`DeviceHistory`)."""
        h = self.device(destination)
        with self._lock:
            self._pending.setdefault(destination, []).append(("t", source, nbytes, seconds, first))
            (h.transfers if first else h.later).setdefault(source, _Transfers()).add(nbytes, seconds)
            self.version += 1  # after the change: advice cached meanwhile is dropped

    def flush(self) -> list[Path]:
        """Merge pending samples into the files (atomic, under a lock); return the files written."""
        with self._lock:
            pending, self._pending = self._pending, {}
        written = []
        for device, recs in pending.items():
            p = self.path(device)
            with _locked(p):
                h = self._read(device)
                _apply(h, recs)
                fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent)
                try:
                    with os.fdopen(fd, "w") as f:
                        json.dump(h.to_json(self.host), f)
                        f.flush()
                        os.fsync(f.fileno())
                    os.replace(tmp, p)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
            with self._lock:
                self._mem[device] = h
                later = self._pending.get(device)
                if later:
                    _apply(h, later)
                self.version += 1
            written.append(p)
        return written


def _apply(h: DeviceHistory, recs: list[tuple[Any, ...]]) -> None:
    for rec in recs:
        if rec[0] == "k":
            _, key, seconds, flops, nbytes, when = rec
            h.entry(key, _group_of(key), flops, nbytes).add(seconds, when)
        else:
            _, src, nbytes, seconds, first = rec
            (h.transfers if first else h.later).setdefault(src, _Transfers()).add(nbytes, seconds)


# --------------------------------------------------------------------------------------------
# the [advisor] configuration section and the process-wide store
# --------------------------------------------------------------------------------------------
_ADVISOR_KEYS = {
    "history_dir": "a directory path (string)",
    "stale_after": "seconds (number > 0) after which a slowed-down entry is re-measured",
    "host_flops": "peak FLOP/s of the host CPU for float64 (number > 0; float32 is twice that)",
    "host_memory_bandwidth": "bytes per second of host memory (number > 0)",
    "host_copy_latency": "seconds (number >= 0) of overhead per move between host devices",
}


def _validate_advisor(value: Any, where: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table, got {type(value).__name__} {value!r}")
    for k, v in value.items():
        if k not in _ADVISOR_KEYS:
            raise ConfigError(
                f"{where}: unknown key {key}.{k}; expected one of: {', '.join(sorted(_ADVISOR_KEYS))}"
            )
        if k == "history_dir":
            if not isinstance(v, str) or not v:
                raise ConfigError(f"{where}: {key}.{k} must be {_ADVISOR_KEYS[k]}, got {v!r}")
        elif (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or v < 0
            or (v == 0 and k != "host_copy_latency")
        ):
            raise ConfigError(f"{where}: {key}.{k} must be {_ADVISOR_KEYS[k]}, got {v!r}")
    return dict(value)


_config.register_section("advisor", _validate_advisor)


def _build_store() -> HistoryStore:
    return HistoryStore(history_dir())


def _flush_old() -> None:
    s = _store._value
    if s is not None:
        s.flush()


def _flush_before_reconfigure(old: Any, new: Any, via: str) -> None:
    """Samples recorded under the configuration being replaced are written first (the store is
    rebuilt for the new one: unwritten samples were lost). A failure to write warns and never
    refuses the change."""
    try:
        _flush_old()
    except OSError as exc:
        warnings.warn(
            HistoryWarning(f"hpcai: recorded history could not be written before reconfiguring ({exc}); those samples are lost"),
            stacklevel=3,
        )


_config.on_change(_flush_before_reconfigure)
_store: _config.Derived[HistoryStore] = _config.Derived(_build_store, on_reset=None)
_env_dir: list[str | None] = [os.environ.get("HPCAI_HISTORY_DIR")]


def store() -> HistoryStore:
    """The history store of the active configuration (and of ``$HPCAI_HISTORY_DIR``)."""
    env = os.environ.get("HPCAI_HISTORY_DIR")
    if env != _env_dir[0]:
        _env_dir[0] = env
        _flush_old()
        _store.reset()
    return _store.get()
