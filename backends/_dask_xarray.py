"""The ``dask`` device as an xarray chunk manager (entry point ``xarray.chunkmanagers``: ``hpcai``).

With it, ``ds.chunk(..., chunked_array_type="hpcai")`` and
``xr.open_zarr("hpcai://...", chunks=..., chunked_array_type="hpcai")`` (or either under
``xr.set_options(chunk_manager="hpcai")``) give variables whose data are hpcai Arrays on the
``dask`` device: chunks are hpcai Arrays carrying the data's tags, tasks run only on workers
whose own site the policy allows, and ``.compute()``/``.load()`` bring results back through
the explicit, audited ``to_device("numpy:cpu")``.

Where the data comes from decides how it gets onto the cluster:

* an hpcai Array (``ds.chunk`` of hpcai data): ``hpcai.dask.from_array`` — the policy-checked
  move onto the device (refused before any byte moves when no worker may hold the data);
* a NumPy array (plain variables): the same move, untagged;
* a lazily indexed backend array (``open_zarr``/``open_dataset`` with ``chunks=``): one task
  per chunk reads its block *on the worker* through the array's store and returns it as an
  hpcai Array with the stored tags. For ``hpcai://`` stores the tags are those of the data as
  stored (looked up once, on the client), the tasks carry the resource restriction of those
  tags, and the worker's own ``hpcai://`` filesystem decides the read again against its own
  ``[site]`` (the pickled filesystem carries the version the client pinned, never secrets).

``store`` (``ds.to_zarr`` of chunked data) refuses: write with ``hpcai.storage.save`` /
``save_dataset``, which store the tags with the data.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from xarray.namedarray.parallelcompat import ChunkManagerEntrypoint

from hpcai.errors import InvalidArgumentError

__all__ = ["HpcaiDaskManager"]


def _backend() -> Any:
    from hpcai.backends import get_backend

    return get_backend("dask")


def _device() -> Any:
    from hpcai._device import resolve_device

    return resolve_device("dask")


def _tags_of(*args: Any) -> Any:
    from hpcai.residency._tags import union

    from hpcai._array import Array

    out = None
    for a in args:
        if isinstance(a, Array):
            out = union(out, a._tags)
    return out


def _unwrap(a: Any) -> Any:
    from hpcai._array import Array

    return a._data if isinstance(a, Array) else a


def _wrap(native: Any, tags: Any) -> Any:
    from hpcai._array import _wrap as wrap

    from .dask import _as_native

    return wrap(_as_native(native), _device(), tags)


def _stored_tags(data: Any) -> Any:
    """The tags of a lazily indexed backend array read through an ``hpcai://`` store (``None``
    for any other store): those stored with the data, as ``hpcai.storage`` reports them."""
    seen: set[int] = set()
    obj = data
    for _ in range(12):  # adapters wrap adapters: find the zarr array underneath
        if obj is None or id(obj) in seen:
            break
        seen.add(id(obj))
        store_path = getattr(obj, "store_path", None)
        if store_path is not None:
            fs = getattr(store_path.store, "fs", None)
            root = getattr(store_path.store, "path", "")
            from hpcai.storage import HpcaiFileSystem

            if isinstance(fs, HpcaiFileSystem):
                path = "/".join(p for p in (str(root).strip("/"), str(store_path.path).strip("/")) if p)
                return _hpcai_tags(fs, path)
            return None
        obj = getattr(obj, "array", None) or getattr(obj, "_array", None)
    return None


def _hpcai_tags(fs: Any, path: str) -> Any:
    """The effective tags of *path* on the ``hpcai://`` filesystem *fs*."""
    if not fs.asynchronous:
        return fs.get_tags(path)
    from zarr.core.sync import sync  # zarr's loop: where its asynchronous filesystem lives

    async def tags() -> Any:
        inner, rel, _, _ = await fs._mapped(path)
        return await inner._get_tags(rel)

    return sync(tags())


def _read_block(src: Any, tags: Any, block_info: Any = None) -> Any:
    """One chunk of a backend array, read where the task runs, as a tagged host hpcai Array."""
    from xarray.core.indexing import BasicIndexer, ExplicitlyIndexed

    import hpcai.distributed as hd

    key = tuple(slice(a, b) for a, b in block_info[None]["array-location"])
    block = np.asarray(src[BasicIndexer(key)] if isinstance(src, ExplicitlyIndexed) else src[key])  # type: ignore[index]
    # on the chunk device of the process the task runs in (its own [dask] chunk_device)
    return hd.land(block, tags, copy=not block.flags.writeable)


class HpcaiDaskManager(ChunkManagerEntrypoint[Any]):
    """xarray's interface to the ``dask`` device (``chunked_array_type="hpcai"``)."""

    available: bool = importlib.util.find_spec("distributed") is not None

    def __init__(self) -> None:
        from hpcai._array import Array

        self.array_cls = Array

    # -- recognising and describing chunked arrays ----------------------------------------------
    def is_chunked_array(self, data: Any) -> bool:
        from hpcai._array import Array

        return isinstance(data, Array) and data._device.spec.backend == "dask"

    def chunks(self, data: Any) -> Any:
        return data._data.chunks

    def normalize_chunks(self, chunks: Any, shape: tuple[int, ...] | None = None, limit: int | None = None,
                         dtype: Any = None, previous_chunks: Any = None) -> Any:
        from dask.array.core import normalize_chunks

        return normalize_chunks(chunks, shape=shape, limit=limit, dtype=_np_dtype(dtype),
                                previous_chunks=previous_chunks)

    # -- onto the cluster -----------------------------------------------------------------------
    def from_array(self, data: Any, chunks: Any, **kwargs: Any) -> Any:
        import hpcai as xp
        from hpcai._array import Array

        if isinstance(data, Array):
            return xp.dask.from_array(data, chunks=chunks)
        if isinstance(data, np.ndarray) or np.isscalar(data):
            return xp.dask.from_array(xp.asarray(data, device="numpy:cpu"), chunks=chunks)
        return self._from_backend(data, chunks)

    def _from_backend(self, data: Any, chunks: Any) -> Any:
        import dask.array as da

        from .dask import _meta

        shape = tuple(int(s) for s in data.shape)
        dtype = np.dtype(data.dtype)
        if isinstance(chunks, tuple) and "auto" in chunks and any(s == 0 for s in shape):
            chunks = shape
        norm = da.core.normalize_chunks(chunks, shape=shape, dtype=dtype)
        tags = _stored_tags(data)
        b = _backend()
        if tags:
            b.allowed_workers(tags, "xarray chunk (read on the cluster)", wait=False)  # refuses, naming the rule
        # a fresh key per opening: another opening may read another version
        out = da.map_blocks(_read_block, data, tags, chunks=norm, dtype=dtype, meta=_meta(_hp_dtype(dtype), len(shape)),
                            name=f"hpcai-read-{uuid.uuid4().hex}")
        return _wrap(out, tags)

    def rechunk(self, data: Any, chunks: Any, **kwargs: Any) -> Any:
        import hpcai as xp

        if isinstance(chunks, dict):
            chunks = tuple(chunks.get(i, c) for i, c in enumerate(data._data.chunks))
        return xp.dask.rechunk(data, chunks)

    # -- back from the cluster ------------------------------------------------------------------
    def compute(self, *data: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Each array brought back with ``to_device("numpy:cpu")``: restricted to allowed
        workers, checked on arrival and audited; results keep their tags."""
        return tuple(d.to_device("numpy:cpu") if self.is_chunked_array(d) else d for d in data)

    def persist(self, *data: Any, **kwargs: Any) -> tuple[Any, ...]:
        import hpcai as xp

        return tuple(xp.dask.persist(d) if self.is_chunked_array(d) else d for d in data)

    @property
    def array_api(self) -> Any:
        return _ChunkedNamespace()

    # -- generic parallel operations (chunk functions receive hpcai Array chunks) ---------------
    def reduction(self, arr: Any, func: Callable[..., Any], combine_func: Callable[..., Any] | None = None,
                  aggregate_func: Callable[..., Any] | None = None, axis: int | Sequence[int] | None = None,
                  dtype: Any = None, keepdims: bool = False) -> Any:
        import dask.array as da

        from .dask import _meta

        out = da.reduction(_unwrap(arr), chunk=func, combine=combine_func, aggregate=aggregate_func, axis=axis,
                           dtype=_np_dtype(dtype) or _np_dtype(arr.dtype), keepdims=keepdims,
                           meta=_meta(dtype or arr.dtype, 0))
        return _wrap(out, _tags_of(arr))

    def scan(self, func: Callable[..., Any], binop: Callable[..., Any], ident: float, arr: Any,
             axis: int | None = None, dtype: Any = None, **kwargs: Any) -> Any:
        from dask.array.reductions import cumreduction

        out = cumreduction(func, binop, ident, _unwrap(arr), axis=axis, dtype=_np_dtype(dtype), **kwargs)
        return _wrap(out, _tags_of(arr))

    def apply_gufunc(self, func: Callable[..., Any], signature: str, *args: Any, axes: Any = None,
                     axis: int | None = None, keepdims: bool = False, output_dtypes: Any = None,
                     output_sizes: dict[str, int] | None = None, vectorize: bool | None = None,
                     allow_rechunk: bool = False, meta: Any = None, **kwargs: Any) -> Any:
        from dask.array.gufunc import apply_gufunc

        if vectorize:
            raise InvalidArgumentError(
                "apply_ufunc(..., vectorize=True) on the dask device: vectorize calls NumPy on the "
                "chunks; write the function with the hpcai namespace instead"
            )
        tags = _tags_of(*args)
        out = apply_gufunc(func, signature, *(_unwrap(a) for a in args), axes=axes, axis=axis,
                           keepdims=keepdims, output_dtypes=_np_dtypes(output_dtypes), output_sizes=output_sizes,
                           allow_rechunk=allow_rechunk, meta=meta, **kwargs)
        if isinstance(out, tuple):
            return tuple(_wrap(o, tags) for o in out)
        return _wrap(out, tags)

    def map_blocks(self, func: Callable[..., Any], *args: Any, dtype: Any = None, chunks: Any = None,
                   drop_axis: Any = None, new_axis: Any = None, **kwargs: Any) -> Any:
        import dask.array as da

        out = da.map_blocks(func, *(_unwrap(a) for a in args), dtype=_np_dtype(dtype), chunks=chunks,
                            drop_axis=drop_axis, new_axis=new_axis, **kwargs)
        return _wrap(out, _tags_of(*args))

    def blockwise(self, func: Callable[..., Any], out_ind: Iterable[Any], *args: Any, name: str | None = None,
                  token: Any = None, dtype: Any = None, adjust_chunks: Any = None, new_axes: Any = None,
                  align_arrays: bool = True, concatenate: bool | None = None, meta: Any = None,
                  **kwargs: Any) -> Any:
        import dask.array as da

        out = da.blockwise(func, out_ind, *(_unwrap(a) for a in args), name=name, token=token,
                           dtype=_np_dtype(dtype), adjust_chunks=adjust_chunks, new_axes=new_axes,
                           align_arrays=align_arrays, concatenate=concatenate, meta=meta, **kwargs)
        return _wrap(out, _tags_of(*args))

    def unify_chunks(self, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], list[Any]]:
        from dask.array.core import unify_chunks

        arrays = args[::2]
        chunkss, natives = unify_chunks(*(_unwrap(a) if i % 2 == 0 else a for i, a in enumerate(args)), **kwargs)
        return chunkss, [_wrap(n, _tags_of(a)) for n, a in zip(natives, arrays)]

    def store(self, sources: Any, targets: Any, **kwargs: Any) -> Any:
        """xarray's write of chunked variables (``to_zarr``): each variable is computed back to
        the client (``to_device("numpy:cpu")``: restricted, checked on arrival, audited) and
        handed to zarr as a tagged host Array, which zarr stores through ``hpcai://`` with its
        tags and refuses elsewhere (see ``hpcai.storage._zarr_buffer``). The client holds one
        variable at a time; for data larger than that, ``hpcai.storage.save`` has the workers
        write the chunks."""
        if kwargs.get("compute", True) is False:
            raise InvalidArgumentError(
                "to_zarr(..., compute=False) of dask-device hpcai data is not supported: the write is "
                "computed and checked at once; call it with compute=True"
            )
        if not isinstance(sources, (list, tuple)):
            sources, targets = [sources], [targets]
        regions = kwargs.get("regions") or [None] * len(sources)
        for source, target, region in zip(sources, targets, regions):
            host = source.to_device("numpy:cpu") if getattr(source, "device", None) is not None else source
            target[region if region is not None else ...] = host
        return None

    def get_auto_chunk_size(self) -> int:
        from hpcai._config import get_config, parse_size

        return int(parse_size(get_config().section("dask").get("chunk_size", "64 MiB")))


class _ChunkedNamespace:
    """What xarray asks of ``chunkmanager.array_api``: dask-style creation with ``chunks=``
    (``full_like``/``zeros_like`` of chunked variables), on the ``dask`` device."""

    def full(self, shape: Any, fill_value: Any, *, dtype: Any = None, chunks: Any = None, **kwargs: Any) -> Any:
        import hpcai as xp

        host = xp.full(tuple(shape), fill_value, dtype=_hp_dtype(dtype) if dtype is not None else None,
                       device="numpy:cpu")
        return xp.dask.from_array(host, chunks=chunks if chunks is not None else "auto")

    def zeros(self, shape: Any, *, dtype: Any = None, chunks: Any = None, **kwargs: Any) -> Any:
        return self.full(shape, 0, dtype=dtype, chunks=chunks)

    def ones(self, shape: Any, *, dtype: Any = None, chunks: Any = None, **kwargs: Any) -> Any:
        return self.full(shape, 1, dtype=dtype, chunks=chunks)

    def __getattr__(self, name: str) -> Any:
        import hpcai as xp

        return getattr(xp, name)


def _np_dtype(dtype: Any) -> Any:
    if dtype is None:
        return None
    return np.dtype(dtype)


def _np_dtypes(dtypes: Any) -> Any:
    if dtypes is None:
        return None
    return [_np_dtype(d) for d in dtypes]


def _hp_dtype(dtype: Any) -> Any:
    import hpcai as xp

    return getattr(xp, np.dtype(dtype).name)
