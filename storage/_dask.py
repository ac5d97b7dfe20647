"""Zarr at ``hpcai://`` endpoints read and written by Dask tasks, on the workers.

``load(url, device="dask")`` and ``save(x, url)`` of a ``dask``-device array dispatch here
(:mod:`._arrays`). The client resolves the URL once (pointer -> version, tags, the array's
``zarr.json``) and takes the decision it would take for any load or save; the chunks are read
or written **on the workers**, by picklable tasks pinned to that one version:

* :class:`ChunkReader` (one per array, called with a region per chunk) holds the endpoint's
  *name*, the version's path, the array metadata, the tags and the rules that cover them. On
  the worker it resolves the endpoint from the worker's **own** configuration (credentials
  from its own environment: nothing secret travels in the graph), takes the ``compute``
  decision for the tags on the worker's own host (its ``[site]``; the carried rules must hold
  there too, so a worker with no hpcai configuration refuses), reads and decodes the region
  with zarr through the endpoint filesystem granted that decision, and returns an hpcai Array
  with the tags. Decisions are audited once per (endpoint, version, tags) in each process.
* :class:`ChunkWriter` writes one block of a ``dask``-device array into the new version a
  client-side :class:`~._arrays._VersionWriter` opened: a ``store`` decision for the tags on
  the endpoint as the worker's configuration describes it (plus the carried rules), then the
  block's zarr chunks through the worker's endpoint filesystem. The client writes the
  version's metadata and commits the pointer once, after every chunk task succeeded; on any
  failure the partial version is removed and nothing is published.

Tasks are restricted to allowed workers by the device's compute path (``resources=`` per
covering rule, :func:`hpcai.distributed.resources_for`).
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hpcai import _config
from hpcai._array import Array, _wrap
from hpcai._device import Device
from hpcai._tags import TagSet, union
from hpcai.errors import DTypeError, InvalidArgumentError, ResidencyError, StorageError

from . import _taint
from ._endpoints import get_endpoint, parse_url

__all__ = ["ChunkReader", "ChunkWriter", "load", "save"]

# -- decisions on the worker, cached per process and configuration --------------------------
_lock = threading.Lock()
_decisions: dict[tuple[Any, ...], Any] = {}
_deciding = threading.Lock()
_generation = 0


def _forget(*_: Any) -> None:
    global _generation
    with _lock:
        _generation += 1
        _decisions.clear()


_config.on_reconfigure(_forget)


def _where() -> str:
    """This process as a refusal names it: the dask worker's name and address, else the host."""
    import socket

    try:
        from distributed import get_worker

        w = get_worker()
        return f"dask worker {w.name!r} ({w.address})"
    except (ImportError, ValueError):
        return f"process on {socket.gethostname()}"


class _Target:
    """One array version, as a worker reaches it: nothing here is secret (the endpoint by name;
    its credentials are resolved where the task runs)."""

    __slots__ = ("carried", "complete", "endpoint", "meta", "rel", "tags", "url", "version", "vpath")

    def __init__(self, endpoint: str, rel: str, vpath: str, version: str | None, meta: Mapping[str, Any],
                 tags: TagSet | None, carried: str | None, complete: bool) -> None:
        self.endpoint = endpoint
        self.rel = rel
        self.vpath = vpath
        self.version = version
        self.meta = json.dumps(meta, sort_keys=True)  # text: hashable, and the bytes zarr is served
        self.tags = tags
        self.carried = carried
        self.complete = complete
        self.url = f"hpcai://{endpoint}/{rel}"

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        for k in self.__slots__:
            object.__setattr__(self, k, state[k])

    def meta_dict(self) -> dict[str, Any]:
        return dict(json.loads(self.meta))

    def where(self) -> str:
        return self.url + (f" (version {self.version})" if self.version else "")


def _carried(tags: TagSet | None) -> str | None:
    from hpcai.residency._carried import carried_rules

    c = carried_rules(tags)
    return None if c is None else json.dumps(c, sort_keys=True)


def _decide_here(op: str, t: _Target, operation: str, nbytes: int = 0) -> Any:
    """This process's decision for *op* of *t*'s tags: ``compute`` on its own host (``[site]``),
    ``store`` on the endpoint as its own configuration describes it; the rules carried with the
    task must allow it too. Audited once per (op, endpoint, version, tags) and configuration;
    refusals are raised (and audited) every time, naming this worker."""
    key = (op, t.endpoint, t.vpath, t.tags, t.carried)
    hit = _decisions.get(key)
    if hit is not None:
        return hit
    with _deciding:  # the chunk tasks of one array start together: one of them decides (and audits)
        return _decide_locked(op, t, operation, nbytes, key)


def _decide_locked(op: str, t: _Target, operation: str, nbytes: int, key: tuple[Any, ...]) -> Any:
    from hpcai import residency
    from hpcai.residency._carried import _carried_policy
    from hpcai.residency._guards import _settle

    with _lock:
        hit = _decisions.get(key)
        generation = _generation
    if hit is not None:
        return hit
    try:
        if op == "compute":  # read onto this process's chunk device: decided for it
            import hpcai.distributed as hd

            dev = hd.chunk_device()
            attrs, dest, source = dev.attributes, dev.spec.name, t.endpoint
        else:
            ep = get_endpoint(t.endpoint)
            attrs, dest, source = ep.attributes, ep.name, "dask"
        d = residency.enforce(op, t.tags, attrs, destination=dest, source=source, nbytes=nbytes,
                              dataset=t.url, operation=operation)
        if t.carried:
            cd = _carried_policy(json.loads(t.carried)).decide(op, t.tags, attrs, dest)
            if cd.effect is not None:
                _settle(cd, operation=operation, source=source, nbytes=nbytes, dataset=t.url)
    except ResidencyError as exc:
        raise ResidencyError(f"{_where()}: {exc}", decision=exc.decision) from None
    with _lock:
        if generation == _generation:
            if len(_decisions) > 4096:
                _decisions.clear()
            _decisions[key] = d
    return d


def _zsync(coro: Any) -> Any:
    from zarr.core.sync import sync

    return sync(coro)


def _async_array(store: Any, meta: Mapping[str, Any], config: Any = None) -> Any:
    from zarr.core.array import AsyncArray
    from zarr.storage import StorePath

    return AsyncArray(dict(meta), StorePath(store), config=config)  # type: ignore[call-overload]


def _region_shape(region: tuple[slice, ...], shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(len(range(*s.indices(int(n)))) for s, n in zip(region, shape))


class ChunkReader:
    """Reads one region of a stored array version on the worker it runs on (see the module)."""

    __slots__ = ("target",)

    def __init__(self, target: _Target) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (ChunkReader, (self.target,))

    def __repr__(self) -> str:
        return f"<ChunkReader {self.target.where()}>"

    def __call__(self, region: Sequence[slice]) -> Array:
        import hpcai.distributed as hd

        t = self.target
        region = tuple(region)
        shape = _region_shape(region, json.loads(t.meta)["shape"])
        d = _decide_here("compute", t, "dask-load")
        host = _zsync(_read_region(t, d, region))
        host = np.asarray(host).reshape(shape)
        return hd.land(host, t.tags, decided=True)  # type: ignore[no-any-return]  # (decided above)


async def _read_region(t: _Target, d: Any, region: tuple[slice, ...]) -> Any:
    from ._arrays import _fsspec_store, _read, _Resolved, _small_chunks, _store_classes
    from ._filesystem import endpoint_filesystem

    ep = get_endpoint(t.endpoint)
    meta = t.meta_dict()
    base = endpoint_filesystem(ep.name, asynchronous=True)
    fs = base._granted(t.vpath, t.tags, read=True, decision=d, small=_small_chunks(meta))
    _, checked_cls = _store_classes()
    store = checked_cls(_fsspec_store(fs, t.vpath, read_only=True), t.where(), t.complete, pointer=t.meta.encode())
    arr = _async_array(store, meta)
    res = _Resolved(ep, t.rel, t.vpath, t.version, t.tags, tuple(meta.get("shape", ())),
                    str(meta.get("data_type", "")), t.complete, meta)
    return await _read(arr, res, region)


class ChunkWriter:
    """Writes one block of a ``dask``-device array into a new version (see the module); returns
    the block's bytes."""

    __slots__ = ("target",)

    def __init__(self, target: _Target) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (ChunkWriter, (self.target,))

    def __repr__(self) -> str:
        return f"<ChunkWriter {self.target.where()}>"

    def __call__(self, block: Any, region: Sequence[slice]) -> int:
        from hpcai.distributed import RefusedData

        t = self.target
        if block.__class__ is not Array:
            if isinstance(block, RefusedData):
                block._refuse()  # its refusal, naming the rule and the worker
            raise DTypeError(f"hpcai.storage.save: a chunk of the dask array is a {type(block).__name__}, "
                             "not an hpcai Array")
        extra = block._tags - t.tags if block._tags and t.tags else block._tags
        ledger = _taint.current()
        if ledger:
            extra = union(extra, ledger - t.tags if t.tags else ledger)
        if extra:
            raise ResidencyError(
                f"{_where()}: hpcai.storage.save {t.url}: a chunk carries tags the save did not decide for "
                f"({', '.join(f'{k}={v}' for k, v in sorted(extra))}: from the chunk itself or this worker's "
                "read-taint ledger); tag the array before saving it. Nothing was written"
            )
        dev = block._device
        host = np.ascontiguousarray(np.asarray(dev._backend.to_host(block._data, dev)))
        region = tuple(region)
        shape = _region_shape(region, json.loads(t.meta)["shape"])
        if host.shape != shape:
            if host.size != math.prod(shape):
                raise InvalidArgumentError(
                    f"hpcai.storage.save {t.url}: a chunk of shape {host.shape} for the region {region} of shape {shape}"
                )
            host = host.reshape(shape)  # (dask's 0-d blocks may come as shape (1,))
        d = _decide_here("store", t, "dask-save", host.nbytes)
        _zsync(_write_region(t, d, region, host))
        return int(host.nbytes)


async def _write_region(t: _Target, d: Any, region: tuple[slice, ...], host: np.ndarray) -> None:
    from ._arrays import _fsspec_store
    from ._filesystem import endpoint_filesystem

    ep = get_endpoint(t.endpoint)
    base = endpoint_filesystem(ep.name, asynchronous=True)
    # fresh: the client created the version under a new, unguessable name; it holds no node yet
    fs = base._granted(t.vpath, t.tags, write=True, read=True, decision=d, fresh=True)
    store = _fsspec_store(fs, t.vpath, read_only=False)
    arr = _async_array(store, t.meta_dict(), config={"write_empty_chunks": True})
    await arr.setitem(region if region else Ellipsis, host)


# --------------------------------------------------------------------------------------------
# the client side
# --------------------------------------------------------------------------------------------
def _backend() -> Any:
    from hpcai.backends import get_backend

    return get_backend("dask")


def _storage_chunks(meta: Mapping[str, Any], fname: str, url: str) -> tuple[int, ...]:
    try:
        grid = meta["chunk_grid"]
        if grid.get("name") != "regular":
            raise KeyError
        return tuple(int(c) for c in grid["configuration"]["chunk_shape"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InvalidArgumentError(f"{fname}: {url} has no regular chunk grid; load it onto a host device") from None


def load(url: str, dev: Device, chunks: Any = None, *, callback: Any = None) -> Array:
    """A lazy ``dask``-device array of the array at *url*, read on the workers (see the module)."""
    from dask.array.core import normalize_chunks, slices_from_chunks
    from dask.highlevelgraph import HighLevelGraph
    from hpcai.backends.dask import DaskArray, _meta

    from hpcai import residency

    from ._arrays import _resolve
    from ._filesystem import endpoint_filesystem

    fname = "hpcai.storage.load"
    if callback is not None:
        raise InvalidArgumentError(
            f"{fname}: callback= is not supported with device='dask' (the chunks are read by the workers "
            "when the array is computed)"
        )
    ep, rel = parse_url(url, fname=fname)
    if not rel:
        raise InvalidArgumentError(f"{fname}: {url!r} names the endpoint root; give the path of an array")

    async def resolve() -> Any:
        base = endpoint_filesystem(ep.name, asynchronous=True)
        return await _resolve(base, ep, rel, fname)

    res = _zsync(resolve())
    if res.meta is None:  # pragma: no cover - _resolve always returns the metadata it read
        raise StorageError(f"{fname}: {url}: the array's metadata could not be read")
    try:
        dtype = np.dtype(res.dtype)
    except TypeError:
        raise DTypeError(f"{fname}: {url} holds {res.dtype!r} values, which the dask device cannot hold") from None
    # The decision load takes for any device (the dask device's attributes), then the workers:
    # refused before any task exists when no worker's own site allows the tags.
    residency.enforce("compute", res.tags, dev.spec.attributes, destination=dev.spec.name, source=ep.name,
                      nbytes=res.nbytes, dataset=ep.url_for(rel), operation="load")
    b = _backend()
    if res.tags:
        b.allowed_workers(res.tags, fname, wait=False)
    stored = _storage_chunks(res.meta, fname, url)
    shape = tuple(int(n) for n in res.shape)
    if chunks is None:
        norm = normalize_chunks(stored, shape, dtype=dtype) if shape else ()
    else:
        norm = normalize_chunks(chunks, shape, dtype=dtype, previous_chunks=stored)
    target = _Target(ep.name, rel, res.vpath, res.version, res.meta, res.tags, _carried(res.tags), res.complete)
    reader = ChunkReader(target)
    from dask._task_spec import Task

    name = f"hpcai-load-{uuid.uuid4().hex}"
    dsk: dict[Any, Any] = {}
    for idx, region in zip(itertools.product(*[range(len(c)) for c in norm]), slices_from_chunks(norm)):
        key = (name, *idx)
        dsk[key] = Task(key, reader, tuple(region))
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())  # type: ignore[arg-type]
    arr = DaskArray(graph, name, norm, meta=_meta(dtype, len(shape)))
    return _wrap(arr, dev, res.tags)


def _zarr_chunks(fname: str, chunks: Any, dask_chunks: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
    """The zarr chunk shape: *chunks* as given, or the dask array's own (its first chunk per axis)."""
    ndim = len(dask_chunks)
    if chunks is None:
        return tuple(max(1, c[0] if c else 1) for c in dask_chunks)
    if isinstance(chunks, int) and not isinstance(chunks, bool):
        chunks = (chunks,) * ndim
    if not isinstance(chunks, (tuple, list)) or len(chunks) != ndim or not all(
        isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in chunks
    ):
        raise InvalidArgumentError(
            f"{fname}: chunks must be None (the dask array's chunks), a positive int or a tuple of {ndim} "
            f"positive ints, got {chunks!r}"
        )
    return tuple(int(c) for c in chunks)


def _aligned(dask_chunks: tuple[tuple[int, ...], ...], zchunks: tuple[int, ...]) -> bool:
    """Whether every dask block covers whole zarr chunks (so no two tasks write one chunk)."""
    for c, z in zip(dask_chunks, zchunks):
        starts = list(itertools.accumulate((0, *c[:-1])))
        if any(s % z for s in starts):
            return False
    return True


def save(x: Array, url: str, chunks: Any = None, *, name: str | None = None, dims: Sequence[str] | None = None,
         attrs: Mapping[str, Any] | None = None, callback: Any = None) -> str:
    """``hpcai.storage.save`` of a ``dask``-device array: the chunks are written by the workers
    into a new version, committed once by the client (see the module)."""
    from hpcai import residency

    from ._arrays import (
        _check_attrs,
        _check_dims,
        _check_name,
        _codecs,
        _progress,
        _VersionWriter,
    )

    fname = "hpcai.storage.save"
    ep, rel = parse_url(url, fname=fname)
    if not rel:
        raise InvalidArgumentError(f"{fname}: {url!r} names the endpoint root; give a path, e.g. {ep.url_for('data/x.zarr')!r}")
    native = x._data
    if any(isinstance(n, float) and math.isnan(n) for n in native.shape):
        raise InvalidArgumentError(
            f"{fname}: the dask array's shape {tuple(native.shape)} is not known (after boolean indexing); "
            "persist it and compute its chunk sizes first"
        )
    if name is not None:
        _check_name(fname, name)
    dim_names = _check_dims(fname, dims, native.ndim)
    user_attrs = _check_attrs(fname, attrs)
    progress = _progress(fname, callback)
    dtype = np.dtype(native.dtype)
    shape = tuple(int(n) for n in native.shape)
    nbytes = int(math.prod(shape) * dtype.itemsize)
    own = x._tags
    ledger = _taint.current()
    tags = union(own, ledger)
    try:
        decision = residency.enforce("store", tags, ep.attributes, destination=ep.name, source="dask",
                                     nbytes=nbytes, dataset=ep.url_for(rel), operation="save")
    except ResidencyError as exc:
        extra = ledger - own if ledger and own else ledger
        if extra:
            raise ResidencyError(f"{exc}. {_taint.describe(extra)}", decision=exc.decision) from None
        raise
    try:
        from zarr.core.dtype import parse_dtype

        parse_dtype(dtype, zarr_format=3)
    except ImportError:
        raise
    except Exception:
        raise DTypeError(f"{fname}: dtype {dtype} cannot be stored in zarr v3; cast it first (x.astype(...))") from None
    zchunks = _zarr_chunks(fname, chunks, native.chunks)
    if not _aligned(native.chunks, zchunks):
        native = native.rechunk(zchunks)  # lazy: on the workers, under the same restriction
    b = _backend()
    c = b.client()
    if tags:  # refused before anything is written when no worker may hold the data
        b.allowed_workers(tags, fname, wait=False)
    w = _VersionWriter(ep, rel, fname, tags, decision, None)

    async def begin() -> tuple[dict[str, Any], str]:
        import zarr.api.asynchronous as za

        stable, attributes = w.array_layout(await w.begin(), name, user_attrs)
        try:
            await za.create_array(w.store, shape=shape, dtype=dtype, chunks=zchunks, compressors=_codecs(),
                                  attributes=attributes, dimension_names=dim_names,
                                  config={"write_empty_chunks": True}, zarr_format=3)
        except BaseException as exc:
            raise await w.abort(exc) from None
        return w.held_meta(), stable

    meta, stable = _zsync(begin())
    if progress is not None:
        progress.expect(nbytes)
    try:
        target = _Target(ep.name, rel, w.vpath, w.version, meta, tags, _carried(tags), True)
        _write_on_workers(b, c, native, ChunkWriter(target), tags, fname, progress)
        _zsync(w.finish_chunks())
    except BaseException as exc:
        raise _zsync(w.abort(exc)) from None
    version = _zsync(w.commit_array(stable, meta, shape, dtype))
    if progress is not None:
        progress.finish()
    return str(version)


#: After a failed chunk write, how long the other chunk tasks get to finish before the partial
#: version is removed (a task still writing after that may leave a few chunks behind in the
#: unreferenced version directory, which a later save removes once it is an hour old).
SETTLE_SECONDS = 10.0


def _wait(c: Any, futures: list[Any], timeout: float, return_when: str) -> Any:
    """``distributed.wait`` on *c* (not the default client: the device's client is not one)."""
    from distributed.client import _wait as wait

    return c.sync(wait, futures, timeout=timeout, return_when=return_when)


def _write_on_workers(b: Any, c: Any, native: Any, writer: ChunkWriter, tags: TagSet | None, fname: str,
                      progress: Any) -> None:
    """One write task per block of *native*, restricted to allowed workers; returns once every one
    succeeded, raises the first failure (after the others settled)."""
    from dask._task_spec import Task, TaskRef
    from dask.array.core import slices_from_chunks
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    import hpcai.distributed as hd

    wname = f"hpcai-save-{uuid.uuid4().hex}"
    dsk: dict[Any, Any] = {}
    idxs = itertools.product(*[range(len(ch)) for ch in native.chunks])
    for idx, region in zip(idxs, slices_from_chunks(native.chunks)):
        key = (wname, *idx)
        dsk[key] = Task(key, writer, TaskRef((native.name, *idx)), tuple(region))
    graph = HighLevelGraph.from_collections(wname, dsk, dependencies=[native])  # type: ignore[arg-type]
    res = hd.resources_for(tags) if tags else {}
    futures = c.compute([Delayed(k, graph, layer=wname) for k in dsk], resources=res or None)
    pending = set(futures)
    try:
        while pending:
            try:
                done, pending_ = _wait(c, list(pending), 1.0, "FIRST_COMPLETED")
            except TimeoutError:
                if res:  # waiting for an allowed worker: give up, naming the rule, if none is left
                    b.allowed_workers(tags, fname, wait=True)
                continue
            pending = set(pending_)
            for f in done:
                if f.status != "finished":
                    f.result()  # raises the task's error
            if progress is not None:
                for n in c.gather([f for f in done]):
                    progress.add(int(n))
    except BaseException:
        try:  # the other writes finish (or fail) before the version is removed
            _wait(c, list(pending), SETTLE_SECONDS, "ALL_COMPLETED")
        except BaseException:
            pass
        c.cancel(futures)
        raise
