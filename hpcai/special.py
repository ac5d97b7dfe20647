"""``xp.special``: special functions computed on the arrays' own device.

These are the elementwise special functions that SciPy and JAX both provide, with
SciPy's names and argument order. Each one runs where its inputs live, through the module
the device's backend names in its ``special_functions`` capability: on JAX devices
``jax.scipy.special``, on CuPy devices ``cupyx.scipy.special``, on NumPy-backed devices
(``numpy:cpu``, emulated accelerators, plugins holding NumPy arrays) ``scipy.special``.
Inputs must share one device; results carry the union of their tags.

SciPy looks for this namespace: with ``SCIPY_ARRAY_API=1``, ``scipy.special.erf(x)`` of an
hpcai array calls ``xp.special.erf``, so SciPy's special functions work on every device
instead of converting to NumPy (which hpcai refuses for data that is not in host memory).

>>> import hpcai as xp
>>> float(xp.special.erf(xp.asarray(0.0)))
0.0
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ._array import Array, _translate, _wrap
from ._helpers import same_device
from .errors import BackendUnavailableError, DTypeError

__all__ = [
    "betainc",
    "betaln",
    "boxcox",
    "boxcox1p",
    "entr",
    "erf",
    "erfc",
    "erfcx",
    "erfinv",
    "exp1",
    "expi",
    "expit",
    "expn",
    "gamma",
    "gammainc",
    "gammaincc",
    "gammaln",
    "gammasgn",
    "hyp1f1",
    "i0",
    "i0e",
    "i1",
    "i1e",
    "kl_div",
    "log_ndtr",
    "loggamma",
    "logit",
    "multigammaln",
    "ndtr",
    "ndtri",
    "poch",
    "polygamma",
    "rel_entr",
    "spence",
    "xlog1py",
    "xlogy",
    "zeta",
]

#: For NumPy data on a backend that names no module of its own.
_HOST = ("scipy.special", "pip install scipy")
_cache: dict[tuple[str, str], Callable[..., Any]] = {}


def _function(source: tuple[str, str], name: str) -> Callable[..., Any]:
    module, hint = source
    fn = _cache.get((module, name))
    if fn is None:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            raise BackendUnavailableError(f"xp.special.{name}: needs {module} ({hint})") from None
        fn = _cache[(module, name)] = getattr(mod, name)
    return fn


def _apply(name: str, *args: Any) -> Array:
    """Call special function *name* on the natives of *args* on their common device."""
    arrays = [a for a in args if a.__class__ is Array]
    if not arrays:
        raise DTypeError(
            f"xp.special.{name}: needs at least one hpcai Array argument, got {args!r:.80}"
        )
    _, dev, tags = same_device(f"special.{name}", arrays)
    natives = [a._data if a.__class__ is Array else a for a in args]
    source = dev._backend.special_functions
    if source is None:
        if not all(isinstance(a._data, np.ndarray) for a in arrays):
            raise DTypeError(f"xp.special.{name}: no special-function library for arrays on {dev}")
        source = _HOST
    fn = _function(source, name)
    try:
        r = fn(*natives)
    except Exception as exc:
        raise _translate(f"xp.special.{name}", exc) from None
    return _wrap(r, dev, tags)


def betainc(a: Array | float, b: Array | float, x: Array | float, /) -> Array:
    """Regularized incomplete beta function I_x(a, b)."""
    return _apply("betainc", a, b, x)


def betaln(a: Array | float, b: Array | float, /) -> Array:
    """Natural log of the absolute value of the beta function."""
    return _apply("betaln", a, b)


def boxcox(x: Array | float, lmbda: Array | float, /) -> Array:
    """Box-Cox transformation."""
    return _apply("boxcox", x, lmbda)


def boxcox1p(x: Array | float, lmbda: Array | float, /) -> Array:
    """Box-Cox transformation of 1 + x."""
    return _apply("boxcox1p", x, lmbda)


def entr(x: Array | float, /) -> Array:
    """Elementwise entropy -x log x (0 at 0, -inf for negative x)."""
    return _apply("entr", x)


def erf(x: Array | float, /) -> Array:
    """Error function."""
    return _apply("erf", x)


def erfc(x: Array | float, /) -> Array:
    """Complementary error function 1 - erf(x)."""
    return _apply("erfc", x)


def erfcx(x: Array | float, /) -> Array:
    """Scaled complementary error function exp(x**2) erfc(x)."""
    return _apply("erfcx", x)


def erfinv(x: Array | float, /) -> Array:
    """Inverse of the error function."""
    return _apply("erfinv", x)


def exp1(x: Array | float, /) -> Array:
    """Exponential integral E1."""
    return _apply("exp1", x)


def expi(x: Array | float, /) -> Array:
    """Exponential integral Ei."""
    return _apply("expi", x)


def expit(x: Array | float, /) -> Array:
    """Logistic sigmoid 1 / (1 + exp(-x))."""
    return _apply("expit", x)


def expn(n: Array | float, x: Array | float, /) -> Array:
    """Generalized exponential integral E_n."""
    return _apply("expn", n, x)


def gamma(x: Array | float, /) -> Array:
    """Gamma function."""
    return _apply("gamma", x)


def gammainc(a: Array | float, x: Array | float, /) -> Array:
    """Regularized lower incomplete gamma function."""
    return _apply("gammainc", a, x)


def gammaincc(a: Array | float, x: Array | float, /) -> Array:
    """Regularized upper incomplete gamma function."""
    return _apply("gammaincc", a, x)


def gammaln(x: Array | float, /) -> Array:
    """Natural log of the absolute value of the gamma function."""
    return _apply("gammaln", x)


def gammasgn(x: Array | float, /) -> Array:
    """Sign of the gamma function."""
    return _apply("gammasgn", x)


def hyp1f1(a: Array | float, b: Array | float, x: Array | float, /) -> Array:
    """Confluent hypergeometric function 1F1."""
    return _apply("hyp1f1", a, b, x)


def i0(x: Array | float, /) -> Array:
    """Modified Bessel function of the first kind, order 0."""
    return _apply("i0", x)


def i0e(x: Array | float, /) -> Array:
    """Exponentially scaled modified Bessel function of order 0."""
    return _apply("i0e", x)


def i1(x: Array | float, /) -> Array:
    """Modified Bessel function of the first kind, order 1."""
    return _apply("i1", x)


def i1e(x: Array | float, /) -> Array:
    """Exponentially scaled modified Bessel function of order 1."""
    return _apply("i1e", x)


def kl_div(x: Array | float, y: Array | float, /) -> Array:
    """Elementwise Kullback-Leibler divergence term x log(x/y) - x + y."""
    return _apply("kl_div", x, y)


def log_ndtr(x: Array | float, /) -> Array:
    """Log of the standard normal cumulative distribution function."""
    return _apply("log_ndtr", x)


def loggamma(x: Array | float, /) -> Array:
    """Principal branch of the log of the gamma function."""
    return _apply("loggamma", x)


def logit(x: Array | float, /) -> Array:
    """Logit log(p / (1 - p)), the inverse of expit."""
    return _apply("logit", x)


def multigammaln(a: Array, d: int, /) -> Array:
    """Log of the multivariate gamma function of dimension d (a Python int)."""
    return _apply("multigammaln", a, d)


def ndtr(x: Array | float, /) -> Array:
    """Standard normal cumulative distribution function."""
    return _apply("ndtr", x)


def ndtri(x: Array | float, /) -> Array:
    """Inverse of ndtr."""
    return _apply("ndtri", x)


def poch(z: Array | float, m: Array | float, /) -> Array:
    """Pochhammer symbol (rising factorial) gamma(z + m) / gamma(z)."""
    return _apply("poch", z, m)


def polygamma(n: Array | float, x: Array | float, /) -> Array:
    """Polygamma function of order n."""
    return _apply("polygamma", n, x)


def rel_entr(x: Array | float, y: Array | float, /) -> Array:
    """Elementwise relative entropy x log(x/y)."""
    return _apply("rel_entr", x, y)


def spence(x: Array | float, /) -> Array:
    """Spence's function (dilogarithm)."""
    return _apply("spence", x)


def xlog1py(x: Array | float, y: Array | float, /) -> Array:
    """x * log1p(y), 0 where x == 0."""
    return _apply("xlog1py", x, y)


def xlogy(x: Array | float, y: Array | float, /) -> Array:
    """x * log(y), 0 where x == 0."""
    return _apply("xlogy", x, y)


def zeta(x: Array | float, q: Array | float | None = None, /) -> Array:
    """Hurwitz zeta function (Riemann zeta when q is None)."""
    return _apply("zeta", x) if q is None else _apply("zeta", x, q)
