"""hpcai on Dask distributed: covered data is checked in every process that receives it.

Graph-level placement cannot be the guarantee on a Dask cluster: array optimisation drops
``dask.annotate`` annotations, a scheduler plugin cannot reject a graph, and data movement
(``replicate``, ``rebalance``, the Active Memory Manager, ``scatter``, dependency fetches)
ignores task restrictions. So the guarantee sits where data lands:

* **a serializer for** :class:`~hpcai.Array` (registered with ``distributed``'s ``dask``
  serializer family): an Array travels as its raw buffer plus a header with its device,
  dtype, shape, tags and *the rules that cover it*; the receiving process deserializes it
  only if its own policy allows the data on the device it lands on **and** the carried rules
  hold for that device's attributes there (a worker without hpcai configuration has no
  ``[site]`` attributes, so rules that require some refuse: it fails closed). The same
  check runs when an Array is unpickled (``Array.__reduce__`` carries the rules too).
* **worker resources per rule**: :func:`dask_setup` (``dask worker --preload
  hpcai.distributed``) advertises ``hpcai-rule-<name>`` for every rule whose ``compute``
  expression the worker's own ``[site]`` satisfies; :func:`resources_for` gives the
  ``resources=`` restriction for data with some tags, to pass to ``compute``/``persist``/
  ``submit`` so that normal scheduling (work stealing and restarts included) keeps tasks on
  allowed workers.
* :class:`CoveredDataRecorder`, a worker plugin that records every covered value that
  enters a worker's memory (tests and audits use it).

What crosses the wire before a refusal: the bytes of the refused chunk reach the receiving
process's memory (the header is read first, but distributed hands over header and frames
together); they are dropped without being wrapped, and the refusal is audited there.
"""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np

from ._tags import TagSet, as_mapping
from .errors import ResidencyError

__all__ = ["CoveredDataRecorder", "RefusedData", "dask_setup", "register", "resources_for", "worker_resources"]

RESOURCE_PREFIX = "hpcai-rule-"
#: How much of each rule resource a worker advertises (a task takes 1).
RESOURCE_AMOUNT = 1_000_000.0

_registered = False
_reg_lock = threading.Lock()


def _tags_json(tags: TagSet | None) -> dict[str, list[str]]:
    return {k: sorted(v) for k, v in as_mapping(tags).items()}


def _tags_from(obj: Any) -> TagSet | None:
    from ._tags import make_tags

    return make_tags(obj, fname="hpcai.distributed") if obj else None


def _serialize(x: Any) -> tuple[dict[str, Any], list[Any]]:
    from .residency._carried import carried_rules

    dev = x._device
    host = np.asarray(dev._backend.to_host(x._data, dev))
    if not host.flags.c_contiguous:  # (np.ascontiguousarray would turn a 0-d array into 1-d)
        host = host.copy(order="C")
    header = {
        "device": dev.spec.name,
        "dtype": host.dtype.str,
        "shape": list(host.shape),
        "tags": _tags_json(x._tags),
        "carried": carried_rules(x._tags),
        "sender": socket.gethostname(),
    }
    return header, [host.reshape(-1).view(np.uint8).data if host.size else b""]


#: Arrivals this process allowed: (device, tags, carried rules, policy hash) -> (Device, tags).
#: A chunk whose tags and carried rules were allowed on a device under the current
#: configuration is allowed again without a new decision, so the decision (and its audit
#: record) is made once per (tags, process, decision), not per chunk; refusals are never
#: cached, and any configuration change empties the cache.
_allowed_arrivals: dict[tuple[str, str, str, str], tuple[Any, TagSet | None]] = {}


def _forget_arrivals(old: Any, new: Any, via: str) -> None:
    _allowed_arrivals.clear()


def _decide_arrival(header: Mapping[str, Any], nbytes: int) -> tuple[Any, TagSet | None]:
    """The first arrival of data like this: resolve the device, decide (audited when covered)."""
    from ._device import resolve_device
    from .errors import UnknownDeviceError
    from .residency._carried import check_arrival

    tags = _tags_from(header.get("tags"))
    try:
        dev = resolve_device(str(header["device"]))
    except UnknownDeviceError:  # a device this process lacks: the chunk lands on its host
        dev = resolve_device("numpy:cpu")
    check_arrival(tags, dev, header.get("carried"), operation="dask-receive", nbytes=nbytes)
    return dev, tags


def _deserialize(header: Mapping[str, Any], frames: list[Any]) -> Any:
    dtype = np.dtype(header["dtype"])
    shape = tuple(int(n) for n in header["shape"])
    count = math.prod(shape)
    key = (str(header["device"]), repr(header.get("tags")), repr(header.get("carried")), _policy_hash())
    hit = _allowed_arrivals.get(key)
    if hit is None:
        try:
            hit = _decide_arrival(header, count * dtype.itemsize)
        except ResidencyError as exc:
            # Raising here would close the connection (the sender sees a bare CommClosedError, a
            # dependency fetch retries): a data-less placeholder lands instead, and whatever uses
            # it gets this refusal.
            return RefusedData(str(exc), _tags_json(_tags_from(header.get("tags"))), socket.gethostname())
        if len(_allowed_arrivals) > 4096:
            _allowed_arrivals.clear()
        _allowed_arrivals[key] = hit
    dev, tags = hit
    buf = frames[0] if frames else b""
    host = np.frombuffer(buf, dtype=dtype, count=count).reshape(shape).copy()
    data = host if dev._host else dev._backend.from_host(host, dev, copy=True)
    return _wrap_array(data, dev, tags)


def _policy_hash() -> str:
    from .residency import current_policy

    return str(current_policy().policy_hash)


def _wrap_array(data: Any, dev: Any, tags: TagSet | None) -> Any:
    from ._array import _wrap

    return _wrap(data, dev, tags)


class RefusedData:
    """What lands where covered data was refused: no values, only the refusal. Using it in any
    way (an attribute, an operator, conversion) raises :class:`~hpcai.errors.ResidencyError`
    with the reason, which names the rule and the receiving process."""

    __slots__ = ("_host", "_reason", "_tags")

    def __init__(self, reason: str, tags: Mapping[str, list[str]], host: str) -> None:
        object.__setattr__(self, "_reason", reason)
        object.__setattr__(self, "_tags", dict(tags))
        object.__setattr__(self, "_host", host)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise ResidencyError(f"covered data was refused on arrival at {self._host}: {self._reason}")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        self._refuse()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (RefusedData, (self._reason, self._tags, self._host))

    def __repr__(self) -> str:
        return f"<RefusedData at {self._host}: {self._reason[:120]}>"

    __array__ = __array_namespace__ = __len__ = __iter__ = __bool__ = __float__ = __int__ = __index__ = _refuse
    __getitem__ = __setitem__ = __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __matmul__ = __rmatmul__ = __pow__ = __neg__ = __abs__ = _refuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse  # type: ignore[assignment]
    __hash__ = None  # type: ignore[assignment]


def register() -> None:
    """Register the Array serializer with ``distributed`` (idempotent; importing this module does it)."""
    global _registered
    with _reg_lock:
        if _registered:
            return
        from distributed.protocol import dask_deserialize, dask_serialize

        from ._array import Array

        dask_serialize.register(Array)(_serialize)
        dask_deserialize.register(Array)(_deserialize)
        # dask joins and contracts hpcai chunks (finalize, rechunk, reductions) with these
        from hpcai.backends.dask import register_dispatch

        register_dispatch()
        _registered = True


def worker_resources() -> dict[str, float]:
    """The ``hpcai-rule-<name>`` resources this process may advertise: one per policy rule whose
    ``compute`` expression its host's attributes (``[site]``) satisfy, or that does not restrict
    compute. Computed from this process's own configuration."""
    from ._device import resolve_device
    from .residency import current_policy

    pol = current_policy()
    host = resolve_device("numpy:cpu")
    out: dict[str, float] = {}
    for rule in pol.rules:
        e = rule.compute
        if e is None or e.evaluate(host.attributes, pol.groups):
            out[RESOURCE_PREFIX + rule.name] = RESOURCE_AMOUNT
    return out


def resources_for(tags: Any) -> dict[str, float]:
    """The ``resources=`` restriction for computing on data with *tags* (an Array, a tag
    mapping or a tag set): one unit of ``hpcai-rule-<name>`` per covering rule that restricts
    ``compute``. Empty when no rule covers the data."""
    from ._array import Array
    from .residency import current_policy
    from .residency._normalize import _as_tagset

    t = tags._tags if isinstance(tags, Array) else _as_tagset("resources_for", tags)
    pol = current_policy()
    return {RESOURCE_PREFIX + r.name: 1.0 for r in pol.covering(t) if r.compute is not None}


try:
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - distributed not installed
    _WorkerPlugin = object  # type: ignore[misc,assignment]


class CoveredDataRecorder(_WorkerPlugin):  # type: ignore[misc,valid-type]
    """A worker plugin that records ``(key, tags)`` for every covered Array stored in the
    worker's memory, whichever way it came (a task result, ``scatter``, a dependency fetch,
    ``replicate``/``rebalance``): it wraps the worker's data mapping. Register it with
    ``client.register_plugin(CoveredDataRecorder())``; read back with
    ``client.run(CoveredDataRecorder.seen)``."""

    name = "hpcai-covered-data-recorder"
    _seen: list[tuple[str, dict[str, list[str]]]] = []

    def setup(self, worker: Any) -> None:
        state = worker.state
        if not isinstance(state.data, _Recording):
            state.data = _Recording(state.data)

    @staticmethod
    def seen() -> list[tuple[str, dict[str, list[str]]]]:
        return list(CoveredDataRecorder._seen)


class _Recording(MutableMapping[Any, Any]):
    def __init__(self, inner: MutableMapping[Any, Any]) -> None:
        self.inner = inner

    def __setitem__(self, key: Any, value: Any) -> None:
        from ._array import Array

        for v in _leaves(value):
            if isinstance(v, Array) and v._tags:
                CoveredDataRecorder._seen.append((str(key), _tags_json(v._tags)))
        self.inner[key] = value

    def __getitem__(self, key: Any) -> Any:
        return self.inner[key]

    def __delitem__(self, key: Any) -> None:
        del self.inner[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)

    def __getattr__(self, name: str) -> Any:  # a SpillBuffer's own methods and attributes
        return getattr(self.inner, name)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _leaves(item)]
    if isinstance(value, dict):
        return [v for item in value.values() for v in _leaves(item)]
    return [value]


async def dask_setup(worker: Any) -> None:
    """``dask worker --preload hpcai.distributed``: register the serializer and advertise this
    worker's rule resources, computed from its own configuration."""
    register()
    res = worker_resources()
    if not res:
        return
    # A preload runs before the worker registers: its resources go with the registration.
    for k, v in res.items():
        worker.state.total_resources[k] = v
        worker.state.available_resources[k] = v


def _on_config_change_hook() -> None:
    from . import _config

    _config.on_change(_forget_arrivals)


_on_config_change_hook()

try:  # registering costs nothing when distributed is importable; without it this module is inert
    register()
except ImportError:  # pragma: no cover - distributed not installed
    pass
