"""The JAX backend: one hpcai device per JAX device (``jax:cpu:0``, ``jax:gpu:1``, ``jax:tpu:0``).

Every device JAX offers, on every platform it initialised, becomes one hpcai device named
``jax:<platform>:<i>``, ``i`` counting that platform's local devices from 0. Arrays are
*committed* to their device (``jax.device_put(x, d)``), so JAX computes their results on
that device and never moves them to its default device behind hpcai's back.

Semantics worth knowing:

* **64-bit types.** Loading this backend turns on ``jax_enable_x64`` (a process-wide JAX
  setting), so ``float64``/``int64``/``complex128`` behave as on NumPy, as the standard's
  default dtypes require. JAX code in the same process sees the setting too.
* **Mutation.** JAX arrays are immutable; hpcai keeps NumPy's semantics on top of them.
  ``x[i] = v`` becomes the functional update ``x.at[i].set(v)`` (compiled once per key
  structure, shape and dtype, then about 5 µs a call) and ``x += y`` computes ``x + y``;
  the wrapper then holds the new array. Each update writes a new array of ``x``'s size
  (an O(size) copy) unless XLA elides it inside ``xp.jit``; in loops, prefer whole-array
  expressions. Integer indices out of bounds raise ``IndexError`` as on NumPy; indices
  inside index *arrays* are not checked (JAX drops such updates). Slices of JAX-backed
  arrays are copies, not views: writing into ``x`` never changes an ``x[:2]`` taken before.
* **Pytrees.** hpcai Arrays are registered as JAX pytrees (leaf: the native array; aux
  data: device and tags), so ``jax.jit``, ``jax.grad`` and ``jax.tree_util`` accept them
  and give back Arrays with the same tags. Flattening a concrete Array hands its raw
  leaf out of hpcai: an export, decided like ``__array__`` (refused under
  ``export = "false"``). Rebuilding takes the device from the leaf, and a leaf on another
  device (``jax.device_put(x, other)``) is a placement decided under the policy.
  ``xp.jit`` hands Arrays to XLA without flattening them, so it is not an export.
* **Special cases.** Results follow the standard's special cases as on NumPy: XLA's
  division by a broadcast divisor (computed as a multiplication by the reciprocal) and
  ``jax.numpy``'s complex special values are corrected in the namespace this backend
  computes through (``_jax_numpy.StandardJaxNumpy``). XLA on CPU flushes subnormal results
  to zero; the standard leaves subnormals to the implementation.
* **DLPack.** Every JAX CPU device reports ``(kDLCPU, 0)``: DLPack cannot tell the
  virtual CPU devices apart, so hpcai takes locality from its own device, never from DLPack.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from hpcai import Array
from hpcai.errors import ArrayIndexError, InvalidArgumentError, UnknownDeviceError

from ._base import (
    ALL_DTYPES,
    FP64_DTYPES,
    Backend,
    DeviceSpec,
    check_export,
    location_attributes,
    unwrap,
    wrap,
)
from ._jax_numpy import StandardJaxNumpy

if TYPE_CHECKING:
    from hpcai._device import Device
    from hpcai._tags import TagSet

__all__ = ["JaxBackend"]

# The standard's default dtypes are 64-bit; without x64 JAX silently computes in 32 bits.
jax.config.update("jax_enable_x64", True)

_JaxArray = jax.Array
_NAMESPACE = StandardJaxNumpy()
_device_put = jax.device_put
_default_device = jax.default_device

#: DLPack device types (dlpack.h) used when a device cannot be asked directly.
_KDL_CPU = 1
_KDL_CUDA = 2
_KDL_ROCM = 10
_KDL_EXT = 12


# --------------------------------------------------------------------------------------------
# hpcai Arrays as JAX pytrees
# --------------------------------------------------------------------------------------------
_Tracer = jax.core.Tracer


def _flatten(a: Array) -> tuple[tuple[Any], tuple[Device, TagSet | None]]:
    # The leaf is the raw JAX array: outside a trace it leaves hpcai's control (the caller
    # can keep it, move it, convert it), so flattening a concrete array is an export,
    # decided and audited like __array__. Tracers are the data of a computation being
    # traced, not values leaving. xp.jit passes Arrays to XLA without this path.
    data, device, tags = unwrap(a)
    if not isinstance(data, _Tracer):
        check_export(a, "pytree flatten")
    return (data,), (device, tags)


def _unflatten(aux: tuple[Device, TagSet | None], children: Any) -> Array:
    # JAX rebuilds pytrees with tracers and placeholder leaves (None, object()), which are
    # stored as given. A concrete leaf determines the device: jax.device_put(x, other)
    # rebuilds x with a leaf on another device, and the wrapper must say so; data with tags
    # arriving on a device is a placement, decided under the policy (nothing is built when
    # it refuses).
    leaf = children[0]
    device, tags = aux
    if isinstance(leaf, jax.Array) and not isinstance(leaf, _Tracer):
        where = _leaf_device(leaf)
        if where is not None and where is not device:
            from hpcai.residency import check_placement

            check_placement(tags, where, operation="pytree unflatten", nbytes=int(leaf.nbytes))
            device = where
    elif isinstance(leaf, np.ndarray):
        from hpcai._device import resolve_device

        host = resolve_device("numpy:cpu")
        if host is not device:
            from hpcai.residency import check_placement

            check_placement(tags, host, operation="pytree unflatten", nbytes=int(leaf.nbytes))
            device = host
    return wrap(leaf, device, tags, adopt=False)


def _leaf_device(leaf: Any) -> Device | None:
    """The hpcai device a concrete JAX array lives on (None when sharded or unknown)."""
    try:
        devices = leaf.devices()
    except Exception:  # deleted or otherwise unplaced
        return None
    if len(devices) != 1:
        return None
    from hpcai.backends import get_backend

    try:
        return get_backend("jax").device_of(leaf)  # type: ignore[attr-defined, no-any-return]
    except Exception:
        return None


try:
    jax.tree_util.register_pytree_node(Array, _flatten, _unflatten)
except ValueError:  # registered already (the module was imported again)
    pass


# --------------------------------------------------------------------------------------------
# setitem through a compiled functional update
# --------------------------------------------------------------------------------------------
def _key_spec(key: Any, shape: tuple[int, ...]) -> tuple[Any, list[Any]] | None:
    """Split an index into a hashable static structure and its dynamic (integer) parts.

    Integer components are bounds-checked here, as NumPy would; boolean masks give
    ``None`` (update eagerly) because the number of elements they select depends on the data.
    """
    parts = key if key.__class__ is tuple else (key,)
    spec: list[Any] = []
    dyn: list[Any] = []
    # Axis each component indexes, to bounds-check integers (None adds no axis).
    n_index = sum(1 for p in parts if p is not None and p is not Ellipsis)
    axis = 0
    for p in parts:
        if p is None:
            spec.append("n")
        elif p is Ellipsis:
            spec.append("e")
            axis += max(len(shape) - n_index, 0)
        elif p.__class__ is int:
            if axis < len(shape):
                size = shape[axis]
                if not -size <= p < size:
                    raise ArrayIndexError(
                        f"__setitem__: index {p} is out of bounds for axis {axis} with size {size}"
                    )
            spec.append("i")
            dyn.append(p)
            axis += 1
        elif p.__class__ is slice:
            spec.append(
                ("s", _index_or_none(p.start), _index_or_none(p.stop), _index_or_none(p.step))
            )
            axis += 1
        elif isinstance(p, _JaxArray) and p.dtype.kind in "iu":
            spec.append("a")
            dyn.append(p)
            axis += 1
        else:  # booleans and boolean masks select a data-dependent number of elements
            return None
    return (key.__class__ is tuple, tuple(spec)), dyn


def _index_or_none(v: Any) -> int | None:
    return None if v is None else operator.index(v)


def _rebuild_key(spec: tuple[bool, tuple[Any, ...]], dyn: list[Any]) -> Any:
    is_tuple, items = spec
    parts: list[Any] = []
    it = iter(dyn)
    for s in items:
        if s == "n":
            parts.append(None)
        elif s == "e":
            parts.append(Ellipsis)
        elif s == "i" or s == "a":
            parts.append(next(it))
        else:
            parts.append(slice(s[1], s[2], s[3]))
    return tuple(parts) if is_tuple else parts[0]


def _set(native: Any, spec: tuple[bool, tuple[Any, ...]], dyn: list[Any], value: Any) -> Any:
    return native.at[_rebuild_key(spec, dyn)].set(value)


_set_jit = jax.jit(_set, static_argnums=(1,))


# --------------------------------------------------------------------------------------------
# host -> device
# --------------------------------------------------------------------------------------------
#: XLA's CPU client adopts (aliases) host buffers aligned to this many bytes.
_XLA_ALIGN = 64
#: From this size on, a move between JAX CPU devices is one NumPy copy that XLA adopts
#: rather than XLA's own copy (measured on jax 0.10 with 4 virtual CPU devices: XLA's
#: copy runs at ~20 GB/s up to 16 MiB and drops to ~2 GB/s from 32 MiB, where NumPy's
#: stays at 8-10 GB/s; below, the two are within noise of each other).
_ADOPT_MIN_BYTES = 32 * 2**20


def _private_copy(host: np.ndarray) -> np.ndarray:
    """A C-contiguous, 64-byte-aligned copy of *host* that nothing else references."""
    buf = np.empty(host.nbytes + _XLA_ALIGN, dtype=np.uint8)
    offset = -buf.ctypes.data % _XLA_ALIGN
    out = buf[offset : offset + host.nbytes].view(host.dtype).reshape(host.shape)
    np.copyto(out, host, casting="no")
    return out


def _aliases(out: Any, host: np.ndarray) -> bool:
    """Whether the JAX array *out* shares *host*'s memory."""
    try:
        return bool(host.size) and int(out.unsafe_buffer_pointer()) == int(host.ctypes.data)
    except Exception:  # tracers and platforms without raw pointers
        return False


def _put_host(host: np.ndarray, device: Device) -> Any:
    """Copy host memory onto *device*, never aliasing the caller's NumPy array.

    ``jax.device_put`` of a NumPy array on a CPU device *aliases* the array when its
    buffer is 64-byte aligned (``may_alias=False`` does not prevent it), so a later write
    through NumPy would change the "immutable" JAX array. On CPU devices an aligned or
    large array is therefore copied once into a private aligned buffer that XLA adopts
    (for large arrays also the faster copy); other arrays are copied by XLA itself, and
    checked. Accelerators get ``jax.device_put`` (a host-to-device copy). Returns once the
    copy is complete.
    """
    d = device.spec.handle
    out: Any
    if device.spec.kind == "cpu" and host.dtype.kind != "O":
        if host.nbytes >= _ADOPT_MIN_BYTES or host.ctypes.data % _XLA_ALIGN == 0:
            out = _device_put(_private_copy(host), d)
        else:
            out = _device_put(host, d)
            if _aliases(out, host):  # not expected for unaligned memory; never allowed
                out = _device_put(_private_copy(host), d)
    else:
        out = _device_put(host, d)
    concrete = out.__class__ is _ArrayImpl[0]  # not a tracer while xp.jit traces a constant
    if concrete:
        out.block_until_ready()
    return out


#: The concrete array class of JAX (set when the devices are listed).
_ArrayImpl: list[type] = [_JaxArray]


# --------------------------------------------------------------------------------------------
class JaxBackend(Backend):
    """JAX on every device it sees; arrays committed to their device, x64 enabled."""

    name: ClassVar[str] = "jax"
    install_hint: ClassVar[str] = "pip install 'hpcai[jax]' (or pip install jax)"
    #: Replaced by the concrete array class once devices are known (``Array`` skips adopt()).
    native_type: type = _JaxArray

    zero_copy_export: ClassVar[bool] = True
    supports_jit: ClassVar[bool] = True
    linalg_raises: ClassVar[bool] = False  # singular input gives inf/NaN: the core checks
    special_functions: ClassVar[tuple[str, str] | None] = ("jax.scipy.special", "pip install jax")
    #: XLA fuses whole-array expressions; Python-level blocking only adds dispatches.
    cache_blocking: ClassVar[bool] = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[Any, str] = {}
        self._dl: dict[str, tuple[int, int]] = {}

    # -- discovery ------------------------------------------------------------------------------
    def _jax_devices(self) -> list[tuple[str, str, int, Any]]:
        """``(name, kind, index, jax device)`` for every local device of every platform."""
        from jax.extend.backend import backends

        out: list[tuple[str, str, int, Any]] = []
        seen: set[Any] = set()
        platforms = sorted(backends(), key=lambda p: (p != "cpu", p))
        for platform in platforms:
            try:
                devices = jax.local_devices(backend=platform)
            except RuntimeError:
                continue
            counts: dict[str, int] = {}
            for d in devices:
                if d in seen:
                    continue
                seen.add(d)
                kind = str(d.platform).lower()
                i = counts.get(kind, 0)
                counts[kind] = i + 1
                out.append((f"jax:{kind}:{i}", kind, i, d))
        return out

    def available(self) -> bool:
        try:
            return bool(jax.devices())
        except RuntimeError:
            return False

    def device_specs(self, config: Mapping[str, Any]) -> list[DeviceSpec]:
        specs: list[DeviceSpec] = []
        names: dict[Any, str] = {}
        for name, kind, index, d in self._jax_devices():
            memory: int | None = None
            try:
                stats = d.memory_stats()
            except Exception:  # not every platform reports memory
                stats = None
            if stats and stats.get("bytes_limit"):
                memory = int(stats["bytes_limit"])
            # TPUs have no FP64 units (XLA emulates FP64 there in software).
            native = ALL_DTYPES - FP64_DTYPES if kind == "tpu" else ALL_DTYPES
            specs.append(
                DeviceSpec(
                    name=name,
                    backend="jax",
                    kind=kind,
                    index=index,
                    memory=memory,
                    native_dtypes=native,
                    attributes=location_attributes(config, name),
                    handle=d,
                )
            )
            names[d] = name
        if specs:
            # The concrete array class, so that Array._wrap skips adopt() for results.
            self.native_type = type(_device_put(np.zeros((), np.float32), specs[0].handle))
            _ArrayImpl[0] = self.native_type
        with self._lock:
            self._names = names
        return specs

    # -- protocol -------------------------------------------------------------------------------
    def namespace(self, device: Device) -> Any:
        # jax.numpy implements the 2024.12 standard itself (array-api-compat defers to it);
        # the few special cases XLA and jax.numpy miss are corrected (see _jax_numpy).
        return _NAMESPACE

    def adopt(self, device: Device, native: Any) -> Any:
        # Results of jax.numpy are JAX arrays already (or tracers inside jax.jit); other
        # values (NumPy/Python scalars from host-side helpers) are placed on the device.
        if isinstance(native, _JaxArray):
            return native
        return _put_host(np.asarray(native), device)

    def create(self, device: Device, fname: str, *args: Any, **kwargs: Any) -> Any:
        d = device.spec.handle
        fn = getattr(jnp, fname)
        with _default_device(d):
            out = fn(*args, **kwargs)
        if isinstance(out, (list, tuple)):
            return type(out)(self._commit(o, d) for o in out)
        return self._commit(out, d)

    @staticmethod
    def _commit(out: Any, d: Any) -> Any:
        if isinstance(out, _JaxArray):
            if getattr(out, "committed", True):  # tracers carry no placement
                return out
            return _device_put(out, d)
        return _device_put(np.asarray(out), d)

    def from_host(self, host: np.ndarray, device: Device, *, copy: bool | None) -> Any:
        # Always a copy: NumPy arrays are mutable, JAX arrays must not change under hpcai.
        return _put_host(host, device)

    def _concrete(self, native: Any, what: str) -> None:
        if native.__class__ is not self.native_type and not isinstance(native, np.ndarray):
            raise InvalidArgumentError(
                f"{what}: cannot move data inside a function being compiled by xp.jit/jax.jit "
                "(moves are checked and recorded each time they happen); move the arrays before "
                "calling the compiled function"
            )

    def to_host(self, native: Any, device: Device) -> np.ndarray:
        # A read-only view on CPU devices, a copy from accelerators; callers that hand the
        # data to a mutable device copy it.
        if native.__class__ is not self.native_type:
            self._concrete(native, "to_device")
        return np.asarray(native)

    def transfer(self, native: Any, src: Device, dst: Device) -> Any:
        if native.__class__ is not self.native_type:
            self._concrete(native, "to_device")
        if src.spec.kind == "cpu" and dst.spec.kind == "cpu" and native.nbytes >= _ADOPT_MIN_BYTES:
            # Both live in host memory: for large arrays one NumPy copy that XLA adopts is
            # several times faster than XLA's own CPU-to-CPU copy.
            return _put_host(np.asarray(native), dst)
        out = _device_put(native, dst.spec.handle)
        out.block_until_ready()
        return out

    def setitem(self, device: Device, native: Any, key: Any, value: Any) -> Any:
        split = _key_spec(key, tuple(native.shape))
        if split is None:
            return native.at[key].set(value)
        return _set_jit(native, split[0], split[1], value)

    def dlpack_device(self, device: Device) -> tuple[int, int]:
        name = device.spec.name
        cached = self._dl.get(name)
        if cached is not None:
            return cached
        d = device.spec.handle
        try:
            probe = _device_put(np.zeros(1, np.uint8), d)
            dev_type, dev_id = probe.__dlpack_device__()
            out = (int(dev_type), int(dev_id))
        except Exception:  # platforms without DLPack support
            if device.spec.kind == "cpu":
                out = (_KDL_CPU, 0)
            elif device.spec.kind == "gpu":
                out = (_KDL_CUDA, int(getattr(d, "local_hardware_id", device.spec.index)))
            else:
                out = (_KDL_EXT, device.spec.index)
        self._dl[name] = out
        return out

    def is_native(self, obj: Any) -> bool:
        return isinstance(obj, _JaxArray)

    def synchronize(self, device: Device, native: Any) -> None:
        ready = getattr(native, "block_until_ready", None)  # tracers have none
        if ready is not None:
            ready()

    def full_precision_matmul(self, ns: Any, x1: Any, x2: Any) -> Any:
        # XLA may use TF32 / bf16 passes for float32 products on accelerators by default.
        return ns.matmul(x1, x2, precision="highest")

    def jit(self, f: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any], Device], Any]:
        from ._jax_jit import compile_jit

        return compile_jit(f)

    def device_of(self, native: Any) -> Device:
        """The hpcai device a (foreign) JAX array lives on (``xp.asarray`` of a JAX array).

        >>> import jax
        >>> from hpcai.backends import get_backend
        >>> str(get_backend("jax").device_of(jax.numpy.zeros(2)))
        'jax:cpu:0'
        """
        from hpcai._device import resolve_device

        try:
            devices = native.devices()
        except Exception as exc:  # tracers have no placement
            raise InvalidArgumentError(
                f"xp.asarray: cannot tell where this {type(native).__name__} lives ({exc}); "
                "pass a concrete JAX array"
            ) from None
        if len(devices) != 1:
            raise InvalidArgumentError(
                f"xp.asarray: the JAX array is sharded across {len(devices)} devices; an hpcai "
                "array lives on one device: gather it first, e.g. jax.device_put(x, jax.devices()[0])"
            )
        (d,) = devices
        name = self._names.get(d)
        if name is None:
            from hpcai._device import all_devices

            all_devices()  # the device table may not be built yet (it names JAX's devices)
            name = self._names.get(d)
        if name is None:
            raise UnknownDeviceError(
                f"xp.asarray: the JAX array lives on {d}, which is not one of hpcai's JAX devices "
                f"({', '.join(self._names.values())})"
            )
        return resolve_device(name)
