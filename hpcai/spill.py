"""Spilling covered data to a Dask worker's local disk is a ``store`` decision.

A Dask worker under memory pressure writes the values it holds to its local spill directory
(``distributed``'s ``SpillBuffer``: pickled bytes in ``dask-scratch-space``). For covered data
that is a copy at rest at the worker's site, so this module makes it a ``store`` decision for
the value's tags on the worker's own ``[site]`` attributes (destination ``spill:<worker>``):

* allowed: the value is spilled as usual (audited once per tag set and process when covered);
* denied: the value stays in memory (the eviction fails the way a full spill disk does, which
  ``distributed`` handles: the key stays in memory, lighter keys are evicted first); the
  refusal is audited and logged once per tag set and process.

Install it in every worker: ``dask worker --preload hpcai.distributed --preload hpcai.spill``,
or from a client with ``client.register_plugin(hpcai.spill.SpillGuard())``. A worker without
a spill buffer (``distributed.worker.memory.target`` and ``.spill`` both ``False``, or no
memory limit) never writes values to disk, and the guard has nothing to do.

Limits: a covered value that may not be spilled keeps its memory, so a worker holding much
of it reaches ``distributed.worker.memory.pause``/``terminate`` instead (the nanny restarts a
terminated worker; its data is recomputed on allowed workers). Only values that are hpcai
Arrays (or lists, tuples, dicts of them) are recognised; hpcai's chunks always are.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

from . import _config
from ._array import Array
from ._tags import TagSet
from .errors import ResidencyError

__all__ = ["SpillGuard", "dask_setup", "install", "register_sizeof", "spill_allowed"]

logger = logging.getLogger("hpcai.spill")

_lock = threading.Lock()
#: tags -> (allowed, reason), decided once per process and configuration (refusals included:
#: an eviction is retried often, and each attempt would otherwise be one more audit record).
_decided: dict[TagSet, tuple[bool, str]] = {}
_generation = 0


def _forget() -> None:
    global _generation
    with _lock:
        _generation += 1
        _decided.clear()


_config.on_reconfigure(_forget)

_where = socket.gethostname()


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    else:
        yield value


def spill_allowed(tags: TagSet | None) -> tuple[bool, str]:
    """Whether data with *tags* may be spilled to this process's local disk: a ``store``
    decision on its ``[site]`` attributes (audited once per tag set when covered)."""
    if not tags:
        return True, ""
    hit = _decided.get(tags)
    if hit is not None:
        return hit
    from . import residency
    from ._device import resolve_device

    with _lock:
        generation = _generation
    host = resolve_device("numpy:cpu")
    try:
        residency.enforce("store", tags, host.spec.attributes, destination=f"spill:{_where}",
                          source=host.spec.name, operation="dask-spill")
        out = (True, "")
    except ResidencyError as exc:
        out = (False, str(exc))
        logger.warning("hpcai: not spilling covered data to the local disk of %s (kept in memory): %s", _where, exc)
    with _lock:
        if generation == _generation:
            _decided[tags] = out
    return out


def _refusal(value: Any) -> str | None:
    for v in _leaves(value):
        if v.__class__ is Array and v._tags:
            ok, why = spill_allowed(v._tags)
            if not ok:
                return why
    return None


_guarded: dict[Any, type] = {}


def _guarded_class(cls: Any, kind: str) -> type:
    """A subclass of distributed's ``Slow`` (the spill store, *kind* ``"slow"``) that refuses
    covered values whose ``store`` decision on this site denies, the way a full spill disk
    refuses; or of its ``SpillBuffer`` (*kind* ``"buffer"``) that accepts the outcome of such a
    refusal during the insertion of another key (see :func:`install`)."""
    g = _guarded.get(cls)
    if g is not None:
        return g
    if kind == "slow":
        from distributed.spill import MaxSpillExceeded

        def set_slow(self: Any, key: Any, value: Any) -> None:
            if _refusal(value) is not None:
                lru = getattr(self, "_hpcai_lru", None)
                try:  # the next eviction tries a younger key first (else one refused key blocks them all)
                    if lru is not None and key in lru.order and key not in lru.heavy:
                        lru.order.remove(key)
                        lru.order.add(key)
                except Exception:  # pragma: no cover - zict internals changed: only the order is lost
                    pass
                raise MaxSpillExceeded(key)  # the SpillBuffer keeps the key in memory
            cls.__setitem__(self, key, value)

        g = type(f"Guarded{cls.__name__}", (cls,), {"__setitem__": set_slow, "__module__": __name__})
    else:
        def set_buffer(self: Any, key: Any, value: Any) -> None:
            try:
                cls.__setitem__(self, key, value)
            except AssertionError:
                # distributed asserts that a failed eviction leaves the *inserted* key in memory;
                # when the inserted key was heavy and spilled first, and then an older covered
                # key was refused, the key is stored (on disk) and the state is consistent.
                if key not in self:
                    raise

        g = type(f"Guarded{cls.__name__}", (cls,), {"__setitem__": set_buffer, "__module__": __name__})
    _guarded[cls] = g
    return g


def _spill_buffers(worker: Any) -> list[Any]:
    from distributed.spill import SpillBuffer

    found: list[Any] = []
    for start in (getattr(getattr(worker, "state", None), "data", None), getattr(worker, "data", None)):
        obj, depth = start, 0
        while obj is not None and depth < 8:
            if isinstance(obj, SpillBuffer):
                if all(obj is not f for f in found):
                    found.append(obj)
                break
            obj, depth = obj.__dict__.get("inner") if hasattr(obj, "__dict__") else None, depth + 1
    return found


def install(target: Any) -> bool:
    """Guard the spill buffer of *target* (a ``distributed`` Worker, or a ``SpillBuffer``);
    ``False`` when it has none (nothing is ever spilled there)."""
    from distributed.spill import Slow, SpillBuffer

    buffers = [target] if isinstance(target, SpillBuffer) else _spill_buffers(target)
    done = False
    for buf in buffers:
        slow = buf.slow
        inner = getattr(slow, "data", slow)  # a zict.Cache around the Slow store
        if isinstance(inner, Slow):
            if inner.__class__.__module__ != __name__:
                inner._hpcai_lru = buf.fast  # type: ignore[attr-defined]
                inner.__class__ = _guarded_class(inner.__class__, "slow")
            if buf.__class__.__module__ != __name__:
                buf.__class__ = _guarded_class(buf.__class__, "buffer")
            done = True
    return done


def _sizeof(x: Array) -> int:
    """The bytes an hpcai Array holds (dask's default ``sys.getsizeof`` sees ~200 bytes, so a
    worker would neither count its chunks' memory nor spill them)."""
    try:
        return int(x._data.nbytes) + 64
    except (AttributeError, TypeError, ValueError):
        return 64


def register_sizeof() -> None:
    """Register :func:`_sizeof` with ``dask.sizeof`` (idempotent; importing this module does it)."""
    from dask.sizeof import sizeof

    sizeof.register(Array)(_sizeof)


try:
    register_sizeof()
except ImportError:  # pragma: no cover - dask not installed
    pass

try:
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - distributed not installed
    _WorkerPlugin = object  # type: ignore[misc,assignment]


class SpillGuard(_WorkerPlugin):  # type: ignore[misc,valid-type]
    """Worker plugin: ``client.register_plugin(SpillGuard())`` guards every worker's spill buffer."""

    name = "hpcai-spill-guard"

    def setup(self, worker: Any) -> None:
        register_sizeof()
        install(worker)


async def dask_setup(worker: Any) -> None:
    """``dask worker --preload hpcai.spill``."""
    install(worker)
