"""The ``linalg`` extension of the Array API standard: ``xp.linalg``.

Every function checks its operands (hpcai Arrays on one device, floating-point dtypes
where the standard asks for them, matrix shapes), calls the device's
``namespace.linalg``, and wraps the results with the union of the inputs' tags.
Decompositions return named tuples of hpcai Arrays. A singular or non-positive-definite
matrix raises :class:`hpcai.errors.LinAlgError`.

>>> import hpcai as xp
>>> a = xp.asarray([[4.0, 1.0], [1.0, 3.0]])
>>> xp.linalg.solve(a, xp.asarray([1.0, 2.0]))
Array([0.09090909, 0.63636364], dtype=float64, device='numpy:cpu')
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import numpy as np

from . import _tags
from ._array import Array, _mismatch, _translate, _wrap
from ._device import Device
from ._dtypes import _all_dtypes, _floating_dtypes, _numeric_dtypes, _real_floating_dtypes
from ._helpers import as_array, device_default_dtype
from ._linalg_functions import matmul, matrix_transpose, tensordot, vecdot
from ._statistical_functions import _bad_axis, accumulation_dtype, fail
from ._tags import TagSet
from .errors import AxisError, DTypeError, HpcaiError, InvalidArgumentError, LinAlgError, ShapeError

__all__ = [
    "EighResult",
    "QRResult",
    "SVDResult",
    "SlogdetResult",
    "cholesky",
    "cross",
    "det",
    "diagonal",
    "eigh",
    "eigvalsh",
    "inv",
    "matmul",
    "matrix_norm",
    "matrix_power",
    "matrix_rank",
    "matrix_transpose",
    "outer",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "svd",
    "svdvals",
    "tensordot",
    "trace",
    "vecdot",
    "vector_norm",
]


class EighResult(NamedTuple):
    """Result of :func:`eigh`: real ``eigenvalues`` and the ``eigenvectors`` as columns."""

    eigenvalues: Array
    eigenvectors: Array


class QRResult(NamedTuple):
    """Result of :func:`qr`: ``Q`` with orthonormal columns and upper-triangular ``R``."""

    Q: Array
    R: Array


class SlogdetResult(NamedTuple):
    """Result of :func:`slogdet`: ``det == sign * exp(logabsdet)``."""

    sign: Array
    logabsdet: Array


class SVDResult(NamedTuple):
    """Result of :func:`svd`: ``x == U @ diag(S) @ Vh``."""

    U: Array
    S: Array
    Vh: Array


_HINTS = {
    "inv": "the matrix (or one in the stack) is singular; check for linearly dependent rows or use xp.linalg.pinv",
    "solve": "the coefficient matrix (or one in the stack) is singular; use xp.linalg.pinv(x1) @ x2 for a least-squares answer",
    "cholesky": "the matrix (or one in the stack) is not symmetric/Hermitian positive-definite",
    "matrix_power": "a negative power needs an invertible matrix",
}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _matrix(
    fname: str, x: Any, *, square: bool = False, group: frozenset[Any] | None = _floating_dtypes
) -> Array:
    """*x* as an Array of matrices (``ndim >= 2``, square if asked) with a dtype in *group*."""
    if x.__class__ is not Array:
        x = as_array(f"linalg.{fname}", x)
    a = x._data
    if group is not None and a.dtype not in group:
        what = "a floating-point" if group is _floating_dtypes else "a numeric"
        raise DTypeError(
            f"xp.linalg.{fname}: x must have {what} dtype, got {a.dtype}; "
            "convert it first, e.g. xp.astype(x, xp.float64)"
        )
    if a.ndim < 2:
        raise ShapeError(
            f"xp.linalg.{fname}: x must be a matrix or a stack of matrices (at least 2 dimensions), got shape {tuple(a.shape)}"
        )
    if square and a.shape[-1] != a.shape[-2]:
        raise ShapeError(
            f"xp.linalg.{fname}: the last two dimensions must be square, got shape {tuple(a.shape)}"
        )
    return x


def _call(fname: str, device: Device, *args: Any, **kwargs: Any) -> Any:
    """Call ``namespace.linalg.<fname>`` on *device*, translating backend errors."""
    try:
        return getattr(device._ns.linalg, fname)(*args, **kwargs)
    except HpcaiError:
        raise
    except Exception as exc:
        err = _translate(f"xp.linalg.{fname}", exc)
        if isinstance(err, LinAlgError) and fname in _HINTS:
            err = LinAlgError(f"{err}; {_HINTS[fname]}")
        raise err from None


def _finite(fname: str, device: Device, inputs: tuple[Any, ...], r: Any) -> Any:
    """Raise :class:`LinAlgError` where a backend returned inf/NaN for finite input.

    JAX and CuPy do not raise for singular (or non-positive-definite) matrices; they
    return inf/NaN. Checking here makes every device behave like NumPy; backends whose
    ``linalg_raises`` capability is true (NumPy) raise by themselves. Inside a traced
    function (``xp.jit``) values cannot be inspected, so the check is skipped there.
    """
    if device._backend.linalg_raises or r.__class__ is not device._native_type:
        return r
    ns = device._ns
    if bool(ns.all(ns.isfinite(r))):
        return r
    if all(bool(ns.all(ns.isfinite(a))) for a in inputs):
        raise LinAlgError(f"xp.linalg.{fname}: {_HINTS[fname]}")
    return r


def _same_device(fname: str, dev: Device, other: Array) -> None:
    if other._device is not dev:
        raise _mismatch(f"xp.linalg.{fname}", dev, other._device)


def _rtol(fname: str, x: Array, rtol: float | Array | None) -> tuple[Any, TagSet | None]:
    """The native value of an ``rtol`` argument and the tags it brings."""
    if rtol is None:
        return None, None
    if rtol.__class__ is Array:
        _same_device(fname, x._device, rtol)
        if rtol._data.dtype not in _real_floating_dtypes:
            raise DTypeError(
                f"xp.linalg.{fname}: an rtol array must have a real floating-point dtype, got {rtol._data.dtype}"
            )
        return rtol._data, rtol._tags
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)):
        raise InvalidArgumentError(
            f"xp.linalg.{fname}: rtol must be a float, an hpcai Array or None, got {rtol!r}"
        )
    return float(rtol), None


def _floating_pair(
    fname: str, x1: Any, x2: Any, group: frozenset[Any]
) -> tuple[Array, Array, TagSet | None]:
    if x1.__class__ is not Array:
        x1 = as_array(f"linalg.{fname}", x1)
    if x2.__class__ is not Array:
        x2 = as_array(f"linalg.{fname}", x2)
    _same_device(fname, x1._device, x2)
    what = "a floating-point" if group is _floating_dtypes else "a numeric"
    for name, v in (("x1", x1), ("x2", x2)):
        if v._data.dtype not in group:
            raise DTypeError(
                f"xp.linalg.{fname}: {name} must have {what} dtype, got {v._data.dtype}; "
                f"convert it first, e.g. xp.astype({name}, xp.float64)"
            )
    return x1, x2, _tags.union(x1._tags, x2._tags)


# --------------------------------------------------------------------------------------------
# decompositions and inverses
# --------------------------------------------------------------------------------------------
def cholesky(x: Array, /, *, upper: bool = False) -> Array:
    """Cholesky factor of a symmetric/Hermitian positive-definite matrix (lower, or upper).

    >>> import hpcai as xp
    >>> xp.linalg.cholesky(xp.asarray([[4.0, 2.0], [2.0, 5.0]]))[1]
    Array([1., 2.], dtype=float64, device='numpy:cpu')
    """
    x = _matrix("cholesky", x, square=True)
    r = _call("cholesky", x._device, x._data, upper=bool(upper))
    return _wrap(_finite("cholesky", x._device, (x._data,), r), x._device, x._tags)


def det(x: Array, /) -> Array:
    """Determinant of a square matrix (or of each matrix in a stack).

    >>> import hpcai as xp
    >>> float(xp.linalg.det(xp.asarray([[2.0, 1.0], [0.0, 3.0]])))
    6.0
    """
    x = _matrix("det", x, square=True)
    return _wrap(_call("det", x._device, x._data), x._device, x._tags)


def eigh(x: Array, /) -> EighResult:
    """Eigenvalues (real, ascending) and orthonormal eigenvectors of a symmetric/Hermitian matrix.

    >>> import hpcai as xp
    >>> xp.linalg.eigh(xp.asarray([[2.0, 0.0], [0.0, 1.0]])).eigenvalues
    Array([1., 2.], dtype=float64, device='numpy:cpu')
    """
    x = _matrix("eigh", x, square=True)
    w, v = _call("eigh", x._device, x._data)
    return EighResult(_wrap(w, x._device, x._tags), _wrap(v, x._device, x._tags))


def eigvalsh(x: Array, /) -> Array:
    """Eigenvalues (real, ascending) of a symmetric/Hermitian matrix.

    >>> import hpcai as xp
    >>> xp.linalg.eigvalsh(xp.asarray([[2.0, 1.0], [1.0, 2.0]]))
    Array([1., 3.], dtype=float64, device='numpy:cpu')
    """
    x = _matrix("eigvalsh", x, square=True)
    return _wrap(_call("eigvalsh", x._device, x._data), x._device, x._tags)


def inv(x: Array, /) -> Array:
    """Inverse of a square matrix; a singular matrix raises :class:`~hpcai.errors.LinAlgError`.

    >>> import hpcai as xp
    >>> xp.linalg.inv(xp.asarray([[2.0, 0.0], [0.0, 4.0]]))[1]
    Array([0.  , 0.25], dtype=float64, device='numpy:cpu')
    """
    x = _matrix("inv", x, square=True)
    r = _call("inv", x._device, x._data)
    return _wrap(_finite("inv", x._device, (x._data,), r), x._device, x._tags)


def matrix_power(x: Array, n: int, /) -> Array:
    """*x* raised to the integer power *n* (``n = 0``: identity; ``n < 0``: powers of the inverse).

    >>> import hpcai as xp
    >>> xp.linalg.matrix_power(xp.asarray([[1.0, 1.0], [0.0, 1.0]]), 3)[0]
    Array([1., 3.], dtype=float64, device='numpy:cpu')
    """
    x = _matrix("matrix_power", x, square=True)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise InvalidArgumentError(f"xp.linalg.matrix_power: n must be an int, got {n!r}")
    r = _call("matrix_power", x._device, x._data, int(n))
    if n < 0:
        r = _finite("matrix_power", x._device, (x._data,), r)
    return _wrap(r, x._device, x._tags)


def pinv(x: Array, /, *, rtol: float | Array | None = None) -> Array:
    """Moore-Penrose pseudo-inverse; singular values below ``rtol * largest`` count as zero.

    The default ``rtol`` is ``max(M, N) * eps`` of x's precision.

    >>> import hpcai as xp
    >>> xp.linalg.pinv(xp.asarray([[2.0, 0.0], [0.0, 0.0]]))[0]
    Array([0.5, 0. ], dtype=float64, device='numpy:cpu')
    """
    x = _matrix("pinv", x)
    tol, tt = _rtol("pinv", x, rtol)
    if tol is None:
        # Passed explicitly: backends' own defaults differ from the standard's.
        tol = _default_rtol(x)
    return _wrap(_call("pinv", x._device, x._data, rtol=tol), x._device, _tags.union(x._tags, tt))


def qr(x: Array, /, *, mode: Literal["reduced", "complete"] = "reduced") -> QRResult:
    """QR decomposition ``x = Q @ R`` of a matrix (or stack), ``mode`` "reduced" or "complete".

    >>> import hpcai as xp
    >>> q, r = xp.linalg.qr(xp.asarray([[3.0, 1.0], [4.0, 2.0]]))
    >>> q.shape, r.shape
    ((2, 2), (2, 2))
    """
    x = _matrix("qr", x)
    if mode not in ("reduced", "complete"):
        raise InvalidArgumentError(
            f"xp.linalg.qr: mode must be 'reduced' or 'complete', got {mode!r}"
        )
    q, r = _call("qr", x._device, x._data, mode=mode)
    return QRResult(_wrap(q, x._device, x._tags), _wrap(r, x._device, x._tags))


def slogdet(x: Array, /) -> SlogdetResult:
    """Sign and natural log of the absolute determinant (stable where ``det`` would overflow).

    >>> import hpcai as xp
    >>> s, logdet = xp.linalg.slogdet(xp.asarray([[2.0, 0.0], [0.0, 3.0]]))
    >>> float(s), round(float(logdet), 6)
    (1.0, 1.791759)
    """
    x = _matrix("slogdet", x, square=True)
    s, ld = _call("slogdet", x._device, x._data)
    return SlogdetResult(_wrap(s, x._device, x._tags), _wrap(ld, x._device, x._tags))


def solve(x1: Array, x2: Array, /) -> Array:
    """Solve ``x1 @ X = x2`` for square ``x1``; a 1-d *x2* is one right-hand-side vector.

    *x2* of shape ``(M,)`` is a vector (the result has shape ``x1.shape[:-2] + (M,)``);
    otherwise *x2* is a (stack of) ``M x K`` matrices whose batch axes broadcast with
    x1's. A singular ``x1`` raises :class:`~hpcai.errors.LinAlgError`.

    >>> import hpcai as xp
    >>> xp.linalg.solve(xp.asarray([[2.0, 0.0], [0.0, 4.0]]), xp.asarray([2.0, 2.0]))
    Array([1. , 0.5], dtype=float64, device='numpy:cpu')
    """
    x1 = _matrix("solve", x1, square=True)
    x1, x2, tags = _floating_pair("solve", x1, x2, _floating_dtypes)
    m = x1._data.shape[-1]
    b = x2._data
    if b.ndim == 0:
        raise ShapeError(
            f"xp.linalg.solve: x2 must be a vector of length {m} or a stack of {m} x K matrices, got a 0-d array"
        )
    rows = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if rows != m:
        expect = f"({m},)" if b.ndim == 1 else f"(..., {m}, K)"
        raise ShapeError(
            f"xp.linalg.solve: x1 has shape {tuple(x1._data.shape)} but x2 has shape {tuple(b.shape)}; "
            f"x2 must have shape {expect}"
        )
    if b.ndim > 1:
        try:
            np.broadcast_shapes(tuple(x1._data.shape[:-2]), tuple(b.shape[:-2]))
        except ValueError:
            raise ShapeError(
                f"xp.linalg.solve: the batch shapes {tuple(x1._data.shape[:-2])} and {tuple(b.shape[:-2])} do not broadcast"
            ) from None
    r = _call("solve", x1._device, x1._data, b)
    return _wrap(_finite("solve", x1._device, (x1._data, b), r), x1._device, tags)


def svd(x: Array, /, *, full_matrices: bool = True) -> SVDResult:
    """Singular value decomposition ``x = U @ diag(S) @ Vh`` (``S`` descending).

    >>> import hpcai as xp
    >>> xp.linalg.svd(xp.asarray([[3.0, 0.0], [0.0, -4.0]])).S
    Array([4., 3.], dtype=float64, device='numpy:cpu')
    """
    x = _matrix("svd", x)
    u, s, vh = _call("svd", x._device, x._data, full_matrices=bool(full_matrices))
    dev, t = x._device, x._tags
    return SVDResult(_wrap(u, dev, t), _wrap(s, dev, t), _wrap(vh, dev, t))


def svdvals(x: Array, /) -> Array:
    """Singular values of a matrix (or stack), in descending order.

    >>> import hpcai as xp
    >>> xp.linalg.svdvals(xp.asarray([[0.0, 2.0], [1.0, 0.0]]))
    Array([2., 1.], dtype=float64, device='numpy:cpu')
    """
    x = _matrix("svdvals", x)
    return _wrap(_call("svdvals", x._device, x._data), x._device, x._tags)


def _default_rtol(x: Array) -> float:
    """The standard's default relative tolerance: ``max(M, N) * eps`` of x's precision."""
    m, n = x._data.shape[-2:]
    return float(max(m, n, 1) * np.finfo(x._data.dtype).eps)


def matrix_rank(x: Array, /, *, rtol: float | Array | None = None) -> Array:
    """Number of singular values above ``rtol * largest`` (default ``rtol = max(M, N) * eps``).

    The tolerance is relative to each matrix's largest singular value on every backend
    (some backends treat an explicit ``rtol`` as absolute; hpcai follows the standard).

    >>> import hpcai as xp
    >>> int(xp.linalg.matrix_rank(xp.asarray([[1.0, 2.0], [2.0, 4.0]])))
    1
    """
    x = _matrix("matrix_rank", x)
    tol, tt = _rtol("matrix_rank", x, rtol)
    dev = x._device
    ns = dev._ns
    s = _call("svdvals", dev, x._data)
    try:
        largest = s[..., :1]  # singular values come sorted in descending order
        if tol is None:
            cut = largest * _default_rtol(x)
        elif isinstance(tol, float):
            cut = largest * tol
        else:
            cut = largest * tol[..., None]
        r = ns.count_nonzero(s > cut, axis=-1)
        idx = device_default_dtype(dev, "integral")
        if getattr(r, "dtype", idx) != idx:
            r = ns.astype(ns.asarray(r), idx)
    except Exception as exc:
        raise _translate("xp.linalg.matrix_rank", exc) from None
    return _wrap(r, dev, _tags.union(x._tags, tt))


# --------------------------------------------------------------------------------------------
# products, norms and views
# --------------------------------------------------------------------------------------------
def cross(x1: Array, x2: Array, /, *, axis: int = -1) -> Array:
    """Cross product of 3-element vectors along *axis* (a negative axis; never broadcast).

    >>> import hpcai as xp
    >>> xp.linalg.cross(xp.asarray([1.0, 0.0, 0.0]), xp.asarray([0.0, 1.0, 0.0]))
    Array([0., 0., 1.], dtype=float64, device='numpy:cpu')
    """
    x1, x2, tags = _floating_pair("cross", x1, x2, _numeric_dtypes)
    a, b = x1._data, x2._data
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise InvalidArgumentError(f"xp.linalg.cross: axis must be an int, got {axis!r}")
    n = min(a.ndim, b.ndim)
    if n == 0:
        raise ShapeError("xp.linalg.cross: x1 and x2 must have at least one dimension")
    if axis >= 0 and a.ndim == b.ndim:
        axis -= a.ndim
    if not (-n <= axis <= -1):
        raise AxisError(
            f"xp.linalg.cross: axis {axis} is out of range for shapes {tuple(a.shape)} and {tuple(b.shape)}; "
            f"use a negative axis in [-{n}, -1]"
        )
    if a.shape[axis] != 3 or b.shape[axis] != 3:
        raise ShapeError(
            f"xp.linalg.cross: both operands need size 3 along axis {axis}, got shapes {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )
    return _wrap(_call("cross", x1._device, a, b, axis=axis), x1._device, tags)


def outer(x1: Array, x2: Array, /) -> Array:
    """Outer product of two 1-d arrays: ``out[i, j] = x1[i] * x2[j]``.

    >>> import hpcai as xp
    >>> xp.linalg.outer(xp.asarray([1, 2]), xp.asarray([1, 10]))[1]
    Array([ 2, 20], dtype=int64, device='numpy:cpu')
    """
    x1, x2, tags = _floating_pair("outer", x1, x2, _numeric_dtypes)
    if x1._data.ndim != 1 or x2._data.ndim != 1:
        raise ShapeError(
            f"xp.linalg.outer: both operands must be 1-d, got shapes {x1.shape} and {x2.shape}; "
            "flatten them with xp.reshape(x, (-1,))"
        )
    return _wrap(_call("outer", x1._device, x1._data, x2._data), x1._device, tags)


def diagonal(x: Array, /, *, offset: int = 0) -> Array:
    """The *offset*-th diagonal of the last two axes (a copy, so it may be written to).

    >>> import hpcai as xp
    >>> xp.linalg.diagonal(xp.asarray([[1, 2], [3, 4]]), offset=1)
    Array([2], dtype=int64, device='numpy:cpu')
    """
    x = _matrix("diagonal", x, group=_all_dtypes)
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
        raise InvalidArgumentError(f"xp.linalg.diagonal: offset must be an int, got {offset!r}")
    ns = x._device._ns
    d = _call("diagonal", x._device, x._data, offset=int(offset))
    return _wrap(ns.asarray(d, copy=True), x._device, x._tags)


def trace(x: Array, /, *, offset: int = 0, dtype: Any = None) -> Array:
    """Sum of the *offset*-th diagonal of the last two axes (integers accumulate as in ``sum``).

    >>> import hpcai as xp
    >>> int(xp.linalg.trace(xp.asarray([[1, 2], [3, 4]])))
    5
    """
    x = _matrix("trace", x, group=_numeric_dtypes)
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
        raise InvalidArgumentError(f"xp.linalg.trace: offset must be an int, got {offset!r}")
    dt = accumulation_dtype("linalg.trace", x, dtype)
    ns = x._device._ns
    r = _call("trace", x._device, x._data, offset=int(offset), dtype=dt)
    if dt is None and r.dtype != x._data.dtype:
        r = ns.astype(r, x._data.dtype)
    return _wrap(r, x._device, x._tags)


def matrix_norm(
    x: Array,
    /,
    *,
    keepdims: bool = False,
    ord: int | float | Literal["fro", "nuc"] | None = "fro",
) -> Array:
    """Matrix norm of the last two axes: ``"fro"``, ``"nuc"``, ``1``, ``2``, ``inf`` and negatives.

    >>> import hpcai as xp
    >>> float(xp.linalg.matrix_norm(xp.asarray([[3.0, 0.0], [0.0, 4.0]])))
    5.0
    """
    x = _matrix("matrix_norm", x)
    valid = ("fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf)
    if ord is None:
        ord = "fro"
    if isinstance(ord, bool) or ord not in valid:
        raise InvalidArgumentError(
            f"xp.linalg.matrix_norm: ord must be one of 'fro', 'nuc', 1, -1, 2, -2, inf, -inf; got {ord!r}"
        )
    r = _call("matrix_norm", x._device, x._data, keepdims=bool(keepdims), ord=ord)
    return _wrap(r, x._device, x._tags)


def vector_norm(
    x: Array,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    keepdims: bool = False,
    ord: int | float = 2,
) -> Array:
    """p-norm over *axis* (all elements by default): ``ord`` 1, 2, inf, -inf, 0 or any real p.

    >>> import hpcai as xp
    >>> float(xp.linalg.vector_norm(xp.asarray([3.0, -4.0])))
    5.0
    """
    if x.__class__ is not Array:
        x = as_array("linalg.vector_norm", x)
    if x._data.dtype not in _floating_dtypes:
        raise DTypeError(
            f"xp.linalg.vector_norm: x must have a floating-point dtype, got {x._data.dtype}; "
            "convert it first, e.g. xp.astype(x, xp.float64)"
        )
    if isinstance(ord, bool) or not isinstance(ord, (int, float)):
        raise InvalidArgumentError(
            f"xp.linalg.vector_norm: ord must be an int or float, got {ord!r}"
        )
    if _bad_axis(x._data.ndim, axis) is not None:
        raise fail("linalg.vector_norm", ValueError("bad axis"), x._data.ndim, axis)
    r = _call("vector_norm", x._device, x._data, axis=axis, keepdims=bool(keepdims), ord=ord)
    return _wrap(r, x._device, x._tags)
