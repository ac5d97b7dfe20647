"""Recording what runs where: footprints, an analytic cost model, and ``xp.record()``.

Granularity: one **kernel call** — a call of a function through ``xp.run`` (or
:meth:`Recorder.measure`). The operation is the function (``matmul`` for ``xp.matmul``,
``module.qualname`` for user code), its footprint the dtypes and shapes of its array
arguments plus its scalar keywords. Nothing is added to the per-operation path of
:class:`~hpcai.Array`: when no ``xp.record()`` block is open, recording costs one context
variable read per ``xp.run`` call and nothing per array operation.

Inside ``with xp.record() as rec:`` every ``xp.run`` adds a :class:`Sample` (device, wall
seconds synchronised on JAX/CuPy, bytes and seconds moved from ``xp.transfers()``, flops
and bytes from the analytic model, BLAS threads and load average of the block) and feeds
the run-time history (:mod:`hpcai._history`), which is written when the block ends.
Emulated devices contribute modelled time only: their wall time is the host's.
"""

from __future__ import annotations

import contextvars
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._array import Array
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    pass

__all__ = ["Footprint", "Recorder", "Sample", "footprint", "record", "synchronize"]

_MATMUL = frozenset(
    {"matmul", "linalg.matmul", "tensordot", "linalg.tensordot", "vecdot", "linalg.vecdot"}
)
_REDUCE = frozenset(
    {
        "sum",
        "prod",
        "mean",
        "max",
        "min",
        "std",
        "var",
        "argmax",
        "argmin",
        "all",
        "any",
        "cumulative_sum",
        "cumulative_prod",
        "linalg.vector_norm",
        "linalg.matrix_norm",
    }
)
_FFT = frozenset(
    {
        "fft.fft",
        "fft.ifft",
        "fft.fftn",
        "fft.ifftn",
        "fft.rfft",
        "fft.irfft",
        "fft.rfftn",
        "fft.irfftn",
        "fft.hfft",
        "fft.ihfft",
    }
)


class Footprint:
    """What identifies a kernel call for history: operation, dtypes, shapes, keywords.

    ``flops`` and ``nbytes`` come from the analytic model (``modelled`` says whether a
    model for the operation exists; without one ``nbytes`` counts the arguments only).
    ``key`` (``op|dtypes|shapes|keywords``) names its history entry, ``group``
    (``op|dtypes``) the regression over sizes.
    """

    __slots__ = (
        "dtypes",
        "flops",
        "group",
        "key",
        "keywords",
        "modelled",
        "nbytes",
        "op",
        "shapes",
    )

    def __init__(
        self,
        op: str,
        dtypes: tuple[str, ...],
        shapes: tuple[tuple[int, ...], ...],
        keywords: str,
        flops: float,
        nbytes: float,
        modelled: bool,
    ) -> None:
        self.op = op
        self.dtypes = dtypes
        self.shapes = shapes
        self.keywords = keywords
        self.flops = flops
        self.nbytes = nbytes
        self.modelled = modelled
        self.group = f"{op}|{','.join(dtypes)}"
        shp = ";".join("x".join(map(str, sh)) for sh in shapes)
        self.key = f"{self.group}|{shp}|{keywords}"

    def __repr__(self) -> str:
        return f"Footprint({self.key!r}, flops={self.flops:g}, bytes={self.nbytes:g})"

    @property
    def work(self) -> float:
        """The regression variable: flops, or bytes for kernels without flops."""
        return self.flops if self.flops > 0 else self.nbytes


_names: dict[Any, str] = {}
_dtype_names: dict[Any, str] = {}


def op_name(fn: Callable[..., Any]) -> str:
    """The operation name of *fn*: ``matmul``, ``fft.fft``, or ``module.qualname`` for user code."""
    try:
        return _names[fn]
    except (KeyError, TypeError):
        pass
    mod = getattr(fn, "__module__", None) or ""
    qual = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    if mod.startswith("hpcai"):
        sub = mod.split(".")[1] if "." in mod else ""
        name = f"{sub}.{qual}" if sub in ("fft", "linalg", "special") else qual
    else:
        name = f"{mod}.{qual}" if mod else qual
    try:
        if len(_names) >= 4096:  # functions made on the fly (lambdas): keep the table bounded
            _names.clear()
        _names[fn] = name
    except TypeError:
        pass
    return name


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _analytic(
    op: str, shapes: Sequence[tuple[int, ...]], itemsizes: Sequence[int]
) -> tuple[float, float, bool]:
    """(flops, bytes, modelled) of *op* on arrays of *shapes* from a first-order model."""
    inb = float(sum(_size(s) * i for s, i in zip(shapes, itemsizes)))
    if not shapes:
        return 0.0, 0.0, False
    isz = max(itemsizes)
    if op in _MATMUL and len(shapes) >= 2:
        a, b = shapes[0], shapes[1]
        if op.endswith("vecdot"):
            n = max(_size(a), _size(b))
            return 2.0 * n, inb + n / max(a[-1] if a else 1, 1) * isz, True
        if len(a) >= 2 and len(b) >= 2:
            m, k, n = a[-2], a[-1], b[-1]
            batch = max(_size(a[:-2]), _size(b[:-2]), 1)
            return 2.0 * batch * m * n * k, inb + batch * m * n * isz, True
        if len(a) >= 1 and len(b) >= 1:
            n = max(_size(a), _size(b))
            return 2.0 * n, inb + n * isz, True
    if op in _FFT:
        n = _size(shapes[0])
        last = shapes[0][-1] if shapes[0] else 1
        f = 5.0 * n * math.log2(max(last, 2))
        if "rfft" in op or "hfft" in op:
            f *= 0.5
        return f, 2.0 * inb, True
    if op in _REDUCE:
        return float(_size(shapes[0])), inb, True
    if op.startswith(("hpcai.", "fft.", "linalg.", "special.")) or "." not in op:
        # an elementwise namespace function: one flop per output element
        n = max(_size(s) for s in shapes)
        return float(n), inb + n * isz, True
    return 0.0, inb, False


def describe(
    args: Sequence[Any], kwargs: Mapping[str, Any]
) -> tuple[tuple[tuple[Any, Any], ...], str]:
    """``((dtype, shape), ...)`` of the array arguments and the scalar keywords as text (cheap)."""
    descs = tuple([(a._data.dtype, a._data.shape) for a in args if isinstance(a, Array)])
    if not kwargs:
        return descs, ""
    descs += tuple(
        [(v._data.dtype, v._data.shape) for v in kwargs.values() if isinstance(v, Array)]
    )
    kw = ",".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()) if not isinstance(v, Array))
    return descs, kw


def footprint_of(op: str, descs: tuple[tuple[Any, Any], ...], kw: str) -> Footprint:
    """The :class:`Footprint` of *op* over arrays described by :func:`describe` (cached)."""
    ck = (op, descs, kw)
    fp = _fps.get(ck)
    if fp is None:
        names = []
        for d, _ in descs:
            n = _dtype_names.get(d)
            if n is None:
                n = _dtype_names[d] = d.name
            names.append(n)
        shapes = [tuple(int(n) for n in sh) for _, sh in descs]
        flops, nbytes, modelled = _analytic(op, shapes, [d.itemsize for d, _ in descs])
        if len(_fps) > 4096:
            _fps.clear()
        fp = _fps[ck] = Footprint(op, tuple(names), tuple(shapes), kw, flops, nbytes, modelled)
    return fp


def footprint(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Footprint:
    """The :class:`Footprint` of ``fn(*args, **kwargs)`` (no array is read)."""
    descs, kw = describe(args, kwargs)
    return footprint_of(op_name(fn), descs, kw)


#: Footprints by (op, dtypes, shapes, keywords): the analytic model runs once per footprint.
_fps: dict[tuple[Any, ...], Footprint] = {}

#: Run keys ``(op, descs, kw)`` by small number, and the numbers by key. A recorded run keeps
#: the number, so its raw tuple holds atoms only (see :class:`Recorder`). One entry per
#: distinct footprint recorded in the process, at most :data:`RUN_KEYS` of them.
_run_keys: list[tuple[str, tuple[tuple[Any, Any], ...], str]] = []
_run_ids: dict[tuple[Any, ...], int] = {}
_run_lock = threading.Lock()
#: Run keys interned at most (raw runs may refer to any, so none is ever dropped); past them a
#: run keeps its key itself (correct, only tracked by the garbage collector until settled).
RUN_KEYS = 1 << 16


def run_id(
    op: str, descs: tuple[tuple[Any, Any], ...], kw: str
) -> int | tuple[str, tuple[tuple[Any, Any], ...], str]:
    """The number of the run key ``(op, descs, kw)`` (interned once per key), or the key."""
    k = (op, descs, kw)
    i = _run_ids.get(k)
    if i is None:
        with _run_lock:
            i = _run_ids.get(k)
            if i is None:
                if len(_run_keys) >= RUN_KEYS:
                    return k
                i = len(_run_keys)
                _run_keys.append(k)
                _run_ids[k] = i
    return i


def synchronize(obj: Any) -> None:
    """Wait until the arrays in *obj* (an Array, or a tuple/list of them) are computed.

    JAX dispatches asynchronously (``block_until_ready``); CuPy runs on streams
    (the device is synchronised). NumPy and emulated arrays are ready already.
    """
    if isinstance(obj, (tuple, list)):
        for o in obj:
            synchronize(o)
        return
    if not isinstance(obj, Array):
        return
    obj._device._backend.synchronize(obj._device, obj._data)


@dataclass(frozen=True)
class Sample:
    """One recorded kernel call.

    ``seconds`` is the wall time (synchronised) on real devices and the modelled time on
    emulated ones; ``basis`` says which (``"measured"`` or ``"modelled"``).
    """

    op: str
    key: str
    device: str
    seconds: float
    basis: str
    flops: float
    nbytes: float
    moved_bytes: int
    move_seconds: float
    outlier: bool = False


class Recorder:
    """What one ``xp.record()`` block recorded (see :func:`record`).

    A run is kept as a raw tuple of atoms while the block is open (that is what recording
    costs per run): the number of its run key (:func:`run_id`), the device's name, the
    seconds, the modelled seconds, then (source, bytes, seconds) of each move, flattened. The
    garbage collector untracks a tuple of atoms at its first young-generation pass, so a long
    recording does not grow what every full collection scans. A nested tuple needs one pass
    per level (the collector's reachability walk puts the inner tuples after the outer ones):
    with the dtypes and shapes nested, the runs reached the oldest generation and a batch of
    20 000 recorded runs paid a full collection, ~3 us per run with JAX loaded. Footprints,
    :class:`Sample` objects and history samples are made from them when :attr:`samples` is
    read, when advice is asked for, and when the block ends.
    """

    __slots__ = ("_raw", "_samples", "context", "files", "history")

    def __init__(self, history: bool = True, context: dict[str, Any] | None = None) -> None:
        self.history = history
        self.context: dict[str, Any] = context or {}
        self.files: list[str] = []
        self._raw: list[tuple[Any, ...]] = []
        self._samples: list[Sample] = []

    @property
    def samples(self) -> list[Sample]:
        """The recorded runs, in order."""
        self._settle()
        return self._samples

    def __len__(self) -> int:
        return len(self._samples) + len(self._raw)

    def _settle(self) -> None:
        """Turn raw runs into samples and history (a no-op when nothing is pending)."""
        if not self._raw:
            return
        raw, self._raw = self._raw, []
        from ._history import MOVED_IN, store

        st = store() if self.history else None
        from ._device import resolve_device

        for rid, name, seconds, modelled, *flat in raw:
            fp = footprint_of(*(_run_keys[rid] if rid.__class__ is int else rid))
            # (source, bytes, seconds) of each whole move, in the order the call made them
            moves = [flat[i : i + 3] for i in range(0, len(flat), 3)]
            device = resolve_device(name)
            emulated = device._backend.simulated
            outlier = False
            if st is not None:
                if not emulated:  # an emulated device's wall time is the host's: never history
                    # a run on arguments just moved in is kept apart from runs on resident ones
                    key = MOVED_IN + fp.key if moves else fp.key
                    outlier = st.add_kernel(device.spec.name, key, seconds, fp.flops, fp.nbytes)
                # (source, bytes, seconds) of each whole move, in the order the call made them:
                # the first pays the call's fixed cost of moving and is kept apart
                for i, (src, nbytes, secs) in enumerate(moves):
                    if not emulated and not _simulated(src):
                        st.add_transfer(src, device.spec.name, nbytes, secs, i == 0)
            self._samples.append(
                Sample(
                    fp.op,
                    fp.key,
                    device.spec.name,
                    modelled if emulated and modelled is not None else seconds,
                    "modelled" if emulated else "measured",
                    fp.flops,
                    fp.nbytes,
                    sum(m[1] for m in moves),
                    sum(m[2] for m in moves),
                    outlier,
                )
            )

    def to_dict(self) -> dict[str, Any]:
        """Samples and context as plain data (JSON-ready)."""
        return {
            "context": self.context,
            "samples": [asdict(s) for s in self.samples],
            "history_files": self.files,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON to *path*."""
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), indent=1))
        return p

    def table(self) -> str:
        """The samples as a table people can read."""
        from ._advisor import format_table

        rows = [("op", "device", "ms", "basis", "moved bytes", "move ms", "outlier")]
        for s in self.samples:
            rows.append(
                (
                    s.op,
                    s.device,
                    f"{s.seconds * 1e3:.3f}",
                    s.basis,
                    f"{s.moved_bytes:,}",
                    f"{s.move_seconds * 1e3:.3f}",
                    "yes" if s.outlier else "",
                )
            )
        return format_table(rows)


_active: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar(
    "hpcai_record", default=None
)


def current() -> Recorder | None:
    """The innermost open recorder (``None`` when recording is off)."""
    return _active.get()


def _blas_threads() -> int | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    n = [int(i.get("num_threads", 0)) for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(n) if n else None


def host_context() -> dict[str, Any]:
    """Host conditions of a measurement: BLAS threads, load average, CPUs."""
    try:
        load: float | None = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "blas_threads": _blas_threads(),
        "load_1min": load,
        "cpus": os.cpu_count(),
        "time": time.time(),
    }


@contextmanager
def record(*, history: bool = True) -> Iterator[Recorder]:
    """Record every ``xp.run`` inside the block; with ``history=True`` also learn from it.

    >>> import hpcai as xp
    >>> with xp.record(history=False) as rec:
    ...     _ = xp.run(xp.add, xp.ones(3), xp.ones(3), device="numpy:cpu")
    >>> rec.samples[0].op, rec.samples[0].device, rec.samples[0].basis
    ('add', 'numpy:cpu', 'measured')
    """
    if not isinstance(history, bool):
        raise InvalidArgumentError(f"record(history=...): expected True or False, got {history!r}")
    rec = Recorder(history=history, context=host_context())
    token = _active.set(rec)
    try:
        yield rec
    finally:
        _active.reset(token)
        rec._settle()
        if history:
            from ._history import store

            rec.files = [str(p) for p in store().flush()]


def _simulated(name: str) -> bool:
    """Whether the device named *name* is simulated (its times are the host's, never history)."""
    from ._device import resolve_device
    from .errors import UnknownDeviceError

    try:
        return bool(resolve_device(name)._backend.simulated)
    except UnknownDeviceError:
        return False
