"""``xp.jit`` on JAX devices: :meth:`JaxBackend.jit` compiles a function of hpcai arrays with ``jax.jit``.

The native arrays of the hpcai Arrays among the arguments are traced, their devices and
tags travel as static data, so the function sees Arrays, and its outputs come back as
Arrays on the same device with the tags the computation gave them. (hpcai Arrays are JAX
pytrees too, but flattening one outside a trace hands out its raw data, an export; this
path does not flatten them.) Arrays are made and read through :func:`hpcai.backends.wrap`
and :func:`hpcai.backends.unwrap`, as every backend does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax

from hpcai import Array, _tags
from hpcai._jit import _arrays_in
from hpcai.errors import InvalidArgumentError

from ._base import unwrap, wrap

if TYPE_CHECKING:
    from hpcai._device import Device

__all__ = ["compile_jit"]

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
    return wrap(data, slot.device, slot.tags, adopt=False)


def compile_jit(f: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any], Device], Any]:
    """``jax.jit`` of *f*: Arrays (their native leaves) are traced, everything else is static."""
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
        device = unwrap(inputs[0])[1]
        tags = _tags.union_all(unwrap(a)[2] for a in inputs)

        def as_output(leaf: Any) -> Any:
            # Non-Array outputs (Python numbers, shapes) come back from XLA as arrays: make
            # them hpcai Arrays on the inputs' device, tagged with everything they may derive from.
            if leaf.__class__ is Array:
                return leaf
            return wrap(jax.numpy.asarray(leaf), device, tags)

        out = jax.tree_util.tree_map(as_output, f(*args, **kwargs), is_leaf=_is_array)
        # The outputs leave XLA as raw arrays and their devices and tags as static data: JAX
        # re-flattens concrete outputs, and a flattened concrete Array counts as an export.
        flat, out_tree = jax.tree_util.tree_flatten(out, is_leaf=_is_array)
        parts = [unwrap(o) for o in flat]
        out_meta[static] = (out_tree, [_ArraySlot(d, t) for _, d, t in parts])
        return [data for data, _, _ in parts]

    out_meta: dict[Any, tuple[Any, list[_ArraySlot]]] = {}
    jitted = jax.jit(traced, static_argnums=1)

    def call(args: tuple[Any, ...], kwargs: dict[str, Any], device: Device) -> Any:
        # Arrays are leaves here (their data goes to XLA on their own device, with device and
        # tags as static data): not the registered pytree flatten, which is an export.
        handle = device.spec.handle
        leaves, treedef = jax.tree_util.tree_flatten((args, kwargs), is_leaf=_is_array)
        dynamic: list[Any] = []
        consts: list[Any] = []
        for leaf in leaves:
            if leaf.__class__ is Array:
                data, dev, tags = unwrap(leaf)
                dynamic.append(data)
                consts.append(_ArraySlot(dev, tags))
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
        with jax.default_device(handle):
            raw = jitted(dynamic, static)
        out_tree, slots = out_meta[static]
        outs = []
        for r, slot in zip(raw, slots, strict=True):
            if not r.committed:  # constants: JAX leaves them uncommitted on its default device
                r = jax.device_put(r, handle)
            outs.append(_rebuilt(r, slot))
        return jax.tree_util.tree_unflatten(out_tree, outs)

    return call
