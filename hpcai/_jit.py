"""``xp.jit``: compile a function of hpcai arrays with ``jax.jit`` when they live on JAX devices.

The native arrays of the hpcai Arrays among the arguments are traced, their devices and
tags travel as static data, so the function sees Arrays, and its outputs come back as
Arrays on the same device with the tags the computation gave them. (hpcai Arrays are JAX
pytrees too, but flattening one outside a trace hands out its raw data, an export; xp.jit
does not flatten them.) On every other device the function runs unchanged, so code
decorated with ``xp.jit`` stays portable.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from . import _tags
from ._array import Array, _wrap
from .errors import InvalidArgumentError

__all__ = ["jit"]

F = TypeVar("F", bound=Callable[..., Any])

#: Placeholder in the static part of a call for a leaf that is passed to XLA.
_DYNAMIC = ("hpcai.jit", "dynamic")


class _ArraySlot:
    """The static part of an Array argument: its device and tags (hashable, compared by value)."""

    __slots__ = ("device", "tags")

    def __init__(self, device: Any, tags: Any) -> None:
        self.device = device
        self.tags = tags

    def __eq__(self, other: object) -> bool:
        return other.__class__ is _ArraySlot and (self.device, self.tags) == (other.device, other.tags)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.device, self.tags))


def _is_array(obj: Any) -> bool:
    return obj.__class__ is Array


def _rebuilt(data: Any, slot: _ArraySlot) -> Array:
    """An Array around traced *data* with the static device and tags of *slot*."""
    a = object.__new__(Array)
    a._data = data
    a._device = slot.device
    a._tags = slot.tags
    return a


def _arrays_in(obj: Any, out: list[Array]) -> list[Array]:
    """The hpcai Arrays in *obj*, looking through tuples, lists and dicts (JAX's containers)."""
    if obj.__class__ is Array:
        out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            _arrays_in(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _arrays_in(o, out)
    return out


def _on_jax(arrays: list[Array]) -> bool:
    """Whether there are Arrays and every one of them lives on a JAX device."""
    if not arrays:
        return False
    for a in arrays:
        if a._device.spec.backend != "jax":
            return False
    return True


def _compile(f: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any], Any], Any]:
    """``jax.jit`` of *f*: Arrays (their native leaves) are traced, everything else is static."""
    import jax

    from hpcai.backends import get_backend

    get_backend("jax")  # registers Array as a pytree
    name = getattr(f, "__qualname__", repr(f))

    def traced(dynamic: list[Any], static: tuple[Any, tuple[Any, ...]]) -> Any:
        treedef, consts = static
        it = iter(dynamic)
        leaves = []
        for c in consts:
            if c is _DYNAMIC:
                leaves.append(next(it))
            elif c.__class__ is _ArraySlot:
                leaves.append(_rebuilt(next(it), c))
            else:
                leaves.append(c)
        args, kwargs = jax.tree_util.tree_unflatten(treedef, leaves)
        inputs = _arrays_in(kwargs, _arrays_in(args, []))
        device = inputs[0]._device
        tags = _tags.union_all(a._tags for a in inputs)

        def as_output(leaf: Any) -> Any:
            # Non-Array outputs (Python numbers, shapes) come back from XLA as arrays: make
            # them hpcai Arrays on the inputs' device, tagged with everything they may derive from.
            if leaf.__class__ is Array:
                return leaf
            return _wrap(jax.numpy.asarray(leaf), device, tags)

        out = jax.tree_util.tree_map(as_output, f(*args, **kwargs), is_leaf=_is_array)
        # The outputs leave XLA as raw arrays and their devices and tags as static data: JAX
        # re-flattens concrete outputs, and a flattened concrete Array counts as an export.
        flat, out_tree = jax.tree_util.tree_flatten(out, is_leaf=_is_array)
        out_meta[static] = (out_tree, [_ArraySlot(o._device, o._tags) for o in flat])
        return [o._data for o in flat]

    out_meta: dict[Any, tuple[Any, list[_ArraySlot]]] = {}
    jitted = jax.jit(traced, static_argnums=1)

    def call(args: tuple[Any, ...], kwargs: dict[str, Any], device: Any) -> Any:
        # Arrays are leaves here (their data goes to XLA on their own device, with device and
        # tags as static data): not the registered pytree flatten, which is an export.
        leaves, treedef = jax.tree_util.tree_flatten((args, kwargs), is_leaf=_is_array)
        dynamic: list[Any] = []
        consts: list[Any] = []
        for leaf in leaves:
            if leaf.__class__ is Array:
                dynamic.append(leaf._data)
                consts.append(_ArraySlot(leaf._device, leaf._tags))
            elif isinstance(leaf, jax.Array):
                dynamic.append(leaf)
                consts.append(_DYNAMIC)
            else:
                try:
                    hash(leaf)
                except TypeError:
                    raise InvalidArgumentError(
                        f"xp.jit({name}): argument {type(leaf).__name__} {leaf!r:.60} is neither an hpcai "
                        "Array nor hashable; non-array arguments are compiled in as constants. Pass it "
                        "as an array: xp.asarray(value, device=...)"
                    ) from None
                consts.append(leaf)
        # Outputs that do not depend on the inputs' values are constants, which JAX places,
        # uncommitted, on its default device: make that the inputs' device, and commit them.
        static = (treedef, tuple(consts))
        with jax.default_device(device):
            raw = jitted(dynamic, static)
        out_tree, slots = out_meta[static]
        outs = []
        for r, slot in zip(raw, slots, strict=True):
            if not r.committed:  # constants: JAX leaves them uncommitted on its default device
                r = jax.device_put(r, device)
            outs.append(_rebuilt(r, slot))
        return jax.tree_util.tree_unflatten(out_tree, outs)

    return call


def jit(f: F, /) -> F:
    """Compile *f* with ``jax.jit`` when its array arguments live on JAX devices.

    Arrays are traced; other arguments (Python numbers, strings, tuples of them) are
    compiled in as constants, so a new value compiles again: pass arrays for values that
    change from call to call. Outputs are hpcai Arrays on the inputs' device, carrying the
    tags the computation propagated. When any array argument lives on a non-JAX device
    (or there is none), *f* is called unchanged: the same code runs on every backend.
    Data moves inside a compiled function are refused; move arrays before calling it.

    >>> import hpcai as xp
    >>> @xp.jit
    ... def axpy(a, x, y):
    ...     return a * x + y
    >>> x = xp.ones(3, device="jax:cpu:0")
    >>> axpy(2.0, x, x).device
    Device('jax:cpu:0')
    """
    compiled: list[Callable[[tuple[Any, ...], dict[str, Any], Any], Any]] = []

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        arrays = _arrays_in(kwargs, _arrays_in(args, []))
        if not _on_jax(arrays):
            return f(*args, **kwargs)
        if not compiled:
            compiled.append(_compile(f))
        return compiled[0](args, kwargs, arrays[0]._device.spec.handle)

    return wrapper  # type: ignore[return-value]
