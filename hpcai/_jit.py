"""``xp.jit``: compile a function of hpcai arrays with their backend's compiler, where it has one.

The core only decides *whether* to compile: when every hpcai Array among the arguments
lives on one backend whose ``supports_jit`` capability is true, that backend's
:meth:`~hpcai.backends.Backend.jit` compiles the function once (JAX: ``jax.jit``, the
arrays traced, their devices and tags static). On every other device, mixed backends, or
with no array argument, the function runs unchanged, so code decorated with ``xp.jit``
stays portable.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ._array import Array

if TYPE_CHECKING:
    from hpcai.backends import Backend

__all__ = ["jit"]

F = TypeVar("F", bound=Callable[..., Any])


def _arrays_in(obj: Any, out: list[Array]) -> list[Array]:
    """The hpcai Arrays in *obj*, looking through tuples, lists and dicts."""
    if obj.__class__ is Array:
        out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            _arrays_in(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _arrays_in(o, out)
    return out


def _compiling_backend(arrays: list[Array]) -> Backend | None:
    """The backend that compiles for *arrays*: theirs, when it is one and it has a jit."""
    if not arrays:
        return None
    backend = arrays[0]._device._backend
    if not backend.supports_jit:
        return None
    for a in arrays:
        if a._device._backend is not backend:
            return None
    return backend


def jit(f: F, /) -> F:
    """Compile *f* when its array arguments live on a backend with a compiler (JAX).

    Arrays are traced; other arguments (Python numbers, strings, tuples of them) are
    compiled in as constants, so a new value compiles again: pass arrays for values that
    change from call to call. Outputs are hpcai Arrays on the inputs' device, carrying the
    tags the computation propagated. When any array argument lives on a device whose
    backend does not compile (or there is none), *f* is called unchanged: the same code
    runs on every backend. Data moves inside a compiled function are refused; move arrays
    before calling it.

    >>> import hpcai as xp
    >>> @xp.jit
    ... def axpy(a, x, y):
    ...     return a * x + y
    >>> x = xp.ones(3, device="jax:cpu:0")
    >>> axpy(2.0, x, x).device
    Device('jax:cpu:0')
    """
    compiled: dict[Backend, Callable[[tuple[Any, ...], dict[str, Any], Any], Any]] = {}

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        arrays = _arrays_in(kwargs, _arrays_in(args, []))
        backend = _compiling_backend(arrays)
        if backend is None:
            return f(*args, **kwargs)
        call = compiled.get(backend)
        if call is None:
            call = compiled[backend] = backend.jit(f)
        return call(args, kwargs, arrays[0]._device)

    return wrapper  # type: ignore[return-value]
