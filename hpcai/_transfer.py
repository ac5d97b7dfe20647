"""Movement: the one path data takes between devices, measured, checked and recorded.

``Array.to_device``, ``xp.asarray(..., device=)``, ``xp.from_dlpack(..., device=)`` and
DLPack exports all end up in :func:`move`. It checks ``xp.transfers(forbid=True)``, asks
the residency guard (installed by :mod:`hpcai.residency`) before any byte moves, takes the
direct path where the backend has one and otherwise goes through host memory, and
records source, destination, bytes, wall and modelled seconds in every active
``xp.transfers()`` log.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError, TransferForbiddenError

if TYPE_CHECKING:
    from ._array import Array
    from ._device import Device

__all__ = ["Transfer", "TransferLog", "move", "transfers"]


@dataclass(frozen=True)
class Transfer:
    """One movement of data between two devices."""

    source: str
    destination: str
    nbytes: int
    wall_seconds: float
    modelled_seconds: float
    path: str  # "direct", "host", "zero-copy", "placed" (a backend that places by tags: dask)
    op: str  # "to_device", "asarray", "from_dlpack", "__dlpack__", ...


class TransferLog:
    """The movements recorded inside one ``with xp.transfers() as log:`` block."""

    __slots__ = ("_records", "forbid")

    def __init__(self, forbid: bool = False) -> None:
        self._records: list[Transfer] = []
        self.forbid = forbid

    def __iter__(self) -> Iterator[Transfer]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, i: int) -> Transfer:
        return self._records[i]

    @property
    def total_bytes(self) -> int:
        return sum(r.nbytes for r in self._records)

    @property
    def wall_seconds(self) -> float:
        return sum(r.wall_seconds for r in self._records)

    @property
    def modelled_seconds(self) -> float:
        return sum(r.modelled_seconds for r in self._records)

    def table(self) -> str:
        """A human-readable table of the recorded movements."""
        rows = [("op", "source", "destination", "bytes", "path", "wall ms", "modelled ms")]
        for r in self._records:
            rows.append(
                (
                    r.op,
                    r.source,
                    r.destination,
                    f"{r.nbytes:,}",
                    r.path,
                    f"{r.wall_seconds * 1e3:.3f}",
                    f"{r.modelled_seconds * 1e3:.3f}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows)

    def __repr__(self) -> str:
        return f"<TransferLog: {len(self)} transfers, {self.total_bytes:,} bytes>"


_active: contextvars.ContextVar[tuple[TransferLog, ...]] = contextvars.ContextVar("hpcai_transfers", default=())

_gates: Any = None


def _residency() -> Any:
    """hpcai.residency's decision functions (imported on first use: it imports this module)."""
    global _gates
    if _gates is None:
        from .residency import _guards

        _gates = _guards
    return _gates


def check_export(x: Array, op: str, dl_device: Any = None) -> None:
    """The one export decision: before values of *x* leave hpcai (``__array__``, DLPack,
    scalar conversion, pickling, pytree flatten, writes into a caller's buffer).

    Decides under the active policy, records covered decisions in the audit log and raises
    :class:`~hpcai.errors.ResidencyError` on refusal; free when no rule can cover *x*.
    """
    _residency().settle_export(x, op, dl_device)


def export_refused(x: Array) -> bool:
    """Whether the policy refuses to let *x*'s values leave hpcai (a pure decision: nothing is
    recorded). Used where values would leave as text (``repr``), to redact them."""
    from .residency import current_policy

    pol = current_policy()
    if not pol.rules or (x._tags is None and not pol.untagged_covered):
        return False
    return not pol.decide_device("export", x._tags, x._device).allowed


@contextmanager
def transfers(*, forbid: bool = False) -> Iterator[TransferLog]:
    """Record (or, with ``forbid=True``, refuse) every data movement inside the block.

    >>> import hpcai as xp
    >>> x = xp.ones(1000)
    >>> with xp.transfers() as log:
    ...     y = x.to_device("emulated:0")
    >>> log[0].nbytes
    8000
    >>> with xp.transfers(forbid=True):
    ...     x.to_device("emulated:1")
    Traceback (most recent call last):
    hpcai.errors.TransferForbiddenError: ...
    """
    log = TransferLog(forbid)
    token = _active.set(_active.get() + (log,))
    try:
        yield log
    finally:
        _active.reset(token)


def _forbidding() -> bool:
    """Whether an open ``xp.transfers(forbid=True)`` block forbids moves here."""
    return any(log.forbid for log in _active.get())


def _check_forbidden(src: Device, dst: Device, native: Any, op: str) -> None:
    if _forbidding():
        raise TransferForbiddenError(
            f"{op}: moving {_nbytes(native):,} bytes from {src} to {dst} inside "
            "xp.transfers(forbid=True); remove the move or the forbid block"
        )


def _record(rec: Transfer) -> None:
    for log in _active.get():
        log._records.append(rec)


def _nbytes(native: Any) -> int:
    n = getattr(native, "nbytes", None)
    return int(n) if n is not None else 0


def check_move(x: Array, src: Device, dst: Device, op: str) -> None:
    """Everything that must hold before a move starts: forbid blocks and residency policy."""
    _check_forbidden(src, dst, x._data, op)
    _residency().settle_move(x, src, dst, op)


def _stream_kwargs(op: str, src: Device, dst: Device, stream: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``stream=`` keyword for each side of a move, for backends that honour streams.

    Backends whose ``supports_stream`` capability is true (CuPy) take ``stream=`` in
    ``transfer``, ``to_host`` and ``from_host``; a stream for a move between devices
    that have no streams is an error rather than silently ignored.
    """
    if stream is None:
        return {}, {}
    src_ok = src._backend.supports_stream
    dst_ok = dst._backend.supports_stream
    if not (src_ok or dst_ok):
        raise InvalidArgumentError(
            f"{op}: stream={stream!r} was given for a move from {src} to {dst}, but neither device "
            "has streams (their backends do not support them; CuPy devices do); pass stream=None"
        )
    return ({"stream": stream} if src_ok else {}), ({"stream": stream} if dst_ok else {})


def move(x: Array, dst: Device, *, op: str, copy: bool | None = None, stream: Any = None) -> Array:
    """Move *x* to *dst* (the single movement path). ``copy=False`` forbids copying."""
    from ._array import _wrap

    src = x._device
    if dst is src:
        if copy:
            return _wrap(src._backend.create(src, "asarray", x._data, copy=True), src, x._tags)
        return x
    if copy is False:
        raise InvalidArgumentError(
            f"{op}: copy=False but the data lives on {src} and was asked for on {dst}; "
            "a move between devices needs a copy (pass copy=None or True)"
        )
    src_kw, dst_kw = _stream_kwargs(op, src, dst, stream)
    native = x._data
    prepared = None
    if src._backend.places_by_tags and not dst._backend.places_by_tags and not _forbidding():
        # a cluster may start computing the result where the data lives while the move is
        # decided and audited below; nothing reaches dst before check_move has passed
        prepared = src._backend.prepare_move(native, src, dst, x._tags)
    try:
        check_move(x, src, dst, op)
    except BaseException:
        if prepared is not None:
            src._backend.cancel_prepared(prepared)
        raise
    t0 = time.perf_counter()
    out: Any = NotImplemented
    path = "direct"
    if dst._backend.places_by_tags or src._backend.places_by_tags:
        # a backend that places data by policy (a cluster) moves it knowing its tags
        placer = dst._backend if dst._backend.places_by_tags else src._backend
        out = placer.move_tagged(native, src, dst, x._tags, prepared=prepared)
        path = "placed"
    elif src._backend is dst._backend:
        out = dst._backend.transfer(native, src, dst, **dst_kw)
    if out is NotImplemented:
        path = "host"
        host = src._backend.to_host(native, src, **src_kw)
        out = dst._backend.from_host(host, dst, copy=not src.is_host, **dst_kw)
        if src.is_host and dst.is_host:
            path = "zero-copy"
    if _active.get():  # a record is made only for an open xp.transfers() block
        wall = time.perf_counter() - t0
        nbytes = _nbytes(native)
        modelled = src.spec.cost.transfer_seconds(nbytes) + dst.spec.cost.transfer_seconds(nbytes)
        _record(Transfer(src.spec.name, dst.spec.name, nbytes, wall, modelled, path, op))
    return _wrap(out, dst, x._tags)


def dlpack_export(
    x: Array,
    *,
    stream: Any = None,
    max_version: tuple[int, int] | None = None,
    dl_device: tuple[int, int] | None = None,
    copy: bool | None = None,
) -> Any:
    """``Array.__dlpack__``: export host data zero-copy; device data only on request, as a move."""
    from ._device import resolve_device

    dev = x._device
    backend = dev._backend
    own = backend.dlpack_device(dev)
    check_export(x, "__dlpack__", dl_device)
    private = not backend.zero_copy_export
    if not private and (dl_device is None or tuple(dl_device) == own):
        kwargs: dict[str, Any] = {"stream": stream}
        if max_version is not None:
            kwargs["max_version"] = max_version
        if copy is not None:
            kwargs["copy"] = copy
        try:
            return x._data.__dlpack__(**kwargs)
        except TypeError:
            if copy:
                raise BufferError("__dlpack__: this backend cannot copy on export") from None
            return x._data.__dlpack__(stream=stream)
        except BufferError:
            # The standard lets a producer answer a max_version it does not support with a
            # capsule of another version (consumers must check); JAX refuses instead.
            if max_version is None:
                raise
            kwargs.pop("max_version")
            return x._data.__dlpack__(**kwargs)
    if dl_device is None or tuple(dl_device) == (1, 0):
        # Memory that is never shared (emulated devices), or a device asked for the host:
        # an export is a copy, made by the one movement path (policy-checked, recorded).
        if copy is False:
            raise BufferError(
                f"__dlpack__: copy=False, but data on {dev} is exported to the host only as a copy "
                "(its memory is never shared); pass copy=None or True"
            )
        host = move(x, resolve_device("numpy:cpu"), op="__dlpack__")._data
        kwargs = {"copy": True} if private else {}
        if max_version is not None:
            kwargs["max_version"] = max_version
        return host.__dlpack__(**kwargs)
    raise BufferError(f"__dlpack__: cannot export data on {dev} to DLPack device {tuple(dl_device)}")
