"""Arrays on storage: ``save``, ``load`` and lazy ``open``, through zarr v3.

A dataset saved by :func:`save` at ``hpcai://ep/path.zarr`` is a zarr *group* whose
``zarr.json`` is the commit pointer; each save writes a complete new array version under
``path.zarr/v<time>-<id>/`` and then replaces the pointer in one atomic write::

    path.zarr/zarr.json              group; attributes.hpcai = {head, versions, tags, ...}
    path.zarr/v20260101T120000123Z-ab12cd34/zarr.json   written last: a version without it
    path.zarr/v20260101T120000123Z-ab12cd34/c/0/0 ...   is invisible to zarr and to load()

Readers resolve the pointer once and read that version only, so they see the previous
complete version or the new complete one, never a mixture; an interrupted save leaves
the pointer (and so the previous version) untouched. Chunks are zstd-compressed and carry
a CRC32C (zarr's ``crc32c`` codec); a mismatch or a missing chunk raises
:class:`~hpcai.errors.ChecksumError` naming the chunk. Plain zarr (and dask) read the
same data through ``hpcai://`` URLs.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import math
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from hpcai._array import Array, _wrap
from hpcai._device import Device, DeviceLike, resolve_device
from hpcai._tags import TagSet, as_mapping, union
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

from . import _taint
from ._endpoints import Endpoint, parse_url
from ._filesystem import EndpointFileSystem, endpoint_filesystem
from ._posix import PROC_FD
from ._tags_io import tags_to_json

__all__ = ["StoredArray", "load", "open", "save"]

logger = logging.getLogger("hpcai.storage")

FORMAT = "hpcai.dataset/1"
#: Versions kept after a save: the new head and its predecessor (readers of it keep working).
KEEP_VERSIONS = 2
#: Uncommitted versions (from interrupted saves) older than this are removed by later saves.
STALE_AFTER_SECONDS = 3600.0
_VERSION_RE = re.compile(r"^v(\d{8}T\d{9})Z-[0-9a-f]{8}$")


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


def _make_stores() -> tuple[type, type]:
    """The two zarr store wrappers (built lazily: zarr is an optional dependency)."""
    from zarr.storage import WrapperStore

    class DeferredMetadataStore(WrapperStore[Any]):
        """Holds back ``zarr.json`` until :meth:`flush`: a version appears only once complete.

        The store's prefix is a fresh version id, so no metadata can exist there yet: zarr's
        "is there already a node?" probes are answered without a request.
        """

        def __init__(self, store: Any, meta_store: Any = None) -> None:
            super().__init__(store)
            self.held: dict[str, Any] = {}
            self.meta_store = store if meta_store is None else meta_store

        async def set(self, key: str, value: Any) -> None:
            if key.rsplit("/", 1)[-1] == "zarr.json":
                self.held[key] = value
            else:
                await self._store.set(key, value)

        async def set_if_not_exists(self, key: str, value: Any) -> None:
            if key.rsplit("/", 1)[-1] == "zarr.json":
                self.held.setdefault(key, value)
            else:
                await self._store.set_if_not_exists(key, value)

        async def _set_many(self, values: Iterable[tuple[str, Any]]) -> None:
            await asyncio.gather(*(self.set(k, v) for k, v in values))

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            if key in self.held and byte_range is None:
                return self.held[key]
            if key.rsplit("/", 1)[-1] in _ZARR_META:
                return None
            return await self._store.get(key, prototype, byte_range)

        async def exists(self, key: str) -> bool:
            if key.rsplit("/", 1)[-1] in _ZARR_META:
                return key in self.held
            return bool(await self._store.exists(key))

        async def flush(self) -> None:
            for key, value in self.held.items():
                await self.meta_store.set(key, value)

    class CheckedStore(WrapperStore[Any]):
        """A missing chunk of a complete hpcai version is damage, not a fill value."""

        def __init__(self, store: Any, where: str = "", complete: bool = False) -> None:
            super().__init__(store)
            self.where = where
            self.complete = complete

        def _with_store(self, store: Any) -> Any:
            return type(self)(store, self.where, self.complete)

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            value = await self._store.get(key, prototype, byte_range)
            if value is None and self.complete and key.rsplit("/", 1)[-1] != "zarr.json":
                raise ChecksumError(
                    f"chunk {key!r} of {self.where} is missing: the stored array is damaged "
                    "(every chunk of a saved version exists); restore it or save the data again"
                )
            return value

    return DeferredMetadataStore, CheckedStore


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
    """The store that receives a new version's chunks (its metadata goes through *fs*), and the
    function to call (``done(ok)``) when the chunks are written.

    POSIX endpoints on Linux: a zarr ``LocalStore`` rooted at ``/proc/self/fd/<n>``, a
    descriptor of the version directory, which is created here (``mkdirat``, mode 0700, so
    never an existing path or link and writable by no one else while the save runs) in a
    parent reached by the confined walk. Through the descriptor, no later swap of the
    directory or of any parent for a symbolic link can redirect a chunk; the directory gets
    its ordinary permissions when the chunks are written. The directory is unreferenced
    until the pointer switch and its chunks are governed by the version's tags, so they skip
    the per-file checks and tags of *fs*. Elsewhere: *fs* itself.
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
    return _fsspec_store(fs, vpath, read_only=False), lambda ok: None


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
    if meta.get("node_type") != "group":
        return None
    h = (meta.get("attributes") or {}).get("hpcai")
    if isinstance(h, Mapping) and h.get("format") == FORMAT and isinstance(h.get("head"), str):
        return h
    return None


class _Resolved:
    """What a URL points at: the array version to read, its tags and size."""

    def __init__(self, ep: Endpoint, rel: str, vpath: str, version: str | None, tags: TagSet | None,
                 shape: tuple[int, ...], dtype: str, complete: bool) -> None:
        self.ep = ep
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


async def _resolve(fs: EndpointFileSystem, ep: Endpoint, rel: str, fname: str) -> _Resolved:
    url = ep.url_for(rel)
    node = await fs._node_meta(rel, fresh=True)
    meta = node.meta
    if not node.is_node or meta is None:
        if node.is_node:
            raise StorageError(f"{fname}: {url}/zarr.json is not valid JSON; the dataset metadata is damaged")
        try:
            info = await fs._info(rel)
        except StorageNotFoundError:
            info = None
        what = "nothing" if info is None else f"a {info.get('type', 'file')} that is not a zarr array"
        raise StorageNotFoundError(
            f"{fname}: no array at {url}: {ep.describe()} has {what} there; save one with hpcai.storage.save(x, {url!r})"
        )
    # The tags: those in each zarr.json's content *and* those stored with the object (object tags,
    # xattrs, sidecar), of the dataset's pointer, of its head version and of every node above.
    up = await fs._above(rel)
    ds = _dataset_info(meta)
    if ds is not None:
        head = str(ds["head"])
        vnode = await fs._node_meta(f"{rel}/{head}", fresh=True)
        vmeta = vnode.meta
        if not vnode.is_node or vmeta is None:
            raise StorageError(
                f"{fname}: {url} points at version {head}, which is missing: the dataset is damaged (was it "
                "partly deleted outside hpcai?)"
            )
        tags = union(union(node.tags, vnode.tags), up)
        return _Resolved(ep, rel, f"{rel}/{head}", head, tags, tuple(vmeta.get("shape", ())),
                         str(vmeta.get("data_type", "")), True)
    if meta.get("node_type") == "array":
        h = (meta.get("attributes") or {}).get("hpcai")
        complete = isinstance(h, Mapping) and bool(h.get("complete"))
        return _Resolved(ep, rel, rel, None, union(node.tags, up), tuple(meta.get("shape", ())),
                         str(meta.get("data_type", "")), complete)
    raise InvalidArgumentError(
        f"{fname}: {url} is a zarr group, not an array; open one of its arrays, e.g. {url}/<name>"
    )


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


def save(x: Any, url: str, chunks: int | tuple[int, ...] | None = None) -> str:
    """Save an array at ``hpcai://<endpoint>/<path>`` as a new version; returns the version id.

    The residency check (``store`` of the array's tags on the endpoint) happens before
    anything is written; a denial raises :class:`~hpcai.errors.ResidencyError` and leaves
    the destination untouched. Readers see the previous version until the new one is
    complete.

    >>> import hpcai as xp, hpcai.storage as st, tempfile
    >>> _ = xp.configure(data={"endpoints": {"scratch": {"url": "file://" + tempfile.mkdtemp()}}})
    >>> v = st.save(xp.ones((4, 4)), "hpcai://scratch/ones.zarr", chunks=(2, 2))
    >>> v.startswith("v")
    True
    """
    from hpcai import residency

    fname = "hpcai.storage.save"
    ep, rel = parse_url(url, fname=fname)
    if not rel:
        raise InvalidArgumentError(f"{fname}: {url!r} names the endpoint root; give a path, e.g. {ep.url_for('data/x.zarr')!r}")
    if x.__class__ is not Array and not isinstance(x, np.ndarray):
        _as_array(fname, x)
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
    return _zsync(_save_async(ep, rel, host, tags, chunk_spec, decision))  # type: ignore[no-any-return]


async def _save_async(ep: Endpoint, rel: str, host: np.ndarray, tags: TagSet | None, chunks: Any, decision: Any) -> str:
    import zarr.api.asynchronous as za

    url = ep.url_for(rel)
    base = endpoint_filesystem(ep.name, asynchronous=True)
    fs = base._granted(rel, tags, write=True, read=True, decision=decision)
    meta = await _read_json(fs, rel)
    prev: Mapping[str, Any] | None = None
    if meta is not None:
        prev = _dataset_info(meta)
        if prev is None:
            raise InvalidArgumentError(
                f"hpcai.storage.save: {url} holds a zarr {meta.get('node_type', 'node')} that was not saved by "
                "hpcai.storage.save; choose another path or remove it first (hpcai rm -r)"
            )
    elif await fs._exists(rel) and (await fs._info(rel)).get("type") != "directory":
        raise InvalidArgumentError(f"hpcai.storage.save: {url} is a file; choose another path or remove it first")
    version = _new_version()
    vpath = f"{rel}/{version}"
    deferred_cls, _ = _store_classes()
    staging, staged = _staging_store(fs, vpath)
    store = deferred_cls(staging, _fsspec_store(fs, vpath, read_only=False))
    attrs: dict[str, Any] = {"hpcai": {"tags": tags_to_json(tags), "dataset": url, "version": version, "complete": True}}
    try:
        arr = await za.create_array(
            store,
            shape=host.shape,
            dtype=host.dtype,
            chunks=chunks,
            compressors=_codecs(),
            attributes=attrs,
            config={"write_empty_chunks": True},
            zarr_format=3,
        )
        if host.size:
            await arr.setitem(Ellipsis, host)
        staged(True)
        await store.flush()
    except BaseException as exc:
        try:
            staged(False)
        except OSError:
            pass
        try:
            await asyncio.wait_for(_remove_version(fs, vpath), timeout=10)
        except BaseException:  # best effort: the server may be gone; later saves remove stale versions
            pass
        head = prev.get("head") if prev else None
        if isinstance(exc, StorageError):
            raise type(exc)(
                f"hpcai.storage.save: {url}: the new version {version} was not committed; "
                f"{'the previous version ' + str(head) + ' is unchanged' if head else 'nothing was published'}: {exc}"
            ) from None
        raise
    old = [v for v in (prev.get("versions") or [prev.get("head")]) if isinstance(v, str)] if prev else []
    versions = [version, *[v for v in old if v != version]][:KEEP_VERSIONS]
    pointer = {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {
            "hpcai": {
                "format": FORMAT,
                "head": version,
                "versions": versions,
                "tags": tags_to_json(tags),
                "shape": list(host.shape),
                "dtype": str(host.dtype),
                "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        },
    }
    await fs._commit(f"{rel}/zarr.json", json.dumps(pointer, indent=2).encode(), tags)
    try:
        await _collect_garbage(fs, rel, set(versions), set(old))
    except Exception as exc:  # the save is committed; old versions are removed by a later save
        logger.warning("hpcai.storage.save: could not remove old versions of %s: %s", url, exc)
    return version


async def _collect_garbage(fs: EndpointFileSystem, rel: str, keep: set[str], committed: set[str]) -> None:
    """Remove committed versions the pointer no longer lists, and uncommitted ones once clearly abandoned
    (a save still writing one elsewhere is younger than :data:`STALE_AFTER_SECONDS`)."""
    for entry in await fs._ls(rel, detail=True):
        name = str(entry["name"]).rsplit("/", 1)[-1]
        age = _version_age(name)
        if age is None or name in keep:
            continue
        if name in committed or age > STALE_AFTER_SECONDS:
            await _remove_version(fs, f"{rel}/{name}")


async def _remove_version(fs: EndpointFileSystem, vpath: str) -> None:
    """Delete one version directory (on POSIX one descriptor-based ``rmtree``, never following links)."""
    await fs._rm(vpath, recursive=True)


# --------------------------------------------------------------------------------------------
# load and open
# --------------------------------------------------------------------------------------------
def _device_arg(fname: str, device: DeviceLike | None) -> Device:
    return resolve_device(device)


async def _open_async(url: str, dev: Device, fname: str) -> tuple[_Resolved, Any]:
    import zarr.api.asynchronous as za

    from hpcai import residency

    ep, rel = parse_url(url, fname=fname)
    if not rel:
        raise InvalidArgumentError(f"{fname}: {url!r} names the endpoint root; give the path of an array")
    base = endpoint_filesystem(ep.name, asynchronous=True)
    res = await _resolve(base, ep, rel, fname)
    d = residency.enforce("compute", res.tags, dev.spec.attributes, destination=dev.spec.name, source=ep.name,
                          nbytes=res.nbytes, dataset=ep.url_for(rel), operation=fname.rsplit(".", 1)[-1])
    fs = base._granted(res.vpath, res.tags, read=True, decision=d)
    _, checked_cls = _store_classes()
    where = f"{ep.url_for(rel)}" + (f" (version {res.version})" if res.version else "")
    store = checked_cls(_fsspec_store(fs, res.vpath, read_only=True), where, res.complete)
    arr = await za.open_array(store=store, zarr_format=3)
    return res, arr


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


def load(url: str, device: DeviceLike | None = None) -> Array:
    """Load the array at *url* onto *device* (default: the default device), with its tags.

    A ``compute`` decision for the stored tags on *device* comes first: a denial raises
    :class:`~hpcai.errors.ResidencyError` before any chunk is read.

    >>> import hpcai as xp, hpcai.storage as st, tempfile
    >>> _ = xp.configure(data={"endpoints": {"scratch": {"url": "file://" + tempfile.mkdtemp()}}})
    >>> _ = st.save(xp.tag(xp.arange(3.0), origin="DE"), "hpcai://scratch/a.zarr")
    >>> y = st.load("hpcai://scratch/a.zarr", device="emulated:0")
    >>> str(y.device), sorted(y.tags["origin"])
    ('emulated:0', ['DE'])
    """
    fname = "hpcai.storage.load"
    dev = _device_arg(fname, device)

    async def run() -> tuple[_Resolved, Any]:
        res, arr = await _open_async(url, dev, fname)
        return res, await _read(arr, res, Ellipsis)

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
        t = ", ".join(f"{k}={'|'.join(sorted(v))}" for k, v in self.tags.items()) or "untagged"
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
    res, arr = _zsync(_open_async(url, dev, fname))
    return StoredArray(res, arr, dev)
