"""``jax.numpy`` with the standard's special cases where XLA or ``jax.numpy`` miss them.

The JAX backend computes through :class:`StandardJaxNumpy`, which is ``jax.numpy`` except
for the functions below. Each correction is an ordinary traceable ``jax.numpy`` expression,
so it works eagerly, inside ``jax.jit``/``xp.jit`` and under ``jax.grad`` alike.

* **Division by a broadcast divisor.** XLA's algebraic simplifier rewrites
  ``x / broadcast(y)`` into ``x * broadcast(1 / y)``. The product is not correctly rounded
  (``2.5 / 1.5`` is off by one ulp), and where ``1 / y`` underflows it gives ``huge / huge
  == 0`` and ``inf / huge == NaN``. The standard asks ``/`` to be correctly rounded, so
  when the divisor has to be broadcast, it is broadcast behind
  ``jax.lax.optimization_barrier``: XLA then sees a full-shaped divisor and divides.
  The cost is one divisor-sized buffer (the result's size) for that call; equal shapes
  take the direct path. ``floor_divide`` gets the same treatment.
* **Placement.** ``jax.numpy`` answers ``isfinite`` and ``isinf`` of integer input, and
  ``linalg.matrix_power(x, 0)``, with a constant that is not committed to the input's
  device (it lands on JAX's default device); here it is.
* **Complex special values** (C99 Annex G, as the standard specifies): ``abs`` of a value
  with an infinite component is ``+inf`` even if the other is NaN; ``log`` and ``sqrt``
  keep their infinities next to NaN; ``exp`` and ``sqrt`` keep the sign of a zero
  imaginary part; ``exp`` of ``(±inf, ±inf or NaN)`` follows Annex G.

Subnormal results are a different matter: XLA on CPU runs with flush-to-zero and
denormals-are-zero. The standard leaves subnormal behaviour implementation-defined
("conforming implementations may vary in their support for subnormal numbers"), and
emulating gradual underflow would cost every operation, so JAX devices flush as XLA does.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["StandardJaxNumpy"]

_INF = float("inf")
_NAN = float("nan")


def _needs_broadcast(x1: Any, x2: Any) -> bool:
    """Whether the divisor *x2* is smaller than the result (and XLA would rewrite)."""
    s1 = getattr(x1, "shape", ())
    s2 = getattr(x2, "shape", ())  # Python scalars are 0-d
    if s1 == s2:
        return False
    if len(s1) > len(s2):
        return True
    return any(d2 == 1 and d1 != 1 for d1, d2 in zip(reversed(s1), reversed(s2), strict=False))


def _full_divisor(x1: Any, x2: Any) -> Any:
    """*x2* at the result's shape behind an optimization barrier (traced: jit-compiled)."""
    return lax.optimization_barrier(jnp.broadcast_to(x2, jnp.broadcast_shapes(jnp.shape(x1), jnp.shape(x2))))


# One compiled program per call, as jnp.divide is; nested in an outer jit they are inlined.
_divide_full = jax.jit(lambda x1, x2: jnp.divide(x1, _full_divisor(x1, x2)))
_floor_divide_full = jax.jit(lambda x1, x2: jnp.floor_divide(x1, _full_divisor(x1, x2)))


def divide(x1: Any, x2: Any, /) -> Any:
    """``x1 / x2``, correctly rounded also when ``x2`` is a scalar or broadcast."""
    if _needs_broadcast(x1, x2):
        return _divide_full(x1, x2)
    return jnp.divide(x1, x2)


def floor_divide(x1: Any, x2: Any, /) -> Any:
    """``x1 // x2`` without XLA's reciprocal rewrite of a broadcast divisor."""
    if _needs_broadcast(x1, x2):
        return _floor_divide_full(x1, x2)
    return jnp.floor_divide(x1, x2)


def _is_complex(x: Any) -> bool:
    return jnp.iscomplexobj(x)


def abs(x: Any, /) -> Any:
    """``|x|``; for complex ``x`` an infinite component gives ``+inf`` even beside NaN."""
    r = jnp.abs(x)
    if not _is_complex(x):
        return r
    inf = jnp.isinf(x.real) | jnp.isinf(x.imag)
    return jnp.where(inf, jnp.asarray(_INF, dtype=r.dtype), r)


def exp(x: Any, /) -> Any:
    """``e**x``, with Annex G's values for zero imaginary parts and infinite real parts."""
    r = jnp.exp(x)
    if not _is_complex(x):
        return r
    re, im = x.real, x.imag
    rr, ri = r.real, r.imag
    zero_im = im == 0  # exp(x + 0j) = exp(x) + 0j, the zero's sign kept (also for NaN x)
    rr = jnp.where(zero_im, jnp.exp(re), rr)
    ri = jnp.where(zero_im, im, ri)
    bad_im = ~jnp.isfinite(im)
    pinf = (re == _INF) & bad_im  # (+inf, ±inf or NaN) -> (±inf, NaN)
    ninf = (re == -_INF) & bad_im  # (-inf, ±inf or NaN) -> (±0, ±0)
    rr = jnp.where(pinf, _INF, jnp.where(ninf, 0.0, rr))
    ri = jnp.where(pinf, _NAN, jnp.where(ninf, 0.0, ri))
    return lax.complex(rr, ri)


def log(x: Any, /) -> Any:
    """Natural logarithm; a complex value with an infinite component has real part ``+inf``."""
    r = jnp.log(x)
    if not _is_complex(x):
        return r
    re, im = x.real, x.imag
    inf_nan = (jnp.isinf(re) & jnp.isnan(im)) | (jnp.isnan(re) & jnp.isinf(im))
    return jnp.where(inf_nan, lax.complex(jnp.full_like(re, _INF), jnp.full_like(re, _NAN)), r)


def sqrt(x: Any, /) -> Any:
    """Principal square root; for complex ``x`` the imaginary part keeps the sign of ``x``'s."""
    r = jnp.sqrt(x)
    if not _is_complex(x):
        return r
    re, im = x.real, x.imag
    rr, ri = r.real, r.imag
    ri = jnp.where(jnp.isnan(im), ri, jnp.copysign(ri, im))  # sqrt(conj(z)) == conj(sqrt(z))
    inf_im = jnp.isinf(im)  # (any, ±inf) -> (+inf, ±inf), NaN real part included
    pinf_nan = (re == _INF) & jnp.isnan(im)  # (+inf, NaN) -> (+inf, NaN)
    ninf_nan = (re == -_INF) & jnp.isnan(im)  # (-inf, NaN) -> (NaN, ±inf)
    rr = jnp.where(inf_im | pinf_nan, _INF, jnp.where(ninf_nan, _NAN, rr))
    ri = jnp.where(inf_im, im, jnp.where(pinf_nan, _NAN, jnp.where(ninf_nan, _INF, ri)))
    return lax.complex(rr, ri)


def isfinite(x: Any, /) -> Any:
    """Whether each element is finite; integer and bool input gives all ``True`` on its device."""
    if jnp.issubdtype(jnp.result_type(x), jnp.inexact):
        return jnp.isfinite(x)
    return jnp.full_like(x, True, dtype=bool)  # jnp.isfinite's constant is not committed


def isinf(x: Any, /) -> Any:
    """Whether each element is infinite; integer and bool input gives all ``False`` on its device."""
    if jnp.issubdtype(jnp.result_type(x), jnp.inexact):
        return jnp.isinf(x)
    return jnp.full_like(x, False, dtype=bool)


def matrix_power(x: Any, n: int, /) -> Any:
    """``x**n``; ``n = 0`` gives identities on ``x``'s device (``jax.numpy``'s are not committed)."""
    if n == 0:
        return jnp.zeros_like(x) + jnp.eye(x.shape[-1], dtype=x.dtype)
    return jnp.linalg.matrix_power(x, n)


class _Corrected:
    """A namespace that is *base* except for *corrections*; other names are looked up in
    *base* once and cached on the instance, so a call costs what a call through *base* costs."""

    def __init__(self, base: Any, corrections: dict[str, Any]) -> None:
        self._base = base
        self.__dict__.update(corrections)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._base, name)
        self.__dict__[name] = attr
        return attr

    def __repr__(self) -> str:
        return f"<{self._base.__name__} with the standard's special cases>"


class StandardJaxNumpy(_Corrected):
    """``jax.numpy`` with the corrections of this module; every other name is ``jax.numpy``'s."""

    def __init__(self) -> None:
        super().__init__(
            jnp,
            {
                "divide": divide,
                "floor_divide": floor_divide,
                "abs": abs,
                "exp": exp,
                "log": log,
                "sqrt": sqrt,
                "isfinite": isfinite,
                "isinf": isinf,
                "linalg": _Corrected(jnp.linalg, {"matrix_power": matrix_power}),
            },
        )
