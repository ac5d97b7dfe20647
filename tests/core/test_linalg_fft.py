"""Linear algebra (main namespace and ``xp.linalg``) and ``xp.fft``, on every device, against NumPy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hpcai as xp
from hpcai.errors import (
    AxisError,
    DeviceMismatchError,
    DTypeError,
    ForeignArrayError,
    InvalidArgumentError,
    LinAlgError,
    ShapeError,
)
from hpcai.testing import to_numpy

RNG = np.random.default_rng(2024)

SPEC_LINALG = [
    "cholesky", "cross", "det", "diagonal", "eigh", "eigvalsh", "inv", "matmul", "matrix_norm",
    "matrix_power", "matrix_rank", "matrix_transpose", "outer", "pinv", "qr", "slogdet", "solve",
    "svd", "svdvals", "tensordot", "trace", "vecdot", "vector_norm",
]  # fmt: skip
SPEC_FFT = [
    "fft", "ifft", "fftn", "ifftn", "rfft", "irfft", "rfftn", "irfftn", "hfft", "ihfft",
    "fftfreq", "rfftfreq", "fftshift", "ifftshift",
]  # fmt: skip


def other_device(device: str) -> str:
    return "emulated:1" if device != "emulated:1" else "numpy:cpu"


def arr(a: Any, device: str, tag: str | None = None) -> xp.Array:
    return xp.asarray(a, device=device, tags={"origin": tag} if tag else None)


def assert_same(r: xp.Array, expected: Any, device: str, dtype: Any = None, **tol: Any) -> None:
    """*r* lives on *device*, has *dtype* (default: expected's) and equals *expected*."""
    assert isinstance(r, xp.Array)
    assert str(r.device) == device
    assert r.dtype == (np.dtype(dtype) if dtype is not None else np.asarray(expected).dtype)
    got = to_numpy(r)
    assert got.shape == np.shape(expected)
    tol.setdefault("rtol", 1e-10 if r.dtype in (xp.float64, xp.complex128) else 1e-4)
    tol.setdefault("atol", 1e-10 if r.dtype in (xp.float64, xp.complex128) else 1e-5)
    np.testing.assert_allclose(got, expected, **tol)


def spd(n: int, batch: tuple[int, ...] = (), dtype: str = "float64") -> np.ndarray:
    """A (stack of) well-conditioned symmetric positive-definite matrices."""
    m = RNG.standard_normal((*batch, n, n))
    return (m @ np.swapaxes(m, -1, -2) + n * np.eye(n)).astype(dtype)


# --------------------------------------------------------------------------------------------
# namespace shape
# --------------------------------------------------------------------------------------------
def test_extension_namespaces_list_the_spec_functions() -> None:
    assert set(SPEC_LINALG) <= set(xp.linalg.__all__)
    assert set(SPEC_FFT) == set(xp.fft.__all__)
    for name in SPEC_LINALG:
        assert callable(getattr(xp.linalg, name)), name
    for name in SPEC_FFT:
        assert callable(getattr(xp.fft, name)), name
    assert xp.linalg.matmul is xp.matmul and xp.linalg.vecdot is xp.vecdot
    assert xp.linalg.tensordot is xp.tensordot and xp.linalg.matrix_transpose is xp.matrix_transpose
    for name in ("matmul", "matrix_transpose", "tensordot", "vecdot"):
        assert name in xp.__all__


# --------------------------------------------------------------------------------------------
# matmul, matrix_transpose, tensordot, vecdot
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("s1", "s2"),
    [
        ((3, 4), (4, 2)),
        ((4,), (4, 2)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((2, 1, 3, 4), (5, 4, 2)),
        ((5, 3, 4), (4, 6)),
    ],
)
def test_matmul_matches_numpy(device: str, s1: tuple[int, ...], s2: tuple[int, ...]) -> None:
    a = RNG.standard_normal(s1)
    b = RNG.standard_normal(s2)
    x, y = arr(a, device), arr(b, device)
    assert_same(x @ y, a @ b, device)
    assert_same(xp.matmul(x, y), a @ b, device)
    assert_same(xp.linalg.matmul(x, y), a @ b, device)


def test_matmul_dtypes_and_inplace(device: str) -> None:
    a = RNG.integers(-3, 3, (2, 3)).astype(np.int32)
    b = RNG.integers(-3, 3, (3, 2)).astype(np.int32)
    assert_same(arr(a, device) @ arr(b, device), a @ b, device, "int32")
    f = RNG.standard_normal((2, 2)).astype(np.float32)
    assert_same(arr(f, device) @ arr(f, device), f @ f, device, "float32")
    c = (RNG.standard_normal((2, 2)) + 1j).astype(np.complex64)
    assert_same(arr(c, device) @ arr(c, device), c @ c, device, "complex64")
    z = arr(f, device)
    z @= arr(np.eye(2, dtype=np.float32), device)
    assert_same(z, f, device, "float32")


def test_matmul_errors(device: str) -> None:
    x = arr(np.ones((2, 3)), device)
    with pytest.raises(ShapeError, match=r"xp.matmul: shapes \(2, 3\) and \(2, 3\) do not align"):
        x @ x
    with pytest.raises(ShapeError, match="at least one dimension"):
        xp.matmul(arr(np.float64(1.0), device), x)
    with pytest.raises(ShapeError, match="batch dimensions"):
        arr(np.ones((2, 2, 3)), device) @ arr(np.ones((3, 3, 2)), device)
    with pytest.raises(DTypeError, match="x1 must have a numeric dtype, got bool"):
        arr(np.ones((2, 2), bool), device) @ arr(np.ones((2, 2)), device)
    with pytest.raises(DTypeError, match="not defined for Python scalars"):
        x @ 2  # type: ignore[operator]
    with pytest.raises(DeviceMismatchError, match=other_device(device)):
        x @ arr(np.ones((3, 2)), other_device(device))
    with pytest.raises(ForeignArrayError):
        xp.matmul(x, np.ones((3, 2)))  # type: ignore[arg-type]


def test_matrix_transpose(device: str) -> None:
    a = RNG.standard_normal((2, 3, 4))
    assert_same(xp.matrix_transpose(arr(a, device)), np.swapaxes(a, -1, -2), device)
    assert_same(xp.linalg.matrix_transpose(arr(a[0], device)), a[0].T, device)
    with pytest.raises(ShapeError, match="at least 2 dimensions"):
        xp.matrix_transpose(arr(np.ones(3), device))


def test_tensordot(device: str) -> None:
    a = RNG.standard_normal((2, 3, 4))
    b = RNG.standard_normal((3, 4, 5))
    x, y = arr(a, device), arr(b, device)
    assert_same(xp.tensordot(x, y), np.tensordot(a, b), device)
    assert_same(xp.tensordot(x, y, axes=0), np.tensordot(a, b, axes=0), device)
    assert_same(
        xp.tensordot(x, y, axes=([1, 2], [0, 1])), np.tensordot(a, b, axes=([1, 2], [0, 1])), device
    )
    assert_same(
        xp.tensordot(x, y, axes=((-2,), (-3,))), np.tensordot(a, b, axes=((1,), (0,))), device
    )
    with pytest.raises(ShapeError, match="contracted axes differ in size"):
        xp.tensordot(x, y, axes=([0], [0]))
    with pytest.raises(InvalidArgumentError, match="non-negative"):
        xp.tensordot(x, y, axes=-1)
    with pytest.raises(AxisError):
        xp.tensordot(x, y, axes=([5], [0]))
    with pytest.raises(DTypeError):
        xp.tensordot(arr(np.ones((2, 2), bool), device), arr(np.ones((2, 2)), device))


def test_vecdot(device: str) -> None:
    a = RNG.standard_normal((4, 3)) + 1j * RNG.standard_normal((4, 3))
    b = RNG.standard_normal((3,)) + 1j * RNG.standard_normal((3,))
    x, y = arr(a, device), arr(b, device)
    assert_same(xp.vecdot(x, y), np.sum(np.conj(a) * b, axis=-1), device)
    r = RNG.standard_normal((4, 3))
    assert_same(xp.vecdot(arr(r, device), arr(r, device), axis=0), np.sum(r * r, axis=0), device)
    assert_same(
        xp.linalg.vecdot(arr(r, device), arr(r, device), axis=-2), np.sum(r * r, axis=0), device
    )
    with pytest.raises(ShapeError, match="x1 has 3 elements along axis -1, x2 has 2"):
        xp.vecdot(x, arr(np.ones(2), device))
    with pytest.raises(AxisError, match=r"use a negative axis in \[-1, -1\]"):
        xp.vecdot(x, y, axis=-2)


# --------------------------------------------------------------------------------------------
# xp.linalg: decompositions
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
def test_cholesky_eigh_dtypes_and_values(device: str, dtype: str) -> None:
    a = spd(4, (2,), "float64")
    if dtype.startswith("complex"):
        r = RNG.standard_normal((2, 4, 4))
        a = a + 0.1j * (r - np.swapaxes(r, -1, -2))  # i * antisymmetric is Hermitian: still HPD
    a = a.astype(dtype)
    real = {"complex64": "float32", "complex128": "float64"}.get(dtype, dtype)
    x = arr(a, device)
    lo = xp.linalg.cholesky(x)
    assert_same(lo, np.linalg.cholesky(a), device, dtype)
    up = xp.linalg.cholesky(x, upper=True)
    assert_same(up, np.conj(np.swapaxes(np.linalg.cholesky(a), -1, -2)), device, dtype)
    w, v = xp.linalg.eigh(x)
    assert_same(w, np.linalg.eigvalsh(a), device, real)
    assert v.dtype == np.dtype(dtype)
    vn, wn = to_numpy(v), to_numpy(w)
    np.testing.assert_allclose(
        vn @ (wn[..., None] * np.conj(np.swapaxes(vn, -1, -2))), a, rtol=1e-3, atol=1e-3
    )
    assert_same(xp.linalg.eigvalsh(x), np.linalg.eigvalsh(a), device, real)


def test_namedtuple_results(device: str) -> None:
    a = RNG.standard_normal((3, 3))
    x = arr(a, device, "a")
    for result, fields in (
        (xp.linalg.eigh(arr(spd(3), device, "a")), ("eigenvalues", "eigenvectors")),
        (xp.linalg.qr(x), ("Q", "R")),
        (xp.linalg.slogdet(x), ("sign", "logabsdet")),
        (xp.linalg.svd(x), ("U", "S", "Vh")),
    ):
        assert result._fields == fields
        for part in result:
            assert isinstance(part, xp.Array) and str(part.device) == device
            assert dict(part.tags) == {"origin": frozenset({"a"})}


@pytest.mark.parametrize("shape", [(4, 3), (3, 5), (2, 4, 4)])
@pytest.mark.parametrize("mode", ["reduced", "complete"])
def test_qr(device: str, shape: tuple[int, ...], mode: Any) -> None:
    a = RNG.standard_normal(shape)
    q, r = xp.linalg.qr(arr(a, device), mode=mode)
    eq, er = np.linalg.qr(a, mode=mode)
    assert q.shape == eq.shape and r.shape == er.shape
    qn, rn = to_numpy(q), to_numpy(r)
    np.testing.assert_allclose(qn @ rn, a, atol=1e-10)
    np.testing.assert_allclose(
        np.swapaxes(qn, -1, -2) @ qn,
        np.broadcast_to(np.eye(qn.shape[-1]), qn.shape[:-2] + (qn.shape[-1],) * 2),
        atol=1e-10,
    )
    np.testing.assert_allclose(np.tril(rn, -1), 0, atol=1e-12)
    with pytest.raises(InvalidArgumentError, match="mode must be 'reduced' or 'complete'"):
        xp.linalg.qr(arr(a, device), mode="full")  # type: ignore[arg-type]


@pytest.mark.parametrize("full_matrices", [True, False])
def test_svd_and_svdvals(device: str, full_matrices: bool) -> None:
    a = RNG.standard_normal((2, 5, 3)).astype(np.float32)
    u, s, vh = xp.linalg.svd(arr(a, device), full_matrices=full_matrices)
    eu, es, evh = np.linalg.svd(a, full_matrices=full_matrices)
    assert (u.shape, s.shape, vh.shape) == (eu.shape, es.shape, evh.shape)
    assert u.dtype == s.dtype == vh.dtype == xp.float32
    assert_same(s, es, device, "float32")
    un, sn, vn = to_numpy(u), to_numpy(s), to_numpy(vh)
    k = sn.shape[-1]
    np.testing.assert_allclose((un[..., :k] * sn[..., None, :]) @ vn[..., :k, :], a, atol=1e-4)
    assert np.all(np.diff(sn, axis=-1) <= 0)  # descending
    assert_same(xp.linalg.svdvals(arr(a, device)), es, device, "float32")
    c = (RNG.standard_normal((3, 2)) + 1j).astype(np.complex64)
    assert xp.linalg.svdvals(arr(c, device)).dtype == xp.float32


def test_det_slogdet_inv_solve(device: str) -> None:
    a = spd(3, (2,))
    x = arr(a, device)
    assert_same(xp.linalg.det(x), np.linalg.det(a), device)
    sign, logdet = xp.linalg.slogdet(x)
    es, el = np.linalg.slogdet(a)
    assert_same(sign, es, device)
    assert_same(logdet, el, device)
    assert_same(xp.linalg.inv(x), np.linalg.inv(a), device)
    # 2024.12 solve: a 1-d x2 is one vector, broadcast against the stack of x1
    b = RNG.standard_normal(3)
    assert_same(
        xp.linalg.solve(x, arr(b, device)), np.linalg.solve(a, b[None, :, None])[..., 0], device
    )
    bm = RNG.standard_normal((3, 2))
    assert_same(xp.linalg.solve(x, arr(bm, device)), np.linalg.solve(a, bm), device)
    bb = RNG.standard_normal((4, 1, 3, 2))
    assert_same(xp.linalg.solve(x, arr(bb, device)), np.linalg.solve(a, bb), device)
    f = arr(a.astype(np.float32), device)
    assert xp.linalg.inv(f).dtype == xp.float32
    assert xp.linalg.det(f).dtype == xp.float32


def test_singular_and_indefinite_raise_linalgerror(device: str) -> None:
    s = arr(np.array([[1.0, 2.0], [2.0, 4.0]]), device)
    with pytest.raises(LinAlgError, match="xp.linalg.inv: .*singular"):
        xp.linalg.inv(s)
    with pytest.raises(LinAlgError, match="xp.linalg.solve"):
        xp.linalg.solve(s, arr(np.array([1.0, 1.0]), device))
    with pytest.raises(LinAlgError, match="xp.linalg.cholesky"):
        xp.linalg.cholesky(arr(np.array([[1.0, 0.0], [0.0, -1.0]]), device))
    with pytest.raises(LinAlgError, match="xp.linalg.matrix_power"):
        xp.linalg.matrix_power(s, -1)
    sign, logdet = xp.linalg.slogdet(s)
    assert float(sign) == 0.0 and float(logdet) == -math.inf
    assert float(xp.linalg.det(s)) == 0.0


def test_linalg_input_errors(device: str) -> None:
    ints = arr(np.eye(2, dtype=np.int64), device)
    for fn in (
        xp.linalg.inv,
        xp.linalg.det,
        xp.linalg.eigh,
        xp.linalg.cholesky,
        xp.linalg.svd,
        xp.linalg.qr,
    ):
        with pytest.raises(DTypeError, match="must have a floating-point dtype, got int64"):
            fn(ints)
    with pytest.raises(ShapeError, match="square"):
        xp.linalg.inv(arr(np.ones((2, 3)), device))
    with pytest.raises(ShapeError, match="at least 2 dimensions"):
        xp.linalg.det(arr(np.ones(3), device))
    with pytest.raises(ShapeError, match=r"x2 must have shape \(2,\)"):
        xp.linalg.solve(arr(np.eye(2), device), arr(np.ones(3), device))
    with pytest.raises(ShapeError, match="do not broadcast"):
        xp.linalg.solve(arr(np.ones((2, 2, 2)), device), arr(np.ones((3, 2, 1)), device))
    with pytest.raises(DeviceMismatchError):
        xp.linalg.solve(arr(np.eye(2), device), arr(np.ones(2), other_device(device)))
    with pytest.raises(InvalidArgumentError, match="n must be an int"):
        xp.linalg.matrix_power(arr(np.eye(2), device), 1.5)  # type: ignore[arg-type]
    with pytest.raises(ForeignArrayError):
        xp.linalg.inv(np.eye(2))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# xp.linalg: products, norms, rank, pinv, diagonal, trace
# --------------------------------------------------------------------------------------------
def test_cross_and_outer(device: str) -> None:
    a = RNG.standard_normal((4, 3))
    b = RNG.standard_normal((3,))
    assert_same(xp.linalg.cross(arr(a, device), arr(b, device)), np.cross(a, b), device)
    at = RNG.standard_normal((3, 4))
    assert_same(
        xp.linalg.cross(arr(at, device), arr(at[::-1], device), axis=-2),
        np.cross(at, at[::-1], axis=0),
        device,
    )
    with pytest.raises(ShapeError, match="size 3"):
        xp.linalg.cross(arr(np.ones(2), device), arr(np.ones(2), device))
    with pytest.raises(AxisError):
        xp.linalg.cross(arr(a, device), arr(b, device), axis=-2)
    u = np.array([1, 2, 3], np.int16)
    v = np.array([4, 5], np.int16)
    assert_same(xp.linalg.outer(arr(u, device), arr(v, device)), np.outer(u, v), device, "int16")
    with pytest.raises(ShapeError, match="1-d"):
        xp.linalg.outer(arr(np.ones((2, 2)), device), arr(v, device))


@pytest.mark.parametrize("ord", ["fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf])
def test_matrix_norm(device: str, ord: Any) -> None:
    a = RNG.standard_normal((2, 3, 4))
    assert_same(
        xp.linalg.matrix_norm(arr(a, device), ord=ord),
        np.linalg.norm(a, ord=ord, axis=(-2, -1)),
        device,
    )
    r = xp.linalg.matrix_norm(arr(a, device), ord=ord, keepdims=True)
    assert r.shape == (2, 1, 1)


def test_matrix_norm_dtypes_and_errors(device: str) -> None:
    c = (RNG.standard_normal((3, 3)) + 1j).astype(np.complex64)
    assert_same(xp.linalg.matrix_norm(arr(c, device)), np.linalg.norm(c), device, "float32")
    with pytest.raises(InvalidArgumentError, match="ord must be one of"):
        xp.linalg.matrix_norm(arr(c, device), ord=3)


@pytest.mark.parametrize("ord", [1, 2, 3, 0.5, 0, -1, -2, math.inf, -math.inf])
def test_vector_norm(device: str, ord: float) -> None:
    a = RNG.standard_normal((2, 3, 4)) + 0.1
    x = arr(a, device)
    assert_same(xp.linalg.vector_norm(x, ord=ord), np.linalg.vector_norm(a, ord=ord), device)
    assert_same(
        xp.linalg.vector_norm(x, axis=(0, 2), ord=ord, keepdims=True),
        np.linalg.vector_norm(a, axis=(0, 2), ord=ord, keepdims=True),
        device,
    )
    assert_same(
        xp.linalg.vector_norm(x, axis=-1, ord=ord),
        np.linalg.vector_norm(a, axis=-1, ord=ord),
        device,
    )


def test_vector_norm_dtypes_and_errors(device: str) -> None:
    c = arr(np.array([3 + 4j, 0j], np.complex64), device)
    assert_same(xp.linalg.vector_norm(c), np.array(5.0, np.float32), device, "float32")
    with pytest.raises(DTypeError, match="floating-point dtype, got int64"):
        xp.linalg.vector_norm(arr(np.array([1, 2]), device))
    with pytest.raises(AxisError, match="axis 3 is out of range"):
        xp.linalg.vector_norm(arr(np.ones(2), device), axis=3)


def test_matrix_rank_and_pinv(device: str) -> None:
    a = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]])
    stack = np.stack([a, np.eye(3)])
    r = xp.linalg.matrix_rank(arr(stack, device))
    assert_same(r, np.array([2, 3]), device, "int64")
    # rtol relative to the largest singular value: a large rtol drops the small ones
    s = np.linalg.svd(a, compute_uv=False)
    big = float(s[1] / s[0]) * 1.01
    assert int(xp.linalg.matrix_rank(arr(a, device), rtol=big)) == 1
    rt = arr(np.array([big, 1e-12]), device, "r")
    rk = xp.linalg.matrix_rank(arr(stack, device, "x"), rtol=rt)
    assert to_numpy(rk).tolist() == [1, 3]
    assert dict(rk.tags) == {"origin": frozenset({"x", "r"})}
    assert_same(xp.linalg.pinv(arr(a, device)), np.linalg.pinv(a), device, atol=1e-8)
    assert_same(
        xp.linalg.pinv(arr(a, device), rtol=big), np.linalg.pinv(a, rcond=big), device, atol=1e-8
    )
    with pytest.raises(InvalidArgumentError, match="rtol must be"):
        xp.linalg.pinv(arr(a, device), rtol="small")  # type: ignore[arg-type]


def test_matrix_power(device: str) -> None:
    a = spd(3)
    for n in (0, 1, 3, -2):
        assert_same(
            xp.linalg.matrix_power(arr(a, device), n),
            np.linalg.matrix_power(a, n),
            device,
            rtol=1e-8,
        )


def test_diagonal_and_trace(device: str) -> None:
    a = RNG.integers(-5, 5, (2, 3, 4)).astype(np.int8)
    x = arr(a, device)
    for k in (-1, 0, 2):
        assert_same(
            xp.linalg.diagonal(x, offset=k),
            np.diagonal(a, offset=k, axis1=-2, axis2=-1),
            device,
            "int8",
        )
        assert_same(
            xp.linalg.trace(x, offset=k),
            np.trace(a, offset=k, axis1=-2, axis2=-1, dtype=np.int64),
            device,
            "int64",
        )
    assert_same(
        xp.linalg.trace(x, dtype=xp.int16),
        np.trace(a, axis1=-2, axis2=-1, dtype=np.int16),
        device,
        "int16",
    )
    f = RNG.standard_normal((3, 3)).astype(np.float32)
    assert_same(xp.linalg.trace(arr(f, device)), np.trace(f), device, "float32")
    u = arr(np.eye(2, dtype=np.uint16), device)
    assert xp.linalg.trace(u).dtype == xp.uint64
    d = xp.linalg.diagonal(arr(np.eye(2), device))
    d[0] = 7.0  # a copy: writable, and the input is untouched
    assert to_numpy(d).tolist() == [7.0, 1.0]
    with pytest.raises(ShapeError):
        xp.linalg.trace(arr(np.ones(3), device))
    with pytest.raises(DTypeError, match="cannot accumulate"):
        xp.linalg.trace(arr(f, device), dtype=xp.int32)


def test_linalg_tags_union(device: str) -> None:
    a, b = arr(spd(2), device, "a"), arr(np.ones(2), device, "b")
    both = {"origin": frozenset({"a", "b"})}
    assert dict(xp.linalg.solve(a, b).tags) == both
    assert dict((a @ b).tags) == both
    assert dict(xp.vecdot(a, b).tags) == both
    assert dict(xp.tensordot(a, a, axes=1).tags) == {"origin": frozenset({"a"})}
    assert dict(xp.linalg.outer(b, arr(np.ones(3), device, "c")).tags) == {
        "origin": frozenset({"b", "c"})
    }
    assert dict(xp.linalg.inv(a).tags) == {"origin": frozenset({"a"})}
    assert (
        dict(xp.linalg.cross(arr(np.ones(3), device, "a"), arr(np.ones(3), device, "b")).tags)
        == both
    )


# --------------------------------------------------------------------------------------------
# xp.fft
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
def test_complex_transforms_keep_dtype(device: str, dtype: str, norm: Any) -> None:
    a = (RNG.standard_normal((3, 8)) + 1j * RNG.standard_normal((3, 8))).astype(dtype)
    x = arr(a, device)
    assert_same(xp.fft.fft(x, norm=norm), np.fft.fft(a, norm=norm), device, dtype)
    assert_same(
        xp.fft.ifft(x, n=5, axis=0, norm=norm),
        np.fft.ifft(a, n=5, axis=0, norm=norm),
        device,
        dtype,
    )
    assert_same(xp.fft.fftn(x, norm=norm), np.fft.fftn(a, norm=norm), device, dtype)
    assert_same(
        xp.fft.ifftn(x, s=(4, 6), axes=(0, 1), norm=norm),
        np.fft.ifftn(a, s=(4, 6), axes=(0, 1), norm=norm),
        device,
        dtype,
    )
    real = "float32" if dtype == "complex64" else "float64"
    assert_same(xp.fft.irfft(x, norm=norm), np.fft.irfft(a, norm=norm), device, real)
    assert_same(xp.fft.hfft(x, n=9, norm=norm), np.fft.hfft(a, n=9, norm=norm), device, real)
    assert_same(
        xp.fft.irfftn(x, s=(3, 10), axes=(0, 1), norm=norm),
        np.fft.irfftn(a, s=(3, 10), axes=(0, 1), norm=norm),
        device,
        real,
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_real_transforms_give_matching_precision(device: str, dtype: str) -> None:
    a = RNG.standard_normal((4, 6)).astype(dtype)
    x = arr(a, device)
    cplx = "complex64" if dtype == "float32" else "complex128"
    assert_same(xp.fft.rfft(x), np.fft.rfft(a), device, cplx)
    assert_same(xp.fft.rfft(x, n=9, axis=0), np.fft.rfft(a, n=9, axis=0), device, cplx)
    assert_same(xp.fft.rfftn(x), np.fft.rfftn(a), device, cplx)
    assert_same(xp.fft.ihfft(x), np.fft.ihfft(a), device, cplx)
    # real input to a complex transform is promoted to complex of the same precision
    assert_same(xp.fft.fft(x), np.fft.fft(a), device, cplx)


def test_fft_round_trips(device: str) -> None:
    a = RNG.standard_normal((5, 7))
    x = arr(a, device)
    assert_same(xp.fft.irfft(xp.fft.rfft(x), n=7), a, device)
    assert_same(xp.fft.irfftn(xp.fft.rfftn(x), s=(5, 7), axes=(0, 1)), a, device)
    c = arr(a.astype(np.complex128), device)
    assert_same(xp.fft.ifft(xp.fft.fft(c)), a.astype(np.complex128), device)
    assert_same(
        xp.fft.ifftn(xp.fft.fftn(c, norm="ortho"), norm="ortho"), a.astype(np.complex128), device
    )
    # s entries of -1 keep the input size along that axis
    assert_same(
        xp.fft.fftn(c, s=(-1, 4), axes=(0, 1)), np.fft.fftn(a, s=(5, 4), axes=(0, 1)), device
    )


def test_fft_errors(device: str) -> None:
    c = arr(np.ones(4, np.complex128), device)
    r = arr(np.ones(4), device)
    with pytest.raises(
        DTypeError, match="xp.fft.fft: x must have a complex floating-point dtype, got int64"
    ):
        xp.fft.fft(arr(np.ones(4, np.int64), device))
    with pytest.raises(
        DTypeError, match="xp.fft.rfft: x must have a real floating-point dtype, got complex128"
    ):
        xp.fft.rfft(c)
    with pytest.raises(InvalidArgumentError, match="norm must be one of"):
        xp.fft.fft(c, norm="unitary")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="n must be a positive int"):
        xp.fft.ifft(c, n=0)
    with pytest.raises(InvalidArgumentError, match="without axes"):
        xp.fft.fftn(c, s=(4,))
    with pytest.raises(InvalidArgumentError, match="differ in length"):
        xp.fft.rfftn(r, s=(4, 4), axes=(0,))
    with pytest.raises(AxisError, match="xp.fft.fft: axis 1 is out of range"):
        xp.fft.fft(c, axis=1)
    with pytest.raises(ForeignArrayError):
        xp.fft.fft(np.ones(4, np.complex128))  # type: ignore[arg-type]


def test_fftfreq_and_rfftfreq(device: str) -> None:
    f = xp.fft.fftfreq(8, d=0.1, device=device)
    assert_same(f, np.fft.fftfreq(8, d=0.1), device, "float64")
    g = xp.fft.rfftfreq(7, d=2.0, dtype=xp.float32, device=device)
    assert_same(g, np.fft.rfftfreq(7, d=2.0).astype(np.float32), device, "float32")
    assert str(xp.fft.fftfreq(3).device) == str(xp.default_device())
    with pytest.raises(DTypeError, match="real floating-point dtype, got int32"):
        xp.fft.fftfreq(4, dtype=xp.int32, device=device)
    with pytest.raises(InvalidArgumentError, match="n must be a positive int"):
        xp.fft.rfftfreq(0, device=device)
    with pytest.raises(InvalidArgumentError, match="d must be a non-zero float"):
        xp.fft.fftfreq(4, d=0.0, device=device)


def test_fftfreq_defaults_to_float32_without_fp64(config) -> None:
    config('[devices."emulated:2"]\npreset = "gaudi3"\n')
    f = xp.fft.fftfreq(4, device="emulated:2")
    assert f.dtype == xp.float32 and str(f.device) == "emulated:2"
    x = xp.asarray(np.ones(4, np.float32), device="emulated:2")
    assert xp.fft.rfft(x).dtype == xp.complex64


def test_fftshift_ifftshift(device: str) -> None:
    a = RNG.standard_normal((5, 6))
    x = arr(a, device, "s")
    assert_same(xp.fft.fftshift(x), np.fft.fftshift(a), device)
    assert_same(xp.fft.fftshift(x, axes=0), np.fft.fftshift(a, axes=0), device)
    assert_same(xp.fft.ifftshift(x, axes=(1,)), np.fft.ifftshift(a, axes=(1,)), device)
    assert_same(xp.fft.ifftshift(xp.fft.fftshift(x)), a, device)
    assert dict(xp.fft.fftshift(x).tags) == {"origin": frozenset({"s"})}
    assert dict(xp.fft.rfft(x).tags) == {"origin": frozenset({"s"})}


# --------------------------------------------------------------------------------------------
# properties against NumPy
# --------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 5),
    k=st.integers(1, 5),
    n=st.integers(1, 5),
    batch=st.sampled_from([(), (2,), (3, 1)]),
)
def test_property_matmul_matches_numpy(m: int, k: int, n: int, batch: tuple[int, ...]) -> None:
    a = RNG.standard_normal((*batch, m, k))
    b = RNG.standard_normal((k, n))
    r = xp.asarray(a, device="emulated:0") @ xp.asarray(b, device="emulated:0")
    np.testing.assert_allclose(to_numpy(r), a @ b, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    a=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=8),
        elements=st.floats(-100, 100, allow_nan=False),
    )
)
def test_property_fft_matches_numpy(a: np.ndarray) -> None:
    x = xp.asarray(a, device="emulated:1")
    np.testing.assert_allclose(to_numpy(xp.fft.rfft(x)), np.fft.rfft(a), atol=1e-9)
    np.testing.assert_allclose(to_numpy(xp.fft.fftn(x)), np.fft.fftn(a), atol=1e-9)
    n = a.shape[-1]
    np.testing.assert_allclose(to_numpy(xp.fft.irfft(xp.fft.rfft(x), n=n)), a, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_property_solve_and_inv_match_numpy(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, n)) + n * np.eye(n)
    b = rng.standard_normal(n)
    x = xp.asarray(m, device="numpy:cpu")
    np.testing.assert_allclose(
        to_numpy(xp.linalg.solve(x, xp.asarray(b))), np.linalg.solve(m, b), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(to_numpy(xp.linalg.inv(x)), np.linalg.inv(m), rtol=1e-9, atol=1e-9)
