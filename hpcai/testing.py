"""A conformance suite for devices, shipped with hpcai so plugin backends can run it too.

Subclass :class:`DeviceTests` in a pytest module and provide a ``device`` fixture that
yields device names; every test then runs on every device::

    import pytest
    from hpcai.testing import DeviceTests

    class TestMyVendor(DeviceTests):
        @pytest.fixture(params=["myvendor:0"])
        def device(self, request):
            return request.param

The suite checks what every backend must get right: creation on the device, operators,
in-place updates, indexing, Python scalar conversion, explicit movement (and its log),
device-mismatch errors, pickling and DLPack locality; and it sweeps every chapter of the
standard once (all 67 elementwise functions, statistics, searching, sorting, sets,
manipulation, linear algebra and FFT) against NumPy, on ``float32`` data, so that it runs
on devices without FP64 as well.
"""

from __future__ import annotations

import math
import operator
import pickle
from typing import Any

import array_api_compat.numpy as compat_np
import numpy as np

import hpcai as xp
from hpcai.errors import DeviceMismatchError, InvalidArgumentError, TransferForbiddenError

__all__ = ["ATTACK_POLICY", "DeviceTests", "exact_matmul", "phi_matrix", "to_numpy"]

#: The policy the adversarial tests (tests/security) attack: personal data is computed on
#: only in the EU and stored only on EU non-hyperscaler endpoints; data handled as
#: internal never leaves hpcai. ``emulated:1`` and ``jax:cpu:1`` are US hyperscaler devices.
ATTACK_POLICY = """
[site]
country = "DE"
jurisdiction = "EU"
provider = "onprem"

[devices."emulated:1"]
attributes = { country = "US", jurisdiction = "US", provider = "hyperscaler" }

[devices."jax:cpu:1"]
attributes = { country = "US", jurisdiction = "US", provider = "hyperscaler" }

[groups]
eu = ["AT", "BE", "DE", "FR", "NL"]

[[policy.rules]]
name = "gdpr-personal"
match = "classification=personal"
compute = "country=@eu"
store = "country=@eu & provider!=hyperscaler"
effect = "deny"

[[policy.rules]]
name = "internal-only"
match = "handling=internal"
export = "false"

[audit]
path = "audit.jsonl"
"""


def to_numpy(x: Any) -> np.ndarray:
    """Copy an hpcai Array from any device into a NumPy array (an explicit, logged move)."""
    return np.asarray(x.to_device("numpy:cpu"))


def phi_matrix(rng: np.random.Generator, shape: tuple[int, int], phi: float) -> np.ndarray:
    """Test input ``(U - 0.5) * exp(phi * N(0, 1))`` (U uniform, N normal): *phi* sets how
    widely the magnitudes spread (0: within a factor of ~2; 4: over many decades), the
    usual way to stress FP64 emulation."""
    return (rng.random(shape) - 0.5) * np.exp(phi * rng.standard_normal(shape))


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` of two finite float64 matrices, correctly rounded: the FP64 baseline that
    reduced- and emulated-precision products are measured against.

    Each row of *a* and column of *b* is scaled by a power of two to integers and cut
    into 18-bit float64 slices; every slice product is an exact DGEMM (its sums stay below
    2**53), and the levels are added per entry with :func:`math.fsum` (exactly rounded).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise InvalidArgumentError(
            f"exact_matmul: expected matrices (m, k) and (k, n), got shapes {a.shape} and {b.shape}"
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise InvalidArgumentError("exact_matmul: the inputs must be finite (no inf or NaN)")
    w = 18

    def split(x: np.ndarray, axis: int) -> tuple[list[tuple[np.ndarray, int]], np.ndarray]:
        nz = np.where(x != 0, np.abs(x), np.inf)
        mn = np.min(nz, axis=axis, keepdims=True)
        _, emin = np.frexp(np.where(np.isfinite(mn), mn, 1.0))
        _, emax = np.frexp(np.max(np.abs(x), axis=axis, keepdims=True))
        shift = 53 - emin  # x * 2**shift is an integer
        rem = np.ldexp(x, shift)
        n = -(-(int(np.max(emax - emin)) + 54) // w)
        parts = []
        for d in range(n - 1, -1, -1):
            t = np.trunc(rem / 2.0 ** (w * d))
            parts.append((t, d))
            rem = rem - t * 2.0 ** (w * d)
        if np.any(rem):  # cannot happen for finite float64 input: the slicing is exact
            raise ArithmeticError("exact_matmul: the slices do not add up to the input")
        return parts, shift

    pa, sa = split(a, 1)
    pb, sb = split(b, 0)
    if a.shape[1] * 2.0 ** (2 * w) * len(pa) * len(pb) >= 2.0**53:
        raise InvalidArgumentError(
            f"exact_matmul: k = {a.shape[1]} with {len(pa)} x {len(pb)} slices is too large "
            "for exact slice products"
        )
    levels: dict[int, np.ndarray] = {}
    for ta, da in pa:
        for tb, db in pb:
            levels[da + db] = levels.get(da + db, 0) + ta @ tb
    scale = -sa.astype(np.int64) - sb.astype(np.int64)  # (m, n)
    # exact: integers below 2**53 scaled by powers of two
    terms = np.stack([np.ldexp(levels[k], scale + w * k).ravel() for k in sorted(levels)], axis=1)
    out = np.array([math.fsum(row) for row in terms.tolist()])
    return out.reshape(a.shape[0], b.shape[1])


#: The standard's elementwise functions by the inputs the sweep gives them.
_UNARY_FLOAT = (
    "abs", "acos", "acosh", "asin", "asinh", "atan", "atanh", "ceil", "cos", "cosh", "exp",
    "expm1", "floor", "isfinite", "isinf", "isnan", "log", "log1p", "log2", "log10",
    "negative", "positive", "reciprocal", "round", "sign", "signbit", "sin", "sinh",
    "sqrt", "square", "tan", "tanh", "trunc",
)  # fmt: skip
_BINARY_FLOAT = (
    "add", "atan2", "copysign", "divide", "equal", "floor_divide", "greater",
    "greater_equal", "hypot", "less", "less_equal", "logaddexp", "maximum", "minimum",
    "multiply", "nextafter", "not_equal", "pow", "remainder", "subtract",
)  # fmt: skip
_BINARY_INT = (
    "bitwise_and", "bitwise_left_shift", "bitwise_or", "bitwise_right_shift", "bitwise_xor",
)  # fmt: skip
_BOOL = ("logical_and", "logical_not", "logical_or", "logical_xor")
_COMPLEX = ("conj", "imag", "real")
#: Every elementwise function of the 2024.12 standard: the sweep covers each once.
ELEMENTWISE_FUNCTIONS = (
    _UNARY_FLOAT + _BINARY_FLOAT + _BINARY_INT + _BOOL + _COMPLEX + ("bitwise_invert", "clip")
)


def _close(got: Any, want: Any, device: str, what: str) -> None:
    """*got* (an hpcai Array) lives on *device* and matches NumPy's *want* to float32 accuracy."""
    assert str(got.device) == device, f"{what}: result on {got.device}, inputs on {device}"
    g = to_numpy(got)
    w = np.asarray(want)
    assert g.shape == w.shape, f"{what}: shape {g.shape}, NumPy gives {w.shape}"
    if w.dtype.kind in "fc":
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-7, err_msg=what)
    else:
        np.testing.assert_array_equal(g, w, err_msg=what)


class DeviceTests:
    """Device conformance tests; subclasses provide a ``device`` fixture (device names)."""

    def _other(self, device: str) -> str:
        for d in xp.all_devices():
            if str(d) != device:
                return str(d)
        raise AssertionError("the suite needs at least two devices")

    def test_creation_lives_on_device(self, device: str) -> None:
        x = xp.asarray([1.0, 2.0, 3.0], device=device, dtype=xp.float32)
        assert str(x.device) == device
        assert x.device == xp.resolve_device(device)
        assert x.dtype == xp.float32
        assert x.shape == (3,) and x.ndim == 1 and x.size == 3
        np.testing.assert_array_equal(to_numpy(x), np.array([1, 2, 3], np.float32))

    def test_operators_match_numpy(self, device: str) -> None:
        a = np.array([[1.5, -2.0], [3.0, 4.25]], dtype=np.float32)
        b = np.array([[0.5, 2.0], [-1.0, 8.0]], dtype=np.float32)
        x = xp.asarray(a, device=device)
        y = xp.asarray(b, device=device)
        ops = [operator.add, operator.sub, operator.mul, operator.truediv, operator.lt,
               operator.le, operator.gt, operator.ge, operator.eq, operator.ne]
        for op in ops:
            r = op(x, y)
            assert str(r.device) == device
            np.testing.assert_allclose(to_numpy(r), op(a, b), rtol=1e-6)
        np.testing.assert_allclose(to_numpy(x @ y), a @ b, rtol=1e-5)
        np.testing.assert_allclose(to_numpy(2 * x - 1), 2 * a - 1, rtol=1e-6)
        np.testing.assert_allclose(to_numpy(-x), -a)
        np.testing.assert_allclose(to_numpy(abs(x)), abs(a))

    def test_every_elementwise_function_matches_numpy(self, device: str) -> None:
        a = np.array([0.125, 0.5, 0.75, 0.875], dtype=np.float32)  # inside every domain
        b = np.array([1.5, 2.0, 0.5, 3.0], dtype=np.float32)
        x = xp.asarray(a, device=device)
        y = xp.asarray(b, device=device)
        for name in _UNARY_FLOAT:
            shift = 1.0 if name == "acosh" else 0.0  # acosh is defined from 1 up
            xs = x + shift if shift else x
            _close(getattr(xp, name)(xs), getattr(compat_np, name)(a + np.float32(shift)), device, name)
        for name in _BINARY_FLOAT:
            _close(getattr(xp, name)(x, y), getattr(compat_np, name)(a, b), device, name)
        _close(xp.clip(x, 0.25, 0.8), np.clip(a, 0.25, 0.8), device, "clip")
        i = np.array([1, 6, 255, 1024], dtype=np.int32)
        j = np.array([3, 1, 2, 4], dtype=np.int32)
        xi = xp.asarray(i, device=device)
        xj = xp.asarray(j, device=device)
        for name in _BINARY_INT:
            _close(getattr(xp, name)(xi, xj), getattr(compat_np, name)(i, j), device, name)
        _close(xp.bitwise_invert(xi), ~i, device, "bitwise_invert")
        p = np.array([True, False, True, False])
        q = np.array([True, True, False, False])
        xb = xp.asarray(p, device=device)
        yb = xp.asarray(q, device=device)
        for name in _BOOL:
            args = (p,) if name == "logical_not" else (p, q)
            xargs = (xb,) if name == "logical_not" else (xb, yb)
            _close(getattr(xp, name)(*xargs), getattr(compat_np, name)(*args), device, name)
        if "complex64" in xp.resolve_device(device).native_dtypes:
            c = (a + 1j * b).astype(np.complex64)
            xc = xp.asarray(c, device=device)
            for name in _COMPLEX:
                _close(getattr(xp, name)(xc), getattr(compat_np, name)(c), device, name)

    def test_statistics_searching_sorting_and_sets_match_numpy(self, device: str) -> None:
        a = np.array([[3.0, -1.0, 2.0], [0.5, 4.0, 2.0]], dtype=np.float32)
        x = xp.asarray(a, device=device)
        for name in ("sum", "prod", "mean", "var", "std", "min", "max", "all", "any"):
            f = getattr(xp, name)
            ref = getattr(compat_np, name)
            _close(f(x), ref(a), device, name)
            _close(f(x, axis=1), ref(a, axis=1), device, f"{name}(axis=1)")
        for name in ("cumulative_sum", "cumulative_prod"):
            _close(getattr(xp, name)(x, axis=1), getattr(compat_np, name)(a, axis=1), device, name)
        _close(xp.argmax(x, axis=0), np.argmax(a, axis=0), device, "argmax")
        _close(xp.argmin(x), np.argmin(a), device, "argmin")
        _close(xp.count_nonzero(x > 1), np.count_nonzero(a > 1), device, "count_nonzero")
        _close(xp.diff(x, axis=1), np.diff(a, axis=1), device, "diff")
        _close(xp.where(x > 1, x, -x), np.where(a > 1, a, -a), device, "where")
        for got, want in zip(xp.nonzero(x > 1), np.nonzero(a > 1), strict=True):
            _close(got, want, device, "nonzero")
        _close(xp.sort(x, axis=1), np.sort(a, axis=1), device, "sort")
        _close(xp.sort(x, descending=True), -np.sort(-a), device, "sort(descending)")
        _close(xp.argsort(x, axis=1, stable=True), np.argsort(a, axis=1, kind="stable"), device, "argsort")
        s = xp.sort(xp.reshape(x, (-1,)))
        v = xp.asarray([2.0, 0.0, 5.0], device=device, dtype=xp.float32)
        _close(xp.searchsorted(s, v), np.searchsorted(np.sort(a.ravel()), [2.0, 0.0, 5.0]), device, "searchsorted")
        _close(xp.unique_values(x), np.unique(a), device, "unique_values")
        values, counts = xp.unique_counts(x)
        want_v, want_c = np.unique(a, return_counts=True)
        _close(values, want_v, device, "unique_counts values")
        _close(counts, want_c, device, "unique_counts counts")

    def test_manipulation_matches_numpy(self, device: str) -> None:
        a = np.arange(6, dtype=np.float32).reshape(2, 3)
        x = xp.asarray(a, device=device)
        cases = [
            (xp.reshape(x, (3, 2)), a.reshape(3, 2), "reshape"),
            (xp.permute_dims(x, (1, 0)), a.T, "permute_dims"),
            (xp.concat([x, x], axis=0), np.concatenate([a, a]), "concat"),
            (xp.stack([x, x], axis=1), np.stack([a, a], axis=1), "stack"),
            (xp.flip(x, axis=1), a[:, ::-1], "flip"),
            (xp.roll(x, 1, axis=1), np.roll(a, 1, axis=1), "roll"),
            (xp.expand_dims(x, axis=0), a[None], "expand_dims"),
            (xp.squeeze(xp.expand_dims(x, axis=0), axis=0), a, "squeeze"),
            (xp.broadcast_to(x[0], (4, 3)), np.broadcast_to(a[0], (4, 3)), "broadcast_to"),
            (xp.tile(x, (2, 1)), np.tile(a, (2, 1)), "tile"),
            (xp.repeat(x, 2, axis=1), np.repeat(a, 2, axis=1), "repeat"),
            (xp.moveaxis(x, 0, 1), np.moveaxis(a, 0, 1), "moveaxis"),
            (xp.take(x, xp.asarray([2, 0], device=device), axis=1), a[:, [2, 0]], "take"),
            (xp.astype(x, xp.int32), a.astype(np.int32), "astype"),
        ]
        for got, want, what in cases:
            _close(got, want, device, what)
        for got, want in zip(xp.meshgrid(x[0], x[1]), np.meshgrid(a[0], a[1]), strict=True):
            _close(got, want, device, "meshgrid")

    def test_linear_algebra_and_fft_match_numpy(self, device: str) -> None:
        a = np.array([[2.0, 1.0], [1.0, 3.0]], dtype=np.float32)
        v = np.array([1.0, -2.0], dtype=np.float32)
        x = xp.asarray(a, device=device)
        u = xp.asarray(v, device=device)
        _close(xp.matmul(x, x), a @ a, device, "matmul")
        _close(xp.tensordot(x, x, axes=1), np.tensordot(a, a, axes=1), device, "tensordot")
        _close(xp.vecdot(x, u), a @ v, device, "vecdot")
        _close(xp.matrix_transpose(x), a.T, device, "matrix_transpose")
        _close(xp.linalg.outer(u, u), np.outer(v, v), device, "linalg.outer")
        _close(xp.linalg.vector_norm(u), np.linalg.norm(v), device, "linalg.vector_norm")
        if "complex64" in xp.resolve_device(device).native_dtypes:
            s = np.array([1.0, 2.0, 0.5, -1.0], dtype=np.float32)
            xs = xp.asarray(s, device=device)
            _close(xp.fft.rfft(xs), np.fft.rfft(s), device, "fft.rfft")
            _close(xp.fft.irfft(xp.fft.rfft(xs), n=4), s, device, "fft.irfft")

    def test_integer_bitwise_and_shifts(self, device: str) -> None:
        a = np.array([1, 6, 255, 1024], dtype=np.int32)
        x = xp.asarray(a, device=device)
        np.testing.assert_array_equal(to_numpy(x & 3), a & 3)
        np.testing.assert_array_equal(to_numpy(x | 8), a | 8)
        np.testing.assert_array_equal(to_numpy(x ^ x), a ^ a)
        np.testing.assert_array_equal(to_numpy(~x), ~a)
        np.testing.assert_array_equal(to_numpy(x << 2), a << 2)
        np.testing.assert_array_equal(to_numpy(x >> 1), a >> 1)
        np.testing.assert_array_equal(to_numpy(x // 3), a // 3)
        np.testing.assert_array_equal(to_numpy(x % 7), a % 7)

    def test_inplace_keeps_identity_dtype_and_device(self, device: str) -> None:
        x = xp.asarray([1.0, 2.0, 3.0], device=device, dtype=xp.float32)
        y = xp.asarray([1.0, 1.0, 1.0], device=device, dtype=xp.float32)
        ident = id(x)
        x += y
        x *= 2
        x -= 1
        x /= 2
        assert id(x) == ident
        assert x.dtype == xp.float32 and str(x.device) == device
        np.testing.assert_allclose(to_numpy(x), (np.array([1, 2, 3], np.float32) + 1) * 2 / 2 - 0.5)

    def test_getitem_setitem(self, device: str) -> None:
        a = np.arange(12, dtype=np.int64).reshape(3, 4)
        x = xp.asarray(a, device=device)
        np.testing.assert_array_equal(to_numpy(x[1]), a[1])
        np.testing.assert_array_equal(to_numpy(x[:, 1:3]), a[:, 1:3])
        np.testing.assert_array_equal(to_numpy(x[..., None]), a[..., None])
        mask = xp.asarray(a > 5, device=device)
        np.testing.assert_array_equal(to_numpy(x[mask]), a[a > 5])
        idx = xp.asarray([2, 0], device=device)
        np.testing.assert_array_equal(to_numpy(x[idx]), a[[2, 0]])
        x[0, 0] = 100
        x[1] = xp.asarray([7, 7, 7, 7], device=device)
        a[0, 0] = 100
        a[1] = 7
        np.testing.assert_array_equal(to_numpy(x), a)

    def test_python_scalars(self, device: str) -> None:
        assert float(xp.asarray(2.5, device=device)) == 2.5
        assert int(xp.asarray(7, device=device)) == 7
        assert bool(xp.asarray(True, device=device)) is True
        assert complex(xp.asarray(1.0, device=device)) == 1 + 0j
        assert operator.index(xp.asarray(3, device=device)) == 3

    def test_mixing_devices_raises(self, device: str) -> None:
        other = self._other(device)
        x = xp.ones(3, device=device, dtype=xp.float32)
        y = xp.ones(3, device=other, dtype=xp.float32)
        for op in (operator.add, operator.mul, operator.lt):
            try:
                op(x, y)
            except DeviceMismatchError as exc:
                assert device in str(exc) and other in str(exc) and "to_device" in str(exc)
            else:
                raise AssertionError("mixing devices must raise DeviceMismatchError")

    def test_explicit_move_is_logged(self, device: str) -> None:
        other = self._other(device)
        x = xp.asarray(np.arange(256, dtype=np.float32), device=device)
        with xp.transfers() as log:
            y = x.to_device(other)
        assert str(y.device) == other
        assert len(log) == 1
        rec = log[0]
        assert (rec.source, rec.destination, rec.nbytes) == (device, other, 1024)
        assert rec.wall_seconds >= 0 and rec.modelled_seconds >= 0
        np.testing.assert_array_equal(to_numpy(y), np.arange(256, dtype=np.float32))
        assert x.to_device(device) is x  # no move, no record

    def test_forbid_blocks_every_move(self, device: str) -> None:
        other = self._other(device)
        x = xp.ones(4, device=device, dtype=xp.float32)
        with xp.transfers(forbid=True):
            for move in (lambda: x.to_device(other), lambda: xp.asarray(x, device=other)):
                try:
                    move()
                except TransferForbiddenError:
                    pass
                else:
                    raise AssertionError("a move inside transfers(forbid=True) must raise")
            _ = x + 1  # computing on the device is not a move

    def test_pickle_roundtrip_keeps_device(self, device: str) -> None:
        x = xp.asarray([[1, 2], [3, 4]], device=device, dtype=xp.int32)
        y = pickle.loads(pickle.dumps(x))
        assert y.device == x.device and y.dtype == x.dtype
        np.testing.assert_array_equal(to_numpy(y), to_numpy(x))

    def test_dlpack_device_reports_locality(self, device: str) -> None:
        x = xp.ones(2, device=device, dtype=xp.float32)
        kind, _ = x.__dlpack_device__()
        dev = xp.resolve_device(device)
        # kDLCPU (1) for host memory and for memory that is never shared (emulated devices
        # export only copies to the host)
        if not dev._backend.zero_copy_export or dev.kind == "cpu":
            assert kind == 1
        assert kind in (1, 2, 3, 4, 7, 8, 9, 10, 13, 14)  # the standard's valid device types
