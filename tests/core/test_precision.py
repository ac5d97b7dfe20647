"""hpcai.precision: Ozaki-scheme FP64 emulation, precision policies, low-precision dtypes, validation."""

from __future__ import annotations

import math
import sys
from fractions import Fraction

import array_api_compat.numpy as cnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hpcai as xp
from hpcai import _ozaki
from hpcai.errors import InvalidArgumentError, UnsupportedDtypeError
from hpcai.testing import exact_matmul, phi_matrix

U = 2.0**-53
GAUDI_EMULATE = '[devices."emulated:2"]\npreset = "gaudi3"\nprecision = "emulate"\n'
GAUDI_ERROR = '[devices."emulated:2"]\npreset = "gaudi3"\nprecision = "error"\n'


# --------------------------------------------------------------------------------------------
# exact references
# --------------------------------------------------------------------------------------------
def fraction_matmul(a: np.ndarray, b: np.ndarray) -> list[list[Fraction]]:
    A = [[Fraction(v) for v in row] for row in a.tolist()]
    B = [[Fraction(v) for v in col] for col in b.T.tolist()]
    return [[sum((x * y for x, y in zip(r, c)), Fraction(0)) for c in B] for r in A]


# --------------------------------------------------------------------------------------------
# the schemes
# --------------------------------------------------------------------------------------------
def test_moduli_are_pairwise_coprime_and_fit_int8_residues():
    assert len(xp.precision.MODULI) == _ozaki.MAX_MODULI
    assert all(m <= 256 for m in xp.precision.MODULI)
    for i, p in enumerate(xp.precision.MODULI):
        for q in xp.precision.MODULI[i + 1 :]:
            assert math.gcd(p, q) == 1


def test_reference_is_exact_on_small_input():
    rng = np.random.default_rng(5)
    a, b = phi_matrix(rng, (6, 11), 3), phi_matrix(rng, (11, 4), 3)
    a[2] = 0.0  # an all-zero row and column: their products are exact zeros
    b[:, 1] = 0.0
    ref = exact_matmul(a, b)
    fr = fraction_matmul(a, b)
    assert all(ref[i, j] == float(fr[i][j]) for i in range(6) for j in range(4))
    assert not ref[2].any() and not ref[:, 1].any()


def test_reference_rejects_bad_input():
    with pytest.raises(InvalidArgumentError, match="shapes"):
        exact_matmul(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(InvalidArgumentError, match="finite"):
        exact_matmul(np.array([[np.inf]]), np.ones((1, 1)))


@pytest.mark.parametrize("phi", [0, 1, 4])
def test_auto_mode_is_fp64_accurate_at_n256(phi):
    rng = np.random.default_rng(100 + phi)
    n = 256
    a, b = phi_matrix(rng, (n, n), phi), phi_matrix(rng, (n, n), phi)
    ref = exact_matmul(a, b)
    absab = np.abs(a) @ np.abs(b)
    c, info = xp.precision.matmul(xp.asarray(a), xp.asarray(b), return_info=True)
    c = np.asarray(c)
    assert info.method in ("ozaki1", "ozaki2") and info.bits_retained >= 52
    normwise = np.max(np.abs(c - ref)) / np.max(absab)
    assert normwise <= 4 * U
    comp = np.max(np.abs(c - ref) / absab)
    dgemm = a @ b
    assert comp <= max(np.max(np.abs(dgemm - ref) / absab), U)
    nz = ref != 0
    assert np.max(np.abs(c - ref)[nz] / np.abs(ref[nz])) <= np.max(
        np.abs(dgemm - ref)[nz] / np.abs(ref[nz])
    )


@pytest.mark.parametrize("method", ["ozaki1", "ozaki2"])
def test_fp64_and_int64_accumulators_round_identically(method):
    rng = np.random.default_rng(7)
    a, b = phi_matrix(rng, (17, 700), 2), phi_matrix(rng, (700, 9), 2)  # k > one block
    c64, i64 = _ozaki.emulate(cnp, a, b, method=method, fp64=True)
    cint, iint = _ozaki.emulate(cnp, a, b, method=method, fp64=False)
    assert (i64.accumulation, iint.accumulation) == ("float64", "int64")
    np.testing.assert_array_equal(c64, cint)
    err = np.abs(c64 - exact_matmul(a, b)) / (np.abs(a) @ np.abs(b))
    assert np.max(err) <= i64.error_bound == iint.error_bound


def test_tolerance_picks_fewer_moduli_and_is_met():
    rng = np.random.default_rng(8)
    a, b = phi_matrix(rng, (40, 60), 1), phi_matrix(rng, (60, 30), 1)
    ref = exact_matmul(a, b)
    absab = np.abs(a) @ np.abs(b)
    counts = []
    for tol in (1e-3, 1e-8, 1e-12, None):
        c, info = xp.precision.matmul(xp.asarray(a), xp.asarray(b), tol=tol, return_info=True)
        err = np.max(np.abs(np.asarray(c) - ref) / absab)
        assert err <= (tol if tol is not None else 2 * U)
        assert info.error_bound <= (tol if tol is not None else 2 * U)
        counts.append(info.products)
    assert counts == sorted(counts) and counts[0] < counts[-1]


def test_nonfinite_inputs_follow_ieee():
    a = np.array([[1.0, np.inf], [2.0, 3.0], [np.nan, 1.0], [0.0, np.inf]])
    b = np.array([[1.0, 2.0], [1.0, -1.0]])
    got = np.asarray(xp.precision.matmul(xp.asarray(a), xp.asarray(b)))
    with np.errstate(invalid="ignore"):
        want = a @ b
    np.testing.assert_array_equal(got, want)


def test_shapes_like_matmul():
    rng = np.random.default_rng(9)
    for sa, sb in [
        ((5,), (5,)),
        ((3, 5), (5,)),
        ((5,), (5, 2)),
        ((2, 3, 5), (5, 4)),
        ((2, 1, 3, 5), (4, 5, 2)),
    ]:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        got = np.asarray(xp.precision.matmul(xp.asarray(a), xp.asarray(b)))
        np.testing.assert_allclose(got, a @ b, rtol=1e-13, atol=1e-13)
        assert got.shape == (a @ b).shape
    z = np.asarray(xp.precision.matmul(xp.zeros((3, 0)), xp.zeros((0, 2))))
    np.testing.assert_array_equal(z, np.zeros((3, 2)))


def test_complex_products():
    rng = np.random.default_rng(10)
    a = rng.standard_normal((4, 6)) + 1j * rng.standard_normal((4, 6))
    b = rng.standard_normal((6, 3)) + 1j * rng.standard_normal((6, 3))
    got = np.asarray(xp.precision.matmul(xp.asarray(a), xp.asarray(b)))
    np.testing.assert_allclose(got, a @ b, rtol=1e-14)


def test_cancellation_is_exact_where_dgemm_is_not():
    a = xp.asarray([[1e16, 1.0, -1e16]])
    b = xp.asarray([[1.0], [1.0], [1.0]])
    assert float(xp.precision.matmul(a, b)[0, 0]) == 1.0
    assert (
        float(xp.precision.vecdot(xp.asarray([1e16, 1.0, -1e16]), xp.asarray([1.0, 1.0, 1.0])))
        == 1.0
    )


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"method": "strassen"}, "method must be"),
        ({"method": "ozaki2", "slices": 1}, "moduli"),
        ({"method": "ozaki1", "slices": 99}, "slices"),
        ({"slices": 0}, "positive int"),
        ({"tol": 2.0}, "tol must be"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, text):
    a = xp.ones((2, 2))
    with pytest.raises(InvalidArgumentError, match=text):
        xp.precision.matmul(a, a, **kwargs)


def test_matmul_runs_on_every_device(device):
    dev = xp.resolve_device(device)
    if not dev.spec.has_fp64:
        pytest.skip(f"{device} has no float64")
    if dev.backend == "jax" and dev.spec.index > 0:
        pytest.skip("one JAX device is enough (op-by-op dispatch is slow)")
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal((8, 12)), rng.standard_normal((12, 5))
    c, info = xp.precision.matmul(
        xp.asarray(a, device=device), xp.asarray(b, device=device), return_info=True
    )
    assert c.device == dev and c.dtype == xp.float64
    got = np.asarray(c.to_device("numpy:cpu"))
    assert np.all(np.abs(got - exact_matmul(a, b)) <= info.error_bound * (np.abs(a) @ np.abs(b)))
    assert info.device == device


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
matrices = hnp.arrays(
    np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6), elements=finite
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    x=hnp.arrays(
        np.float64,
        st.integers(1, 40),
        elements=st.floats(-1, 1, allow_nan=False, exclude_max=True, exclude_min=True),
    ),
    bits=st.integers(1, 120),
    base=st.sampled_from([7, 11]),
)
def test_slicing_reconstructs_the_scaled_integers_exactly(x, bits, base):
    xi = _ozaki._scaled_integers(cnp, x, bits)
    assert np.all(np.abs(xi) <= 2.0**bits)
    nd = -(-(bits + 1) // base)
    digits = _ozaki._digits(cnp, xi, base, nd)
    assert all(np.all(np.abs(d) < 2**base) for d in digits)
    for j in range(x.size):
        want = int(xi[j])
        got = sum(int(d[j]) << (base * k) for k, d in enumerate(digits))
        assert got == want
    moduli = _ozaki.MODULI[:6]
    res = _ozaki._residues(cnp, xi, bits, moduli)
    for i, p in enumerate(moduli):
        for j in range(x.size):
            r = int(res[i, j])
            assert abs(r) <= p // 2 and (r - int(xi[j])) % p == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    method=st.sampled_from(["ozaki1", "ozaki2", "auto"]),
    fp64=st.booleans(),
)
def test_reported_bits_bound_the_measured_error(data, method, fp64):
    m, k, n = (
        data.draw(st.integers(1, 5)),
        data.draw(st.integers(1, 7)),
        data.draw(st.integers(1, 5)),
    )
    mag = st.floats(-1e30, 1e30, allow_nan=False).filter(lambda v: v == 0 or 1e-30 < abs(v))
    a = data.draw(hnp.arrays(np.float64, (m, k), elements=mag))
    b = data.draw(hnp.arrays(np.float64, (k, n), elements=mag))
    slices = None
    if method == "ozaki1":
        slices = data.draw(st.integers(1, 12))
    elif method == "ozaki2":
        slices = data.draw(st.integers(2, 24))
    c, info = _ozaki.emulate(cnp, a, b, method=method, slices=slices, fp64=fp64)
    if not math.isfinite(info.error_bound):  # |A||B| too small to bound in float32: no claim
        assert info.bits_retained == 0
        return
    exact = fraction_matmul(a, b)
    absab = fraction_matmul(np.abs(a), np.abs(b))
    for i in range(m):
        for j in range(n):
            err = abs(Fraction(float(c[i, j])) - exact[i][j])
            assert err <= Fraction(info.error_bound) * absab[i][j]
            assert err <= Fraction(2) ** -info.bits_retained * absab[i][j]


# --------------------------------------------------------------------------------------------
# exact elementwise arithmetic (FP64-less devices)
# --------------------------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(
    x=hnp.arrays(np.float64, 30, elements=st.floats(width=64)),
    y=hnp.arrays(np.float64, 30, elements=st.floats(width=64)),
)
def test_integer_add_and_multiply_are_correctly_rounded(x, y):
    with np.errstate(all="ignore"):
        for got, want in (
            (_ozaki.exact_add(cnp, x, y), x + y),
            (_ozaki.exact_multiply(cnp, x, y), x * y),
        ):
            same = (got == want) | (np.isnan(got) & np.isnan(want))
            assert same.all(), (x[~same], y[~same], got[~same], want[~same])


def test_integer_divide_and_sqrt_are_faithful():
    rng = np.random.default_rng(12)
    x = rng.standard_normal(4000) * np.exp(20 * rng.standard_normal(4000))
    y = rng.standard_normal(4000) * np.exp(20 * rng.standard_normal(4000))
    with np.errstate(all="ignore"):
        q = _ozaki.exact_divide(cnp, x, y)
        want = x / y
        ok = np.isfinite(want) & (np.abs(want) > 1e-300)
        assert np.all(np.abs(q[ok] - want[ok]) <= np.spacing(np.abs(want[ok])))
        s = _ozaki.exact_sqrt(cnp, np.abs(x))
        assert np.all(np.abs(s - np.sqrt(np.abs(x))) <= np.spacing(np.sqrt(np.abs(x))))
        sp = np.array([0.0, -0.0, np.inf, -1.0, np.nan, 4.0])
        np.testing.assert_array_equal(_ozaki.exact_sqrt(cnp, sp), np.sqrt(sp))
        d = np.array([1.0, -1.0, 0.0, np.inf, 1.0, 0.0])
        e = np.array([0.0, 0.0, 0.0, np.inf, np.inf, -2.0])
        np.testing.assert_array_equal(_ozaki.exact_divide(cnp, d, e), d / e)


# --------------------------------------------------------------------------------------------
# per-device precision policy
# --------------------------------------------------------------------------------------------
def _cg(A, b, iters):
    x = xp.zeros(b.shape, dtype=xp.float64, device=b.device)
    r = b - A @ x
    p = r
    rr = xp.vecdot(r, r)
    for _ in range(iters):
        Ap = A @ p
        alpha = rr / xp.vecdot(p, Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = xp.vecdot(r, r)
        if float(xp.sqrt(rr_new)) <= 1e-15 * float(xp.sqrt(xp.vecdot(b, b))):
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def _spd(n, seed=13):
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, n))
    return m @ m.T + n * np.eye(n), rng.standard_normal(n)


def test_fp64_less_device_runs_a_float64_cg_solve_under_emulate(config):
    config(GAUDI_EMULATE)
    dev = xp.resolve_device("emulated:2")
    assert not dev.spec.has_fp64 and xp.precision.policy(dev) == "emulate"
    A, b = _spd(48)
    Ad = xp.asarray(A, device="emulated:2", dtype=xp.float64)
    bd = xp.asarray(b, device="emulated:2", dtype=xp.float64)
    x = _cg(Ad, bd, 200)
    assert x.dtype == xp.float64 and x.device == dev
    xh = _cg(xp.asarray(A), xp.asarray(b), 200)
    got, want = np.asarray(x.to_device("numpy:cpu")), np.asarray(xh)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-12
    assert np.linalg.norm(A @ got - b) / np.linalg.norm(b) <= 1e-12


def test_fp64_less_device_emulates_the_matmul_family(config):
    config(GAUDI_EMULATE)
    rng = np.random.default_rng(14)
    a, b = rng.standard_normal((6, 5)), rng.standard_normal((5, 4))
    A, B = (
        xp.asarray(a, device="emulated:2", dtype=xp.float64),
        xp.asarray(b, device="emulated:2", dtype=xp.float64),
    )
    ref = exact_matmul(a, b)
    absab = np.abs(a) @ np.abs(b)
    for r in (A @ B, xp.matmul(A, B), xp.linalg.matmul(A, B), xp.tensordot(A, B, axes=1)):
        assert r.device == A.device and r.dtype == xp.float64
        assert np.all(np.abs(np.asarray(r.to_device("numpy:cpu")) - ref) <= 2 * U * absab)
    v = xp.vecdot(A, A, axis=1)
    np.testing.assert_allclose(
        np.asarray(v.to_device("numpy:cpu")), np.sum(a * a, axis=1), rtol=1e-15
    )
    s = xp.sum(A, axis=0)
    np.testing.assert_allclose(
        np.asarray(s.to_device("numpy:cpu")), a.sum(axis=0), rtol=1e-14, atol=1e-15
    )
    # data movement and exact operations stay available
    np.testing.assert_array_equal(
        np.asarray(xp.reshape(-A, (30,)).to_device("numpy:cpu")), -a.reshape(30)
    )
    assert xp.astype(A, xp.float32).dtype == xp.float32


def test_fp64_less_device_names_unemulated_operations(config):
    config(GAUDI_EMULATE)
    A = xp.asarray([0.5, 1.0], device="emulated:2", dtype=xp.float64)
    with pytest.raises(
        UnsupportedDtypeError, match=r"exp on float64.*emulated:2.*emulate.*xp.astype"
    ):
        xp.exp(A)
    with pytest.raises(UnsupportedDtypeError, match="cumsum|cumulative_sum"):
        xp.cumulative_sum(A)
    float32_ok = xp.exp(xp.astype(A, xp.float32))
    assert float32_ok.dtype == xp.float32


@pytest.mark.parametrize("policy", ["error", "native"])
def test_fp64_less_device_refuses_float64_unless_emulating(config, policy):
    config(GAUDI_ERROR.replace("error", policy))
    with pytest.raises(UnsupportedDtypeError, match="float64"):
        xp.asarray([1.0, 2.0], device="emulated:2", dtype=xp.float64)
    with pytest.raises(UnsupportedDtypeError, match="float64"):
        xp.zeros(3, dtype=xp.float64, device="emulated:2")


def test_emulate_policy_on_a_device_with_fp64_routes_matmul(config):
    x = xp.asarray([[1e16, 1.0, -1e16]], device="emulated:0")
    y = xp.asarray([[1.0], [1.0], [1.0]], device="emulated:0")
    native = float((x @ y)[0, 0])
    config('[devices."emulated:0"]\nprecision = "emulate"\n')
    x = xp.asarray([[1e16, 1.0, -1e16]], device="emulated:0")
    y = xp.asarray([[1.0], [1.0], [1.0]], device="emulated:0")
    assert float((x @ y)[0, 0]) == 1.0 != native


# --------------------------------------------------------------------------------------------
# low-precision dtypes
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bfloat16", "float8_e4m3fn", "float8_e5m2"])
def test_low_precision_dtypes_are_extensions(device, name):
    import ml_dtypes

    dt = getattr(xp, name)
    assert dt == np.dtype(getattr(ml_dtypes, name))
    from hpcai._dtypes import DTYPES_BY_NAME, _all_dtypes

    assert DTYPES_BY_NAME[name] == dt and dt not in _all_dtypes
    if device.startswith("cupy"):
        pytest.skip("CuPy has no ml_dtypes types")
    x = xp.asarray([1.1, -2.5, 3.0], dtype=xp.float32, device=device)
    y = xp.astype(x, dt)
    assert y.dtype == dt and y.device == x.device
    want = np.array([1.1, -2.5, 3.0], dtype=np.float32).astype(dt)
    got = np.asarray(y.to_device("numpy:cpu"))
    np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32))
    back = xp.astype(y, xp.float32)
    np.testing.assert_array_equal(np.asarray(back.to_device("numpy:cpu")), want.astype(np.float32))


# --------------------------------------------------------------------------------------------
# validation tools
# --------------------------------------------------------------------------------------------
def test_compare_reports_errors_per_candidate_and_output():
    A, b = _spd(30, seed=15)
    rep = xp.precision.compare(lambda m, v: (_cg(m, v, 40), m @ v), xp.asarray(A), xp.asarray(b))
    rows = {(r["candidate"], r["output"]): r for r in rep.rows}
    assert set(rows) == {(c, i) for c in ("float32", "bfloat16", "emulated-fp64") for i in (0, 1)}
    assert 1e-9 < rows["float32", 0]["normwise"] < 1e-4
    assert rows["bfloat16", 0]["normwise"] > rows["float32", 0]["normwise"]
    assert rows["emulated-fp64", 1]["normwise"] <= 4 * U
    assert rows["emulated-fp64", 0]["normwise"] <= 1e-12
    want = np.max(np.abs((A.astype(np.float32) @ b.astype(np.float32)).astype(np.float64) - A @ b))
    assert rows["float32", 1]["max_abs"] == pytest.approx(want)
    text = str(rep)
    assert "max rel err" in text and "emulated-fp64" in text
    assert rep.to_dict()["reference"] == "float64"


def test_profile_ranks_the_operation_that_loses_accuracy():
    def f(a, b):
        x = xp.linalg.solve(a, b)  # Hilbert matrix, condition number ~5e5: float32 loses ~2 digits
        return x * 2.0 + b

    hilbert = xp.asarray([[1.0 / (i + j + 1) for j in range(5)] for i in range(5)])
    rep = xp.precision.profile(f, hilbert, xp.asarray([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert rep.rows[0]["op"] == "linalg.solve"
    assert rep.rows[0]["normwise"] > 1e-3 > 1e-6 > rep.rows[-1]["normwise"]
    assert all(r["calls"] == 1 for r in rep.rows)
    assert {r["op"] for r in rep.rows} == {"linalg.solve", "multiply", "add"}
    assert "test_precision.py" in rep.rows[0]["site"]
    assert "norm-wise err" in str(rep)


def test_profile_plot_saves_one_bar_per_call_site(tmp_path, monkeypatch):
    def f(a, b):
        return xp.linalg.solve(a, b) * 2.0 + b

    hilbert = xp.asarray([[1.0 / (i + j + 1) for j in range(5)] for i in range(5)])
    rep = xp.precision.profile(f, hilbert, xp.asarray([1.0, 2.0, 3.0, 4.0, 5.0]))
    pytest.importorskip("matplotlib")
    path = tmp_path / "profile.png"
    fig = rep.plot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (ax,) = fig.axes
    widths = sorted(p.get_width() for p in ax.patches)
    assert len(widths) == len(rep.rows) == 3
    assert widths == pytest.approx(sorted(r["normwise"] for r in rep.rows))
    assert ax.get_xscale() == "log"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if matplotlib were missing
    with pytest.raises(ImportError, match="pip install matplotlib"):
        rep.plot()


def test_compare_rejects_unknown_precisions():
    with pytest.raises(InvalidArgumentError, match="unknown precision"):
        xp.precision.compare(lambda v: v, xp.ones(2), candidates=("float128x",))
