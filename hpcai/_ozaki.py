"""Ozaki-scheme FP64 matrix products built from exact low-precision products.

Both schemes turn a float64 product ``A @ B`` into a few products of small integers that
a low-precision matrix unit computes *exactly*, then reconstruct the float64 result:

* **Scheme I** (``"ozaki1"``): each row of ``A`` (column of ``B``) is scaled by a power of
  two so that its largest entry is just below ``2**b``, rounded to an integer and cut into
  ``S`` signed 7-bit digits (int8 slices, ``|digit| <= 127``). The products of slice pairs
  ``s + t <= S + 1`` are exact, are summed per group ``g = s + t`` exactly, and the groups
  are combined with weights ``2**(7 * (2S - g))``.
* **Scheme II** (``"ozaki2"``): the same scaled integers are reduced modulo ``N`` pairwise
  coprime moduli ``<= 256`` (residues in ``[-128, 128]``), one exact product per modulus
  gives ``A'B' mod p``, and the Chinese remainder theorem rebuilds ``A'B'`` exactly.

Exact products use float32 matrix products of integers: a k-block of 1024 terms each
at most ``2**14`` in magnitude (int8 slices, symmetric residues) sums to at most ``2**24``,
where float32 is exact, so ``k`` is cut into blocks of 1024. That is what an FP64-less accelerator's
matrix unit does, and on CPUs it runs through sgemm, about twice as fast as dgemm.

Two accumulators finish the job:

* on devices with native FP64 the block sums and the reconstruction use float64: group
  and CRT sums are exact integers below ``2**53``, the CRT is evaluated in fixed-point
  parts of 38 bits with one float64 GEMM, and the parts are added in double-double
  (``accumulation = "float64"``);
* on devices without FP64 everything after the exact float32 products is int64 integer
  arithmetic: exact multi-limb sums, then one correct rounding to the nearest float64,
  assembled from a 53-bit integer and an exponent (``accumulation = "int64"``).

Decoding inputs (``frexp``/``ldexp``, rounding a scaled value to an integer, removing the
leading digits of an integer-valued double) and encoding results (int64 to float64 of a
53-bit integer, ``ldexp``) are exact bit-level operations: no rounding FP64 addition,
multiplication or GEMM is used on the FP64-less path.

The number of slices or moduli comes from the data: the scaled row and column sums and a
float32 estimate of ``|A||B|`` bound the truncation error of every entry,
``|C - C_emulated|_ij <= 2**-bits_retained * (|A||B|)_ij``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import HpcaiError, InvalidArgumentError, UnsupportedDtypeError

if TYPE_CHECKING:
    from hpcai.backends import Backend

__all__ = [
    "MODULI",
    "EmulationInfo",
    "emulate",
    "exact_add",
    "exact_divide",
    "exact_multiply",
    "exact_sqrt",
]

#: Unit roundoff of float64.
U = 2.0**-53
#: Bits per int8 slice of scheme I (signed digits in ``[-127, 127]``).
SLICE_BITS = 7
#: Bits per digit used to compute residues with one small float32 GEMM.
_DIGIT_BITS = 11
#: Largest numbers of slices / moduli before ``auto`` falls back to native FP64.
MAX_SLICES = 20
MAX_MODULI = 32
#: k-blocks that keep float32 sums of integer products exact (at most 2**24 in magnitude:
#: 1024 products of slices below 2**7, or of symmetric residues |r| <= 128).
_KBLOCK_SLICES = 1024
_KBLOCK_RESIDUES = 1024
#: Result entries per chunk of the float64 CRT reconstruction (temporaries stay in cache).
_CRT_CHUNK = 1 << 15
#: Fixed-point part width of the CRT weights (parts * residues * moduli stay below 2**53).
_PART_BITS = 38
#: Bound on the double-double reconstruction error, relative to |A||B| (integer path: exact).
_RECON = 2.0**-100
#: Limb width of the exact integer accumulator.
_LIMB = 24


def _coprime_moduli(count: int) -> tuple[int, ...]:
    """The first *count* pairwise coprime integers taken greedily downwards from 256."""
    out: list[int] = []
    m = 256
    while len(out) < count and m > 1:
        if all(math.gcd(m, x) == 1 for x in out):
            out.append(m)
        m -= 1
    return tuple(out)


#: Pairwise coprime moduli <= 256, largest first: 256, 255, 253, 251, 247, 241, ...
MODULI: tuple[int, ...] = _coprime_moduli(MAX_MODULI)


@dataclass(frozen=True)
class EmulationInfo:
    """What an emulated product did and how accurate it is.

    ``bits_retained`` is guaranteed componentwise: every entry satisfies
    ``|C - C_exact|_ij <= 2**-bits_retained * (|A| @ |B|)_ij`` (``error_bound`` is the
    bound itself, before taking the logarithm). ``method`` is ``"ozaki1"``, ``"ozaki2"``
    or ``"native"`` (the device's own FP64 GEMM). ``slices`` counts int8 slices (scheme I)
    or moduli (scheme II); ``products`` the exact low-precision GEMMs that were run.
    """

    method: str
    slices: int
    bits_retained: int
    error_bound: float
    products: int
    product_dtype: str
    accumulation: str
    device: str = ""

    def __str__(self) -> str:
        what = {"ozaki1": f"{self.slices} int8 slices", "ozaki2": f"{self.slices} moduli"}.get(
            self.method, "native FP64"
        )
        return (
            f"{self.method} ({what}, {self.products} exact {self.product_dtype} products, "
            f"{self.accumulation} accumulation): {self.bits_retained} bits retained"
        )


# --------------------------------------------------------------------------------------------
# namespace helpers
# --------------------------------------------------------------------------------------------
def _backend_of(device: str) -> Backend | None:
    """The backend of the device called *device* ("" or unknown: None, NumPy-like defaults)."""
    if not device:
        return None
    from ._device import resolve_device

    try:
        return resolve_device(device)._backend
    except HpcaiError:
        return None


class _Kind:
    """How the contraction pairs rows of A with columns of B: a GEMM or row-wise dots.

    ``mm``: A is (R, K), B is (K, C), the result is (R, C).
    ``dot``: A and B are both (R, K), the result is (R,) (``vecdot``, ``sum``, elementwise).

    It also carries what the device's backend says about computing there: its float32
    matrix product at full float32 precision (no TF32 / bf16 passes) and whether loops over
    cache-sized blocks pay off (``cache_blocking``).
    """

    def __init__(self, ns: Any, name: str, backend: Backend | None = None) -> None:
        self.ns = ns
        self.name = name
        self.b_axis = 0 if name == "mm" else 1  # axis of B that is contracted
        self.blocking = True if backend is None else bool(backend.cache_blocking)
        self._backend = backend

    def f32_matmul(self, x: Any, y: Any) -> Any:
        """float32 matrix product at full float32 precision."""
        if self._backend is None:
            return self.ns.matmul(x, y)
        return self._backend.full_precision_matmul(self.ns, x, y)

    def contract(self, x: Any, y: Any) -> Any:
        if self.name == "mm":
            return self.f32_matmul(x, y)
        return self.ns.sum(x * y, axis=-1)

    def block(self, x: Any, y: Any, k0: int, k1: int) -> tuple[Any, Any]:
        if self.name == "mm":
            return x[..., k0:k1], y[..., k0:k1, :]
        return x[..., k0:k1], y[..., k0:k1]

    def outer(self, u: Any, v: Any, op: Callable[[Any, Any], Any]) -> Any:
        """Combine a per-row vector of A with a per-column vector of B into the result's shape."""
        if self.name == "mm":
            return op(u[:, None], v[None, :])
        return op(u, v)

    def expand_b(self, v: Any) -> Any:
        """A per-column vector of B, broadcastable against B."""
        return v[None, :] if self.name == "mm" else v[:, None]


# --------------------------------------------------------------------------------------------
# scaling, digits, residues
# --------------------------------------------------------------------------------------------
def _exponents(ns: Any, x: Any, axis: int) -> Any:
    """int64 exponents ``e`` with ``max |x| < 2**e`` along *axis* (0 for all-zero lines)."""
    mx = ns.max(ns.abs(x), axis=axis)
    _, e = ns.frexp(mx)
    return ns.astype(e, ns.int64)


def _scaled_integers(ns: Any, xs: Any, bits: int) -> Any:
    """``rint(xs * 2**bits)`` for normalised ``|xs| < 1``: exact integers below ``2**bits``."""
    return ns.rint(xs * (2.0**bits))


def _digits(ns: Any, xi: Any, base_bits: int, count: int) -> list[Any]:
    """Signed base-``2**base_bits`` digits of integer-valued float64 *xi*, least significant first.

    Peeling from the top is exact: scaling by a power of two, truncation, and removing the
    leading digit of an integer whose remaining bits are representable.
    """
    out: list[Any] = [None] * count
    rem = xi
    for d in range(count - 1, -1, -1):
        scale = 2.0 ** (base_bits * d)
        t = ns.trunc(rem * (1.0 / scale))
        out[d] = ns.astype(t, ns.float32)
        if d:
            rem = rem - t * scale
    return out


def _residue_matrix(ns: Any, moduli: Sequence[int], ndigits: int) -> Any:
    """``(2**(11 d) mod p)`` in the symmetric range, float32 of shape (N, ndigits)."""
    rows = []
    for p in moduli:
        row = []
        for d in range(ndigits):
            r = pow(2, _DIGIT_BITS * d, p)
            if r > p // 2:
                r -= p
            row.append(float(r))
        rows.append(row)
    return ns.asarray(rows, dtype=ns.float32)


def _sym_mod(ns: Any, y: Any, p: Any, inv_p: Any) -> Any:
    """``y - p * rint(y / p)``: a residue of integer-valued float32 *y* (``|y| <= 2**24``).

    *p* and *inv_p* (float32 ``1/p``) are scalars or arrays broadcastable against *y*.
    Every step is exact (``|p * q| < 2**24``); the computed quotient errs by at most
    ``|y| 2**-23 / p``, so the residue lies within ``|y| 2**-23`` of the symmetric range:
    ``|r| <= p/2`` for ``|y| <= 2**22``, ``|r| <= p/2 + 2`` up to ``2**24``.
    """
    return y - p * ns.rint(y * inv_p)


def _sym_mod_owned(ns: Any, y: Any, p: Any, inv_p: Any) -> Any:
    """:func:`_sym_mod` of a temporary the caller owns: a NumPy *y* is overwritten in place."""
    if type(y) is not np.ndarray:
        return _sym_mod(ns, y, p, inv_p)
    t = np.multiply(y, inv_p)
    np.rint(t, out=t)
    t *= p
    y -= t
    return y


def _residues(
    ns: Any, xi: Any, bits: int, moduli: Sequence[int], matmul: Callable[[Any, Any], Any] | None = None
) -> Any:
    """Residues of the integers *xi* (``|xi| <= 2**bits``) modulo each modulus: float32 (N, *shape).

    The integers are cut into 11-bit digits, one float32 GEMM with ``2**(11 d) mod p``
    (|.| <= 128) gives sums below ``2**21.5`` (exact), and a rounding to the nearest
    multiple of ``p`` that is exact at that size leaves symmetric residues ``|r| <= p/2``
    (all moduli at once: one pass over the GEMM's result, no per-modulus copies).
    *matmul* is the full-precision float32 product (:meth:`_Kind.f32_matmul`).
    """
    nd = -(-(bits + 1) // _DIGIT_BITS)
    shape = tuple(xi.shape)
    size = math.prod(shape)
    rmat = _residue_matrix(ns, moduli, nd)
    p = ns.asarray([[float(m)] for m in moduli], dtype=ns.float32)
    inv_p = ns.asarray([[1.0 / m] for m in moduli], dtype=ns.float32)
    if type(xi) is np.ndarray and type(rmat) is np.ndarray:
        return np.reshape(
            _residues_np(np.reshape(xi, (size,)), nd, rmat, p, inv_p), (len(moduli), *shape)
        )
    digits = _digits(ns, xi, _DIGIT_BITS, nd)
    stack = ns.reshape(ns.stack(digits, axis=0), (nd, size))
    y = (matmul or ns.matmul)(rmat, stack)
    return ns.reshape(_sym_mod(ns, y, p, inv_p), (len(moduli), *shape))


def _residues_np(
    xi: np.ndarray, nd: int, rmat: np.ndarray, p: np.ndarray, inv_p: np.ndarray
) -> np.ndarray:
    """:func:`_residues` for flat NumPy *xi* in cache-sized chunks with reused buffers.

    The same operations in the same order as the generic path (bit-identical results),
    without the full-size digit, product and rounding temporaries.
    """
    size = xi.shape[0]
    out = np.empty((rmat.shape[0], size), dtype=np.float32)
    step = _CRT_CHUNK // 2
    dig = np.empty((nd, step), dtype=np.float32)
    tmp = np.empty((rmat.shape[0], step), dtype=np.float32)
    rem = np.empty(step, dtype=np.float64)
    t = np.empty(step, dtype=np.float64)
    for c0 in range(0, size, step):
        c1 = min(c0 + step, size)
        n = c1 - c0
        r, tt, dg, tp = rem[:n], t[:n], dig[:, :n], tmp[:, :n]
        r[...] = xi[c0:c1]
        for d in range(nd - 1, -1, -1):
            scale = 2.0 ** (_DIGIT_BITS * d)
            np.multiply(r, 1.0 / scale, out=tt)
            np.trunc(tt, out=tt)
            dg[d] = tt
            if d:
                tt *= scale
                r -= tt
        y = out[:, c0:c1]
        np.matmul(rmat, dg, out=y)
        np.multiply(y, inv_p, out=tp)
        np.rint(tp, out=tp)
        tp *= p
        y -= tp
    return out


# --------------------------------------------------------------------------------------------
# exact integer accumulation and correct rounding (FP64-less path)
# --------------------------------------------------------------------------------------------
def _shift(ns: Any, x: Any, s: Any) -> Any:
    """``x * 2**s`` for int64 *x* and an int64 shift of either sign (floor for right shifts)."""
    left = ns.bitwise_left_shift(x, ns.clip(s, 0, 62))
    right = ns.bitwise_right_shift(x, ns.clip(-s, 0, 63))
    return ns.where(s >= 0, left, right)


def round_terms_int(ns: Any, terms: Sequence[tuple[Any, Any]], shift: Any = 0) -> Any:
    """``sum_j X_j * 2**(o_j + shift)`` correctly rounded to float64, with int64 arithmetic only.

    Each term is ``(X, o)``: int64 ``X`` with ``|X| < 2**62`` and an int offset ``o``
    (a Python int or an int64 array broadcastable to ``X``). The exact sum is built in
    24-bit limbs, normalised, rounded to nearest-even (subnormals included) and encoded
    as ``ldexp(float64(q), E)`` with ``q <= 2**53``, which is exact.
    """
    i64 = ns.int64
    mask = (1 << _LIMB) - 1
    shape = np.broadcast_shapes(
        *[tuple(x.shape) for x, _ in terms], tuple(getattr(shift, "shape", ()))
    )
    offs = [o if isinstance(o, int) else ns.astype(o, i64) for _, o in terms]
    # offsets relative to their elementwise minimum
    omin: Any = offs[0]
    for o in offs[1:]:
        omin = min(omin, o) if isinstance(omin, int) and isinstance(o, int) else ns.minimum(omin, o)
    rels = [o - omin for o in offs]
    relmax = max(int(r) if isinstance(r, int) else int(ns.max(r)) if r.size else 0 for r in rels)
    nlimbs = relmax // _LIMB + 64 // _LIMB + 4
    zero = ns.zeros(shape, dtype=i64)
    limbs = [zero for _ in range(nlimbs)]
    for (x, _), rel in zip(terms, rels):
        x = ns.broadcast_to(ns.astype(x, i64), shape)
        c0 = ns.bitwise_and(x, mask)
        x1 = ns.bitwise_right_shift(x, _LIMB)
        c1 = ns.bitwise_and(x1, mask)
        c2 = ns.bitwise_right_shift(x1, _LIMB)
        if isinstance(rel, int):
            t0, r = divmod(rel, _LIMB)
            limbs[t0] = limbs[t0] + ns.bitwise_left_shift(c0, r)
            limbs[t0 + 1] = limbs[t0 + 1] + ns.bitwise_left_shift(c1, r)
            limbs[t0 + 2] = limbs[t0 + 2] + ns.bitwise_left_shift(c2, r)
        else:
            t0 = rel // _LIMB
            r = rel - t0 * _LIMB
            parts = [ns.bitwise_left_shift(c, r) for c in (c0, c1, c2)]
            for t in range(nlimbs):
                for j, part in enumerate(parts):
                    if t - j >= 0:
                        limbs[t] = limbs[t] + ns.where(t0 == t - j, part, 0)

    def normalise(ls: list[Any]) -> list[Any]:
        out = list(ls)
        for t in range(len(out) - 1):
            carry = ns.bitwise_right_shift(out[t], _LIMB)
            out[t] = ns.bitwise_and(out[t], mask)
            out[t + 1] = out[t + 1] + carry
        return out

    limbs = normalise(limbs)
    neg = limbs[-1] < 0
    limbs = normalise([ns.where(neg, -v, v) for v in limbs])
    lead = ns.full(shape, -1, dtype=i64)
    for t in range(nlimbs - 1, -1, -1):
        lead = ns.where((lead < 0) & (limbs[t] != 0), t, lead)
    top = zero
    for t in range(nlimbs):
        top = ns.where(lead == t, limbs[t], top)
    _, nb = ns.frexp(ns.astype(top, ns.float32))  # bit length of the leading limb (< 2**24: exact)
    ptop = lead * _LIMB + ns.astype(nb, i64) - 1  # position of the leading bit
    base = omin + shift  # absolute exponent of bit 0
    qpos = ns.maximum(ptop - 52, -1074 - base)
    # q2 = floor(V / 2**(qpos - 1)): the 53-bit result plus its rounding bit
    q2 = zero
    sticky = ns.zeros(shape, dtype=ns.bool)
    for t in range(nlimbs):
        s = t * _LIMB - (qpos - 1)
        q2 = q2 + _shift(ns, limbs[t], s)
        below = ns.clip(-s, 0, _LIMB)
        low = ns.bitwise_and(limbs[t], ns.bitwise_left_shift(ns.ones(shape, dtype=i64), below) - 1)
        sticky = sticky | (low != 0)
    half = ns.bitwise_and(q2, 1)
    q = ns.bitwise_right_shift(q2, 1)
    up = (half != 0) & (sticky | (ns.bitwise_and(q, 1) != 0))
    q = q + ns.astype(up, i64)
    q = ns.where(lead < 0, 0, q)
    e = ns.where(lead < 0, 0, qpos + base)
    e = ns.clip(e, -2000, 2000)
    val = ns.ldexp(ns.astype(q, ns.float64), ns.astype(e, ns.int32))
    return ns.where(neg, -val, val)


def _round_terms_f64(ns: Any, terms: Sequence[tuple[Any, int]], shift: Any) -> Any:
    """``sum_j X_j * 2**o_j`` (exact float64 integers, largest offset first) in double-double, scaled by ``2**shift``."""
    ordered = sorted(terms, key=lambda t: -t[1])
    x0, o0 = ordered[0]
    h = x0 * (2.0**o0)
    lo = ns.zeros_like(h)
    for x, o in ordered[1:]:
        v = x * (2.0**o)
        s = h + v
        bb = s - h
        err = (h - (s - bb)) + (v - bb)
        lo = lo + err
        h = s + lo
        lo = lo - (h - s)
    return ns.ldexp(h + lo, ns.astype(shift, ns.int32))


# --------------------------------------------------------------------------------------------
# the schemes
# --------------------------------------------------------------------------------------------
@dataclass
class _Prepared:
    """Scaled inputs and the data-dependent error-bound factors."""

    As: Any  # A with each row scaled into (-1, 1)
    Bs: Any  # B with each column scaled into (-1, 1)
    shift: Any  # int64 exponents ea_i + eb_j, in the result's shape
    K: int
    F: float  # max_ij (sA_i + sB_j) / (|As||Bs|)_ij
    G: float  # max_ij K / (|As||Bs|)_ij


def _prepare(ns: Any, kind: _Kind, a: Any, b: Any) -> _Prepared:
    K = int(a.shape[-1])
    ea = _exponents(ns, a, 1)
    eb = _exponents(ns, b, kind.b_axis)
    As = ns.ldexp(a, ns.astype(-ea[:, None], ns.int32))
    Bs = ns.ldexp(b, ns.astype(kind.expand_b(-eb), ns.int32))
    shift = kind.outer(ea, eb, lambda u, v: u + v)
    A32 = ns.astype(ns.abs(As), ns.float32)
    B32 = ns.astype(ns.abs(Bs), ns.float32)
    P = kind.contract(A32, B32)
    sA = ns.sum(A32, axis=1)
    sB = ns.sum(B32, axis=kind.b_axis)
    # float32 rounding (nonnegative terms) and underflow below 2**-100 are covered by gam.
    gam = (K + 4) * 2.0**-23 + K * 2.0**-49
    if gam >= 0.5 or K == 0:
        return _Prepared(As, Bs, shift, K, math.inf if K else 0.0, math.inf if K else 0.0)
    valid = P >= 2.0**-100
    plo = P * (1.0 - gam)
    num = kind.outer(sA, sB, lambda u, v: u + v) * (1.0 + gam)
    safe = ns.where(valid, plo, 1.0)
    Fm = ns.where(valid, num / safe, 0.0)
    Gm = ns.where(valid, K / safe, 0.0)
    F = float(ns.max(Fm)) if Fm.size else 0.0
    G = float(ns.max(Gm)) if Gm.size else 0.0
    if not bool(ns.all(valid)):
        # entries whose |A||B| is tiny or zero: exact zeros need no bits, the others all of them
        nzA = ns.astype(As != 0, ns.float32)
        nzB = ns.astype(Bs != 0, ns.float32)
        support = kind.contract(nzA, nzB)
        if bool(ns.any((~valid) & (support > 0))):
            F = G = math.inf
    return _Prepared(As, Bs, shift, K, F, G)


def _ozaki2_bits(nmod: int, K: int) -> int:
    """Largest b with ``64 K 2**(2b) <= 31 M``: then ``|A'B'| <= K 2**(2b) <= (1/2 - 2**-6) M``.

    The CRT recovers ``C' = X - q M`` from ``X = sum_i W_i r_i`` with ``q = rint(s)``,
    ``s`` an estimate of ``X / M = q + C'/M`` from the leading fixed-point parts. It is
    exact when ``|s - X/M| < 1/2 - |C'|/M``, here ``2**-6``: the float64 estimate errs by
    below ``2**-30``, the float32 one (FP64-less path, ``|X/M| <= 32 * 130 < 2**13``) by
    about ``2**-8``.
    """
    M = math.prod(MODULI[:nmod])
    x = (31 * M) // (64 * max(K, 1))
    return max((x.bit_length() - 1) // 2, 0)


def _trunc_bound(prep: _Prepared, bits: int) -> float:
    """Componentwise truncation bound (relative to |A||B|) of inputs rounded to *bits* bits."""
    return 2.0**-bits * (0.5 * prep.F + 0.75 * 2.0**-bits * prep.G)


def _bound2(prep: _Prepared, nmod: int) -> tuple[float, int]:
    bits = _ozaki2_bits(nmod, prep.K)
    return _trunc_bound(prep, bits) + _RECON, bits


def _bound1(prep: _Prepared, s: int) -> tuple[float, int]:
    bits = SLICE_BITS * s - 1
    dropped = (s - 1) * 2.0 ** (2 - SLICE_BITS * s) * prep.G if s > 1 else 0.0
    return _trunc_bound(prep, bits) + dropped + _RECON, bits


def _group_sums(ns: Any, kind: _Kind, xs: list[Any], ys: list[Any], fp64: bool) -> list[Any]:
    """Exact sums ``G_g = sum_{s+t=g} x_s . y_t`` for g = 2..S+1 (indices from 1)."""
    S = len(xs)
    K = int(xs[0].shape[-1])
    acc_dtype = ns.float64 if fp64 else ns.int64
    groups = []
    for g in range(2, S + 2):
        total = None
        for s in range(1, g):
            t = g - s
            if t > S:
                continue
            for k0 in range(0, max(K, 1), _KBLOCK_SLICES):
                xb, yb = kind.block(xs[s - 1], ys[t - 1], k0, min(k0 + _KBLOCK_SLICES, K))
                part = ns.astype(kind.contract(xb, yb), acc_dtype)
                total = part if total is None else total + part
        groups.append(total)
    return groups


def _run_ozaki1(ns: Any, kind: _Kind, prep: _Prepared, S: int, fp64: bool) -> Any:
    bits = SLICE_BITS * S - 1
    Ai = _scaled_integers(ns, prep.As, bits)
    Bi = _scaled_integers(ns, prep.Bs, bits)
    xs = _digits(ns, Ai, SLICE_BITS, S)[::-1]  # most significant slice first
    ys = _digits(ns, Bi, SLICE_BITS, S)[::-1]
    groups = _group_sums(ns, kind, xs, ys, fp64)
    terms = [(G, SLICE_BITS * (2 * S - g)) for g, G in zip(range(2, S + 2), groups)]
    shift = prep.shift - 2 * bits
    if fp64:
        return _round_terms_f64(ns, terms, shift)
    return round_terms_int(ns, terms, shift)


def _crt_weights(moduli: Sequence[int]) -> tuple[int, list[list[float]], list[int], list[float]]:
    """CRT weights ``W_i`` of *moduli* in 38-bit fixed-point parts: (M, W parts, M parts, 2**(38 j) / M)."""
    M = math.prod(moduli)
    W = [(M // m) * pow(M // m, -1, m) % M for m in moduli]
    nparts = -(-M.bit_length() // _PART_BITS)
    pmask = (1 << _PART_BITS) - 1
    wparts = [[float((w >> (_PART_BITS * j)) & pmask) for w in W] for j in range(nparts)]
    mparts = [(M >> (_PART_BITS * j)) & pmask for j in range(nparts)]
    cs = [2.0 ** (_PART_BITS * j) / M for j in range(nparts)]
    return M, wparts, mparts, cs


def _crt_f64(ns: Any, res: Any, wmat: Any, mparts: Sequence[int], cs: Sequence[float]) -> list[Any]:
    """Fixed-point parts ``D_j`` of ``C' = sum_i W_i r_i - q M`` from float32 residues (N, n), exact in float64."""
    nparts = len(mparts)
    T = wmat @ ns.astype(res, ns.float64)  # exact: |.| < 2**52
    s = sum(T[j] * cs[j] for j in range(max(nparts - 3, 0), nparts))
    q = ns.rint(s)
    D = [T[j] - q * float(mparts[j]) for j in range(nparts)]  # exact: |.| < 2**53
    # balanced carries (exact): afterwards |D_j| <= 2**37 below the top part, so the
    # leading nonzero part carries the magnitude of C' and double-double loses nothing
    unit = 2.0**_PART_BITS
    for j in range(nparts - 1):
        carry = ns.rint(D[j] * (1.0 / unit))
        D[j] = D[j] - carry * unit
        D[j + 1] = D[j + 1] + carry
    return D


def _run_ozaki2(ns: Any, kind: _Kind, prep: _Prepared, nmod: int, fp64: bool) -> Any:
    bits = _ozaki2_bits(nmod, prep.K)
    moduli = MODULI[:nmod]
    ra = _residues(ns, _scaled_integers(ns, prep.As, bits), bits, moduli, kind.f32_matmul)
    rb = _residues(ns, _scaled_integers(ns, prep.Bs, bits), bits, moduli, kind.f32_matmul)
    K = prep.K
    residues = []
    # one modulus at a time: the temporaries stay the size of one result, not N of them
    for i, m in enumerate(moduli):
        p = np.float32(m)
        inv_p = np.float32(1.0 / m)
        acc = None
        for nb, k0 in enumerate(range(0, K, _KBLOCK_RESIDUES)):
            xb, yb = kind.block(ra[i], rb[i], k0, min(k0 + _KBLOCK_RESIDUES, K))
            c = _sym_mod_owned(ns, kind.contract(xb, yb), p, inv_p)  # |c| <= p/2 + 2
            acc = c if acc is None else acc + c
            if nb % (1 << 14) == (1 << 14) - 1:  # keep |acc| < 2**22
                acc = _sym_mod_owned(ns, acc, p, inv_p)
        assert acc is not None
        # one block: |c| <= p/2 + 2 <= 130 is all the CRT needs; several: |acc| < 2**22
        residues.append(acc if nb == 0 else _sym_mod_owned(ns, acc, p, inv_p))
    out_shape = tuple(residues[0].shape)
    size = math.prod(out_shape)
    # CRT: C' = sum_i W_i r_i - q M, with W_i in 38-bit fixed-point parts (|r_i| <= 130)
    _, wparts, mparts, cs = _crt_weights(moduli)
    nparts = len(mparts)
    top = list(range(max(nparts - 3, 0), nparts))
    shift = prep.shift - 2 * bits
    if fp64:
        wmat = ns.asarray(wparts, dtype=ns.float64)
        flat = [ns.reshape(r, (size,)) for r in residues]
        if not kind.blocking or size <= _CRT_CHUNK:
            D = _crt_f64(ns, ns.stack(flat, axis=0), wmat, mparts, cs)
            terms = [(ns.reshape(D[j], out_shape), _PART_BITS * j) for j in range(nparts)]
            return _round_terms_f64(ns, terms, shift)
        # in column chunks: the float64 temporaries of the CRT and of the double-double
        # sum stay in cache instead of streaming N + several result-sized arrays
        sflat = ns.reshape(shift, (size,))
        outs = []
        for c0 in range(0, size, _CRT_CHUNK):
            c1 = min(c0 + _CRT_CHUNK, size)
            D = _crt_f64(ns, ns.stack([r[c0:c1] for r in flat], axis=0), wmat, mparts, cs)
            terms = [(D[j], _PART_BITS * j) for j in range(nparts)]
            outs.append(_round_terms_f64(ns, terms, sflat[c0:c1]))
        return ns.reshape(ns.concat(outs, axis=0), out_shape)
    res = ns.reshape(ns.stack(residues, axis=0), (nmod, size))
    Wi = ns.asarray([[int(v) for v in row] for row in wparts], dtype=ns.int64)
    T = ns.matmul(Wi, ns.astype(res, ns.int64))  # exact int64
    s32 = sum(ns.astype(T[j], ns.float32) * np.float32(cs[j]) for j in top if cs[j] > 2.0**-120)
    q = ns.astype(ns.rint(s32), ns.int64)
    iterms = [(ns.reshape(T[j] - q * mparts[j], out_shape), _PART_BITS * j) for j in range(nparts)]
    return round_terms_int(ns, iterms, shift)


# --------------------------------------------------------------------------------------------
# selection and the entry point
# --------------------------------------------------------------------------------------------
def _native_bits(K: int) -> tuple[float, int]:
    bound = max(K, 1) * U / (1 - max(K, 1) * U) if K * U < 0.5 else 1.0
    return bound, max(int(math.floor(-math.log2(bound))), 0)


def _bits_from_bound(bound: float) -> int:
    """``floor(-log2(bound))``, at most 53; negative when the bound exceeds 1, 0 when there is none."""
    if bound <= 0:
        return 53
    if not math.isfinite(bound):
        return 0
    return min(int(math.floor(-math.log2(bound))), 53)


def _choose(
    prep: _Prepared, method: str, tol: float | None, slices: int | None, allow_native: bool
) -> tuple[str, int]:
    """Method and slice/modulus count for the requested accuracy."""
    budget = U / 2 if tol is None or tol <= 2 * U else tol - U
    if slices is not None:
        return ("ozaki2" if method == "auto" else method), slices
    cand: list[tuple[float, str, int]] = []
    if method in ("auto", "ozaki2"):
        for n in range(2, MAX_MODULI + 1):
            if _bound2(prep, n)[0] <= budget:
                cand.append((n + 1.5, "ozaki2", n))
                break
    if method in ("auto", "ozaki1"):
        for s in range(1, MAX_SLICES + 1):
            if _bound1(prep, s)[0] <= budget:
                cand.append((s * (s + 1) / 2, "ozaki1", s))
                break
    if cand:
        _, m, n = min(cand)
        return m, n
    if allow_native and method == "auto":
        return "native", 0
    return (method if method != "auto" else "ozaki2"), (
        MAX_SLICES if method == "ozaki1" else MAX_MODULI
    )


def _nonfinite_pattern(ns: Any, kind: _Kind, a: Any, b: Any) -> Any:
    """IEEE inf/nan pattern of the product, from a float32 product of proxies (finite -> sign)."""
    pa = ns.astype(ns.where(ns.isfinite(a), ns.sign(a), a), ns.float32)
    pb = ns.astype(ns.where(ns.isfinite(b), ns.sign(b), b), ns.float32)
    return ns.astype(kind.contract(pa, pb), ns.float64)


def emulate(
    ns: Any,
    a: Any,
    b: Any,
    *,
    kind: str = "mm",
    fp64: bool = True,
    method: str = "auto",
    tol: float | None = None,
    slices: int | None = None,
    allow_native: bool = True,
    device: str = "",
) -> tuple[Any, EmulationInfo]:
    """Emulated float64 product of native float64 arrays *a* and *b* on namespace *ns*.

    ``kind="mm"``: ``a`` (R, K) @ ``b`` (K, C). ``kind="dot"``: row-wise dot products of
    ``a`` and ``b``, both (R, K). ``fp64`` selects the float64 accumulator (devices with
    FP64) or the int64 one (devices without).
    """
    if method not in ("auto", "ozaki1", "ozaki2", "native"):
        raise InvalidArgumentError(
            f"hpcai.precision.matmul: method must be 'auto', 'ozaki1', 'ozaki2' or 'native', got {method!r}"
        )
    if slices is not None and (
        not isinstance(slices, int) or isinstance(slices, bool) or slices < 1
    ):
        raise InvalidArgumentError(
            f"hpcai.precision.matmul: slices must be a positive int, got {slices!r}"
        )
    if method == "ozaki1" and slices is not None and slices > MAX_SLICES:
        raise InvalidArgumentError(
            f"hpcai.precision.matmul: at most {MAX_SLICES} slices, got {slices}"
        )
    if method == "ozaki2" and slices is not None and not 2 <= slices <= MAX_MODULI:
        raise InvalidArgumentError(
            f"hpcai.precision.matmul: between 2 and {MAX_MODULI} moduli, got {slices}"
        )
    if tol is not None and not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise InvalidArgumentError(
            f"hpcai.precision.matmul: tol must be a number in (0, 1), got {tol!r}"
        )
    k_ = _Kind(ns, kind, _backend_of(device))
    K = int(a.shape[-1])
    acc = "float64" if fp64 else "int64"
    if method == "native":
        if not allow_native:
            raise UnsupportedDtypeError(
                f"hpcai.precision.matmul: method='native' needs native FP64, which {device or 'this device'} lacks; "
                "use method='auto', 'ozaki1' or 'ozaki2'"
            )
        bound, bits = _native_bits(K)
        out = ns.matmul(a, b) if kind == "mm" else ns.sum(a * b, axis=-1)
        return out, EmulationInfo("native", 0, bits, bound, 1, "float64", "float64", device)
    if K == 0 or a.shape[0] == 0 or b.shape[1 - k_.b_axis] == 0:
        shape = (a.shape[0], b.shape[1]) if kind == "mm" else (a.shape[0],)
        return ns.zeros(shape, dtype=ns.float64), EmulationInfo(
            method if method != "auto" else "ozaki2", 0, 53, 0.0, 0, "float32", acc, device
        )
    finite = bool(ns.all(ns.isfinite(a))) and bool(ns.all(ns.isfinite(b)))
    pattern = None
    if not finite:
        pattern = _nonfinite_pattern(ns, k_, a, b)
        a = ns.where(ns.isfinite(a), a, 0.0)
        b = ns.where(ns.isfinite(b), b, 0.0)
    prep = _prepare(ns, k_, a, b)
    m, n = _choose(prep, method, tol, slices, allow_native)
    if m == "native":
        bound, bits = _native_bits(K)
        out = ns.matmul(a, b) if kind == "mm" else ns.sum(a * b, axis=-1)
        info = EmulationInfo("native", 0, bits, bound, 1, "float64", "float64", device)
    elif m == "ozaki1":
        out = _run_ozaki1(ns, k_, prep, n, fp64)
        bound = _bound1(prep, n)[0] + U
        nprod = n * (n + 1) // 2
        info = EmulationInfo(
            "ozaki1", n, _bits_from_bound(bound), bound, nprod, "float32", acc, device
        )
    else:
        out = _run_ozaki2(ns, k_, prep, n, fp64)
        bound = _bound2(prep, n)[0] + U
        info = EmulationInfo("ozaki2", n, _bits_from_bound(bound), bound, n, "float32", acc, device)
    if pattern is not None:
        out = ns.where(ns.isfinite(pattern), out, pattern)
    return out, info


# --------------------------------------------------------------------------------------------
# exact elementwise float64 arithmetic from integers (FP64-less devices)
# --------------------------------------------------------------------------------------------
def _decode(ns: Any, x: Any) -> tuple[Any, Any]:
    """``x = m * 2**e`` with int64 ``|m| < 2**53`` (exact; zeros give m = 0)."""
    f, e = ns.frexp(x)
    m = ns.astype(ns.ldexp(f, 53), ns.int64)
    return m, ns.astype(e, ns.int64) - 53


def _special(ns: Any, x: Any, y: Any, op: Callable[[Any, Any], Any]) -> tuple[Any, Any]:
    """IEEE result of *op* where an operand is zero or not finite, from float32 sign proxies."""
    px = ns.astype(ns.where(ns.isfinite(x), ns.sign(x), x), ns.float32)
    py = ns.astype(ns.where(ns.isfinite(y), ns.sign(y), y), ns.float32)
    mask = ~(ns.isfinite(x) & ns.isfinite(y)) | (x == 0) | (y == 0)
    return mask, ns.astype(op(px, py), ns.float64)


def exact_add(ns: Any, x: Any, y: Any) -> Any:
    """``x + y`` correctly rounded, from int64 arithmetic on the decoded operands."""
    x, y = ns.broadcast_arrays(ns.astype(x, ns.float64), ns.astype(y, ns.float64))
    mx, ex = _decode(ns, x)
    my, ey = _decode(ns, y)
    # an operand below a quarter ulp of the other cannot change the rounded sum
    xz, yz = mx == 0, my == 0
    drop_y = (~xz) & (ey <= ex - 55)
    drop_x = (~yz) & (ex <= ey - 55)
    my = ns.where(drop_y, 0, my)
    mx = ns.where(drop_x, 0, mx)
    ey = ns.where(yz | drop_y, ex, ey)
    ex = ns.where(xz | drop_x, ey, ex)
    out = round_terms_int(ns, [(mx, ex), (my, ey)])
    fx = ns.astype(x, ns.float32)
    fy = ns.astype(y, ns.float32)
    spec = ~(ns.isfinite(x) & ns.isfinite(y))
    both0 = (x == 0) & (y == 0)
    out = ns.where(both0, ns.astype(fx + fy, ns.float64), out)
    pat = ns.astype(ns.where(ns.isfinite(x), 0, fx) + ns.where(ns.isfinite(y), 0, fy), ns.float64)
    return ns.where(spec, pat, out)


def _product_terms(ns: Any, mx: Any, ex: Any, my: Any, ey: Any) -> list[tuple[Any, Any]]:
    """Exact ``mx*2**ex * my*2**ey`` as five int64 terms of 18-bit chunk products."""
    sign = ns.where((mx < 0) != (my < 0), -1, 1)
    ax, ay = ns.abs(mx), ns.abs(my)
    m18 = (1 << 18) - 1
    cx = [ns.bitwise_and(ns.bitwise_right_shift(ax, 18 * i), m18) for i in range(3)]
    cy = [ns.bitwise_and(ns.bitwise_right_shift(ay, 18 * i), m18) for i in range(3)]
    terms = []
    for g in range(5):
        acc = None
        for i in range(3):
            j = g - i
            if 0 <= j < 3:
                p = cx[i] * cy[j]
                acc = p if acc is None else acc + p
        terms.append((sign * acc, ex + ey + 18 * g))
    return terms


def exact_multiply(ns: Any, x: Any, y: Any) -> Any:
    """``x * y`` correctly rounded: exact 106-bit product from 18-bit integer chunks, one rounding."""
    x, y = ns.broadcast_arrays(ns.astype(x, ns.float64), ns.astype(y, ns.float64))
    mx, ex = _decode(ns, x)
    my, ey = _decode(ns, y)
    out = round_terms_int(ns, _product_terms(ns, mx, ex, my, ey))
    mask, spec = _special(ns, x, y, lambda u, v: u * v)
    return ns.where(mask, spec, out)


def _fma_residual(ns: Any, a: Any, b: Any, c: Any) -> Any:
    """``a - b * c`` rounded once to float64 (the exact residual of a Newton step)."""
    ma, ea = _decode(ns, a)
    mb, eb = _decode(ns, b)
    mc, ec = _decode(ns, c)
    terms = [(ma, ea)] + [(-x, o) for x, o in _product_terms(ns, mb, eb, mc, ec)]
    return round_terms_int(ns, terms)


def exact_divide(ns: Any, x: Any, y: Any) -> Any:
    """``x / y`` faithfully rounded: a float32 quotient refined by two exact-residual Newton steps."""
    x, y = ns.broadcast_arrays(ns.astype(x, ns.float64), ns.astype(y, ns.float64))
    mask, spec = _special(ns, x, y, lambda u, v: u / v)
    xs = ns.where(mask, 1.0, x)
    ys = ns.where(mask, 1.0, y)
    fx, ex = ns.frexp(xs)
    fy, ey = ns.frexp(ys)
    fy32 = ns.astype(fy, ns.float32)
    q = ns.astype(ns.astype(fx, ns.float32) / fy32, ns.float64)
    for _ in range(2):
        r = _fma_residual(ns, fx, fy, q)
        q = exact_add(ns, q, ns.astype(ns.astype(r, ns.float32) / fy32, ns.float64))
    out = ns.ldexp(q, ns.astype(ex, ns.int32) - ns.astype(ey, ns.int32))
    return ns.where(mask, spec, out)


def exact_sqrt(ns: Any, x: Any) -> Any:
    """``sqrt(x)`` faithfully rounded: a float32 root refined by two exact-residual Newton steps."""
    x = ns.astype(x, ns.float64)
    ok = ns.isfinite(x) & (x > 0)
    xs = ns.where(ok, x, 1.0)
    f, e = ns.frexp(xs)
    e = ns.astype(e, ns.int64)
    odd = ns.bitwise_and(e, 1) != 0
    f = ns.where(odd, ns.ldexp(f, -1), f)  # f in [0.25, 1), e even
    e = ns.where(odd, e + 1, e)
    y = ns.astype(ns.sqrt(ns.astype(f, ns.float32)), ns.float64)
    for _ in range(2):
        r = _fma_residual(ns, f, y, y)
        y = exact_add(
            ns, y, ns.astype(ns.astype(r, ns.float32) / (2 * ns.astype(y, ns.float32)), ns.float64)
        )
    out = ns.ldexp(y, ns.astype(e // 2, ns.int32))
    spec = ns.astype(ns.sqrt(ns.astype(x, ns.float32)), ns.float64)
    return ns.where(ok, out, spec)


# --------------------------------------------------------------------------------------------
# N-d products on top of the 2-d kernels
# --------------------------------------------------------------------------------------------
def _merge_infos(infos: list[EmulationInfo], device: str) -> EmulationInfo:
    if not infos:
        return EmulationInfo("ozaki2", 0, 53, 0.0, 0, "float32", "float64", device)
    worst = max(infos, key=lambda i: i.error_bound)
    return EmulationInfo(
        worst.method,
        max(i.slices for i in infos),
        min(i.bits_retained for i in infos),
        worst.error_bound,
        sum(i.products for i in infos),
        worst.product_dtype,
        worst.accumulation,
        device,
    )


def _complex_split(
    ns: Any,
    a: Any,
    b: Any,
    run: Callable[[Any, Any], tuple[Any, EmulationInfo]],
    axis_a: int,
    axis_b: int,
) -> tuple[Any, EmulationInfo]:
    """A complex product as two real ones with the contracted axis doubled (exact, no extra rounding)."""
    ar, ai = ns.real(a), ns.imag(a)
    br, bi = ns.real(b), ns.imag(b)
    re, i1 = run(ns.concat([ar, -ai], axis=axis_a), ns.concat([br, bi], axis=axis_b))
    im, i2 = run(ns.concat([ar, ai], axis=axis_a), ns.concat([bi, br], axis=axis_b))
    out = ns.astype(re, ns.complex128) + ns.astype(im, ns.complex128) * 1j
    return out, _merge_infos([i1, i2], i1.device)


def emulate_matmul(ns: Any, a: Any, b: Any, **kw: Any) -> tuple[Any, EmulationInfo]:
    """``a @ b`` with NumPy's matmul rules (1-d operands, broadcast stacks), emulated."""
    if a.dtype.kind == "c" or b.dtype.kind == "c":
        a = ns.astype(a, ns.complex128)
        b = ns.astype(b, ns.complex128)
        return _complex_split(
            ns, a, b, lambda x, y: emulate_matmul(ns, x, y, **kw), -1, -2 if b.ndim > 1 else -1
        )
    a = ns.astype(a, ns.float64)
    b = ns.astype(b, ns.float64)
    if a.ndim == 0 or b.ndim == 0:
        raise InvalidArgumentError("matmul: operands must have at least one dimension")
    va, vb = a.ndim == 1, b.ndim == 1
    a2 = a[None, :] if va else a
    b2 = b[:, None] if vb else b
    if a2.shape[-1] != b2.shape[-2]:
        raise InvalidArgumentError(
            f"matmul: contracted dimensions differ: {tuple(a.shape)} @ {tuple(b.shape)}"
        )
    if b2.ndim == 2:
        # row scaling is per row, so a stack of A against one B is one tall product
        lead = tuple(a2.shape[:-2])
        m, k = a2.shape[-2:]
        out, info = emulate(ns, ns.reshape(a2, (math.prod(lead) * m, k)), b2, kind="mm", **kw)
        out = ns.reshape(out, (*lead, m, b2.shape[-1]))
    else:
        batch = np.broadcast_shapes(tuple(a2.shape[:-2]), tuple(b2.shape[:-2]))
        A = ns.broadcast_to(a2, (*batch, *a2.shape[-2:]))
        B = ns.broadcast_to(b2, (*batch, *b2.shape[-2:]))
        outs, infos = [], []
        for idx in np.ndindex(*batch):
            o, i = emulate(ns, A[idx], B[idx], kind="mm", **kw)
            outs.append(o)
            infos.append(i)
        shape = (*batch, a2.shape[-2], b2.shape[-1])
        out = (
            ns.reshape(ns.stack(outs, axis=0), shape) if outs else ns.zeros(shape, dtype=ns.float64)
        )
        info = _merge_infos(infos, kw.get("device", ""))
    if va:
        out = out[..., 0, :]
    if vb:
        out = out[..., 0]
    return out, info


def emulate_vecdot(ns: Any, a: Any, b: Any, axis: int = -1, **kw: Any) -> tuple[Any, EmulationInfo]:
    """``vecdot(a, b, axis)`` (conjugating *a*), emulated as row-wise dot products."""
    if a.dtype.kind == "c" or b.dtype.kind == "c":
        a = ns.conj(ns.astype(a, ns.complex128))
        b = ns.astype(b, ns.complex128)
        return _cvecdot(ns, a, b, axis, **kw)
    a = ns.moveaxis(ns.astype(a, ns.float64), axis, -1)
    b = ns.moveaxis(ns.astype(b, ns.float64), axis, -1)
    a, b = ns.broadcast_arrays(a, b)
    lead = tuple(a.shape[:-1])
    k = a.shape[-1]
    out, info = emulate(
        ns,
        ns.reshape(a, (math.prod(lead), k)),
        ns.reshape(b, (math.prod(lead), k)),
        kind="dot",
        **kw,
    )
    return ns.reshape(out, lead), info


def _cvecdot(ns: Any, a: Any, b: Any, axis: int, **kw: Any) -> tuple[Any, EmulationInfo]:
    """Complex vecdot of already-conjugated *a* with *b* as two real row-wise dots."""
    a = ns.moveaxis(a, axis, -1)
    b = ns.moveaxis(b, axis, -1)
    a, b = ns.broadcast_arrays(a, b)

    def run(x: Any, y: Any) -> tuple[Any, EmulationInfo]:
        return emulate_vecdot(ns, x, y, -1, **kw)

    return _complex_split(ns, a, b, run, -1, -1)


def emulate_sum(
    ns: Any, x: Any, axis: Any = None, keepdims: bool = False, **kw: Any
) -> tuple[Any, EmulationInfo]:
    """``sum(x, axis)`` of float64 *x* as emulated dot products with ones."""
    x = ns.astype(x, ns.float64)
    nd = x.ndim
    axes = tuple(range(nd)) if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
    axes = tuple(sorted(a % nd for a in axes)) if nd else ()
    keep = [d for d in range(nd) if d not in axes]
    xt = ns.permute_dims(x, (*keep, *axes))
    lead = tuple(x.shape[d] for d in keep)
    k = math.prod(x.shape[d] for d in axes)
    rows = ns.reshape(xt, (math.prod(lead), k))
    out, info = emulate(ns, rows, ns.ones_like(rows), kind="dot", **kw)
    out = ns.reshape(out, lead)
    if keepdims:
        out = ns.reshape(out, tuple(1 if d in axes else x.shape[d] for d in range(nd)))
    return out, info


# --------------------------------------------------------------------------------------------
# float64 storage on devices without FP64 (precision = "emulate")
# --------------------------------------------------------------------------------------------
#: Operations that are exact on any float64 input (sign, comparisons, rounding to integers,
#: exponent manipulation): FP64-less hardware performs them with integer instructions.
_EXACT_UFUNCS = frozenset(
    {
        "negative",
        "positive",
        "absolute",
        "fabs",
        "sign",
        "signbit",
        "copysign",
        "conjugate",
        "equal",
        "not_equal",
        "less",
        "less_equal",
        "greater",
        "greater_equal",
        "maximum",
        "minimum",
        "fmax",
        "fmin",
        "isfinite",
        "isinf",
        "isnan",
        "floor",
        "ceil",
        "trunc",
        "rint",
        "frexp",
        "ldexp",
        "logical_and",
        "logical_or",
        "logical_xor",
        "logical_not",
    }
)
#: Arithmetic that is emulated from exact integer / float32 operations.
EMULATED_OPS = (
    "matmul",
    "tensordot",
    "vecdot",
    "linalg.matmul",
    "add",
    "subtract",
    "multiply",
    "divide",
    "sqrt",
    "sum",
    "mean",
)
_DENIED_FUNCTIONS = frozenset(
    {"einsum", "einsum_path", "convolve", "correlate", "interp", "polyval", "cumsum", "cumprod"}
)


def _compat_ns() -> Any:
    import array_api_compat.numpy as compat_np

    return compat_np


def _plain(x: Any) -> Any:
    return x.view(np.ndarray) if isinstance(x, FP64Guard) else x


def _unsupported(op: str, device: str) -> UnsupportedDtypeError:
    return UnsupportedDtypeError(
        f"{op} on float64 is not available on {device or 'this device'}: it has no native FP64 and its precision "
        f"policy 'emulate' covers {', '.join(EMULATED_OPS)}. Cast first (xp.astype(x, xp.float32)), move the data "
        "to a device with FP64 (x.to_device('numpy:cpu')), or use a device whose [devices] precision is 'native'"
    )


class FP64Guard(np.ndarray):
    """float64/complex128 data on an emulated device without FP64 under ``precision = "emulate"``.

    A NumPy array subclass that intercepts every ufunc and array function: exact
    operations and data movement run as usual; matrix products, ``vecdot``, sums and the
    four arithmetic operations and ``sqrt`` are emulated from float32 products and int64
    arithmetic; everything else raises :class:`~hpcai.errors.UnsupportedDtypeError`
    naming the operation. Host copies (``to_host``) are plain arrays again.
    """

    _hpcai_device: str = ""

    def __array_finalize__(self, obj: Any) -> None:
        self._hpcai_device = getattr(obj, "_hpcai_device", "")

    def _guarded(self, result: Any) -> Any:
        if (
            isinstance(result, np.ndarray)
            and result.dtype.kind in "fc"
            and result.dtype.itemsize >= 8
        ):
            g = np.asarray(result).view(FP64Guard)
            g._hpcai_device = self._hpcai_device
            return g
        return result

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        dev = self._hpcai_device
        out = kwargs.pop("out", None)
        args = [_plain(x) for x in inputs]
        name = ufunc.__name__
        wide = any(np.result_type(x).kind in "fc" and np.result_type(x).itemsize >= 8 for x in args)
        ns = _compat_ns()
        if not wide or (name in _EXACT_UFUNCS and method in ("__call__", "reduce")):
            result = getattr(ufunc, method)(*args, **kwargs)
        elif method == "__call__" and name in (
            "add",
            "subtract",
            "multiply",
            "true_divide",
            "divide",
            "sqrt",
            "square",
            "reciprocal",
            "matmul",
            "vecdot",
        ):
            complex_in = any(np.result_type(x).kind == "c" for x in args)
            if complex_in and name not in ("add", "subtract", "matmul", "vecdot"):
                raise _unsupported(f"{name} (complex128)", dev)
            if kwargs.get("dtype") is not None or kwargs.get("where", True) is not True:
                raise _unsupported(f"{name} with dtype=/where=", dev)
            if name == "add":
                result = _complex_or(ns, args, exact_add)
            elif name == "subtract":
                result = _complex_or(ns, [args[0], np.negative(np.asarray(args[1]))], exact_add)
            elif name == "multiply":
                result = exact_multiply(ns, np.asarray(args[0]), np.asarray(args[1]))
            elif name == "square":
                result = exact_multiply(ns, np.asarray(args[0]), np.asarray(args[0]))
            elif name in ("true_divide", "divide"):
                result = exact_divide(ns, np.asarray(args[0]), np.asarray(args[1]))
            elif name == "reciprocal":
                result = exact_divide(
                    ns, np.ones_like(args[0], dtype=np.float64), np.asarray(args[0])
                )
            elif name == "sqrt":
                result = exact_sqrt(ns, np.asarray(args[0]))
            elif name == "matmul":
                result = emulate_matmul(
                    ns,
                    np.asarray(args[0]),
                    np.asarray(args[1]),
                    fp64=False,
                    allow_native=False,
                    device=dev,
                )[0]
            else:
                axis = kwargs.get("axis", -1)
                if "axes" in kwargs:
                    raise _unsupported("vecdot with axes=", dev)
                result = emulate_vecdot(
                    ns,
                    np.asarray(args[0]),
                    np.asarray(args[1]),
                    axis,
                    fp64=False,
                    allow_native=False,
                    device=dev,
                )[0]
        elif (
            name == "add"
            and method == "reduce"
            and not any(np.result_type(x).kind == "c" for x in args)
        ):
            x = np.asarray(args[0])
            if kwargs.get("where", True) is not True or kwargs.get("initial", None) not in (
                None,
                0,
                0.0,
            ):
                raise _unsupported("sum with where=/initial=", dev)
            axis = kwargs.get("axis", 0)
            result = emulate_sum(
                ns,
                x,
                axis,
                bool(kwargs.get("keepdims", False)),
                fp64=False,
                allow_native=False,
                device=dev,
            )[0]
            dt = kwargs.get("dtype")
            if dt is not None:
                result = result.astype(dt)
        else:
            op = name if method == "__call__" else f"{name}.{method}"
            raise _unsupported(
                {
                    "add.reduce": "sum",
                    "multiply.reduce": "prod",
                    "add.accumulate": "cumulative_sum",
                }.get(op, op),
                dev,
            )
        if out is not None:
            target = out[0] if isinstance(out, tuple) else out
            _plain(target)[...] = result
            return target
        if isinstance(result, tuple):
            return tuple(self._guarded(r) for r in result)
        return self._guarded(result)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        name = func.__name__
        module = getattr(func, "__module__", "") or ""
        dev = self._hpcai_device
        if name in ("dot", "inner", "vdot") and module == "numpy":
            a, b = (np.asarray(_plain(x)) for x in args[:2])
            if name == "vdot":
                r = emulate_vecdot(
                    _compat_ns(),
                    a.ravel(),
                    b.ravel(),
                    -1,
                    fp64=False,
                    allow_native=False,
                    device=dev,
                )[0]
            elif name == "inner" or a.ndim <= 1 or b.ndim <= 1:
                bb = b if name == "inner" or b.ndim == 1 else np.moveaxis(b, -2, -1)
                if a.ndim == 0 or bb.ndim == 0:
                    r = exact_multiply(_compat_ns(), a, bb)
                elif a.ndim == 1 and bb.ndim == 1:
                    r = emulate_vecdot(
                        _compat_ns(), a, bb, -1, fp64=False, allow_native=False, device=dev
                    )[0]
                else:
                    r = emulate_matmul(
                        _compat_ns(),
                        a.reshape(-1, a.shape[-1]),
                        bb.reshape(-1, bb.shape[-1]).T,
                        fp64=False,
                        allow_native=False,
                        device=dev,
                    )[0]
                    r = r.reshape(*a.shape[:-1], *bb.shape[:-1])
            elif b.ndim == 2:
                r = emulate_matmul(_compat_ns(), a, b, fp64=False, allow_native=False, device=dev)[
                    0
                ]
            else:
                raise _unsupported(f"{name} of {a.ndim}-d and {b.ndim}-d arrays (use matmul)", dev)
            return self._guarded(np.asarray(r))
        if name in _DENIED_FUNCTIONS or module.startswith(("numpy.linalg", "numpy.fft")):
            raise _unsupported(f"{module.replace('numpy', 'xp')}.{name}", dev)
        return super().__array_function__(func, types, args, kwargs)


def _complex_or(ns: Any, args: Sequence[Any], real_op: Callable[[Any, Any, Any], Any]) -> Any:
    """Apply an exact real binary op, componentwise for complex operands (add/subtract)."""
    a, b = (np.asarray(x) for x in args)
    if a.dtype.kind == "c" or b.dtype.kind == "c":
        re = real_op(ns, np.real(a), np.real(b))
        im = real_op(ns, np.imag(a), np.imag(b))
        out = np.empty(re.shape, dtype=np.complex128)
        out.real = re
        out.imag = im
        return out
    return real_op(ns, a, b)


def guard(native: np.ndarray, device: str) -> FP64Guard:
    """View float64/complex128 *native* as FP64-guarded storage of *device*."""
    g = native.view(FP64Guard)
    g._hpcai_device = device
    return g
