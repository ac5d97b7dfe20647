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
  with an infinite component is ``+inf`` even if the other is NaN; ``log``, ``log1p`` and
  ``sqrt`` keep their infinities next to NaN; ``exp`` and ``sqrt`` keep the sign of a zero
  imaginary part; ``exp`` and ``expm1`` of ``(±inf, ±inf or NaN)`` follow Annex G. The
  inverse functions ``acos``, ``acosh``, ``asinh`` and ``atanh`` give NaN + NaN j for a
  NaN component (``jax.numpy`` keeps a finite part, e.g. ``log(2|x|)`` for large ``x``
  or ``±π/2`` in ``atanh``) except where Annex G keeps one; ``cosh``, ``sinh`` and
  ``tanh`` follow Annex G for a zero or infinite real part beside an infinite or NaN
  imaginary part, and ``tanh(±inf + bj)`` is ``±1 ± 0j`` with the sign of ``b`` as the
  standard asks. Each correction is a ``where`` over masks of the special elements,
  compiled with the function into one program (:func:`_corrects`): one dispatch eagerly,
  fused into the loop that computes the result.
* **Zero sign.** ``sign(±0.0)`` is ``+0`` (the standard's ``0``; XLA keeps the sign).

Subnormal results are a different matter: XLA on CPU runs with flush-to-zero and
denormals-are-zero. The standard leaves subnormal behaviour implementation-defined
("conforming implementations may vary in their support for subnormal numbers"), and
emulating gradual underflow would cost every operation, so JAX devices flush as XLA does.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["StandardJaxNumpy"]

_INF = float("inf")
_NAN = float("nan")
_PI = math.pi


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


def _corrects(jnp_fn: Any) -> Any:
    """Decorator: ``fix(x, r)`` corrects ``r = jnp_fn(x)`` for complex ``x``.

    The decorated function calls *jnp_fn* alone for real input; for complex input it runs
    ``jnp_fn`` and the correction as one compiled program (``jax.jit``), so the masks and
    ``where`` fuse into the loop that computes the result instead of being dispatched one
    by one. Inside an outer ``jit`` the program is inlined.
    """

    def decorate(fix: Any) -> Any:
        compiled = jax.jit(lambda x: fix(x, jnp_fn(x)))

        def corrected(x: Any, /) -> Any:
            if _is_complex(x):
                return compiled(x)
            return jnp_fn(x)

        corrected.__name__ = corrected.__qualname__ = fix.__name__
        corrected.__doc__ = fix.__doc__
        return corrected

    return decorate


def _nan_nan(r: Any, re: Any, im: Any) -> tuple[Any, Any, Any, Any]:
    """The parts of *r*, NaN + NaN j where ``x = re + im j`` has a NaN part (Annex G's value
    for NaN input, except the cases each function lists), and ``isnan(re)``, ``isnan(im)``."""
    nan_re, nan_im = jnp.isnan(re), jnp.isnan(im)
    nan = nan_re | nan_im
    return jnp.where(nan, _NAN, r.real), jnp.where(nan, _NAN, r.imag), nan_re, nan_im


@_corrects(jnp.abs)
def abs(x: Any, r: Any) -> Any:
    """``|x|``; for complex ``x`` an infinite component gives ``+inf`` even beside NaN."""
    inf = jnp.isinf(x.real) | jnp.isinf(x.imag)
    return jnp.where(inf, jnp.asarray(_INF, dtype=r.dtype), r)


@_corrects(jnp.exp)
def exp(x: Any, r: Any) -> Any:
    """``e**x``, with Annex G's values for zero imaginary parts and infinite real parts."""
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


@_corrects(jnp.expm1)
def expm1(x: Any, r: Any) -> Any:
    """``exp(x) - 1``; for complex ``x``, ``(a, ±0) -> (expm1(a), ±0)`` (``+0`` at
    ``a = ±0``), ``(+inf, ±inf or NaN) -> (inf, NaN)``, ``(-inf, ±inf or NaN) -> (-1, ±0)``
    and NaN + NaN j for other NaN parts."""
    re, im = x.real, x.imag
    rr, ri, _, _ = _nan_nan(r, re, im)
    zero_im = im == 0
    rr = jnp.where(zero_im, jnp.where(re == 0, 0.0, jnp.expm1(re)), rr)
    ri = jnp.where(zero_im, im, ri)
    bad_im = ~jnp.isfinite(im)
    pinf = (re == _INF) & bad_im
    ninf = (re == -_INF) & bad_im  # the imaginary zero's sign unspecified: im's (conj symmetry)
    rr = jnp.where(pinf, _INF, jnp.where(ninf, -1.0, rr))
    ri = jnp.where(pinf, _NAN, jnp.where(ninf, jnp.copysign(0.0, im), ri))
    return lax.complex(rr, ri)


def _inf_beside_nan(re: Any, im: Any) -> Any:
    return (jnp.isinf(re) & jnp.isnan(im)) | (jnp.isnan(re) & jnp.isinf(im))


@_corrects(jnp.log)
def log(x: Any, r: Any) -> Any:
    """Natural logarithm; a complex value with an infinite component has real part ``+inf``."""
    re = x.real
    inf_nan = _inf_beside_nan(re, x.imag)
    return jnp.where(inf_nan, lax.complex(jnp.full_like(re, _INF), jnp.full_like(re, _NAN)), r)


@_corrects(jnp.log1p)
def log1p(x: Any, r: Any) -> Any:
    """``log(1 + x)``; a complex value with an infinite part beside NaN gives ``inf + NaN j``."""
    re = x.real
    inf_nan = _inf_beside_nan(re, x.imag)
    return jnp.where(inf_nan, lax.complex(jnp.full_like(re, _INF), jnp.full_like(re, _NAN)), r)


@_corrects(jnp.sqrt)
def sqrt(x: Any, r: Any) -> Any:
    """Principal square root; for complex ``x`` the imaginary part keeps the sign of ``x``'s."""
    re, im = x.real, x.imag
    rr, ri = r.real, r.imag
    ri = jnp.where(jnp.isnan(im), ri, jnp.copysign(ri, im))  # sqrt(conj(z)) == conj(sqrt(z))
    inf_im = jnp.isinf(im)  # (any, ±inf) -> (+inf, ±inf), NaN real part included
    pinf_nan = (re == _INF) & jnp.isnan(im)  # (+inf, NaN) -> (+inf, NaN)
    ninf_nan = (re == -_INF) & jnp.isnan(im)  # (-inf, NaN) -> (NaN, ±inf)
    rr = jnp.where(inf_im | pinf_nan, _INF, jnp.where(ninf_nan, _NAN, rr))
    ri = jnp.where(inf_im, im, jnp.where(pinf_nan, _NAN, jnp.where(ninf_nan, _INF, ri)))
    return lax.complex(rr, ri)


@_corrects(jnp.acos)
def acos(x: Any, r: Any) -> Any:
    """Inverse cosine; complex ``x`` with a NaN part gives NaN + NaN j (``jax.numpy`` keeps
    ``-log(2|x|)`` for large ``|x|``), except ``(±0, NaN) -> (π/2, NaN)``,
    ``(±inf, NaN) -> (NaN, -inf)`` and ``(NaN, ±inf) -> (NaN, ∓inf)``."""
    re, im = x.real, x.imag
    rr, ri, nan_re, nan_im = _nan_nan(r, re, im)
    rr = jnp.where(nan_im & (re == 0), _PI / 2, rr)
    ri = jnp.where(nan_im & jnp.isinf(re), -_INF, jnp.where(nan_re & jnp.isinf(im), -im, ri))
    return lax.complex(rr, ri)


@_corrects(jnp.acosh)
def acosh(x: Any, r: Any) -> Any:
    """Inverse hyperbolic cosine; complex ``x`` with a NaN part gives NaN + NaN j, except
    ``(±0, NaN) -> (NaN, π/2)`` and ``(±inf, NaN), (NaN, ±inf) -> (+inf, NaN)``."""
    re, im = x.real, x.imag
    rr, ri, _, nan_im = _nan_nan(r, re, im)
    rr = jnp.where(_inf_beside_nan(re, im), _INF, rr)
    ri = jnp.where(nan_im & (re == 0), _PI / 2, ri)
    return lax.complex(rr, ri)


@_corrects(jnp.asinh)
def asinh(x: Any, r: Any) -> Any:
    """Inverse hyperbolic sine; complex ``x`` with a NaN part gives NaN + NaN j, except
    ``(±inf, NaN) -> (±inf, NaN)``, ``(NaN, ±inf) -> (+inf, NaN)`` and
    ``(NaN, ±0) -> (NaN, ±0)``."""
    re, im = x.real, x.imag
    rr, ri, nan_re, nan_im = _nan_nan(r, re, im)
    rr = jnp.where(nan_im & jnp.isinf(re), re, jnp.where(nan_re & jnp.isinf(im), _INF, rr))
    ri = jnp.where(nan_re & (im == 0), im, ri)
    return lax.complex(rr, ri)


@_corrects(jnp.atanh)
def atanh(x: Any, r: Any) -> Any:
    """Inverse hyperbolic tangent; complex ``x`` with a NaN part gives NaN + NaN j
    (``jax.numpy`` gives ``±π/2`` imaginary parts), except ``(±0 or ±inf, NaN) -> (±0, NaN)``
    and ``(NaN, ±inf) -> (+0, ±π/2)``."""
    re, im = x.real, x.imag
    rr, ri, nan_re, nan_im = _nan_nan(r, re, im)
    zero_re = nan_im & ((re == 0) | jnp.isinf(re))
    inf_im = nan_re & jnp.isinf(im)
    rr = jnp.where(zero_re, jnp.copysign(0.0, re), jnp.where(inf_im, 0.0, rr))
    ri = jnp.where(inf_im, jnp.copysign(_PI / 2, im), ri)
    return lax.complex(rr, ri)


@_corrects(jnp.cosh)
def cosh(x: Any, r: Any) -> Any:
    """Hyperbolic cosine; for complex ``x``, ``(±0, ±inf or NaN) -> (NaN, ±0)`` and
    ``(±inf, ±inf or NaN) -> (+inf, NaN)``; NaN + NaN j for other NaN parts, except
    ``(NaN, ±0) -> (NaN, ±0)``."""
    re, im = x.real, x.imag
    rr, ri, nan_re, _ = _nan_nan(r, re, im)
    bad_im = ~jnp.isfinite(im)
    zero = bad_im & (re == 0)  # the zero's sign unspecified: re's times im's (even, conj-symmetric)
    inf = bad_im & jnp.isinf(re)
    rr = jnp.where(inf, _INF, jnp.where(zero, _NAN, rr))
    ri = jnp.where(zero, jnp.copysign(0.0, re) * jnp.copysign(1.0, im), jnp.where(inf, _NAN, ri))
    ri = jnp.where(nan_re & (im == 0), im, ri)
    return lax.complex(rr, ri)


@_corrects(jnp.sinh)
def sinh(x: Any, r: Any) -> Any:
    """Hyperbolic sine; for complex ``x``, ``(±0 or ±inf, ±inf or NaN) -> (the same real
    part, NaN)``; NaN + NaN j for other NaN parts, except ``(NaN, ±0) -> (NaN, ±0)``."""
    re, im = x.real, x.imag
    rr, ri, nan_re, _ = _nan_nan(r, re, im)
    keep = ~jnp.isfinite(im) & ((re == 0) | jnp.isinf(re))
    rr = jnp.where(keep, re, rr)
    ri = jnp.where(keep, _NAN, jnp.where(nan_re & (im == 0), im, ri))
    return lax.complex(rr, ri)


@_corrects(jnp.tanh)
def tanh(x: Any, r: Any) -> Any:
    """Hyperbolic tangent; for complex ``x``, ``(±inf, b) -> (±1, ±0)`` with the sign of
    ``b`` (the standard's ``1 + 0j``; ``jax.numpy`` and C99 use the sign of ``sin(2b)``) and
    ``(±0, ±inf or NaN) -> (±0, NaN)``; NaN + NaN j for other NaN parts, except
    ``(NaN, ±0) -> (NaN, ±0)``."""
    re, im = x.real, x.imag
    rr, ri, nan_re, _ = _nan_nan(r, re, im)
    inf = jnp.isinf(re)
    zero = ~jnp.isfinite(im) & (re == 0)
    rr = jnp.where(inf, jnp.sign(re), jnp.where(zero, re, rr))
    ri = jnp.where(inf, jnp.copysign(0.0, im), jnp.where(zero, _NAN, ri))
    ri = jnp.where(nan_re & (im == 0), im, ri)
    return lax.complex(rr, ri)


_sign_float = jax.jit(lambda x: jnp.where(x == 0, 0.0, jnp.sign(x)))


def sign(x: Any, /) -> Any:
    """Sign; a real zero of either sign gives ``+0`` (XLA keeps ``-0``). Complex ``x`` is
    ``jax.numpy``'s ``x / |x|``: hpcai's ``sign`` handles zeros and subnormals itself."""
    if jnp.issubdtype(jnp.result_type(x), jnp.floating):
        return _sign_float(x)
    return jnp.sign(x)


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
                "expm1": expm1,
                "log1p": log1p,
                "acos": acos,
                "acosh": acosh,
                "asinh": asinh,
                "atanh": atanh,
                "cosh": cosh,
                "sinh": sinh,
                "tanh": tanh,
                "sign": sign,
                "isfinite": isfinite,
                "isinf": isinf,
                "linalg": _Corrected(jnp.linalg, {"matrix_power": matrix_power}),
            },
        )
