"""The ``dask`` backend: one device, ``dask``, whose arrays are ``dask.array.Array`` graphs of
hpcai Array chunks on a Dask distributed cluster (``[dask]`` in configuration; an embedded
in-process ``LocalCluster`` by default). See ``docs/dask.md``.

* **Chunks are hpcai Arrays** (on the chunk device of the process that holds them, its own
  ``[dask] chunk_device``: ``numpy:cpu`` by default, or e.g. ``jax:cpu:1``; with the data's
  tags), so tags travel with every chunk and every process that receives one checks it
  (:mod:`hpcai.distributed`). The dask array's ``meta`` is an empty, untagged hpcai Array.
* **Distributing** (``x.to_device("dask")``, :func:`hpcai.dask.from_array`): the chunks are cut
  on the client and scattered, by key, only to workers that advertise every
  ``hpcai-rule-<name>`` resource the data's covering rules ask for; refused before any byte
  moves when no worker does. Graphs refer to the scattered chunks by key: covered data is
  never embedded in a graph (the scheduler unpickles graphs, and refuses covered data).
* **Computing** is lazy: the namespace builds graphs with dask's generic tools (``blockwise``,
  ``reduction``, slicing, ``rechunk``, ``concatenate``) and hpcai functions as chunk functions.
  ``y.to_device("numpy:cpu")`` computes with ``resources=`` (one unit per covering rule), so
  tasks run only on allowed workers; the result is checked again on arrival.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import itertools
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ._base import Backend, DeviceSpec, location_attributes, unwrap, wrap

if TYPE_CHECKING:
    from hpcai._device import Device
    from hpcai._tags import TagSet

__all__ = ["DaskBackend", "DaskNamespace"]

import dask.array as da
from dask._task_spec import Task, TaskRef
from dask.array.core import normalize_chunks, slices_from_chunks
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

import hpcai as _xp
from hpcai.errors import DTypeError, InvalidArgumentError, ResidencyError

_DEFAULT_CHUNK = 64 * 2**20


class _HostOnlyError(DTypeError):
    """A value of a ``dask``-device array was asked for implicitly."""


class DaskArray(da.Array):
    """The native array of the ``dask`` device: a ``dask.array.Array`` whose implicit ways out
    (``float()``, ``bool()``, ``__array__``, iteration, ``compute``) refuse: data on the cluster
    comes back only through ``x.to_device(...)`` (restricted to allowed workers, audited)."""

    __slots__ = ()

    def _implicit(self, *args: Any, **kwargs: Any) -> Any:
        raise _HostOnlyError(
            "an array on the dask device has no values here; compute it explicitly with "
            '`x.to_device("numpy:cpu")` (tasks run only on workers the policy allows)'
        )

    __float__ = __int__ = __complex__ = __bool__ = __index__ = __array__ = __iter__ = _implicit
    compute = persist = _implicit

    # dask's own forms of these call NumPy on the chunks; hpcai's run hpcai functions
    def __matmul__(self, other: Any) -> Any:
        return _NS.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Any:
        return _NS.matmul(other, self)

    @property
    def T(self) -> Any:
        return _NS.permute_dims(self, tuple(range(self.ndim))[::-1])


def _as_native(r: Any) -> Any:
    if isinstance(r, da.Array) and r.__class__ is not DaskArray:
        r.__class__ = DaskArray
    return r


# ============================================================================================
# chunk functions (run on workers; picklable by reference)
# ============================================================================================
def _meta(dtype: Any, ndim: int) -> Any:
    return _xp.empty((0,) * ndim, dtype=dtype, device="numpy:cpu")


def _meta_of(a: Any) -> Any:
    return a._meta if isinstance(a, da.Array) else a


def _reduce_chunk(
    fname: str,
    opts: tuple[tuple[str, Any], ...],
    x: Any,
    axis: Any = None,
    keepdims: bool = False,
    **_: Any,
) -> Any:
    return getattr(_xp, fname)(x, axis=axis, keepdims=keepdims, **dict(opts))


def _matmul_chunk(a: Any, b: Any) -> Any:
    return _xp.expand_dims(_xp.matmul(a, b), axis=-2)


def _reshape_chunk(a: Any, shape: tuple[int, ...]) -> Any:
    return _xp.reshape(a, shape)


def _call_kw(fname: str, opts: tuple[tuple[str, Any], ...], *args: Any) -> Any:
    return getattr(_xp, fname)(*args, **dict(opts))


def _concat(arrays: Sequence[Any], axis: int = 0) -> Any:
    """``concatenate_lookup`` for hpcai Arrays (dask joins chunks with it: finalize, rechunk,
    reductions)."""
    return _xp.concat(list(arrays), axis=axis)


def _tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    return _xp.tensordot(a, b, axes=axes)


def register_dispatch() -> None:
    """Register hpcai Arrays with dask's ``concatenate_lookup`` / ``tensordot_lookup`` (every
    process that computes on hpcai chunks needs it: importing :mod:`hpcai.distributed` does it)."""
    from dask.array.dispatch import concatenate_lookup, tensordot_lookup

    concatenate_lookup.register(_xp.Array, _concat)
    tensordot_lookup.register(_xp.Array, _tensordot)


register_dispatch()


# ============================================================================================
# the namespace of the dask device
# ============================================================================================
_ELEMENTWISE = frozenset(_xp._elementwise.__all__)
_REDUCTIONS = frozenset({"sum", "prod", "max", "min", "any", "all"})
#: Functions with no lazy chunked form here, and why (array-api-compat's dask namespace and
#: dask's own semantics: data-dependent shapes, global sorts, in-place updates).
_UNSUPPORTED = {
    "argmax": "arg-reductions are not implemented on the dask device",
    "argmin": "arg-reductions are not implemented on the dask device",
    "argsort": "sorting needs the whole axis",
    "sort": "sorting needs the whole axis",
    "unique_all": "unique values have a data-dependent shape",
    "unique_counts": "unique values have a data-dependent shape",
    "unique_inverse": "unique values have a data-dependent shape",
    "unique_values": "unique values have a data-dependent shape",
    "nonzero": "nonzero has a data-dependent shape",
    "searchsorted": "searchsorted needs the whole sorted array",
    "cumulative_sum": "cumulative reductions are not implemented on the dask device",
    "cumulative_prod": "cumulative reductions are not implemented on the dask device",
    "take": "take is not implemented on the dask device; index with slices",
    "take_along_axis": "take_along_axis is not implemented on the dask device",
    "tensordot": "use xp.matmul (or xp.vecdot) on the dask device",
    "broadcast_to": "broadcast_to is not implemented on the dask device; use arithmetic broadcasting",
    "broadcast_arrays": "broadcast_arrays is not implemented on the dask device",
}
_DTYPE_NAMES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    }
)


def _unsupported(fname: str) -> InvalidArgumentError:
    why = _UNSUPPORTED.get(fname, f"{fname} has no lazy form on the dask device")
    return InvalidArgumentError(
        f"xp.{fname}: not supported on the dask device ({why}); compute first with "
        '`x.to_device("numpy:cpu")` and call it there'
    )


def _elementwise(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``f`` (an hpcai function) applied chunk by chunk, with broadcasting (``blockwise``)."""
    arrays = [a for a in args if isinstance(a, da.Array)]
    ndim = max(a.ndim for a in arrays)
    out_ind = tuple(range(ndim))[::-1]
    meta = f(*[_meta_of(a) for a in args], **kwargs)
    pairs: list[Any] = []
    for a in args:
        if isinstance(a, da.Array):
            pairs += [a, tuple(range(a.ndim))[::-1]]
        else:
            pairs += [a, None]
    name = f"hpcai-{getattr(f, '__name__', 'chunk')}-{uuid.uuid4().hex}"
    if kwargs:
        f = functools.partial(_call_kw, f.__name__, tuple(sorted(kwargs.items())))
    return _as_native(da.blockwise(f, out_ind, *pairs, name=name, meta=meta, dtype=meta.dtype))


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(a % ndim if ndim else a for a in axis)


class DaskNamespace:
    """The array namespace of the ``dask`` device, over dask arrays of hpcai chunks.

    Every function the core calls is a method here, except the elementwise functions of the
    standard, which all have one form (``blockwise`` of the hpcai function) and are found by
    name in :data:`_ELEMENTWISE`; any other name raises an error that names the function.
    """

    #: Chunks are computed by hpcai's own functions, which correct the backends' special
    #: cases: the core has nothing to correct (and must not probe: that would compute).
    follows_hpcai_special_cases: ClassVar[bool] = True

    def __getattr__(self, name: str) -> Any:
        if name in _ELEMENTWISE:
            f = getattr(_xp, name)
            return functools.partial(_elementwise, f)
        if name in _DTYPE_NAMES:
            return np.dtype(name)
        if name.startswith("__"):
            raise AttributeError(name)
        raise _unsupported(name)

    # -- creation ---------------------------------------------------------------------------
    def asarray(self, obj: Any, dtype: Any = None, copy: bool | None = None, **_: Any) -> Any:
        if isinstance(obj, da.Array):
            return obj if dtype is None or obj.dtype == dtype else self.astype(obj, dtype)
        return _backend().scatter(np.asarray(obj, dtype=dtype), None)

    def astype(self, x: Any, dtype: Any, /, *, copy: bool = True, **_: Any) -> Any:
        return _elementwise(_xp.astype, x, np.dtype(dtype))

    def full_like(self, x: Any, fill_value: Any, *, dtype: Any = None, **_: Any) -> Any:
        return _elementwise(_xp.full_like, x, fill_value=fill_value, dtype=dtype)

    def zeros_like(self, x: Any, *, dtype: Any = None, **_: Any) -> Any:
        return _elementwise(_xp.zeros_like, x, dtype=dtype)

    def ones_like(self, x: Any, *, dtype: Any = None, **_: Any) -> Any:
        return _elementwise(_xp.ones_like, x, dtype=dtype)

    def empty_like(self, x: Any, *, dtype: Any = None, **_: Any) -> Any:
        return _elementwise(_xp.zeros_like, x, dtype=dtype)

    # -- reductions -------------------------------------------------------------------------
    def _reduction(self, fname: str, x: Any, axis: Any, keepdims: bool, **opts: Any) -> Any:
        o = tuple(sorted((k, v) for k, v in opts.items() if v is not None))
        one = _xp.ones((1,) * x.ndim, dtype=x.dtype, device="numpy:cpu")
        meta = _reduce_chunk(fname, o, one, axis=axis, keepdims=keepdims)
        chunk = functools.partial(_reduce_chunk, fname, o)
        agg = functools.partial(_reduce_chunk, fname, tuple(p for p in o if p[0] != "dtype"))
        # a fresh name per call: the same expression is never submitted twice under one key
        # with another (fused or not) task spec
        r = da.reduction(
            x,
            chunk,
            agg,
            axis=axis,
            keepdims=keepdims,
            dtype=meta.dtype,
            meta=_meta(meta.dtype, meta.ndim),
            concatenate=True,
            name=f"hpcai-{fname}-{uuid.uuid4().hex}",
        )
        return _as_native(r)

    def sum(self, x: Any, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
        return self._reduction("sum", x, axis, keepdims, dtype=dtype)

    def prod(
        self, x: Any, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False
    ) -> Any:
        return self._reduction("prod", x, axis, keepdims, dtype=dtype)

    def max(self, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduction("max", x, axis, keepdims)

    def min(self, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduction("min", x, axis, keepdims)

    def any(self, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduction("any", x, axis, keepdims)

    def all(self, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduction("all", x, axis, keepdims)

    def _count(self, fname: str, x: Any, axis: Any) -> int:
        n = 1
        for ax in _axes(axis, x.ndim):
            d = x.shape[ax]
            if math.isnan(d):
                raise InvalidArgumentError(
                    f"xp.{fname}: the array's shape is unknown along axis {ax} on the dask device "
                    "(after boolean indexing); compute it first"
                )
            n *= int(d)
        return n

    def mean(self, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        n = self._count("mean", x, axis)
        return _elementwise(_xp.divide, self.sum(x, axis=axis, keepdims=keepdims), float(n))

    def var(
        self, x: Any, /, *, axis: Any = None, correction: float = 0.0, keepdims: bool = False
    ) -> Any:
        n = self._count("var", x, axis)
        m = self.mean(x, axis=axis, keepdims=True)
        d = _elementwise(_xp.subtract, x, m)
        s = self.sum(_elementwise(_xp.multiply, d, d), axis=axis, keepdims=keepdims)
        return _elementwise(
            _xp.divide, s, float(n - correction) if n - correction > 0 else math.nan
        )

    def std(
        self, x: Any, /, *, axis: Any = None, correction: float = 0.0, keepdims: bool = False
    ) -> Any:
        return _elementwise(
            _xp.sqrt, self.var(x, axis=axis, correction=correction, keepdims=keepdims)
        )

    # -- NaN-ignoring reductions (hpcai's extensions: xarray's default skipna path) ----------
    def nansum(self, x: Any, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
        return self._reduction("nansum", x, axis, keepdims, dtype=dtype)

    def nanprod(self, x: Any, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
        return self._reduction("nanprod", x, axis, keepdims, dtype=dtype)

    def nanmax(self, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduction("nanmax", x, axis, keepdims)

    def nanmin(self, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduction("nanmin", x, axis, keepdims)

    def _nancount(self, x: Any, axis: Any, keepdims: bool) -> Any:
        """How many values are not NaN, in *x*'s (floating) dtype."""
        ok = _elementwise(_xp.logical_not, _elementwise(_xp.isnan, x))
        return self.sum(_elementwise(_xp.astype, ok, np.dtype(x.dtype)), axis=axis, keepdims=keepdims)

    def nanmean(self, x: Any, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
        s = self.nansum(x, axis=axis, dtype=dtype, keepdims=keepdims)
        n = self._nancount(x, axis, keepdims)
        return _elementwise(_xp.divide, s, n)  # 0 / 0: NaN for a slice of NaNs only, as NumPy

    def nanvar(self, x: Any, /, *, axis: Any = None, dtype: Any = None, ddof: float = 0,
               keepdims: bool = False) -> Any:
        m = self.nanmean(x, axis=axis, keepdims=True)
        d = _elementwise(_xp.subtract, x, m)
        s = self.nansum(_elementwise(_xp.multiply, d, d), axis=axis, dtype=dtype, keepdims=keepdims)
        den = _elementwise(_xp.subtract, self._nancount(x, axis, keepdims), float(ddof))
        v = _elementwise(_xp.divide, s, den)
        return _elementwise(_xp.where, _elementwise(_xp.greater, den, 0.0), v, math.nan)

    def nanstd(self, x: Any, /, *, axis: Any = None, dtype: Any = None, ddof: float = 0,
               keepdims: bool = False) -> Any:
        return _elementwise(_xp.sqrt, self.nanvar(x, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims))

    # -- linear algebra ---------------------------------------------------------------------
    def matmul(self, a: Any, b: Any, /) -> Any:
        if a.ndim == 0 or b.ndim == 0:
            raise InvalidArgumentError("xp.matmul: operands must have at least one dimension")
        a1, b1 = a.ndim == 1, b.ndim == 1
        if a1:
            a = a[None, :]
        if b1:
            b = b[:, None]
        if a.ndim < b.ndim:
            a = a[(None,) * (b.ndim - a.ndim)]
        elif a.ndim > b.ndim:
            b = b[(None,) * (a.ndim - b.ndim)]
        out_ind = tuple(range(a.ndim + 1))
        lhs_ind = tuple(range(a.ndim))
        rhs_ind = tuple(range(a.ndim - 2)) + (lhs_ind[-1], a.ndim)
        meta = _matmul_chunk(a._meta, b._meta)
        out = da.blockwise(
            _matmul_chunk,
            out_ind,
            a,
            lhs_ind,
            b,
            rhs_ind,
            adjust_chunks={lhs_ind[-1]: 1},
            dtype=meta.dtype,
            meta=_meta(meta.dtype, a.ndim + 1),
            concatenate=False,
        )
        out = self.sum(out, axis=-2)
        if a1:
            out = out[..., 0, :]
        if b1:
            out = out[..., 0]
        return _as_native(out)

    def vecdot(self, a: Any, b: Any, /, *, axis: int = -1) -> Any:
        return self.sum(_elementwise(_xp.multiply, _elementwise(_xp.conj, a), b), axis=axis)

    def permute_dims(self, x: Any, /, axes: tuple[int, ...]) -> Any:
        axes = tuple(int(a) % x.ndim for a in axes)
        f = functools.partial(_call_kw, "permute_dims", (("axes", axes),))
        meta = _xp.permute_dims(x._meta, axes=axes)
        return _as_native(da.blockwise(f, axes, x, tuple(range(x.ndim)), meta=meta, dtype=x.dtype))

    def matrix_transpose(self, x: Any, /) -> Any:
        if x.ndim < 2:
            raise InvalidArgumentError(
                f"xp.matrix_transpose: needs at least 2 dimensions, got {x.ndim}"
            )
        axes = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
        return self.permute_dims(x, axes)

    # -- manipulation -------------------------------------------------------------------------
    def reshape(self, x: Any, /, shape: tuple[int, ...], *, copy: bool | None = None) -> Any:
        """dask's reshape (rechunk so that each output chunk comes from one input chunk), with
        ``xp.reshape`` as the chunk function; shapes must be known."""
        from dask.array.reshape import reshape_rechunk

        shape = tuple(int(s) for s in shape)
        if any(math.isnan(s) for s in x.shape):
            raise InvalidArgumentError(
                "xp.reshape: the array's shape is unknown on the dask device; compute it first"
            )
        if -1 in shape:
            known = math.prod(s for s in shape if s != -1)
            shape = tuple(int(x.size // known) if s == -1 else s for s in shape)
        if math.prod(shape) != x.size:
            raise InvalidArgumentError(
                f"xp.reshape: cannot reshape an array of shape {x.shape} into {shape}"
            )
        if tuple(x.shape) == shape:
            return x
        name = "hpcai-reshape-" + tokenize(x, shape)
        meta = _meta(x.dtype, len(shape))
        if x.npartitions == 1:
            inchunks: Any = tuple((d,) for d in x.shape)
            outchunks: Any = tuple((d,) for d in shape)
            x2 = x
        else:
            try:
                inchunks, outchunks, _, _ = reshape_rechunk(x.shape, shape, x.chunks)
            except NotImplementedError:
                raise InvalidArgumentError(
                    f"xp.reshape: {tuple(x.shape)} -> {shape} is not supported on the dask device: dask reshapes "
                    "only by merging or splitting whole dimensions evenly (e.g. (6, 5, 4) -> (30, 4)); reshape "
                    'in several passes, or compute first with `x.to_device("numpy:cpu")`'
                ) from None
            x2 = x.rechunk(inchunks)
        in_keys = list(itertools.product([x2.name], *[range(len(c)) for c in inchunks]))
        out_keys = list(itertools.product([name], *[range(len(c)) for c in outchunks]))
        shapes = list(itertools.product(*outchunks))
        dsk = {
            o: Task(o, _reshape_chunk, TaskRef(i), s) for o, i, s in zip(out_keys, in_keys, shapes)
        }
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=[x2])  # type: ignore[arg-type]
        return DaskArray(graph, name, outchunks, meta=meta)

    def concat(self, arrays: Sequence[Any], /, *, axis: int | None = 0) -> Any:
        if axis is None:
            arrays = [self.reshape(a, (-1,)) for a in arrays]
            axis = 0
        return _as_native(da.concatenate(list(arrays), axis=axis))

    def stack(self, arrays: Sequence[Any], /, *, axis: int = 0) -> Any:
        nd = arrays[0].ndim + 1
        ax = axis % nd
        idx = (slice(None),) * ax + (None,)
        return self.concat([a[idx] for a in arrays], axis=ax)

    def expand_dims(self, x: Any, /, *, axis: int = 0) -> Any:
        ax = axis % (x.ndim + 1)
        return _as_native(x[(slice(None),) * ax + (None,)])

    def squeeze(self, x: Any, /, axis: Any) -> Any:
        axes = _axes(axis, x.ndim)
        for ax in axes:
            if x.shape[ax] != 1:
                raise InvalidArgumentError(f"xp.squeeze: axis {ax} has length {x.shape[ax]}, not 1")
        return _as_native(x[tuple(0 if i in axes else slice(None) for i in range(x.ndim))])

    def where(self, condition: Any, x1: Any, x2: Any, /) -> Any:
        return _elementwise(_xp.where, condition, x1, x2)

    def clip(self, x: Any, /, min: Any = None, max: Any = None) -> Any:
        return _elementwise(_xp.clip, x, min, max)


_NS = DaskNamespace()


# ============================================================================================
# the backend
# ============================================================================================
def _backend() -> DaskBackend:
    from hpcai.backends import get_backend

    b = get_backend("dask")
    assert isinstance(b, DaskBackend)
    return b


class DaskBackend(Backend):
    """Dask distributed: arrays are lazy graphs of hpcai chunks on a cluster (device ``dask``)."""

    name: ClassVar[str] = "dask"
    install_hint: ClassVar[str] = (
        "pip install 'hpcai[dask]' (or pip install 'dask[array]' distributed)"
    )
    native_type: type = DaskArray

    host_memory: ClassVar[bool] = False
    zero_copy_export: ClassVar[bool] = False
    linalg_raises: ClassVar[bool] = True  # never compute behind the user's back to check
    cache_blocking: ClassVar[bool] = False
    places_by_tags: ClassVar[bool] = True

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._client: Any = None
        self._cluster: Any = None
        self._key: Any = None
        self._atexit = False
        self._chunks = threading.local()
        import hpcai.distributed as hd

        hd.register()

    # -- discovery ----------------------------------------------------------------------------
    def available(self) -> bool:
        return importlib.util.find_spec("distributed") is not None

    def unavailable_reason(self) -> str | None:
        return None if self.available() else "the 'distributed' package is not installed"

    def device_specs(self, config: Mapping[str, Any]) -> list[DeviceSpec]:
        return [
            DeviceSpec(
                name="dask",
                backend="dask",
                kind="cluster",
                attributes=location_attributes(config, "dask"),
            )
        ]

    def namespace(self, device: Device) -> Any:
        return _NS

    def adopt(self, device: Device, native: Any) -> Any:
        if isinstance(native, da.Array):
            return _as_native(native)
        return self.scatter(np.asarray(native), None)  # a Python or NumPy scalar: untagged

    def create(self, device: Device, fname: str, *args: Any, **kwargs: Any) -> Any:
        if fname.endswith("_like") and args and isinstance(args[0], da.Array):
            return getattr(_NS, fname)(*args, **kwargs)
        kwargs.pop("device", None)
        host = getattr(_xp, fname)(*args, device="numpy:cpu", **kwargs)
        return self.scatter(unwrap(host)[0], None)

    def is_native(self, obj: Any) -> bool:
        return isinstance(obj, da.Array)

    def dlpack_device(self, device: Device) -> tuple[int, int]:
        return (1, 0)

    def check_native(self, fname: str, a: Any) -> None:
        if not isinstance(unwrap(a)[0], da.Array):
            raise InvalidArgumentError(
                f"xp.{fname}: expects an array on the dask device, got one on {a.device}"
            )

    # -- the client ---------------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        from hpcai import _config

        return dict(_config.get_config().section("dask"))

    def client(self) -> Any:
        """The client, (re)made when ``[dask]`` (or, for the embedded cluster, the policy) changed."""
        from hpcai.residency import current_policy

        s = self._settings()
        key = (
            tuple(sorted(s.items())),
            None if s.get("scheduler") else current_policy().policy_hash,
        )
        with self._lock:
            if self._client is not None and self._key == key and self._client.status == "running":
                return self._client
            self.close()
            from distributed import Client, LocalCluster

            timeout = float(s.get("timeout", 30))
            if s.get("scheduler"):
                self._client = Client(s["scheduler"], set_as_default=False, timeout=timeout)
            else:
                import hpcai.distributed as hd

                self._cluster = LocalCluster(
                    n_workers=int(s.get("n_workers", 1)),
                    threads_per_worker=int(s.get("threads_per_worker", 2)),
                    processes=False,
                    dashboard_address=":0",  # (None still binds the default port)
                    resources=hd.worker_resources() or None,
                )
                self._client = Client(self._cluster, set_as_default=False, timeout=timeout)
            self._place(self._client)
            # the embedded cluster's threads must not outlive the interpreter's streams
            if not self._atexit:
                import atexit

                atexit.register(self.close)
                self._atexit = True
            self._key = key
            return self._client

    @staticmethod
    def _place(client: Any) -> None:
        """Install :class:`hpcai.distributed.PlacementPlugin` on the scheduler (a convenience:
        a scheduler that cannot load hpcai keeps dask's own placement, and the check on
        arrival still holds)."""
        import hpcai.distributed as hd

        try:
            client.register_plugin(hd.PlacementPlugin())
        except Exception as exc:
            logging.getLogger("hpcai.dask").warning("the dask scheduler did not take hpcai's placement plugin (%s: %s); "
                           "covered data is still checked where it arrives", type(exc).__name__, exc)

    def close(self) -> None:
        with self._lock:
            c, cl = self._client, self._cluster
            self._client = self._cluster = self._key = None
        if c is None and cl is None:
            return
        # closing a cluster that holds scattered chunks logs them as lost: they are released here
        quiet = [
            logging.getLogger(n)
            for n in ("distributed.scheduler", "distributed.worker", "distributed.batched")
        ]
        levels = [lg.level for lg in quiet]
        for lg in quiet:
            lg.setLevel(logging.CRITICAL)
        try:
            if c is not None:
                c.close()
            if cl is not None:
                cl.close()
        finally:
            for lg, lv in zip(quiet, levels):
                lg.setLevel(lv)

    def _in_process(self) -> bool:
        return self._cluster is not None

    @contextlib.contextmanager
    def chunking(self, chunks: Any) -> Iterator[None]:
        """Chunks for the moves onto the device inside the block (``hpcai.dask.from_array``)."""
        old = getattr(self._chunks, "value", None)
        self._chunks.value = chunks
        try:
            yield
        finally:
            self._chunks.value = old

    # -- placement ----------------------------------------------------------------------------
    def allowed_workers(self, tags: TagSet | None, op: str, *, wait: bool = True) -> list[str]:
        """Workers advertising every rule resource data with *tags* needs; refuses (naming the
        rules) when none does within ``[dask] timeout`` seconds (or at once, ``wait=False``)."""
        import hpcai.distributed as hd

        need = hd.resources_for(tags)
        c = self.client()
        deadline = time.monotonic() + float(self._settings().get("timeout", 30))
        while True:
            # asked of the scheduler each time (the client's cached identity may lack the workers)
            workers = c.sync(c.scheduler.identity, n_workers=-1).get("workers", {})
            ok = [
                a
                for a, w in workers.items()
                if all(w.get("resources", {}).get(r, 0) >= n for r, n in need.items())
            ]
            if ok or not wait or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if not ok:
            rules = ", ".join(sorted(r[len(hd.RESOURCE_PREFIX) :] for r in need))
            names = ", ".join(sorted(str(w.get("name", a)) for a, w in workers.items())) or "none"
            raise ResidencyError(
                f"{op}: no worker of the dask cluster may hold this data: the rule(s) {rules} allow it only on "
                f"workers whose own [site] satisfies them (advertised as {', '.join(sorted(need))}); the "
                f"cluster's workers ({names}) advertise none that fit. Start a worker at an allowed site "
                "with `dask worker --preload hpcai.distributed` and its own HPCAI_CONFIG"
            )
        return ok

    def scatter(self, host: np.ndarray, tags: TagSet | None, chunks: Any = None) -> DaskArray:
        """*host* cut into chunks (hpcai Arrays with *tags*) scattered to allowed workers only."""
        c = self.client()
        workers = self.allowed_workers(tags, 'to_device("dask")', wait=False) if tags else None
        from hpcai._config import parse_size

        limit = parse_size(self._settings().get("chunk_size", _DEFAULT_CHUNK))
        want = chunks if chunks is not None else getattr(self._chunks, "value", None)
        norm = normalize_chunks(
            "auto" if want is None else want, host.shape, limit=limit, dtype=host.dtype
        )
        name = "hpcai-chunks-" + uuid.uuid4().hex
        keys = [(name, *i) for i in itertools.product(*[range(len(b)) for b in norm])]
        if self._in_process():
            # the workers are threads of this process (nothing is serialized): the chunks are
            # made on its chunk device ([dask] chunk_device), decided there first
            import hpcai.distributed as hd

            parts = [hd.land(host[s], tags, copy=True, operation="dask-scatter") for s in slices_from_chunks(norm)]
        else:  # made on the host; each lands on its worker's own chunk device on arrival
            cpu = _xp.resolve_device("numpy:cpu")
            parts = [wrap(np.array(host[s], copy=True), cpu, tags) for s in slices_from_chunks(norm)]
        # Scattered under the array's own keys (as persist leaves them): a graph key that only
        # pointed at a differently named future would be one more task per chunk to schedule
        # and run in every computation (~1.5x the time of a small-chunk pipeline).
        futures = c.scatter(dict(zip(keys, parts)), workers=workers, hash=False)
        if tags:
            import hpcai.distributed as hd

            res = hd.resources_for(tags)
            if res:  # the scheduler learns what the chunks need (replicas, retirement, dependents)
                c.run_on_scheduler(hd.restrict_keys, keys, res)
        dsk = {k: futures[k] for k in keys}
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=())  # type: ignore[arg-type]
        arr = DaskArray(graph, name, norm, meta=_meta(host.dtype, host.ndim))
        arr._hpcai_futures = list(dsk.values())  # type: ignore[attr-defined]  # keep the scattered chunks alive
        return arr

    def submit(self, native: Any, tags: TagSet | None, *, optimize_graph: bool = True) -> Any:
        """Start computing *native* on allowed workers only (``resources=``): a Future whose
        result stays on the workers until it is gathered."""
        import hpcai.distributed as hd

        res = hd.resources_for(tags) if tags else {}
        # Submitted at once: the restriction keeps the tasks off workers that lack the rule
        # resources (they wait, unscheduled, while no worker has them).
        return self.client().compute(
            da.Array(native.dask, native.name, native.chunks, meta=native._meta),
            resources=res or None,
            optimize_graph=optimize_graph,
        )

    def prepare_move(self, native: Any, src: Device, dst: Device, tags: TagSet | None) -> Any:
        # Off the cluster: start the computation on the allowed workers now, so that it runs while
        # the core decides the move and writes its audit record; the result reaches this process
        # only when move_tagged gathers it, after the decision.
        if dst.backend == self.name or not isinstance(native, da.Array):
            return None
        return self.submit(native, tags)

    def cancel_prepared(self, prepared: Any) -> None:
        prepared.cancel()

    def gather(
        self, native: Any, tags: TagSet | None, op: str, *, optimize_graph: bool = True, fut: Any = None
    ) -> Any:
        """Compute *native* on allowed workers only (``resources=``) and return the result Array
        (*fut*: the computation already submitted by :meth:`submit`)."""
        import hpcai.distributed as hd

        if fut is None:
            fut = self.submit(native, tags, optimize_graph=optimize_graph)
        # Whether an allowed worker exists is asked of the scheduler (a round trip) only when the
        # result is slow to come: with none left, this gives up within about 1 s + [dask]
        # timeout, naming the rule.
        while True:
            try:
                return fut.result(timeout=1.0)
            except TimeoutError:
                pass
            # tasks restricted to rule resources wait for an allowed worker: give up, naming the
            # rule, if none is left
            if tags and hd.resources_for(tags):
                try:
                    self.allowed_workers(tags, op, wait=True)
                except ResidencyError:
                    fut.cancel()
                    raise

    def persist(self, native: Any, tags: TagSet | None) -> DaskArray:
        import hpcai.distributed as hd

        c = self.client()
        res = hd.resources_for(tags) if tags else {}
        if res:
            self.allowed_workers(tags, "hpcai.dask.persist", wait=True)
        out = c.persist(
            da.Array(native.dask, native.name, native.chunks, meta=native._meta),
            resources=res or None,
        )
        return _as_native(out)  # type: ignore[no-any-return]

    # -- movement -------------------------------------------------------------------------------
    def move_tagged(
        self, native: Any, src: Device, dst: Device, tags: TagSet | None, *, prepared: Any = None
    ) -> Any:
        if dst.backend == self.name:  # onto the cluster
            host = np.asarray(src._backend.to_host(native, src))
            return self.scatter(host, tags)
        result = self.gather(native, tags, f"to_device({str(dst)!r})", fut=prepared)
        if isinstance(result, _xp.Array):
            rn, rdev, _ = unwrap(result)
            host = np.asarray(rdev._backend.to_host(rn, rdev))
        else:  # a 0-d result dask made of a Python scalar
            host = np.asarray(result)
        if self._in_process():  # the worker's object is this process's memory: never alias it
            host = np.array(host, copy=True)
        return dst._backend.from_host(host, dst, copy=False if dst.is_host else True)

    def from_host(self, host: np.ndarray, device: Device, *, copy: bool | None) -> Any:
        return self.scatter(host, None)

    def to_host(self, native: Any, device: Device) -> np.ndarray:
        raise _HostOnlyError(
            'data on the dask device reaches the host only through an explicit move: `x.to_device("numpy:cpu")`'
        )
