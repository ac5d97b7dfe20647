"""The ``fft`` extension of the Array API standard: ``xp.fft``.

Result dtypes follow the standard, not NumPy's historical upcasting: a ``complex64``
transform stays ``complex64``, ``rfft`` of ``float32`` gives ``complex64``, ``irfft`` of
``complex64`` gives ``float32``. Complex transforms (``fft``, ``ifft``, ``fftn``,
``ifftn``, ``irfft``, ``irfftn``, ``hfft``) also accept real floating input (an
extension), treated as complex of the same precision.

>>> import hpcai as xp
>>> x = xp.asarray([1.0, 0.0, 0.0, 0.0], dtype=xp.complex64)
>>> xp.fft.fft(x)
Array([1.+0.j, 1.+0.j, 1.+0.j, 1.+0.j], dtype=complex64, device='numpy:cpu')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ._array import Array, _translate, _wrap
from ._device import DeviceLike, resolve_device
from ._dtypes import _complex_floating_dtypes, _real_floating_dtypes
from ._helpers import as_array, device_default_dtype, normalize_dtype
from ._statistical_functions import fail
from .errors import DTypeError, InvalidArgumentError

__all__ = [
    "fft",
    "fftfreq",
    "fftn",
    "fftshift",
    "hfft",
    "ifft",
    "ifftn",
    "ifftshift",
    "ihfft",
    "irfft",
    "irfftn",
    "rfft",
    "rfftfreq",
    "rfftn",
]

Norm = Literal["backward", "ortho", "forward"]
_NORMS = ("backward", "ortho", "forward")

_TO_COMPLEX: dict[Any, np.dtype] = {
    np.dtype("float32"): np.dtype("complex64"),
    np.dtype("float64"): np.dtype("complex128"),
}
_TO_REAL: dict[Any, np.dtype] = {
    np.dtype("complex64"): np.dtype("float32"),
    np.dtype("complex128"): np.dtype("float64"),
}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _complex_in(fname: str, x: Any) -> tuple[Array, Any]:
    """*x* and its native data as a complex array (real floating input is promoted)."""
    if x.__class__ is not Array:
        x = as_array(f"fft.{fname}", x)
    a = x._data
    if a.dtype in _complex_floating_dtypes:
        return x, a
    if a.dtype in _real_floating_dtypes:
        try:
            return x, x._device._ns.astype(a, _TO_COMPLEX[a.dtype])
        except Exception as exc:
            raise _translate(f"xp.fft.{fname}", exc) from None
    raise DTypeError(
        f"xp.fft.{fname}: x must have a complex floating-point dtype, got {a.dtype}; "
        "convert it first, e.g. xp.astype(x, xp.complex128)"
    )


def _real_in(fname: str, x: Any) -> tuple[Array, Any]:
    """*x* and its native data, which must be real floating-point."""
    if x.__class__ is not Array:
        x = as_array(f"fft.{fname}", x)
    a = x._data
    if a.dtype not in _real_floating_dtypes:
        fix = (
            "take xp.real(x) first, or use xp.fft.fft for complex input"
            if a.dtype in _complex_floating_dtypes
            else "convert it first, e.g. xp.astype(x, xp.float64)"
        )
        raise DTypeError(
            f"xp.fft.{fname}: x must have a real floating-point dtype, got {a.dtype}; {fix}"
        )
    return x, a


def _check_1d(fname: str, n: int | None, axis: int, norm: str) -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise InvalidArgumentError(f"xp.fft.{fname}: n must be a positive int or None, got {n!r}")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise InvalidArgumentError(f"xp.fft.{fname}: axis must be an int, got {axis!r}")
    if norm not in _NORMS:
        raise InvalidArgumentError(
            f"xp.fft.{fname}: norm must be one of {', '.join(_NORMS)}; got {norm!r}"
        )


def _check_nd(
    fname: str, s: Sequence[int] | None, axes: Sequence[int] | None, norm: str
) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    if norm not in _NORMS:
        raise InvalidArgumentError(
            f"xp.fft.{fname}: norm must be one of {', '.join(_NORMS)}; got {norm!r}"
        )
    try:
        ax = None if axes is None else tuple(int(i) for i in axes)
        sz = None if s is None else tuple(int(i) for i in s)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"xp.fft.{fname}: s and axes must be sequences of ints, got s={s!r}, axes={axes!r}"
        ) from None
    if sz is not None:
        if ax is None:
            raise InvalidArgumentError(
                f"xp.fft.{fname}: s={sz} was given without axes; pass the axes s refers to, e.g. axes={tuple(range(-len(sz), 0))}"
            )
        if len(sz) != len(ax):
            raise InvalidArgumentError(
                f"xp.fft.{fname}: s and axes differ in length ({sz} and {ax})"
            )
        if any(v < 1 and v != -1 for v in sz):
            raise InvalidArgumentError(
                f"xp.fft.{fname}: every entry of s must be positive (or -1), got {sz}"
            )
    return sz, ax


def _run(fname: str, x: Array, a: Any, out: np.dtype, **kwargs: Any) -> Array:
    """Run ``namespace.fft.<fname>`` and give the result the dtype the standard requires."""
    dev = x._device
    try:
        r = getattr(dev._ns.fft, fname)(a, **kwargs)
        if r.dtype != out:
            r = dev._ns.astype(r, out)
    except Exception as exc:
        raise fail(f"fft.{fname}", exc, a.ndim, kwargs.get("axis", kwargs.get("axes"))) from None
    return _wrap(r, dev, x._tags)


def _fill_s(
    a: Any, s: tuple[int, ...] | None, axes: tuple[int, ...] | None
) -> tuple[int, ...] | None:
    """Resolve ``-1`` entries of *s* to the input's size along that axis."""
    if s is None or axes is None or -1 not in s:
        return s
    return tuple(a.shape[ax] if v == -1 else v for v, ax in zip(s, axes))


# --------------------------------------------------------------------------------------------
# complex-to-complex transforms
# --------------------------------------------------------------------------------------------
def fft(x: Array, /, *, n: int | None = None, axis: int = -1, norm: Norm = "backward") -> Array:
    """One-dimensional discrete Fourier transform along *axis* (padded/trimmed to *n*).

    >>> import hpcai as xp
    >>> xp.fft.fft(xp.asarray([1.0, 1.0], dtype=xp.complex128))
    Array([2.+0.j, 0.+0.j], dtype=complex128, device='numpy:cpu')
    """
    _check_1d("fft", n, axis, norm)
    x, a = _complex_in("fft", x)
    return _run("fft", x, a, a.dtype, n=n, axis=int(axis), norm=norm)


def ifft(x: Array, /, *, n: int | None = None, axis: int = -1, norm: Norm = "backward") -> Array:
    """One-dimensional inverse discrete Fourier transform: ``ifft(fft(x)) == x``.

    >>> import hpcai as xp
    >>> xp.fft.ifft(xp.asarray([2.0, 0.0], dtype=xp.complex128))
    Array([1.+0.j, 1.+0.j], dtype=complex128, device='numpy:cpu')
    """
    _check_1d("ifft", n, axis, norm)
    x, a = _complex_in("ifft", x)
    return _run("ifft", x, a, a.dtype, n=n, axis=int(axis), norm=norm)


def fftn(
    x: Array,
    /,
    *,
    s: Sequence[int] | None = None,
    axes: Sequence[int] | None = None,
    norm: Norm = "backward",
) -> Array:
    """n-dimensional discrete Fourier transform over *axes* (all axes by default).

    >>> import hpcai as xp
    >>> xp.fft.fftn(xp.asarray([[1.0, 0.0], [0.0, 0.0]], dtype=xp.complex64))[1]
    Array([1.+0.j, 1.+0.j], dtype=complex64, device='numpy:cpu')
    """
    sz, ax = _check_nd("fftn", s, axes, norm)
    x, a = _complex_in("fftn", x)
    return _run("fftn", x, a, a.dtype, s=_fill_s(a, sz, ax), axes=ax, norm=norm)


def ifftn(
    x: Array,
    /,
    *,
    s: Sequence[int] | None = None,
    axes: Sequence[int] | None = None,
    norm: Norm = "backward",
) -> Array:
    """n-dimensional inverse discrete Fourier transform: ``ifftn(fftn(x)) == x``.

    >>> import hpcai as xp
    >>> xp.fft.ifftn(xp.asarray([[4.0, 0.0], [0.0, 0.0]], dtype=xp.complex128))[0]
    Array([1.+0.j, 1.+0.j], dtype=complex128, device='numpy:cpu')
    """
    sz, ax = _check_nd("ifftn", s, axes, norm)
    x, a = _complex_in("ifftn", x)
    return _run("ifftn", x, a, a.dtype, s=_fill_s(a, sz, ax), axes=ax, norm=norm)


# --------------------------------------------------------------------------------------------
# real-input transforms and their inverses
# --------------------------------------------------------------------------------------------
def rfft(x: Array, /, *, n: int | None = None, axis: int = -1, norm: Norm = "backward") -> Array:
    """Discrete Fourier transform of real input: the ``n//2 + 1`` non-negative frequencies.

    >>> import hpcai as xp
    >>> xp.fft.rfft(xp.asarray([1.0, 2.0, 3.0, 4.0], dtype=xp.float32))
    Array([10.+0.j, -2.+2.j, -2.+0.j], dtype=complex64, device='numpy:cpu')
    """
    _check_1d("rfft", n, axis, norm)
    x, a = _real_in("rfft", x)
    return _run("rfft", x, a, _TO_COMPLEX[a.dtype], n=n, axis=int(axis), norm=norm)


def irfft(x: Array, /, *, n: int | None = None, axis: int = -1, norm: Norm = "backward") -> Array:
    """Inverse of :func:`rfft`: real output of length *n* (default ``2 * (m - 1)``).

    >>> import hpcai as xp
    >>> y = xp.fft.rfft(xp.asarray([1.0, 2.0, 3.0]))
    >>> xp.fft.irfft(y, n=3)
    Array([1., 2., 3.], dtype=float64, device='numpy:cpu')
    """
    _check_1d("irfft", n, axis, norm)
    x, a = _complex_in("irfft", x)
    return _run("irfft", x, a, _TO_REAL[a.dtype], n=n, axis=int(axis), norm=norm)


def rfftn(
    x: Array,
    /,
    *,
    s: Sequence[int] | None = None,
    axes: Sequence[int] | None = None,
    norm: Norm = "backward",
) -> Array:
    """n-dimensional transform of real input (the last axis keeps ``s[-1]//2 + 1`` entries).

    >>> import hpcai as xp
    >>> xp.fft.rfftn(xp.asarray([[1.0, 1.0], [1.0, 1.0]])).shape
    (2, 2)
    """
    sz, ax = _check_nd("rfftn", s, axes, norm)
    x, a = _real_in("rfftn", x)
    return _run("rfftn", x, a, _TO_COMPLEX[a.dtype], s=_fill_s(a, sz, ax), axes=ax, norm=norm)


def irfftn(
    x: Array,
    /,
    *,
    s: Sequence[int] | None = None,
    axes: Sequence[int] | None = None,
    norm: Norm = "backward",
) -> Array:
    """Inverse of :func:`rfftn`: real output with sizes *s* on the transformed axes.

    >>> import hpcai as xp
    >>> x = xp.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    >>> xp.fft.irfftn(xp.fft.rfftn(x), s=(2, 3), axes=(0, 1)).shape
    (2, 3)
    """
    sz, ax = _check_nd("irfftn", s, axes, norm)
    x, a = _complex_in("irfftn", x)
    if sz is not None and ax is not None and -1 in sz:
        # For the last axis, -1 means "as many output points as the input implies".
        full = list(sz)
        for i, (v, axis) in enumerate(zip(sz, ax)):
            if v == -1:
                m = a.shape[axis]
                full[i] = 2 * (m - 1) if i == len(sz) - 1 else m
        sz = tuple(full)
    return _run("irfftn", x, a, _TO_REAL[a.dtype], s=sz, axes=ax, norm=norm)


def hfft(x: Array, /, *, n: int | None = None, axis: int = -1, norm: Norm = "backward") -> Array:
    """Transform of a Hermitian-symmetric signal given by its first half: real output.

    >>> import hpcai as xp
    >>> xp.fft.hfft(xp.asarray([1.0, 0.0], dtype=xp.complex64))
    Array([1., 1.], dtype=float32, device='numpy:cpu')
    """
    _check_1d("hfft", n, axis, norm)
    x, a = _complex_in("hfft", x)
    return _run("hfft", x, a, _TO_REAL[a.dtype], n=n, axis=int(axis), norm=norm)


def ihfft(x: Array, /, *, n: int | None = None, axis: int = -1, norm: Norm = "backward") -> Array:
    """Inverse of :func:`hfft` for real input: ``n//2 + 1`` complex values.

    >>> import hpcai as xp
    >>> xp.fft.ihfft(xp.asarray([1.0, 1.0], dtype=xp.float32)).dtype
    hpcai.complex64
    """
    _check_1d("ihfft", n, axis, norm)
    x, a = _real_in("ihfft", x)
    return _run("ihfft", x, a, _TO_COMPLEX[a.dtype], n=n, axis=int(axis), norm=norm)


# --------------------------------------------------------------------------------------------
# frequencies and shifts
# --------------------------------------------------------------------------------------------
def _freq(fname: str, n: int, d: float, dtype: Any, device: DeviceLike | None) -> Array:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidArgumentError(f"xp.fft.{fname}: n must be a positive int, got {n!r}")
    if isinstance(d, bool) or not isinstance(d, (int, float)) or d == 0:
        raise InvalidArgumentError(
            f"xp.fft.{fname}: d must be a non-zero float (the sample spacing), got {d!r}"
        )
    dev = resolve_device(device)
    dt = normalize_dtype(f"fft.{fname}", dtype)
    if dt is None:
        dt = device_default_dtype(dev, "real floating")
    elif dt not in _real_floating_dtypes:
        raise DTypeError(
            f"xp.fft.{fname}: dtype must be a real floating-point dtype, got {dt}; e.g. dtype=xp.float32"
        )
    host = getattr(np.fft, fname)(int(n), d=float(d)).astype(dt)
    try:
        data = dev._backend.from_host(host, dev, copy=False)
    except Exception as exc:
        raise _translate(f"xp.fft.{fname}", exc) from None
    return _wrap(data, dev, None)


def fftfreq(
    n: int, /, *, d: float = 1.0, dtype: Any = None, device: DeviceLike | None = None
) -> Array:
    """Sample frequencies of an *n*-point transform with sample spacing *d*, on *device*.

    >>> import hpcai as xp
    >>> xp.fft.fftfreq(4, d=0.5)
    Array([ 0. ,  0.5, -1. , -0.5], dtype=float64, device='numpy:cpu')
    """
    return _freq("fftfreq", n, d, dtype, device)


def rfftfreq(
    n: int, /, *, d: float = 1.0, dtype: Any = None, device: DeviceLike | None = None
) -> Array:
    """Non-negative sample frequencies (``n//2 + 1``) of an *n*-point :func:`rfft`, on *device*.

    >>> import hpcai as xp
    >>> xp.fft.rfftfreq(4, dtype=xp.float32)
    Array([0.  , 0.25, 0.5 ], dtype=float32, device='numpy:cpu')
    """
    return _freq("rfftfreq", n, d, dtype, device)


def _shift(fname: str, x: Any, axes: int | Sequence[int] | None) -> Array:
    if x.__class__ is not Array:
        x = as_array(f"fft.{fname}", x)
    if axes is not None and not isinstance(axes, int):
        try:
            axes = tuple(int(i) for i in axes)
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                f"xp.fft.{fname}: axes must be an int, a sequence of ints or None, got {axes!r}"
            ) from None
    try:
        r = getattr(x._device._ns.fft, fname)(x._data, axes=axes)
    except Exception as exc:
        raise fail(f"fft.{fname}", exc, x._data.ndim, axes) from None
    return _wrap(r, x._device, x._tags)


def fftshift(x: Array, /, *, axes: int | Sequence[int] | None = None) -> Array:
    """Move the zero-frequency term to the centre of *axes* (all axes by default).

    >>> import hpcai as xp
    >>> xp.fft.fftshift(xp.fft.fftfreq(4))
    Array([-0.5 , -0.25,  0.  ,  0.25], dtype=float64, device='numpy:cpu')
    """
    return _shift("fftshift", x, axes)


def ifftshift(x: Array, /, *, axes: int | Sequence[int] | None = None) -> Array:
    """Inverse of :func:`fftshift` (they differ for odd lengths).

    >>> import hpcai as xp
    >>> xp.fft.ifftshift(xp.fft.fftshift(xp.fft.fftfreq(5)))
    Array([ 0. ,  0.2,  0.4, -0.4, -0.2], dtype=float64, device='numpy:cpu')
    """
    return _shift("ifftshift", x, axes)
