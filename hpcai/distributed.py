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
  ``[site]`` attributes, so rules that require some refuse: it fails closed). The tags and
  the carried rules travel as one canonical JSON text (the *guard*, made once per tag set
  and configuration by the sender); each process decides an arrival for its own
  :func:`chunk_device` once per (guard text, configuration), keyed by the guard text exactly
  as it arrived (so a header changed in any byte is decided afresh), and never caches a
  refusal. The same check runs when an Array is unpickled (``Array.__reduce__`` carries the
  rules too); inside distributed's message handling (a graph the scheduler unpickles, a task
  a worker unpickles) a refusal leaves a :class:`RefusedData` placeholder, so the task fails
  with the refusal and no process dies.
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

import json
import logging
import math
import socket
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np

from ._array import _wrap
from ._tags import TagSet, to_json
from .errors import ConfigError, ResidencyError

__all__ = [
    "CoveredDataRecorder",
    "PlacementPlugin",
    "RefusedData",
    "dask_setup",
    "register",
    "resources_for",
    "restrict_keys",
    "unplaceable",
    "worker_resources",
]

logger = logging.getLogger("hpcai.distributed")

RESOURCE_PREFIX = "hpcai-rule-"
#: How much of each rule resource a worker advertises (a task takes 1).
RESOURCE_AMOUNT = 1_000_000.0

_registered = False
_reg_lock = threading.Lock()


def _tags_from(obj: Any) -> TagSet | None:
    from ._tags import make_tags

    return make_tags(obj, fname="hpcai.distributed") if obj else None


_HOST = socket.gethostname()

# -- the caches of the serializer ---------------------------------------------------------
# Both are valid for one configuration: any configuration change empties them and bumps the
# generation, and an entry computed while a change was under way is not kept (its generation
# is read before the policy it was decided under).
_cache_lock = threading.Lock()
_generation = 0

#: Sender: tags -> the guard text of data with those tags (see :func:`_guard_text`).
_guards: dict[TagSet | None, str] = {}

#: Receiver: guard text -> (this process's chunk device, tags), for the arrivals it allowed.
#: The key is the guard text exactly as it arrived, the text the decision was made from: a
#: header that differs from an allowed one in any byte of its tags or carried rules is another
#: key and gets its own decision (a dict compares keys by equality, so no collision can pass
#: for an allowed decision). The decision (and its audit record) is so made once per
#: (tags, carried rules, process, configuration), not per chunk; refusals are never
#: cached.
_allowed_arrivals: dict[str, tuple[Any, TagSet | None]] = {}
_CACHE_LIMIT = 4096

#: np.dtype of each dtype string seen (a handful per process).
_dtypes: dict[str, np.dtype[Any]] = {}


def _forget_arrivals(*_: Any) -> None:
    global _generation, _chunk_dev
    with _cache_lock:
        _generation += 1
        _allowed_arrivals.clear()
        _guards.clear()
        _landed.clear()
        _chunk_dev = None


#: This process's chunk device (see :func:`chunk_device`), resolved once per configuration.
_chunk_dev: Any = None


def chunk_device() -> Any:
    """The device chunks live on in this process: ``[dask] chunk_device`` of **this process's
    own** configuration (``"numpy:cpu"`` by default; e.g. ``"jax:cpu:1"`` or ``"cupy:0"`` on a
    worker with an accelerator). Every chunk that arrives here (a scattered chunk, a dependency
    fetched from another worker, a result gathered by the client) and every chunk read from
    storage here lands on it, after the decision for it (``compute`` on its attributes), so all
    the chunks a task joins are on one device. A device this process does not have is an error
    that names it (never a silent fall-back to the host)."""
    global _chunk_dev
    dev = _chunk_dev
    if dev is not None:
        return dev
    from . import _config
    from ._device import resolve_device
    from .errors import UnknownDeviceError

    generation = _generation
    name = _config.get_config().section("dask").get("chunk_device", "numpy:cpu")
    try:
        dev = resolve_device(name)
    except UnknownDeviceError as exc:
        raise ConfigError(
            f"[dask] chunk_device = {name!r}: this process ({_HOST}) has no such device ({exc})"
        ) from None
    if dev._backend.places_by_tags:  # (the dask device: it distributes, it does not hold)
        raise ConfigError(
            f"[dask] chunk_device = {name!r}: a device that places data across processes by "
            "itself cannot hold this process's chunks; name a local device such as 'numpy:cpu'"
        )
    with _cache_lock:
        if generation == _generation:
            _chunk_dev = dev
    return dev


#: Tags whose placement on this process's chunk device :func:`land` decided (and allowed).
_landed: dict[TagSet, bool] = {}


def land(
    host: np.ndarray, tags: TagSet | None, *, copy: bool = False, decided: bool = False,
    operation: str = "dask-read",
) -> Any:
    """*host* as an hpcai Array with *tags* on this process's :func:`chunk_device`. Unless the
    caller *decided* already, covered data is decided there first (``compute`` on the device's
    attributes; audited once per tag set and configuration, refusals raise every time).
    *copy*: never alias *host*."""
    dev = chunk_device()
    if tags and not decided and tags not in _landed:
        from .residency._tagging import check_placement

        generation = _generation
        check_placement(tags, dev, operation=operation, nbytes=int(host.nbytes))
        _remember(_landed, tags, True, generation)
    if dev._host:
        return _wrap(np.array(host, copy=True) if copy else host, dev, tags)
    return _wrap(dev._backend.from_host(host, dev, copy=True), dev, tags)


def _remember(cache: dict[Any, Any], key: Any, value: Any, generation: int) -> None:
    with _cache_lock:
        if generation != _generation:  # the configuration changed while it was computed
            return
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = value


def _guard_text(tags: TagSet | None) -> str:
    """The tags and the rules that cover them, as the canonical JSON text that travels in the
    header (computed once per tag set and configuration in the sending process)."""
    g = _guards.get(tags)
    if g is None:
        from .residency._carried import carried_rules

        generation = _generation
        g = json.dumps(
            {"tags": to_json(tags), "carried": carried_rules(tags)},
            sort_keys=True,
            separators=(",", ":"),
        )
        _remember(_guards, tags, g, generation)
    return g


def _serialize(x: Any) -> tuple[dict[str, Any], list[Any]]:
    dev = x._device
    host = np.asarray(dev._backend.to_host(x._data, dev))
    if not host.flags.c_contiguous:  # (np.ascontiguousarray would turn a 0-d array into 1-d)
        host = host.copy(order="C")
    header = {
        "device": dev.spec.name,
        "dtype": host.dtype.str,
        "shape": list(host.shape),
        "guard": _guard_text(x._tags),  # {"tags": ..., "carried": the rules that cover them}
        "sender": _HOST,
    }
    return header, [host.reshape(-1).view(np.uint8).data if host.size else b""]


def _parse_guard(text: Any) -> tuple[TagSet | None, dict[str, Any] | None]:
    """The tags and carried rules of a header's guard text; malformed: refused."""
    try:
        g = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        g = None
    if (
        not isinstance(g, dict)
        or not isinstance(g.get("tags"), dict)
        or not isinstance(g.get("carried"), (dict, type(None)))
    ):
        raise ResidencyError(
            f"data arrived with a malformed residency header ({str(text)[:200]!r}); refused"
        )
    return _tags_from(g["tags"]), g["carried"]


def _decide_arrival(header: Mapping[str, Any], nbytes: int) -> tuple[Any, TagSet | None]:
    """The first arrival of data like this: decide for this process's chunk device (audited
    when covered)."""
    from .residency._carried import check_arrival

    tags, carried = _parse_guard(header.get("guard"))
    # it lands on this process's chunk device (the sender's device is only named in the header)
    dev = chunk_device()
    check_arrival(tags, dev, carried, operation="dask-receive", nbytes=nbytes)
    return dev, tags


def _refused(header: Mapping[str, Any], exc: ResidencyError | ConfigError) -> RefusedData:
    try:
        tags = to_json(_parse_guard(header.get("guard"))[0])
    except ResidencyError:
        tags = {}
    return RefusedData(str(exc), tags, _HOST)


def _deserialize(header: Mapping[str, Any], frames: list[Any]) -> Any:
    dt = header["dtype"]
    dtype = _dtypes.get(dt)
    if dtype is None:
        dtype = _dtypes[str(dt)] = np.dtype(dt)
    shape = header["shape"]
    count = math.prod(shape)
    key = header.get("guard")
    hit = _allowed_arrivals.get(key) if isinstance(key, str) else None
    if hit is None:
        generation = _generation
        try:
            hit = _decide_arrival(header, count * dtype.itemsize)
        except (ResidencyError, ConfigError) as exc:
            # Raising here would close the connection (the sender sees a bare CommClosedError, a
            # dependency fetch retries): a data-less placeholder lands instead, and whatever uses
            # it gets this refusal.
            return _refused(header, exc)
        if isinstance(key, str):
            _remember(_allowed_arrivals, key, hit, generation)
    dev, tags = hit
    buf = frames[0] if frames else b""
    host = np.frombuffer(buf, dtype=dtype, count=count).reshape(shape).copy()
    data = host if dev._host else dev._backend.from_host(host, dev, copy=True)
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

    __array__ = __array_namespace__ = __len__ = __iter__ = _refuse
    __bool__ = __float__ = __int__ = __index__ = _refuse
    __getitem__ = __setitem__ = __add__ = __radd__ = __sub__ = __rsub__ = _refuse
    __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __matmul__ = __rmatmul__ = _refuse
    __pow__ = __neg__ = __abs__ = _refuse
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
    ``compute`` expression the attributes of its :func:`chunk_device` (its ``[site]``, and the
    device's own where configured) satisfy, or that does not restrict compute. Computed from
    this process's own configuration."""
    from .residency import current_policy

    pol = current_policy()
    dev = chunk_device()
    out: dict[str, float] = {}
    for rule in pol.rules:
        e = rule.compute
        if e is None or e.evaluate(dev.attributes, pol.groups):
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
    from distributed import SchedulerPlugin as _SchedulerPlugin
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - distributed not installed
    _WorkerPlugin = _SchedulerPlugin = object  # type: ignore[misc,assignment]


# ============================================================================================
# the scheduler side: placement by the rule resources (a convenience; the guarantee is the
# check where data arrives)
# ============================================================================================
def _rule_needs(ts: Any) -> dict[str, float]:
    return {k: v for k, v in (ts.resource_restrictions or {}).items() if k.startswith(RESOURCE_PREFIX)}


def _may_hold(ws: Any, need: Mapping[str, float]) -> bool:
    return all(ws.resources.get(k, 0.0) >= v for k, v in need.items())


def _rules_of(need: Mapping[str, float]) -> str:
    return ", ".join(sorted(k[len(RESOURCE_PREFIX):] for k in need))


class PlacementPlugin(_SchedulerPlugin):  # type: ignore[misc,valid-type]
    """Scheduler plugin: places tasks and replicas by the ``hpcai-rule-<name>`` resources.

    * **Tasks inherit the restriction of their inputs.** A task submitted without
      ``resources=`` (a raw ``dask.compute`` or ``client.submit`` on an hpcai graph) that
      depends on a task restricted to a rule's workers gets the same restriction when the
      graph arrives, so it is scheduled where its covered inputs may be.
    * **Replicas go only where the key's rules allow.** The Active Memory Manager (which
      ``retire_workers``, ``ReduceReplicas`` and other policies use) picks a recipient only
      among workers that advertise the key's rule resources. A worker that holds covered data
      nobody else may hold is therefore not retired: ``retire_workers`` leaves it running and
      the scheduler logs which rule keeps it (:func:`hpcai.dask.retire_workers` raises,
      naming the rule).

    Scattered data is restricted by :func:`restrict_keys` (the ``dask`` device does it for
    the chunks it scatters). Everything here is a convenience for efficient, orderly
    placement: a plugin's errors are swallowed by the scheduler, and a client may bypass the
    scheduler's choices (``workers=``, ``scatter``, ``replicate``); the guarantee is the
    check where data arrives (the serializer of :mod:`hpcai.distributed`).
    """

    name = "hpcai-placement"

    async def start(self, scheduler: Any) -> None:
        amm = scheduler.extensions.get("amm")
        if amm is None or getattr(amm, "_hpcai_guarded", False):
            return
        original = amm._find_recipient
        warned: set[tuple[str, str]] = set()

        def find_recipient(ts: Any, candidates: Any, pending_repl: Any) -> Any:
            need = _rule_needs(ts)
            if need:
                pool = scheduler.running if candidates is None else candidates & scheduler.running
                allowed = {ws for ws in pool if _may_hold(ws, need)}
                if not allowed - set(ts.who_has or ()) - set(pending_repl or ()):
                    holder = ",".join(sorted(ws.address for ws in ts.who_has or ()))
                    if (holder, _rules_of(need)) not in warned:
                        warned.add((holder, _rules_of(need)))
                        logger.warning(
                            "hpcai: %s (and perhaps more keys) may be held only by workers whose site satisfies "
                            "rule %s; no other such worker is running, so it stays on %s",
                            ts.key, _rules_of(need), holder,
                        )
                    return None
                candidates = allowed
            return original(ts, candidates, pending_repl)

        amm._find_recipient = find_recipient
        amm._hpcai_guarded = True

    def update_graph(self, scheduler: Any, *, tasks: Any = (), **kwargs: Any) -> None:
        """Give each new task the rule resources of its inputs (and of theirs)."""
        touched = {k: scheduler.tasks[k] for k in tasks if k in scheduler.tasks}
        done: dict[Any, dict[str, float]] = {}
        for key, root in touched.items():
            if key in done:
                continue
            stack: list[tuple[Any, bool]] = [(root, False)]
            while stack:
                ts, expanded = stack.pop()
                if ts.key in done:
                    continue
                if ts.key not in touched:  # an older task: its restriction was settled when it arrived
                    done[ts.key] = _rule_needs(ts)
                    continue
                if not expanded:
                    stack.append((ts, True))
                    stack.extend((d, False) for d in ts.dependencies if d.key not in done)
                    continue
                need = _rule_needs(ts)
                for d in ts.dependencies:
                    for k, v in done.get(d.key, {}).items():
                        need[k] = max(need.get(k, 0.0), v)
                if need and need != _rule_needs(ts) and not _pinned_elsewhere(scheduler, ts, need):
                    ts.resource_restrictions = {**(ts.resource_restrictions or {}), **need}
                done[ts.key] = need


def _pinned_elsewhere(scheduler: Any, ts: Any, need: Mapping[str, float]) -> bool:
    """Whether *ts* is pinned (``workers=``, not loose) to workers none of which may hold its
    inputs: it is left as submitted, so that it runs there and the inputs are refused on
    arrival (a clean error) instead of waiting forever for a worker that fits both."""
    wr, hr = ts.worker_restrictions, ts.host_restrictions
    if not (wr or hr) or ts.loose_restrictions:
        return False
    return not any(_may_hold(ws, need) for ws in scheduler.workers.values()
                   if ws.address in (wr or ()) or ws.host in (hr or ()))


def restrict_keys(keys: list[Any], resources: dict[str, float], dask_scheduler: Any = None) -> int:
    """``client.run_on_scheduler(restrict_keys, keys, resources)``: scattered *keys* (which
    have no task, hence no restriction) get the rule *resources* their data needs, so that
    :class:`PlacementPlugin` keeps their replicas and dependents on allowed workers."""
    n = 0
    for k in keys:
        ts = dask_scheduler.tasks.get(k)
        if ts is not None:
            ts.resource_restrictions = {**(ts.resource_restrictions or {}), **resources}
            n += 1
    return n


def unplaceable(address: str, dask_scheduler: Any = None) -> dict[str, list[str]]:
    """``client.run_on_scheduler(unplaceable, address)``: the rules (by name) that keep keys on
    the worker at *address* because no other running worker may hold them, with an example
    key each (what :func:`hpcai.dask.retire_workers` reports)."""
    ws = dask_scheduler.workers.get(address)
    if ws is None:
        return {}
    out: dict[str, list[str]] = {}
    for ts in ws.has_what:
        need = _rule_needs(ts)
        if not need or len(ts.who_has or ()) > 1:
            continue
        if any(_may_hold(o, need) for o in dask_scheduler.running if o is not ws):
            continue
        out.setdefault(_rules_of(need), []).append(str(ts.key))
    return out


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
                CoveredDataRecorder._seen.append((str(key), to_json(v._tags)))
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
    worker's rule resources, computed from its own configuration. A configuration this process
    cannot use (an invalid ``HPCAI_CONFIG``, a ``[dask] chunk_device`` it lacks) stops the
    worker here, naming the problem: distributed logs a preload's exception and starts the
    worker anyway, and such a worker would join and refuse every chunk sent to it."""
    register()
    try:
        dev = chunk_device()
        res = worker_resources()
    except ConfigError as exc:
        logger.critical("hpcai: this worker cannot start: %s", exc)
        raise SystemExit(f"hpcai: this worker cannot start: {exc}") from None
    logger.info("hpcai: chunks on this worker live on %s", dev)
    from . import spill

    spill.install(worker)  # spilling covered data to this worker's disk is a store decision
    if not res:
        return
    # A preload runs before the worker registers: its resources go with the registration.
    for k, v in res.items():
        worker.state.total_resources[k] = v
        worker.state.available_resources[k] = v


def _on_config_change_hook() -> None:
    from . import _config

    # before the change applies, and after it applied (and the policy and devices were
    # reset: they registered their resets when hpcai was imported, before this module)
    _config.on_change(_forget_arrivals)
    _config.on_reconfigure(_forget_arrivals)


_on_config_change_hook()

try:  # registering costs nothing when distributed is importable; without it this module is inert
    register()
except ImportError:  # pragma: no cover - distributed not installed
    pass
