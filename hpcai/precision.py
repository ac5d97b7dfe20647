"""Precision as a first-class concern: FP64 emulation and validation of reduced precision.

* :func:`matmul` — float64 matrix products emulated with the Ozaki scheme (int8 slices or
  coprime moduli, exact float32 products) on any device, with a guaranteed
  componentwise error bound reported in :class:`EmulationInfo`.
* Per-device policy ``[devices."<name>"] precision = "native" | "emulate" | "error"``:
  under ``"emulate"`` a device without FP64 stores float64 arrays and runs ``@``,
  ``xp.matmul``, ``xp.tensordot``, ``xp.vecdot``, ``xp.linalg.matmul`` and ``sum``,
  ``+``, ``-``, ``*``, ``/``, ``sqrt`` on them through emulation; other float64 operations
  raise :class:`~hpcai.errors.UnsupportedDtypeError` naming the operation. Under
  ``"native"`` or ``"error"`` float64 arrays cannot be created there.
* :func:`compare` runs a function at several precisions against a float64 reference;
  :func:`profile` lowers the precision of one operation (call site) at a time and ranks
  the call sites by the error they introduce.

>>> import hpcai as xp
>>> a = xp.asarray([[1.0, 2.0], [3.0, 4.0]])
>>> c, info = xp.precision.matmul(a, a, return_info=True)
>>> float(c[1, 1])
22.0
>>> info.method, info.bits_retained
('ozaki2', 52)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from . import _ozaki
from ._array import Array, _wrap
from ._device import DeviceLike, resolve_device
from ._helpers import same_device
from ._ozaki import MODULI, EmulationInfo
from .errors import DTypeError, InvalidArgumentError, UnsupportedDtypeError

__all__ = [
    "MODULI",
    "EmulationInfo",
    "PrecisionReport",
    "ProfileReport",
    "compare",
    "matmul",
    "policy",
    "profile",
    "vecdot",
]

_WIDE = frozenset({np.dtype("float64"), np.dtype("complex128")})


def _natives(fname: str, x1: Array, x2: Array) -> tuple[Any, Any, Any, Any]:
    (a, b), dev, tags = same_device(fname, [x1, x2])
    for name, v in (("a", a), ("b", b)):
        if v.dtype.kind not in "fciub":
            raise DTypeError(
                f"hpcai.precision.{fname}: {name} must have a numeric dtype, got {v.dtype}"
            )
    return _ozaki._plain(a), _ozaki._plain(b), dev, tags


@overload
def matmul(
    a: Array,
    b: Array,
    *,
    method: str = ...,
    tol: float | None = ...,
    slices: int | None = ...,
    return_info: Literal[False] = ...,
) -> Array: ...
@overload
def matmul(
    a: Array,
    b: Array,
    *,
    method: str = ...,
    tol: float | None = ...,
    slices: int | None = ...,
    return_info: Literal[True],
) -> tuple[Array, EmulationInfo]: ...
def matmul(
    a: Array,
    b: Array,
    *,
    method: str = "auto",
    tol: float | None = None,
    slices: int | None = None,
    return_info: bool = False,
) -> Array | tuple[Array, EmulationInfo]:
    """FP64 matrix product ``a @ b`` emulated from exact low-precision products (Ozaki scheme).

    ``method``: ``"auto"`` (the cheaper scheme that meets ``tol``), ``"ozaki1"`` (int8
    slices), ``"ozaki2"`` (moduli <= 256 and the Chinese remainder theorem) or
    ``"native"`` (the device's own FP64 GEMM). ``tol`` bounds the componentwise error
    relative to ``|a| @ |b|``; ``None`` asks for FP64-equivalent accuracy. ``slices``
    fixes the number of slices (scheme I) or moduli (scheme II, also for ``"auto"``).
    When ``auto`` would need more than 32 moduli / 20 slices, a device with FP64 uses its
    native GEMM. NumPy's matmul rules apply (1-d operands, broadcast stacks); inputs are
    converted to float64 (complex128 for complex inputs). With ``return_info=True`` the
    result comes with an :class:`EmulationInfo` (method, slices, ``bits_retained``, ...).

    >>> import hpcai as xp
    >>> a = xp.asarray([[1e-8, 1.0], [1.0, 1e8]])
    >>> c, info = xp.precision.matmul(a, a, method="ozaki1", return_info=True)
    >>> float(c[1, 1]) == 1e16 + 1.0, info.method
    (True, 'ozaki1')
    """
    x, y, dev, tags = _natives("matmul", a, b)
    fp64 = dev.spec.has_fp64
    try:
        out, info = _ozaki.emulate_matmul(
            dev._ns,
            x,
            y,
            method=method,
            tol=tol,
            slices=slices,
            fp64=fp64,
            allow_native=fp64,
            device=dev.spec.name,
        )
    except (InvalidArgumentError, UnsupportedDtypeError) as exc:
        raise type(exc)(str(exc).replace("matmul:", "hpcai.precision.matmul:", 1)) from None
    r = _wrap(out, dev, tags)
    return (r, info) if return_info else r


def vecdot(
    a: Array,
    b: Array,
    /,
    *,
    axis: int = -1,
    method: str = "auto",
    tol: float | None = None,
    return_info: bool = False,
) -> Array | tuple[Array, EmulationInfo]:
    """Emulated FP64 ``vecdot(a, b, axis=axis)`` (row-wise dot products, *a* conjugated).

    >>> import hpcai as xp
    >>> float(xp.precision.vecdot(xp.asarray([1e16, 1.0, -1e16]), xp.asarray([1.0, 1.0, 1.0])))
    1.0
    """
    x, y, dev, tags = _natives("vecdot", a, b)
    fp64 = dev.spec.has_fp64
    out, info = _ozaki.emulate_vecdot(
        dev._ns,
        x,
        y,
        axis,
        method=method,
        tol=tol,
        fp64=fp64,
        allow_native=fp64,
        device=dev.spec.name,
    )
    r = _wrap(out, dev, tags)
    return (r, info) if return_info else r


def policy(device: DeviceLike | None = None) -> str:
    """The precision policy of *device* (``"native"``, ``"emulate"`` or ``"error"``).

    >>> import hpcai as xp
    >>> xp.precision.policy("numpy:cpu")
    'native'
    """
    return resolve_device(device).spec.precision


def _policy_matmul(a: Any, b: Any, device: Any) -> Any:
    """The matmul hook under ``precision = "emulate"``: float64/complex128 products are emulated."""
    if a.dtype in _WIDE or b.dtype in _WIDE:
        fp64 = device.spec.has_fp64
        out, _ = _ozaki.emulate_matmul(
            device._ns,
            _ozaki._plain(a),
            _ozaki._plain(b),
            fp64=fp64,
            allow_native=fp64,
            device=device.spec.name,
        )
        return out
    return a @ b


# --------------------------------------------------------------------------------------------
# interception of namespace calls (compare / profile)
# --------------------------------------------------------------------------------------------
#: Array operators that are intercepted, with the namespace name they stand for.
_OPERATORS: dict[str, str] = {
    "__add__": "add",
    "__radd__": "add",
    "__iadd__": "add",
    "__sub__": "subtract",
    "__rsub__": "subtract",
    "__isub__": "subtract",
    "__mul__": "multiply",
    "__rmul__": "multiply",
    "__imul__": "multiply",
    "__truediv__": "divide",
    "__rtruediv__": "divide",
    "__itruediv__": "divide",
    "__pow__": "pow",
    "__rpow__": "pow",
    "__matmul__": "matmul",
}
_MATMUL_FAMILY = frozenset(
    {"matmul", "tensordot", "vecdot", "linalg.matmul", "linalg.vecdot", "linalg.tensordot"}
)
_PKG_DIR = str(Path(__file__).resolve().parent)

Handler = Callable[[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]


def _intercepted() -> list[tuple[Any, str, str]]:
    """(owner, attribute, operation name) of every namespace function and operator that is wrapped."""
    import hpcai

    from . import _elementwise, _linalg_functions, _statistical_functions, linalg

    out: list[tuple[Any, str, str]] = []
    for mod in (_elementwise, _statistical_functions, _linalg_functions):
        for name in getattr(mod, "__all__", []):
            if callable(getattr(hpcai, name, None)):
                out.append((hpcai, name, name))
    for name in getattr(linalg, "__all__", []):
        if callable(getattr(linalg, name, None)):
            out.append((linalg, name, f"linalg.{name}"))
    for dunder, op in _OPERATORS.items():
        out.append((Array, dunder, op))
    return out


def _call_site() -> tuple[str, int]:
    """File and line of the first caller outside hpcai."""
    f = sys._getframe(2)
    while f is not None and f.f_code.co_filename.startswith(_PKG_DIR):
        f = f.f_back  # type: ignore[assignment]
    if f is None:
        return "<hpcai>", 0
    return f.f_code.co_filename, f.f_lineno


@contextmanager
def _intercept(handler: Handler) -> Iterator[None]:
    """Route every intercepted namespace call through ``handler(op, original, args, kwargs)``.

    Module attributes of ``hpcai`` / ``hpcai.linalg`` and Array operators are replaced for
    the duration (process-wide: not for concurrent threads), so calls written as
    ``xp.exp(x)``, ``xp.linalg.solve(a, b)``, ``a @ b`` or ``a + b`` in user code are seen.
    """
    saved: list[tuple[Any, str, Any]] = []
    try:
        for owner, attr, op in _intercepted():
            original = owner.__dict__[attr] if attr in owner.__dict__ else getattr(owner, attr)
            saved.append((owner, attr, original))
            setattr(owner, attr, _make_wrapper(handler, op, original))
        yield
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)


def _make_wrapper(handler: Handler, op: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return handler(op, original, args, kwargs)

    wrapper.__name__ = getattr(original, "__name__", op)
    wrapper.__doc__ = getattr(original, "__doc__", None)
    return wrapper


def _dtype_of(name: str) -> Any:
    from ._dtypes import DTYPES_BY_NAME

    if name not in DTYPES_BY_NAME:
        raise InvalidArgumentError(
            f"hpcai.precision: unknown precision {name!r}; use one of float64, float32, float16, bfloat16, "
            "float8_e4m3fn, float8_e5m2 or 'emulated-fp64'"
        )
    return DTYPES_BY_NAME[name]


def _cast_array(x: Array, dt: Any) -> Array:
    dev = x._device
    data = _ozaki._plain(x._data) if dt.itemsize < 8 else x._data
    return _wrap(dev._ns.astype(data, dt), dev, x._tags)


def _map_arrays(obj: Any, fn: Callable[[Array], Any]) -> Any:
    if obj.__class__ is Array:
        return fn(obj)
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_map_arrays(o, fn) for o in obj)
    if isinstance(obj, tuple):  # named tuples (linalg results)
        return type(obj)(*(_map_arrays(o, fn) for o in obj))
    if isinstance(obj, list):
        return [_map_arrays(o, fn) for o in obj]
    if isinstance(obj, dict):
        return {k: _map_arrays(v, fn) for k, v in obj.items()}
    return obj


def _lower(
    dt: Any,
) -> tuple[Callable[[Array], Any], Callable[[Array], Any], Callable[[Array], Any]]:
    """(cast inputs down, cast outputs down, restore) for reduced precision *dt*.

    Formats narrower than float32 are stored in *dt* and computed in float32 (as matrix
    units with bf16/fp8 inputs and fp32 accumulation do): inputs and results are rounded
    to *dt* at every operation boundary.
    """
    f32 = np.dtype("float32")
    narrow = dt.itemsize < 4

    def down(x: Array) -> Array:
        if x._data.dtype.kind not in "fc" or x._data.dtype.itemsize <= dt.itemsize:
            return x
        if x._data.dtype.kind == "c":
            return _cast_array(x, np.dtype("complex64")) if dt.itemsize < 8 else x
        y = _cast_array(x, dt)
        return _cast_array(y, f32) if narrow else y

    def round_out(x: Array) -> Array:
        if narrow and x._data.dtype == f32:
            return _cast_array(_cast_array(x, dt), f32)
        return x

    def restore(x: Array) -> Array:
        return x

    return down, round_out, restore


def _run_lowered(
    op: str, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], dt: Any
) -> Any:
    down, round_out, _ = _lower(dt)
    wide = [a._data.dtype for a in _flat(args) if a._data.dtype.kind in "fc"]
    target = max(wide, key=lambda d: d.itemsize) if wide else None
    la = _map_arrays(args, down)
    lk = _map_arrays(kwargs, down)
    if "dtype" in lk and lk["dtype"] is not None and np.dtype(lk["dtype"]).kind == "f":
        lk["dtype"] = np.dtype("float32") if dt.itemsize < 4 else dt
    out = original(*la, **lk)
    out = _map_arrays(out, round_out)
    if target is not None:
        out = _map_arrays(
            out,
            lambda x: (
                _cast_array(x, target)
                if x._data.dtype.kind == target.kind == "f" and x._data.dtype != target
                else x
            ),
        )
    return out


def _flat(obj: Any) -> list[Array]:
    if obj.__class__ is Array:
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [a for o in obj for a in _flat(o)]
    if isinstance(obj, dict):
        return [a for o in obj.values() for a in _flat(o)]
    return []


def _run_emulated_fp64(
    op: str, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    arrays = _flat(args)
    if (
        op in ("matmul", "linalg.matmul")
        and len(args) == 2
        and all(a.__class__ is Array for a in args)
    ):
        return matmul(args[0], args[1])
    if (
        op in ("vecdot", "linalg.vecdot")
        and len(args) == 2
        and all(a.__class__ is Array for a in args)
    ):
        return vecdot(args[0], args[1], axis=kwargs.get("axis", -1))
    if op in ("tensordot", "linalg.tensordot") and len(args) >= 2 and arrays:
        return _emulated_tensordot(
            args[0], args[1], kwargs.get("axes", args[2] if len(args) > 2 else 2)
        )
    return original(*args, **kwargs)


def _emulated_tensordot(x1: Array, x2: Array, axes: Any) -> Array:
    """tensordot as one emulated matmul of the two operands reshaped to matrices."""
    a, b = x1._data, x2._data
    if isinstance(axes, int):
        ax1 = list(range(a.ndim - axes, a.ndim))
        ax2 = list(range(axes))
    else:
        ax1 = [int(i) % a.ndim for i in axes[0]]
        ax2 = [int(i) % b.ndim for i in axes[1]]
    free1 = [i for i in range(a.ndim) if i not in ax1]
    free2 = [i for i in range(b.ndim) if i not in ax2]
    ns = x1._device._ns
    k = math.prod(a.shape[i] for i in ax1)
    A = ns.reshape(ns.permute_dims(a, (*free1, *ax1)), (math.prod(a.shape[i] for i in free1), k))
    B = ns.reshape(ns.permute_dims(b, (*ax2, *free2)), (k, math.prod(b.shape[i] for i in free2)))
    c = matmul(_wrap(A, x1._device, x1._tags), _wrap(B, x2._device, x2._tags))
    shape = (*(a.shape[i] for i in free1), *(b.shape[i] for i in free2))
    return _wrap(ns.reshape(c._data, shape), c._device, c._tags)


# --------------------------------------------------------------------------------------------
# error metrics and reports
# --------------------------------------------------------------------------------------------
def _host(x: Array) -> np.ndarray:
    h = x if x._device.is_host else x.to_device("numpy:cpu")
    v = np.asarray(h._data)
    return v.astype(np.complex128 if v.dtype.kind == "c" else np.float64)


def _metrics(ref: np.ndarray, val: np.ndarray) -> dict[str, float]:
    """Max absolute / relative error, error in float64 ulps of the reference, norm-wise error."""
    if ref.shape != val.shape:
        raise InvalidArgumentError(
            f"hpcai.precision: output shapes differ: reference {ref.shape}, candidate {val.shape}"
        )
    with np.errstate(all="ignore"):
        d = np.abs(val - ref)
        fin = np.isfinite(ref)
        bad = fin & ~np.isfinite(val)
        d = np.where(fin, d, 0.0)
        mag = np.abs(ref)
        nz = fin & (mag > 0)
        rel = np.where(nz, d / np.where(nz, mag, 1.0), 0.0)
        ulp = np.spacing(np.where(fin, mag, 1.0).astype(np.float64))
        ulps = np.where(fin, d / ulp, 0.0)
        nref = float(np.linalg.norm(np.where(fin, ref, 0).ravel()))
        ndiff = float(np.linalg.norm(d.ravel()))
    inf = math.inf
    return {
        "max_abs": inf if bad.any() else float(d.max(initial=0.0)),
        "max_rel": inf if bad.any() else float(rel.max(initial=0.0)),
        "max_ulps": inf if bad.any() else float(ulps.max(initial=0.0)),
        "normwise": inf if bad.any() else (ndiff / nref if nref > 0 else ndiff),
    }


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    sep = "  ".join("-" * w for w in widths)
    body = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    return "\n".join([line, sep, *body])


def _fmt(v: float) -> str:
    return f"{v:.3e}" if math.isfinite(v) else str(v)


@dataclass
class PrecisionReport:
    """Errors of each candidate precision against the reference, per output of the function.

    ``rows`` holds one dict per (candidate, output): ``candidate``, ``output``,
    ``max_abs``, ``max_rel``, ``max_ulps`` (float64 ulps of the reference) and
    ``normwise`` (``||candidate - reference|| / ||reference||``, Frobenius).
    ``str(report)`` is a table.
    """

    reference: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        head = ["candidate", "output", "max abs err", "max rel err", "max ulps", "norm-wise"]
        body = [
            [
                r["candidate"],
                str(r["output"]),
                _fmt(r["max_abs"]),
                _fmt(r["max_rel"]),
                _fmt(r["max_ulps"]),
                _fmt(r["normwise"]),
            ]
            for r in self.rows
        ]
        return f"errors against the {self.reference} reference\n" + _table(head, body)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"reference": self.reference, "rows": [dict(r) for r in self.rows]}


def _outputs(result: Any) -> list[Array]:
    arrays = _flat(result)
    if not arrays:
        raise InvalidArgumentError(
            f"hpcai.precision: the function must return an Array or a tuple/list/dict of Arrays, got {type(result).__name__}"
        )
    return arrays


def _run_candidate(
    fn: Callable[..., Any], args: tuple[Any, ...], candidate: str
) -> list[np.ndarray]:
    if candidate == "emulated-fp64":
        with _intercept(
            lambda op, orig, a, k: (
                _run_emulated_fp64(op, orig, a, k) if op in _MATMUL_FAMILY else orig(*a, **k)
            )
        ):
            result = fn(*args)
        return [_host(x) for x in _outputs(result)]
    dt = _dtype_of(candidate)
    if dt == np.dtype("float64"):
        return [_host(x) for x in _outputs(fn(*args))]
    down, _, _ = _lower(dt)
    low_args = _map_arrays(args, down)
    with _intercept(lambda op, orig, a, k: _run_lowered(op, orig, a, k, dt)):
        result = fn(*low_args)
    return [_host(x) for x in _outputs(result)]


def compare(
    fn: Callable[..., Any],
    *args: Any,
    reference: str = "float64",
    candidates: Sequence[str] = ("float32", "bfloat16", "emulated-fp64"),
) -> PrecisionReport:
    """Run ``fn(*args)`` at each candidate precision and measure its outputs against *reference*.

    A candidate is a dtype name (``"float32"``, ``"float16"``, ``"bfloat16"``,
    ``"float8_e4m3fn"``, ...): the floating-point array arguments are cast to it and every
    hpcai operation ``fn`` calls runs at it (formats narrower than float32 are computed in
    float32 and rounded to the format at each operation); or ``"emulated-fp64"``: float64
    throughout, with matrix products, ``tensordot`` and ``vecdot`` through the Ozaki
    emulation. Returns a :class:`PrecisionReport` (``print`` it for a table).

    >>> import hpcai as xp
    >>> a = xp.asarray([[4.0, 1.0], [1.0, 3.0]])
    >>> rep = xp.precision.compare(lambda m: m @ m, a, candidates=("float32",))
    >>> rep.rows[0]["max_abs"]
    0.0
    """
    ref = _run_candidate(fn, args, reference)
    report = PrecisionReport(reference)
    for cand in candidates:
        vals = _run_candidate(fn, args, cand)
        if len(vals) != len(ref):
            raise InvalidArgumentError(
                f"hpcai.precision.compare: {cand} run returned {len(vals)} outputs, the reference {len(ref)}"
            )
        for i, (r, v) in enumerate(zip(ref, vals)):
            report.rows.append({"candidate": cand, "output": i, **_metrics(r, v)})
    return report


@dataclass
class ProfileReport:
    """Call sites ranked by the error that lowering them (alone) to ``at`` introduces.

    ``rows`` (worst first): ``op``, ``site`` (``file:line``), ``calls``, ``normwise``
    and ``max_rel`` (of the worst output against the float64 run). ``str(report)`` is a
    table; :meth:`plot` draws a bar chart when matplotlib is installed.
    """

    at: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        head = ["rank", "operation", "call site", "calls", "norm-wise err", "max rel err"]
        body = [
            [
                str(i + 1),
                r["op"],
                r["site"],
                str(r["calls"]),
                _fmt(r["normwise"]),
                _fmt(r["max_rel"]),
            ]
            for i, r in enumerate(self.rows)
        ]
        return f"error from running one operation at {self.at} (others at float64)\n" + _table(
            head, body
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"at": self.at, "rows": [dict(r) for r in self.rows]}

    def plot(self, path: str | None = None) -> Any:
        """Bar chart of the norm-wise error per call site (needs matplotlib); saved to *path* if given."""
        try:
            import matplotlib

            if path is not None:
                matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError(
                "ProfileReport.plot needs matplotlib: pip install matplotlib"
            ) from None
        labels = [f"{r['op']} @ {Path(r['site']).name}" for r in self.rows]
        vals = [max(r["normwise"], 1e-300) for r in self.rows]
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(labels) + 1.2))
        ax.barh(labels[::-1], vals[::-1])
        ax.set_xscale("log")
        ax.set_xlabel(f"norm-wise error with that operation at {self.at}")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig


def profile(fn: Callable[..., Any], *args: Any, at: str = "float32") -> ProfileReport:
    """Rank the call sites of ``fn`` by the error that running each one alone at *at* introduces.

    ``fn(*args)`` runs once at float64 while every hpcai namespace function and Array
    operator it calls is intercepted and its call site (file and line of the caller) is
    recorded. Then, for each call site in turn, ``fn`` runs again with only the calls from
    that site at *at* precision (inputs cast down, result cast back to float64) and the
    outputs are compared with the float64 run. This is the question RAPTOR answers for
    compiled codes, asked of Python code through the namespace.

    >>> import hpcai as xp
    >>> def f(x):
    ...     y = xp.exp(x)
    ...     return y - 1.0
    >>> rep = xp.precision.profile(f, xp.asarray([1e-6, 2e-6]))
    >>> rep.rows[0]["op"]
    'exp'
    """
    dt = _dtype_of(at)
    sites: dict[tuple[str, str, int], int] = {}

    def record(op: str, original: Callable[..., Any], a: tuple[Any, ...], k: dict[str, Any]) -> Any:
        fname, line = _call_site()
        key = (op, fname, line)
        sites[key] = sites.get(key, 0) + 1
        return original(*a, **k)

    with _intercept(record):
        ref = [_host(x) for x in _outputs(fn(*args))]
    report = ProfileReport(at)
    for key, calls in sites.items():
        op, fname, line = key

        def perturb(
            op_: str,
            original: Callable[..., Any],
            a: tuple[Any, ...],
            k: dict[str, Any],
            _key: Any = key,
        ) -> Any:
            f, ln = _call_site()
            if (op_, f, ln) == _key and any(x._data.dtype.kind in "fc" for x in _flat(a)):
                return _run_lowered(op_, original, a, k, dt)
            return original(*a, **k)

        with _intercept(perturb):
            vals = [_host(x) for x in _outputs(fn(*args))]
        ms = [_metrics(r, v) for r, v in zip(ref, vals)]
        report.rows.append(
            {
                "op": op,
                "site": f"{fname}:{line}",
                "calls": calls,
                "normwise": max(m["normwise"] for m in ms),
                "max_rel": max(m["max_rel"] for m in ms),
            }
        )
    report.rows.sort(key=lambda r: -r["normwise"] if math.isfinite(r["normwise"]) else -math.inf)
    return report
