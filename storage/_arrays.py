"""Arrays on storage: ``save``, ``load`` and lazy ``open``, through zarr v3.

A dataset saved by :func:`save` at ``hpcai://ep/path.zarr`` is a zarr *group* whose
``zarr.json`` is the commit pointer; each save writes a complete new array version under
``path.zarr/v<time>-<id>/`` and then replaces the pointer in one atomic write::

    path.zarr/zarr.json              group; attributes.hpcai = {head, versions, tags, name, ...}
                                     + consolidated metadata of the head version's array
    path.zarr/v20260101T120000123Z-ab12cd34/zarr.json   written last: a version without it
    path.zarr/v20260101T120000123Z-ab12cd34/c/0/0 ...   is invisible to zarr and to load()

The array also appears at a stable path, ``path.zarr/<name>`` (``name=``, by default the
stem ``path``): the pointer's consolidated metadata lists it there, and the ``hpcai://``
filesystem reads ``path.zarr/<name>/...`` from the head version (see :mod:`._layout`), so
``xr.open_zarr("hpcai://ep/path.zarr")`` shows one variable ``<name>`` with its ``dims``
and ``attrs``. Readers resolve the pointer once and read that version only, so they see
the previous complete version or the new complete one, never a mixture; an interrupted
save leaves the pointer (and so the previous version) untouched. Chunks are
zstd-compressed and carry a CRC32C (zarr's ``crc32c`` codec); a mismatch or a missing
chunk raises :class:`~hpcai.errors.ChecksumError` naming the chunk. Plain zarr (and
dask) read the same data through ``hpcai://`` URLs.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from hpcai._array import Array, _wrap
from hpcai._device import Device, DeviceLike, resolve_device
from hpcai._tags import TagSet, as_mapping, to_text, union
from hpcai.errors import (
    ArrayIndexError,
    ChecksumError,
    DTypeError,
    HpcaiError,
    InvalidArgumentError,
    ResidencyError,
    StorageError,
    StorageNotFoundError,
)

from . import _layout, _taint
from ._endpoints import Endpoint, parse_url
from ._filesystem import EndpointFileSystem, endpoint_filesystem
from ._posix import PROC_FD
from ._tags_io import tags_to_json

__all__ = ["StoredArray", "load", "open", "save"]

logger = logging.getLogger("hpcai.storage")

FORMAT = _layout.FORMAT
#: Versions kept after a save: the new head and its predecessor (readers of it keep working).
KEEP_VERSIONS = 2
#: Uncommitted versions (from interrupted saves) older than this are removed by later saves.
STALE_AFTER_SECONDS = 3600.0
_VERSION_RE = _layout.VERSION_RE


def _zsync(coro: Any) -> Any:
    """Run *coro* on zarr's event loop (where the asynchronous endpoint filesystems live)."""
    from zarr.core.sync import sync

    return sync(coro)


def _new_version() -> str:
    t = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f"{int((t % 1) * 1000):03d}"
    return f"v{stamp}Z-{uuid.uuid4().hex[:8]}"


def _version_age(name: str) -> float | None:
    m = _VERSION_RE.match(name)
    if m is None:
        return None
    s = m.group(1)
    t = time.mktime(time.strptime(s[:15], "%Y%m%dT%H%M%S")) - time.timezone + int(s[15:]) / 1000
    return time.time() - t


def _codecs() -> list[Any]:
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return [ZstdCodec(level=1), Crc32cCodec()]


def _buffer(data: bytes) -> Any:
    from zarr.core.buffer import default_buffer_prototype

    return default_buffer_prototype().buffer.from_bytes(data)


def _is_meta(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in _ZARR_META


class _Progress:
    """Byte-level progress through an fsspec ``Callback``: ``set_size(total)`` first, then one
    ``relative_update`` per chunk written or read, by the chunk's bytes in memory (its region of
    the array times the item size), so the updates of a whole save or load add up to the total.
    Updates never pass the total, and :meth:`finish` reports what is left (chunks a save did not
    have to write, or that a load found missing and filled in)."""

    def __init__(self, callback: Any) -> None:
        self.cb = callback
        self.total = 0
        self.sent = 0
        #: array path in the store ("" for a store rooted at the array) -> (shape, chunk shape, itemsize)
        self.grids: dict[str, tuple[tuple[int, ...], tuple[int, ...], int | None]] = {}

    def expect(self, total: int) -> None:
        self.total = max(int(total), 0)
        self.cb.set_size(self.total)

    def grid(self, prefix: str, meta: Mapping[str, Any]) -> None:
        """Register the chunk grid of the array at *prefix* (its ``zarr.json`` content)."""
        try:
            shape = tuple(int(n) for n in meta["shape"])
            chunk = tuple(int(n) for n in meta["chunk_grid"]["configuration"]["chunk_shape"])
        except (KeyError, TypeError, ValueError):
            return
        try:
            itemsize: int | None = np.dtype(str(meta.get("data_type"))).itemsize
        except TypeError:
            itemsize = None
        self.grids[prefix.strip("/")] = (shape, chunk, itemsize)

    def chunk_bytes(self, key: str) -> int | None:
        """The in-memory bytes of the chunk stored at *key*, ``None`` when unknown."""
        for prefix, (shape, chunk, itemsize) in self.grids.items():
            if prefix:
                if not key.startswith(prefix + "/"):
                    continue
                rest = key[len(prefix) + 1:]
            else:
                rest = key
            if itemsize is None or not (rest == "c" or rest.startswith("c/")):
                continue
            try:
                coords = [int(p) for p in rest.split("/")[1:]]
            except ValueError:
                continue
            if len(coords) != len(shape):
                continue
            n = itemsize
            for i, s, c in zip(coords, shape, chunk):
                n *= max(0, min(c, s - i * c))
            return n
        return None

    def chunk(self, key: str, fallback: int) -> None:
        n = self.chunk_bytes(key)
        self.add(fallback if n is None else n)

    def add(self, n: int) -> None:
        n = min(int(n), self.total - self.sent)
        if n > 0:
            self.sent += n
            self.cb.relative_update(n)

    def finish(self) -> None:
        self.add(self.total - self.sent)


def _progress(fname: str, callback: Any) -> _Progress | None:
    if callback is None:
        return None
    if not (callable(getattr(callback, "set_size", None)) and callable(getattr(callback, "relative_update", None))):
        raise InvalidArgumentError(
            f"{fname}: callback must be an fsspec.callbacks.Callback (with set_size and relative_update), "
            f"got {type(callback).__name__}; e.g. fsspec.callbacks.TqdmCallback()"
        )
    return _Progress(callback)


def _make_stores() -> tuple[type, type]:
    """The two zarr store wrappers (built lazily: zarr is an optional dependency)."""
    from zarr.storage import WrapperStore

    class DeferredMetadataStore(WrapperStore[Any]):
        """Holds back ``zarr.json`` until :meth:`flush`: a version appears only once complete.

        The store's prefix is a fresh version id, so no metadata can exist there yet: zarr's
        "is there already a node?" probes are answered from what is held, without a request
        (``save_dataset`` puts the metadata of the version it extends there first).
        """

        def __init__(self, store: Any, meta_store: Any = None, progress: _Progress | None = None) -> None:
            super().__init__(store)
            self.held: dict[str, Any] = {}
            self.meta_store = store if meta_store is None else meta_store
            self.progress = progress

        def _with_store(self, store: Any) -> Any:
            out = type(self)(store, self.meta_store, self.progress)
            out.held = self.held
            return out

        def hold(self, key: str, value: Any) -> None:
            self.held[key] = value
            if self.progress is not None:
                try:
                    meta = json.loads(value.to_bytes())
                except ValueError:
                    return
                if isinstance(meta, Mapping) and meta.get("node_type") == "array":
                    self.progress.grid(key.rpartition("/")[0], meta)

        async def set(self, key: str, value: Any, byte_range: Any = None) -> None:
            if key.rsplit("/", 1)[-1] == "zarr.json":
                self.hold(key, value)
            else:
                await self._store.set(key, value)
                if self.progress is not None:
                    self.progress.chunk(key, len(value))

        async def set_if_not_exists(self, key: str, value: Any) -> None:
            if key.rsplit("/", 1)[-1] == "zarr.json":
                if key not in self.held:
                    self.hold(key, value)
            else:
                await self._store.set_if_not_exists(key, value)

        async def _set_many(self, values: Iterable[tuple[str, Any]]) -> None:
            await asyncio.gather(*(self.set(k, v) for k, v in values))

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            if key in self.held and byte_range is None:
                return self.held[key]
            if _is_meta(key):
                return None
            return await self._store.get(key, prototype, byte_range)

        async def _get_many(self, requests: Iterable[tuple[str, Any, Any]]) -> Any:
            for key, prototype, byte_range in requests:
                yield key, await self.get(key, prototype, byte_range)

        async def exists(self, key: str) -> bool:
            if _is_meta(key):
                return key in self.held
            return bool(await self._store.exists(key))

        async def list_dir(self, prefix: str) -> Any:
            p = prefix.strip("/")
            seen: set[str] = set()
            try:
                async for name in self._store.list_dir(prefix):
                    if name not in seen and not _is_meta(name):
                        seen.add(name)
                        yield name
            except (FileNotFoundError, NotADirectoryError):
                pass
            for key in list(self.held):
                if p and not key.startswith(p + "/"):
                    continue
                child = key[len(p) + 1:] if p else key
                first = child.split("/", 1)[0]
                if first not in seen:
                    seen.add(first)
                    yield first

        async def flush(self) -> None:
            """Write the held metadata: the arrays' first, the version's root ``zarr.json`` last."""
            for key in sorted(self.held, key=lambda k: (k == "zarr.json", k)):
                await self.meta_store.set(key, self.held[key])

    class CheckedStore(WrapperStore[Any]):
        """A missing chunk of a complete hpcai version is damage, not a fill value.

        *names* (a dataset opened whole): the stable names shown, each mapped to the path of
        its array in the store, and *pointer* the ``zarr.json`` served at the root, i.e. the
        pointer as resolved, so that every read goes to the version it names.
        """

        def __init__(self, store: Any, where: str = "", complete: bool = False, progress: _Progress | None = None,
                     names: Mapping[str, str] | None = None, pointer: bytes | None = None) -> None:
            super().__init__(store)
            self.where = where
            self.complete = complete
            self.progress = progress
            self.names = names
            self.pointer = pointer

        def _with_store(self, store: Any) -> Any:
            return type(self)(store, self.where, self.complete, self.progress, self.names, self.pointer)

        def _map(self, key: str) -> str | None:
            if self.names is None:
                return key
            first, _, rest = key.partition("/")
            target = self.names.get(first)
            if target is None:
                return None
            return f"{target}/{rest}" if rest else target

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            if self.pointer is not None and key == "zarr.json" and byte_range is None:
                return prototype.buffer.from_bytes(self.pointer)
            real = self._map(key)
            if real is None:
                return None
            value = await self._store.get(real, prototype, byte_range)
            if _is_meta(key):
                return value
            if value is None and self.complete:
                raise ChecksumError(
                    f"chunk {real!r} of {self.where} is missing: the stored array is damaged "
                    "(every chunk of a saved version exists); restore it or save the data again"
                )
            if value is not None and byte_range is None and self.progress is not None:
                self.progress.chunk(key, len(value))
            return value

        async def _get_many(self, requests: Iterable[tuple[str, Any, Any]]) -> Any:
            for key, prototype, byte_range in requests:
                yield key, await self.get(key, prototype, byte_range)

        async def get_partial_values(self, prototype: Any, key_ranges: Iterable[tuple[str, Any]]) -> list[Any]:
            return [await self.get(k, prototype, r) for k, r in key_ranges]

        async def exists(self, key: str) -> bool:
            if self.pointer is not None and key == "zarr.json":
                return True
            real = self._map(key)
            return real is not None and bool(await self._store.exists(real))

        async def list_dir(self, prefix: str) -> Any:
            if self.names is not None and not prefix.strip("/"):
                yield "zarr.json"
                for name in self.names:
                    yield name
                return
            real = self._map(prefix.strip("/")) if prefix.strip("/") else ""
            if real is None:
                return
            async for name in self._store.list_dir(real):
                yield name

    return DeferredMetadataStore, CheckedStore


def _routed_store(default: Any, routes: Mapping[str, Any]) -> Any:
    """A store that sends ``<name>/<key>`` to ``routes[name]`` (rooted at ``<name>``) and everything
    else to *default*: each variable of a dataset is written through a filesystem view granted
    its own tags, so its objects carry them (and no others)."""
    from zarr.storage import WrapperStore

    class RoutedStore(WrapperStore[Any]):
        def __init__(self, store: Any, routes: Mapping[str, Any]) -> None:
            super().__init__(store)
            self.routes = dict(routes)

        def _with_store(self, store: Any) -> Any:
            return type(self)(store, self.routes)

        def _route(self, key: str) -> tuple[Any, str]:
            first, sep, rest = key.partition("/")
            if sep and first in self.routes:
                return self.routes[first], rest
            return self._store, key

        async def set(self, key: str, value: Any, byte_range: Any = None) -> None:
            store, k = self._route(key)
            await store.set(k, value)

        async def set_if_not_exists(self, key: str, value: Any) -> None:
            store, k = self._route(key)
            await store.set_if_not_exists(k, value)

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            store, k = self._route(key)
            return await store.get(k, prototype, byte_range)

        async def exists(self, key: str) -> bool:
            store, k = self._route(key)
            return bool(await store.exists(k))

        async def delete(self, key: str) -> None:
            store, k = self._route(key)
            await store.delete(k)

    return RoutedStore(default, routes)


_ZARR_META = frozenset({"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})
_stores: tuple[type, type] | None = None


def _store_classes() -> tuple[type, type]:
    global _stores
    if _stores is None:
        _stores = _make_stores()
    return _stores


def _umask() -> int:
    try:
        with builtins.open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _staging_store(fs: EndpointFileSystem, vpath: str) -> tuple[Any, Callable[[bool], None]]:
    """The store that receives a new version's chunks directly, if there is one, and the function
    to call (``done(ok)``) when the chunks are written.

    POSIX endpoints on Linux: a zarr ``LocalStore`` rooted at ``/proc/self/fd/<n>``, a
    descriptor of the version directory, which is created here (``mkdirat``, mode 0700, so
    never an existing path or link and writable by no one else while the save runs) in a
    parent reached by the confined walk. Through the descriptor, no later swap of the
    directory or of any parent for a symbolic link can redirect a chunk; the directory gets
    its ordinary permissions when the chunks are written. The directory is unreferenced
    until the pointer switch and its chunks are governed by the version's tags, so they skip
    the per-file checks and tags of *fs*. Elsewhere ``None``: chunks go through *fs*.
    """
    b = fs._s.beneath
    if b is not None and PROC_FD:
        from zarr.storage import LocalStore

        fname = "hpcai.storage.save"
        fs._full(vpath, fname)
        try:
            with b.parent(vpath, fname, create=True) as (dfd, name):
                os.mkdir(name, 0o700, dir_fd=dfd)
                vfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=dfd)
        except HpcaiError:
            raise
        except OSError as exc:
            raise StorageError(f"{fname}: cannot create the new version {fs.endpoint.url_for(vpath)}: {exc}") from None

        closed: list[bool] = []

        def done(ok: bool) -> None:
            if closed:
                return
            closed.append(True)
            try:
                if ok:
                    os.fchmod(vfd, 0o777 & ~_umask())
            finally:
                os.close(vfd)

        return LocalStore(b.proc_path(vfd)), done
    return None, lambda ok: None


def _fsspec_store(fs: EndpointFileSystem, path: str, read_only: bool) -> Any:
    import warnings

    from zarr.storage import FsspecStore

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FsspecStore(fs, path=path, read_only=read_only)


# --------------------------------------------------------------------------------------------
# reading the pointer
# --------------------------------------------------------------------------------------------
async def _read_json(fs: EndpointFileSystem, rel: str) -> dict[str, Any] | None:
    path = f"{rel}/zarr.json" if rel else "zarr.json"
    try:
        raw = await fs._read_internal(path)
    except (StorageNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    try:
        meta = json.loads(raw)
    except ValueError:
        raise StorageError(f"{fs.endpoint.url_for(path)} is not valid JSON; the dataset metadata is damaged") from None
    return meta if isinstance(meta, dict) else None


def _dataset_info(meta: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return _layout.dataset_info(meta)


class _Resolved:
    """What a URL points at: the array version to read, its tags and size, and its metadata as
    read while resolving (served to zarr, which would otherwise read it a second time)."""

    def __init__(self, ep: Endpoint, rel: str, vpath: str, version: str | None, tags: TagSet | None,
                 shape: tuple[int, ...], dtype: str, complete: bool, meta: Mapping[str, Any] | None = None) -> None:
        self.ep = ep
        self.meta = meta
        self.rel = rel
        self.vpath = vpath
        self.version = version
        self.tags = tags
        self.shape = shape
        self.dtype = dtype
        self.complete = complete

    @property
    def nbytes(self) -> int:
        try:
            return int(math.prod(self.shape) * np.dtype(self.dtype).itemsize)
        except TypeError:
            return 0


def _no_array(fname: str, ep: Endpoint, rel: str, what: str) -> StorageNotFoundError:
    url = ep.url_for(rel)
    return StorageNotFoundError(
        f"{fname}: no array at {url}: {ep.describe()} has {what} there; save one with hpcai.storage.save(x, {url!r})"
    )


async def _resolve(fs: EndpointFileSystem, ep: Endpoint, rel: str, fname: str) -> _Resolved:
    """Resolve *rel*: a dataset saved by ``save`` (its pointer), a stable name inside a dataset
    (``ds.zarr/<name>``), or any zarr array (a version, or one written with plain zarr)."""
    url = ep.url_for(rel)
    # The node and the nodes above it are looked up concurrently (the latter are mostly cached).
    node, up = await asyncio.gather(fs._node_meta(rel, fresh=True), fs._above(rel))
    meta = node.meta
    if not node.is_node or meta is None:
        if node.is_node:
            raise StorageError(f"{fname}: {url}/zarr.json is not valid JSON; the dataset metadata is damaged")
        ds, _, leaf = rel.rpartition("/")
        if ds:
            pnode = await fs._node_meta(ds, fresh=True)
            view = _layout.stable_view(pnode.meta) if pnode.is_node else None
            if view is not None and leaf in view.names:
                return await _resolve_dataset(fs, ep, ds, pnode, fname, rel=rel, name=leaf)
        try:
            info = await fs._info(rel)
        except StorageNotFoundError:
            info = None
        raise _no_array(fname, ep, rel, "nothing" if info is None else f"a {info.get('type', 'file')} that is not a zarr array")
    if _dataset_info(meta) is not None:
        return await _resolve_dataset(fs, ep, rel, node, fname, above=up)
    # The tags: those in each zarr.json's content *and* those stored with the object (object tags,
    # xattrs, sidecar), of the node and of every node above.
    if meta.get("node_type") == "array":
        h = (meta.get("attributes") or {}).get("hpcai")
        complete = isinstance(h, Mapping) and bool(h.get("complete"))
        return _Resolved(ep, rel, rel, None, union(node.tags, up), tuple(meta.get("shape", ())),
                         str(meta.get("data_type", "")), complete, meta)
    raise InvalidArgumentError(
        f"{fname}: {url} is a zarr group, not an array; open one of its arrays, e.g. {url}/<name>"
    )


async def _resolve_dataset(fs: EndpointFileSystem, ep: Endpoint, ds: str, node: Any, fname: str,
                           rel: str | None = None, name: str | None = None, above: Any = False) -> _Resolved:
    """The array of the dataset *ds* (pointer *node*) that *name* shows, or its only array.

    Tags: layout "array" (``save``): the pointer's, the head version's and those of every node
    above the dataset, each counted both ways (content and stored with the object). Layout
    "group" (``save_dataset``): the variable's own (its ``zarr.json``), the version group's
    (tags given to the whole dataset, e.g. by the read-taint ledger) and those above; the
    pointer's (the union over the variables, for whoever reads the whole dataset) are not the
    variable's. *above*: the tags of the nodes above *ds* when already looked up.
    """

    async def up() -> TagSet | None:
        return await fs._above(ds) if above is False else above

    url = ep.url_for(ds)
    info = _dataset_info(node.meta)
    assert info is not None
    head = str(info["head"])
    view = _layout.stable_view(node.meta)
    if view is not None and view.layout == "group":
        if name is None:
            raise InvalidArgumentError(
                f"{fname}: {url} is a dataset of {len(view.names)} variables ({', '.join(sorted(view.names))}); load "
                f"one of them ({url}/<variable>) or open it whole with hpcai.storage.open_dataset({url!r})"
            )
        vpath = f"{ds}/{view.names[name]}"
        vnode, gnode, up_tags = await asyncio.gather(
            fs._node_meta(vpath, fresh=True), fs._node_meta(f"{ds}/{head}", fresh=True), up()
        )
        if not vnode.is_node or vnode.meta is None or not gnode.is_node:
            raise StorageError(
                f"{fname}: {url} points at version {head}, whose variable {name!r} is missing: the dataset is "
                "damaged (was it partly deleted outside hpcai?)"
            )
        tags = union(union(vnode.tags, gnode.tags), up_tags)
        vmeta = vnode.meta
    else:
        vpath = f"{ds}/{head}"
        vnode, up_tags = await asyncio.gather(fs._node_meta(vpath, fresh=True), up())
        if not vnode.is_node or vnode.meta is None:
            raise StorageError(
                f"{fname}: {url} points at version {head}, which is missing: the dataset is damaged (was it "
                "partly deleted outside hpcai?)"
            )
        tags = union(union(node.tags, vnode.tags), up_tags)
        vmeta = vnode.meta
    return _Resolved(ep, rel or ds, vpath, head, tags, tuple(vmeta.get("shape", ())), str(vmeta.get("data_type", "")),
                     True, vmeta)


# --------------------------------------------------------------------------------------------
# save
# --------------------------------------------------------------------------------------------
def _as_array(fname: str, x: Any) -> tuple[np.ndarray, TagSet | None, str]:
    if x.__class__ is Array:
        dev: Device = x._device
        host = dev._backend.to_host(x._data, dev)
        return np.asarray(host), x._tags, dev.spec.name
    if isinstance(x, np.ndarray):
        return x, None, "numpy:cpu"
    raise DTypeError(
        f"{fname}: expected an hpcai Array (or a NumPy array), got {type(x).__name__}; convert it with xp.asarray(x)"
    )


def _check_chunks(fname: str, chunks: Any, shape: tuple[int, ...]) -> Any:
    if chunks is None:
        return "auto"
    if isinstance(chunks, int) and not isinstance(chunks, bool):
        chunks = (chunks,) * len(shape)
    if not isinstance(chunks, (tuple, list)) or len(chunks) != len(shape) or not all(
        isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in chunks
    ):
        raise InvalidArgumentError(
            f"{fname}: chunks must be None (automatic), a positive int or a tuple of {len(shape)} positive ints "
            f"(one per axis of the shape {shape}), got {chunks!r}"
        )
    return tuple(int(c) for c in chunks)


def _check_dims(fname: str, dims: Any, ndim: int) -> tuple[str, ...]:
    if dims is None:
        return tuple(f"dim_{i}" for i in range(ndim))
    if isinstance(dims, str):
        dims = (dims,)
    if (
        not isinstance(dims, (tuple, list))
        or len(dims) != ndim
        or not all(isinstance(d, str) and d for d in dims)
        or len(set(dims)) != len(dims)
    ):
        raise InvalidArgumentError(
            f"{fname}: dims must be None (dim_0, dim_1, ...) or {ndim} distinct non-empty names, one per axis, "
            f"got {dims!r}"
        )
    return tuple(dims)


def _jsonable(fname: str, key: str, value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(fname, f"{key}.{k}", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(fname, key, v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise InvalidArgumentError(
        f"{fname}: attribute {key!r} is a {type(value).__name__}; attributes must be JSON values "
        "(str, int, float, bool, None, lists and dicts of them)"
    )


def _check_attrs(fname: str, attrs: Any) -> dict[str, Any]:
    if attrs is None:
        return {}
    if not isinstance(attrs, Mapping):
        raise InvalidArgumentError(f"{fname}: attrs must be a mapping of JSON values, got {type(attrs).__name__}")
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if not isinstance(k, str):
            raise InvalidArgumentError(f"{fname}: attribute names must be strings, got {k!r}")
        if k == "hpcai":
            raise InvalidArgumentError(f"{fname}: the attribute name 'hpcai' is reserved for hpcai's bookkeeping (tags, versions)")
        out[k] = _jsonable(fname, k, v)
    return out


def _check_name(fname: str, name: Any) -> str:
    if not _layout.valid_name(name):
        raise InvalidArgumentError(
            f"{fname}: name must be one path component (no '/', not starting with '.', not 'zarr.json', not a "
            f"version name like 'v20260101T120000123Z-ab12cd34'), got {name!r}"
        )
    return str(name)


def save(
    x: Any,
    url: str,
    chunks: int | tuple[int, ...] | None = None,
    *,
    name: str | None = None,
    dims: Sequence[str] | None = None,
    attrs: Mapping[str, Any] | None = None,
    callback: Any = None,
) -> str:
    """Save an array at ``hpcai://<endpoint>/<path>`` as a new version; returns the version id.

    The array appears at the stable path ``<url>/<name>`` (``name``: by default the name it
    had at *url*, else the stem of the path, ``t2m`` for ``.../t2m.zarr``, else ``data``) with
    zarr v3 ``dimension_names`` *dims* (default ``dim_0, dim_1, ...``) and the user attributes
    *attrs*, so ``xr.open_zarr(url)`` opens it as the variable ``name``. *callback*: an
    ``fsspec.callbacks.Callback`` told the array's size in bytes (``set_size``), then each
    chunk's bytes as it is written (``relative_update``). A ``dask``-device array is written
    by the Dask workers (each through its own endpoint filesystem) into the new version, which
    is committed here once every chunk is stored (:mod:`._dask`).

    The residency check (``store`` of the array's tags on the endpoint) happens before
    anything is written; a denial raises :class:`~hpcai.errors.ResidencyError` and leaves
    the destination untouched. Readers see the previous version until the new one is
    complete.

    >>> import hpcai as xp, hpcai.storage as st, tempfile
    >>> _ = xp.configure(data={"endpoints": {"scratch": {"url": "file://" + tempfile.mkdtemp()}}})
    >>> v = st.save(xp.ones((4, 4)), "hpcai://scratch/ones.zarr", chunks=(2, 2), dims=("y", "x"))
    >>> v.startswith("v"), st.load("hpcai://scratch/ones.zarr/ones").shape
    (True, (4, 4))
    """
    from hpcai import residency

    fname = "hpcai.storage.save"
    if x.__class__ is Array and x._device.backend == "dask":  # chunks written by the workers
        from . import _dask

        return _dask.save(x, url, chunks, name=name, dims=dims, attrs=attrs, callback=callback)
    ep, rel = parse_url(url, fname=fname)
    if not rel:
        raise InvalidArgumentError(f"{fname}: {url!r} names the endpoint root; give a path, e.g. {ep.url_for('data/x.zarr')!r}")
    if x.__class__ is not Array and not isinstance(x, np.ndarray):
        _as_array(fname, x)
    if name is not None:
        _check_name(fname, name)
    dim_names = _check_dims(fname, dims, len(x.shape))
    user_attrs = _check_attrs(fname, attrs)
    progress = _progress(fname, callback)
    nbytes = int(getattr(x, "nbytes", 0))
    own = x._tags if x.__class__ is Array else None
    # An array built from bytes this process read raw carries no tags: the read-taint ledger does.
    ledger = _taint.current()
    tags = union(own, ledger)
    source = x._device.spec.name if x.__class__ is Array else "numpy:cpu"
    # The decision comes first: nothing is read back to the host or written when it denies.
    try:
        decision = residency.enforce("store", tags, ep.attributes, destination=ep.name, source=source,
                                     nbytes=nbytes, dataset=ep.url_for(rel), operation="save")
    except ResidencyError as exc:
        extra = ledger - own if ledger and own else ledger
        if extra:
            raise ResidencyError(f"{exc}. {_taint.describe(extra)}", decision=exc.decision) from None
        raise
    host, _, _ = _as_array(fname, x)
    host = np.asarray(host, order="C")
    try:
        from zarr.core.dtype import parse_dtype

        parse_dtype(host.dtype, zarr_format=3)
    except ImportError:
        raise
    except Exception:
        raise DTypeError(f"{fname}: dtype {host.dtype} cannot be stored in zarr v3; cast it first (x.astype(...))") from None
    chunk_spec = _check_chunks(fname, chunks, host.shape)
    w = _VersionWriter(ep, rel, fname, tags, decision, progress)

    async def run() -> str:
        import zarr.api.asynchronous as za

        stable, attributes = w.array_layout(await w.begin(), name, user_attrs)
        try:
            if progress is not None:
                progress.expect(host.nbytes)
            arr = await za.create_array(
                w.store,
                shape=host.shape,
                dtype=host.dtype,
                chunks=chunk_spec,
                compressors=_codecs(),
                attributes=attributes,
                dimension_names=dim_names,
                config={"write_empty_chunks": True},
                zarr_format=3,
            )
            if host.size:
                await arr.setitem(Ellipsis, host)
            await w.finish_chunks()
        except BaseException as exc:
            raise await w.abort(exc) from None
        version = await w.commit_array(stable, w.held_meta(), host.shape, host.dtype)
        if progress is not None:
            progress.finish()
        return version

    return _zsync(run())  # type: ignore[no-any-return]


class _VersionWriter:
    """Writes one new version of the dataset at *rel* and commits it: chunks, then the version's
    metadata, then the pointer (one atomic write), then the clean-up of old versions.

    ``begin`` (on zarr's loop) reads the previous pointer and opens the staging store
    (:attr:`store`, whose ``zarr.json`` writes are held back); ``finish_chunks`` writes the held
    metadata once every chunk is stored; ``commit`` replaces the pointer; ``abort`` removes the
    partial version and returns the error to raise.

    *routes* (``save_dataset``): the tags of each variable (top-level name of the version), whose
    objects are written through a view granted those tags; *common*: the tags of the version
    group itself. Without routes (``save``) everything is written with *tags*.
    """

    def __init__(self, ep: Endpoint, rel: str, fname: str, tags: TagSet | None, decision: Any,
                 progress: _Progress | None) -> None:
        self.ep = ep
        self.rel = rel
        self.fname = fname
        self.tags = tags
        self.decision = decision
        self.progress = progress
        self.url = ep.url_for(rel)
        self.version = _new_version()
        self.vpath = f"{rel}/{self.version}"
        self.prev: Mapping[str, Any] | None = None
        self.store: Any = None
        self.chunk_store: Any = None
        self._staged: Callable[[bool], None] = lambda ok: None

    async def begin(self, routes: Mapping[str, TagSet | None] | None = None, common: TagSet | None = None,
                    prev_meta: Mapping[str, Any] | None = None, known: bool = False) -> Mapping[str, Any] | None:
        """Open the staging store; returns the previous pointer's content (``None`` when new).
        *known*: *prev_meta* was read (and decided for) by the caller already."""
        base = endpoint_filesystem(self.ep.name, asynchronous=True)
        self.base = base
        self.fs = fs = base._granted(self.rel, self.tags, write=True, read=True, decision=self.decision)
        meta = prev_meta if known else await _read_json(fs, self.rel)
        if meta is not None:
            self.prev = _dataset_info(meta)
            if self.prev is None:
                raise InvalidArgumentError(
                    f"{self.fname}: {self.url} holds a zarr {meta.get('node_type', 'node')} that was not saved by "
                    "hpcai.storage; choose another path or remove it first (hpcai rm -r)"
                )
        elif await fs._exists(self.rel) and (await fs._info(self.rel)).get("type") != "directory":
            raise InvalidArgumentError(f"{self.fname}: {self.url} is a file; choose another path or remove it first")
        local, self._staged = _staging_store(fs, self.vpath)
        if routes is None:
            vfs = base._granted(self.vpath, self.tags, write=True, read=True, decision=self.decision, fresh=True)
            meta_store = _fsspec_store(vfs, self.vpath, read_only=False)
        else:
            def view(path: str, t: TagSet | None) -> Any:
                g = base._granted(path, t, write=True, read=True, decision=self.decision, fresh=True)
                return _fsspec_store(g, path, read_only=False)

            meta_store = _routed_store(view(self.vpath, common),
                                       {n: view(f"{self.vpath}/{n}", t) for n, t in routes.items()})
        self.chunk_store = meta_store if local is None else local
        deferred_cls, _ = _store_classes()
        self.store = deferred_cls(self.chunk_store, meta_store, self.progress)
        return meta

    def array_layout(self, prev: Mapping[str, Any] | None, name: str | None,
                     user_attrs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """``(stable name, attributes)`` of the one array of a dataset saved by ``save``: the name
        given, else the previous version's, else the default for the path; the array's
        attributes are the user's plus hpcai's bookkeeping (tags, dataset, version)."""
        prev_view = _layout.stable_view(prev) if prev is not None else None
        stable = name or (next(iter(prev_view.names)) if prev_view is not None and prev_view.layout == "array"
                          else _layout.default_name(self.rel))
        hp = {"tags": tags_to_json(self.tags), "dataset": self.url, "version": self.version, "complete": True}
        return stable, {**user_attrs, "hpcai": hp}

    def held_meta(self) -> dict[str, Any]:
        """The version's array metadata as zarr wrote it (held until :meth:`finish_chunks`)."""
        return json.loads(self.store.held["zarr.json"].to_bytes())  # type: ignore[no-any-return]

    async def commit_array(self, stable: str, meta: Mapping[str, Any], shape: tuple[int, ...], dtype: Any) -> str:
        """:meth:`commit` for ``save``'s layout: one array shown at *stable*."""
        pointer_hp = {"layout": "array", "name": stable, "shape": list(shape), "dtype": str(dtype)}
        return await self.commit({}, pointer_hp, {stable: meta})

    async def finish_chunks(self) -> None:
        self._staged(True)
        await self.store.flush()

    async def abort(self, exc: BaseException) -> BaseException:
        try:
            self._staged(False)
        except OSError:
            pass
        try:
            await asyncio.wait_for(_remove_version(self.fs, self.vpath), timeout=10)
        except BaseException:  # best effort: the server may be gone; later saves remove stale versions
            pass
        head = self.prev.get("head") if self.prev else None
        if isinstance(exc, StorageError):
            return type(exc)(
                f"{self.fname}: {self.url}: the new version {self.version} was not committed; "
                f"{'the previous version ' + str(head) + ' is unchanged' if head else 'nothing was published'}: {exc}"
            )
        return exc

    async def commit(self, attrs: Mapping[str, Any], hp: Mapping[str, Any], arrays: Mapping[str, Mapping[str, Any]],
                     pointer_tags: TagSet | None = None) -> str:
        """Replace the pointer: *attrs* (the dataset's attributes), *hp* (layout fields) and the
        consolidated metadata of *arrays* (stable name -> ``zarr.json`` content)."""
        prev = self.prev
        old = [v for v in (prev.get("versions") or [prev.get("head")]) if isinstance(v, str)] if prev else []
        versions = [self.version, *[v for v in old if v != self.version]][:KEEP_VERSIONS]
        tags = union(self.tags, pointer_tags)
        pointer = {
            "zarr_format": 3,
            "node_type": "group",
            "attributes": {
                **attrs,
                "hpcai": {
                    "format": FORMAT,
                    "head": self.version,
                    "versions": versions,
                    "tags": tags_to_json(tags),
                    **hp,
                    "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
            },
            "consolidated_metadata": _layout.consolidated(arrays),
        }
        await self.fs._commit(f"{self.rel}/zarr.json", json.dumps(pointer, indent=2).encode(), tags)
        try:
            await _collect_garbage(self.fs, self.rel, set(versions), set(old))
        except Exception as exc:  # the save is committed; old versions are removed by a later save
            logger.warning("%s: could not remove old versions of %s: %s", self.fname, self.url, exc)
        return self.version


async def _collect_garbage(fs: EndpointFileSystem, rel: str, keep: set[str], committed: set[str]) -> None:
    """Remove committed versions the pointer no longer lists, and uncommitted ones once clearly abandoned
    (a save still writing one elsewhere is younger than :data:`STALE_AFTER_SECONDS`)."""
    # The committed versions that the pointer dropped are removed while the dataset is listed
    # for abandoned ones (one round trip less on object stores).
    dropped = {v for v in committed - keep if _version_age(v) is not None}

    async def abandoned() -> None:
        for entry in await fs._ls(rel, detail=True):
            name = str(entry["name"]).rsplit("/", 1)[-1]
            age = _version_age(name)
            if age is None or name in keep or name in dropped:
                continue
            if name in committed or age > STALE_AFTER_SECONDS:
                await _remove_version(fs, f"{rel}/{name}")

    await asyncio.gather(abandoned(), *(_remove_version(fs, f"{rel}/{v}") for v in sorted(dropped)))


async def _remove_version(fs: EndpointFileSystem, vpath: str) -> None:
    """Delete one version directory (on POSIX one descriptor-based ``rmtree``, never following links)."""
    await fs._rm(vpath, recursive=True)


# --------------------------------------------------------------------------------------------
# load and open
# --------------------------------------------------------------------------------------------
def _device_arg(fname: str, device: DeviceLike | None) -> Device:
    return resolve_device(device)


async def _open_async(url: str, dev: Device, fname: str, progress: _Progress | None = None) -> tuple[_Resolved, Any]:
    import zarr.api.asynchronous as za

    from hpcai import residency

    ep, rel = parse_url(url, fname=fname)
    if not rel:
        raise InvalidArgumentError(f"{fname}: {url!r} names the endpoint root; give the path of an array")
    base = endpoint_filesystem(ep.name, asynchronous=True)
    res = await _resolve(base, ep, rel, fname)
    d = residency.enforce("compute", res.tags, dev.spec.attributes, destination=dev.spec.name, source=ep.name,
                          nbytes=res.nbytes, dataset=ep.url_for(rel), operation=fname.rsplit(".", 1)[-1])
    fs = base._granted(res.vpath, res.tags, read=True, decision=d, small=_small_chunks(res.meta))
    _, checked_cls = _store_classes()
    where = f"{ep.url_for(rel)}" + (f" (version {res.version})" if res.version else "")
    # zarr is handed the version's metadata as resolved: no second read, and no window in which
    # another writer's metadata could be read with this version's decision.
    served = json.dumps(res.meta).encode() if res.meta is not None else None
    store = checked_cls(_fsspec_store(fs, res.vpath, read_only=True), where, res.complete, progress, pointer=served)
    arr = await za.open_array(store=store, zarr_format=3)
    if progress is not None:
        progress.grid("", arr.metadata.to_dict())
        progress.expect(res.nbytes)
    return res, arr


#: Chunks (or shards) up to this size are read whole in one request (see ``_Grant.small``).
SMALL_CHUNK_BYTES = 32 * 2**20


def _small_chunks(meta: Mapping[str, Any] | None) -> bool:
    """Whether every chunk (shard) of the array described by *meta* holds at most
    :data:`SMALL_CHUNK_BYTES` before compression (compressed chunks are rarely larger)."""
    try:
        grid = meta["chunk_grid"]["configuration"]["chunk_shape"]  # type: ignore[index]
        return 0 < math.prod(int(c) for c in grid) * np.dtype(str(meta["data_type"])).itemsize <= SMALL_CHUNK_BYTES  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return False


def _verify_chunk(raw: bytes) -> bool:
    import google_crc32c

    if len(raw) < 4:
        return False
    return int.from_bytes(raw[-4:], "little") == google_crc32c.value(raw[:-4])


def _chunk_keys(arr: Any, selection: Any) -> list[str]:
    meta = arr.metadata
    try:
        from zarr.core.indexing import BasicIndexer

        indexer = BasicIndexer(selection, arr.shape, meta.chunk_grid)
        coords = [p.chunk_coords for p in indexer]
    except Exception:
        import itertools

        shape = meta.chunk_grid.chunk_shape
        coords = list(itertools.product(*(range(math.ceil(s / c)) for s, c in zip(arr.shape, shape))))
    return [meta.encode_chunk_key(c) for c in coords]


async def _locate_damage(arr: Any, res: _Resolved, selection: Any, exc: BaseException) -> ChecksumError:
    from zarr.core.buffer import default_buffer_prototype

    bad: list[str] = []
    uses_crc = any(type(c).__name__ == "Crc32cCodec" for c in arr.metadata.codecs)
    if uses_crc:
        for key in _chunk_keys(arr, selection):
            buf = await arr.store_path.store.get(f"{arr.store_path.path}/{key}".lstrip("/"), default_buffer_prototype())
            if buf is not None and not _verify_chunk(buf.to_bytes()):
                bad.append(key)
                if len(bad) >= 5:
                    break
    where = res.ep.url_for(res.rel) + (f" (version {res.version})" if res.version else "")
    if bad:
        names = ", ".join(repr(b) for b in bad)
        return ChecksumError(
            f"checksum mismatch in chunk {names} of {where}: the stored bytes are corrupt; nothing was returned. "
            "Restore the chunk from a copy or save the data again"
        )
    return ChecksumError(f"checksum mismatch while reading {where}: {exc}")


async def _read(arr: Any, res: _Resolved, selection: Any) -> Any:
    whole = selection is Ellipsis
    if whole and arr.ndim == 0:
        selection = ()
    try:
        out = await arr.getitem(selection)
        return np.asarray(out).reshape(arr.shape) if whole else out
    except HpcaiError:
        raise
    except (IndexError, TypeError) as exc:
        raise ArrayIndexError(f"hpcai.storage: index {selection!r} for {res.ep.url_for(res.rel)} of shape {res.shape}: {exc}") from None
    except ValueError as exc:
        if "checksum" in str(exc).lower():
            raise await _locate_damage(arr, res, selection, exc) from None
        raise InvalidArgumentError(f"hpcai.storage: reading {res.ep.url_for(res.rel)}: {exc}") from None


def _to_device(host: Any, dev: Device, tags: TagSet | None) -> Array:
    host = np.asarray(host)
    native = host if dev.is_host else dev._backend.from_host(host, dev, copy=True)
    return _wrap(native, dev, tags)


def load(url: str, device: DeviceLike | None = None, *, callback: Any = None, chunks: Any = None) -> Array:
    """Load the array at *url* onto *device* (default: the default device), with its tags.

    *url*: a dataset saved by :func:`save`, a stable name inside one (``.../t2m.zarr/t2m``,
    also a variable of a dataset saved by :func:`save_dataset`), or any zarr array.
    A ``compute`` decision for the stored tags on *device* comes first: a denial raises
    :class:`~hpcai.errors.ResidencyError` before any chunk is read. *callback*: an
    ``fsspec.callbacks.Callback`` told the array's size in bytes, then each chunk's bytes as
    it is read.

    ``device="dask"``: a lazy ``dask``-device array whose chunks (*chunks*: dask's chunk forms;
    default the stored chunks) are read by the Dask workers, each deciding for its own site
    (:mod:`._dask`); nothing is read here.

    >>> import hpcai as xp, hpcai.storage as st, tempfile
    >>> _ = xp.configure(data={"endpoints": {"scratch": {"url": "file://" + tempfile.mkdtemp()}}})
    >>> _ = st.save(xp.tag(xp.arange(3.0), origin="DE"), "hpcai://scratch/a.zarr")
    >>> y = st.load("hpcai://scratch/a.zarr", device="emulated:0")
    >>> str(y.device), sorted(y.tags["origin"])
    ('emulated:0', ['DE'])
    """
    fname = "hpcai.storage.load"
    dev = _device_arg(fname, device)
    if dev.backend == "dask":  # read on the workers
        from . import _dask

        return _dask.load(url, dev, chunks, callback=callback)
    if chunks is not None:
        raise InvalidArgumentError(f"{fname}: chunks= is for device='dask' (the chunks its workers read), not {dev}")
    progress = _progress(fname, callback)

    async def run() -> tuple[_Resolved, Any]:
        res, arr = await _open_async(url, dev, fname, progress)
        out = await _read(arr, res, Ellipsis)
        if progress is not None:
            progress.finish()
        return res, out

    res, host = _zsync(run())
    return _to_device(host, dev, res.tags)


class StoredArray:
    """A lazy handle on a stored array version: slicing reads only the chunks it needs.

    >>> import hpcai as xp, hpcai.storage as st, tempfile
    >>> _ = xp.configure(data={"endpoints": {"scratch": {"url": "file://" + tempfile.mkdtemp()}}})
    >>> _ = st.save(xp.reshape(xp.arange(16.0), (4, 4)), "hpcai://scratch/m.zarr", chunks=(2, 2))
    >>> h = st.open("hpcai://scratch/m.zarr")
    >>> h.shape, h[1, 2:4].shape
    ((4, 4), (2,))
    """

    __slots__ = ("_arr", "_res", "device")

    def __init__(self, res: _Resolved, arr: Any, device: Device) -> None:
        self._res = res
        self._arr = arr
        self.device = device

    @property
    def url(self) -> str:
        """The dataset's URL."""
        return self._res.ep.url_for(self._res.rel)

    @property
    def version(self) -> str | None:
        """The version this handle reads (fixed when opened)."""
        return self._res.version

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._arr.shape)

    @property
    def dtype(self) -> Any:
        return np.dtype(self._arr.dtype)

    @property
    def ndim(self) -> int:
        return len(self._arr.shape)

    @property
    def chunks(self) -> tuple[int, ...]:
        """The chunk shape on storage."""
        return tuple(self._arr.chunks)

    @property
    def nbytes(self) -> int:
        return int(math.prod(self.shape) * self.dtype.itemsize)

    @property
    def tags(self) -> MappingProxyType[str, frozenset[str]]:
        """The stored residency tags (carried by every slice)."""
        return as_mapping(self._res.tags)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d stored array")
        return self.shape[0]

    def __getitem__(self, key: Any) -> Array:
        """Read ``key`` (ints, slices, ``...``) onto the handle's device, with the stored tags."""
        keys = key if isinstance(key, tuple) else (key,)
        for k in keys:
            if not (k is Ellipsis or isinstance(k, slice) or (isinstance(k, (int, np.integer)) and not isinstance(k, bool))):
                raise ArrayIndexError(
                    f"StoredArray[{key!r}]: only integers, slices and ... are supported on stored arrays; "
                    "read a slice, then index the resulting array"
                )
        host = _zsync(_read(self._arr, self._res, key))
        return _to_device(host, self.device, self._res.tags)

    def read(self) -> Array:
        """The whole array (``h[...]``)."""
        return self[...]

    def __repr__(self) -> str:
        t = to_text(self.tags) or "untagged"
        return (
            f"<StoredArray {self.url} version={self.version} shape={self.shape} dtype={self.dtype} "
            f"chunks={self.chunks} device={self.device} tags: {t}>"
        )


def open(url: str, device: DeviceLike | None = None) -> StoredArray:
    """Open the array at *url* lazily for reading onto *device*; the ``compute`` check happens now.

    >>> import hpcai as xp, hpcai.storage as st, tempfile
    >>> _ = xp.configure(data={"endpoints": {"scratch": {"url": "file://" + tempfile.mkdtemp()}}})
    >>> _ = st.save(xp.arange(10), "hpcai://scratch/r.zarr", chunks=(5,))
    >>> st.open("hpcai://scratch/r.zarr")[7:].shape
    (3,)
    """
    fname = "hpcai.storage.open"
    dev = _device_arg(fname, device)
    if dev.backend == "dask":
        raise InvalidArgumentError(
            f"{fname}: for device='dask' use hpcai.storage.load({url!r}, device='dask'), which is lazy already: "
            "its chunks are read by the Dask workers when computed"
        )
    res, arr = _zsync(_open_async(url, dev, fname))
    return StoredArray(res, arr, dev)
