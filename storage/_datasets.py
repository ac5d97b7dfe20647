"""xarray Datasets on storage: ``save_dataset`` and ``open_dataset``, with tags per variable.

A dataset saved here has the layout of :func:`~hpcai.storage.save` (a commit pointer and
versions, see :mod:`._layout`), with a version that is a zarr *group* of variables::

    obs.zarr/zarr.json                        the pointer: the dataset's attributes, hpcai's
                                              bookkeeping (head, versions, the union of the
                                              variables' tags) and the head's consolidated metadata
    obs.zarr/<version>/zarr.json              the version group: its attributes and the tags
                                              given to every variable; written last
    obs.zarr/<version>/<var>/zarr.json        each variable, with its own tags
    obs.zarr/<version>/<var>/c/...            its chunks (on S3, each object carries its tags)

xarray's own zarr writer encodes the variables (``dimension_names``, coordinates, CF
attributes and fill values); hpcai stages its output as a new version and commits it as
``save`` does, so ``xr.open_zarr("hpcai://ep/obs.zarr")`` reads the variables at their
stable names ``obs.zarr/<var>`` from the head version.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from hpcai._array import Array
from hpcai._device import Device, DeviceLike, resolve_device
from hpcai._tags import TagSet, union
from hpcai.errors import (
    BackendUnavailableError,
    DTypeError,
    InvalidArgumentError,
    ResidencyError,
    StorageError,
    StorageNotFoundError,
)

from . import _layout, _taint
from ._arrays import (
    _as_array,
    _buffer,
    _check_name,
    _codecs,
    _fsspec_store,
    _no_array,
    _progress,
    _store_classes,
    _to_device,
    _VersionWriter,
    _zsync,
)
from ._endpoints import Endpoint, parse_url
from ._filesystem import EndpointFileSystem, endpoint_filesystem
from ._tags_io import tags_to_json

__all__ = ["open_dataset", "save_dataset"]

#: Decoding options of ``xarray.open_zarr`` that :func:`open_dataset` passes on.
_DECODE_OPTIONS = frozenset({"decode_cf", "decode_times", "decode_timedelta", "mask_and_scale", "decode_coords",
                             "use_cftime", "concat_characters", "drop_variables"})


def _xarray(fname: str) -> Any:
    try:
        import xarray as xr
    except ImportError:
        raise BackendUnavailableError(f"{fname} needs xarray: pip install xarray") from None
    return xr


# --------------------------------------------------------------------------------------------
# what is stored: the previous version of a dataset
# --------------------------------------------------------------------------------------------
class _Stored:
    """A dataset as stored: its pointer, stable view and the tags of its parts."""

    def __init__(self, meta: Mapping[str, Any], view: _layout.View, pointer_tags: TagSet | None,
                 group_tags: TagSet | None, var_tags: dict[str, TagSet | None], metas: dict[str, Mapping[str, Any]],
                 above: TagSet | None) -> None:
        self.meta = meta
        self.view = view
        self.pointer_tags = pointer_tags
        self.group_tags = group_tags  # the version group's (layout "group" only)
        self.var_tags = var_tags  # each variable's own (its zarr.json's, content and stored)
        self.metas = metas  # each variable's zarr.json content, as stored in the version
        self.above = above  # the tags of the nodes above the dataset

    @property
    def attrs(self) -> dict[str, Any]:
        a = dict(self.meta.get("attributes") or {})
        a.pop("hpcai", None)
        return a

    def tags_of(self, name: str) -> TagSet | None:
        """The tags a variable carries when loaded: its own, the whole dataset's, those above it."""
        t = union(union(self.var_tags.get(name), self.group_tags), self.above)
        if self.view.layout == "array":  # a dataset saved by save(): one array, governed as load() does
            t = union(t, self.pointer_tags)
        return t

    def union(self) -> TagSet | None:
        t = union(union(self.pointer_tags, self.group_tags), self.above)
        for v in self.var_tags.values():
            t = union(t, v)
        return t


async def _stored(fs: EndpointFileSystem, ep: Endpoint, rel: str, fname: str) -> _Stored | None:
    """The dataset at *rel* as stored (``None``: nothing there). Reads metadata only."""
    node = await fs._node_meta(rel, fresh=True)
    if not node.is_node:
        return None
    url = ep.url_for(rel)
    meta = node.meta
    info = _layout.dataset_info(meta)
    if meta is None or info is None:
        kind = meta.get("node_type", "node") if isinstance(meta, Mapping) else "node"
        raise InvalidArgumentError(
            f"{fname}: {url} holds a zarr {kind} that was not saved by hpcai.storage; open it with "
            f"xr.open_zarr({url!r}), or choose another path"
        )
    head = str(info["head"])
    view = _layout.stable_view(meta)
    if view is None:  # a pointer written before stable names (hpcai.dataset/1): its head is the array
        view = _layout.View(head, "array", {_layout.default_name(rel): head})
    metas: dict[str, Mapping[str, Any]] = {}
    var_tags: dict[str, TagSet | None] = {}
    group_tags: TagSet | None = None
    if view.layout == "group":
        gnode = await fs._node_meta(f"{rel}/{head}", fresh=True)
        if not gnode.is_node:
            raise StorageError(f"{fname}: {url} points at version {head}, which is missing: the dataset is damaged")
        group_tags = gnode.tags

    async def one(name: str, path: str) -> None:
        n = await fs._node_meta(f"{rel}/{path}", fresh=True)
        if not n.is_node or not isinstance(n.meta, Mapping) or n.meta.get("node_type") != "array":
            raise StorageError(
                f"{fname}: {url} points at version {head}, whose array {name!r} is missing: the dataset is damaged "
                "(was it partly deleted outside hpcai?)"
            )
        metas[name] = n.meta
        var_tags[name] = n.tags

    await asyncio.gather(*(one(n, p) for n, p in view.names.items()))
    return _Stored(meta, view, node.tags, group_tags, var_tags, metas, await fs._above(rel))


# --------------------------------------------------------------------------------------------
# save_dataset
# --------------------------------------------------------------------------------------------
def _host_of(fname: str, name: str, var: Any) -> tuple[np.ndarray, TagSet | None]:
    data = var.data
    if data.__class__ is not Array and not isinstance(data, np.ndarray) and hasattr(data, "compute"):
        data = data.compute()  # a dask-backed variable
    if data.__class__ is Array or isinstance(data, np.ndarray):
        host, tags, _ = _as_array(fname, data)
        return np.asarray(host), tags
    raise DTypeError(
        f"{fname}: variable {name!r} holds a {type(data).__name__}; variables must hold hpcai Arrays or NumPy arrays"
    )


def _stem(key: str) -> str:
    return key.split("/", 1)[0]


def save_dataset(
    ds: Any,
    url: str,
    *,
    append_dim: str | None = None,
    region: Mapping[str, slice] | str | None = None,
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
    callback: Any = None,
) -> str:
    """Save an ``xarray.Dataset`` at ``hpcai://<endpoint>/<path>`` as a new version; returns its id.

    Variables (coordinates included) may hold hpcai Arrays, whose tags are stored with each
    variable, or NumPy arrays (untagged). The dataset's tags (stored with the pointer) are the
    union of its variables'. One ``store`` decision for that union (and the process's
    read-taint ledger, added to every variable) comes before anything is written.

    ``append_dim`` appends along that dimension and ``region`` overwrites part of the
    variables, as xarray's ``to_zarr`` does; either writes a new version too (a copy of the
    head with the change applied, so readers never see a half-appended dataset). Without
    them the dataset replaces what was there. *encoding* is passed to xarray (per variable:
    ``chunks``, ``compressors``, ``dtype``, ...); variables without ``compressors`` get
    zstd + crc32c. *callback*: an ``fsspec.callbacks.Callback`` told the bytes to write, then
    each chunk's bytes as it is written.

    >>> import hpcai as xp, hpcai.storage as st, numpy as np, tempfile, xarray as xr
    >>> _ = xp.configure(data={"endpoints": {"scratch": {"url": "file://" + tempfile.mkdtemp()}}})
    >>> t = xp.tag(xp.ones((2, 3)), origin="DE")
    >>> ds = xr.Dataset({"t": (("y", "x"), t)}, coords={"x": [10, 20, 30]}, attrs={"title": "demo"})
    >>> _ = st.save_dataset(ds, "hpcai://scratch/obs.zarr")
    >>> back = st.open_dataset("hpcai://scratch/obs.zarr")
    >>> sorted(back.t.data.tags["origin"]), back.attrs["title"], back.x.values.tolist()
    (['DE'], 'demo', [10, 20, 30])
    """
    from hpcai import residency

    fname = "hpcai.storage.save_dataset"
    xr = _xarray(fname)
    ep, rel = parse_url(url, fname=fname)
    if not rel:
        raise InvalidArgumentError(f"{fname}: {url!r} names the endpoint root; give a path, e.g. {ep.url_for('data/x.zarr')!r}")
    if not isinstance(ds, xr.Dataset):
        raise DTypeError(f"{fname}: expected an xarray.Dataset, got {type(ds).__name__} (hpcai.storage.save saves one array)")
    if append_dim is not None and region is not None:
        raise InvalidArgumentError(f"{fname}: give append_dim or region, not both")
    if append_dim is not None and append_dim not in ds.dims:
        raise InvalidArgumentError(f"{fname}: append_dim {append_dim!r} is not a dimension of the dataset ({', '.join(map(str, ds.dims))})")
    if encoding is not None and not isinstance(encoding, Mapping):
        raise InvalidArgumentError(f"{fname}: encoding must be a mapping {{variable: {{key: value}}}}, got {type(encoding).__name__}")
    progress = _progress(fname, callback)
    hosts: dict[str, np.ndarray] = {}
    own: dict[str, TagSet | None] = {}
    for key, var in ds.variables.items():
        name = _check_name(fname, key)
        hosts[name], own[name] = _host_of(fname, name, var)
    ledger = _taint.current()
    dataset_url = ep.url_for(rel)
    extending = append_dim is not None or region is not None

    async def previous() -> _Stored | None:
        fs = endpoint_filesystem(ep.name, asynchronous=True)
        return await _stored(fs, ep, rel, fname)

    prev = _zsync(previous()) if extending else None
    if region is not None and prev is None:
        raise StorageNotFoundError(f"{fname}: region= writes into an existing dataset, and there is none at {dataset_url}")
    # The tags of each variable of the new version, of the version group, and of the pointer.
    var_tags: dict[str, TagSet | None] = {}
    common = ledger
    pointer_extra: TagSet | None = None
    if prev is not None:
        common = union(common, prev.group_tags if prev.view.layout == "group" else None)
        pointer_extra = prev.pointer_tags
        for name in prev.view.names:
            var_tags[name] = prev.tags_of(name) if prev.view.layout == "array" else prev.var_tags.get(name)
    for name, t in own.items():
        var_tags[name] = union(var_tags.get(name), t)
    total = union(union(common, pointer_extra), prev.above if prev is not None else None)
    for t in var_tags.values():
        total = union(total, t)
    nbytes = sum(int(h.nbytes) for h in hosts.values())
    try:
        decision = residency.enforce("store", total, ep.attributes, destination=ep.name, source="numpy:cpu",
                                     nbytes=nbytes, dataset=dataset_url, operation="save_dataset")
    except ResidencyError as exc:
        if ledger:
            raise ResidencyError(f"{exc}. {_taint.describe(ledger)}", decision=exc.decision) from None
        raise

    # what xarray writes: the same variables, on NumPy, with their encodings
    existing = set(prev.view.names) if prev is not None else set()
    enc: dict[str, dict[str, Any]] = {}
    variables = {}
    for key, var in ds.variables.items():
        name = str(key)
        variables[name] = xr.Variable(var.dims, hosts[name], attrs=dict(var.attrs),
                                      encoding={} if name in existing else dict(var.encoding))
        given = dict((encoding or {}).get(name) or {})
        if name not in existing:
            e = {**variables[name].encoding, **given}
            if not {"compressors", "compressor", "filters", "serializer"} & set(e):
                given["compressors"] = _codecs()
        if given:
            enc[name] = given
    coords = [str(c) for c in ds.coords]
    plain = xr.Dataset({k: v for k, v in variables.items() if k not in coords},
                       coords={k: v for k, v in variables.items() if k in coords}, attrs=dict(ds.attrs))

    w = _VersionWriter(ep, rel, fname, total, decision, progress)

    async def begin() -> None:
        await w.begin(routes={n: union(t, common) for n, t in var_tags.items()}, common=common, prev_meta=prev.meta if prev is not None else None,
                      known=prev is not None)
        if progress is not None:
            progress.expect(nbytes + (_stored_bytes(prev) if prev is not None else 0))
        if prev is not None:
            await _copy_head(w, prev, rel)

    def write() -> None:
        kw: dict[str, Any] = {"zarr_format": 3, "consolidated": False, "write_empty_chunks": True}
        if append_dim is not None:
            plain.to_zarr(w.store, mode="a", append_dim=append_dim, encoding=enc, **kw)
        elif region is not None:
            plain.to_zarr(w.store, mode="r+", region=region, encoding=enc or None, **kw)
        else:
            plain.to_zarr(w.store, mode="w-", encoding=enc, **kw)

    async def finish() -> str:
        metas = _finalize(w, var_tags, common)
        await w.finish_chunks()
        attrs = json.loads(w.store.held["zarr.json"].to_bytes()).get("attributes") or {}
        attrs = {k: v for k, v in attrs.items() if k != "hpcai"}
        hp = {"layout": "group", "variables": sorted(metas)}
        version = await w.commit(attrs, hp, metas, pointer_tags=pointer_extra)
        if progress is not None:
            progress.finish()
        return version

    async def abort(exc: BaseException) -> BaseException:
        return await w.abort(exc)

    _zsync(begin())
    try:
        write()
        return _zsync(finish())  # type: ignore[no-any-return]
    except BaseException as exc:
        raise _zsync(abort(exc)) from None


def _stored_bytes(prev: _Stored) -> int:
    n = 0
    for meta in prev.metas.values():
        try:
            n += int(np.prod(meta["shape"], dtype=np.int64)) * np.dtype(str(meta.get("data_type"))).itemsize
        except (KeyError, TypeError, ValueError):
            pass
    return n


async def _copy_head(w: _VersionWriter, prev: _Stored, rel: str) -> None:
    """Start the new version as a copy of the head: every chunk object (bytes as stored: same grid
    and codecs), and the metadata, held for xarray to extend (hpcai's attribute left out)."""
    fs = w.fs
    held: dict[str, Any] = {}
    for name, meta in prev.metas.items():
        m = dict(meta)
        a = dict(m.get("attributes") or {})
        a.pop("hpcai", None)
        m["attributes"] = a
        m.pop("consolidated_metadata", None)
        held[f"{name}/zarr.json"] = _buffer(json.dumps(m).encode())
    held["zarr.json"] = _buffer(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": prev.attrs}).encode())
    for k, v in held.items():
        w.store.hold(k, v)
    pairs: list[tuple[str, str]] = []
    for name, path in prev.view.names.items():
        src = f"{rel}/{path}"
        for f in await fs._find(src):
            sub = f[len(src) + 1:]
            if sub and sub.rsplit("/", 1)[-1] not in ("zarr.json", ".zarray", ".zattrs", ".zgroup"):
                pairs.append((f, f"{name}/{sub}"))
    sem = asyncio.Semaphore(16)

    async def one(src: str, key: str) -> None:
        async with sem:
            data = await fs._cat_file(src)
            await w.chunk_store.set(key, _buffer(data))
            if w.progress is not None:
                w.progress.chunk(key, len(data))

    await asyncio.gather(*(one(s, k) for s, k in pairs))


def _finalize(w: _VersionWriter, var_tags: Mapping[str, TagSet | None], common: TagSet | None) -> dict[str, dict[str, Any]]:
    """Put hpcai's attribute (the variable's tags) into each array's held ``zarr.json`` and the
    version group's (the tags of the whole dataset, consolidated metadata); returns the arrays'."""
    held = w.store.held
    metas: dict[str, dict[str, Any]] = {}
    for key in sorted(held):
        if key == "zarr.json" or not key.endswith("/zarr.json"):
            continue
        meta = json.loads(held[key].to_bytes())
        name = key[: -len("/zarr.json")]
        if meta.get("node_type") != "array" or "/" in name:
            raise InvalidArgumentError(
                f"hpcai.storage.save_dataset: {w.url}: nested groups ({name!r}) are not supported; save a flat Dataset"
            )
        attrs = {k: v for k, v in (meta.get("attributes") or {}).items() if k != "hpcai"}
        attrs["hpcai"] = {"tags": tags_to_json(union(var_tags.get(name), common)), "dataset": w.url,
                          "version": w.version, "complete": True}
        meta["attributes"] = attrs
        held[key] = _buffer(json.dumps(meta, indent=2).encode())
        metas[name] = meta
    group: dict[str, Any] = (json.loads(held["zarr.json"].to_bytes()) if "zarr.json" in held
                             else {"zarr_format": 3, "node_type": "group"})
    gattrs = {k: v for k, v in (group.get("attributes") or {}).items() if k != "hpcai"}
    gattrs["hpcai"] = {"tags": tags_to_json(common), "dataset": w.url, "version": w.version, "complete": True}
    group["attributes"] = gattrs
    group["consolidated_metadata"] = _layout.consolidated(metas)
    held["zarr.json"] = _buffer(json.dumps(group, indent=2).encode())
    return metas


# --------------------------------------------------------------------------------------------
# open_dataset
# --------------------------------------------------------------------------------------------
def _supported(dtype: np.dtype[Any]) -> bool:
    from hpcai._creation_functions import _check_result_dtype

    try:
        _check_result_dtype("open_dataset", dtype)
    except DTypeError:
        return False
    return True


def open_dataset(url: str, device: DeviceLike | None = None, *, callback: Any = None, **decode: Any) -> Any:
    """Open a dataset saved by :func:`save_dataset` (or :func:`save`) as an ``xarray.Dataset``
    whose variables are hpcai Arrays on *device*, each with its stored tags.

    One ``compute`` decision on *device* for the tags of every variable comes first, as for
    :func:`load`: a denial raises :class:`~hpcai.errors.ResidencyError` before any chunk is
    read. Dimension coordinates without tags stay NumPy-backed indexes (``.sel`` works);
    tagged ones become hpcai Arrays without an index, so their tags are not lost. Variables of
    types hpcai arrays cannot hold (dates, strings) stay NumPy when untagged and are refused
    when tagged (pass ``decode_times=False`` for dates). *decode*: xarray's decoding options
    (``decode_times``, ``mask_and_scale``, ...). *callback*: an ``fsspec.callbacks.Callback``
    told the bytes to read, then each chunk's bytes as it is read.
    """
    from hpcai import residency

    fname = "hpcai.storage.open_dataset"
    xr = _xarray(fname)
    bad = sorted(set(decode) - _DECODE_OPTIONS)
    if bad:
        raise InvalidArgumentError(f"{fname}: unknown option(s) {', '.join(bad)}; the options are {', '.join(sorted(_DECODE_OPTIONS))}")
    dev: Device = resolve_device(device)
    progress = _progress(fname, callback)
    ep, rel = parse_url(url, fname=fname)
    if not rel:
        raise InvalidArgumentError(f"{fname}: {url!r} names the endpoint root; give the path of a dataset")

    async def prepare() -> tuple[Any, _Stored]:
        base = endpoint_filesystem(ep.name, asynchronous=True)
        stored = await _stored(base, ep, rel, fname)
        if stored is None:
            try:
                info = await base._info(rel)
            except StorageNotFoundError:
                info = None
            raise _no_array(fname, ep, rel, "nothing" if info is None else f"a {info.get('type', 'file')}")
        tags = stored.union()
        nbytes = _stored_bytes(stored)
        d = residency.enforce("compute", tags, dev.spec.attributes, destination=dev.spec.name, source=ep.name,
                              nbytes=nbytes, dataset=ep.url_for(rel), operation="open_dataset")
        fs = base._granted(rel, tags, read=True, decision=d)
        pointer = dict(stored.meta)
        if _layout.stable_view(pointer) is None:  # hpcai.dataset/1: give xarray the metadata it needs
            name, path = next(iter(stored.view.names.items()))
            m = dict(stored.metas[name])
            m.setdefault("dimension_names", [f"dim_{i}" for i in range(len(m.get("shape", ())))])
            if m.get("dimension_names") is None:
                m["dimension_names"] = [f"dim_{i}" for i in range(len(m.get("shape", ())))]
            stored.metas[name] = m
        pointer["consolidated_metadata"] = _layout.consolidated(stored.metas)
        if progress is not None:
            for name, meta in stored.metas.items():
                progress.grid(name, meta)
            progress.expect(nbytes)
        _, checked_cls = _store_classes()
        where = f"{ep.url_for(rel)} (version {stored.view.head})"
        store = checked_cls(_fsspec_store(fs, rel, read_only=True), where, True, progress,
                            dict(stored.view.names), json.dumps(pointer).encode())
        return store, stored

    store, stored = _zsync(prepare())
    xds = xr.open_zarr(store, consolidated=True, chunks=None, zarr_format=3, **decode)
    index_coords: dict[str, Any] = {}
    other_coords: dict[str, Any] = {}
    data_vars: dict[str, Any] = {}
    for key, var in xds.variables.items():
        name = str(key)
        values = np.asarray(var.values)
        tags = stored.tags_of(name)
        if not _supported(values.dtype):
            if tags:
                raise DTypeError(
                    f"{fname}: variable {name!r} of {ep.url_for(rel)} has type {values.dtype}, which hpcai arrays "
                    "cannot hold, and is tagged; open it with decode_times=False (dates) or drop_variables=..."
                )
            data: Any = values
        elif name in xds.indexes and not tags:
            data = values
        else:
            data = _to_device(values, dev, tags)
        v = xr.Variable(var.dims, data, attrs=dict(var.attrs), encoding=dict(var.encoding))
        if name in xds.coords:
            (index_coords if name in xds.indexes and data is values else other_coords)[name] = v
        else:
            data_vars[name] = v
    out = xr.Dataset(data_vars, attrs=stored.attrs)
    if index_coords:
        out = out.assign_coords(xr.Coordinates(index_coords))
    if other_coords:
        out = out.assign_coords(xr.Coordinates(other_coords, indexes={}))
    if progress is not None:
        progress.finish()
    return out

